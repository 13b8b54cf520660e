"""Reading a source file once: its digests, and the references it makes.

Small CSS/JS/HTML files are read whole, decoded and scanned (the result is
cached by content hash in the build cache).  Larger ones are streamed first:
most big bundles hold no reference at all, or only a ``sourceMappingURL``
comment, and then they are hashed, and later rewritten, without ever being
held in memory.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Final

from unblank_server.buildcache import BuildCache
from unblank_server.errors import BadInputError
from unblank_server.plan import Hashes, PlannedFile
from unblank_server.references import (
    MAP_LINE_BYTES,
    MODULE_HINT_BYTES,
    Reference,
    find_css_references,
    find_html_references,
    find_js_references,
)

__all__ = ["read_source", "rewritable_kind"]

_CHUNK: Final = 1 << 20
_REWRITABLE: Final = {".css": "css", ".js": "js", ".mjs": "js", ".html": "html", ".htm": "html"}
_FINDERS: Final[dict[str, Callable[[str], list[Reference]]]] = {
    "css": find_css_references,
    "js": find_js_references,
    "html": find_html_references,
}
# Rewritable files up to this size are read whole; larger ones are streamed
# first, and read whole only if they can hold a reference at all, so memory
# stays flat on a 50 MB bundle without local references.
_WHOLE_TEXT_LIMIT: Final = 8 << 20
_STREAM_HINTS: Final = {
    "css": re.compile(rb"(?i:url\(|image-set\()|@import|sourceMappingURL"),
    "html": re.compile(rb"(?i:src|href|poster|srcset)\s*="),
    "js": MODULE_HINT_BYTES,
}
# Bytes of one piece carried into the next, so that a pattern split across two
# pieces is still found (a longer source-map URL is left as written).
_OVERLAP: Final = 4096


def read_source(item: PlannedFile, sri: tuple[str, ...], cache: BuildCache) -> None:
    """Hash ``item`` and find its references (cached by content).

    It is read whole only when it is small or may hold references that need
    its text.  Raises :class:`BadInputError` naming a file that cannot be read.
    """
    hasher = Hashes(sri)
    try:
        if item.kind is not None and item.source.size > _WHOLE_TEXT_LIMIT:
            if _stream_scan(item, hasher):
                return  # settled without reading the file whole
            hasher = Hashes(sri)
        if item.kind is not None:
            raw = item.source.path.read_bytes()
            hasher.update(raw)
            # surrogateescape: any bytes survive the round trip unchanged.
            item.text = raw.decode("utf-8", "surrogateescape")
        else:
            _stream(item, hasher)
    except OSError as exc:
        raise BadInputError(f"cannot read {item.source.name!r}: {exc.strerror}") from exc
    if item.text is not None:
        item.sha256, item.integrity = hasher.sha256.hexdigest(), hasher.sri.metadata()
        key = f"{item.kind}:{item.sha256}"
        refs = cache.scan(key, item.text)
        if refs is None:
            refs = _FINDERS[item.kind](item.text) if item.kind else []
            cache.remember_scan(key, refs)
        item.references = [(ref, "") for ref in refs]
        if not item.references:
            item.text = None  # nothing to rewrite: no need to hold it


def _stream(item: PlannedFile, hasher: Hashes) -> None:
    """Hash ``item`` in pieces."""
    with open(item.source.path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    item.sha256, item.integrity = hasher.sha256.hexdigest(), hasher.sri.metadata()


def _stream_scan(item: PlannedFile, hasher: Hashes) -> bool:
    """Hash a large CSS/JS file in pieces and look for references on the way.

    Returns True when the file is settled without reading it whole: no
    reference can be in it (it is copied as it is), or, for JS, its only
    references are source-map comments (rewritten as it is copied).
    Returns False when it must be read whole.
    """
    hint = _STREAM_HINTS[item.kind or "js"]
    found_hint = False
    maps: dict[int, Reference] = {}
    tail, offset, newlines = b"", 0, 0

    def collect(buffer: bytes, at_end: bool) -> None:
        base = offset - len(buffer)
        for m in MAP_LINE_BYTES.finditer(buffer):
            if m.end() == len(buffer) and not at_end:
                continue  # the line may go on in the next piece
            line = newlines - buffer.count(b"\n", m.start()) + 1
            value = m.group(1).decode("utf-8", "surrogateescape")
            start = base + m.start(1)
            maps[start] = Reference(start, base + m.end(1), value, line)

    with open(item.source.path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
            buffer = tail + chunk
            offset += len(chunk)
            newlines += chunk.count(b"\n")
            found_hint = found_hint or hint.search(buffer) is not None
            if item.kind == "js" and not found_hint:
                collect(buffer, at_end=False)
            tail = buffer[-_OVERLAP:]
    if item.kind == "js" and not found_hint:
        collect(tail, at_end=True)  # a comment ending the file, without a newline
    if found_hint:
        return False
    item.sha256, item.integrity = hasher.sha256.hexdigest(), hasher.sri.metadata()
    if maps:
        item.streamed = True
        item.references = [(ref, "") for ref in sorted(maps.values(), key=lambda r: r.start)]
    else:
        item.kind = None  # no reference can be in it: copied as it is
    return True


def rewritable_kind(name: str) -> str | None:
    """``"css"``, ``"js"`` or ``"html"`` for a file whose references unblank rewrites."""
    return _REWRITABLE.get(posixpath.splitext(name)[1].lower())
