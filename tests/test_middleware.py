"""UnblankMiddleware: request ids, guided pages for failures, shedding, maintenance,
reports and the mirror; in-process through httpx's ASGITransport and on a real
uvicorn (127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.realserver import serve_in_thread
from unblank import AssetCache, AssetClient, ReportIntake, UnblankMiddleware, integrity
from unblank.metrics import SdkCollector
from unblank.reports import MAX_BODY
from unblank.retry import RetryPolicy
from unblank_server.app import create_app
from unblank_server.builder import build

LEAK = "query failed on db-7 at row 42 (hunter2)"  # what must never reach a client
REPORT = {"cause": "integrity", "asset": "js/app.js", "outcome": "recovered", "kind": "script"}
DEAD = "http://127.0.0.1:9"  # discard: nothing listens there


@dataclass
class Probe:
    """What the test app's handlers did, and the gates they wait at."""

    cancelled: bool = False
    entered: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    thread_release: threading.Event = field(default_factory=threading.Event)
    thread_entered: threading.Event = field(default_factory=threading.Event)
    thread_done: threading.Event = field(default_factory=threading.Event)
    started: list[str] = field(default_factory=list)


def make_app(probe: Probe, *, hold: int = 2, **starlette: Any) -> Starlette:
    async def home(request: Request) -> Response:
        state = request.state
        return JSONResponse({"id": state.unblank_request_id, "nonce": state.unblank_nonce})

    async def boom(request: Request) -> Response:
        raise RuntimeError(LEAK)

    async def slow(request: Request) -> Response:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            probe.cancelled = True
            raise
        return PlainTextResponse("too late")

    def blocked(request: Request) -> Response:  # sync: Starlette runs it in a worker thread
        probe.thread_entered.set()
        probe.thread_release.wait(10)
        probe.thread_done.set()
        return PlainTextResponse("too late")

    async def stream(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for number in range(4):
                await asyncio.sleep(0.1)
                yield f"part{number};".encode()

        return StreamingResponse(parts(), media_type="text/plain")

    async def broken_stream(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            yield b"first part;"
            raise RuntimeError(LEAK)

        return StreamingResponse(parts(), media_type="text/plain")

    async def held(request: Request) -> Response:
        probe.entered += 1
        if probe.entered >= hold:
            probe.full.set()
        await probe.release.wait()
        return PlainTextResponse("done")

    async def empty(request: Request) -> Response:
        code = int(request.path_params["code"])
        return Response(status_code=code, headers={"retry-after": "7", "set-cookie": "s=1"})

    async def real_error(request: Request) -> Response:
        return PlainTextResponse("db down", status_code=503)

    async def page(request: Request) -> Response:
        return HTMLResponse("<p>hi</p>")

    async def own_policy(request: Request) -> Response:
        return HTMLResponse("<p>hi</p>", headers={"content-security-policy": "default-src 'none'"})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        probe.started.append("startup")
        yield
        probe.started.append("shutdown")

    routes = [
        Route("/", home),
        Route("/boom", boom),
        Route("/slow", slow),
        Route("/blocked", blocked),
        Route("/stream", stream),
        Route("/broken-stream", broken_stream),
        Route("/held", held),
        Route("/empty/{code}", empty),
        Route("/real-error", real_error),
        Route("/page", page),
        Route("/own-policy", own_policy),
        Route("/healthz", health),
    ]
    return Starlette(routes=routes, lifespan=lifespan, **starlette)


def wrap(probe: Probe, **options: Any) -> UnblankMiddleware:
    return UnblankMiddleware(make_app(probe), **options)


async def fetch(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kwargs)


def call(app: Any, path: str = "/", method: str = "GET", **kwargs: Any) -> httpx.Response:
    return asyncio.run(fetch(app, method, path, **kwargs))


async def raw_call(app: Any, path: str, method: str = "GET") -> tuple[int, bytes]:
    """Call the ASGI app with ``path`` as given: no HTTP client normalises it first."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t")],
        "client": ("10.1.2.3", 1234),
        "server": ("t", 80),
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(dict(message))

    await app(scope, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


# -- request ids and nonces --------------------------------------------------------------


def test_request_id_is_taken_when_well_formed_and_made_otherwise() -> None:
    app = wrap(Probe())
    given = call(app, headers={"x-request-id": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    assert given.json()["id"] == "trace-42.a"
    for junk in ("<script>", "a b", "x" * 300):
        made = call(app, headers={"x-request-id": junk})
        assert re.fullmatch(r"ub-[0-9a-f]{16}", made.headers["x-request-id"])
        assert made.json()["id"] == made.headers["x-request-id"]
    assert call(app).headers["x-request-id"].startswith("ub-")


def test_every_request_gets_its_own_nonce() -> None:
    app = wrap(Probe())
    first, second = call(app).json()["nonce"], call(app).json()["nonce"]
    assert first != second
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", first)


# -- exceptions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html"),
        ("application/json", "application/problem+json"),
        ("text/plain", "text/plain"),
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_exception_becomes_the_server_error_page(
    accept: str, media: str, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Wrapped from outside, Starlette's own ServerErrorMiddleware answers first
    # (plain text, or with debug=True a traceback page) and raises: replaced.
    middleware = UnblankMiddleware(make_app(Probe(), debug=debug))
    with caplog.at_level(logging.ERROR, logger="unblank.middleware"):
        reply = call(middleware, "/boom", headers={"accept": accept, "x-request-id": "req-9"})
    assert reply.status_code == 500
    assert reply.headers["content-type"].startswith(media)
    assert reply.headers["x-request-id"] == "req-9"
    assert reply.headers["cache-control"] == "no-store"
    assert b"req-9" in reply.content
    for leak in (LEAK.encode(), b"Traceback", b"RuntimeError", b"Internal Server Error"):
        assert leak not in reply.content
    if media == "application/problem+json":
        assert reply.json()["status"] == 500 and reply.json()["instance"] == "req-9"
    [record] = [r for r in caplog.records if r.name == "unblank.middleware"]
    assert record.request_id == "req-9"  # type: ignore[attr-defined]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])
    assert middleware.stats.exceptions == 1


def test_inside_a_starlette_stack(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe()
    app = make_app(probe, debug=True, middleware=[Middleware(UnblankMiddleware, time_budget=5)])
    with caplog.at_level(logging.CRITICAL, logger="unblank.middleware"):
        reply = call(app, "/boom", headers={"accept": "application/json"})
    assert reply.status_code == 500
    assert reply.json()["instance"] == reply.headers["x-request-id"]
    assert LEAK.encode() not in reply.content
    ok = call(app, headers={"x-request-id": "from-client"})
    assert ok.json()["id"] == "from-client" == ok.headers["x-request-id"]


def test_an_exception_after_the_response_started_ends_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    middleware = wrap(Probe())
    with (
        caplog.at_level(logging.CRITICAL, logger="unblank.middleware"),
        pytest.raises(RuntimeError, match="hunter2"),
    ):
        call(middleware, "/broken-stream")  # raised on, as Starlette's own middleware does


def test_an_app_that_returns_without_answering_gets_the_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    with caplog.at_level(logging.CRITICAL, logger="unblank.middleware"):
        reply = call(UnblankMiddleware(silent), headers={"accept": "application/json"})
    assert reply.status_code == 500
    assert reply.json()["type"] == "/_unblank/pages/server-error"


# -- time budget -----------------------------------------------------------------------


def test_a_handler_past_its_budget_is_cancelled_and_answered_504(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = Probe()
    middleware = wrap(probe, time_budget=0.2)
    with caplog.at_level(logging.WARNING, logger="unblank.middleware"):
        reply = call(middleware, "/slow", headers={"accept": "application/json"})
    assert reply.status_code == 504
    assert reply.json()["type"] == "/_unblank/pages/timeout"
    assert probe.cancelled
    assert middleware.stats.timeouts == 1
    assert middleware.in_flight == 0
    assert any("time budget of 0.2s" in r.getMessage() for r in caplog.records)


def test_a_streaming_response_past_the_budget_is_left_alone() -> None:
    reply = call(wrap(Probe(), time_budget=0.2), "/stream")
    assert reply.status_code == 200
    assert reply.text == "part0;part1;part2;part3;"


def test_no_budget_means_no_timeout() -> None:
    reply = call(wrap(Probe(), time_budget=None), "/stream")
    assert reply.status_code == 200


# -- shedding and maintenance -----------------------------------------------------------


def test_requests_past_max_in_flight_are_shed_with_retry_after() -> None:
    probe = Probe()
    middleware = wrap(probe, max_in_flight=2, retry_after=9, exempt=("/_unblank/", "/healthz"))

    async def main() -> None:
        holders = [asyncio.create_task(fetch(middleware, "GET", "/held")) for _ in range(2)]
        await asyncio.wait_for(probe.full.wait(), 10)
        assert middleware.in_flight == 2
        shed = await fetch(middleware, "GET", "/", headers={"accept": "application/json"})
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "9"
        assert shed.json()["type"] == "/_unblank/pages/overloaded"
        assert shed.headers["x-request-id"] == shed.json()["instance"]
        health = await fetch(middleware, "GET", "/healthz")
        assert health.status_code == 200  # exempt: a full app is still alive
        beacon = await fetch(middleware, "POST", "/_unblank/report", content=json.dumps(REPORT))
        assert beacon.status_code == 204  # the middleware's own endpoints are never shed
        probe.release.set()
        assert [r.status_code for r in await asyncio.gather(*holders)] == [200, 200]
        assert (await fetch(middleware, "GET", "/")).status_code == 200

    asyncio.run(main())
    assert middleware.stats.shed == 1
    assert middleware.in_flight == 0


def test_maintenance_switch() -> None:
    middleware = wrap(Probe(), exempt=("/_unblank/", "/healthz"))
    assert call(middleware).status_code == 200
    middleware.maintenance = True
    page = call(middleware, headers={"accept": "text/html"})
    assert page.status_code == 503
    assert page.headers["retry-after"] == "60"
    assert page.headers["content-type"].startswith("text/html")
    assert call(middleware, "/healthz").status_code == 200
    beacon = call(middleware, "/_unblank/report", "POST", content=json.dumps(REPORT))
    assert beacon.status_code == 204
    middleware.maintenance = False
    assert call(middleware).status_code == 200
    assert middleware.stats.maintenance == 1


def test_maintenance_file_is_looked_at_once_a_second(tmp_path: Path) -> None:
    now = [100.0]
    marker = tmp_path / "maintenance"
    middleware = wrap(
        Probe(), maintenance_file=marker, maintenance_retry_after=120, clock=lambda: now[0]
    )
    assert call(middleware).status_code == 200
    marker.touch()
    assert call(middleware).status_code == 200  # not looked at again within the second
    now[0] += 1.0
    reply = call(middleware, headers={"accept": "application/json"})
    assert (reply.status_code, reply.headers["retry-after"]) == (503, "120")
    assert reply.json()["type"] == "/_unblank/pages/maintenance"
    marker.unlink()
    now[0] += 0.5
    assert call(middleware).status_code == 503
    now[0] += 0.5
    assert call(middleware).status_code == 200


# -- what the app answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [(500, "server-error"), (502, "upstream"), (503, "overloaded"), (504, "timeout")],
)
def test_an_empty_error_answer_becomes_its_page(code: int, reason: str) -> None:
    middleware = wrap(Probe())
    reply = call(middleware, f"/empty/{code}", headers={"accept": "application/json"})
    assert reply.status_code == code
    assert reply.json()["type"] == f"/_unblank/pages/{reason}"
    assert reply.headers["retry-after"] == "7"  # the app's own wait is kept
    assert reply.headers["set-cookie"] == "s=1"
    assert reply.headers["x-request-id"] == reply.json()["instance"]
    html = call(middleware, f"/empty/{code}")
    assert html.headers["content-type"].startswith("text/html") and len(html.content) > 500
    assert middleware.stats.empty_errors == 2


def test_an_error_answer_with_a_body_is_the_apps() -> None:
    reply = call(wrap(Probe()), "/real-error")
    assert (reply.status_code, reply.text) == (503, "db down")
    assert reply.headers["x-request-id"].startswith("ub-")


def test_head_of_an_empty_error_is_left_alone() -> None:
    reply = call(wrap(Probe()), "/empty/503", "HEAD")
    assert reply.status_code == 503
    assert reply.content == b""
    assert "content-type" not in reply.headers


def test_content_security_policy_carries_the_request_nonce() -> None:
    policy = "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'"
    middleware = wrap(Probe(), content_security_policy=policy)
    page = call(middleware, "/page")
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert page.headers["content-security-policy"] == policy.replace("{nonce}", nonce)
    assert "content-security-policy" not in call(middleware).headers  # JSON: no policy
    own = call(middleware, "/own-policy")
    assert own.headers["content-security-policy"] == "default-src 'none'"
    guided = call(middleware, "/boom", headers={"accept": "text/html"})
    header = guided.headers["content-security-policy"]
    nonces = set(re.findall(rb'nonce="([^"]+)"', guided.content))
    assert len(nonces) == 1
    assert f"'nonce-{nonces.pop().decode()}'" in header


def test_other_scopes_pass_straight_through() -> None:
    probe = Probe()
    with serve_in_thread(wrap(probe), lifespan="on") as base:
        assert httpx.get(base).status_code == 200
    assert probe.started == ["startup", "shutdown"]


# -- reports -----------------------------------------------------------------------------


def test_report_is_accepted_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    middleware = wrap(Probe())
    body = json.dumps({**REPORT, "page": "https://shop.test/cart", "reason": "integrity"})
    with caplog.at_level(logging.WARNING, logger="unblank.report"):
        reply = call(
            middleware,
            "/_unblank/report",
            "POST",
            content=body,
            headers={"content-type": "text/plain"},
        )
    assert reply.status_code == 204
    assert reply.content == b""
    [record] = [r for r in caplog.records if r.name == "unblank.report"]
    report = record.report  # type: ignore[attr-defined]
    assert report["client"] == "10.1.2.3"
    assert (report["outcome"], report["kind"], report["page"]) == (
        "recovered",
        "script",
        "https://shop.test/cart",
    )
    assert middleware.stats.reports_accepted == 1
    assert middleware.reports.accepted == {"integrity": 1}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'{"cause": "boredom"}', 400),
        (b"\xff\xfe", 400),
        (json.dumps({**REPORT, "message": "x" * MAX_BODY}).encode(), 413),
    ],
)
def test_bad_reports_get_problem_json(body: bytes, status: int) -> None:
    middleware = wrap(Probe())
    reply = call(middleware, "/_unblank/report", "POST", content=body)
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["status"] == status
    assert middleware.stats.reports_rejected == 1


def test_a_flood_of_reports_is_limited_per_client() -> None:
    intake = ReportIntake(rate=1.0, burst=2, clock=lambda: 0.0)
    middleware = wrap(Probe(), reports=intake)
    body = json.dumps(REPORT)
    statuses = [call(middleware, "/_unblank/report", "POST", content=body) for _ in range(3)]
    assert [r.status_code for r in statuses] == [204, 204, 429]
    assert statuses[2].headers["retry-after"] == "2"
    assert statuses[2].headers["content-type"].startswith("application/problem+json")
    assert intake.rejected == {"rate_limited": 1}


def test_reports_take_only_post() -> None:
    reply = call(wrap(Probe()), "/_unblank/report", headers={"accept": "application/json"})
    assert reply.status_code == 405
    assert reply.headers["allow"] == "POST, HEAD"
    assert reply.json()["status"] == 405
    # HEAD is the watchdog asking whether the backend answers at all.
    probe = call(wrap(Probe()), "/_unblank/report", "HEAD")
    assert probe.status_code == 204 and probe.content == b""


def test_no_report_path_leaves_the_path_to_the_app() -> None:
    reply = call(wrap(Probe(), report_path=None), "/_unblank/report", "POST", content=b"{}")
    assert reply.status_code == 404  # Starlette's own answer


def test_reports_new_fields_are_checked() -> None:
    intake = ReportIntake(clock=lambda: 0.0)
    report = intake.accept(
        json.dumps(
            {
                "cause": "render-timeout",
                "outcome": "exploded",
                "kind": "render",
                "reason": "r" * 100,
                "page": "p" * 5000,
            }
        ).encode(),
        "c",
    )
    assert "outcome" not in report.fields
    assert report.fields["kind"] == "render"
    assert len(report.fields["reason"]) == 64
    assert len(report.fields["page"]) == 2048


# -- the mirror --------------------------------------------------------------------------

SOURCES = {
    "app.js": "console.log('mirror');\n" * 200,
    "lib.js": "export const lib = 'mirror';\n" * 100,
    "app.css": "body { color: #222; }\n" * 300,
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("mirror_src")
    for name, text in SOURCES.items():
        (src / name).write_text(text)
    out = tmp_path_factory.mktemp("mirror") / "dist"
    build(src, out)
    return out


@pytest.fixture(scope="module")
def origin(dist: Path) -> Iterator[str]:
    with create_app(dist, reload_interval=0) as app, serve_in_thread(app) as url:
        yield url


class Recording(httpx.AsyncBaseTransport):
    """The real network, with every URL asked for written down."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def mirror_client(origin: str, transport: httpx.AsyncBaseTransport | None = None) -> AssetClient:
    return AssetClient(
        origins=[origin],
        cache=AssetCache(None),
        transport=transport,
        retry=RetryPolicy(attempts=1),
        deadline=5.0,
    )


def test_mirror_serves_verified_bytes(origin: str) -> None:
    async def main() -> None:
        async with mirror_client(origin) as client:
            middleware = wrap(Probe(), mirror=client)
            manifest = await client.current_manifest()
            for name, asset in manifest.assets.items():
                reply = await fetch(middleware, "GET", f"/_unblank/mirror/{asset.path}")
                assert reply.status_code == 200
                assert integrity.verify(reply.content, asset.integrity)
                assert reply.content == SOURCES[name].encode()
                headers = reply.headers
                assert headers["content-type"] == asset.content_type
                assert headers["content-length"] == str(asset.size)
                assert headers["cache-control"] == "public, max-age=31536000, immutable"
                assert headers["access-control-allow-origin"] == "*"
                assert headers["cross-origin-resource-policy"] == "cross-origin"
                assert headers["x-content-type-options"] == "nosniff"
                assert headers["x-request-id"].startswith("ub-")
                # The same entity tag as the origin's, so either revalidates the other.
                direct = await asyncio.to_thread(
                    httpx.get, f"{origin}/static/{asset.path}", headers={"accept-encoding": ""}
                )
                assert headers["etag"] == direct.headers["etag"]
            path = manifest.asset("app.js").path
            head = await fetch(middleware, "HEAD", f"/_unblank/mirror/{path}")
            assert (head.status_code, head.content) == (200, b"")
            assert head.headers["content-length"] == str(manifest.asset("app.js").size)
            etag = head.headers["etag"]
            again = await fetch(
                middleware, "GET", f"/_unblank/mirror/{path}", headers={"if-none-match": etag}
            )
            assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
            posted = await fetch(middleware, "POST", f"/_unblank/mirror/{path}")
            assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
            assert middleware.stats.mirror_hits == len(manifest.assets) + 2

    asyncio.run(main())


def test_mirror_unknown_and_hostile_paths_read_nothing(origin: str, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    hostile = [
        "../../../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
        f"{tmp_path}/secret.txt",
        "app.js",  # a logical name is not a published path
        "..\\..\\secret.txt",
        "app.js\x00.png",
        "./app.js",
        "",
        "x" * 5000,
    ]

    async def main() -> None:
        recording = Recording()
        async with mirror_client(origin, recording) as client:
            middleware = wrap(Probe(), mirror=client)
            await client.current_manifest()
            for path in hostile:
                status, body = await raw_call(middleware, "/_unblank/mirror/" + path)
                assert status == 404, path
                assert b"top secret" not in body and b"root:" not in body
            through_http = await fetch(
                middleware,
                "GET",
                "/_unblank/mirror/nope.js",
                headers={"accept": "application/json"},
            )
            assert through_http.status_code == 404
            assert through_http.json()["type"] == "/_unblank/pages/not-found"
            assert through_http.headers["access-control-allow-origin"] == "*"
            assert middleware.stats.mirror_misses == len(hostile) + 1
        # Only manifests were asked for (one revalidation for a miss, then none
        # within MISS_REFRESH): never a file, and never once per junk path.
        assert all(url.endswith("/_unblank/manifest.json") for url in recording.urls)
        assert len(recording.urls) == 2

    asyncio.run(main())


def test_mirror_with_every_origin_down(dist: Path) -> None:
    async def main() -> None:
        with create_app(dist, reload_interval=0) as app, serve_in_thread(app) as base:
            client = mirror_client(base)
            middleware = wrap(Probe(), mirror=client)
            manifest = await client.current_manifest()
            warm = manifest.asset("app.js").path
            assert (await fetch(middleware, "GET", f"/_unblank/mirror/{warm}")).status_code == 200
        # The origin is gone: what the cache holds is still served, the rest is a 502.
        async with client:
            kept = await fetch(middleware, "GET", f"/_unblank/mirror/{warm}")
            assert kept.status_code == 200
            cold = manifest.asset("lib.js").path
            gone = await fetch(
                middleware,
                "GET",
                f"/_unblank/mirror/{cold}",
                headers={"accept": "application/json"},
            )
            assert gone.status_code == 502
            assert gone.json()["type"] == "/_unblank/pages/upstream"
            assert gone.headers["access-control-allow-origin"] == "*"
            assert middleware.stats.mirror_failures == 1

    asyncio.run(main())


def test_mirror_without_any_manifest_is_502() -> None:
    async def main() -> None:
        async with mirror_client(DEAD) as client:
            middleware = wrap(Probe(), mirror=client)
            reply = await fetch(middleware, "GET", "/_unblank/mirror/app.0123456789ab.js")
            assert reply.status_code == 502

    asyncio.run(main())


# -- on a real server ----------------------------------------------------------------------


def test_real_server_main_paths(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe()
    middleware = wrap(probe, time_budget=0.2, max_in_flight=4)
    with (
        caplog.at_level(logging.CRITICAL, logger="unblank.middleware"),
        caplog.at_level(logging.CRITICAL, logger="uvicorn.error"),
        serve_in_thread(middleware) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        ok = client.get("/", headers={"x-request-id": "live-1"})
        assert ok.headers["x-request-id"] == "live-1" == ok.json()["id"]
        boom = client.get("/boom", headers={"accept": "text/html"})
        assert boom.status_code == 500
        assert LEAK.encode() not in boom.content
        assert boom.headers["x-request-id"].encode() in boom.content
        assert client.get("/slow").status_code == 504
        assert client.get("/stream").text == "part0;part1;part2;part3;"
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/broken-stream")  # cut off, never a short body that looks whole
        beacon = client.post("/_unblank/report", content=json.dumps(REPORT))
        assert beacon.status_code == 204
        empty = client.get("/empty/502")
        assert empty.status_code == 502
        assert empty.headers["content-type"].startswith("text/html")
    assert probe.cancelled
    assert middleware.in_flight == 0


def test_real_server_answers_504_while_a_worker_thread_still_blocks() -> None:
    probe = Probe()
    middleware = wrap(probe, time_budget=0.2)
    try:
        with (
            serve_in_thread(middleware) as base,
            httpx.Client(base_url=base, timeout=10) as client,
        ):
            reply = client.get("/blocked", headers={"accept": "application/json"})
            assert reply.status_code == 504
            # The handler cannot be cancelled in its thread: the 504 came anyway.
            assert probe.thread_entered.is_set() and not probe.thread_done.is_set()
            assert middleware.in_flight == 1  # still working, still counted
            probe.thread_release.set()
    finally:
        probe.thread_release.set()


def test_real_server_sheds_while_requests_are_held() -> None:
    probe = Probe()

    async def held(request: Request) -> Response:
        probe.entered += 1
        if probe.entered >= 2:
            probe.thread_entered.set()
        await asyncio.to_thread(probe.thread_release.wait, 10)
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/held", held), Route("/", held)])
    middleware = UnblankMiddleware(app, max_in_flight=2)
    try:
        with serve_in_thread(middleware) as base, ThreadPoolExecutor(2) as pool:
            holders = [pool.submit(httpx.get, f"{base}/held", timeout=10) for _ in range(2)]
            assert probe.thread_entered.wait(10)
            shed = httpx.get(base, headers={"accept": "application/json"})
            assert (shed.status_code, shed.headers["retry-after"]) == (503, "5")
            probe.thread_release.set()
            assert [h.result().status_code for h in holders] == [200, 200]
    finally:
        probe.thread_release.set()


# -- configuration and metrics --------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"time_budget": 0}, "time_budget"),
        ({"time_budget": float("nan")}, "time_budget"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": True}, "max_in_flight"),
        ({"retry_after": -1}, "retry_after"),
        ({"maintenance_retry_after": 1.5}, "maintenance_retry_after"),
        ({"maintenance": "yes"}, "maintenance"),
        ({"exempt": "/healthz"}, "exempt"),
        ({"exempt": ["healthz"]}, "exempt"),
        ({"report_path": "report"}, "report_path"),
        ({"mirror_path": "/_unblank/mirror"}, "mirror_path"),
        ({"mirror": "http://cdn"}, "mirror"),
        ({"content_security_policy": "a\r\nb"}, "content_security_policy"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        UnblankMiddleware(make_app(Probe()), **options)


def test_brand_and_pages_are_exclusive() -> None:
    from unblank_pages import Brand, PageRenderer

    with pytest.raises(ValueError, match="brand or pages"):
        UnblankMiddleware(make_app(Probe()), brand=Brand(), pages=PageRenderer())


def test_metrics_count_what_the_middleware_answered(caplog: pytest.LogCaptureFixture) -> None:
    middleware = wrap(Probe())
    with caplog.at_level(logging.CRITICAL, logger="unblank.middleware"):
        call(middleware, "/boom")
    call(middleware, "/_unblank/report", "POST", content=json.dumps(REPORT))
    registry = CollectorRegistry()
    registry.register(SdkCollector(middleware=middleware))
    text = generate_latest(registry).decode()
    assert 'unblank_middleware_answers_total{reason="exception"} 1.0' in text
    assert 'unblank_middleware_reports_total{cause="integrity"} 1.0' in text
    assert "unblank_middleware_requests_total 2.0" in text
    assert "unblank_middleware_in_flight 0.0" in text
