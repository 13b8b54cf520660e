"""The edge: ``examples/nginx/nginx.conf.template`` in a real nginx on 127.0.0.1.

In front of a real ``unblank serve`` process (the asset origin) and a small
app backend whose shell is :class:`unblank.Shell`'s, nginx is shown to:

- store fingerprinted files: a MISS, then a HIT with the same bytes, for br,
  gzip and identity separately (each decoded body matches the manifest's SRI);
  browsers' Accept-Encoding strings share those three copies; a Range request
  is cut from the identity copy; an answer to a conditional request is never
  stored (nginx would otherwise serve that bodiless 304 to everyone);
- never store what the origin marks ``no-cache`` (logical names, the manifest,
  the shell): every request reaches the origin, and a conditional one comes
  back 304 from it;
- after a deploy, show the new generation (manifest, logical name, shell) on
  the very next request, while old fingerprinted files are still served;
- with the origin stopped, keep serving the files it holds and answer the
  rest with the exported ``upstream`` page (502, ``no-store``);
- replace the app's own 503 with the exported ``overloaded`` page, and keep
  the origin's metrics private.
"""

from __future__ import annotations

import gzip
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import unblank_command
from tests.realserver import serve_in_thread
from unblank import Manifest, Shell, integrity
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings

pytestmark = [pytest.mark.nginx, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "examples" / "nginx" / "nginx.conf.template"
NGINX = Path("/usr/sbin/nginx")
SOURCE_ROOTS = ("sdk", "static_server", "fallback_pages")
PLACEHOLDER = re.compile(r"@[A-Z]+@")
START_TIMEOUT = 20.0  # seconds; `unblank serve` imports uvicorn, nginx starts in milliseconds
STOP_TIMEOUT = 10.0
RELOAD = 0.1  # seconds between the origin's looks at DIST
NEW_GENERATION_TIMEOUT = 10.0  # the longest the origin may take to load a new generation
FAST = BuildOptions(compression=CompressionSettings(brotli_quality=5, gzip_level=6), jobs=1)
CODINGS = ("br", "gzip", "identity")
# What browsers send, and the copy the edge answers it with.
BROWSER_STRINGS = {
    "gzip, deflate, br, zstd": "br",  # Chromium
    "gzip, deflate, br": "br",  # Firefox, Safari
    "br;q=0, gzip": "gzip",
    "deflate": "identity",
}

RunUnblank = Callable[..., "subprocess.CompletedProcess[str]"]


# --------------------------------------------------------------------------- the sources


def write_sources(src: Path, version: int) -> None:
    """A front end whose app.js and app.css change with ``version``; lib.js never does.

    Files are large and repetitive enough for br and gzip variants to be written.
    """
    (src / "js").mkdir(parents=True, exist_ok=True)
    (src / "css").mkdir(exist_ok=True)
    (src / "js" / "app.js").write_text(
        f'import {{ lib }} from "./lib.js";\nexport const version = {version};\n'
        + f"// the application, version {version}\n" * 60
    )
    (src / "js" / "lib.js").write_text("export const lib = 'unchanged';\n" * 60)
    (src / "css" / "app.css").write_text(f"main {{ --version: {version}; }}\n" * 60)


def publish(src: Path, dist: Path, version: int) -> Manifest:
    """Run the real builder on ``version`` of the sources; the manifest it published."""
    write_sources(src, version)
    result = build(src, dist, FAST)
    assert result.published
    return Manifest.loads((dist / "manifest.json").read_bytes())


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: httpx.Headers
    raw: bytes  # the body as sent, still encoded

    @property
    def cache(self) -> str | None:
        status: str | None = self.headers.get("x-cache-status")
        return status

    def decoded(self) -> bytes:
        coding = self.headers.get("content-encoding", "identity")
        if coding == "br":
            return bytes(brotli.decompress(self.raw))
        if coding == "gzip":
            return gzip.decompress(self.raw)
        assert coding == "identity", f"unexpected Content-Encoding {coding!r}"
        return self.raw

    @property
    def text(self) -> str:
        return self.decoded().decode("utf-8")


def fetch(url: str, **headers: str) -> Reply:
    """GET ``url`` with exactly these headers (Accept-Encoding: identity unless given)."""
    sent = {"accept-encoding": "identity"} | {k.replace("_", "-"): v for k, v in headers.items()}
    with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=sent) as response:
        return Reply(response.status_code, response.headers, b"".join(response.iter_raw()))


