"""What one build remembers for the next, in ``DIST/.unblank/cache.json``.

Two kinds of work are worth not redoing when the bytes did not change:

* **scans** -- the references found in a CSS or JS file, keyed by the kind of
  scan and the SHA-256 of the file's bytes (the tokenizer is pure Python);
* **variants** -- for each published path, the compression settings used and
  the size of each variant kept (0: compressed, not worth keeping).

The cache only saves time: a missing or damaged file means the work is done
again, and every variant reused from disk is still checked by decoding it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from unblank_server.fsutil import write_atomic
from unblank_server.references import Reference

__all__ = ["BuildCache"]

_FILE: Final = "cache.json"
_VERSION: Final = 2


class BuildCache:
    """Load once at the start of a build, save once at its end."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / _FILE
        data = _load(self._path)
        self._scans: dict[str, list[list[Any]]] = _dict(data.get("scans"))
        self._variants: dict[str, dict[str, Any]] = _dict(data.get("variants"))
        self._new_scans: dict[str, list[list[Any]]] = {}

    # -- scans ----------------------------------------------------------------

    def scan(self, key: str, text: str) -> list[Reference] | None:
        """The references cached for ``key``, if they still fit ``text``."""
        rows = self._scans.get(key)
        if not isinstance(rows, list):
            return None
        refs = []
        for row in rows:
            if not (isinstance(row, list) and len(row) == 5):
                return None
            start, end, line, module, guards = row
            if not (type(start) is int and type(end) is int and 0 <= start <= end <= len(text)):
                return None
            if not (type(line) is int and (guards is None or type(guards) is int)):
                return None
            value = text[start:end]
            refs.append(Reference(start, end, value, line, bool(module), guards))
        self._new_scans[key] = rows
        return refs

    def remember_scan(self, key: str, refs: Iterable[Reference]) -> None:
        self._new_scans[key] = [[r.start, r.end, r.line, r.module, r.integrity_for] for r in refs]

    # -- variants -------------------------------------------------------------

    def variants(self, path: str) -> dict[str, Any]:
        record = self._variants.get(path)
        return record if isinstance(record, dict) else {}

    def remember_variants(self, path: str, record: dict[str, Any]) -> None:
        self._variants[path] = record

    # -- persistence ----------------------------------------------------------

    def save(self, live_paths: set[str]) -> None:
        """Write the cache, keeping variant records of ``live_paths`` and this build's scans."""
        data = {
            "version": _VERSION,
            "scans": self._new_scans,
            "variants": {p: r for p, r in self._variants.items() if p in live_paths},
        }
        write_atomic(self._path, json.dumps(data, sort_keys=True).encode())


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return {}
    return data


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
