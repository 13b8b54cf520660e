# Paths are str through the FileSystem seam, and the os calls are what the seam wraps.
# ruff: noqa: PTH100, PTH116, PTH118, PTH120
"""A two-tier, content-addressed, self-healing cache of verified asset bytes.

Layout under ``root`` (content-addressed like npm's cacache)::

    content/<algorithm>/<hex[:2]>/<hex digest>   the bytes, named by their digest
    index/index.jsonl                             logical name/URL -> integrity
    quarantine/<name>.<time>.<random>[.json]      entries that failed verification
    tmp/                                          scratch, swept by gc
    locks/<algorithm>-<hex>.lock                  single-flight file locks

Every disk read is verified against the strongest algorithm of the SRI
metadata asked for; a file that fails (truncated, zeroed, a flipped bit,
another entry's bytes) is moved to ``quarantine/`` with a JSON note and the
read is a miss, so the caller fetches again.  Writes go to a temp file in the
destination folder, are fsynced and renamed into place, so a reader sees a
whole file or none -- whatever instant a writer is killed at.  A full disk, a
read-only mount or an I/O error never raises: the cache carries on in memory
and says why in :attr:`AssetCache.degraded`.

LRU for ``max_bytes`` uses each file's mtime, set on write and on reads (disk
reads always, memory hits at most once a minute per entry).  It costs one
``utime`` instead of an access log that every process would have to append
to and compact, and it is shared by every process for free.

>>> from unblank import integrity
>>> cache = AssetCache(None)
>>> meta = integrity.compute(b"console.log(1)")
>>> cache.put(meta, b"console.log(1)")
>>> hit = cache.get(meta)
>>> hit.data, hit.source
(b'console.log(1)', <Source.MEMORY: 'memory'>)
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Final

import cachetools

from unblank import integrity as sri
from unblank._cache_types import CacheEvent, CacheStats, GcReport, Hit, Source, VerifyReport
from unblank._exceptions import CacheError, IntegrityMismatch
from unblank._fs import FileSystem, OsFileSystem
from unblank._index import (
    TEMP_PREFIX,
    Entry,
    Index,
    Ref,
    matches,
    quarantine,
    refs,
    scan,
    sweep,
)
from unblank._locks import SingleFlight

__all__ = [
    "AssetCache",
    "CacheEvent",
    "CacheStats",
    "GcReport",
    "Hit",
    "Source",
    "VerifyReport",
]

log = logging.getLogger("unblank.cache")

FOLDERS: Final = ("content", "index", "quarantine", "tmp", "locks")
TEMP_MAX_AGE: Final = 60.0  # seconds; no single write of an asset takes a minute
TOUCH_EVERY: Final = 60.0  # seconds between mtime touches of one memory-hot entry
RETRY_DISK_AFTER: Final = 30.0  # seconds of memory-only before writes try the disk again
QUARANTINE_KEEP: Final = 7 * 24 * 3600.0  # a week to look at what went wrong
EVICT_TO: Final = 0.9  # evict to 90% of max_bytes, so one put past the limit is not a scan each
# The errors of a disk that cannot take writes now: degrade to memory, do not fail the app.
DEGRADING_ERRNOS: Final = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM, errno.EDQUOT}
)


_COUNTERS: Final = (
    "memory_hits",
    "memory_misses",
    "disk_hits",
    "disk_misses",
    "integrity_failures",
    "quarantines",
    "writes",
    "evictions",
    "degradations",
)


class AssetCache:
    """Verified asset bytes by SRI metadata, in memory and under ``root``.

    ``root=None`` keeps everything in memory.  ``memory_bytes`` bounds the
    memory tier, ``max_bytes`` the disk tier (LRU, never evicting what
    :meth:`pin` names).  ``fs``, ``clock`` and ``on_event`` are seams.

    >>> from unblank import integrity
    >>> cache = AssetCache(None, memory_bytes=1024)
    >>> cache.get(integrity.compute(b"absent")) is None
    True
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        *,
        memory_bytes: int = 64 << 20,
        max_bytes: int | None = None,
        fs: FileSystem | None = None,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[CacheEvent], None] | None = None,
    ) -> None:
        if memory_bytes < 0:
            raise CacheError(f"memory_bytes must be 0 or more, not {memory_bytes}")
        if max_bytes is not None and max_bytes <= 0:
            raise CacheError(f"max_bytes must be positive or None, not {max_bytes}")
        self.root = None if root is None else os.path.abspath(os.fspath(root))
        self.memory_bytes = memory_bytes
        self.max_bytes = max_bytes
        self.degraded: str | None = None
        self._dir = self.root or ""
        self._fs: FileSystem = fs if fs is not None else OsFileSystem()
        self._clock = clock
        self._on_event = on_event
        self._degraded_at = 0.0
        self._lock = threading.Lock()
        # cachetools is not thread-safe: every use of _memory holds _lock.
        self._memory: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(
            maxsize=memory_bytes, getsizeof=len
        )
        self._touched: dict[str, float] = {}
        self._quarantined: set[str] = set()
        self._pinned: frozenset[str] = frozenset()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._disk_bytes: int | None = None  # running total for max_bytes between scans
        disk = self.root is not None
        self._flight = SingleFlight(folder=self._join("locks") if disk else None)
        self._index = Index(
            fs=self._fs if disk else None,
            path=self._join("index", "index.jsonl") if disk else None,
            lock_path=self._join("locks", "index.lock") if disk else None,
            clock=clock,
        )
        if disk:
            self._create_folders()

    def __repr__(self) -> str:
        return (
            f"AssetCache({self.root!r}, memory_bytes={self.memory_bytes}, "
            f"max_bytes={self.max_bytes}, degraded={self.degraded!r})"
        )

    # -- reading -------------------------------------------------------------

    def get(self, integrity: str) -> Hit | None:
        """Verified bytes for ``integrity`` from memory or disk, or None.

        A disk entry that fails verification is quarantined and the call
        returns None (see :meth:`was_quarantined`).  Malformed metadata
        raises :class:`~unblank.IntegrityMetadataError`.
        """
        candidates = refs(integrity)
        self._quarantined.discard(candidates[0].name)
        data: bytes | None = None
        with self._lock:
            for ref in candidates:
                data = self._memory.get(ref.name)
                if data is not None:
                    break
            self._counts["memory_hits" if data is not None else "memory_misses"] += 1
        if data is not None:
            self._touch_if_due(ref)
            return Hit(data, integrity, Source.MEMORY)
        if self.root is None:
            return None
        for ref in candidates:
            data = self._read_disk(ref, integrity)
            if data is not None:
                self._count("disk_hits")
                self._keep_in_memory(ref, data)
                return Hit(data, integrity, Source.DISK)
        self._count("disk_misses")
        return None

    def scan(self, *, max_size: int) -> Iterator[Hit]:
        """Every verified entry on disk of at most ``max_size`` bytes, in no order.

        For rebuilding what the index held (the asset client finds its last
        manifest this way when the index was lost); damaged entries are
        skipped, as a :meth:`verify` would report them.
        """
        for entry in self._entries():
            if entry.ref is None or entry.temp or entry.size > max_size:
                continue
            try:
                data, _ = self._fs.read(self._join(entry.relpath))
            except OSError:
                continue
            if matches(data, (entry.ref,)) is not None:
                digest = base64.b64encode(entry.ref.digest).decode("ascii")
                yield Hit(data, f"{entry.ref.algorithm}-{digest}", Source.DISK)

    def discard(self, integrity: str) -> bool:
        """Remove an entry from both tiers; True when a file was removed.

        For entries the owner knows are superseded (the asset client drops
        its previous manifest record), so they do not pile up until ``gc``.
        """
        removed = False
        for ref in refs(integrity):
            self._forget_memory(ref.name)
            self._touched.pop(ref.name, None)
            if self.root is not None:
                removed = self._remove(self._join(ref.relpath())) or removed
        return removed

    def in_memory(self, integrity: str) -> bool:
        """Whether :meth:`get` would answer from memory (no disk read, no wait)."""
        with self._lock:
            return any(ref.name in self._memory for ref in refs(integrity))

    def was_quarantined(self, integrity: str) -> bool:
        """Whether the last :meth:`get` of this digest in this process quarantined it."""
        return refs(integrity)[0].name in self._quarantined

    def _read_disk(self, ref: Ref, integrity: str) -> bytes | None:
        path = self._join(ref.relpath())
        for _ in range(2):  # a second look when a writer replaced the file under us
            try:
                data, info = self._fs.read(path)
            except FileNotFoundError:
                return None
            except OSError as exc:
                self._emit("read_failed", integrity, f"{_describe(exc)} reading {path}")
                return None
            if matches(data, (ref,)) is not None:
                self._touch(path)
                return data
            self._count("integrity_failures")
            if self._quarantine(path, info, ref, why="integrity mismatch on read", data=data):
                self._quarantined.add(refs(integrity)[0].name)
                return None
        return None

    # -- writing -------------------------------------------------------------

    def put(self, integrity: str, data: bytes) -> None:
        """Store ``data`` under ``integrity`` after verifying it.

        Raises :class:`~unblank.IntegrityMismatch` (storing nothing) when the
        bytes do not match; never raises for disk trouble (see :attr:`degraded`).
        """
        candidates = refs(integrity)
        ref = matches(data, candidates)
        if ref is None:
            algorithm = candidates[0].algorithm
            actual = sri.Digest(algorithm, hashlib.new(algorithm, data).digest())
            raise IntegrityMismatch(
                f"refusing to cache bytes with {actual}: they do not match {integrity[:100]!r}",
                expected=integrity,
                actual=str(actual),
            )
        self._keep_in_memory(ref, data)
        if self.root is None or not self._disk_writable():
            return
        try:
            wrote = self._write_entry(ref, data)
        except OSError as exc:
            self._disk_failed(exc, f"writing {ref.relpath()}")
            return
        if self.degraded is not None:
            self.degraded = None
            self._emit("recovered", integrity, "disk writes work again")
        if wrote:
            self._count("writes")
            self._grow(len(data))

    def _write_entry(self, ref: Ref, data: bytes) -> bool:
        path = self._join(ref.relpath())
        folder = os.path.dirname(path)
        try:
            existing, info = self._fs.read(path)
        except FileNotFoundError:
            pass
        else:
            if matches(existing, (ref,)) is not None:
                self._touch(path)
                return False
            # Never trust a damaged destination: keep it for inspection, then replace.
            self._count("integrity_failures")
            self._quarantine(path, info, ref, why="damaged entry found by put", data=existing)
        self._fs.makedirs(folder)
        fd, tmp = self._fs.create_temp(folder, f"{TEMP_PREFIX}{ref.hex[:16]}-")
        try:
            try:
                self._fs.write(fd, data)
                self._fs.fsync(fd)
            finally:
                self._fs.close(fd)
            self._fs.utime(tmp, self._clock())  # LRU age starts now, by the cache's clock
            self._fs.replace(tmp, path)
        except BaseException:
            self._remove(tmp)
            raise
        self._fs.fsync_dir(folder)
        return True

    def _disk_writable(self) -> bool:
        if self.degraded is None:
            return True
        # Memory-only is a state to leave: try the disk again now and then.
        return self._clock() - self._degraded_at >= RETRY_DISK_AFTER

    def _disk_failed(self, exc: OSError, doing: str) -> None:
        if exc.errno not in DEGRADING_ERRNOS:
            self._emit("write_failed", None, f"{_describe(exc)} {doing}")
            return
        reason = f"{_describe(exc)} {doing}; continuing in memory only"
        if self.degraded is None:
            self._count("degradations")
        self.degraded = reason
        self._degraded_at = self._clock()
        self._emit("degraded", None, reason)

    # -- the index -----------------------------------------------------------

    def remember(self, key: str, integrity: str) -> None:
        """Record that logical name or URL ``key`` is ``integrity`` now."""
        try:
            self._index.remember(key, integrity)
        except OSError as exc:
            self._disk_failed(exc, "appending to index/index.jsonl")

    def recall(self, key: str) -> str | None:
        """The integrity last remembered for ``key`` by any process, or None.

        None too after the index file was lost: keys are learnt again from
        the next manifest (content itself is never lost with the index).
        """
        return self._index.recall(key)

    def pin(self, integrities: Iterable[str]) -> None:
        """Name what the current manifest references (replacing the last pin set);
        ``max_bytes`` never evicts these."""
        self._pinned = frozenset(ref.name for i in integrities for ref in refs(i))

    # -- single flight -------------------------------------------------------

    @contextlib.contextmanager
    def single_flight(self, integrity: str) -> Iterator[None]:
        """One holder per digest across threads and processes, to download once.

        >>> from unblank import integrity
        >>> cache = AssetCache(None)
        >>> with cache.single_flight(integrity.compute(b"x")):
        ...     pass
        """
        with self._flight.hold(refs(integrity)[0].name):
            yield

    @contextlib.asynccontextmanager
    async def single_flight_async(self, integrity: str) -> AsyncIterator[None]:
        """:meth:`single_flight` for asyncio tasks; waits without blocking the loop."""
        async with self._flight.hold_async(refs(integrity)[0].name):
            yield

    # -- maintenance ---------------------------------------------------------

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Check every disk entry; with ``repair`` quarantine the bad ones.

        Safe while other threads and processes use the cache: temp files are
        skipped, and a file replaced while it was checked is left alone.
        """
        checked = ok = size = 0
        bad: list[str] = []
        moved: list[str] = []
        for entry in self._entries():
            if entry.temp:
                continue
            checked += 1
            path = self._join(entry.relpath)
            try:
                data, info = self._fs.read(path)
            except FileNotFoundError:
                checked -= 1  # evicted or quarantined meanwhile
                continue
            except OSError:
                bad.append(entry.relpath)
                continue
            size += len(data)
            if entry.ref is not None and matches(data, (entry.ref,)) is not None:
                ok += 1
                continue
            if entry.ref is not None:
                self._count("integrity_failures")
            if not repair:
                bad.append(entry.relpath)
            elif self._quarantine(path, info, entry.ref, why="found by verify", data=data):
                bad.append(entry.relpath)
                moved.append(entry.relpath)
            else:
                checked -= 1  # replaced while we looked: the next verify checks the new file
        return VerifyReport(checked, ok, tuple(bad), tuple(moved), size)

    def gc(self) -> GcReport:
        """Evict by LRU down to ``max_bytes`` (never pinned entries), remove temp
        files older than a minute and week-old quarantine, compact the index."""
        if self.root is None:
            kept, dropped = self._index.compact(lambda i: self._present(i, set()))
            return GcReport((), 0, 0, 0, kept, dropped, 0, 0)
        now = self._clock()
        temps = 0
        for entry in self._entries():
            if entry.temp and now - entry.mtime > TEMP_MAX_AGE:
                temps += self._remove(self._join(entry.relpath))
        temps += sweep(self._fs, self._join("tmp"), now - TEMP_MAX_AGE, lambda _: True)
        temps += sweep(
            self._fs, self._join("index"), now - TEMP_MAX_AGE, lambda n: n.startswith(TEMP_PREFIX)
        )
        old = sweep(self._fs, self._join("quarantine"), now - QUARANTINE_KEEP, lambda _: True)
        evicted, freed = self._evict(self.max_bytes) if self.max_bytes is not None else ((), 0)
        entries = [e for e in self._entries() if e.ref is not None]
        on_disk = {e.ref.name for e in entries if e.ref is not None}
        try:
            kept, dropped = self._index.compact(lambda i: self._present(i, on_disk))
        except OSError as exc:
            self._disk_failed(exc, "compacting index/index.jsonl")
            kept, dropped = 0, 0
        total = sum(e.size for e in entries)
        self._disk_bytes = total
        return GcReport(evicted, freed, temps, old, kept, dropped, len(entries), total)

    def stats(self) -> CacheStats:
        """Counters since this object was made, plus what is on disk now.

        The disk figures cost one ``stat`` per entry: for reports and
        metrics scrapes, not for every request.
        """
        entries = [e for e in self._entries() if e.ref is not None]
        with self._lock:
            counts = dict(self._counts)
            memory = (len(self._memory), int(self._memory.currsize))
        return CacheStats(
            **counts,
            degraded=self.degraded,
            entries=len(entries),
            bytes_on_disk=sum(e.size for e in entries),
            memory_entries=memory[0],
            memory_bytes=memory[1],
        )

    # -- internals -----------------------------------------------------------

    def _entries(self) -> list[Entry]:
        return [] if self.root is None else scan(self._fs, self._dir)

    def _join(self, *parts: str) -> str:
        return os.path.join(self._dir, *parts)

    def _create_folders(self) -> None:
        try:
            info = os.stat(self._dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CacheError(f"cache root {self._dir!r} cannot be inspected: {exc}") from exc
        else:
            if not stat.S_ISDIR(info.st_mode):
                raise CacheError(f"cache root {self._dir!r} exists and is not a folder")
        for name in FOLDERS:
            try:
                self._fs.makedirs(self._join(name))
            except OSError as exc:
                if exc.errno not in DEGRADING_ERRNOS:
                    raise CacheError(f"cannot create {self._join(name)!r}: {exc}") from exc
                self._disk_failed(exc, f"creating {name}/")

    def _evict(self, target: int) -> tuple[tuple[str, ...], int]:
        entries = [e for e in self._entries() if e.ref is not None]
        total = sum(e.size for e in entries)
        evicted: list[str] = []
        freed = 0
        unpinned = sorted(
            (e for e in entries if e.ref is not None and e.ref.name not in self._pinned),
            key=lambda e: e.mtime,
        )
        for entry in unpinned:
            if total - freed <= target:
                break
            if self._remove(self._join(entry.relpath)):
                freed += entry.size
                evicted.append(entry.relpath)
                self._count("evictions")
                self._emit("evicted", None, f"{entry.relpath} ({entry.size} bytes, LRU)")
        self._disk_bytes = total - freed
        return tuple(evicted), freed

    def _grow(self, size: int) -> None:
        if self.max_bytes is None:
            return
        if self._disk_bytes is None:
            self._disk_bytes = sum(e.size for e in self._entries() if e.ref is not None)
        else:
            self._disk_bytes += size
        if self._disk_bytes > self.max_bytes:
            self._evict(int(self.max_bytes * EVICT_TO))

    def _present(self, integrity: str, on_disk: set[str]) -> bool:
        with self._lock:
            return any(r.name in on_disk or r.name in self._memory for r in refs(integrity))

    def _quarantine(
        self, path: str, info: os.stat_result, ref: Ref | None, *, why: str, data: bytes
    ) -> bool:
        """Quarantine ``path`` if it is still the file ``info`` describes.

        False when the file was replaced meanwhile (a writer won: look again).
        """
        try:
            note = quarantine(
                self._fs, self._dir, path, info, ref, why=why, data=data, when=self._clock()
            )
        except OSError as exc:
            self._emit("write_failed", None, f"{_describe(exc)} quarantining {path}")
            return True  # not served either way: the read that found it is a miss
        if note is None:
            return False
        if ref is not None:
            self._forget_memory(ref.name)
        self._count("quarantines")
        self._emit("quarantined", note["expected"], f"{note['file']}: {why}")
        return True

    def _keep_in_memory(self, ref: Ref, data: bytes) -> None:
        with self._lock, contextlib.suppress(ValueError):  # larger than the tier: skipped
            self._memory[ref.name] = data

    def _forget_memory(self, name: str) -> None:
        with self._lock:
            self._memory.pop(name, None)

    def _touch_if_due(self, ref: Ref) -> None:
        if self.root is None:
            return
        now = self._clock()
        if now - self._touched.get(ref.name, -TOUCH_EVERY) >= TOUCH_EVERY:
            self._touched[ref.name] = now
            self._touch(self._join(ref.relpath()))

    def _touch(self, path: str) -> None:
        with contextlib.suppress(OSError):  # LRU order is a hint; a read-only disk keeps none
            self._fs.utime(path, self._clock())

    def _remove(self, path: str) -> bool:
        try:
            self._fs.unlink(path)
        except OSError:
            return False
        return True

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _emit(self, kind: str, integrity: str | None, detail: str) -> None:
        log.info("cache %s: %s", kind, detail)
        if self._on_event is None:
            return
        try:
            self._on_event(CacheEvent(kind=kind, integrity=integrity, detail=detail))
        except Exception:
            # A broken hook must not break the cache it observes.
            log.exception("on_event hook failed for a %s event", kind)


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "OSError")
    return f"{name} ({exc.strerror})"
