"""Rendering guided pages: HTML for people, problem+json for programs, text otherwise.

>>> page = render("overloaded", locale="en", request_id="req-42", retry_after=30)
>>> page.status, page.headers["Retry-After"]
(503, '30')
>>> b"We are very busy right now" in page.body
True
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jinja2

from unblank_pages.catalog import REASONS, Reason
from unblank_pages.negotiation import HTML, PROBLEM, TEXT, choose_format, choose_locale

__all__ = [
    "FALLBACK_REASONS",
    "Brand",
    "Page",
    "PageRenderer",
    "UnknownReasonError",
    "contrast_ratio",
    "negotiate",
    "render",
    "request_id_from",
    "retry_after_seconds",
]

DEFAULT_LOCALE: Final = "en"
# The causes the browser's watchdog can show by itself (DESIGN.md, "Watchdog").
FALLBACK_REASONS: Final = (
    "integrity",
    "not-found",
    "upstream",
    "offline",
    "app-crash",
    "render-timeout",
)
_MAX_RETRY_AFTER: Final = 24 * 3600  # a day: longer is a misconfiguration, not a wait
# X-Request-ID values reflected into pages: the characters tracing systems use.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_UNSAFE_SVG = re.compile(
    r"<\s*(?:script|foreignObject|iframe|image)\b|\bon\w+\s*=|javascript:", re.I
)


class UnknownReasonError(KeyError, ValueError):
    """A reason that is not in the catalog."""

    def __str__(self) -> str:
        return f"unknown reason {self.args[0]!r}; known: {', '.join(REASONS)}"


@dataclass(frozen=True, slots=True)
class Brand:
    """How every page looks: name, an inline SVG logo, colours, support contact.

    >>> Brand(name="Northwind Loans", primary="#1f4e79", support="mailto:help@example.com").name
    'Northwind Loans'
    """

    name: str = ""
    logo_svg: str = ""
    primary: str = "#1f4e79"  # white text on it: 8.9:1
    primary_dark: str = "#9cc3ee"  # dark text on it, for prefers-color-scheme: dark
    support: str = ""  # a mailto:, tel: or https: URL
    home: str = "/"

    def __post_init__(self) -> None:
        for name in ("primary", "primary_dark"):
            if not _COLOUR.fullmatch(getattr(self, name)):
                raise ValueError(f"Brand.{name} must be a hex colour like #1f4e79")
        svg = self.logo_svg.strip()
        if svg and (not svg.startswith("<svg") or _UNSAFE_SVG.search(svg)):
            raise ValueError("Brand.logo_svg must be inline <svg> without scripts or handlers")
        if self.support and not re.match(r"(?:mailto:|tel:|https?://)", self.support):
            raise ValueError("Brand.support must be a mailto:, tel: or http(s) URL")
        if self.home.startswith("//") or not self.home.startswith(("/", "https://", "http://")):
            raise ValueError("Brand.home must be a path or an http(s) URL")
        # WCAG 1.4.3: the main button's text must stay readable, light and dark.
        for name, text in (("primary", "#ffffff"), ("primary_dark", "#0b1620")):
            ratio = contrast_ratio(getattr(self, name), text)
            if ratio < 4.5:
                raise ValueError(
                    f"Brand.{name} {getattr(self, name)} gives {ratio:.1f}:1 against the button "
                    f"text {text}; WCAG asks at least 4.5:1"
                )


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two hex colours (1 to 21)."""

    def luminance(colour: str) -> float:
        digits = colour.lstrip("#")
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered page: what to send, ready for any server."""

    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def request_id_from(header: str | None) -> str:
    """The reference id: ``X-Request-ID`` when well-formed, else a new one."""
    if header is not None and _REQUEST_ID.fullmatch(header.strip()):
        return header.strip()
    return "ub-" + secrets.token_hex(8)


def retry_after_seconds(
    value: int | str | datetime | None, now: datetime | None = None
) -> int | None:
    """``Retry-After`` as seconds: an int, digits, or an HTTP date (RFC 9110 §10.2.3)."""
    # It may come from an upstream's header: anything unreadable is no value,
    # never an exception that would break the error page itself.
    try:
        seconds = _seconds(value, now or datetime.now(UTC))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if seconds is None:
        return None
    return max(0, min(int(seconds + 0.999), _MAX_RETRY_AFTER))


def _seconds(value: object, now: datetime) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, datetime):
        return (value - now).total_seconds() if value.tzinfo is not None else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", text):
        return int(text)
    when = parsedate_to_datetime(text)
    return (when - now).total_seconds() if when.tzinfo is not None else None


class PageRenderer:
    """Renders every page; configure once, render many times.

    ``templates`` is a folder whose ``page.html`` or ``<reason>.html`` override
    the built-in ones; ``locales`` a folder of extra ``<tag>.json`` catalogs.
    """

    def __init__(
        self,
        *,
        brand: Brand | None = None,
        templates: Path | None = None,
        locales: Path | None = None,
        default_locale: str = DEFAULT_LOCALE,
    ) -> None:
        self.brand = brand or Brand()
        loaders: list[jinja2.BaseLoader] = []
        if templates is not None:
            loaders.append(jinja2.FileSystemLoader(templates))
        loaders.append(jinja2.PackageLoader("unblank_pages", "templates"))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,  # every page is HTML: escape everything from a request
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.catalogs = _load_catalogs(locales)
        if default_locale not in self.catalogs:
            raise ValueError(f"no catalog for default locale {default_locale!r}")
        self.default_locale = default_locale

    def html(
        self,
        reason: str,
        *,
        locale: str | None = None,
        request_id: str | None = None,
        retry_after: int | str | datetime | None = None,
        detail: str | None = None,
        nonce: str | None = None,
        method: str = "GET",
    ) -> Page:
        """The HTML page.  ``method`` is the failed request's: after a POST (or any
        method that is not safe to repeat) the page never retries by itself."""
        entry, catalog, tag = self._lookup(reason, locale)
        repeatable = method.upper() in ("GET", "HEAD")
        seconds = retry_after_seconds(retry_after)
        reference = request_id if request_id is not None else request_id_from(None)
        template = self._env.select_template([f"{reason}.html", "page.html"])
        body = template.render(
            reason=reason,
            locale=tag,
            direction=catalog.get("direction", "ltr"),
            retry=entry.retry if repeatable else "none",
            wait=entry.wait,
            retry_after=seconds,
            text=catalog["reasons"][reason],
            common=catalog["common"],
            script_text={k: catalog["common"][k] for k in _SCRIPT_KEYS},
            detail=detail,
            request_id=reference,
            brand=self.brand,
            nonce=nonce,
        )
        return self._page(entry, HTML, body.encode("utf-8"), tag, seconds)

    def fallback(
        self,
        reasons: Sequence[str] = FALLBACK_REASONS,
        *,
        locale: str | None = None,
        request_id: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """The guided pages a shell carries for its watchdog, as ``<template>`` elements.

        One ``<template id="unblank-fallback">`` holds what every page shares
        (style, texts and the retry script, with ``nonce``); one
        ``<template data-unblank-reason="...">`` per reason holds its ``<main>``.
        Showing a page then needs no network. Override ``_main.html`` or
        ``_style.html`` in ``templates`` to change them here and in full pages.
        """
        entries = []
        tag = self.default_locale
        catalog: dict[str, Any] = {}
        for reason in reasons:
            entry, catalog, tag = self._lookup(reason, locale)
            # A catalog's "fallback" texts speak of the app, not of an address:
            # the watchdog's not-found is a file a new release removed, and a
            # reload (after a countdown) can bring the new version.
            text = catalog.get("fallback", {}).get(reason)
            retry, wait = entry.retry, entry.wait
            if text is None:
                text = catalog["reasons"][reason]
            elif retry == "none":
                retry, wait = "countdown", 15
            entries.append({"reason": reason, "retry": retry, "wait": wait, "text": text})
        if not entries:
            _, catalog, tag = self._lookup("offline", locale)
        return self._env.get_template("fallback.html").render(
            pages=entries,
            locale=tag,
            direction=catalog.get("direction", "ltr"),
            common=catalog["common"],
            script_text={k: catalog["common"][k] for k in _SCRIPT_KEYS},
            detail=None,
            request_id=request_id if request_id is not None else request_id_from(None),
            brand=self.brand,
            nonce=nonce,
        )

    def problem(
        self,
        reason: str,
        *,
        locale: str | None = None,
        request_id: str | None = None,
        retry_after: int | str | datetime | None = None,
        detail: str | None = None,
    ) -> Page:
        """RFC 9457 problem details; ``type`` is the URL of the human page."""
        entry, catalog, tag = self._lookup(reason, locale)
        seconds = retry_after_seconds(retry_after)
        text = catalog["reasons"][reason]
        document: dict[str, Any] = {
            "type": f"/_unblank/pages/{reason}",
            "title": text["title"],
            "status": entry.status,
            "detail": detail or text["summary"],
            "instance": request_id if request_id is not None else request_id_from(None),
        }
        if seconds is not None:
            document["retry_after"] = seconds
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return self._page(entry, PROBLEM, body, tag, seconds)

    def text(
        self,
        reason: str,
        *,
        locale: str | None = None,
        request_id: str | None = None,
        retry_after: int | str | datetime | None = None,
        detail: str | None = None,
    ) -> Page:
        entry, catalog, tag = self._lookup(reason, locale)
        seconds = retry_after_seconds(retry_after)
        text, common = catalog["reasons"][reason], catalog["common"]
        lines = [text["title"], "", text["summary"]]
        if detail:
            lines += ["", detail]
        lines += ["", common["what_can_i_do"], *(f"- {step}" for step in text["steps"])]
        reference = request_id if request_id is not None else request_id_from(None)
        lines += ["", f"{common['reference']}: {reference}", ""]
        return self._page(entry, TEXT, "\n".join(lines).encode("utf-8"), tag, seconds)

    def negotiate(
        self,
        reason: str,
        *,
        accept: str | None = None,
        accept_language: str | None = None,
        request_id: str | None = None,
        retry_after: int | str | datetime | None = None,
        detail: str | None = None,
        nonce: str | None = None,
        method: str = "GET",
    ) -> Page:
        """The page a request asks for: format from ``Accept``, language from
        ``Accept-Language``, reference from its ``X-Request-ID`` (``request_id``)."""
        locale = choose_locale(accept_language, self.catalogs, self.default_locale)
        reference = request_id_from(request_id)
        fmt = choose_format(accept)
        options: dict[str, Any] = {
            "locale": locale,
            "request_id": reference,
            "retry_after": retry_after,
            "detail": detail,
        }
        if fmt == HTML:
            page = self.html(reason, nonce=nonce, method=method, **options)
        elif fmt == PROBLEM:
            page = self.problem(reason, **options)
        else:
            page = self.text(reason, **options)
        headers = dict(page.headers)
        headers["Vary"] = "Accept, Accept-Language"
        return Page(page.status, page.content_type, page.body, MappingProxyType(headers))

    # -- internals -------------------------------------------------------------

    def _lookup(self, reason: str, locale: str | None) -> tuple[Reason, dict[str, Any], str]:
        entry = REASONS.get(reason)
        if entry is None:
            raise UnknownReasonError(reason)
        tag = locale if locale in self.catalogs else self.default_locale
        return entry, self.catalogs[tag], tag

    @staticmethod
    def _page(entry: Reason, media: str, body: bytes, tag: str, seconds: int | None) -> Page:
        headers = {
            "Content-Language": tag,
            # An error page must never be cached in place of the page it stands for.
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        if seconds is not None:
            headers["Retry-After"] = str(seconds)
        content_type = f"{media}; charset=utf-8"
        return Page(entry.status, content_type, body, MappingProxyType(headers))


_SCRIPT_KEYS: Final = (
    "retry_now",
    "retrying",
    "retrying_in",
    "paused",
    "pause",
    "resume",
    "waiting_online",
)
_REQUIRED_COMMON: Final = (
    *_SCRIPT_KEYS,
    "what_happened",
    "what_can_i_do",
    "reference",
    "reference_help",
    "go_home",
    "contact",
    "no_script",
)


def _load_catalogs(extra: Path | None) -> dict[str, dict[str, Any]]:
    """Every ``<tag>.json`` of the package (and of ``extra``), checked to be complete."""
    found: dict[str, dict[str, Any]] = {}
    sources = [
        (p.name, p.read_text(encoding="utf-8"))
        for p in files("unblank_pages").joinpath("locales").iterdir()
        if p.name.endswith(".json")
    ]
    if extra is not None:
        sources += [(p.name, p.read_text(encoding="utf-8")) for p in sorted(extra.glob("*.json"))]
    for name, text in sources:
        tag = name.removesuffix(".json")
        try:
            catalog = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"locale catalog {name}: not valid JSON ({exc})") from exc
        _check_catalog(name, catalog)
        found[tag] = catalog
    return found


def _check_catalog(name: str, catalog: object) -> None:
    if not isinstance(catalog, dict):
        raise ValueError(f"locale catalog {name}: must be a JSON object")
    common = catalog.get("common")
    reasons = catalog.get("reasons")
    if not isinstance(common, dict) or not isinstance(reasons, dict):
        raise ValueError(f"locale catalog {name}: needs 'common' and 'reasons' objects")
    for key in _REQUIRED_COMMON:
        if not isinstance(common.get(key), str):
            raise ValueError(f"locale catalog {name}: common.{key} is missing")
    for reason in REASONS:
        text = reasons.get(reason)
        if not isinstance(text, dict) or not all(
            isinstance(text.get(k), str) for k in ("title", "summary")
        ):
            raise ValueError(f"locale catalog {name}: reasons.{reason} needs title and summary")
        steps = text.get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise ValueError(f"locale catalog {name}: reasons.{reason}.steps must be a list")


@lru_cache(maxsize=16)
def _renderer(brand: Brand | None) -> PageRenderer:
    # Catalogs and templates are loaded once per brand, not once per page.
    return PageRenderer(brand=brand)


def render(
    reason: str,
    *,
    locale: str = DEFAULT_LOCALE,
    request_id: str | None = None,
    retry_after: int | str | datetime | None = None,
    detail: str | None = None,
    brand: Brand | None = None,
    nonce: str | None = None,
    method: str = "GET",
) -> Page:
    """The HTML page for ``reason`` with the built-in templates."""
    return _renderer(brand).html(
        reason,
        locale=locale,
        request_id=request_id,
        retry_after=retry_after,
        detail=detail,
        nonce=nonce,
        method=method,
    )


def negotiate(
    reason: str,
    *,
    accept: str | None = None,
    accept_language: str | None = None,
    request_id: str | None = None,
    retry_after: int | str | datetime | None = None,
    detail: str | None = None,
    brand: Brand | None = None,
    nonce: str | None = None,
    method: str = "GET",
) -> Page:
    """The page for ``reason`` in the format and language the request asks for."""
    return _renderer(brand).negotiate(
        reason,
        accept=accept,
        accept_language=accept_language,
        request_id=request_id,
        retry_after=retry_after,
        detail=detail,
        nonce=nonce,
        method=method,
    )
