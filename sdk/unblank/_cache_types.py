"""The value objects of :mod:`unblank.cache`: sources, hits, events, reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CacheEvent", "CacheStats", "GcReport", "Hit", "Source", "VerifyReport"]


class Source(enum.StrEnum):
    """Where the bytes of a :class:`Hit` came from."""

    MEMORY = "memory"
    DISK = "disk"
    ORIGIN = "origin"
    MIRROR = "mirror"
    STALE = "stale"
    REPAIRED = "repaired"


@dataclass(frozen=True, slots=True)
class Hit:
    """Verified bytes, the SRI metadata they were asked for by, and their source."""

    data: bytes
    integrity: str
    source: Source


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """Something the cache did on its own: ``kind`` is one of "quarantined",
    "degraded", "recovered", "evicted", "read_failed", "write_failed"."""

    kind: str
    integrity: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :meth:`AssetCache.verify` found; paths are relative to the root."""

    checked: int
    ok: int
    bad: tuple[str, ...]
    quarantined: tuple[str, ...]
    bytes_checked: int

    @property
    def clean(self) -> bool:
        return not self.bad


@dataclass(frozen=True, slots=True)
class GcReport:
    """What :meth:`AssetCache.gc` removed and what is left on disk."""

    evicted: tuple[str, ...]
    bytes_freed: int
    temp_removed: int
    quarantine_removed: int
    index_kept: int
    index_dropped: int
    entries: int
    bytes_on_disk: int


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache object was made, and the disk and memory tiers now."""

    memory_hits: int
    memory_misses: int
    disk_hits: int
    disk_misses: int
    integrity_failures: int
    quarantines: int
    writes: int
    evictions: int
    degradations: int
    degraded: str | None
    entries: int
    bytes_on_disk: int
    memory_entries: int
    memory_bytes: int
