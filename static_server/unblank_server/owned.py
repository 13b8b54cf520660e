"""The files unblank wrote into DIST: garbage collection deletes nothing else.

DIST may hold files a user or a deploy tool put there (``.git``, ``CNAME``,
``_headers``...).  Every path is recorded here *before* its file is written,
so that a build killed mid-write still leaves its leftovers recorded and the
next collection can remove them; paths are one JSON string per line, so any
name round-trips.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from unblank_server.fsutil import write_atomic

__all__ = ["OwnedFiles"]

_FILE: Final = "written.jsonl"


class OwnedFiles:
    """Append-only record of the paths (relative to DIST) unblank wrote."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / _FILE
        self._lock = threading.Lock()
        self._recorded: set[str] = set()

    def add(self, path: str) -> None:
        """Record ``path``; call before writing it.  Safe from many threads."""
        with self._lock:
            if path in self._recorded:
                return
            with open(self._path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(path) + "\n")  # flushed on close: survives SIGKILL
            self._recorded.add(path)

    def paths(self) -> set[str]:
        """Every path recorded so far; a torn last line (a kill mid-append) is skipped."""
        try:
            lines = self._path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return set()
        found = set()
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, str):
                found.add(value)
        return found

    def replace(self, paths: Iterable[str]) -> None:
        """Keep only ``paths`` (those still on disk after a collection)."""
        data = "".join(json.dumps(p) + "\n" for p in sorted(paths)).encode("utf-8")
        with self._lock:
            write_atomic(self._path, data)
            self._recorded.clear()
