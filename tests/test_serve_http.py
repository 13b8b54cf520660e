"""HTTP semantics of ``unblank serve`` against RFC 9110 / 9111.

One DIST is built for the module from a small SRC: a compressible JS file and a
CSS file (br and gzip variants), a 300 KiB binary with no variants, and a
JS file over 2 MiB that the memory tier does not hold, so it is streamed.

Requests go through five clients (the ``client`` fixture):

- ``asgi``: the ASGI app called in-process with a hand-made scope;
- ``asgi-stream``: the same app built with ``memory_file_limit=0``, so every
  body is streamed from disk;
- ``asgi-pathsend``: the streaming app under a server that offers the ASGI
  ``http.response.pathsend`` extension (the client reads the path it is sent);
- ``uvicorn`` / ``uvicorn-stream``: the two apps under a real uvicorn on
  127.0.0.1, spoken to with ``http.client`` (which neither normalises paths
  nor decodes bodies, so every byte is the server's).
"""

from __future__ import annotations

import gzip
import hashlib
import html
import http.client
import json
import os
import random
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import brotli
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Message

from tests.realserver import serve_in_thread
from unblank import Manifest
from unblank_pages import REASONS, PageRenderer
from unblank_server.app import StaticApp, create_app
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings
from unblank_server.errors import ConfigError
from unblank_server.http import format_http_date, parse_http_date

FAST = BuildOptions(compression=CompressionSettings(brotli_quality=4, gzip_level=6), jobs=2)
IMMUTABLE = "public, max-age=31536000, immutable, no-transform"
REVALIDATE = "no-cache, no-transform"
ALLOW = "GET, HEAD, OPTIONS"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
TITLES: dict[str, dict[str, Any]] = {
    locale: catalog["reasons"] for locale, catalog in PageRenderer().catalogs.items()
}
ALL_CLIENTS = ("asgi", "asgi-stream", "asgi-pathsend", "uvicorn", "uvicorn-stream")
TWO_CLIENTS = ("asgi", "uvicorn")
FILES = ("app.js", "css/site.css", "blob.bin", "big.js")
MIB = 1 << 20

HeaderList = Sequence[tuple[str, str]] | Mapping[str, str]


# --------------------------------------------------------------------------- the site


def write_source(src: Path) -> dict[str, bytes]:
    """The module's SRC; returns logical name -> bytes."""
    rng = random.Random(4)  # the same bytes every run
    files: dict[str, str | bytes] = {
        "app.js": "".join(f"export const value{i} = 'hello world {i}';\n" for i in range(300)),
        "css/site.css": "".join(f".c{i} {{ color: #{i:06x}; }}\n" for i in range(200)),
        "blob.bin": rng.randbytes(300 * 1024),
        "big.js": "".join(
            f"console.log({i}, '{rng.getrandbits(64):016x}');\n" for i in range(2 * MIB // 36 + 8)
        ),
    }
    out: dict[str, bytes] = {}
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
        out[name] = data
    assert len(out["big.js"]) > 2 * MIB
    return out


@dataclass(frozen=True)
class Site:
    dist: Path
    manifest: Manifest
    sources: dict[str, bytes]

    def path(self, name: str) -> str:
        """The fingerprinted URL of a logical name."""
        return "/static/" + self.manifest.assets[name].path

    def size(self, name: str) -> int:
        return len(self.sources[name])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("serve_http")
    sources = write_source(root / "src")
    build(root / "src", root / "dist", FAST)
    manifest = Manifest.loads((root / "dist" / "manifest.json").read_bytes())
    assert set(manifest.assets["app.js"].encodings) == {"br", "gzip"}
    assert set(manifest.assets["big.js"].encodings) == {"br", "gzip"}
    assert manifest.assets["blob.bin"].encodings == {}
    return Site(root / "dist", manifest, sources)


def opened(dist: Path, **options: Any) -> StaticApp:
    """A StaticApp that stops its watcher when its ``with`` block ends."""
    return create_app(dist, reload_interval=0, **options)


@pytest.fixture(scope="module")
def apps(site: Site) -> Iterator[dict[str, StaticApp]]:
    with (
        opened(site.dist) as memory,
        opened(site.dist, memory_file_limit=0) as stream,
    ):
        yield {"memory": memory, "stream": stream}


@pytest.fixture(scope="module")
def servers(apps: dict[str, StaticApp]) -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve_in_thread(app)) for name, app in apps.items()}


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Reply:
    status: int
    fields: tuple[tuple[str, str], ...]  # lower-case names, in order
    body: bytes

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return ", ".join(values) if values else None

    def names(self) -> set[str]:
        return {key for key, _ in self.fields}


def _pairs(headers: HeaderList) -> list[tuple[str, str]]:
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


class AsgiClient:
    """Calls an ASGI app in-process, checking the response messages it sends."""

    def __init__(self, app: ASGIApp, *, pathsend: bool = False) -> None:
        self.app = app
        self.pathsend = pathsend

    def request(self, method: str, path: str, headers: HeaderList = ()) -> Reply:
        sent = self.messages(method, path, headers)
        return _assemble(sent)

    def messages(
        self,
        method: str,
        path: str,
        headers: HeaderList = (),
        *,
        on_send: Callable[[Message], None] | None = None,
    ) -> list[Message]:
        """The ASGI messages the app sends for this request, unchecked."""
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("utf-8", "replace"),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver")]
            + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in _pairs(headers)],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        if self.pathsend:
            scope["extensions"] = {"http.response.pathsend": {}}
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)
            if on_send is not None:
                on_send(message)

        anyio.run(self.app, scope, receive, send)
        return sent


