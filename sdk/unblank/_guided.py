"""Guided pages as HTTP answers, rendered once per kind and reused.

The middleware's and ``unblank serve``'s error answers both come from here.
Rendering a page through Jinja2 takes about 0.2 ms, and a server shedding a
flood of requests (or a flood of bad ones) must answer each in microseconds.  So each distinct page
(reason, status, format, language, retry behaviour, Retry-After) is rendered
once with placeholders for the request's reference and CSP nonce; answering
joins the prepared pieces around the request's own values.  Both need no
escaping in HTML, JSON or text: references pass ``request_id_from`` (letters,
digits and ``._:+=/-``), nonces come from ``secrets.token_urlsafe``.

>>> from unblank_pages import PageRenderer
>>> pages = GuidedAnswers(PageRenderer())
>>> answer = pages.answer("timeout", accept="application/json", request_id="req-7")
>>> answer.status, b'"instance": "req-7"' in answer.body, answer.html
(504, True, False)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from unblank._asgi import Headers
from unblank_pages import PageRenderer, request_id_from
from unblank_pages.negotiation import HTML, PROBLEM, choose_format, choose_locale

__all__ = ["Answer", "GuidedAnswers"]

_REFERENCE: Final = b"ub-0000000000000000"  # the shape of a generated reference
_NONCE: Final = b"ubNonce0placeholder000"  # the shape of secrets.token_urlsafe(16)
_SLOTS: Final = re.compile(b"(" + re.escape(_REFERENCE) + b"|" + re.escape(_NONCE) + b")")
_PAGES: Final = "/_unblank/pages/"  # where unblank serve answers the pages by reason
_MEMO_LIMIT: Final = 256  # distinct pages or header values remembered before starting over
_MEMO_FIELD: Final = 256  # longer header values are answered but never remembered


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete guided answer: status, headers (Content-Length included), body."""

    status: int
    headers: Headers
    body: bytes
    html: bool  # the page is HTML (a Content-Security-Policy applies to it)


@dataclass(frozen=True, slots=True)
class _Prepared:
    status: int
    headers: Headers  # without Content-Length
    pieces: tuple[bytes, ...]  # the body, split around the placeholders (kept as pieces)
    html: bool


class GuidedAnswers:
    """Negotiated guided pages, prepared once and filled in per request."""

    def __init__(self, renderer: PageRenderer, *, extra_headers: Headers | None = None) -> None:
        self.renderer = renderer
        self._extra = list(extra_headers or [])  # on every answer (CORS, say)
        self._prepared: dict[tuple[object, ...], _Prepared] = {}
        self._formats: dict[str | None, str] = {}
        self._locales: dict[str | None, str] = {}

    def answer(
        self,
        reason: str,
        *,
        status: int | None = None,
        accept: str | None = None,
        accept_language: str | None = None,
        request_id: str | None = None,
        nonce: str | None = None,
        method: str = "GET",
        retry_after: int | None = None,
        problem: bool = False,
        headers: Headers | None = None,
        pages_base: str = _PAGES,
    ) -> Answer:
        """The page for ``reason`` as the request's headers ask for it.

        ``status`` overrides the reason's own (a 405 or 413 uses the
        ``bad-request`` page); ``problem`` answers problem+json whatever
        ``Accept`` says (for endpoints that only programs call); ``headers``
        are added (``Allow``, ``Content-Range``); ``pages_base`` is where the
        human pages a problem's ``type`` names are (a mounted server's).
        """
        fmt = PROBLEM if problem else _memo(self._formats, accept, choose_format)
        locale = _memo(
            self._locales,
            accept_language,
            lambda value: choose_locale(
                value, self.renderer.catalogs, self.renderer.default_locale
            ),
        )
        repeatable = method in ("GET", "HEAD")
        key = (reason, status, fmt, locale, repeatable, retry_after, nonce is None, pages_base)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepare(
                reason, status, fmt, locale, method, retry_after, nonce is not None, pages_base
            )
            if len(self._prepared) >= _MEMO_LIMIT:
                self._prepared.clear()
            self._prepared[key] = prepared
        reference = request_id_from(request_id).encode("ascii")
        fill = (nonce or "").encode("ascii")
        body = b"".join(
            reference if piece == _REFERENCE else fill if piece == _NONCE else piece
            for piece in prepared.pieces
        )
        out = [*prepared.headers, (b"content-length", str(len(body)).encode("ascii"))]
        if headers:
            out += headers
        return Answer(prepared.status, out, body, prepared.html)

    def _prepare(
        self,
        reason: str,
        status: int | None,
        fmt: str,
        locale: str,
        method: str,
        retry_after: int | None,
        with_nonce: bool,
        pages_base: str,
    ) -> _Prepared:
        reference = _REFERENCE.decode("ascii")
        renderer = self.renderer
        if fmt == HTML:
            page = renderer.html(
                reason,
                locale=locale,
                request_id=reference,
                retry_after=retry_after,
                nonce=_NONCE.decode("ascii") if with_nonce else None,
                method=method,
            )
        elif fmt == PROBLEM:
            page = renderer.problem(
                reason, locale=locale, request_id=reference, retry_after=retry_after
            )
        else:
            page = renderer.text(
                reason, locale=locale, request_id=reference, retry_after=retry_after
            )
        code = page.status if status is None else status
        body = page.body
        if fmt == PROBLEM and code != page.status:
            body = body.replace(
                f'"status": {page.status}'.encode(), f'"status": {code}'.encode(), 1
            )
        headers: Headers = [(b"content-type", page.content_type.encode("latin-1"))]
        headers += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in page.headers.items()
        ]
        headers.append((b"vary", b"Accept, Accept-Language"))
        headers += self._extra
        if fmt == PROBLEM and pages_base != _PAGES:
            # Mounted: the problem's "type" is the human page where it really is.
            body = body.replace(b'"' + _PAGES.encode(), b'"' + pages_base.encode("utf-8"))
        return _Prepared(code, headers, tuple(_SLOTS.split(body)), fmt == HTML)


def _memo(
    memo: dict[str | None, str], value: str | None, choose: Callable[[str | None], str]
) -> str:
    found = memo.get(value)
    if found is None:
        found = choose(value)
        if value is not None and len(value) > _MEMO_FIELD:
            return found  # hostile megabyte headers are answered, never kept
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[value] = found
    return found
