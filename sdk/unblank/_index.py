# Paths are str through the FileSystem seam, and the os calls are what the seam wraps.
# ruff: noqa: PTH118, PTH119, PTH120, PTH206
"""Where things are in a cache folder: content by digest, names in the index.

**Content** lives at ``content/<algorithm>/<hex[:2]>/<hex digest>``: the path
is the digest, so content is self-describing and :func:`scan` can list every
entry without any index.  :func:`refs` turns SRI metadata into the
:class:`Ref` candidates of its strongest algorithm.

**The index** maps a logical name or URL to integrity, in the append-only
``index/index.jsonl``, one record per line::

    <sha256 hex of BODY> <BODY: {"integrity": ..., "key": ..., "time": ...}>

Each record is written as ``"\\n" + record`` in a single ``O_APPEND`` write.
The checksum finds a torn or garbled line, which is skipped; the leading
newline ends a torn line left by a killed writer, so the next record starts
on a line of its own instead of being glued to it.  The last record of a key
wins.  :meth:`Index.compact` rewrites the file atomically with one record per
key (temp file, fsync, rename), under an ``flock`` that appenders take too.

The index only *names* content, so losing it loses no content.  A deleted or
garbled index is "rebuilt" by carrying on: lost keys make
:meth:`Index.recall` return None and the client learns them again from the
next manifest.

>>> index = Index(fs=None, path=None, lock_path=None, clock=lambda: 0.0)
>>> index.remember("app.js", "sha384-" + "A" * 64)
>>> index.recall("app.js") == "sha384-" + "A" * 64
True
>>> refs("sha256-" + "A" * 43 + "= sha384-" + "A" * 64)[0].relpath()
'content/sha384/00/000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from unblank import integrity as sri
from unblank._exceptions import IntegrityMetadataError
from unblank._fs import FileSystem
from unblank._locks import file_lock

__all__ = [
    "TEMP_PREFIX",
    "Entry",
    "Index",
    "Ref",
    "format_record",
    "list_names",
    "matches",
    "parse_records",
    "quarantine",
    "ref_of",
    "refs",
    "scan",
    "sweep",
]

_CHECKSUM_LEN: Final = 64  # hex of sha256

TEMP_PREFIX: Final = ".tmp-"  # temp files: skipped by readers and verify, swept by gc


@dataclass(frozen=True, slots=True)
class Entry:
    """A file under content/: a named entry (``ref``), a temp file or a stray."""

    relpath: str
    ref: Ref | None
    temp: bool
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class Ref:
    """One digest: where it lives on disk and in memory."""

    algorithm: str
    digest: bytes

    @property
    def hex(self) -> str:
        return self.digest.hex()

    @property
    def name(self) -> str:
        return f"{self.algorithm}-{self.digest.hex()}"

    def relpath(self) -> str:
        hexd = self.digest.hex()
        return os.path.join("content", self.algorithm, hexd[:2], hexd)


@functools.lru_cache(maxsize=4096)
def refs(integrity: str) -> tuple[Ref, ...]:
    # Parsed once per string: the memory-hit path is then two dict lookups.
    return tuple(Ref(d.algorithm, d.digest) for d in sri.strongest(sri.parse(integrity)))


def matches(data: bytes, refs: tuple[Ref, ...]) -> Ref | None:
    actual = hashlib.new(refs[0].algorithm, data).digest()
    found = None
    for ref in refs:  # compare with every candidate: time does not tell which matched
        if hmac.compare_digest(actual, ref.digest):
            found = ref
    return found


def ref_of(relpath: str) -> Ref | None:
    """The digest a content path names, or None for a stray file."""
    parts = relpath.split(os.sep)
    if len(parts) != 4 or parts[1] not in sri.ALGORITHMS:
        return None
    _, algorithm, prefix, name = parts
    try:
        digest = bytes.fromhex(name)
    except ValueError:
        return None
    ref = Ref(algorithm, digest)
    return ref if name == ref.hex and prefix == name[:2] and _size_ok(ref) else None


def _size_ok(ref: Ref) -> bool:
    return len(ref.digest) == hashlib.new(ref.algorithm).digest_size


def scan(fs: FileSystem, root: str) -> list[Entry]:
    """Every file under ``root/content/<algorithm>/<xx>/``; unreadable folders are skipped."""
    found: list[Entry] = []
    for rel in _folders(fs, root, "content", depth=2):
        for name in list_names(fs, os.path.join(root, rel)):
            relpath = os.path.join(rel, name)
            try:
                info = fs.stat(os.path.join(root, relpath))
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            temp = name.startswith(TEMP_PREFIX)
            ref = None if temp else ref_of(relpath)
            found.append(Entry(relpath, ref, temp, info.st_size, info.st_mtime))
    return found


def _folders(fs: FileSystem, root: str, rel: str, *, depth: int) -> list[str]:
    if depth == 0:
        return [rel]
    return [
        sub
        for name in list_names(fs, os.path.join(root, rel))
        for sub in _folders(fs, root, os.path.join(rel, name), depth=depth - 1)
    ]


def list_names(fs: FileSystem, path: str) -> list[str]:
    try:
        return sorted(fs.listdir(path))
    except OSError:  # not a folder, vanished, unreadable: nothing to list
        return []


def quarantine(
    fs: FileSystem,
    root: str,
    path: str,
    info: os.stat_result,
    ref: Ref | None,
    *,
    why: str,
    data: bytes,
    when: float,
) -> dict[str, Any] | None:
    """Move ``path`` to ``root/quarantine/`` with a JSON note beside it; the note.

    None when ``path`` is no longer the file ``info`` describes: a writer
    replaced it after it was read, and the new file deserves its own check.
    OSError when it can be neither moved nor removed.
    """
    try:
        now = fs.stat(path)
    except FileNotFoundError:
        now = None  # another reader quarantined it first: note what this one saw
    if now is not None and (now.st_ino, now.st_dev) != (info.st_ino, info.st_dev):
        return None
    algorithm = ref.algorithm if ref is not None else sri.ALGORITHMS[-1]
    note: dict[str, Any] = {
        "why": why,
        "when": datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds"),
        "file": os.path.relpath(path, root),
        "expected": str(sri.Digest(ref.algorithm, ref.digest)) if ref is not None else None,
        "actual": str(sri.Digest(algorithm, hashlib.new(algorithm, data).digest())),
        "size": len(data),
    }
    if now is None:
        return note
    name = f"{os.path.basename(path)}.{int(when)}.{secrets.token_hex(4)}"
    dest = os.path.join(root, "quarantine", name)
    try:
        fs.replace(path, dest)
    except FileNotFoundError:
        return note
    except OSError:
        fs.unlink(path)  # no room to keep it: at least stop serving it
        return note
    with contextlib.suppress(OSError):  # the note explains; losing it loses no data
        fd, tmp = fs.create_temp(os.path.join(root, "quarantine"), TEMP_PREFIX)
        try:
            fs.write(fd, json.dumps(note, indent=2, sort_keys=True).encode())
        finally:
            fs.close(fd)
        fs.replace(tmp, dest + ".json")
    return note


def sweep(fs: FileSystem, folder: str, older_than: float, wanted: Callable[[str], bool]) -> int:
    """Remove the files in ``folder`` that ``wanted`` and are older than ``older_than``."""
    removed = 0
    for name in list_names(fs, folder):
        path = os.path.join(folder, name)
        try:
            info = fs.stat(path)
            if stat.S_ISREG(info.st_mode) and wanted(name) and info.st_mtime < older_than:
                fs.unlink(path)
                removed += 1
        except OSError:
            continue
    return removed


def format_record(key: str, integrity: str, when: float) -> bytes:
    # ensure_ascii keeps every record on one line whatever the key holds.
    body = json.dumps(
        {"integrity": integrity, "key": key, "time": when},
        ensure_ascii=True,
        separators=(",", ":"),
        sort_keys=True,
    ).encode("ascii")
    return b"\n" + hashlib.sha256(body).hexdigest().encode("ascii") + b" " + body


def parse_records(text: bytes) -> tuple[dict[str, str], int]:
    """Key -> integrity (last record wins) and how many non-empty lines were bad."""
    found: dict[str, str] = {}
    bad = 0
    for line in text.split(b"\n"):
        if not line.strip():
            continue
        record = _parse_line(line)
        if record is None:
            bad += 1
        else:
            found.pop(record[0], None)  # re-insert: dict order follows the last record
            found[record[0]] = record[1]
    return found, bad


def _parse_line(line: bytes) -> tuple[str, str] | None:
    checksum, _, body = line.partition(b" ")
    if len(checksum) != _CHECKSUM_LEN or hashlib.sha256(body).hexdigest().encode() != checksum:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    key, integrity = value.get("key"), value.get("integrity")
    if not isinstance(key, str) or not isinstance(integrity, str):
        return None
    try:
        sri.parse(integrity)  # a valid checksum over hostile metadata is still hostile
    except IntegrityMetadataError:
        return None
    return key, integrity


class Index:
    """Key -> integrity, shared through ``path`` by every process using the cache.

    ``path=None`` keeps it in memory only.  OSErrors of writes propagate (the
    cache decides to degrade); reads that fail count as an empty file.
    """

    __slots__ = ("_clock", "_fs", "_lock", "_lock_path", "_map", "_path", "_seen", "garbled")

    def __init__(
        self,
        *,
        fs: FileSystem | None,
        path: str | None,
        lock_path: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._fs = fs
        self._path = path
        self._lock_path = lock_path
        self._clock = clock
        self._lock = threading.Lock()
        self._map: dict[str, str] = {}
        self._seen: tuple[int, int, float] | None = None  # (inode, size, mtime) last read
        self.garbled = 0  # bad lines seen in the last full read

    def __repr__(self) -> str:
        return f"Index(path={self._path!r}, keys={len(self._map)})"

    def remember(self, key: str, integrity: str) -> None:
        sri.parse(integrity)  # refuse to record what no reader could use
        with self._lock:
            self._map[key] = integrity
        if self._fs is None or self._path is None:
            return
        record = format_record(key, integrity, self._clock())
        with file_lock(self._lock_path):
            self._fs.append(self._path, record)

    def recall(self, key: str) -> str | None:
        self._refresh()
        with self._lock:
            return self._map.get(key)

    def items(self) -> dict[str, str]:
        self._refresh()
        with self._lock:
            return dict(self._map)

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the in-memory records whose integrity ``keep`` refuses."""
        with self._lock:
            self._map = {k: v for k, v in self._map.items() if keep(v)}

    def compact(self, keep: Callable[[str], bool]) -> tuple[int, int]:
        """Rewrite the file with one record per key that ``keep``; ``(kept, dropped)``."""
        if self._fs is None or self._path is None:
            with self._lock:
                before = len(self._map)
            self.forget(keep)
            return len(self._map), before - len(self._map)
        fs, path = self._fs, self._path
        with file_lock(self._lock_path):
            try:
                text, _ = fs.read(path)
            except FileNotFoundError:
                text = b""
            records, bad = parse_records(text)
            kept = {k: v for k, v in records.items() if keep(v)}
            dropped = len(records) - len(kept) + bad
            now = self._clock()
            body = b"".join(format_record(k, v, now) for k, v in kept.items())
            folder = os.path.dirname(path)
            fd, tmp = fs.create_temp(folder, TEMP_PREFIX)
            try:
                try:
                    fs.write(fd, body)
                    fs.fsync(fd)
                finally:
                    fs.close(fd)
                fs.replace(tmp, path)
            except BaseException:
                _remove_quietly(fs, tmp)
                raise
            fs.fsync_dir(folder)
        self.forget(keep)
        self._refresh()
        return len(kept), dropped

    def _refresh(self) -> None:
        if self._fs is None or self._path is None:
            return
        try:
            info = self._fs.stat(self._path)
        except OSError:
            return  # lost: keep what this process knows, learn the rest again
        seen = (info.st_ino, info.st_size, info.st_mtime)
        if seen == self._seen:
            return
        try:
            text, info = self._fs.read(self._path)
        except OSError:
            return
        records, bad = parse_records(text)
        with self._lock:
            self._map.update(records)
            self._seen = (info.st_ino, info.st_size, info.st_mtime)
            self.garbled = bad


def _remove_quietly(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):
        fs.unlink(path)
