"""Choosing a page's format and language from request headers (RFC 9110 §12.5).

``Accept`` picks among HTML (browsers), RFC 9457 ``application/problem+json``
(API clients) and plain text; ``Accept-Language`` picks the catalog.  Both
honour q-values and wildcards; a header that cannot be parsed counts as
absent, so junk never turns into an error page about the error page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["FORMATS", "choose_format", "choose_locale", "parse_weighted"]

HTML: Final = "text/html"
PROBLEM: Final = "application/problem+json"
TEXT: Final = "text/plain"
# In order of preference when the client likes several equally: a page for
# people first, since a browser's Accept lists */* too.
FORMATS: Final = (HTML, PROBLEM, TEXT)
_MAX_HEADER: Final = 4096  # longer headers are junk, not preferences
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:/[A-Za-z0-9!#$%&'*+.^_`|~-]+)?$")
_QVALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")


def parse_weighted(header: str | None) -> list[tuple[str, float]]:
    """``"a;q=0.5, b"`` -> ``[("b", 1.0), ("a", 0.5)]``: items by weight, junk dropped."""
    if not header or len(header) > _MAX_HEADER:
        return []
    items: list[tuple[int, str, float]] = []
    for index, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        value = fields[0].lower()
        if not value or not _TOKEN.match(value):
            continue
        weight = 1.0
        for param in fields[1:]:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                raw = raw.strip()
                weight = float(raw) if _QVALUE.match(raw) else -1.0
        if weight >= 0:
            items.append((index, value, weight))
    items.sort(key=lambda item: (-item[2], item[0]))  # stable: header order breaks ties
    return [(value, weight) for _, value, weight in items]


def choose_format(accept: str | None) -> str:
    """The format to answer with; HTML when the header says nothing usable."""
    ranges = parse_weighted(accept)
    if not ranges:
        return HTML
    best, best_key = HTML, (0.0, 0, 0)
    for candidate in FORMATS:
        key = _media_weight(candidate, ranges)
        # Higher q wins; at equal q a type named outright beats one reached
        # through a wildcard, and then the one the client lists first
        # ("application/json, text/plain, */*", axios' default, asks for JSON,
        # not for the HTML that */* would allow).
        if key[0] > 0 and key > best_key:
            best, best_key = candidate, key
    # Nothing acceptable (all q=0): RFC 9110 §12.5.1 lets us ignore the header.
    return best


def _media_weight(candidate: str, ranges: Sequence[tuple[str, float]]) -> tuple[float, int, int]:
    """(q, specificity, -position) of the most specific range matching ``candidate``
    (RFC 9110 §12.5.1); specificity is 2 for the type itself (``application/json``
    counts for problem+json), 1 for ``type/*``, 0 for ``*/*``."""
    kind = candidate.split("/")[0]
    exact = {candidate, "application/json"} if candidate == PROBLEM else {candidate}
    for specificity, names in ((2, exact), (1, {f"{kind}/*"}), (0, {"*/*"})):
        for position, (value, weight) in enumerate(ranges):
            if value in names:
                return weight, specificity, -position
    return 0.0, 0, 0


def choose_locale(accept_language: str | None, available: Iterable[str], default: str) -> str:
    """The best of ``available`` (like ``"en"``, ``"zh-Hans"``) for ``Accept-Language``.

    Matching is by basic filtering (RFC 4647 §3.3.1) with two additions every
    browser needs: ``zh``, ``zh-CN`` and ``zh-SG`` mean Simplified Chinese,
    and a language matches its regional forms (``en-GB`` -> ``en``).
    """
    offered = {tag.lower(): tag for tag in available}
    for value, weight in parse_weighted((accept_language or "").replace("_", "-")):
        if weight <= 0:
            continue
        if value == "*":
            return default
        for tag in _candidates(value):
            if tag in offered:
                return offered[tag]
    return default


def _candidates(value: str) -> list[str]:
    parts = value.split("-")
    found = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    if parts[0] == "zh":
        traditional = any(p in ("hant", "tw", "hk", "mo") for p in parts[1:])
        found.insert(0, "zh-hant" if traditional else "zh-hans")
    return found