# --------------------------------------------------------------------------- the origin


@dataclass
class Origin:
    """A running ``unblank serve DIST``; its JSON access log goes to ``log``."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def requests(self, path: str) -> list[dict[str, Any]]:
        """The access-log records of requests for ``path``, oldest first."""
        records = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            if line.startswith("{"):
                record: dict[str, Any] = json.loads(line).get("http", {})
                if record.get("path") == path:
                    records.append(record)
        return records

    def generation(self) -> str:
        body = httpx.get(f"{self.url}/_unblank/manifest.json", timeout=5).content
        return Manifest.loads(body).generation

    def wait_for_generation(self, generation: str) -> None:
        deadline = time.monotonic() + NEW_GENERATION_TIMEOUT
        while self.generation() != generation:
            if time.monotonic() > deadline:
                pytest.fail(f"the origin did not load {generation} in {NEW_GENERATION_TIMEOUT}s")
            time.sleep(RELOAD / 2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    roots = [str(REPO_ROOT / root) for root in SOURCE_ROOTS]
    env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _output(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@contextmanager
def running_origin(dist: Path, logs: Path) -> Iterator[Origin]:
    port = free_port()
    log, errors = logs / "origin.log", logs / "origin.err"
    serve = ["serve", str(dist), "--port", str(port), "--reload-interval", str(RELOAD)]
    with log.open("wb") as out, errors.open("wb") as err:
        process = subprocess.Popen(
            [*unblank_command(), *serve],
            stdout=out,
            stderr=err,
            env=_environment(),
            start_new_session=True,  # stopped as one process group
        )
    origin = Origin(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"unblank serve exited {process.returncode}:\n{_output(errors)}")
            try:
                if httpx.get(f"{origin.url}/_unblank/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"unblank serve was not healthy within {START_TIMEOUT}s")
            time.sleep(0.05)
        yield origin
    finally:
        origin.stop()


# --------------------------------------------------------------------------- the app backend


def shell_app(dist: Path) -> Starlette:
    """An app backend: its shell names the current generation's files (unblank.Shell)."""
    shell = Shell(manifest=lambda: Manifest.loads((dist / "manifest.json").read_bytes()))

    async def index(request: Request) -> Response:
        html = (
            "<!doctype html><html><head><title>app</title>"
            f"{shell.asset_tag('css/app.css')}{shell.asset_tag('js/app.js')}"
            "</head><body><main id='app'></main></body></html>"
        )
        return shell.response(html, request)

    async def busy(request: Request) -> Response:
        return Response("app says: busy", status_code=503, headers={"Retry-After": "7"})

    return Starlette(routes=[Route("/", index), Route("/busy", busy)])


# --------------------------------------------------------------------------- nginx


def render_config(*, listen: str, origin: str, app: str, cache: Path, pages: Path) -> str:
    """The template with its placeholders filled, as the README's `sed` line does."""
    text = TEMPLATE.read_text(encoding="utf-8")
    for name, value in {
        "@LISTEN@": listen,
        "@ORIGIN@": origin,
        "@APP@": app,
        "@CACHE@": str(cache),
        "@PAGES@": str(pages),
    }.items():
        assert name in text, f"{TEMPLATE} has no {name}"
        text = text.replace(name, value)
    left = sorted(set(PLACEHOLDER.findall(text)))
    assert not left, f"placeholders left unfilled in {TEMPLATE}: {left}"
    return text


