"""Hostile input to ``unblank serve``: nothing outside DIST is ever read or sent.

Every request here is answered with a sane status (never a 5xx, never a
traceback) and every 4xx carries a guided page. Paths go both over the wire to
a real uvicorn (raw sockets: HTTP clients normalise ``..`` before sending) and
straight into the ASGI app with hand-made scopes (the ones a server could
produce, and some no server would).

A canary file sits next to DIST; its content must never appear in a response.
Symbolic links out of DIST, present when it is loaded or swapped in while it
is served, are refused; a spy on ``open`` checks that serving never opens a
file outside DIST (except the page templates and the Python installation).
"""

from __future__ import annotations

import builtins
import html
import http.client
import io
import json
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import pytest
from starlette.types import ASGIApp, Message

import unblank_pages
from tests.realserver import serve_in_thread
from unblank import Manifest
from unblank_pages import PageRenderer
from unblank_server.app import StaticApp, create_app
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings

FAST = BuildOptions(compression=CompressionSettings(brotli_quality=4, gzip_level=6), jobs=2)
CANARY = f"UNBLANK-CANARY-{secrets.token_hex(8)}".encode()
XSS = "ubxss"  # marks every script-injection payload below
TITLES = {
    reason["title"]
    for catalog in PageRenderer().catalogs.values()
    for reason in catalog["reasons"].values()
}
GUIDED_TYPES = ("text/html", "application/problem+json", "text/plain")
LIMIT = 8192  # uvicorn's httptools parser takes header values this long and more

HeaderList = Sequence[tuple[str, str]] | Mapping[str, str]


# --------------------------------------------------------------------------- the site


@dataclass(frozen=True)
class Site:
    root: Path
    dist: Path
    manifest: Manifest
    sources: dict[str, bytes]

    def path(self, name: str) -> str:
        return "/static/" + self.manifest.assets[name].path

    def file(self, name: str, coding: str | None = None) -> Path:
        suffix = {None: "", "br": ".br", "gzip": ".gz"}[coding]
        return self.dist / (self.manifest.assets[name].path + suffix)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("serve_hostile")
    src = root / "src"
    (src / "css").mkdir(parents=True)
    sources = {
        "app.js": "".join(f"export const v{i} = {i};\n" for i in range(400)).encode(),
        "css/site.css": b"body { color: #123456; }\n" * 200,
        "blob.bin": secrets.token_bytes(8192).replace(CANARY[:4], b"xxxx"),
    }
    for name, data in sources.items():
        (src / name).write_bytes(data)
    build(src, root / "dist", FAST)
    # The canary: next to DIST, in its parent, and where "..%2f" spellings point.
    (root / "secret.txt").write_bytes(CANARY + b"\n")
    (root / "dist" / ".unblank" / "canary.txt").write_bytes(CANARY + b"\n")
    manifest = Manifest.loads((root / "dist" / "manifest.json").read_bytes())
    assert set(manifest.assets["app.js"].encodings) == {"br", "gzip"}
    return Site(root, root / "dist", manifest, sources)


def opened(dist: Path, **options: Any) -> StaticApp:
    """A StaticApp that stops its watcher when its ``with`` block ends."""
    return create_app(dist, reload_interval=0, **options)


@pytest.fixture(scope="module")
def app(site: Site) -> Iterator[StaticApp]:
    with opened(site.dist) as served:
        yield served


@pytest.fixture(scope="module")
def base_url(app: StaticApp) -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Reply:
    status: int
    fields: tuple[tuple[str, str], ...]
    body: bytes

    def get(self, name: str) -> str | None:
        values = [value for key, value in self.fields if key == name]
        return ", ".join(values) if values else None


def _pairs(headers: HeaderList) -> list[tuple[str, str]]:
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


