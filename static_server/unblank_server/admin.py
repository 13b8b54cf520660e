"""The server's own URLs under ``/_unblank/``: everything but the published files.

==============================  ================================================
``manifest.json``               the current manifest: ``no-cache`` + ETag
``manifests/<generation>.json`` a retained generation's manifest (pages opened
                                before a deploy still use its files)
``pages/<reason>``              a guided page by reason (for CDNs and nginx)
``health``, ``health/ready``    readiness: 200 once a generation is loaded
``health/live``                 liveness: 200 while the process answers
``metrics``                     Prometheus text format
``report``                      the watchdog's incident reports (POST)
==============================  ================================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from unblank.reports import MAX_BODY, Rejected, ReportIntake, read_body
from unblank_pages import REASONS
from unblank_server.metrics import CONTENT_TYPE as METRICS_TYPE
from unblank_server.metrics import Gauges, Stats, exposition
from unblank_server.replies import Headers, Receive, Replies, Scope, Send, header, pages_base
from unblank_server.resources import MemoryTier, Resource
from unblank_server.store import Store

__all__ = ["Admin", "ServeFile"]

REPORT_ALLOW: Final = b"POST, HEAD, OPTIONS"

# Answers a prepared file as the app answers its assets (conditions, ranges,
# codings, counted in flight); returns (status, coding, body bytes sent).
ServeFile = Callable[[Scope, Send, Resource, str], Awaitable[tuple[int, str, int]]]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Admin:
    """The ``/_unblank/`` answers of one :class:`~unblank_server.app.StaticApp`.

    The app hands it every request under ``/_unblank/`` with the rest of the
    path (``"health/live"``); :meth:`answer` returns (status, body bytes sent).
    What changes while the app runs is read per request: the store's current
    table, the app's count of requests in flight (``in_flight``).
    """

    store: Store
    stats: Stats
    tier: MemoryTier
    reports: ReportIntake
    replies: Replies
    in_flight: Callable[[], int]
    serve_file: ServeFile

    async def answer(
        self, scope: Scope, receive: Receive, send: Send, name: str
    ) -> tuple[int, int]:
        method = scope["method"]
        if name == "report":
            return await self._report(scope, receive, send)
        if name == "manifest.json":
            table = self.store.table
            if table.manifest_resource is None:
                return await self.replies.page(scope, send, "maintenance")
            status, _, sent = await self.serve_file(scope, send, table.manifest_resource, name)
            return status, sent
        if method not in ("GET", "HEAD"):
            return await self.replies.other_method(scope, send, method)
        if name.startswith("manifests/") and name.endswith(".json"):
            return await self._history(scope, send, name[10:-5])
        if name in ("health", "health/ready", "health/live"):
            return await self._health(scope, send, live=name == "health/live")
        if name == "metrics":
            body = exposition(self.stats, self._gauges)
            return await _plain(scope, send, 200, METRICS_TYPE, body)
        if name.startswith("pages/") and name[6:] in REASONS:
            # Asked for by name, the page is the answer (200); a problem
            # document still says the status of the problem it describes.
            answer = self.replies.pages.answer(
                name[6:],
                accept=header(scope, b"accept"),
                accept_language=header(scope, b"accept-language"),
                request_id=header(scope, b"x-request-id"),
                pages_base=pages_base(scope),
            )
            head = method == "HEAD"
            await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
            await send({"type": "http.response.body", "body": b"" if head else answer.body})
            return 200, 0 if head else len(answer.body)
        return await self.replies.page(scope, send, "not-found")

    async def _history(self, scope: Scope, send: Send, generation: str) -> tuple[int, int]:
        # Only names the loaded table lists: they came out of parsed manifests,
        # so no spelling of a path can lead anywhere else.
        table = self.store.table
        if generation not in table.generations:
            return await self.replies.page(scope, send, "not-found")
        path = Path(self.store.root, "manifests", generation + ".json")
        try:
            body = await anyio.to_thread.run_sync(_read, path)
        except OSError:
            return await self.replies.page(scope, send, "not-found")
        headers: Headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            # A published generation never changes; gc may remove it, so not for a year.
            (b"cache-control", b"public, max-age=3600"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if self.replies.allow_origin is not None:
            headers.append(self.replies.allow_origin)
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        return 200, 0 if head else len(body)

    async def _health(self, scope: Scope, send: Send, *, live: bool) -> tuple[int, int]:
        table = self.store.table
        ready = table.manifest is not None
        report: dict[str, object] = {
            "status": "ok" if live or ready else "unavailable",
            "ready": ready,
            "generation": table.manifest.generation if table.manifest else None,
            "generations": list(table.generations),
            "files": len(table.resources),
            "in_flight": self.in_flight(),
        }
        if not ready:
            report["problem"] = table.error
        status = 200 if live or ready else 503
        body = json.dumps(report).encode("utf-8")
        return await _plain(scope, send, status, "application/json", body)

    async def _report(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, int]:
        """The watchdog's beacon: 204 when accepted, a guided 4xx saying why not."""
        method = scope["method"]
        allow_origin = self.replies.allow_origin
        if method == "OPTIONS":
            headers: Headers = [(b"allow", REPORT_ALLOW)]
            if allow_origin is not None:
                headers += [
                    allow_origin,
                    (b"access-control-allow-methods", b"POST"),
                    (b"access-control-allow-headers", b"content-type"),
                    (b"access-control-max-age", b"86400"),
                ]
            return await _empty(send, 204, headers)
        if method == "HEAD":  # the watchdog asking whether this origin answers at all
            return await _empty(send, 204, [(b"allow", REPORT_ALLOW)])
        if method != "POST":
            allow = [(b"allow", REPORT_ALLOW)]
            return await self.replies.page(scope, send, "bad-request", status=405, headers=allow)
        client = scope.get("client")
        try:
            body = await read_body(receive, MAX_BODY)
            self.reports.accept(body, client[0] if client else "unknown")
        except Rejected as exc:
            if exc.status == 429:
                return await self.replies.page(
                    scope, send, "rate-limited", retry_after=exc.retry_after
                )
            return await self.replies.page(scope, send, "bad-request", status=exc.status)
        return await _empty(send, 204, [] if allow_origin is None else [allow_origin])

    def _gauges(self) -> Gauges:
        table = self.store.table
        return Gauges(
            tier_hits=self.tier.hits,
            tier_misses=self.tier.misses,
            tier_bytes=self.tier.used,
            in_flight=self.in_flight(),
            generation=table.manifest.generation if table.manifest else None,
            generations=len(table.generations),
            reports=dict(self.reports.accepted),
            reports_rejected=dict(self.reports.rejected),
        )


def _read(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(4 * 1024 * 1024)


async def _empty(send: Send, status: int, headers: Headers) -> tuple[int, int]:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    return status, 0


async def _plain(
    scope: Scope, send: Send, status: int, content_type: str, body: bytes
) -> tuple[int, int]:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    head = scope["method"] == "HEAD"
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
    return status, 0 if head else len(body)