def _globals() -> str:
    # As root, nginx hands requests to workers running as "nobody", who cannot
    # read pytest's private temporary folders: keep the workers as this user.
    user = f" user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    return "daemon off;" + user


@contextmanager
def running_nginx(prefix: Path, port: int) -> Iterator[None]:
    if not NGINX.is_file():
        pytest.fail(
            f"{NGINX} is missing: the edge tests start a real nginx. Run `make test` "
            "(scripts/system-deps.sh installs it) or `apt-get install nginx`.",
            pytrace=False,
        )
    conf, errors = prefix / "nginx.conf", prefix / "error.log"
    with (prefix / "nginx.out").open("wb") as out:
        process = subprocess.Popen(
            [NGINX, "-p", f"{prefix}/", "-c", str(conf), "-e", str(errors), "-g", _globals()],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                output = _output(prefix / "nginx.out") + _output(errors)
                pytest.fail(f"nginx exited {process.returncode}:\n{output}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} in {START_TIMEOUT}s")
                time.sleep(0.02)
        yield
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """nginx at ``url`` in front of ``origin`` (files) and an app backend (the shell)."""

    url: str
    src: Path
    dist: Path
    origin: Origin
    manifest: Manifest  # the first generation

    def get(self, path: str, **headers: str) -> Reply:
        return fetch(self.url + path, **headers)

    def file(self, name: str, manifest: Manifest | None = None) -> str:
        """The fingerprinted URL path of logical ``name``."""
        return "/static/" + (manifest or self.manifest).asset(name).path


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, run_unblank: RunUnblank) -> Path:
    """`unblank pages export OUT`, as the README runs it."""
    out = tmp_path_factory.mktemp("edge") / "pages"
    done = run_unblank("pages", "export", out, "--quiet")
    assert done.returncode == 0, done.stderr
    return out.resolve()


@contextmanager
def running_stack(root: Path, pages: Path) -> Iterator[Stack]:
    src, dist, prefix = root / "src", root / "dist", root / "nginx"
    prefix.mkdir(parents=True)
    manifest = publish(src, dist, 1)
    with ExitStack() as stack:
        origin = stack.enter_context(running_origin(dist, root))
        app_url = stack.enter_context(serve_in_thread(shell_app(dist)))
        port = free_port()
        config = render_config(
            listen=f"127.0.0.1:{port}",
            origin=origin.url.removeprefix("http://"),
            app=app_url.removeprefix("http://"),
            cache=prefix / "cache",
            pages=pages,
        )
        (prefix / "nginx.conf").write_text(config, encoding="utf-8")
        stack.enter_context(running_nginx(prefix, port))
        yield Stack(f"http://127.0.0.1:{port}", src, dist, origin, manifest)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, pages: Path) -> Iterator[Stack]:
    """One stack for the tests that only read; each asks for files no other test asks for."""
    with running_stack(tmp_path_factory.mktemp("edge"), pages) as stack:
        yield stack


@pytest.fixture
def own_edge(tmp_path: Path, pages: Path) -> Iterator[Stack]:
    """A stack of its own, for a test that deploys or stops the origin."""
    with running_stack(tmp_path, pages) as stack:
        yield stack


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("coding", CODINGS)
def test_edge_fingerprinted_file_is_a_hit_with_the_same_bytes(edge: Stack, coding: str) -> None:
    asset = edge.manifest.asset("js/app.js")
    assert set(asset.encodings) == {"br", "gzip"}, "the sources must compress"
    path = edge.file("js/app.js")
    first = edge.get(path, accept_encoding=coding)
    second = edge.get(path, accept_encoding=coding)
    assert (first.status, first.cache) == (200, "MISS")
    assert (second.status, second.cache) == (200, "HIT")
    for reply in (first, second):
        assert reply.headers.get("content-encoding", "identity") == coding
        assert "immutable" in reply.headers["cache-control"]
        assert reply.headers["vary"] == "Accept-Encoding"  # still there for browsers
        assert integrity.verify(reply.decoded(), asset.integrity)
    assert second.raw == first.raw
    assert second.headers["etag"] == first.headers["etag"]
    fetched = [r for r in edge.origin.requests(path) if r["encoding"] == coding]
    assert len(fetched) == 1, "the second request must not reach the origin"


