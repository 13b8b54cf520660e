"""The chaos panel at ``/_demo/``: a switch per fault, and the JSON API behind it.

=========================================  ======================================
``GET /_demo/``                            the panel (``static/panel.html``)
``GET /_demo/api/state``                   the live state: versions, switches, incidents
``POST /_demo/api/switches/<name>``        ``{"on": true, "value": 2}``: flip a switch
``POST /_demo/api/deploy``                 publish the next version
``POST /_demo/api/reset``                  every switch off
``POST /_demo/api/canary``                 deploy a broken version as canary, for half
                                           the browsers (409 while one is watched)
``GET /_demo/offline-sw.js``               the service worker of the "offline" switch
``GET /_demo/api/offline``                 ``{"offline": true}``: what that worker asks
=========================================  ======================================

Every POST must say ``Content-Type: application/json``: a page on another
site cannot send that without a CORS preflight, which this app never
answers, so only the panel (and ``curl``) can flip switches. Errors are
``application/problem+json`` (RFC 9457) saying what was wrong.

The panel is its own small app beside the example app (:class:`DemoBackend`
sends it every path under ``/_demo``), so the faults it injects —
maintenance, overload — never reach it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from examples.chaos.control import CanaryRunning, ChaosControl, NotAvailable, UnknownSwitch
from unblank import UnblankMiddleware
from unblank_pages import negotiate

__all__ = ["PREFIX", "DemoBackend", "panel_app"]

PREFIX: Final = "/_demo"
STATIC: Final = Path(__file__).resolve().parent / "static"
FILES: Final = {
    "panel.css": "text/css; charset=utf-8",
    "panel.js": "text/javascript; charset=utf-8",
}
NO_STORE: Final = {"Cache-Control": "no-store"}
# The panel loads only its own files; workers from here (the offline switch's).
PANEL_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
MAX_BODY: Final = 1024  # {"on": true, "value": 10} and then some


class DemoBackend:
    """The demo's app backend: the chaos panel under ``/_demo``, the example app elsewhere
    (lifespan events go to the example app)."""

    def __init__(self, app: ASGIApp, panel: ASGIApp) -> None:
        self.app = app
        self.panel = panel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.panel(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class Panel:
    """The routes of the panel, all reading and changing one :class:`ChaosControl`."""

    def __init__(self, control: ChaosControl) -> None:
        self.control = control
        # Small files that never change while the demo runs: read once.
        self.page = (STATIC / "panel.html").read_bytes()
        self.files = {name: (STATIC / name).read_bytes() for name in FILES}
        self.worker = (STATIC / "offline-sw.js").read_bytes()

    def routes(self) -> list[Route]:
        return [
            Route(PREFIX, self.to_panel),
            Route(f"{PREFIX}/", self.show_page),
            *(Route(f"{PREFIX}/{name}", self.show_file) for name in FILES),
            Route(f"{PREFIX}/offline-sw.js", self.show_worker),
            Route(f"{PREFIX}/api/state", self.state),
            Route(f"{PREFIX}/api/offline", self.offline),
            Route(f"{PREFIX}/api/switches/{{name}}", self.flip, methods=["POST"]),
            Route(f"{PREFIX}/api/deploy", self.deploy, methods=["POST"]),
            Route(f"{PREFIX}/api/reset", self.reset, methods=["POST"]),
            Route(f"{PREFIX}/api/canary", self.canary, methods=["POST"]),
        ]

    # -- pages and files ---------------------------------------------------------

    async def to_panel(self, request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    async def show_page(self, request: Request) -> Response:
        headers = {**NO_STORE, "Content-Security-Policy": PANEL_CSP}
        return Response(self.page, media_type="text/html; charset=utf-8", headers=headers)

    async def show_file(self, request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        return Response(self.files[name], media_type=FILES[name], headers=NO_STORE)

    async def show_worker(self, request: Request) -> Response:
        # Served from /_demo/, it may still control every page of this origin.
        headers = {**NO_STORE, "Service-Worker-Allowed": "/"}
        return Response(self.worker, media_type="text/javascript; charset=utf-8", headers=headers)

    # -- the API -------------------------------------------------------------------

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.control.snapshot(), headers=NO_STORE)

    async def offline(self, request: Request) -> Response:
        return JSONResponse({"offline": self.control.is_on("offline")}, headers=NO_STORE)

    async def flip(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        on, value = body.get("on"), body.get("value")
        if not isinstance(on, bool):
            return problem(422, 'send {"on": true} or {"on": false}')
        try:
            await self.control.flip(request.path_params["name"], on, value)
        except UnknownSwitch as exc:
            return problem(404, f"no switch is called {exc.args[0]!r}")
        except ValueError as exc:
            return problem(422, str(exc))
        return await self.state(request)

    async def deploy(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        release = await self.control.deploy()
        answer = {"version": release.version, "generation": release.generation}
        return JSONResponse(answer, headers=NO_STORE)

    async def reset(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        await self.control.reset()
        return await self.state(request)

    async def canary(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        try:
            generation = await self.control.deploy_broken_canary()
        except NotAvailable as exc:
            return problem(501, str(exc))
        except CanaryRunning as exc:
            return problem(409, str(exc))
        return JSONResponse({"generation": generation}, headers=NO_STORE)


def panel_app(control: ChaosControl) -> ASGIApp:
    """The panel's ASGI app, with guided pages (problem+json for the API) for what goes wrong."""
    app = Starlette(routes=Panel(control).routes(), exception_handlers={HTTPException: _guided})
    return UnblankMiddleware(app, report_path=None, time_budget=60)


def problem(status: int, detail: str) -> JSONResponse:
    titles = {
        404: "Not Found",
        409: "Conflict",
        413: "Content Too Large",
        415: "Unsupported Media Type",
        422: "Unprocessable Content",
        501: "Not Implemented",
    }
    document = {"type": "about:blank", "title": titles[status], "status": status, "detail": detail}
    return JSONResponse(
        document, status_code=status, media_type="application/problem+json", headers=NO_STORE
    )


async def _json_body(request: Request) -> dict[str, Any] | Response:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return problem(415, "send the request as application/json (an empty body is {})")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return problem(413, f"a request to the chaos panel is at most {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return problem(422, "the body is not valid JSON")
    if not isinstance(body, dict):
        return problem(422, "the body must be a JSON object")
    return body


async def _guided(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    reason = {404: "not-found", 405: "bad-request"}.get(status, "server-error")
    page = negotiate(
        reason,
        accept=request.headers.get("accept"),
        accept_language=request.headers.get("accept-language"),
        request_id=request.scope.get("state", {}).get("unblank_request_id"),
        nonce=request.scope.get("state", {}).get("unblank_nonce"),
    )
    return Response(page.body, status, dict(page.headers), page.content_type)
