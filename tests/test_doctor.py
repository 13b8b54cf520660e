"""``unblank doctor URL``: a correct deployment has no findings; each risk is found.

The correct deployment is real: ``unblank build`` of a small front end served
by ``create_app`` on one uvicorn server (the asset origin), and a Starlette
app on another rendering the shell with :class:`unblank.Shell`. Each
misconfigured deployment changes one thing — in the shell, or by wrapping
the asset origin in an ASGI layer that rewrites requests or answers the way
a badly configured CDN or proxy would — and the test asserts that exactly
the check for that risk changes verdict, and no other. Hostile input (broken
HTML, garbage integrity, compression bombs, redirects to ``file://``) goes
through ``httpx.MockTransport``; the command line runs in-process and once
as the real console script.
"""

from __future__ import annotations

import doctest
import gzip
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.realserver import serve_in_thread
from unblank import Manifest, Shell, integrity
from unblank_server.app import create_app
from unblank_server.builder import build
from unblank_server.cli import main
from unblank_server.doctor import PROBE_NAME, Doctor, DoctorSettings, Report, UnreachablePage
from unblank_server.doctor_evidence import TITLES, Check, Verdict, cache_directives
from unblank_server.doctor_fetch import BadEncoding, TooLarge, decode_body
from unblank_server.doctor_page import read_page

SOURCES = {
    "app.js": "import('./lazy.js');\nconsole.log('unblank doctor');\n" * 60,
    "lazy.js": "export const lazy = 'a chunk import() loads later';\n" * 40,
    "app.css": "body { color: #222; margin: 0 auto; }\n" * 60,
}
ALL_CHECKS = tuple(TITLES)
# A correct unblank deployment: every check passes; one generation, nothing to compare.
HEALTHY = dict.fromkeys(ALL_CHECKS, Verdict.PASS) | {"generations": Verdict.SKIP}

Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, Headers, bytes]  # status, headers, body
Rewrite = Callable[[Scope, int, Headers, bytes], Reply]


# --------------------------------------------------------------------------- deployments


