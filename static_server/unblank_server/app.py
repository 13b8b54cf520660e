"""The ASGI app of ``unblank serve``: published files, CDN-style, never a blank.

>>> from unblank_server.app import create_app
>>> app = create_app("examples/demo_dist")          # doctest: +SKIP
>>> # uvicorn: uvicorn.run(app); or inside Starlette:
>>> # Starlette(routes=[Mount("/static", app=app)])  # files at /static/<path>

URL space (``prefix`` is ``/static`` by default; mounted inside another app,
the mount point is the prefix):

==============================  ================================================
``<prefix>/<published path>``   fingerprinted file: immutable for a year
``<prefix>/<logical name>``     the current generation's file: ``no-cache``
``/_unblank/manifest.json``     the current manifest: ``no-cache`` + ETag
``/_unblank/pages/<reason>``    a guided page by reason (for CDNs and nginx)
``/_unblank/health``            readiness: 200 once a generation is loaded
``/_unblank/health/live``       liveness: 200 while the process answers
``/_unblank/metrics``           Prometheus text format
==============================  ================================================

Everything else, and everything that goes wrong, is a guided page with the
right status (HTML for browsers, ``application/problem+json`` for API
clients, text otherwise). The ``/_unblank/`` URLs are answered by
:mod:`unblank_server.admin`, bodies read by :mod:`unblank_server.bodies`.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_left
from pathlib import Path
from time import perf_counter
from typing import Final

import anyio

from unblank.reports import ReportIntake
from unblank_pages import Brand, PageRenderer
from unblank_server.admin import Admin
from unblank_server.bodies import Bodies
from unblank_server.conditional import (
    if_range_holds,
    partial_answer,
    preconditions,
    send_pieces,
)
from unblank_server.errors import ConfigError
from unblank_server.guided import GuidedPages
from unblank_server.http import (
    RangeNotSatisfiable,
    choose_coding,
    parse_ranges,
)
from unblank_server.metrics import BOUNDS, Stats
from unblank_server.replies import Message, Receive, Replies, Scope, Send, header
from unblank_server.resources import (
    CorruptFile,
    FileGone,
    HeaderPolicy,
    MemoryTier,
    Resource,
    Variant,
    check_in_place,
)
from unblank_server.settings import MiB, ServeSettings
from unblank_server.store import Store

__all__ = ["ServeSettings", "StaticApp", "create_app"]

logger = logging.getLogger("unblank.serve")
access_logger = logging.getLogger("unblank.access")

# The request fields the server reads; every other one is skipped unparsed.
_FIELDS: Final = frozenset(
    {
        b"accept-encoding",
        b"if-none-match",
        b"if-modified-since",
        b"if-match",
        b"if-unmodified-since",
        b"range",
        b"if-range",
    }
)
_CONDITIONS: Final = (b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since")
_NO_FIELDS: Final[dict[bytes, bytes]] = {}
_NEGOTIATION_MEMO: Final = 1024
_MEMO_FIELD: Final = 256  # longer field values are answered but not remembered
_LOOK_AGAIN: Final = 0.05  # seconds between looks at DIST for a path no table has


def create_app(
    dist: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    cors_origin: str | None = "*",
    resource_policy: str | None = "cross-origin",
    max_in_flight: int = 1024,
    shed_retry_after: int = 5,
    memory_bytes: int = 128 * MiB,
    memory_file_limit: int = 2 * MiB,
    reload_interval: float = 1.0,
    access_log: bool = False,
    brand: Brand | None = None,
) -> StaticApp:
    """The ASGI app serving what ``unblank build`` published in ``dist``.

    - ``prefix``: URL path of the files; ``None`` means ``/static`` when the
      app is the server's root app and the mount point when it is mounted.
    - ``cors_origin``: ``Access-Control-Allow-Origin`` (and
      ``Timing-Allow-Origin``) of every file; ``None`` to send none.
    - ``resource_policy``: ``Cross-Origin-Resource-Policy``; ``None`` for none.
    - ``max_in_flight``: beyond this many requests being answered, answer 503
      with ``Retry-After: shed_retry_after`` and the ``overloaded`` page.
    - ``memory_bytes``/``memory_file_limit``: the memory tier's capacity and
      the largest file it holds; larger files are streamed from disk.
    - ``reload_interval``: seconds between checks for a new generation (0: never).
    - ``access_log``: one structured record per request on ``unblank.access``.

    Raises :class:`ConfigError` when ``dist`` is not a folder. A folder with no
    generation yet is served (503, not ready) until ``unblank build`` publishes one.
    """
    settings = ServeSettings(
        dist=Path(dist),
        prefix=prefix,
        cors_origin=cors_origin,
        resource_policy=resource_policy,
        max_in_flight=max_in_flight,
        shed_retry_after=shed_retry_after,
        memory_bytes=memory_bytes,
        memory_file_limit=memory_file_limit,
        reload_interval=reload_interval,
        access_log=access_log,
        brand=brand,
    )
    return StaticApp(settings)


class StaticApp:
    """The ASGI callable; build it with :func:`create_app`."""

    def __init__(self, settings: ServeSettings) -> None:
        if not settings.dist.is_dir():
            raise ConfigError(
                f"{str(settings.dist)!r} is not a folder: pass the DIST of `unblank build SRC DIST`"
            )
        self.settings = settings
        self.stats = Stats()
        self.policy = HeaderPolicy(
            cors_origin=settings.cors_origin, resource_policy=settings.resource_policy
        )
        self.tier = MemoryTier(
            capacity=settings.memory_bytes, file_limit=settings.memory_file_limit
        )
        self.store = Store(
            dist=settings.dist,
            policy=self.policy,
            stats=self.stats,
            interval=settings.reload_interval,
        )
        # Error pages carry the CORS headers too: a page on another origin
        # loading a missing file with `crossorigin` must see the 404, not a
        # CORS failure that hides it (guided pages set nosniff themselves).
        cors = [h for h in self.policy.extra() if h[0] != b"x-content-type-options"]
        self.pages = GuidedPages(PageRenderer(brand=settings.brand), extra_headers=cors)
        self.reports = ReportIntake()
        allow_origin = (
            None
            if settings.cors_origin is None
            else (b"access-control-allow-origin", settings.cors_origin.encode("latin-1"))
        )
        self.replies = Replies(pages=self.pages, allow_origin=allow_origin)
        self.in_flight = 0
        self.bodies = Bodies(
            tier=self.tier, file_limit=self.tier.file_limit if settings.memory_bytes else -1
        )
        self.admin = Admin(
            store=self.store,
            stats=self.stats,
            tier=self.tier,
            reports=self.reports,
            replies=self.replies,
            in_flight=lambda: self.in_flight,
            serve_file=self._file,
        )
        self._negotiated: dict[tuple[bytes | None, tuple[str, ...]], str | bool | None] = {}
        self._looked = 0.0
        self._access = settings.access_log
        self._cache = self.tier.cache
        self._max_in_flight = settings.max_in_flight
        self._prefix_slash = ("/static" if settings.prefix is None else settings.prefix) + "/"

    def __repr__(self) -> str:
        return f"StaticApp({self.settings!r})"

    def close(self) -> None:
        """Stop watching DIST (tests and embedders; servers exit anyway)."""
        self.store.close()

    def __enter__(self) -> StaticApp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- ASGI ----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        store = self.store
        if not store.watching:
            store.watch()
        started = perf_counter()
        path: str = scope["path"]
        root_path: str | None = scope.get("root_path")
        if root_path:
            path, prefix = self._mounted(path, root_path)
        else:
            prefix = self._prefix_slash
        status, coding, sent = 500, "identity", 0
        if path.startswith(prefix):
            relative = path[len(prefix) :]
            resource = store.table.resources.get(relative)
            method = scope["method"]
            # The hot path: a GET or HEAD of a prepared file, answered from
            # prepared headers and, for bodies in memory, without any I/O.
            if (
                resource is not None
                and (method == "GET" or method == "HEAD")
                and self.in_flight < self._max_in_flight
            ):
                fields = _NO_FIELDS
                for name, value in scope["headers"]:
                    if name in _FIELDS:
                        if fields is _NO_FIELDS:
                            fields = {}
                        known = fields.get(name)
                        fields[name] = value if known is None else known + b", " + value
                key = (fields.get(b"accept-encoding"), resource.codings)
                chosen = self._negotiated.get(key, 0)
                if chosen == 0:
                    chosen = self._negotiate(key)
                variant = resource.variants.get(chosen)  # type: ignore[arg-type]
                others = len(fields) - (key[0] is not None)  # fields besides Accept-Encoding
                if variant is None or (
                    others and not (others == 1 and fields.get(b"if-none-match") == variant.tag)
                ):
                    status, coding, sent = await self._admit(scope, send, resource, method, fields)
                elif others:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 304,
                            "headers": variant.not_modified,
                        }
                    )
                    await send({"type": "http.response.body", "body": b""})
                    status, coding = 304, variant.label
                elif (
                    method == "HEAD"
                    or (
                        body := variant.pinned
                        if variant.pinned is not None
                        else self._cache.get(variant.file)  # type: ignore[arg-type]
                    )
                    is None
                ):
                    status, coding, sent = await self._admit(scope, send, resource, method, fields)
                else:
                    if variant.pinned is None:
                        self.tier.hits += 1
                    self.in_flight += 1
                    try:
                        await send(
                            {
                                "type": "http.response.start",
                                "status": 200,
                                "headers": variant.headers,
                            }
                        )
                        await send({"type": "http.response.body", "body": body})
                    finally:
                        self.in_flight -= 1
                    status, coding, sent = 200, variant.label, len(body)
            elif prefix == "/" and relative.startswith("_unblank/"):
                status, sent = await self.admin.answer(scope, receive, send, relative[9:])
            else:
                status, coding, sent = await self._file(scope, send, resource, relative)
        elif path.startswith("/_unblank/"):
            status, sent = await self.admin.answer(scope, receive, send, path[10:])
        else:
            status, sent = await self.replies.page(scope, send, "not-found")
        elapsed = perf_counter() - started
        stats = self.stats
        counted = (status, coding)
        requests = stats.requests
        requests[counted] = requests.get(counted, 0) + 1
        stats.bytes_sent += sent
        stats.buckets[bisect_left(BOUNDS, elapsed)] += 1
        stats.seconds_total += elapsed
        if self._access:
            self._log_access(scope, status, coding, sent, elapsed)

    def _mounted(self, path: str, root_path: str) -> tuple[str, str]:
        """The route path and prefix of a mounted app (Starlette's ``get_route_path``)."""
        if path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("/", ""):
            path = path[len(root_path) :]
        if self.settings.prefix is None:
            return path, "/"
        return path, self._prefix_slash

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.store.watch()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- files -----------------------------------------------------------------

    async def _file(
        self, scope: Scope, send: Send, resource: Resource | None, relative: str
    ) -> tuple[int, str, int]:
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            status, sent = await self.replies.other_method(scope, send, method)
            return status, "identity", sent
        if resource is None and not _malformed(relative):
            resource = await self._look_again(relative)
        if resource is None:
            reason = "bad-request" if _malformed(relative) else self._missing_reason()
            status, sent = await self.replies.page(scope, send, reason)
            return status, "identity", sent
        if self.in_flight >= self.settings.max_in_flight:
            status, sent = await self._shed(scope, send)
            return status, "identity", sent
        return await self._admit(scope, send, resource, method, None)

    async def _admit(
        self,
        scope: Scope,
        send: Send,
        resource: Resource,
        method: str,
        fields: dict[bytes, bytes] | None,
    ) -> tuple[int, str, int]:
        """Answer while counted in flight: a streamed file holds its place until sent."""
        self.in_flight += 1
        started = _Started(send)
        try:
            return await self._answer(scope, started, resource, method, fields)
        except Exception:
            # Whatever went wrong, the user gets a page, not the server's bare
            # 500 (unless the response had started: the server then cuts it).
            logger.exception("answering %s %s failed", method, scope.get("path"))
            if started.started:
                raise
            status, sent = await self.replies.page(scope, send, "server-error")
            return status, "identity", sent
        finally:
            self.in_flight -= 1

    async def _look_again(self, relative: str) -> Resource | None:
        """A path not in the table may belong to a generation published since the
        watcher last looked: a shell rendered from the new manifest asks for its
        files at once. Look at DIST (at most every 50 ms), reload off the loop."""
        now = perf_counter()
        if now - self._looked < _LOOK_AGAIN:
            return None
        self._looked = now
        if not await anyio.to_thread.run_sync(self.store.changed):
            return None
        await anyio.to_thread.run_sync(self.store.reload)
        return self.store.table.resources.get(relative)

    def _missing_reason(self) -> str:
        return "not-found" if self.store.table.manifest is not None else "maintenance"

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        resource: Resource,
        method: str,
        fields: dict[bytes, bytes] | None,
    ) -> tuple[int, str, int]:
        if fields is None:
            fields = _request_fields(scope)
        accept_encoding = fields.get(b"accept-encoding")
        key = (accept_encoding, resource.codings)
        coding = self._negotiated.get(key, 0)
        if coding == 0:
            coding = self._negotiate(key)
        if coding is False:
            status, sent = await self.replies.page(scope, send, "bad-request", status=406)
            return status, "identity", sent
        variant = resource.variants[coding]  # type: ignore[index]
        if fields:
            verdict = preconditions(fields, variant, resource, method)
            if verdict == 304:
                await send(
                    {"type": "http.response.start", "status": 304, "headers": variant.not_modified}
                )
                await send({"type": "http.response.body", "body": b""})
                return 304, variant.label, 0
            if verdict == 412:
                status, sent = await self.replies.page(scope, send, "bad-request", status=412)
                return status, "identity", sent
            if method == "GET" and b"range" in fields:
                ranged = await self._ranges(scope, send, fields, resource, variant)
                if ranged is not None:
                    return ranged
        try:
            sent = await self._send_variant(scope, send, variant, method)
        except FileGone as exc:
            return await self._unservable(scope, send, exc)
        except CorruptFile as exc:
            identity = resource.identity
            if variant is not identity and choose_coding(_text(accept_encoding), ()) is None:
                # The file itself may be whole: send it rather than an error.
                logger.error("refusing to serve a damaged file: %s", exc)
                return await self._answer_identity(scope, send, identity, method)
            return await self._unservable(scope, send, exc)
        return 200, variant.label, sent

    async def _answer_identity(
        self, scope: Scope, send: Send, identity: Variant, method: str
    ) -> tuple[int, str, int]:
        try:
            sent = await self._send_variant(scope, send, identity, method)
        except (FileGone, CorruptFile) as exc:
            return await self._unservable(scope, send, exc)
        return 200, identity.label, sent

    def _negotiate(self, key: tuple[bytes | None, tuple[str, ...]]) -> str | bool | None:
        header = None if key[0] is None else key[0].decode("latin-1")
        coding = choose_coding(header, key[1])
        if header is not None and len(header) > _MEMO_FIELD:
            return coding  # remembering hostile megabyte headers would be a memory leak
        if len(self._negotiated) >= _NEGOTIATION_MEMO:
            self._negotiated.clear()
        self._negotiated[key] = coding
        return coding

    async def _send_variant(self, scope: Scope, send: Send, variant: Variant, method: str) -> int:
        if method == "HEAD":
            await send({"type": "http.response.start", "status": 200, "headers": variant.headers})
            await send({"type": "http.response.body", "body": b""})
            return 0
        body = await self.bodies.whole(variant)
        if body is not None:
            await send({"type": "http.response.start", "status": 200, "headers": variant.headers})
            await send({"type": "http.response.body", "body": body})
            return len(body)
        if "http.response.pathsend" in scope.get("extensions", ()):
            # The server sends the file itself (sendfile): variant.file is the
            # resolved path, checked to lie inside DIST when it was prepared.
            # The server opens it following links: check it is still that file.
            check_in_place(variant)
            await send({"type": "http.response.start", "status": 200, "headers": variant.headers})
            await send({"type": "http.response.pathsend", "path": variant.file})
            return variant.size
        return await self.bodies.stream(send, variant, 200, variant.headers, [(0, variant.size)])

    # -- ranges ------------------------------------------------------------------

    async def _ranges(
        self,
        scope: Scope,
        send: Send,
        fields: dict[bytes, bytes],
        resource: Resource,
        variant: Variant,
    ) -> tuple[int, str, int] | None:
        """A 206 or 416 answer, or None to answer with the full 200."""
        # Ranges count bytes of the file itself, as its SRI digest and the
        # manifest's size do; a client that refuses identity gets the full 200.
        if variant.coding is not None:
            if choose_coding(_text(fields.get(b"accept-encoding")), ()) is not None:
                return None
            variant = resource.identity
        if_range = fields.get(b"if-range")
        if if_range is not None and not if_range_holds(
            if_range.decode("latin-1"), variant, resource
        ):
            return None
        try:
            ranges = parse_ranges(fields[b"range"].decode("latin-1"), variant.size)
        except RangeNotSatisfiable:
            extra = [(b"content-range", f"bytes */{variant.size}".encode("ascii"))]
            status, sent = await self.replies.page(
                scope, send, "bad-request", status=416, headers=extra
            )
            return status, "identity", sent
        if ranges is None:
            return None
        status, headers, pieces = partial_answer(variant, resource.content_type, ranges)
        try:
            body = await self.bodies.whole(variant)
            if body is None:
                sent = await self.bodies.stream(send, variant, status, headers, pieces)
            else:
                sent = await send_pieces(send, status, headers, pieces, body)
        except (FileGone, CorruptFile) as exc:
            return await self._unservable(scope, send, exc)
        return status, "identity", sent

    async def _unservable(
        self, scope: Scope, send: Send, exc: FileGone | CorruptFile
    ) -> tuple[int, str, int]:
        """A prepared file that is gone (404) or damaged (500, logged)."""
        if isinstance(exc, FileGone):
            status, sent = await self.replies.page(scope, send, "not-found")
        else:
            logger.error("refusing to serve a damaged file: %s", exc)
            status, sent = await self.replies.page(scope, send, "server-error")
        return status, "identity", sent

    # -- everything else -----------------------------------------------------------

    async def _shed(self, scope: Scope, send: Send) -> tuple[int, int]:
        self.stats.shed += 1
        return await self.replies.page(
            scope, send, "overloaded", retry_after=self.settings.shed_retry_after
        )

    def _log_access(
        self, scope: Scope, status: int, coding: str | None, sent: int, elapsed: float
    ) -> None:
        client = scope.get("client")
        query = scope.get("query_string", b"")
        access_logger.info(
            "%s %s %d",
            scope["method"],
            scope["path"],
            status,
            extra={
                "http": {
                    "method": scope["method"],
                    "path": scope["path"],
                    "query": query.decode("latin-1") if query else None,
                    "status": status,
                    "encoding": coding or "identity",
                    "bytes": sent,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                    "user_agent": header(scope, b"user-agent"),
                    "request_id": header(scope, b"x-request-id"),
                }
            },
        )


# -- helpers ---------------------------------------------------------------------


class _Started:
    """A ``send`` that remembers whether the response has started."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = True
        await self.send(message)


def _request_fields(scope: Scope) -> dict[bytes, bytes]:
    """The request fields the server reads, repeated ones joined as a list."""
    fields: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _FIELDS:
            known = fields.get(name)
            fields[name] = value if known is None else known + b", " + value
    return fields


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _malformed(relative: str) -> bool:
    """Paths no published file can have: traversal, NUL, backslashes, bad UTF-8."""
    if "\0" in relative or "\\" in relative or "\ufffd" in relative:
        return True
    if relative.endswith("/"):
        relative = relative[:-1]  # a folder: not found, rather than malformed
    if not relative:
        return False
    return any(part in ("", ".", "..") for part in relative.split("/"))
