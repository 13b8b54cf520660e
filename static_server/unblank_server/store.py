"""The generations a server serves, reloaded while it serves.

``DIST/manifest.json`` names the current generation and ``DIST/manifests/``
every retained one. A :class:`Store` prepares a :class:`Table` for all of
them and swaps in a new one whenever either changes: the swap is one
attribute assignment, so a request sees the old table or the new one, never
half of each. Files of retained generations stay on disk (``unblank build``
keeps them), so a page loaded before a deploy still gets every chunk.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from unblank import Manifest, ManifestError
from unblank_server.generations import CURRENT, HISTORY
from unblank_server.metrics import Stats
from unblank_server.resources import HeaderPolicy, Resource, prepare_bytes, resources_of

__all__ = ["Store", "Table"]

logger = logging.getLogger("unblank.serve")

Signature = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One consistent view of DIST: what every URL answers."""

    manifest: Manifest | None
    resources: Mapping[str, Resource] = field(default_factory=dict)
    manifest_resource: Resource | None = None
    generations: tuple[str, ...] = ()
    signature: Signature = ()
    error: str | None = None  # why no generation is loaded, for the health check


class Store:
    """Loads DIST into tables and keeps the current one fresh.

    ``reload()`` checks DIST once (cheap when nothing changed); ``watch()``
    starts a daemon thread that does so every ``interval`` seconds.
    """

    def __init__(
        self, *, dist: Path, policy: HeaderPolicy, stats: Stats, interval: float = 1.0
    ) -> None:
        self.dist = dist
        self.root = os.path.realpath(dist)
        self.policy = policy
        self.stats = stats
        self.interval = interval
        self.table = Table(manifest=None, error="not loaded yet")
        self._history: dict[str, tuple[Signature, Manifest | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.watching = False  # read on every request: a plain attribute
        self.reload()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_thread(ref))

    # -- loading -----------------------------------------------------------

    def _signature(self) -> Signature:
        parts: list[object] = []
        for path in (self.dist / CURRENT, self.dist / HISTORY):
            try:
                st = os.stat(path)
            except OSError:
                parts.append(None)
            else:
                parts.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(parts)

    def changed(self) -> bool:
        """Whether DIST's pointers moved since the table was loaded (two stats)."""
        return self._signature() != self.table.signature

    def reload(self) -> bool:
        """Load DIST again if it changed; True when a new table was swapped in."""
        with self._lock:
            signature = self._signature()
            if signature == self.table.signature:
                return False
            try:
                table = self._load(signature)
            except (OSError, ManifestError) as exc:
                self.stats.reload_failures += 1
                problem = f"{self.dist / CURRENT}: {exc}"
                if self.table.manifest is None:
                    self.table = Table(manifest=None, signature=signature, error=problem)
                else:
                    logger.error(
                        "keeping generation %s: %s", self.table.manifest.generation, problem
                    )
                    # Remember the signature so a broken file is reported once, not every second.
                    self.table = _replace_signature(self.table, signature)
                return False
            previous = self.table.manifest
            self.table = table
            if table.manifest is not None and (
                previous is None or previous.generation != table.manifest.generation
            ):
                self.stats.reloads += 1
                logger.info(
                    "serving generation %s from %s (%d generations, %d URLs)",
                    table.manifest.generation,
                    self.dist,
                    len(table.generations),
                    len(table.resources),
                )
            return True

    def _load(self, signature: Signature) -> Table:
        current_path = self.dist / CURRENT
        try:
            data = current_path.read_bytes()
            st = os.stat(current_path)
        except FileNotFoundError:
            return Table(
                manifest=None,
                signature=signature,
                error=f"{current_path} does not exist yet: run `unblank build SRC {self.dist}`",
            )
        current = Manifest.loads(data)
        history = [m for m in self._read_history() if m.generation != current.generation]
        resources = resources_of(
            self.root, history, current, policy=self.policy, previous=self.table.resources
        )
        manifest_resource = prepare_bytes(
            data,
            content_type="application/json",
            modified=st.st_mtime,
            policy=self.policy,
        )
        return Table(
            manifest=current,
            resources=resources,
            manifest_resource=manifest_resource,
            generations=(*(m.generation for m in history), current.generation),
            signature=signature,
        )

    def _read_history(self) -> list[Manifest]:
        folder = self.dist / HISTORY
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json"))
        except OSError:
            return []
        known: dict[str, tuple[Signature, Manifest | None]] = {}
        for name in names:
            path = folder / name
            try:
                st = os.stat(path)
            except OSError:
                continue
            signature: Signature = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._history.get(name)
            if cached is not None and cached[0] == signature:
                known[name] = cached
                continue
            try:
                manifest: Manifest | None = Manifest.loads(path.read_bytes())
            except (OSError, ManifestError) as exc:
                logger.warning("not serving the files of %s: %s", path, exc)
                manifest = None
            known[name] = (signature, manifest)
        self._history = known
        found = [m for _, m in known.values() if m is not None]
        found.sort(key=lambda m: m.generation)
        return found

    # -- watching ----------------------------------------------------------

    def watch(self) -> None:
        """Start checking DIST every ``interval`` seconds in a daemon thread."""
        with self._lock:
            if self._thread is not None or self.interval <= 0:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="unblank-reload", daemon=True)
            self._thread.start()
            self.watching = True

    def close(self) -> None:
        """Stop the watcher thread, if any."""
        thread = self._thread
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        self.watching = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reload()
            except Exception:  # a watcher that dies would freeze the served generation
                logger.exception("checking %s for a new generation failed", self.dist)
                time.sleep(self.interval)


def _replace_signature(table: Table, signature: Signature) -> Table:
    return Table(
        manifest=table.manifest,
        resources=table.resources,
        manifest_resource=table.manifest_resource,
        generations=table.generations,
        signature=signature,
        error=table.error,
    )


def _forget_thread(ref: weakref.ReferenceType[Store]) -> None:
    # A forked child has no copy of the parent's threads: let it start its own.
    store = ref()
    if store is not None:
        store._thread = None
        store.watching = False
        store._lock = threading.Lock()
