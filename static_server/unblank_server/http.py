"""HTTP field parsing for serving: content codings, entity tags, dates, ranges.

Everything here reads request fields, which are hostile input: every parser
bounds its work, and a field it cannot read is treated the way RFC 9110 says
a recipient treats an invalid field (usually: as if it were absent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Final

__all__ = [
    "MAX_FIELD",
    "MAX_RANGES",
    "ByteRange",
    "RangeNotSatisfiable",
    "choose_coding",
    "etag_matches",
    "format_http_date",
    "parse_http_date",
    "parse_ranges",
]

MAX_FIELD: Final = 8192  # longer request fields are not read (Apache and nginx use 8 KiB too)
MAX_RANGES: Final = 16  # RFC 9110 §14.2 lets a server ignore requests for many ranges

_QVALUE = re.compile(r"q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z", re.IGNORECASE)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _qvalue(params: list[str]) -> float | None:
    """The weight among a coding's parameters; None when a parameter is invalid."""
    weight = 1.0
    for param in params:
        param = param.strip(" \t")
        if not param:
            continue
        match = _QVALUE.match(param)
        if match is None:
            return None
        weight = float(match.group(1))
    return weight


def choose_coding(accept_encoding: str | None, available: tuple[str, ...]) -> str | bool | None:
    """The content coding to send, by ``Accept-Encoding`` (RFC 9110 §12.5.3).

    ``available`` lists the precompressed codings in the server's order of
    preference (smallest first). Returns the chosen coding, ``None`` for
    identity, or ``False`` when nothing acceptable exists (identity refused).
    Among codings of equal weight the server's preference wins.
    """
    if accept_encoding is None:
        return None  # no field: any coding is acceptable, but identity is the safe choice
    if len(accept_encoding) > MAX_FIELD:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = item.split(";")
        name = name.strip(" \t").lower()
        if not name or not _TOKEN.match(name):
            continue
        weight = _qvalue(params)
        if weight is None:
            continue
        if name == "x-gzip":  # RFC 9110 §8.4.1.3: a recipient should treat it as gzip
            name = "gzip"
        weights[name] = max(weight, weights.get(name, -1.0))
    star = weights.get("*")
    best: str | bool | None = False
    best_weight = 0.0
    for coding in available:
        weight = weights.get(coding, star if star is not None else 0.0)
        if weight > best_weight:
            best, best_weight = coding, weight
    # identity is acceptable unless refused explicitly or through "*;q=0".
    identity = weights.get("identity", star)
    if identity is None:
        # Not mentioned: acceptable, but it has no weight to compete with, so a
        # listed coding wins whatever its q ("gzip;q=0.5" still asks for gzip).
        return None if best is False else best
    if identity > best_weight or (best is False and identity > 0):
        return None
    return best


def _entity_tags(field: str) -> list[str] | None:
    """The entity tags of an ``If-None-Match``/``If-Match`` list; None when malformed."""
    tags: list[str] = []
    rest = field.strip(" \t").lstrip(" \t,")  # RFC 9110 §5.6.1.2: empty elements are ignored
    while rest:
        weak = rest.startswith("W/")
        if weak:
            rest = rest[2:]
        if not rest.startswith('"'):
            return None
        end = rest.find('"', 1)
        if end < 0:
            return None
        tags.append(("W/" if weak else "") + rest[: end + 1])
        rest = rest[end + 1 :].lstrip(" \t")
        if rest.startswith(","):
            rest = rest[1:].lstrip(" \t,")
        elif rest:
            return None
        if len(tags) > 64:  # nobody holds more versions of one file than that
            return None
    return tags


def etag_matches(field: str, etag: str, *, weak: bool) -> bool:
    """Whether an ``If-None-Match`` (``weak=True``) or ``If-Match`` (``weak=False``)
    field matches ``etag``, a strong tag (RFC 9110 §8.8.3.2, §13.1.1-2).

    ``*`` matches any current representation. A malformed field matches
    nothing, so the request is answered as if it had no condition.
    """
    if len(field) > MAX_FIELD:
        return False
    if field.strip(" \t") == "*":
        return True
    tags = _entity_tags(field)
    if not tags:
        return False
    for tag in tags:
        if tag.startswith("W/"):
            if weak and tag[2:] == etag:
                return True
        elif tag == etag:
            return True
    return False


def parse_http_date(field: str) -> float | None:
    """An HTTP-date as a POSIX timestamp; None when it is not one (RFC 9110 §5.6.7)."""
    if len(field) > 64 or field.count(",") > 1:
        return None  # RFC 9110 §13.1.3: a field of several dates is ignored
    try:
        when = parsedate_to_datetime(field)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def format_http_date(timestamp: float) -> str:
    """An IMF-fixdate, such as ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)


def http_date_now() -> str:
    return format_http_date(datetime.now(UTC).timestamp())


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range ``first``-``last`` of a representation."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"


class RangeNotSatisfiable(Exception):
    """Every range of a valid ``Range`` field lies outside the representation."""


def parse_ranges(field: str, size: int) -> list[ByteRange] | None:
    """The satisfiable ranges of a ``Range`` field (RFC 9110 §14.1.2), sorted and
    coalesced when they overlap or touch.

    Returns None when the field is to be ignored (not ``bytes``, malformed, too
    many ranges, or asking for more bytes than the whole): the full
    representation is then sent with 200. Raises :class:`RangeNotSatisfiable`
    when the field is valid but no range overlaps the representation (416).
    """
    if len(field) > MAX_FIELD:
        return None
    unit, sep, spec = field.partition("=")
    if not sep or unit.strip(" \t").lower() != "bytes":
        return None
    if not spec.strip(" \t,"):
        return None  # "bytes=" names no range (range-set is 1#range-spec): invalid, ignored
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return None
    wanted: list[ByteRange] = []
    requested = 0
    for part in parts:
        part = part.strip(" \t")
        if not part:
            continue  # RFC 9110 §5.6.1: empty list elements are ignored
        first_text, dash, last_text = part.partition("-")
        if not dash or not (first_text or last_text):
            return None
        if not _digits(first_text) or not _digits(last_text):
            return None
        if not first_text:  # suffix range: the last N bytes
            suffix = int(last_text)
            if suffix == 0:
                continue  # unsatisfiable on its own
            requested += min(suffix, size)
            if size:
                wanted.append(ByteRange(max(0, size - suffix), size - 1))
            continue
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
        if last_text and last < first:
            return None  # invalid range-spec: the whole field is ignored
        if first >= size:
            continue
        last = min(last, size - 1)
        requested += last - first + 1
        wanted.append(ByteRange(first, last))
    if not wanted:
        raise RangeNotSatisfiable(field)
    if requested > size and len(wanted) > 1:
        return None  # overlapping ranges that add up to more than the file: ignore them
    return _coalesce(wanted)


def _digits(text: str) -> bool:
    return not text or (text.isascii() and text.isdigit() and len(text) <= 19)


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    """Ranges that overlap or touch merged into one; the others keep the order
    the client asked for them in (RFC 9110 §14.6: parts SHOULD come in that order)."""
    merged: list[tuple[int, ByteRange]] = []  # (position of its first range in the field, range)
    for position, current in sorted(enumerate(ranges), key=lambda item: item[1].first):
        if merged and current.first <= merged[-1][1].last + 1:
            asked, previous = merged[-1]
            last = max(previous.last, current.last)
            merged[-1] = (min(asked, position), ByteRange(previous.first, last))
        else:
            merged.append((position, current))
    merged.sort(key=lambda item: item[0])
    return [one for _, one in merged]
