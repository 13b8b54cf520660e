"""The server's answers that are not files, in ASGI: guided pages, OPTIONS and 405.

:class:`~unblank_server.app.StaticApp` and its ``/_unblank/`` endpoints
(:mod:`unblank_server.admin`) share one :class:`Replies`, so every error has
the same negotiated page and every preflight the same CORS headers. The ASGI
type aliases of the server live here too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from unblank_server.guided import GuidedPages

__all__ = [
    "ALLOW",
    "Headers",
    "Message",
    "Receive",
    "Replies",
    "Scope",
    "Send",
    "header",
    "pages_base",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

ALLOW: Final = b"GET, HEAD, OPTIONS"


class Replies:
    """Guided pages and method answers for one app's requests.

    ``allow_origin`` is the prepared ``Access-Control-Allow-Origin`` header,
    or None when the app sends no CORS headers.
    """

    def __init__(self, *, pages: GuidedPages, allow_origin: tuple[bytes, bytes] | None) -> None:
        self.pages = pages
        self.allow_origin = allow_origin

    async def page(
        self,
        scope: Scope,
        send: Send,
        reason: str,
        *,
        status: int | None = None,
        headers: Headers | None = None,
        retry_after: int | None = None,
    ) -> tuple[int, int]:
        """Answer with a guided page; returns (status, body bytes sent)."""
        wanted: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in (b"accept", b"accept-language", b"x-request-id") and name not in wanted:
                wanted[name] = value.decode("latin-1")
        if reason == "maintenance" and retry_after is None:
            retry_after = 10  # no generation yet: a deploy is under way
        answer = self.pages.answer(
            reason,
            status=status,
            accept=wanted.get(b"accept"),
            accept_language=wanted.get(b"accept-language"),
            request_id=wanted.get(b"x-request-id"),
            method=scope["method"],
            retry_after=retry_after,
            headers=headers,
            pages_base=pages_base(scope),
        )
        head = scope["method"] == "HEAD"
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": b"" if head else answer.body})
        return answer.status, 0 if head else len(answer.body)

    async def other_method(self, scope: Scope, send: Send, method: str) -> tuple[int, int]:
        """OPTIONS (a CORS preflight) or 405 for a URL that answers GET and HEAD."""
        if method == "OPTIONS":
            # No Content-Length: RFC 9110 §8.6 forbids it in a 204.
            headers: Headers = [(b"allow", ALLOW)]
            if self.allow_origin is not None:
                headers += [
                    self.allow_origin,
                    (b"access-control-allow-methods", ALLOW),
                    (b"access-control-max-age", b"86400"),
                ]
                for name, value in scope["headers"]:
                    if name == b"access-control-request-headers" and len(value) <= 1024:
                        headers.append((b"access-control-allow-headers", value))
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return 204, 0
        return await self.page(scope, send, "bad-request", status=405, headers=[(b"allow", ALLOW)])


def pages_base(scope: Scope) -> str:
    """Where ``/_unblank/pages/`` is for this request (under the mount point, if any)."""
    root_path = scope.get("root_path") or ""
    return (
        f"{root_path}/_unblank/pages/"
        if root_path.isascii() and '"' not in root_path
        else "/_unblank/pages/"
    )


def header(scope: Scope, wanted: bytes) -> str | None:
    """The first value of a request field, cut to 1 KiB (for logs and pages)."""
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))[:1024]
    return None
