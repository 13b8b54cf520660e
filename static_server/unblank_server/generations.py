"""Generations in DIST: publish one atomically, keep the recent ones, collect the rest.

Publishing writes ``manifests/<generation>.json`` and then, last,
``manifest.json``; both through a temporary file, fsync and rename, after one
``syncfs`` that makes every new asset durable.  Until that final rename the
previous generation is the one served, whole; a build killed at any instant
leaves it so.

A generation is retained while it is among the newest ``keep`` or was the
current one less than ``keep_days`` ago (it stopped being current when the
next one was published): pages loaded before a deploy go on asking for its
files for as long as such tabs stay open.

A canary (``DIST/canary.json``, :mod:`unblank.canary`) is published beside
the current generation: its manifest goes into ``manifests/`` and the pointer
is written last. Its generation is always retained while it runs, and one
that ended (promoted, or rolled back: ``.unblank/canaries/<g>.json``) is a
generation pages really loaded, never an unpublished leftover.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from unblank import Manifest, ManifestError, RolloutError
from unblank.canary import ENDED, CanaryPointer, ended_canaries, read_canary, start_canary
from unblank_server.errors import BadInputError, BuildError
from unblank_server.fsutil import is_temp_name, sync_filesystem, write_atomic
from unblank_server.owned import OwnedFiles

__all__ = [
    "CURRENT",
    "HISTORY",
    "INTERNAL",
    "GcResult",
    "Retention",
    "collect_garbage",
    "drop_unpublished",
    "load_current",
    "load_history",
    "new_generation_id",
    "publish",
    "publish_canary",
    "published_at",
    "retained",
    "running_canary",
    "served_canaries",
]

CURRENT: Final = "manifest.json"
HISTORY: Final = "manifests"
INTERNAL: Final = ".unblank"
_ID_TIME: Final = "%Y%m%dT%H%M%S%fZ"
_MAX_DAYS: Final = 36_500  # a century: beyond it, datetime arithmetic overflows


class _Unset:
    """Sentinel type: None already means "no current generation"."""


_UNSET: Final = _Unset()


@dataclass(frozen=True, slots=True)
class Retention:
    """How many generations outlive their replacement, and for how long at least."""

    keep: int = 5
    keep_days: float = 7.0

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError(f"keep must be at least 1 (the current generation), not {self.keep}")
        if not 0 <= self.keep_days <= _MAX_DAYS:
            raise ValueError(f"keep_days must be between 0 and {_MAX_DAYS}, not {self.keep_days}")


@dataclass(frozen=True, slots=True)
class GcResult:
    retained: tuple[str, ...]
    removed_generations: tuple[str, ...]
    removed_files: tuple[str, ...] = field(default=())
    freed_bytes: int = 0


def new_generation_id(now: datetime, content: bytes, existing: Iterable[str]) -> str:
    """A sortable id: UTC time to the microsecond, then 8 hex of the content.

    The time part is made strictly later than every existing generation's, so
    ids sort in publication order even when clocks step back or
    ``SOURCE_DATE_EPOCH`` pins the time.
    """
    stamp = now.replace(tzinfo=None)
    for gen in existing:
        try:
            earlier = datetime.strptime(gen.split("-", 1)[0], _ID_TIME)
        except ValueError:
            continue
        if earlier >= stamp:
            stamp = earlier + timedelta(microseconds=1)
    return f"{stamp.strftime(_ID_TIME)}-{hashlib.sha256(content).hexdigest()[:8]}"


def load_current(dist: Path) -> Manifest | None:
    """The manifest DIST serves now, or None before the first publication."""
    path = dist / CURRENT
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BuildError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    try:
        return Manifest.loads(data)
    except ManifestError as exc:
        raise BuildError(f"{str(path)!r} is not a valid manifest: {exc}") from exc


def load_history(dist: Path) -> list[Manifest]:
    """Every generation in ``DIST/manifests``, oldest first.

    Raises :class:`BuildError` naming a manifest that cannot be read: without
    it, nobody can tell which files that generation still needs.
    """
    folder = dist / HISTORY
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(Manifest.loads(path.read_bytes()))
        except (OSError, ManifestError) as exc:
            raise BuildError(
                f"{str(path)!r} cannot be read ({exc}); move it away if it is not a manifest"
            ) from exc
    found.sort(key=lambda m: m.generation)
    return found


def publish(dist: Path, manifest: Manifest) -> None:
    """Make ``manifest`` the current generation of ``dist``, atomically and durably."""
    data = manifest.dumps()
    sync_filesystem(dist)  # every asset the manifest names is on disk first
    write_atomic(dist / HISTORY / f"{manifest.generation}.json", data, durable=True)
    write_atomic(dist / CURRENT, data, durable=True)


def publish_canary(dist: Path, manifest: Manifest, pointer: CanaryPointer) -> None:
    """Publish ``manifest`` as DIST's canary beside the current generation.

    ``manifest.json`` is not touched. Raises :class:`BadInputError` when DIST
    has no current generation or a canary already runs.
    """
    data = manifest.dumps()
    sync_filesystem(dist)  # every asset the manifest names is on disk first
    write_atomic(dist / HISTORY / f"{manifest.generation}.json", data, durable=True)
    try:
        start_canary(dist, pointer)
    except RolloutError as exc:
        raise BadInputError(str(exc)) from exc


def served_canaries(dist: Path) -> set[str] | None:
    """Generations served as a canary: the running one and those that ended.

    None when ``canary.json`` cannot be read: then any generation may be one.
    """
    try:
        running = read_canary(dist)
    except RolloutError:
        return None
    served = set(ended_canaries(dist))
    if running is not None:
        served.add(running.generation)
    return served


def running_canary(dist: Path) -> str | None:
    """The generation of the canary running in ``dist`` (None: none, or unreadable)."""
    try:
        running = read_canary(dist)
    except RolloutError:
        return None
    return running.generation if running is not None else None


def retained(
    history: list[Manifest],
    current: Manifest | None,
    retention: Retention,
    now: datetime,
    *,
    pinned: Collection[str] = (),
) -> list[Manifest]:
    """The generations to keep, newest first; the current one, and the ``pinned``
    ones (a running canary), always among them."""
    newest_first = sorted(history, key=lambda m: m.generation, reverse=True)
    horizon = now - timedelta(days=retention.keep_days)
    keep: list[Manifest] = []
    successor: Manifest | None = None
    for index, manifest in enumerate(newest_first):
        superseded_at = published_at(successor) if successor is not None else None
        if (
            index < retention.keep
            or superseded_at is None
            or superseded_at > horizon
            or (current is not None and manifest.generation == current.generation)
        ):
            keep.append(manifest)
        successor = manifest
    if current is not None and all(m.generation != current.generation for m in keep):
        keep.append(current)
    kept = {m.generation for m in keep}
    keep += [m for m in newest_first if m.generation in pinned and m.generation not in kept]
    return keep


def published_at(manifest: Manifest) -> datetime:
    """When ``manifest`` became current: the time in its generation id.

    Not ``created``, which ``SOURCE_DATE_EPOCH`` may pin to a fixed date.
    """
    try:
        stamp = datetime.strptime(manifest.generation.split("-", 1)[0], _ID_TIME)
    except ValueError:
        return manifest.created  # an id made by another tool
    return stamp.replace(tzinfo=UTC)


def drop_unpublished(dist: Path, current: Manifest | None) -> list[str]:
    """Forget generations newer than the current one: a build killed between
    writing ``manifests/<g>.json`` and ``manifest.json`` left them, never served.

    Left in place they would count among the newest ``keep`` and push out a
    generation that pages really loaded.  Their files go at the next gc,
    unless a retained generation shares them.  Canaries (running or ended)
    were served: they stay; with an unreadable ``canary.json`` nothing goes.
    """
    folder = dist / HISTORY
    if not folder.is_dir():
        return []
    canaries = served_canaries(dist)
    if canaries is None:
        return []
    dropped = []
    for path in sorted(folder.glob("*.json")):
        generation = path.stem
        if generation in canaries:
            continue
        if current is None or generation > current.generation:
            path.unlink(missing_ok=True)
            dropped.append(generation)
    return dropped


def collect_garbage(
    dist: Path,
    retention: Retention,
    now: datetime,
    *,
    dry_run: bool = False,
    current: Manifest | _Unset | None = _UNSET,
    history: list[Manifest] | None = None,
) -> GcResult:
    """Delete the files unblank wrote into ``dist`` that no retained generation needs.

    Files unblank did not write (recorded in ``.unblank/`` or named by a
    manifest) are never touched.  The caller holds the build lock, so no
    other build is writing; temporary files left by killed builds go too.
    A build passes the generations it already read as ``current`` and
    ``history``.
    """
    if isinstance(current, _Unset):
        current = load_current(dist)
    if history is None:
        history = load_history(dist)
    running = running_canary(dist)
    keep = retained(history, current, retention, now, pinned=[running] if running else [])
    needed = {CURRENT}
    for manifest in keep:
        needed |= manifest.files()
        needed.add(f"{HISTORY}/{manifest.generation}.json")
    owned = OwnedFiles(dist / INTERNAL)
    ours = owned.paths()
    for manifest in history:
        ours |= manifest.files()
        ours.add(f"{HISTORY}/{manifest.generation}.json")
    removed: list[str] = []
    freed = 0
    for root, dirs, files in os.walk(dist, topdown=True):
        rel_root = os.path.relpath(root, dist)
        if rel_root == INTERNAL:  # only leftovers of killed builds go from here
            dirs[:] = []
            files = [name for name in files if is_temp_name(name)]
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}".replace(os.sep, "/")
            if not is_temp_name(name) and (rel in needed or rel not in ours):
                continue
            path = Path(root, name)
            try:
                freed += path.lstat().st_size
                if not dry_run:
                    path.unlink()
            except FileNotFoundError:
                continue
            removed.append(rel)
    kept_ids = {m.generation for m in keep}
    gone = tuple(m.generation for m in history if m.generation not in kept_ids)
    if not dry_run:
        _remove_empty_folders(dist, removed)
        owned.replace(ours & needed - {CURRENT})
        for generation in gone:  # the record of a canary whose files are gone
            (dist / ENDED / f"{generation}.json").unlink(missing_ok=True)
    return GcResult(
        retained=tuple(m.generation for m in keep),
        removed_generations=gone,
        removed_files=tuple(sorted(removed)),
        freed_bytes=freed,
    )


def _remove_empty_folders(dist: Path, removed: list[str]) -> None:
    """Remove the folders that deleting ``removed`` left empty, and no other."""
    folders = {posixpath.dirname(rel) for rel in removed} - {""}
    for folder in sorted(folders, key=lambda f: -f.count("/")):
        while folder and folder not in (HISTORY, INTERNAL):
            try:
                (dist / folder).rmdir()
            except OSError:
                break  # not empty (or gone): stop climbing
            folder = posixpath.dirname(folder)