@pytest.mark.parametrize(("accept_encoding", "coding"), BROWSER_STRINGS.items())
def test_edge_browser_strings_share_the_three_copies(
    edge: Stack, accept_encoding: str, coding: str
) -> None:
    path = edge.file("css/app.css")
    warm = edge.get(path, accept_encoding=coding)
    assert warm.status == 200
    reply = edge.get(path, accept_encoding=accept_encoding)
    assert (reply.status, reply.cache) == (200, "HIT")
    assert reply.headers.get("content-encoding", "identity") == coding
    assert reply.raw == warm.raw


def test_edge_asks_the_origin_for_the_coding_of_its_key(edge: Stack) -> None:
    # Asked with the browser's own header, the origin would pick gzip here and
    # nginx would store it as the br copy, for clients that take only br.
    path = edge.file("js/lib.js")
    first = edge.get(path, accept_encoding="gzip;q=1.0, br;q=0.5")
    assert (first.status, first.cache) == (200, "MISS")
    assert first.headers["content-encoding"] == "br"  # acceptable to that client too
    reply = edge.get(path, accept_encoding="br")
    assert (reply.status, reply.cache) == (200, "HIT")
    assert reply.headers["content-encoding"] == "br"
    assert [r["encoding"] for r in edge.origin.requests(path) if r["encoding"] == "br"] == ["br"]


def test_edge_range_is_cut_from_the_identity_copy(edge: Stack) -> None:
    asset = edge.manifest.asset("js/lib.js")
    path = edge.file("js/lib.js")
    whole = edge.get(path)
    reply = edge.get(path, accept_encoding="br, gzip", range="bytes=7-20")
    assert (reply.status, reply.cache) == (206, "HIT")
    assert "content-encoding" not in reply.headers
    assert reply.headers["content-range"] == f"bytes 7-20/{asset.size}"
    assert reply.raw == whole.raw[7:21]


def test_edge_answer_to_a_conditional_request_is_not_stored(edge: Stack) -> None:
    path = edge.file("js/lib.js")
    etag = fetch(edge.origin.url + path, accept_encoding="gzip").headers["etag"]
    conditional = edge.get(path, accept_encoding="gzip", if_none_match=etag)
    assert (conditional.status, conditional.raw) == (304, b"")
    # Had nginx stored that 304, this would be an empty body: a white screen.
    reply = edge.get(path, accept_encoding="gzip")
    assert reply.status == 200
    assert integrity.verify(reply.decoded(), edge.manifest.asset("js/lib.js").integrity)
    assert edge.get(path, accept_encoding="gzip", if_none_match=etag).status == 304


# --------------------------------------------------------------------------- no-cache answers


@pytest.mark.parametrize("path", ["/static/js/lib.js", "/_unblank/manifest.json"])
def test_edge_no_cache_answers_reach_the_origin_every_time(edge: Stack, path: str) -> None:
    before = len(edge.origin.requests(path))
    first = edge.get(path, accept_encoding="br")
    again = edge.get(path, accept_encoding="br")
    assert first.status == again.status == 200
    assert first.headers["cache-control"].startswith("no-cache")
    assert (first.cache, again.cache) == ("MISS", "MISS"), "never stored"
    revalidated = edge.get(path, accept_encoding="br", if_none_match=first.headers["etag"])
    assert (revalidated.status, revalidated.raw) == (304, b"")
    assert [r["status"] for r in edge.origin.requests(path)[before:]] == [200, 200, 304]


