"""Guided pages as HTTP answers, rendered once per kind and reused.

Rendering a page through Jinja2 costs far more than serving a file, and a
flood of bad requests must not cost more than a flood of good ones. So each
distinct page (reason, status, format, language, retry behaviour) is rendered
once with a placeholder reference; answering copies the bytes and puts the
request's reference in. References are validated by ``request_id_from`` to a
character set that needs no escaping in HTML, JSON or text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from unblank_pages import PageRenderer, request_id_from
from unblank_pages.negotiation import HTML, PROBLEM, choose_format, choose_locale

__all__ = ["ErrorAnswer", "GuidedPages"]

_PLACEHOLDER: Final = "ub-0000000000000000"  # the shape of a generated reference
_PLACEHOLDER_BYTES: Final = _PLACEHOLDER.encode("ascii")
_MEMO_LIMIT: Final = 256  # distinct header values remembered before starting over
_MEMO_FIELD: Final = 256  # longer header values are not remembered at all

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """A complete error response: status, headers and body."""

    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class _Template:
    status: int
    headers: Headers  # without Content-Length
    parts: tuple[bytes, ...]  # the body split at each placeholder


class GuidedPages:
    """Negotiated guided pages for the server's error answers.

    >>> pages = GuidedPages(PageRenderer())
    >>> answer = pages.answer("not-found", accept="application/json", request_id="abc-1")
    >>> answer.status, b'"instance": "abc-1"' in answer.body
    (404, True)
    """

    def __init__(self, renderer: PageRenderer, *, extra_headers: Headers | None = None) -> None:
        self.renderer = renderer
        self._extra = list(extra_headers or [])
        self._templates: dict[tuple[object, ...], _Template] = {}
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
        method: str = "GET",
        retry_after: int | None = None,
        headers: Headers | None = None,
        pages_base: str = "/_unblank/pages/",
    ) -> ErrorAnswer:
        """The page for ``reason`` as the request's headers ask for it.

        ``status`` overrides the reason's own (a 405 or 416 uses the
        ``bad-request`` page); ``headers`` are added (``Allow``, ``Content-Range``).
        """
        fmt = self._memo(self._formats, accept, choose_format)
        locale = self._memo(
            self._locales,
            accept_language,
            lambda value: choose_locale(
                value, self.renderer.catalogs, self.renderer.default_locale
            ),
        )
        repeatable = method in ("GET", "HEAD")
        key = (reason, status, fmt, locale, repeatable, retry_after, pages_base)
        template = self._templates.get(key)
        if template is None:
            template = self._render(reason, status, fmt, locale, method, retry_after)
            if fmt == PROBLEM and pages_base != "/_unblank/pages/":
                # Mounted: the problem's "type" is the human page where it really is.
                parts = tuple(
                    part.replace(b'"/_unblank/pages/', b'"' + pages_base.encode("utf-8"))
                    for part in template.parts
                )
                template = _Template(template.status, template.headers, parts)
            if len(self._templates) >= _MEMO_LIMIT:
                self._templates.clear()
            self._templates[key] = template
        reference = request_id_from(request_id).encode("ascii")
        body = reference.join(template.parts)
        out = [*template.headers, (b"content-length", str(len(body)).encode("ascii"))]
        if headers:
            out += headers
        return ErrorAnswer(template.status, out, body)

    @staticmethod
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

    def _render(
        self,
        reason: str,
        status: int | None,
        fmt: str,
        locale: str,
        method: str,
        retry_after: int | None,
    ) -> _Template:
        options = {"locale": locale, "request_id": _PLACEHOLDER, "retry_after": retry_after}
        if fmt == HTML:
            page = self.renderer.html(reason, method=method, **options)  # type: ignore[arg-type]
        elif fmt == PROBLEM:
            page = self.renderer.problem(reason, **options)  # type: ignore[arg-type]
        else:
            page = self.renderer.text(reason, **options)  # type: ignore[arg-type]
        code = status if status is not None else page.status
        body = page.body
        if status is not None and fmt == PROBLEM:
            body = body.replace(
                f'"status": {page.status}'.encode(), f'"status": {code}'.encode(), 1
            )
        headers: Headers = [(b"content-type", page.content_type.encode("latin-1"))]
        headers += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in page.headers.items()
        ]
        headers.append((b"vary", b"Accept, Accept-Language"))
        headers += self._extra
        return _Template(code, headers, tuple(body.split(_PLACEHOLDER_BYTES)))
