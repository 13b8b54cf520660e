"""UnblankMiddleware: every request to an app backend ends in an answer a person can read.

A pure ASGI middleware.  Wrapped around an app it

- gives every request a reference: a well-formed incoming ``X-Request-ID`` or
  a new one, in ``scope["state"]["unblank_request_id"]`` (Starlette:
  ``request.state.unblank_request_id``) and in the ``X-Request-ID`` of every
  response, so the reference on a guided page is the one in the logs;
- makes a CSP nonce per request (``scope["state"]["unblank_nonce"]``) for the
  shell's inline scripts, and with ``content_security_policy`` sends the
  policy carrying it on every HTML response;
- turns an exception into the ``server-error`` page (HTML for browsers,
  ``application/problem+json`` for API clients), never a traceback; a
  handler still without a response after ``time_budget`` seconds into
  ``timeout`` (504); an empty 500/502/503/504 body into the matching page;
- sheds load past ``max_in_flight`` with ``overloaded`` (503 + Retry-After),
  and answers ``maintenance`` (503) while switched on;
- answers the watchdog's beacons at ``POST /_unblank/report`` and, given an
  :class:`~unblank.AssetClient`, serves its verified cache at
  ``/_unblank/mirror/<published path>`` as one more origin.

With Starlette::

    app = Starlette(routes=routes, middleware=[
        Middleware(UnblankMiddleware, time_budget=10, max_in_flight=200,
                   exempt=("/_unblank/", "/healthz"), mirror=asset_client),
    ])

Or around any ASGI app: ``app = UnblankMiddleware(app, maintenance_file="/run/maint")``.

The middleware's own endpoints (report, mirror) are answered before any
shedding or maintenance: they are how pages recover.  It runs on asyncio
(uvicorn, hypercorn, granian), like the rest of the SDK.

>>> import asyncio, httpx
>>> async def broken(scope, receive, send):
...     raise RuntimeError("database password is hunter2")
>>> async def main() -> httpx.Response:
...     transport = httpx.ASGITransport(app=UnblankMiddleware(broken))
...     async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
...         return await client.get("/", headers={"accept": "application/json",
...                                               "x-request-id": "req-1"})
>>> reply = asyncio.run(main())
>>> reply.status_code, reply.headers["x-request-id"], reply.json()["instance"]
(500, 'req-1', 'req-1')
>>> b"hunter2" in reply.content
False
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from unblank._asgi import ASGIApp, Receive, Scope, Send
from unblank._exchange import Exchange, HeaderList, Hooks, RequestInfo, read_request
from unblank._guided import Answer, GuidedAnswers
from unblank._mirror import SHARED, Mirror, MirrorAnswer
from unblank.client import AssetClient
from unblank.guarded import Rollout
from unblank.reports import MAX_BODY, Rejected, ReportIntake, read_body
from unblank_pages import Brand, PageRenderer

__all__ = ["MiddlewareStats", "UnblankMiddleware"]

logger = logging.getLogger("unblank.middleware")

MAINTENANCE_CHECK: Final = 1.0  # seconds between looks at maintenance_file, not one per request
_MAX_RETRY_AFTER: Final = 24 * 3600  # longer than a day is a misconfiguration, not a wait


@dataclass(slots=True)
class MiddlewareStats:
    """What the middleware answered by itself, counted as plain ints (cheap to bump)."""

    requests: int = 0  # HTTP requests seen
    exceptions: int = 0  # handlers that raised before their response started
    timeouts: int = 0  # handlers past time_budget, cancelled and answered 504
    shed: int = 0  # answered 503 overloaded at max_in_flight
    maintenance: int = 0  # answered 503 maintenance
    empty_errors: int = 0  # empty 5xx answers of the app replaced by a guided page
    reports_accepted: int = 0
    reports_rejected: int = 0
    mirror_hits: int = 0  # 200 and 304 answers of the mirror
    mirror_misses: int = 0  # 404: a path the manifest does not publish
    mirror_failures: int = 0  # 502: no verified copy from the cache or any origin


class UnblankMiddleware:
    """Wrap an ASGI app so that no request ends in a blank page or a traceback.

    Every option is keyword-only and checked here (a bad value is a
    ``ValueError`` naming it):

    - ``time_budget``: seconds until the response must have *started*; past
      it the handler is cancelled and the client gets ``timeout`` (504).  A
      started response (a stream) may take as long as it needs.  None: no budget.
    - ``max_in_flight`` (None: no limit) and ``retry_after``: a request past
      the limit gets ``overloaded`` (503) with ``Retry-After`` at once.
    - ``maintenance`` (also an attribute: ``mw.maintenance = True``) and
      ``maintenance_file`` (on while that file exists, looked at once a
      second): ``maintenance`` (503) with ``maintenance_retry_after``.
    - ``exempt``: path prefixes never shed and never in maintenance; keep
      ``/_unblank/`` and add your health checks (``"/healthz"``).
    - ``report_path`` (None: off) and ``reports``: the beacon intake.
    - ``rollout``: count accepted reports as incidents of the generation they
      name, for the guarded rollout (:class:`~unblank.guarded.Rollout`).
    - ``mirror`` and ``mirror_path``: serve the client's verified cache.
    - ``brand`` or ``pages``: how guided pages look.
    - ``content_security_policy``: a policy where ``{nonce}`` stands for the
      request's nonce, sent with every HTML response that has none.
    - ``clock``: monotonic seconds, for tests.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        time_budget: float | None = 30.0,
        max_in_flight: int | None = None,
        retry_after: int = 5,
        maintenance: bool = False,
        maintenance_file: str | os.PathLike[str] | None = None,
        maintenance_retry_after: int = 60,
        exempt: Sequence[str] = ("/_unblank/",),
        report_path: str | None = "/_unblank/report",
        reports: ReportIntake | None = None,
        rollout: Rollout | None = None,
        mirror: AssetClient | None = None,
        mirror_path: str = "/_unblank/mirror/",
        brand: Brand | None = None,
        pages: PageRenderer | None = None,
        content_security_policy: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_budget is not None and not _positive_number(time_budget):
            raise ValueError(
                f"UnblankMiddleware time_budget must be seconds > 0 or None, not {time_budget!r}"
            )
        if max_in_flight is not None and (type(max_in_flight) is not int or max_in_flight < 1):
            raise ValueError(
                "UnblankMiddleware max_in_flight must be an integer >= 1 or None (no limit), "
                f"not {max_in_flight!r}"
            )
        for name, value in (
            ("retry_after", retry_after),
            ("maintenance_retry_after", maintenance_retry_after),
        ):
            if type(value) is not int or not 0 <= value <= _MAX_RETRY_AFTER:
                raise ValueError(
                    f"UnblankMiddleware {name} must be whole seconds from 0 to "
                    f"{_MAX_RETRY_AFTER}, not {value!r}"
                )
        if not isinstance(maintenance, bool):
            raise ValueError(
                f"UnblankMiddleware maintenance must be True or False, not {maintenance!r}"
            )
        if isinstance(exempt, str) or not all(
            isinstance(p, str) and p.startswith("/") for p in exempt
        ):
            raise ValueError(
                "UnblankMiddleware exempt must be a list of path prefixes starting with '/', "
                f"like ('/_unblank/', '/healthz'), not {exempt!r}"
            )
        if report_path is not None and not (
            isinstance(report_path, str) and report_path.startswith("/")
        ):
            raise ValueError(
                f"UnblankMiddleware report_path must be a path starting with '/' or None, "
                f"not {report_path!r}"
            )
        if not (
            isinstance(mirror_path, str)
            and mirror_path.startswith("/")
            and mirror_path.endswith("/")
        ):
            raise ValueError(
                f"UnblankMiddleware mirror_path must start and end with '/', not {mirror_path!r}"
            )
        if rollout is not None and not isinstance(rollout, Rollout):
            raise ValueError(
                f"UnblankMiddleware rollout must be an unblank.guarded.Rollout, not {rollout!r}"
            )
        if mirror is not None and not isinstance(mirror, AssetClient):
            raise ValueError(f"UnblankMiddleware mirror must be an AssetClient, not {mirror!r}")
        if brand is not None and pages is not None:
            raise ValueError(
                "UnblankMiddleware takes brand or pages, not both: "
                "give the brand to the PageRenderer"
            )
        if content_security_policy is not None and (
            not isinstance(content_security_policy, str)
            or any(c in content_security_policy for c in "\r\n\0")
        ):
            raise ValueError(
                "UnblankMiddleware content_security_policy must be one header line, "
                "like \"script-src 'nonce-{nonce}'\""
            )
        self.app = app
        self.time_budget = time_budget
        self.max_in_flight = max_in_flight
        self.retry_after = retry_after
        self.maintenance = maintenance
        self.maintenance_file = Path(maintenance_file) if maintenance_file is not None else None
        self.maintenance_retry_after = maintenance_retry_after
        self.exempt = tuple(exempt)
        self.report_path = report_path
        self.reports = reports if reports is not None else ReportIntake()
        self.rollout = rollout
        self.mirror = Mirror(mirror, clock=clock) if mirror is not None else None
        self.mirror_path = mirror_path
        self.pages = pages if pages is not None else PageRenderer(brand=brand)
        self.content_security_policy = content_security_policy
        self.stats = MiddlewareStats()
        self.in_flight = 0
        self._answers = GuidedAnswers(self.pages)
        self._csp = (
            None if content_security_policy is None else content_security_policy.split("{nonce}")
        )
        self._hooks = Hooks(self._guided, self.policy_for, self._count_timeout, self._count_empty)
        self._clock = clock
        self._file_checked: float | None = None
        self._file_exists = False

    def __repr__(self) -> str:
        return (
            f"UnblankMiddleware({self.app!r}, time_budget={self.time_budget!r}, "
            f"max_in_flight={self.max_in_flight!r}, maintenance={self.in_maintenance})"
        )

    @property
    def in_maintenance(self) -> bool:
        """Whether maintenance is on: the attribute, or ``maintenance_file`` exists."""
        if self.maintenance:
            return True
        marker = self.maintenance_file
        if marker is None:
            return False
        now = self._clock()
        checked = self._file_checked
        if checked is None or now - checked >= MAINTENANCE_CHECK:
            self._file_checked = now
            self._file_exists = marker.exists()
        return self._file_exists

    # -- ASGI ----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.stats.requests += 1
        request = read_request(scope)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["unblank_request_id"] = request.request_id
        state["unblank_nonce"] = request.nonce
        path = request.path
        if self.mirror is not None and path.startswith(self.mirror_path):
            await self._serve_mirror(self.mirror, request, send)
            return
        if path == self.report_path:
            await self._serve_report(scope, receive, send, request)
            return
        if not path.startswith(self.exempt):
            if self.in_maintenance:
                self.stats.maintenance += 1
                retry = self.maintenance_retry_after
                await self._guided(send, request, "maintenance", retry_after=retry)
                return
            limit = self.max_in_flight
            if limit is not None and self.in_flight >= limit:
                self.stats.shed += 1
                await self._guided(send, request, "overloaded", retry_after=self.retry_after)
                return
        self.in_flight += 1
        try:
            await self._run(scope, receive, send, request)
        finally:
            self.in_flight -= 1

    async def _run(self, scope: Scope, receive: Receive, send: Send, request: RequestInfo) -> None:
        exchange = Exchange(self._hooks, send, request)
        budget = self.time_budget
        try:
            if budget is None:
                await self.app(scope, receive, exchange.send)
            else:
                with anyio.CancelScope() as cancel:
                    exchange.arm(cancel, budget)
                    await self.app(scope, receive, exchange.send)
        except Exception:
            if exchange.forwarded:
                # Headers and part of the body are out: a page cannot follow.  Like
                # Starlette's ServerErrorMiddleware, raise on, so the server closes
                # the connection and the client sees a cut-off body, never a short
                # one that looks complete (and could be cached as the real answer).
                _log(logging.ERROR, request, "raised after its response started", exc=True)
                raise
            if exchange.timed_out:
                _log(logging.WARNING, request, "raised after its timeout", exc=True)
            else:
                self.stats.exceptions += 1
                _log(logging.ERROR, request, "raised; answered server-error", exc=True)
                await exchange.answer("server-error")
        finally:
            exchange.disarm()
        if exchange.timed_out:
            await exchange.timeout_answered()
        elif exchange.held is not None:
            await exchange.finish()
        elif not (exchange.forwarded or exchange.replaced):
            self.stats.exceptions += 1
            _log(logging.ERROR, request, "returned without a response; answered server-error")
            await exchange.answer("server-error")

    def _count_timeout(self, request: RequestInfo) -> None:
        self.stats.timeouts += 1
        _log(
            logging.WARNING,
            request,
            f"had no response within its time budget of {self.time_budget:g}s; "
            "cancelled and answered timeout (504)",
        )

    def _count_empty(self) -> None:
        self.stats.empty_errors += 1

    # -- the middleware's own answers ------------------------------------------

    async def _guided(
        self,
        send: Send,
        request: RequestInfo,
        reason: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        headers: HeaderList = (),
        problem: bool = False,
    ) -> None:
        answer = self._answers.answer(
            reason,
            status=status,
            accept=request.accept,
            accept_language=request.accept_language,
            request_id=request.request_id,
            nonce=request.nonce,
            method=request.method,
            retry_after=retry_after,
            problem=problem,
        )
        await self._send_answer(send, request, answer, headers)

    async def _send_answer(
        self, send: Send, request: RequestInfo, answer: Answer, extra: HeaderList
    ) -> None:
        headers = [*answer.headers, *extra, (b"x-request-id", request.request_id.encode("ascii"))]
        policy = self.policy_for(request.nonce) if answer.html else None
        if policy is not None:
            headers.append((b"content-security-policy", policy))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        body = b"" if request.method == "HEAD" else answer.body
        await send({"type": "http.response.body", "body": body})

    def policy_for(self, nonce: str) -> bytes | None:
        """The ``Content-Security-Policy`` value for a request's nonce (None: no policy)."""
        parts = self._csp
        return None if parts is None else nonce.join(parts).encode("latin-1")

    async def _serve_report(
        self, scope: Scope, receive: Receive, send: Send, request: RequestInfo
    ) -> None:
        """The watchdog's beacon: 204 when accepted, problem+json saying why not.
        HEAD answers 204 too: the watchdog asks it whether the backend is reachable."""
        if request.method == "HEAD":
            headers = [(b"allow", b"POST, HEAD"), (b"x-request-id", request.request_id.encode())]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if request.method != "POST":
            allow = [(b"allow", b"POST, HEAD")]
            await self._guided(send, request, "bad-request", status=405, headers=allow)
            return
        client = scope.get("client")
        try:
            body = await read_body(receive, MAX_BODY)
            report = self.reports.accept(body, client[0] if client else "unknown")
        except Rejected as exc:
            self.stats.reports_rejected += 1
            if exc.status == 429:
                await self._guided(
                    send, request, "rate-limited", retry_after=exc.retry_after, problem=True
                )
            else:
                await self._guided(send, request, "bad-request", status=exc.status, problem=True)
            return
        self.stats.reports_accepted += 1
        if self.rollout is not None:
            try:
                self.rollout.report(report)
            except Exception:  # counting must never cost the beacon its answer
                logger.exception("counting report %s for the rollout failed", request.request_id)
        headers = [(b"x-request-id", request.request_id.encode("ascii"))]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _serve_mirror(self, mirror: Mirror, request: RequestInfo, send: Send) -> None:
        """A verified copy of a published file, for pages whose origins failed."""
        cors = SHARED[:2]  # guided pages carry nosniff themselves
        if request.method not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET, HEAD"), *cors]
            await self._guided(send, request, "bad-request", status=405, headers=allow)
            return
        path = request.path[len(self.mirror_path) :]
        found = await mirror.answer(path, if_none_match=request.if_none_match)
        if not isinstance(found, MirrorAnswer):
            if found == "not-found":
                self.stats.mirror_misses += 1
            else:
                self.stats.mirror_failures += 1
            await self._guided(send, request, found, headers=cors)
            return
        self.stats.mirror_hits += 1
        headers = [*found.headers, (b"x-request-id", request.request_id.encode("ascii"))]
        await send({"type": "http.response.start", "status": found.status, "headers": headers})
        body = b"" if request.method == "HEAD" else found.body
        await send({"type": "http.response.body", "body": body})


def _log(level: int, request: RequestInfo, what: str, *, exc: bool = False) -> None:
    logger.log(
        level,
        "request %s: %s %r %s",
        request.request_id,
        request.method,
        request.path,
        what,
        exc_info=exc,
        extra={"request_id": request.request_id},
    )


def _positive_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