def call(
    app: ASGIApp,
    method: str,
    path: str,
    headers: HeaderList = (),
    *,
    raw_path: bytes | None = None,
    pathsend: bool = False,
) -> Reply:
    """The ASGI app called with a hand-made scope; ``path`` is used as given."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in _pairs(headers)],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    if pathsend:
        scope["extensions"] = {"http.response.pathsend": {}}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    assert sent and sent[0]["type"] == "http.response.start"
    assert [m["type"] for m in sent[1:]].count("http.response.start") == 0
    body = b""
    for message in sent[1:]:
        if message["type"] == "http.response.pathsend":
            body += Path(message["path"]).read_bytes()  # what a server would send
        else:
            body += message.get("body", b"")
    assert not sent[-1].get("more_body", False)
    fields = tuple(
        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in sent[0]["headers"]
    )
    return Reply(int(sent[0]["status"]), fields, body)


def call_target(app: ASGIApp, target: bytes, headers: HeaderList = ()) -> Reply:
    """A request target as uvicorn turns it into a scope: percent-decoded path."""
    raw = target.split(b"?", 1)[0]
    return call(app, "GET", unquote(raw.decode("latin-1")), headers, raw_path=raw)


def exchange(base_url: str, request: bytes, method: str = "GET") -> Reply | None:
    """Send raw bytes to the server; the parsed answer, or None when it closed the
    connection without answering (what servers do with some malformed requests)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        finally:
            response.close()
    fields = tuple((k.lower(), v) for k, v in response.getheaders())
    return Reply(response.status, fields, body)


def wire_request(target: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --------------------------------------------------------------------------- checks


def assert_sane(reply: Reply | None, *, from_app: bool = True) -> None:
    """Never a 5xx, a traceback or the canary; every 4xx a guided page.

    ``from_app=False`` is for requests the HTTP parser itself may refuse before
    the app sees them (uvicorn then answers with its own plain 400, or closes)."""
    if reply is None:
        assert not from_app, "the app must answer"
        return
    assert reply.status < 500, (reply.status, reply.body[:300])
    assert CANARY not in reply.body
    assert b"Traceback" not in reply.body
    assert b"root:x:0:0" not in reply.body
    assert XSS.encode() not in reply.body
    if reply.status >= 400 and (from_app or reply.get("x-content-type-options")):
        assert_guided_any(reply)


def assert_guided_any(reply: Reply) -> None:
    """A guided page of some reason: its h1 in HTML, a problem document, or text."""
    media = (reply.get("content-type") or "").split(";")[0]
    assert media in GUIDED_TYPES, reply.get("content-type")
    assert reply.get("cache-control") == "no-store"
    assert reply.get("content-length") == str(len(reply.body))
    text = reply.body.decode("utf-8")
    if media == "text/html":
        assert any(f"<h1>{html.escape(title)}</h1>" in text for title in TITLES), text[:300]
    elif media == "application/problem+json":
        problem = json.loads(text)
        assert problem["status"] == reply.status
        assert problem["type"].startswith("/_unblank/pages/")
    else:
        assert text.splitlines()[0] in TITLES


def assert_refused(reply: Reply | None) -> None:
    """A 400 or 404 guided page: the path names no published file."""
    assert reply is not None
    assert reply.status in (400, 404), (reply.status, reply.body[:200])
    assert_sane(reply)


# =========================================================================== traversal

TRAVERSALS = [
    b"/static/../secret.txt",
    b"/static/../../secret.txt",
    b"/static/../../../../../../etc/passwd",
    b"/static/%2e%2e/secret.txt",
    b"/static/%2E%2E/%2E%2E/etc/passwd",
    b"/static/.%2e/secret.txt",
    b"/static/%252e%252e/secret.txt",  # double-encoded: a literal "%2e%2e"
    b"/static/%252e%252e%252fsecret.txt",
    b"/static/..%2fsecret.txt",
    b"/static/..%2Fsecret.txt",
    b"/static/%2e%2e%2fsecret.txt",
    b"/static/..\\secret.txt",
    b"/static/..%5csecret.txt",
    b"/static/%5c..%5csecret.txt",
    b"/static/..%255csecret.txt",
    b"/static/%00",
    b"/static/secret.txt%00.js",
    b"/static/..%00/secret.txt",
    b"//etc/passwd",
    b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd",
    b"/static/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dots
    b"/static/%c0%ae%c0%ae%c0%afsecret.txt",
    b"/static/%e0%80%ae%e0%80%ae/secret.txt",
    b"/static/%c1%9c..%c1%9csecret.txt",
    b"/static/%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt",  # fullwidth U+FF0E U+FF0E U+FF0F
    b"/static/%ef%bc%8e%ef%bc%8e/secret.txt",
    b"/static/%e2%80%a5/secret.txt",  # "‥" two dot leader
    b"/static/%u002e%u002e/secret.txt",  # IIS-style
    b"/static/./secret.txt",
    b"/static/css/../../secret.txt",
    b"/static/.unblank/canary.txt",
    b"/static/.unblank/../../secret.txt",
    b"/_unblank/../secret.txt",
    b"/_unblank/pages/../../secret.txt",
    b"/_unblank/pages/%2e%2e%2f%2e%2e%2fsecret.txt",
    b"/static/..;/secret.txt",
    b"/static/%2e%2e;/secret.txt",
    b"/static/...../secret.txt",
    b"/static/~/secret.txt",
    b"/static/%ZZ%2e%2e/secret.txt",  # invalid percent-encoding
    b"/static/" + b"../" * 200 + b"etc/passwd",
    b"/static/" + b"a" * 4000,
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=lambda t: t.decode()[:60])
def test_traversal_over_http_refused(base_url: str, target: bytes) -> None:
    for accept in (b"text/html", b"application/json", b"text/plain"):
        assert_refused(exchange(base_url, wire_request(target, [(b"Accept", accept)])))


@pytest.mark.parametrize("target", TRAVERSALS, ids=lambda t: t.decode()[:60])
def test_traversal_in_process_refused(app: StaticApp, target: bytes) -> None:
    assert_refused(call_target(app, target))
    assert_refused(call_target(app, target, {"accept": "application/json"}))


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/..\\..\\secret.txt",
        "/static/\\..\\secret.txt",
        "/static/app.js\x00",
        "/static/\x00/../secret.txt",
        "/static/\ufffd\ufffd/secret.txt",
        "/static/\udcc0\udcae\udcc0\udcae/secret.txt",  # undecodable bytes, surrogate-escaped
        "/static/\uff0e\uff0e\uff0fsecret.txt",  # fullwidth look-alikes
        "/static/\uff0fetc\uff0fpasswd",
        "/static//etc/passwd",
        "/static/C:\\Windows\\win.ini",
        "/static/\u202e/secret.txt",
        "/static/\r\nX-Injected: 1",
        "static/secret.txt",  # no leading slash: no server sends it, the app must cope
        "",
        "*",
        "/static",
        "/static/",
        "/_unblank/",
        "/_unblank",
        "/_unblank/pages/<script>ubxss</script>",
    ],
)
def test_traversal_scope_paths_refused(app: StaticApp, path: str) -> None:
    """Scopes no HTTP client could produce: the app answers them all the same."""
    for method in ("GET", "HEAD"):
        reply = call(app, method, path)
        assert reply.status in (400, 404), (path, reply.status)
        if method == "GET":
            assert_sane(reply)
        else:
            assert reply.body == b""
        assert all("\r" not in v and "\n" not in v for _, v in reply.fields)


