"""One request's trip through the app: its time budget, and its response on the way out.

The middleware reads what it needs of a request once (:func:`read_request`)
and hands the app an :class:`Exchange`'s ``send``.  The exchange adds the
request id (and the CSP) to the response start, holds back the start of a
500/502/503/504 until the first body message shows whether anything is in
it, and drops whatever the app sends after the middleware answered instead
(a timeout, an exception, an empty error answer).

A 5xx answer that fits in one body message (nearly all do) is sent when the
app returns, not before: an app that raises after sending one has failed,
and the guided page says so instead.  This is what makes a Starlette app
wrapped from outside show the guided page: Starlette's own
``ServerErrorMiddleware`` sends a bare "Internal Server Error" (or, with
``debug=True``, a traceback) and then raises.  Nothing more is kept than the
one message the app already built.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import anyio

from unblank._asgi import Headers, Message, Scope, Send
from unblank_pages import request_id_from, retry_after_seconds

__all__ = ["EMPTY_ERRORS", "Exchange", "Hooks", "RequestInfo", "read_request"]

HeaderList = Sequence[tuple[bytes, bytes]]

# An app's own error answer with nothing in it becomes the page of its status.
EMPTY_ERRORS: Final = {500: "server-error", 502: "upstream", 503: "overloaded", 504: "timeout"}
# Representation headers of an empty error answer that the guided page replaces;
# the others (Set-Cookie, CORS, WWW-Authenticate) are kept.
_REPLACED: Final = frozenset(
    {
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"content-language",
        b"content-security-policy",
        b"transfer-encoding",
        b"cache-control",
        b"etag",
        b"last-modified",
        b"vary",
        b"retry-after",
        b"x-content-type-options",
        b"x-request-id",
    }
)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the middleware reads from a request, read once."""

    method: str
    path: str  # without the root_path
    request_id: str
    nonce: str
    accept: str | None
    accept_language: str | None
    if_none_match: str | None


def read_request(scope: Scope) -> RequestInfo:
    """The request's method, path and the few header fields the middleware uses."""
    request_id = accept = language = if_none_match = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            request_id = value.decode("latin-1")
        elif name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"accept-language":
            language = value.decode("latin-1")
        elif name == b"if-none-match":
            if_none_match = value.decode("latin-1")
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return RequestInfo(
        method=scope["method"],
        path=path,
        request_id=request_id_from(request_id),
        nonce=secrets.token_urlsafe(16),  # 128 bits, as CSP3 asks of a nonce
        accept=accept,
        accept_language=language,
        if_none_match=if_none_match,
    )