def _assemble(sent: list[Message]) -> Reply:
    """The response an ASGI server would put on the wire, after checking the
    messages follow the protocol (one start, body pieces, a last one)."""
    assert sent and sent[0]["type"] == "http.response.start", sent[:1]
    start = sent[0]
    body = b""
    for i, message in enumerate(sent[1:], start=1):
        last = i == len(sent) - 1
        if message["type"] == "http.response.pathsend":
            assert last, "pathsend must be the last message"
            body += Path(message["path"]).read_bytes()
            continue
        assert message["type"] == "http.response.body", message["type"]
        body += message.get("body", b"")
        assert message.get("more_body", False) is not last, "more_body must end the response"
    assert len(sent) > 1, "no response body message"
    fields = tuple(
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in start["headers"]
    )
    return Reply(int(start["status"]), fields, body)


class HttpClient:
    """A real HTTP/1.1 exchange with ``http.client``: one connection per request,
    no header added but Host, no decoding of the body."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        assert parts.hostname is not None and parts.port is not None
        self.host, self.port = parts.hostname, parts.port

    def request(self, method: str, path: str, headers: HeaderList = ()) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in _pairs(headers):
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read()
            fields = tuple((name.lower(), value) for name, value in response.getheaders())
            return Reply(response.status, fields, body)
        finally:
            connection.close()


Client = AsgiClient | HttpClient


@pytest.fixture(params=ALL_CLIENTS)
def client(request: pytest.FixtureRequest, apps: dict[str, StaticApp], site: Site) -> Client:
    kind: str = request.param
    if kind == "asgi":
        return AsgiClient(apps["memory"])
    if kind == "asgi-stream":
        return AsgiClient(apps["stream"])
    if kind == "asgi-pathsend":
        return AsgiClient(apps["stream"], pathsend=True)
    servers: dict[str, str] = request.getfixturevalue("servers")
    return HttpClient(servers["stream" if kind == "uvicorn-stream" else "memory"])


@pytest.fixture
def asgi(apps: dict[str, StaticApp]) -> AsgiClient:
    return AsgiClient(apps["memory"])


# --------------------------------------------------------------------------- checks


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decoded(reply: Reply) -> bytes:
    coding = reply.get("content-encoding")
    if coding == "br":
        return bytes(brotli.decompress(reply.body))
    if coding == "gzip":
        return gzip.decompress(reply.body)
    assert coding is None, coding
    return reply.body


def assert_guided(
    reply: Reply,
    reason: str,
    status: int,
    *,
    fmt: str = "html",
    locale: str = "en",
    head: bool = False,
) -> None:
    """A guided page: the status, never cached, and the page of ``reason`` in ``fmt``."""
    assert reply.status == status, (reply.status, reply.body[:200])
    assert reply.get("cache-control") == "no-store"
    assert reply.get("x-content-type-options") == "nosniff"
    media = {"html": "text/html", "json": "application/problem+json", "text": "text/plain"}[fmt]
    assert reply.get("content-type") == f"{media}; charset=utf-8"
    assert reply.get("content-language") == locale
    length = reply.get("content-length")
    assert length is not None and int(length) > 0
    if head:
        assert reply.body == b""
        return
    assert int(length) == len(reply.body)
    title = TITLES[locale][reason]["title"]
    text = reply.body.decode("utf-8")
    if fmt == "html":
        assert f"<h1>{html.escape(title)}</h1>" in text
        assert f'<html lang="{locale}"' in text
    elif fmt == "json":
        problem = json.loads(text)
        assert problem["status"] == status
        assert problem["type"] == f"/_unblank/pages/{reason}"
        assert problem["title"] == title
    else:
        assert text.splitlines()[0] == title


def assert_file(reply: Reply, site: Site, name: str, coding: str | None) -> None:
    """A complete 200 of ``name`` in ``coding``, every byte checked."""
    asset = site.manifest.assets[name]
    assert reply.status == 200, (reply.status, reply.body[:200])
    assert reply.get("content-encoding") == coding
    size = asset.size if coding is None else asset.encodings[coding]
    assert reply.get("content-length") == str(size)
    assert len(reply.body) == size
    assert sha256(decoded(reply)) == sha256(site.sources[name])


def stable_fields(reply: Reply) -> list[tuple[str, str]]:
    """Header fields minus the ones that change between two identical requests."""
    return [(k, v) for k, v in reply.fields if k != "date"]


# =========================================================================== headers


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_fingerprinted_file_headers_immutable(client: Client, site: Site) -> None:
    reply = client.request("GET", site.path("app.js"))
    assert_file(reply, site, "app.js", None)
    assert reply.get("cache-control") == IMMUTABLE
    assert reply.get("content-type") == "text/javascript; charset=utf-8"
    assert reply.get("vary") == "Accept-Encoding"
    etag = reply.get("etag")
    assert etag is not None and etag.startswith('"') and etag.endswith('"')  # strong
    mtime = int((site.dist / site.manifest.assets["app.js"].path).stat().st_mtime)
    assert reply.get("last-modified") == format_http_date(mtime)
    assert reply.get("access-control-allow-origin") == "*"
    assert reply.get("timing-allow-origin") == "*"
    assert reply.get("cross-origin-resource-policy") == "cross-origin"
    assert reply.get("x-content-type-options") == "nosniff"


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_logical_name_headers_revalidate(client: Client, site: Site) -> None:
    logical = client.request("GET", "/static/app.js")
    fingerprinted = client.request("GET", site.path("app.js"))
    assert_file(logical, site, "app.js", None)
    assert logical.get("cache-control") == REVALIDATE
    # the same content under two names: the same entity tag; the logical name's
    # date is never before its generation was published (rollbacks move it on)
    assert logical.get("etag") == fingerprinted.get("etag")
    logical_date = parse_http_date(logical.get("last-modified") or "")
    file_date = parse_http_date(fingerprinted.get("last-modified") or "")
    assert logical_date is not None and file_date is not None
    assert logical_date >= file_date
    assert logical_date >= int(site.manifest.created.timestamp())
    assert logical.get("vary") == "Accept-Encoding"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("css/site.css", "text/css; charset=utf-8"),
        ("big.js", "text/javascript; charset=utf-8"),
        ("blob.bin", "application/octet-stream"),
    ],
)
def test_content_type_charset_for_text(
    asgi: AsgiClient, site: Site, name: str, content_type: str
) -> None:
    assert asgi.request("HEAD", site.path(name)).get("content-type") == content_type


def test_file_without_variants_has_no_vary(asgi: AsgiClient, site: Site) -> None:
    reply = asgi.request("GET", site.path("blob.bin"), {"accept-encoding": "br, gzip"})
    assert_file(reply, site, "blob.bin", None)
    assert "vary" not in reply.names()
    not_modified = asgi.request(
        "GET", site.path("blob.bin"), {"if-none-match": reply.get("etag") or ""}
    )
    assert not_modified.status == 304 and "vary" not in not_modified.names()


def test_etags_distinct_per_encoding(asgi: AsgiClient, site: Site) -> None:
    tags = {
        coding: asgi.request("HEAD", site.path("app.js"), {"accept-encoding": coding}).get("etag")
        for coding in ("identity", "br", "gzip")
    }
    assert len(set(tags.values())) == 3, tags
    for tag in tags.values():
        assert tag is not None and tag.startswith('"') and not tag.startswith("W/")


@pytest.mark.parametrize("coding", [None, "br", "gzip"])
@pytest.mark.parametrize("name", FILES)
def test_body_exact_for_every_encoding(
    client: Client, site: Site, name: str, coding: str | None
) -> None:
    reply = client.request("GET", site.path(name), {"accept-encoding": coding or "identity"})
    has_variants = bool(site.manifest.assets[name].encodings)
    assert_file(reply, site, name, coding if has_variants else None)
    assert ("vary" in reply.names()) is has_variants


@pytest.mark.parametrize(
    ("cors_origin", "resource_policy"),
    [(None, None), ("https://app.example", "same-site")],
)
def test_cors_headers_configurable(
    site: Site, cors_origin: str | None, resource_policy: str | None
) -> None:
    with opened(site.dist, cors_origin=cors_origin, resource_policy=resource_policy) as app:
        reply = AsgiClient(app).request("GET", site.path("app.js"))
        preflight = AsgiClient(app).request(
            "OPTIONS", site.path("app.js"), {"access-control-request-method": "GET"}
        )
    assert reply.status == 200
    assert reply.get("x-content-type-options") == "nosniff"
    assert reply.get("cross-origin-resource-policy") == resource_policy
    assert reply.get("access-control-allow-origin") == cors_origin
    assert reply.get("timing-allow-origin") == cors_origin
    vary = {v.strip() for v in (reply.get("vary") or "").split(",")}
    assert "Accept-Encoding" in vary
    assert ("Origin" in vary) is (cors_origin is not None)
    assert preflight.status == 204
    assert preflight.get("access-control-allow-origin") == cors_origin


# =========================================================================== Accept-Encoding

ENCODING_TABLE: list[tuple[str | None, str | None]] = [
    (None, None),
    ("br, gzip", "br"),
    ("gzip", "gzip"),
    ("br", "br"),
    ("br;q=0, gzip", "gzip"),
    ("*", "br"),
    ("*;q=0, identity", None),
    ("br, identity;q=0", "br"),
    ("gzip, identity;q=0", "gzip"),
    ("gzip;q=0.5, br;q=0.4", "gzip"),
    ("BR", "br"),
    ("x-gzip", "gzip"),
    ("garbage;;;, ,=", None),
    ("", None),
    ("deflate, compress", None),
]


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(("accept_encoding", "coding"), ENCODING_TABLE)
def test_accept_encoding_negotiation(
    client: Client, site: Site, accept_encoding: str | None, coding: str | None
) -> None:
    headers = {} if accept_encoding is None else {"accept-encoding": accept_encoding}
    reply = client.request("GET", site.path("app.js"), headers)
    assert_file(reply, site, "app.js", coding)
    assert reply.get("vary") == "Accept-Encoding"


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    ("name", "accept_encoding"),
    [
        ("app.js", "*;q=0"),
        # Only identity is listed as acceptable, and it is refused: br and gzip,
        # not listed, are not acceptable either (RFC 9110 §12.5.3).
        ("app.js", "identity;q=0"),
        ("blob.bin", "identity;q=0"),
        ("blob.bin", "br, identity;q=0"),  # no br variant exists for it
        ("blob.bin", "*;q=0"),
    ],
)
def test_accept_encoding_nothing_acceptable_is_406(
    client: Client, site: Site, name: str, accept_encoding: str
) -> None:
    reply = client.request("GET", site.path(name), {"accept-encoding": accept_encoding})
    assert_guided(reply, "bad-request", 406)


def test_accept_encoding_406_problem_json(asgi: AsgiClient, site: Site) -> None:
    reply = asgi.request(
        "GET", site.path("app.js"), {"accept-encoding": "*;q=0", "accept": "application/json"}
    )
    assert_guided(reply, "bad-request", 406, fmt="json")


def test_accept_encoding_star_without_identity_on_binary(asgi: AsgiClient, site: Site) -> None:
    reply = asgi.request("GET", site.path("blob.bin"), {"accept-encoding": "*;q=0, identity"})
    assert_file(reply, site, "blob.bin", None)


# =========================================================================== conditionals


def validators(client: Client, site: Site, name: str = "app.js", coding: str = "identity") -> Reply:
    reply = client.request("HEAD", site.path(name), {"accept-encoding": coding})
    assert reply.status == 200
    return reply


def assert_not_modified(reply: Reply, full: Reply) -> None:
    """A 304 with what RFC 9110 §15.4.5 asks for and no content."""
    assert reply.status == 304, (reply.status, reply.body[:200])
    assert reply.body == b""
    for name in ("etag", "cache-control", "vary"):
        assert reply.get(name) == full.get(name), name
    # Nothing the cache already holds from the 200 (it keeps CORS, type, dates).
    for name in ("last-modified", "access-control-allow-origin", "content-type"):
        assert reply.get(name) is None, name
    # Content-Length in a 304 may only repeat what the 200 would have sent (§8.6).
    assert reply.get("content-length") in (None, full.get("content-length"))
    assert "content-encoding" not in reply.names()


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    "template",
    [
        "{etag}",
        "W/{etag}",
        '"nope", {etag}, "other"',
        '"nope",W/{etag}',
        ", {etag}",
        "*",
    ],
)
def test_if_none_match_gives_304(client: Client, site: Site, template: str) -> None:
    full = validators(client, site)
    field = template.format(etag=full.get("etag"))
    reply = client.request("GET", site.path("app.js"), {"if-none-match": field})
    assert_not_modified(reply, full)


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_if_none_match_per_encoding(client: Client, site: Site) -> None:
    br = validators(client, site, coding="br")
    identity = validators(client, site)
    same = client.request(
        "GET", site.path("app.js"), {"accept-encoding": "br", "if-none-match": br.get("etag") or ""}
    )
    assert_not_modified(same, br)
    # the identity tag does not validate the br representation
    other = client.request(
        "GET",
        site.path("app.js"),
        {"accept-encoding": "br", "if-none-match": identity.get("etag") or ""},
    )
    assert_file(other, site, "app.js", "br")


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_if_none_match_on_head_and_logical_name(client: Client, site: Site) -> None:
    full = validators(client, site)
    etag = full.get("etag") or ""
    assert_not_modified(client.request("HEAD", site.path("app.js"), {"if-none-match": etag}), full)
    logical = client.request("GET", "/static/app.js", {"if-none-match": etag})
    assert logical.status == 304 and logical.get("cache-control") == REVALIDATE


def test_if_none_match_mismatch_beats_if_modified_since(asgi: AsgiClient, site: Site) -> None:
    full = validators(asgi, site)
    # §13.2.2: If-Modified-Since is not evaluated when If-None-Match is present
    reply = asgi.request(
        "GET",
        site.path("app.js"),
        {"if-none-match": '"nope"', "if-modified-since": format_http_date(2_000_000_000)},
    )
    assert_file(reply, site, "app.js", None)
    assert full.get("etag") != '"nope"'


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    ("offset", "status"), [(0, 304), (3600, 304), (-1, 200), (-86400 * 365, 200)]
)
def test_if_modified_since(client: Client, site: Site, offset: int, status: int) -> None:
    full = validators(client, site)
    modified = parse_http_date(full.get("last-modified") or "")
    assert modified is not None
    reply = client.request(
        "GET", site.path("app.js"), {"if-modified-since": format_http_date(modified + offset)}
    )
    if status == 304:
        assert_not_modified(reply, full)
    else:
        assert_file(reply, site, "app.js", None)


@pytest.mark.parametrize(
    "field",
    [
        "yesterday",
        "",
        "Sun, 06 Nov 1994 08:49:37 GMT, Fri, 31 Dec 9999 23:59:59 GMT",  # two members
        "Fri, 31 Dec 99999 23:59:59 GMT",
    ],
)
def test_if_modified_since_invalid_is_ignored(asgi: AsgiClient, site: Site, field: str) -> None:
    assert_file(
        asgi.request("GET", site.path("app.js"), {"if-modified-since": field}), site, "app.js", None
    )


def test_if_modified_since_repeated_field_is_ignored(asgi: AsgiClient, site: Site) -> None:
    future = format_http_date(4_000_000_000)
    reply = asgi.request(
        "GET", site.path("app.js"), [("if-modified-since", future), ("if-modified-since", future)]
    )
    assert_file(reply, site, "app.js", None)


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    ("template", "status"),
    [
        ("{etag}", 200),
        ("*", 200),
        ('"nope", {etag}', 200),
        ('"nope"', 412),
        ("W/{etag}", 412),  # If-Match compares strongly
        ("garbage", 412),
    ],
)
def test_if_match(client: Client, site: Site, template: str, status: int) -> None:
    etag = validators(client, site).get("etag") or ""
    reply = client.request("GET", site.path("app.js"), {"if-match": template.format(etag=etag)})
    if status == 200:
        assert_file(reply, site, "app.js", None)
    else:
        assert_guided(reply, "bad-request", 412)


@pytest.mark.parametrize(
    ("offset", "status"), [(-86400, 412), (-1, 412), (0, 200), (86400, 200), (None, 200)]
)
def test_if_unmodified_since(asgi: AsgiClient, site: Site, offset: int | None, status: int) -> None:
    modified = parse_http_date(validators(asgi, site).get("last-modified") or "")
    assert modified is not None
    field = "not a date" if offset is None else format_http_date(modified + offset)
    reply = asgi.request("GET", site.path("app.js"), {"if-unmodified-since": field})
    if status == 200:
        assert_file(reply, site, "app.js", None)
    else:
        assert_guided(reply, "bad-request", 412)


def test_if_match_true_skips_if_unmodified_since(asgi: AsgiClient, site: Site) -> None:
    full = validators(asgi, site)
    reply = asgi.request(
        "GET",
        site.path("app.js"),
        {"if-match": full.get("etag") or "", "if-unmodified-since": format_http_date(0)},
    )
    assert_file(reply, site, "app.js", None)


def test_if_match_failure_beats_if_none_match(asgi: AsgiClient, site: Site) -> None:
    etag = validators(asgi, site).get("etag") or ""
    reply = asgi.request("GET", site.path("app.js"), {"if-match": '"nope"', "if-none-match": etag})
    assert_guided(reply, "bad-request", 412)


# =========================================================================== ranges


def expect_partial(reply: Reply, data: bytes, first: int, last: int) -> None:
    assert reply.status == 206, (reply.status, reply.body[:200])
    assert reply.get("content-range") == f"bytes {first}-{last}/{len(data)}"
    assert reply.get("content-length") == str(last - first + 1)
    assert reply.body == data[first : last + 1]
    assert "content-encoding" not in reply.names()


def parse_multipart(reply: Reply) -> list[tuple[str, str, bytes]]:
    """(Content-Type, Content-Range, data) of each part of a multipart/byteranges body."""
    media = reply.get("content-type") or ""
    assert media.startswith("multipart/byteranges; boundary="), media
    boundary = media.split("boundary=", 1)[1].encode("ascii")
    assert reply.get("content-length") == str(len(reply.body))
    delimiter = b"\r\n--" + boundary
    chunks = (b"\r\n" + reply.body).split(delimiter)
    assert chunks[0] == b"", "nothing may precede the first part"
    assert chunks[-1] == b"--\r\n", "the body ends with the close delimiter"
    parts = []
    for chunk in chunks[1:-1]:
        assert chunk.startswith(b"\r\n")
        head, separator, data = chunk[2:].partition(b"\r\n\r\n")
        assert separator
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n"))
        parts.append((fields["Content-Type"], fields["Content-Range"], data))
    return parts


RANGE_TABLE = [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, -1),
    ("bytes=-100", -100, -1),
    ("bytes=0-0", 0, 0),
    ("bytes=-1", -1, -1),
    ("bytes={last}-", -1, -1),
    ("bytes=10-999999999", 10, -1),  # clipped to the end
    ("bytes=0-99,50-149", 0, 149),  # overlapping: one range
]


@pytest.mark.parametrize(("field", "first", "last"), RANGE_TABLE)
@pytest.mark.parametrize("name", ["app.js", "blob.bin", "big.js"])
def test_range_single(
    client: Client, site: Site, name: str, field: str, first: int, last: int
) -> None:
    data = site.sources[name]
    size = len(data)
    reply = client.request("GET", site.path(name), {"range": field.format(last=size - 1)})
    expect_partial(reply, data, first % size, last % size)
    assert reply.get("etag") == validators(client, site, name).get("etag")
    assert ("vary" in reply.names()) is bool(site.manifest.assets[name].encodings)
    assert reply.get("cache-control") == IMMUTABLE


@pytest.mark.parametrize("name", ["app.js", "big.js"])
def test_range_multipart(client: Client, site: Site, name: str) -> None:
    data = site.sources[name]
    size = len(data)
    wanted = [(1000, 1099), (0, 9), (size - 5, size - 1)]  # parts come in the order asked
    field = "bytes=" + ", ".join(f"{a}-{b}" for a, b in wanted)
    reply = client.request("GET", site.path(name), {"range": field})
    assert reply.status == 206
    assert "content-range" not in reply.names()
    parts = parse_multipart(reply)
    assert [(p[0], p[1]) for p in parts] == [
        ("text/javascript; charset=utf-8", f"bytes {a}-{b}/{size}") for a, b in wanted
    ]
    assert [p[2] for p in parts] == [data[a : b + 1] for a, b in wanted]
    assert reply.get("vary") == "Accept-Encoding"


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_range_overlapping_parts_coalesced(client: Client, site: Site) -> None:
    data = site.sources["app.js"]
    reply = client.request("GET", site.path("app.js"), {"range": "bytes=500-599, 0-9, 550-700"})
    parts = parse_multipart(reply)
    size = len(data)
    assert [p[1] for p in parts] == [f"bytes 500-700/{size}", f"bytes 0-9/{size}"]
    assert [p[2] for p in parts] == [data[500:701], data[0:10]]


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    "field",
    [
        "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17)),  # more than 16
        "bytes=0-,0-",  # more than the whole file
        "bytes=-9000,0-8000",
        "bytes=abc",
        "bytes=50-10",
        "items=0-10",
        "bytes=",
    ],
)
def test_range_ignored_gives_full_200(client: Client, site: Site, field: str) -> None:
    reply = client.request("GET", site.path("app.js"), {"range": field})
    assert_file(reply, site, "app.js", None)


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize("field", ["bytes=5000000-", "bytes=-0", "bytes=5000000-5000001, 9000000-"])
def test_range_not_satisfiable_416(client: Client, site: Site, field: str) -> None:
    reply = client.request("GET", site.path("app.js"), {"range": field})
    assert_guided(reply, "bad-request", 416)
    assert reply.get("content-range") == f"bytes */{site.size('app.js')}"


def test_range_416_problem_json(asgi: AsgiClient, site: Site) -> None:
    reply = asgi.request(
        "GET", site.path("blob.bin"), {"range": "bytes=999999999-", "accept": "application/json"}
    )
    assert_guided(reply, "bad-request", 416, fmt="json")
    assert reply.get("content-range") == f"bytes */{site.size('blob.bin')}"


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    ("if_range", "partial"),
    [
        ("{etag}", True),
        ('"stale"', False),
        ("W/{etag}", False),  # a weak tag never satisfies If-Range
        ("{last_modified}", True),
        ("Thu, 01 Jan 1970 00:00:00 GMT", False),
        ("garbage", False),
    ],
)
def test_if_range(client: Client, site: Site, if_range: str, partial: bool) -> None:
    full = validators(client, site)
    field = if_range.format(etag=full.get("etag"), last_modified=full.get("last-modified"))
    reply = client.request("GET", site.path("app.js"), {"range": "bytes=0-99", "if-range": field})
    if partial:
        expect_partial(reply, site.sources["app.js"], 0, 99)
    else:
        assert_file(reply, site, "app.js", None)


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_range_with_accept_encoding_is_identity(client: Client, site: Site) -> None:
    """Documented choice: ranges count bytes of the file itself (as its SRI
    digest and size do), so a ranged request is answered from identity."""
    data = site.sources["app.js"]
    reply = client.request(
        "GET", site.path("app.js"), {"range": "bytes=10-19", "accept-encoding": "br, gzip"}
    )
    expect_partial(reply, data, 10, 19)
    assert reply.get("vary") == "Accept-Encoding"
    assert reply.get("etag") == validators(client, site).get("etag")
    # a client that refuses identity gets the whole coded representation instead
    refused = client.request(
        "GET", site.path("app.js"), {"range": "bytes=10-19", "accept-encoding": "br, identity;q=0"}
    )
    assert_file(refused, site, "app.js", "br")


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_range_on_head_is_ignored(client: Client, site: Site) -> None:
    reply = client.request("HEAD", site.path("app.js"), {"range": "bytes=0-9"})
    assert reply.status == 200
    assert reply.get("content-length") == str(site.size("app.js"))
    assert "content-range" not in reply.names()
    assert reply.body == b""


def test_range_after_failed_if_none_match_still_applies(asgi: AsgiClient, site: Site) -> None:
    reply = asgi.request(
        "GET", site.path("app.js"), {"range": "bytes=0-9", "if-none-match": '"other"'}
    )
    expect_partial(reply, site.sources["app.js"], 0, 9)


# =========================================================================== methods


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("{app}", {}),
        ("{app}", {"accept-encoding": "br"}),
        ("/static/app.js", {"accept-encoding": "gzip"}),
        ("{blob}", {}),
        ("{big}", {}),
        ("/_unblank/manifest.json", {"accept-encoding": "br"}),
        ("/static/missing.0123456789ab.js", {"x-request-id": "head-1"}),
        ("/_unblank/pages/overloaded", {"accept": "application/json", "x-request-id": "head-2"}),
    ],
)
def test_head_is_get_without_body(
    client: Client, site: Site, path: str, headers: dict[str, str]
) -> None:
    url = path.format(app=site.path("app.js"), blob=site.path("blob.bin"), big=site.path("big.js"))
    get = client.request("GET", url, headers)
    head = client.request("HEAD", url, headers)
    assert head.status == get.status
    assert head.body == b""
    assert stable_fields(head) == stable_fields(get)
    assert head.get("content-length") == str(len(get.body))


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"])
@pytest.mark.parametrize("path", ["{app}", "/static/missing.js", "/_unblank/manifest.json"])
def test_other_methods_405(client: Client, site: Site, method: str, path: str) -> None:
    reply = client.request(method, path.format(app=site.path("app.js")))
    assert_guided(reply, "bad-request", 405)
    assert reply.get("allow") == ALLOW
    assert 'data-retry="none"' in reply.body.decode()  # never repeats a POST by itself


def test_unknown_method_405(asgi: AsgiClient, site: Site) -> None:
    # httptools refuses methods it does not know before the app sees them; others may not
    reply = asgi.request("BREW", site.path("app.js"))
    assert_guided(reply, "bad-request", 405)
    assert reply.get("allow") == ALLOW


def test_other_method_405_problem_json(asgi: AsgiClient, site: Site) -> None:
    reply = asgi.request("DELETE", site.path("app.js"), {"accept": "application/json"})
    assert_guided(reply, "bad-request", 405, fmt="json")
    assert reply.get("allow") == ALLOW


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_options_preflight_204(client: Client, site: Site) -> None:
    reply = client.request(
        "OPTIONS",
        site.path("app.js"),
        {
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "x-request-id, range",
        },
    )
    assert reply.status == 204
    assert reply.body == b""
    assert "content-length" not in reply.names()  # RFC 9110 §8.6: never in a 204
    assert "transfer-encoding" not in reply.names()
    assert reply.get("allow") == ALLOW
    assert reply.get("access-control-allow-origin") == "*"
    assert reply.get("access-control-allow-methods") == ALLOW
    assert reply.get("access-control-allow-headers") == "x-request-id, range"
    max_age = reply.get("access-control-max-age")
    assert max_age is not None and int(max_age) > 0


# =========================================================================== missing files


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (BROWSER_ACCEPT, "html"),
        (None, "html"),
        ("application/json", "json"),
        ("application/json, text/plain, */*", "json"),  # axios
        ("application/problem+json", "json"),
        ("text/plain", "text"),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/static/app.0123456789ab.js",  # a fingerprinted name from another deploy
        "/static/index.html",  # never an app shell
        "/static/app.js.map",
        "/static/css",
        "/nothing-here",
        "/",
    ],
)
def test_missing_file_is_guided_404(
    client: Client, site: Site, path: str, accept: str | None, fmt: str
) -> None:
    reply = client.request("GET", path, {} if accept is None else {"accept": accept})
    assert_guided(reply, "not-found", 404, fmt=fmt)
    assert reply.get("vary") == "Accept, Accept-Language"


@pytest.mark.parametrize("fmt", ["html", "json", "text"])
def test_missing_file_echoes_request_id(asgi: AsgiClient, fmt: str) -> None:
    accept = {"html": "text/html", "json": "application/json", "text": "text/plain"}[fmt]
    reply = asgi.request(
        "GET", "/static/gone.js", {"accept": accept, "x-request-id": "req-42.trace:7/a=b"}
    )
    assert_guided(reply, "not-found", 404, fmt=fmt)
    assert "req-42.trace:7/a=b" in reply.body.decode()
    if fmt == "json":
        assert json.loads(reply.body)["instance"] == "req-42.trace:7/a=b"


@pytest.mark.parametrize(
    "request_id", ["<script>alert(1)</script>", "a b", "", "x" * 200, "-starts-with-dash"]
)
def test_missing_file_replaces_bad_request_id(asgi: AsgiClient, request_id: str) -> None:
    reply = asgi.request("GET", "/static/gone.js", {"x-request-id": request_id})
    assert_guided(reply, "not-found", 404)
    text = reply.body.decode()
    assert "<script>alert" not in text
    if request_id:
        assert request_id not in text
    assert "ub-" in text  # a generated reference instead


def test_missing_file_generated_request_ids_differ(asgi: AsgiClient) -> None:
    one = json.loads(asgi.request("GET", "/static/x.js", {"accept": "application/json"}).body)
    two = json.loads(asgi.request("GET", "/static/x.js", {"accept": "application/json"}).body)
    assert one["instance"].startswith("ub-") and two["instance"].startswith("ub-")
    assert one["instance"] != two["instance"]


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_missing_file_in_chinese(client: Client) -> None:
    reply = client.request(
        "GET", "/static/gone.js", {"accept": BROWSER_ACCEPT, "accept-language": "zh-CN,zh;q=0.9"}
    )
    assert_guided(reply, "not-found", 404, locale="zh-Hans")


def test_missing_file_unknown_language_falls_back(asgi: AsgiClient) -> None:
    reply = asgi.request("GET", "/static/gone.js", {"accept-language": "tlh, *;q=0"})
    assert_guided(reply, "not-found", 404)


# =========================================================================== /_unblank/


@pytest.mark.parametrize("client", TWO_CLIENTS, indirect=True)
def test_manifest_endpoint_revalidated(client: Client, site: Site) -> None:
    on_disk = (site.dist / "manifest.json").read_bytes()
    reply = client.request("GET", "/_unblank/manifest.json")
    assert reply.status == 200 and reply.body == on_disk
    assert reply.get("cache-control") == REVALIDATE
    assert reply.get("content-type") == "application/json"
    assert reply.get("content-length") == str(len(on_disk))
    etag = reply.get("etag")
    assert etag is not None and etag.startswith('"')
    assert_not_modified(
        client.request("GET", "/_unblank/manifest.json", {"if-none-match": etag}), reply
    )
    br = client.request("GET", "/_unblank/manifest.json", {"accept-encoding": "br"})
    assert br.get("content-encoding") == "br" and decoded(br) == on_disk
    assert br.get("vary") == "Accept-Encoding"
    assert br.get("etag") != etag
    assert br.get("content-length") == str(len(br.body))


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_pages_endpoint_serves_every_reason(asgi: AsgiClient, reason: str) -> None:
    reply = asgi.request("GET", f"/_unblank/pages/{reason}")
    assert reply.status == 200
    assert reply.get("content-type") == "text/html; charset=utf-8"
    title = TITLES["en"][reason]["title"]
    assert f"<h1>{html.escape(title)}</h1>" in reply.body.decode()
    problem = asgi.request("GET", f"/_unblank/pages/{reason}", {"accept": "application/json"})
    assert problem.status == 200
    assert json.loads(problem.body)["type"] == f"/_unblank/pages/{reason}"


@pytest.mark.parametrize(
    "path", ["/_unblank/pages/nope", "/_unblank/pages/", "/_unblank/pages", "/_unblank/nope"]
)
def test_pages_endpoint_unknown_reason_404(asgi: AsgiClient, path: str) -> None:
    assert_guided(asgi.request("GET", path), "not-found", 404)


def test_health_endpoints_ready(asgi: AsgiClient, site: Site) -> None:
    for path in ("/_unblank/health", "/_unblank/health/ready", "/_unblank/health/live"):
        reply = asgi.request("GET", path)
        assert reply.status == 200, path
        report = json.loads(reply.body)
        assert report["ready"] is True
        assert report["generation"] == site.manifest.generation
        assert reply.get("cache-control") == "no-store"


# =========================================================================== mounting and setup


def httpx_get(app: ASGIApp, paths: Sequence[str]) -> list[httpx.Response]:
    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return [await http.get(path) for path in paths]

    return anyio.run(fetch)


def test_mount_inside_starlette(site: Site) -> None:
    with opened(site.dist) as inner:
        outer = Starlette(routes=[Mount("/static", app=inner)])
        fingerprinted, logical, health, manifest, missing, outside = httpx_get(
            outer,
            [
                site.path("app.js"),
                "/static/app.js",
                "/static/_unblank/health",
                "/static/_unblank/manifest.json",
                "/static/nope.js",
                "/_unblank/health",
            ],
        )
    assert fingerprinted.status_code == 200
    assert fingerprinted.content == site.sources["app.js"]
    assert fingerprinted.headers["cache-control"] == IMMUTABLE
    assert logical.status_code == 200 and logical.headers["cache-control"] == REVALIDATE
    assert health.status_code == 200 and health.json()["ready"] is True
    assert manifest.status_code == 200
    assert manifest.content == (site.dist / "manifest.json").read_bytes()
    assert missing.status_code == 404 and "<h1>Page not found</h1>" in missing.text
    assert outside.status_code == 404  # Starlette's own 404: nothing is mounted there


def test_mount_with_explicit_prefix(site: Site) -> None:
    with opened(site.dist, prefix="/assets") as app:
        served, default, health = httpx_get(
            app,
            [
                site.path("app.js").replace("/static/", "/assets/", 1),
                site.path("app.js"),
                "/_unblank/health",
            ],
        )
        mounted = httpx_get(
            Starlette(routes=[Mount("/cdn", app=app)]),
            ["/cdn" + site.path("app.js").replace("/static/", "/assets/", 1)],
        )[0]
    assert served.status_code == 200 and served.content == site.sources["app.js"]
    assert default.status_code == 404
    assert health.status_code == 200
    assert mounted.status_code == 200 and mounted.content == site.sources["app.js"]


def test_empty_prefix_serves_at_root(site: Site) -> None:
    with opened(site.dist, prefix="") as app:
        client = AsgiClient(app)
        reply = client.request("GET", "/" + site.manifest.assets["app.js"].path)
        assert_file(reply, site, "app.js", None)
        assert client.request("GET", "/_unblank/health").status == 200


@pytest.mark.parametrize("prefix", ["assets", "/", "/assets/", "static/"])
def test_invalid_prefix_raises_config_error(site: Site, prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        create_app(site.dist, prefix=prefix)


def test_dist_not_a_folder_raises_config_error(site: Site, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        create_app(site.dist / "manifest.json")
    with pytest.raises(ConfigError, match="not a folder"):
        create_app(tmp_path / "does-not-exist")


def test_empty_dist_is_maintenance_until_published(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.js").write_text("export const ready = true;\n" * 200)
    with opened(dist) as app:
        client = AsgiClient(app)
        for path in ("/static/app.js", "/_unblank/manifest.json"):
            waiting = client.request("GET", path)
            assert_guided(waiting, "maintenance", 503)
            assert waiting.get("retry-after") == "10"
        problem = client.request("GET", "/static/app.js", {"accept": "application/json"})
        assert_guided(problem, "maintenance", 503, fmt="json")
        health = client.request("GET", "/_unblank/health")
        assert health.status == 503 and json.loads(health.body)["ready"] is False
        assert client.request("GET", "/_unblank/health/live").status == 200

        build(src, dist, FAST)
        assert app.store.reload()
        manifest = Manifest.loads((dist / "manifest.json").read_bytes())
        reply = client.request("GET", "/static/" + manifest.assets["app.js"].path)
        assert reply.status == 200 and reply.body == (src / "app.js").read_bytes()
        assert json.loads(client.request("GET", "/_unblank/health").body)["ready"] is True
        assert_guided(client.request("GET", "/static/other.js"), "not-found", 404)


def test_file_truncated_while_streaming_cuts_the_response(site: Site, tmp_path: Path) -> None:
    """A file that shrinks under a streamed response: the status line is out, so
    the response is left incomplete (the server then closes the connection) and
    never followed by a second response start."""
    dist = tmp_path / "dist"
    shutil.copytree(site.dist, dist)
    target = dist / site.manifest.assets["big.js"].path

    def truncate_after_first_piece(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            os.truncate(target, 0)

    with opened(dist, memory_file_limit=0) as app:
        sent = AsgiClient(app).messages(
            "GET", site.path("big.js"), on_send=truncate_after_first_piece
        )
    kinds = [message["type"] for message in sent]
    assert kinds.count("http.response.start") == 1 and sent[0]["status"] == 200
    assert sent[-1]["type"] == "http.response.body" and sent[-1].get("more_body") is True
    received = sum(len(message.get("body", b"")) for message in sent[1:])
    assert 0 < received < site.size("big.js")