def test_traversal_absolute_form_target(base_url: str) -> None:
    for target in (b"http://evil.example/../secret.txt", b"http://127.0.0.1/static/../secret.txt"):
        assert_sane(exchange(base_url, wire_request(target)), from_app=False)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /static/../secret.txt HTTP/1.0\r\n\r\n",
        b"GET \\static\\..\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /static/\xef\xbc\x8e\xef\xbc\x8e/secret.txt HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n",  # raw UTF-8 in the target
        b"GET /static/\xc0\xae\xc0\xae/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /static/%00 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\x01\r\nConnection: close\r\n\r\n",
    ],
)
def test_traversal_malformed_requests_on_the_wire(base_url: str, request_bytes: bytes) -> None:
    assert_sane(exchange(base_url, request_bytes), from_app=False)


# =========================================================================== dotfiles and folders


@pytest.mark.parametrize(
    "relative",
    [
        ".unblank/cache.json",
        ".unblank/lock",
        ".unblank/written.jsonl",
        ".unblank/canary.txt",
        ".unblank",
        "manifest.json",
        "manifests",
        "manifests/{generation}.json",
        "{app}.br",  # a variant is never a URL of its own
        "{app}.gz",
        "{app_upper}",
        "css",
        "app.js.map",
    ],
)
def test_dotfiles_and_internal_files_404(site: Site, app: StaticApp, relative: str) -> None:
    app_path = site.manifest.assets["app.js"].path
    target = "/static/" + relative.format(
        generation=site.manifest.generation, app=app_path, app_upper=app_path.upper()
    )
    for reply in (call(app, "GET", target), call(app, "GET", target, {"accept": "text/plain"})):
        assert reply.status == 404, (target, reply.status)
        assert_sane(reply)
        internal = site.dist / relative.split("{", 1)[0]
        if internal.is_file() and internal.stat().st_size > 64:
            assert internal.read_bytes()[:64] not in reply.body