class SendGuided(Protocol):
    def __call__(
        self,
        send: Send,
        request: RequestInfo,
        reason: str,
        *,
        retry_after: int | None = None,
        headers: HeaderList = (),
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class Hooks:
    """What an exchange needs from its middleware; made once per middleware."""

    guided: SendGuided  # send a guided page
    policy_for: Callable[[str], bytes | None]  # the CSP for a nonce, None for none
    on_timeout: Callable[[RequestInfo], None]  # count and log
    on_empty_error: Callable[[], None]  # count


@dataclass(slots=True)
class _Held:
    """A 5xx ``http.response.start`` kept back until its first body message."""

    message: Message
    empty: bool  # Content-Length: 0 said so already
    retry_after: int | None
    kept: Headers  # the app's headers that a guided page keeps
    body: Message | None = None  # the whole body, in one message, once the app sent it


class Exchange:
    """One request's response on its way out: decorated, held, replaced or forwarded.

    The time budget is a timer on the event loop rather than a deadline on
    the handler's task: at the budget the 504 goes out from a task of its own
    at once, even when the handler cannot be cancelled yet (a sync endpoint
    in a worker thread finishes its call first), and the handler is
    cancelled; whatever it sends afterwards is dropped.
    """

    __slots__ = (
        "_cancel",
        "_hooks",
        "_page",
        "_request",
        "_send",
        "_timer",
        "forwarded",
        "held",
        "replaced",
        "timed_out",
    )

    def __init__(self, hooks: Hooks, send: Send, request: RequestInfo) -> None:
        self._hooks = hooks
        self._send = send
        self._request = request
        self.held: _Held | None = None
        self.forwarded = False  # the client has the app's status and headers
        self.replaced = False  # the middleware answers instead of the app
        self.timed_out = False
        self._cancel: anyio.CancelScope | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._page: asyncio.Task[None] | None = None

    def arm(self, cancel: anyio.CancelScope, budget: float) -> None:
        """Answer 504 and cancel ``cancel`` when no response started within ``budget`` s."""
        self._cancel = cancel
        self._timer = asyncio.get_running_loop().call_later(budget, self._expire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self.forwarded or self.replaced or self.held is not None:
            return  # a start disarms the timer first; never answer twice
        self.timed_out = True
        self._hooks.on_timeout(self._request)
        self._page = asyncio.get_running_loop().create_task(self.answer("timeout"))
        if self._cancel is not None:
            self._cancel.cancel()

    async def timeout_answered(self) -> None:
        """Wait until the 504 sent at the budget is out (the ASGI call ends after it)."""
        if self._page is not None:
            await self._page

    async def send(self, message: Message) -> None:
        """The ``send`` the app is given."""
        if self.timed_out or self.replaced:
            return  # too late, or the middleware answered: the guided page goes out instead
        if message["type"] == "http.response.start":
            self.disarm()  # started in time: a long body may take its time
            await self._start(message)
            return
        held = self.held
        if held is not None:
            if message["type"] == "http.response.body" and held.body is None:
                body, more = message.get("body", b""), message.get("more_body", False)
                if held.empty or not (body or more):
                    await self.replace_empty(held)
                    return
                if not body:
                    return  # an empty piece with more to come says nothing yet
                if not more:
                    held.body = message  # the whole answer: out when the app returns
                    return
            await self._flush(held)
        await self._send(message)

    async def finish(self) -> None:
        """The app returned: send what is held, or the guided page for an empty answer."""
        held = self.held
        if held is None:
            return
        if held.body is None:
            await self.replace_empty(held)  # a start and then nothing at all
        else:
            await self._flush(held)

    async def _flush(self, held: _Held) -> None:
        self.held = None
        self.forwarded = True
        await self._send(held.message)
        if held.body is not None:
            await self._send(held.body)

    async def _start(self, message: Message) -> None:
        request = self._request
        hold = message["status"] in EMPTY_ERRORS and request.method != "HEAD"
        headers: Headers = []
        has_id = has_csp = html = empty = False
        retry_after: int | None = None
        kept: Headers = []
        for name, value in message.get("headers", ()):
            key = bytes(name).lower()
            headers.append((name, value))
            if key == b"x-request-id":
                has_id = True
            elif key == b"content-security-policy":
                has_csp = True
            elif key == b"content-type":
                html = bytes(value[:9]).lower() == b"text/html"
            if hold:
                if key == b"content-length":
                    empty = bytes(value).strip() == b"0"
                elif key == b"retry-after":
                    retry_after = retry_after_seconds(bytes(value).decode("latin-1"))
                if key not in _REPLACED:
                    kept.append((name, value))
        if not has_id:
            headers.append((b"x-request-id", request.request_id.encode("ascii")))
        if html and not has_csp:
            policy = self._hooks.policy_for(request.nonce)
            if policy is not None:
                headers.append((b"content-security-policy", policy))
        out = {**message, "headers": headers}
        if hold:
            self.held = _Held(out, empty, retry_after, kept)
            return
        self.forwarded = True
        await self._send(out)

    async def replace_empty(self, held: _Held) -> None:
        """The guided page of the status, for an error answer with nothing in it."""
        self._hooks.on_empty_error()
        reason = EMPTY_ERRORS[held.message["status"]]
        await self.answer(reason, retry_after=held.retry_after, extra=held.kept)

    async def answer(
        self, reason: str, *, retry_after: int | None = None, extra: HeaderList = ()
    ) -> None:
        """Answer with a guided page instead of the app."""
        self.held = None
        self.replaced = True
        await self._hooks.guided(
            self._send, self._request, reason, retry_after=retry_after, headers=extra
        )