def test_edge_shell_is_revalidated_by_the_app(edge: Stack) -> None:
    first = edge.get("/")
    assert (first.status, first.cache) == (200, "MISS")
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["x-unblank-generation"] == edge.manifest.generation
    again = edge.get("/", if_none_match=first.headers["etag"])
    assert (again.status, again.raw) == (304, b"")


# --------------------------------------------------------------------------- deploys


def test_edge_new_generation_reaches_browsers_at_once(own_edge: Stack) -> None:
    old = own_edge.manifest
    old_app, old_lib = own_edge.file("js/app.js"), own_edge.file("js/lib.js")
    shell = own_edge.get("/", accept_encoding="gzip")
    assert old_app in shell.text
    assert own_edge.get(old_app, accept_encoding="br").status == 200  # now stored
    logical = own_edge.get("/static/js/app.js")
    assert "version = 1;" in logical.text

    new = publish(own_edge.src, own_edge.dist, 2)
    assert new.generation != old.generation
    own_edge.origin.wait_for_generation(new.generation)

    # The first request after the origin has it: nothing stale at the edge.
    manifest = Manifest.loads(own_edge.get("/_unblank/manifest.json").decoded())
    assert manifest.generation == new.generation
    assert "version = 2;" in own_edge.get("/static/js/app.js", accept_encoding="br").text
    shell = own_edge.get("/", accept_encoding="gzip", if_none_match=shell.headers["etag"])
    assert shell.status == 200, "the old shell's ETag must not match the new shell"
    assert shell.headers["x-unblank-generation"] == new.generation
    assert own_edge.file("js/app.js", new) in shell.text
    assert old_app not in shell.text
    # A tab opened before the deploy still gets every file it asks for.
    kept = own_edge.get(old_app, accept_encoding="br")
    assert (kept.status, kept.cache) == (200, "HIT")
    assert integrity.verify(kept.decoded(), old.asset("js/app.js").integrity)
    unchanged = own_edge.get(old_lib, accept_encoding="gzip")
    assert unchanged.status == 200
    assert integrity.verify(unchanged.decoded(), new.asset("js/lib.js").integrity)


# --------------------------------------------------------------------------- failures


def test_edge_origin_down_serves_stored_files_and_the_upstream_page(own_edge: Stack) -> None:
    stored = own_edge.file("js/app.js")
    warm = own_edge.get(stored, accept_encoding="br")
    assert warm.status == 200
    own_edge.origin.stop()

    reply = own_edge.get(stored, accept_encoding="br")
    assert reply.status == 200
    assert reply.cache in ("HIT", "STALE")
    assert reply.raw == warm.raw
    for path in (own_edge.file("css/app.css"), "/static/js/app.js", "/_unblank/manifest.json"):
        page = own_edge.get(path, accept_encoding="br", accept_language="en")
        assert page.status == 502, path
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-store"
        assert 'data-reason="upstream"' in page.text
        assert f"<code>{page.headers['x-request-id']}</code>" in page.text
        assert "<center>nginx" not in page.text  # nginx's own error page
    # The app backend is up: its shell still comes, naming files the edge holds.
    assert own_edge.get("/").status == 200


def test_edge_app_overload_becomes_the_overloaded_page(edge: Stack) -> None:
    page = edge.get("/busy", accept_language="zh-CN")
    assert page.status == 503
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["retry-after"] == "7"  # the app's, passed on
    assert 'data-reason="overloaded"' in page.text
    assert 'lang="zh-Hans"' in page.text
    assert "app says: busy" not in page.text


def test_edge_keeps_metrics_private(edge: Stack) -> None:
    assert fetch(edge.origin.url + "/_unblank/metrics").status == 200
    assert edge.get("/_unblank/metrics").status == 404


def test_edge_template_has_every_placeholder_documented() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    readme = (TEMPLATE.parent / "README.md").read_text(encoding="utf-8")
    for name in sorted(set(PLACEHOLDER.findall(text))):
        assert name in readme, f"{name} is not explained in examples/nginx/README.md"