@pytest.mark.parametrize("target", [b"/static/", b"/static/css", b"/static/css/", b"/static"])
def test_directory_paths_refused(base_url: str, app: StaticApp, target: bytes) -> None:
    assert_refused(exchange(base_url, wire_request(target)))
    assert_refused(call_target(app, target))


def test_query_string_is_not_part_of_the_path(site: Site, base_url: str) -> None:
    target = site.path("app.js").encode() + b"?../../secret.txt"
    reply = exchange(base_url, wire_request(target))
    assert reply is not None and reply.status == 200
    assert reply.body == site.sources["app.js"]


# =========================================================================== symbolic links


def copy_site(site: Site, tmp_path: Path) -> Site:
    dist = tmp_path / "dist"
    shutil.copytree(site.dist, dist, symlinks=True)
    return Site(tmp_path, dist, site.manifest, site.sources)


def link_out(target: Path, size: int, outside: Path) -> None:
    """Replace ``target`` with a symbolic link to a canary file of the same size
    outside DIST (same size, so a size check alone would not catch it)."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes((CANARY * (size // len(CANARY) + 1))[:size])
    target.unlink()
    target.symlink_to(outside)


def test_symlink_out_of_root_refused_at_load(site: Site, tmp_path: Path) -> None:
    copy = copy_site(site, tmp_path)
    css = copy.manifest.assets["css/site.css"]
    link_out(copy.file("css/site.css"), css.size, tmp_path / "outside" / "site.css")
    app_js = copy.manifest.assets["app.js"]
    link_out(copy.file("app.js", "br"), app_js.encodings["br"], tmp_path / "outside" / "app.br")
    # a whole folder swapped for a link out of DIST
    blob = copy.manifest.assets["blob.bin"]
    with opened(copy.dist) as served:
        for path in (copy.path("css/site.css"), "/static/css/site.css"):
            for coding in ("identity", "br", "gzip", "br, gzip"):
                reply = call(served, "GET", path, {"accept-encoding": coding})
                assert reply.status == 404
                assert_sane(reply)
        # app.js is still served, without the br variant that points outside
        for coding, expected in (("br", None), ("br, gzip", "gzip"), ("identity", None)):
            reply = call(served, "GET", copy.path("app.js"), {"accept-encoding": coding})
            assert reply.status == 200 and reply.get("content-encoding") == expected
            assert CANARY not in reply.body
        assert call(served, "GET", copy.path("blob.bin")).body == site.sources["blob.bin"]
        assert json.loads(call(served, "GET", "/_unblank/health").body)["ready"] is True
    assert blob.size == len(site.sources["blob.bin"])


def test_symlinked_folder_out_of_root_refused(site: Site, tmp_path: Path) -> None:
    copy = copy_site(site, tmp_path)
    outside = tmp_path / "outside-css"
    shutil.copytree(copy.dist / "css", outside)
    for file in outside.iterdir():
        file.write_bytes((CANARY * (file.stat().st_size // len(CANARY) + 1))[: file.stat().st_size])
    shutil.rmtree(copy.dist / "css")
    (copy.dist / "css").symlink_to(outside, target_is_directory=True)
    with opened(copy.dist) as served:
        for coding in ("identity", "br", "gzip"):
            reply = call(served, "GET", copy.path("css/site.css"), {"accept-encoding": coding})
            assert reply.status == 404
            assert_sane(reply)


@pytest.mark.parametrize("mode", ["memory", "stream", "pathsend"])
@pytest.mark.parametrize("ranged", [False, True])
def test_symlink_swapped_in_while_serving_refused(
    site: Site, tmp_path: Path, mode: str, ranged: bool
) -> None:
    """A file replaced by a link out of DIST after the generation was loaded."""
    copy = copy_site(site, tmp_path)
    options = {} if mode == "memory" else {"memory_file_limit": 0}
    with opened(copy.dist, **options) as served:
        assert call(served, "HEAD", copy.path("app.js")).status == 200  # prepared, not loaded
        link_out(copy.file("app.js"), len(site.sources["app.js"]), tmp_path / "out" / "app.js")
        headers = {"range": "bytes=0-99"} if ranged else {}
        reply = call(served, "GET", copy.path("app.js"), headers, pathsend=mode == "pathsend")
        assert reply.status == 404, reply.status
        assert_sane(reply)
        # the coded variants are still the real files
        br = call(served, "GET", copy.path("app.js"), {"accept-encoding": "br"})
        assert br.status == 200 and CANARY not in br.body


@pytest.mark.parametrize("mode", ["memory", "stream", "pathsend"])
def test_file_removed_while_serving_is_404(site: Site, tmp_path: Path, mode: str) -> None:
    copy = copy_site(site, tmp_path)
    options = {} if mode == "memory" else {"memory_file_limit": 0}
    with opened(copy.dist, **options) as served:
        copy.file("blob.bin").unlink()
        reply = call(served, "GET", copy.path("blob.bin"), pathsend=mode == "pathsend")
        assert reply.status == 404
        assert_sane(reply)


# =========================================================================== nothing read outside


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path opened through os.open, io.open or open while the test runs."""
    seen: list[str] = []

    def spy(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, bytes, os.PathLike)):
                seen.append(os.fsdecode(file))
            return original(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(os, "open", spy(os.open))
    monkeypatch.setattr(io, "open", spy(io.open))
    monkeypatch.setattr(builtins, "open", spy(builtins.open))
    return seen


def test_nothing_outside_dist_is_opened(site: Site, tmp_path: Path, opens: list[str]) -> None:
    copy = copy_site(site, tmp_path)
    link_out(copy.file("css/site.css"), len(site.sources["css/site.css"]), tmp_path / "o.css")
    allowed = [
        os.path.realpath(copy.dist),
        os.path.realpath(Path(unblank_pages.__file__).parent),  # page templates
        os.path.realpath(sys.prefix),
        os.path.realpath(sys.base_prefix),
    ]
    opens.clear()  # what setting up the copy opened does not count
    for options in ({}, {"memory_file_limit": 0}):
        with opened(copy.dist, **options) as served:
            for name in copy.manifest.assets:
                for coding in ("identity", "br", "gzip"):
                    for pathsend in (False, True):
                        call(
                            served,
                            "GET",
                            copy.path(name),
                            {"accept-encoding": coding},
                            pathsend=pathsend,
                        )
                call(served, "GET", copy.path(name), {"range": "bytes=0-9,20-29"})
            for target in TRAVERSALS:
                call_target(served, target)
                call_target(served, target, {"accept": "text/plain"})
    assert opens, "the spy saw nothing: it is not watching"
    outside = [
        p
        for p in opens
        if not any(os.path.realpath(p).startswith(root + os.sep) for root in allowed)
    ]
    assert outside == []
    assert not any("secret" in p or p.endswith("o.css") for p in opens)


# =========================================================================== hostile fields


HOSTILE_FIELDS: list[tuple[str, str]] = [
    ("range", "bytes=" + "0-1," * 3000),
    ("range", "bytes=" + "9" * 5000 + "-"),
    ("range", "bytes=-" + "9" * 5000),
    ("range", "bytes=" + "-" * 5000),
    ("range", "bytes=0-0" + "," * 5000),
    ("range", "bytes=\xef\xbc\x91-\xef\xbc\x92"),  # fullwidth digits, as latin-1
    ("range", "bytes=0-18446744073709551616"),
    ("range", "bytes=18446744073709551615-"),
    ("range", "bytes=-18446744073709551616"),
    ("range", "bytes=0--1"),
    ("range", "bytes=1-0,0-1"),
    ("range", "=" * 100),
    ("range", "bytes=0-1;q=0.5"),
    ("if-range", '"' * LIMIT),
    ("if-range", "W/" * 3000),
    ("if-none-match", '"' * LIMIT),
    ("if-none-match", "W/" * 3000),
    ("if-none-match", '"a",' * 3000),
    ("if-none-match", "*" + "," * 5000),
    ("if-none-match", ", " * 5000),
    ("if-match", '"a", ' * 3000),
    ("if-match", "W/" * 3000 + '"'),
    ("if-modified-since", "x" * 10000),
    ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT" + " " * 5000),
    ("if-modified-since", "Mon, 99 Foo 99999 99:99:99 GMT"),
    ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 +99999999999999999999"),
    ("if-modified-since", "\xff\xfe\xfd"),
    ("if-modified-since", "Fri, 31 Dec 9999 23:59:59 -2359"),
    ("if-unmodified-since", "Thu, 01 Jan 0001 00:00:00 GMT"),
    ("if-unmodified-since", "0" * 10000),
    ("accept-encoding", "br;q=" + "0" * 10000),
    ("accept-encoding", ",".join(["gzip"] * 3000)),
    ("accept-encoding", "*;q=0." + "1" * 100),
    ("accept-encoding", ";" * 10000),
    ("accept-encoding", "\xff\xfe"),
    ("accept-encoding", "br;q=1e309"),
    ("accept-encoding", "br;q=NaN, gzip;q=-1"),
    ("accept", "text/html;" * 3000),
    ("accept", "*/*;q=" + "9" * 1000),
    ("accept", "application/json;q=0.5;q=NaN"),
    ("accept", "/" * 10000),
    ("accept", "\xff/\xfe"),
    ("accept-language", "zh-" * 3000),
    ("accept-language", "*;q=0"),
    ("accept-language", "en-" + "a" * 10000),
    ("accept-language", "\xff\xfe;q=1"),
    ("accept-language", "../../etc/passwd"),
    ("accept-language", "zh-Hans;q=0.5, zh-Hans;q=NaN"),
    ("x-request-id", f'"><script>alert("{XSS}")</script>'),
    ("x-request-id", f"</code><img src=x onerror={XSS}>"),
    ("x-request-id", f'abc", "type": "{XSS}'),
    ("x-request-id", f"a{XSS}" * 30),  # well-formed but longer than 128 characters
    ("x-request-id", "\xff" * 100),
    ("x-request-id", "x" * 10000),
]
FIELD_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(HOSTILE_FIELDS)]
FIELD_TARGETS = ["app", "blob", "logical", "missing", "manifest", "page"]