def make_src(folder: Path, version: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SOURCES.items():
        (folder / name).write_text(text + version)
    return folder


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("doctor") / "dist"
    build(make_src(tmp_path_factory.mktemp("doctor_src")), out)
    return out


@pytest.fixture(scope="module")
def manifest(dist: Path) -> Manifest:
    return Manifest.loads((dist / "manifest.json").read_bytes())


def shell_app(
    manifest: Manifest,
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    crossorigin: str | None = "anonymous",
    integrity_attributes: bool = True,
    watchdog: bool = True,
    mirrors: tuple[str, ...] = (),
) -> Starlette:
    """The app backend: a shell rendered by unblank.Shell, sent by Shell.response."""
    shell = Shell(manifest=manifest, base_url=base_url, crossorigin=crossorigin, mirrors=mirrors)

    async def index(request: Request) -> Response:
        head = shell.unblank_head(request) if watchdog else ""
        tags = f"{shell.asset_tag('app.css')}\n{shell.asset_tag('app.js')}"
        if integrity_attributes:
            tags = f"{shell.import_map()}\n{tags}"
        else:  # as hand-written tags often are: no integrity, and no import map either
            tags = re.sub(r' integrity="[^"]*"', "", tags)
        html = f"<!doctype html><html><head>{head}\n{tags}</head><body><div id=app></div></body>"
        return shell.response(html, request, headers=headers)

    return Starlette(routes=[Route("/", index)])


class Misconfigured:
    """An ASGI layer in front of the asset origin, doing what a bad CDN or proxy does:
    ``request`` rewrites each request's headers, ``response`` each whole answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        request: Callable[[Headers], Headers] | None = None,
        response: Rewrite | None = None,
    ) -> None:
        self.app = app
        self.request = request
        self.response = response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.request is not None:
            scope = {**scope, "headers": self.request(list(scope["headers"]))}
        rewrite = self.response
        if rewrite is None:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            status, headers, new = rewrite(
                scope, start["status"], list(start["headers"]), bytes(body)
            )
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(new)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": new})

        await self.app(scope, receive, capture)


def without(headers: Headers, *names: bytes) -> Headers:
    return [(k, v) for k, v in headers if k.lower() not in names]


@contextmanager
def deployment(
    dist: Path,
    manifest: Manifest,
    *,
    request: Callable[[Headers], Headers] | None = None,
    response: Rewrite | None = None,
    cors_origin: str | None = "*",
    **shell: Any,
) -> Iterator[str]:
    """An asset origin (unblank serve, maybe behind a :class:`Misconfigured` layer) and
    a shell app; yields the page URL."""
    with create_app(dist, reload_interval=0, cors_origin=cors_origin) as assets:
        app = Misconfigured(assets, request=request, response=response)
        with serve_in_thread(app) as origin:
            backend = shell_app(manifest, f"{origin}/static/", **shell)
            with serve_in_thread(backend) as page:
                yield f"{page}/"


def examine(url: str, **settings: Any) -> Report:
    with httpx.Client(timeout=10) as client:
        return Doctor(client=client, settings=DoctorSettings(**settings)).examine(url)


def verdicts(report: Report) -> dict[str, Verdict]:
    return {check.id: check.verdict for check in report.checks}


def changed(report: Report) -> dict[str, Verdict]:
    """The checks whose verdict differs from a correct deployment's."""
    return {k: v for k, v in verdicts(report).items() if HEALTHY[k] != v}


def check(report: Report, check_id: str) -> Check:
    return next(c for c in report.checks if c.id == check_id)


# --------------------------------------------------------------------------- correct


@pytest.fixture(scope="module")
def healthy_url(dist: Path, manifest: Manifest) -> Iterator[str]:
    with deployment(dist, manifest) as url:
        yield url


def test_a_correct_unblank_deployment_has_no_findings(healthy_url: str) -> None:
    report = examine(healthy_url)
    assert verdicts(report) == HEALTHY, [c for c in report.checks if c.verdict != HEALTHY[c.id]]
    assert report.exit_status() == 0 and report.exit_status(strict=True) == 0
    # The lazy chunk only the import map names is fetched and verified too.
    names = sorted(r.name.split(".")[0] for r in report.assets)
    assert names == ["app", "app", "lazy"]
    for result in report.assets:
        assert [a.coding for a in result.answers] == ["identity", "gzip", "br"]
        assert all(a.ok and a.matches and all(a.matches.values()) for a in result.answers)
    assert "only one" in check(report, "generations").details


def test_every_check_says_what_it_found_and_passes_without_advice(healthy_url: str) -> None:
    report = examine(healthy_url)
    assert [c.id for c in report.checks] == list(ALL_CHECKS)
    for item in report.checks:
        assert item.details and item.title == TITLES[item.id]
        assert item.advice == ""


# --------------------------------------------------------------------------- one risk each


def test_assets_without_integrity_warn(dist: Path, manifest: Manifest) -> None:
    with deployment(dist, manifest, integrity_attributes=False) as url:
        report = examine(url)
    assert changed(report) == {"integrity": Verdict.WARN, "integrity-match": Verdict.SKIP}
    found = check(report, "integrity")
    assert "2 of 2 assets carry no integrity" in found.details
    assert "integrity" in found.advice and len(found.urls) == 2


def test_a_cross_origin_sri_tag_without_crossorigin_fails(dist: Path, manifest: Manifest) -> None:
    # Module scripts are CORS requests anyway; the stylesheet becomes no-cors.
    with deployment(dist, manifest, crossorigin=None) as url:
        report = examine(url)
    assert changed(report) == {"crossorigin": Verdict.FAIL}
    found = check(report, "crossorigin")
    assert "app." in found.details and "<link> line" in found.details
    assert found.urls == (next(r.ref.url for r in report.assets if r.ref.kind == "stylesheet"),)
    assert 'crossorigin="anonymous"' in found.advice


def corrupt_br_scripts(scope: Scope, status: int, headers: Headers, body: bytes) -> Reply:
    if status == 200 and scope["path"].endswith(".js") and (b"content-encoding", b"br") in headers:
        body = brotli.compress(brotli.decompress(body) + b"// tampered\n")
    return status, headers, body


def test_integrity_wrong_for_one_encoding_only_fails(dist: Path, manifest: Manifest) -> None:
    with deployment(dist, manifest, response=corrupt_br_scripts) as url:
        report = examine(url)
    assert changed(report) == {"integrity-match": Verdict.FAIL}
    found = check(report, "integrity-match")
    assert "the br bytes do not match (the identity, gzip answer matches)" in found.details
    assert len(found.urls) == 2  # app.js and the lazy chunk; the stylesheet is fine


@pytest.mark.parametrize("cache_control", ["no-cache", "public, max-age=60"])
def test_fingerprinted_files_not_immutable_warn(
    dist: Path, manifest: Manifest, cache_control: str
) -> None:
    value = cache_control.encode()

    def short_lived(scope: Scope, status: int, headers: Headers, body: bytes) -> Reply:
        if status == 200 and scope["path"].startswith("/static/"):
            headers = [*without(headers, b"cache-control"), (b"cache-control", value)]
        return status, headers, body

    with deployment(dist, manifest, response=short_lived) as url:
        report = examine(url)
    assert changed(report) == {"immutable": Verdict.WARN}
    found = check(report, "immutable")
    assert "3 of 3 fingerprinted files are not cached as immutable" in found.details
    assert cache_control in found.details and "max-age=31536000, immutable" in found.advice


def test_a_shell_cached_for_a_day_fails(dist: Path, manifest: Manifest) -> None:
    headers = {"Cache-Control": "public, max-age=86400"}
    with deployment(dist, manifest, headers=headers) as url:
        report = examine(url)
    assert changed(report) == {"shell-cache": Verdict.FAIL}
    found = check(report, "shell-cache")
    assert "cached for 1 day" in found.details and "no-cache" in found.advice


def test_compressed_answers_without_vary_fail(dist: Path, manifest: Manifest) -> None:
    def no_vary(scope: Scope, status: int, headers: Headers, body: bytes) -> Reply:
        return status, without(headers, b"vary"), body

    with deployment(dist, manifest, response=no_vary) as url:
        report = examine(url)
    assert changed(report) == {"vary": Verdict.FAIL}
    assert "6 of 6 compressed answers lack Vary" in check(report, "vary").details


def test_an_spa_fallback_for_missing_assets_fails(dist: Path, manifest: Manifest) -> None:
    def fallback(scope: Scope, status: int, headers: Headers, body: bytes) -> Reply:
        if status == 404:
            index = b"<!doctype html><html><head><title>App</title></head><body><div id=app>"
            return 200, [(b"content-type", b"text/html; charset=utf-8")], index
        return status, headers, body

    with deployment(dist, manifest, response=fallback) as url:
        report = examine(url)
    assert changed(report) == {"spa-fallback": Verdict.FAIL, "error-page": Verdict.SKIP}
    found = check(report, "spa-fallback")
    assert "answers 200 with an HTML page" in found.details
    assert found.urls[0].endswith("/static/" + PROBE_NAME)
    assert report.exit_status() == 1


def test_assets_never_compressed_warn(dist: Path, manifest: Manifest) -> None:
    def identity_only(headers: Headers) -> Headers:
        return without(headers, b"accept-encoding")

    with deployment(dist, manifest, request=identity_only) as url:
        report = examine(url)
    assert changed(report) == {"compression": Verdict.WARN, "vary": Verdict.SKIP}
    found = check(report, "compression")
    assert "3 of 3 text assets" in found.details and "br and gzip" in found.advice
    assert report.exit_status() == 0 and report.exit_status(strict=True) == 1


def test_a_cross_origin_asset_host_without_cors_headers_fails(
    dist: Path, manifest: Manifest
) -> None:
    with deployment(dist, manifest, cors_origin=None) as url:
        report = examine(url)
    assert changed(report) == {"cors": Verdict.FAIL}
    found = check(report, "cors")
    assert "3 of 3 cross-origin assets would be refused" in found.details
    assert "no Access-Control-Allow-Origin" in found.details


def identity_only(headers: Headers) -> Headers:
    return without(headers, b"accept-encoding")


@contextmanager
def mirrored_deployment(dist: Path, manifest: Manifest, mirror: Rewrite | None) -> Iterator[str]:
    """A correct origin, and a mirror (another unblank serve) that answers identity
    only, as the middleware's /_unblank/mirror/ does; the shell's import map lists
    every script under both."""
    with (
        create_app(dist, reload_interval=0, cors_origin="*") as assets,
        create_app(dist, reload_interval=0, cors_origin="*") as copies,
    ):
        copy = Misconfigured(copies, request=identity_only, response=mirror)
        with serve_in_thread(assets) as origin, serve_in_thread(copy) as mirror_url:
            mirrors = (f"{mirror_url}/static/",)
            backend = shell_app(manifest, f"{origin}/static/", mirrors=mirrors)
            with serve_in_thread(backend) as page:
                yield f"{page}/"


def test_mirror_copies_are_verified_but_judged_on_the_origin(
    dist: Path, manifest: Manifest
) -> None:
    with mirrored_deployment(dist, manifest, None) as url:
        report = examine(url)
    assert changed(report) == {}
    copies = [r for r in report.assets if r.ref.mirror_of]
    assert len(copies) == 2 and len(report.assets) == 5  # app.js and the chunk, again
    assert all(a.coding == "identity" for r in copies for a in r.answers)
    found = check(report, "compression")
    assert "(3 assets; br, gzip); 2 mirror copies at http://" in found.details
    assert "2 of them copies at the mirror" in check(report, "assets-load").details
    assert all(not r.ref.mirror_of for r in report.assets if r.ref.tags)


def corrupt_chunk(scope: Scope, status: int, headers: Headers, body: bytes) -> Reply:
    if status == 200 and scope["path"].startswith("/static/lazy."):
        body = body[:-1] + (b"?" if body[-1:] != b"?" else b"!")
    return status, headers, body


def test_a_corrupted_mirror_copy_still_fails_integrity_match(
    dist: Path, manifest: Manifest
) -> None:
    with mirrored_deployment(dist, manifest, corrupt_chunk) as url:
        report = examine(url)
    assert changed(report) == {"integrity-match": Verdict.FAIL}
    found = check(report, "integrity-match")
    (bad,) = found.urls
    mirror = next(r for r in report.assets if r.ref.url == bad)
    assert mirror.ref.mirror_of and "/static/lazy." in bad
    assert "the identity bytes do not match" in found.details


def test_a_bare_404_at_the_edge_warns(dist: Path, manifest: Manifest) -> None:
    def bare(scope: Scope, status: int, headers: Headers, body: bytes) -> Reply:
        if status == 404:
            return 404, [(b"content-type", b"text/plain")], b"Not Found"
        return status, headers, body

    with deployment(dist, manifest, response=bare) as url:
        report = examine(url)
    assert changed(report) == {"error-page": Verdict.WARN}
    found = check(report, "error-page")
    assert "a missing file gets a bare 404 (text/plain)" in found.details
    assert "unblank pages export" in found.advice


def test_a_shell_without_the_watchdog_warns(dist: Path, manifest: Manifest) -> None:
    with deployment(dist, manifest, watchdog=False) as url:
        report = examine(url)
    assert changed(report) == {"watchdog": Verdict.WARN}
    assert "unblank_head()" in check(report, "watchdog").advice


# --------------------------------------------------------------------------- generations


@pytest.fixture
def two_generations(tmp_path: Path) -> tuple[Path, Manifest, Manifest]:
    """DIST with two generations; app.js and lazy.js changed between them."""
    out = tmp_path / "dist"
    build(make_src(tmp_path / "v1"), out)
    first = Manifest.loads((out / "manifest.json").read_bytes())
    src = make_src(tmp_path / "v2")
    for name in ("app.js", "lazy.js"):
        (src / name).write_text(SOURCES[name] + "// v2\n")
    build(src, out)
    second = Manifest.loads((out / "manifest.json").read_bytes())
    assert second.generation > first.generation
    return out, first, second


def delete_files_only(old: Manifest, current: Manifest, dist: Path) -> list[str]:
    gone = sorted(old.files() - current.files())
    for path in gone:
        (dist / path).unlink()
    return gone


@contextmanager
def static_host_deployment(
    static_http_server: Callable[[Path], str], dist: Path, manifest: Manifest
) -> Iterator[str]:
    """DIST uploaded as it is to a plain static host (manifests/ included, listed)."""
    host = static_http_server(dist)
    with serve_in_thread(shell_app(manifest, f"{host}/")) as page:
        yield f"{page}/"


def test_the_previous_generation_still_served_passes(
    static_http_server: Callable[[Path], str], two_generations: tuple[Path, Manifest, Manifest]
) -> None:
    dist, first, second = two_generations
    with static_host_deployment(static_http_server, dist, second) as url:
        report = examine(url)
    found = check(report, "generations")
    assert found.verdict == Verdict.PASS, found
    assert "every file only earlier generations use is still served (2 files" in found.details
    assert first.generation in found.details


def test_an_old_generation_gone_fails(
    static_http_server: Callable[[Path], str], two_generations: tuple[Path, Manifest, Manifest]
) -> None:
    dist, first, second = two_generations
    with static_host_deployment(static_http_server, dist, second) as url:
        before = verdicts(examine(url))
        delete_files_only(first, second, dist)
        report = examine(url)
    found = check(report, "generations")
    assert found.verdict == Verdict.FAIL
    assert f"2 of 2 files of generation {first.generation} are gone" in found.details
    assert sorted(u.rsplit("/", 1)[1] for u in found.urls) == sorted(
        first.assets[name].path for name in ("app.js", "lazy.js")
    )
    assert "--delete" in found.advice
    # Everything else about this plain host is judged as before the deletion.
    after = verdicts(report)
    assert {k: v for k, v in after.items() if before[k] != v} == {"generations": Verdict.FAIL}


def test_unblank_serve_history_is_reachable_and_checked(
    two_generations: tuple[Path, Manifest, Manifest],
) -> None:
    dist, first, second = two_generations
    with deployment(dist, second) as url:
        report = examine(url)
        found = check(report, "generations")
        assert found.verdict == Verdict.PASS, found
        assert first.generation in found.details
        origin = re.search(r'src="(http://[^/]+)/static/', httpx.get(url).text)
        assert origin is not None
        history = httpx.get(f"{origin[1]}/_unblank/manifests/{first.generation}.json")
        assert history.status_code == 200
        assert Manifest.loads(history.content).generation == first.generation
        assert history.headers["access-control-allow-origin"] == "*"
        for bad in ("nope", "..%2fmanifest", "%2e%2e%2fmanifest", first.generation + "x"):
            answer = httpx.get(f"{origin[1]}/_unblank/manifests/{bad}.json")
            assert answer.status_code == 404, bad
        assert (
            httpx.post(f"{origin[1]}/_unblank/manifests/{first.generation}.json").status_code == 405
        )


# --------------------------------------------------------------------------- command line


def test_cli_json_report_and_exit_status_healthy(
    healthy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", healthy_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {
        "url",
        "page_url",
        "result",
        "exit_status",
        "strict",
        "counts",
        "requests",
        "checks",
        "assets",
        "unchecked_assets",
    }
    assert (report["result"], report["exit_status"]) == ("pass", 0)
    assert report["counts"] == {"pass": 12, "warn": 0, "fail": 0, "skip": 1}
    assert [c["id"] for c in report["checks"]] == list(ALL_CHECKS)
    for item in report["checks"]:
        assert set(item) == {"id", "title", "verdict", "details", "advice", "urls"}
        assert item["verdict"] in ("pass", "skip")
    assert {a["kind"] for a in report["assets"]} == {"stylesheet", "module", "module-chunk"}
    assert all(x["integrity_ok"] for a in report["assets"] for x in a["answers"])


def test_cli_exit_status_one_on_failure_and_text_has_a_verdict_per_check(
    dist: Path, manifest: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    with deployment(dist, manifest, cors_origin=None) as url:
        assert main(["doctor", url, "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert (report["result"], report["counts"]["fail"]) == ("fail", 1)
        failed = next(c for c in report["checks"] if c["verdict"] == "fail")
        assert failed["id"] == "cors" and failed["advice"] and failed["urls"]

        assert main(["doctor", url]) == 1
    text = capsys.readouterr().out
    for check_id in ALL_CHECKS:
        assert re.search(rf"^(PASS|WARN|FAIL|SKIP)\s+{check_id}\s+\S", text, re.M), check_id
    line = next(x for x in text.splitlines() if x.startswith("FAIL"))
    assert "cors" in line and "-> Send Access-Control-Allow-Origin" in line
    assert "result: FAIL (1 fail, 0 warn, 11 pass, 1 skip)" in text


def test_cli_warnings_fail_only_with_strict(
    dist: Path, manifest: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    with deployment(dist, manifest, watchdog=False) as url:
        assert main(["doctor", url]) == 0
        assert main(["doctor", url, "--strict", "--json"]) == 1
    out = capsys.readouterr().out
    assert "result: WARN" in out and '"result": "fail"' in out


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/", "cannot load http://127.0.0.1:9/"),  # discard: nobody listens
        ("ftp://example.com/app", "is not an http(s) URL"),
        ("example.com", "is not an http(s) URL"),
    ],
)
def test_cli_unreachable_or_bad_url_is_exit_status_two(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", url, "--json", "--timeout", "5"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.startswith("unblank doctor: error: ")
    assert json.loads(captured.out) == {
        "error": captured.err.split("error: ", 1)[1].strip(),
        "exit_status": 2,
    }


def test_cli_page_that_is_not_html_is_exit_status_two(
    healthy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", healthy_url + "missing"]) == 2
    assert "answered 404" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--timeout", "0"], ["--max-assets", "0"], ["--timeout", "x"]])
def test_cli_bad_options_are_usage_errors(option: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["doctor", "http://127.0.0.1/", *option])
    assert exc.value.code == 2


def test_the_console_script_runs_the_doctor(healthy_url: str) -> None:
    script = Path(sys.executable).parent / "unblank"
    assert script.is_file(), f"{script} missing: pip install -e . into the venv"
    done = subprocess.run(
        [str(script), "doctor", healthy_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"unblank doctor {healthy_url}")
    assert "result: PASS (0 fail, 0 warn, 12 pass, 1 skip)" in done.stdout


# --------------------------------------------------------------------------- hostile input

PAGE = "https://app.example/"
CDN = "https://cdn.example/static/"


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body
Route_ = Answer | Callable[[httpx.Request], Answer]


def mock_site(routes: Mapping[str, Route_]) -> httpx.Client:
    """A client whose transport answers ``routes`` (URL -> answer) and 404 otherwise.

    Bodies go out as streams, as a real transport gives them (read raw, decoded by us).
    """

    def handle(request: httpx.Request) -> httpx.Response:
        route = routes.get(str(request.url).split("?", 1)[0])
        if route is None:
            route = (404, {"content-type": "text/plain"}, b"gone")
        status, headers, body = route(request) if callable(route) else route
        fields = [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]  # any byte
        return httpx.Response(status, headers=fields, stream=httpx.ByteStream(body))

    return httpx.Client(transport=httpx.MockTransport(handle))


def html(body: str, **headers: str) -> Answer:
    return 200, {"content-type": "text/html", "cache-control": "no-cache", **headers}, body.encode()


def script(data: bytes, **headers: str) -> Answer:
    fields = {
        "content-type": "text/javascript",
        "cache-control": "public, max-age=31536000, immutable",
        "access-control-allow-origin": "*",
    }
    return 200, {**fields, **headers}, data


def redirect(status: int, location: str) -> Answer:
    return status, {"location": location}, b""


def run(client: httpx.Client, url: str = PAGE, **settings: Any) -> Report:
    with client:
        return Doctor(client=client, settings=DoctorSettings(**settings)).examine(url)


def test_malformed_html_and_garbage_integrity_are_findings() -> None:
    page = (
        '<html><head><base href="https://cdn.example/static/">'
        '<script src="a.0123456789ab.js" integrity="sha384-!!not base64!!" crossorigin></script>'
        '<link rel="stylesheet preload" href="b.css" integrity="md5-abc sha512-c2hvcnQ=">'
        '<script type="importmap">{"integrity": {not json</script>'
        '<script src="data:text/javascript,1"></script><script src="javascript:void 0"></script>'
        '<div <<< class="x"></p></html><!-- unterminated'
    )
    report = run(mock_site({PAGE: html(page), CDN + "a.0123456789ab.js": script(b"a")}))
    found = check(report, "integrity")
    assert found.verdict == Verdict.FAIL
    assert "a.0123456789ab.js" in found.details and "b.css" in found.details
    assert "import map is not valid JSON" in found.details
    assert [r.name for r in report.assets] == [
        "a.0123456789ab.js",
        "b.css",
    ]  # no data:, javascript:
    assert check(report, "assets-load").verdict == Verdict.FAIL  # b.css is gone


def test_integrity_mismatch_names_what_was_served() -> None:
    good = integrity.compute(b"expected")
    page = f'<script type="module" src="{CDN}m.0123456789ab.js" integrity="{good}"></script>'
    report = run(mock_site({PAGE: html(page), CDN + "m.0123456789ab.js": script(b"actual")}))
    assert check(report, "integrity-match").verdict == Verdict.FAIL
    answer = report.assets[0].identity
    assert answer.matches == {good: False} and answer.served == integrity.compute(b"actual")


def test_redirects_off_http_and_redirect_loops_are_load_failures() -> None:
    page = (
        f'<script type="module" src="{CDN}file.0123456789ab.js"></script>'
        f'<script type="module" src="{CDN}loop.0123456789ab.js"></script>'
    )
    routes: dict[str, Route_] = {
        PAGE: html(page),
        CDN + "file.0123456789ab.js": redirect(302, "file:///etc/passwd"),
        CDN + "loop.0123456789ab.js": redirect(301, "/static/loop.0123456789ab.js"),
    }
    report = run(mock_site(routes))
    found = check(report, "assets-load")
    assert found.verdict == Verdict.FAIL
    assert "file:///etc/passwd is not an http(s) URL" in found.details
    assert "more than 5 redirects" in found.details


@pytest.mark.parametrize("coding", ["br", "gzip"])
def test_a_compression_bomb_stops_at_the_limit(coding: str) -> None:
    zeros = b"\0" * (8 << 20)
    packed = brotli.compress(zeros, quality=1) if coding == "br" else gzip.compress(zeros, 1)
    assert len(packed) < 64 << 10

    def bomb(request: httpx.Request) -> Answer:
        asked = request.headers["accept-encoding"]
        if asked == "identity":
            return script(b"x")
        return script(packed, **{"content-encoding": coding, "vary": "Accept-Encoding"})

    page = f'<script type="module" src="{CDN}bomb.0123456789ab.js"></script>'
    report = run(
        mock_site({PAGE: html(page), CDN + "bomb.0123456789ab.js": bomb}), max_asset_bytes=1 << 20
    )
    found = check(report, "assets-load")
    assert found.verdict == Verdict.WARN
    assert f"the {coding} body decodes to more than 1048576 bytes" in found.details


def test_a_page_too_large_or_not_html_is_unreachable() -> None:
    big = mock_site({PAGE: html("<p>" + "x" * (2 << 20))})
    with pytest.raises(UnreachablePage, match="sends more than the 1048576 bytes"):
        run(big, max_page_bytes=1 << 20)
    as_json = mock_site({PAGE: (200, {"content-type": "application/json"}, b'{"app": 1}')})
    with pytest.raises(UnreachablePage, match="application/json, not an HTML page"):
        run(as_json)


def test_huge_and_odd_headers_are_read_not_trusted() -> None:
    odd = "max-age=99999999999999999999999, " * 2000 + "immutable"
    page = f'<script type="module" src="{CDN}h.0123456789ab.js"></script>'
    routes: dict[str, Route_] = {
        PAGE: html(page, **{"cache-control": "max-age=abc, s-maxage=-1"}),
        CDN + "h.0123456789ab.js": script(
            b"h", **{"cache-control": odd, "access-control-allow-origin": "a, b"}
        ),
    }
    report = run(mock_site(routes))
    assert check(report, "shell-cache").verdict == Verdict.PASS  # max-age 0: always revalidated
    assert check(report, "immutable").verdict == Verdict.PASS
    assert "is 'a, b'" in check(report, "cors").details


def test_sri_without_crossorigin_on_a_host_without_cors_fails_cors_too() -> None:
    css = b"body { margin: 0 }\n"
    sri = integrity.compute(css)
    page = f'<link rel="stylesheet" href="{CDN}s.0123456789ab.css" integrity="{sri}">'
    asked: list[str] = []

    def stylesheet(request: httpx.Request) -> Answer:
        asked.append(request.headers.get("origin", ""))
        return 200, {"content-type": "text/css", "cache-control": "max-age=31536000"}, css

    report = run(mock_site({PAGE: html(page), CDN + "s.0123456789ab.css": stylesheet}))
    assert check(report, "crossorigin").verdict == Verdict.FAIL
    assert "Access-Control-Allow-Origin" in check(report, "crossorigin").advice
    found = check(report, "cors")
    assert found.verdict == Verdict.FAIL
    assert "no Access-Control-Allow-Origin (its tag needs crossorigin too" in found.details
    assert set(asked) == {"https://app.example"}  # asked as a CORS request would be


def test_a_page_without_assets_skips_what_it_cannot_judge() -> None:
    report = run(mock_site({PAGE: html("<h1>static</h1>")}))
    skipped = {c.id for c in report.checks if c.verdict == Verdict.SKIP}
    assert {"assets-load", "integrity", "integrity-match", "immutable"} <= skipped
    assert report.unchecked == 0 and report.exit_status() == 0


def test_max_assets_bounds_the_work() -> None:
    tags = "".join(
        f'<script type="module" src="{CDN}c{i}.0123456789ab.js"></script>' for i in range(30)
    )
    report = run(mock_site({PAGE: html(tags)}), max_assets=5)
    assert len(report.assets) == 5 and report.unchecked == 25
    assert "25 more assets not checked" in check(report, "assets-load").details


def test_decode_body_refuses_what_browsers_would() -> None:
    with pytest.raises(BadEncoding, match="cut short"):
        decode_body(gzip.compress(b"x" * 1000)[:-12], "gzip", 1 << 20)
    with pytest.raises(BadEncoding, match="not one unblank doctor reads"):
        decode_body(b"x", "compress", 1 << 20)
    with pytest.raises(BadEncoding, match="does not decode"):
        decode_body(b"not brotli at all", "br", 1 << 20)
    with pytest.raises(TooLarge):
        decode_body(gzip.compress(b"y" * 5000), "gzip", 4999)
    assert decode_body(gzip.compress(brotli.compress(b"z")), "br, gzip", 10) == b"z"


def test_read_page_resolves_urls_and_finds_the_watchdog() -> None:
    page = read_page(
        '<base href="/app/"><template id="unblank-fallback"></template>'
        "<script>window.unblank = {}</script>"
        '<script nomodule src="legacy.js"></script><script type="text/plain" src="x.txt"></script>'
        '<link rel="modulepreload" href="m.js" crossorigin="use-credentials">'
        '<link rel="preload" as="style" href="s.css#frag" crossorigin="bogus">'
        '<link rel="alternate stylesheet" href="alt.css">',
        "https://site.example/deep/page",
    )
    assert page.watchdog_script and page.fallback_template
    assert [(t.kind, t.url, t.crossorigin) for t in page.tags] == [
        ("modulepreload", "https://site.example/app/m.js", "use-credentials"),
        ("preload-style", "https://site.example/app/s.css", "anonymous"),
    ]


def test_cache_directives_parse_loosely() -> None:
    assert cache_directives("No-Cache, MAX-AGE=5, max-age=9, ,") == {"no-cache": "", "max-age": "5"}


def test_unusable_urls_in_tags_are_reported_not_raised() -> None:
    page = (
        '<base href="http://[broken/">'
        '<script src="http://cdn.example:99999/a.js"></script>'
        '<link rel="stylesheet" href="http://[::1/b.css">'
        '<script type="importmap">{"integrity": {"http://[x/": "sha384-x", "/ok.js": 5}}</script>'
    )
    report = run(mock_site({PAGE: html(page)}))
    assert report.assets == ()
    found = check(report, "integrity")
    assert found.verdict == Verdict.SKIP  # no asset left to judge
    parsed = read_page(page, PAGE)
    assert len(parsed.problems) == 2 and all("is not a URL to load" in p for p in parsed.problems)
    assert parsed.import_map_problems == ("the import map's integrity for '/ok.js' is not text",)


@pytest.mark.parametrize(
    ("cache_control", "verdict"),
    [
        (None, Verdict.WARN),
        ("no-store", Verdict.PASS),
        ("max-age=60", Verdict.PASS),
        ("max-age=300", Verdict.WARN),
        ("private, max-age=3600", Verdict.FAIL),
        ("s-maxage=86400, max-age=0", Verdict.FAIL),
        ("no-cache, immutable", Verdict.FAIL),
        ("max-age=\u00b2", Verdict.PASS),  # not a number: stale at once (RFC 9111 §4.2.1)
    ],
)
def test_shell_cache_verdicts(cache_control: str | None, verdict: Verdict) -> None:
    headers = {"content-type": "text/html; charset=utf-8"}
    if cache_control is not None:
        headers["cache-control"] = cache_control
    report = run(mock_site({PAGE: (200, headers, b"<p>hi</p>")}))
    assert check(report, "shell-cache").verdict == verdict


def test_use_credentials_needs_an_exact_origin_and_allow_credentials() -> None:
    page = f'<script type="module" crossorigin="use-credentials" src="{CDN}u.0123456789ab.js">'
    star = run(mock_site({PAGE: html(page), CDN + "u.0123456789ab.js": script(b"u")}))
    assert "cannot use Access-Control-Allow-Origin: *" in check(star, "cors").details
    exact = {"access-control-allow-origin": "https://app.example"}
    routes: dict[str, Route_] = {PAGE: html(page), CDN + "u.0123456789ab.js": script(b"u", **exact)}
    assert "Allow-Credentials: true" in check(run(mock_site(routes)), "cors").details
    exact["access-control-allow-credentials"] = "true"
    routes[CDN + "u.0123456789ab.js"] = script(b"u", **exact)
    assert check(run(mock_site(routes)), "cors").verdict == Verdict.PASS


@pytest.mark.parametrize(
    "module",
    [
        "unblank_server.doctor",
        "unblank_server.doctor_evidence",
        "unblank_server.doctor_fetch",
        "unblank_server.doctor_page",
        "unblank_server.doctor_checks",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_requests_look_like_a_browsers() -> None:
    seen: list[httpx.Request] = []
    page = (
        f'<script type="module" src="{CDN}m.0123456789ab.js"></script>'
        '<script src="/same.0123456789ab.js"></script>'
    )
    routes: dict[str, Answer] = {
        PAGE: html(page),
        CDN + "m.0123456789ab.js": script(b"m"),
        PAGE + "same.0123456789ab.js": script(b"s"),
    }

    def record(request: httpx.Request) -> Answer:
        seen.append(request)
        return routes[str(request.url)]

    run(mock_site(dict.fromkeys(routes, record)))
    assert all("unblank-doctor/" in r.headers["user-agent"] for r in seen)
    assert seen[0].headers["accept"].startswith("text/html")
    assert seen[0].headers["accept-encoding"] == "br, gzip"
    cross = [r for r in seen if r.url.host == "cdn.example"]
    same = [r for r in seen if r.url.path == "/same.0123456789ab.js"]
    assert [r.headers["accept-encoding"] for r in cross] == ["identity", "gzip", "br"]
    assert {r.headers.get("origin") for r in cross} == {"https://app.example"}
    assert {r.headers.get("origin") for r in same} == {None}  # same-origin: no Origin