def field_target(site: Site, which: str) -> str:
    return {
        "app": site.path("app.js"),
        "blob": site.path("blob.bin"),
        "logical": "/static/app.js",
        "missing": "/static/missing.0123456789ab.js",
        "manifest": "/_unblank/manifest.json",
        "page": "/_unblank/pages/not-found",
    }[which]


@pytest.mark.parametrize(("name", "value"), HOSTILE_FIELDS, ids=FIELD_IDS)
def test_hostile_fields_in_process(site: Site, app: StaticApp, name: str, value: str) -> None:
    for which in FIELD_TARGETS:
        for extra in ({}, {"accept-encoding": "br, gzip"}, {"range": "bytes=0-9"}):
            headers = [*extra.items(), (name, value)]
            assert_sane(call(app, "GET", field_target(site, which), headers))
            head = call(app, "HEAD", field_target(site, which), headers)
            assert head.status < 500 and head.body == b""


@pytest.mark.parametrize(("name", "value"), HOSTILE_FIELDS, ids=FIELD_IDS)
def test_hostile_fields_over_http(site: Site, base_url: str, name: str, value: str) -> None:
    for which in ("app", "missing"):
        target = field_target(site, which).encode()
        request = wire_request(target, [(name.encode(), value.encode("latin-1"))])
        assert_sane(exchange(base_url, request))


def test_hostile_fields_repeated(site: Site, app: StaticApp) -> None:
    headers = [(name, value) for name, value in HOSTILE_FIELDS for _ in range(2)]
    for which in FIELD_TARGETS:
        assert_sane(call(app, "GET", field_target(site, which), headers))


def test_hostile_many_fields_over_http(site: Site, base_url: str) -> None:
    fields = [(b"If-None-Match", b'"x%d"' % i) for i in range(200)]
    fields += [(b"Range", b"bytes=%d-%d" % (i, i)) for i in range(50)]
    reply = exchange(base_url, wire_request(site.path("app.js").encode(), fields))
    assert_sane(reply)
    assert reply is not None and reply.status == 200  # too many ranges: the whole file


def test_request_id_payload_never_reflected(app: StaticApp) -> None:
    payload = f"<svg onload={XSS}>"
    for accept in ("text/html", "application/json", "text/plain"):
        reply = call(app, "GET", "/static/nope.js", {"accept": accept, "x-request-id": payload})
        assert reply.status == 404
        assert_sane(reply)
        assert b"<svg onload" not in reply.body
