"""The cache half of the fault suite (issue 5).

Every fault is injected for real where it can be (files damaged on disk,
processes killed with SIGKILL) and through the FileSystem seam where only the
kernel could otherwise (ENOSPC, EROFS, EIO).  For each: the bytes returned are
correct or None -- never wrong -- and afterwards a put/get works and
``verify()`` is clean.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cache_writer import STEPS, integrity_path, payload, shared_payload
from unblank import AssetCache, Source, integrity
from unblank._fs import FaultyFileSystem
from unblank.cache import CacheEvent

REPO = Path(__file__).resolve().parent.parent
WRITER = str(REPO / "tests" / "cache_writer.py")
KILLS = 20  # SIGKILLs at random instants; with the 7 fixed steps, ~5 s in all


def entry(n: int, size: int = 2000) -> tuple[str, bytes]:
    data = (f"asset {n};".encode() * size)[:size]
    return integrity.compute(data), data


def content_path(root: Path, meta: str) -> Path:
    return root / integrity_path(meta)


def assert_healthy(root: Path) -> None:
    """A fresh cache on ``root`` verifies clean and can store and read again."""
    cache = AssetCache(root, memory_bytes=0)
    report = cache.verify()
    assert report.clean, report.bad
    meta, data = entry(12345, 777)
    cache.put(meta, data)
    hit = cache.get(meta)
    assert hit is not None and hit.data == data


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "sdk"), str(REPO)])}
    return subprocess.Popen(
        [sys.executable, WRITER, *args], stdout=subprocess.PIPE, text=True, env=env
    )


# -- damaged entries ---------------------------------------------------------


def _truncate(path: Path, data: bytes, other: bytes) -> None:
    path.write_bytes(data[: len(data) // 2])


def _zero_length(path: Path, data: bytes, other: bytes) -> None:
    path.write_bytes(b"")


def _flip_bit(path: Path, data: bytes, other: bytes) -> None:
    damaged = bytearray(data)
    damaged[len(data) // 3] ^= 0x10
    path.write_bytes(bytes(damaged))


def _nul_filled(path: Path, data: bytes, other: bytes) -> None:
    path.write_bytes(b"\0" * len(data))


def _other_entry(path: Path, data: bytes, other: bytes) -> None:
    path.write_bytes(other)


DAMAGE: dict[str, Callable[[Path, bytes, bytes], None]] = {
    "truncated": _truncate,
    "zero-length": _zero_length,
    "bit-flipped": _flip_bit,
    "nul-filled": _nul_filled,
    "other-entry": _other_entry,
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_fault_damaged_entry_is_quarantined_never_served(
    tmp_path: Path, damage: Callable[[Path, bytes, bytes], None]
) -> None:
    events: list[CacheEvent] = []
    cache = AssetCache(tmp_path, memory_bytes=0, on_event=events.append)
    meta, data = entry(1)
    other_meta, other = entry(2)
    cache.put(meta, data)
    cache.put(other_meta, other)
    damage(content_path(tmp_path, meta), data, other)

    assert cache.get(meta) is None
    assert cache.was_quarantined(meta)
    assert not content_path(tmp_path, meta).exists()
    assert [e.kind for e in events] == ["quarantined"] and events[0].integrity == meta
    stats = cache.stats()
    assert (stats.integrity_failures, stats.quarantines) == (1, 1)

    assert cache.get(meta) is None and not cache.was_quarantined(meta)  # a plain miss now
    cache.put(meta, data)  # the client's refetch
    hit = cache.get(meta)
    assert hit is not None and hit.data == data
    assert cache.get(other_meta) is not None
    assert_healthy(tmp_path)


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_fault_damaged_destination_is_replaced_by_put(
    tmp_path: Path, damage: Callable[[Path, bytes, bytes], None]
) -> None:
    cache = AssetCache(tmp_path, memory_bytes=0)
    meta, data = entry(1)
    _, other = entry(2)
    cache.put(meta, data)
    damage(content_path(tmp_path, meta), data, other)
    cache.put(meta, data)  # never trusts what is already there
    assert content_path(tmp_path, meta).read_bytes() == data
    assert cache.stats().quarantines == 1
    assert_healthy(tmp_path)


def test_fault_damage_behind_a_memory_copy_is_found_by_verify(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta, data = entry(1)
    cache.put(meta, data)
    _nul_filled(content_path(tmp_path, meta), data, b"")
    hit = cache.get(meta)
    assert hit is not None and hit.source is Source.MEMORY and hit.data == data
    report = cache.verify(repair=True)
    assert len(report.quarantined) == 1
    assert cache.get(meta) is None  # dropped from memory with the bad file
    assert_healthy(tmp_path)


# -- the index ---------------------------------------------------------------


def _index(root: Path) -> Path:
    return root / "index" / "index.jsonl"


def _with_index(root: Path) -> tuple[AssetCache, list[str]]:
    cache = AssetCache(root)
    metas = []
    for n in range(3):
        meta, data = entry(n)
        cache.put(meta, data)
        cache.remember(f"asset{n}.js", meta)
        metas.append(meta)
    return cache, metas


def test_fault_garbled_index_record_is_skipped(tmp_path: Path) -> None:
    _, metas = _with_index(tmp_path)
    text = _index(tmp_path).read_bytes()
    lines = text.split(b"\n")
    lines[2] = lines[2].replace(b"asset1", b"assetX")  # checksum no longer matches
    _index(tmp_path).write_bytes(b"\n".join(lines))
    cache = AssetCache(tmp_path)
    assert cache.recall("asset0.js") == metas[0]
    assert cache.recall("asset1.js") is None and cache.recall("assetX.js") is None
    assert cache.recall("asset2.js") == metas[2]
    assert cache.gc().index_dropped == 1
    assert_healthy(tmp_path)


def test_fault_truncated_index_keeps_earlier_records_and_takes_new_ones(tmp_path: Path) -> None:
    _, metas = _with_index(tmp_path)
    text = _index(tmp_path).read_bytes()
    _index(tmp_path).write_bytes(text[: len(text) - 30])  # a torn last record
    cache = AssetCache(tmp_path)
    assert cache.recall("asset1.js") == metas[1]
    assert cache.recall("asset2.js") is None
    cache.remember("asset2.js", metas[2])  # not glued to the torn line
    assert AssetCache(tmp_path).recall("asset2.js") == metas[2]
    assert_healthy(tmp_path)


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00" * 500, os.urandom(2000), b"{not json}\n" * 10], ids=repr
)
def test_fault_garbage_or_deleted_index_keeps_the_cache_working(
    tmp_path: Path, garbage: bytes
) -> None:
    _, metas = _with_index(tmp_path)
    if garbage:
        _index(tmp_path).write_bytes(garbage)
    else:
        _index(tmp_path).unlink()
    cache = AssetCache(tmp_path)
    assert cache.recall("asset0.js") is None  # names are lost, content is not
    hit = cache.get(metas[0])
    assert hit is not None and hit.source is Source.DISK
    cache.remember("asset0.js", metas[0])
    assert AssetCache(tmp_path).recall("asset0.js") == metas[0]
    cache.gc()
    assert AssetCache(tmp_path).recall("asset0.js") == metas[0]
    assert_healthy(tmp_path)


# -- temp files and killed writers ---------------------------------------------


def test_fault_leftover_temp_file_is_ignored_then_swept(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, memory_bytes=0)
    meta, data = entry(1)
    folder = content_path(tmp_path, meta).parent
    folder.mkdir(parents=True)
    leftover = folder / ".tmp-0123456789abcdef-deadbeef"
    leftover.write_bytes(data[:100])
    assert cache.get(meta) is None
    assert cache.verify().clean
    cache.put(meta, data)
    hit = cache.get(meta)
    assert hit is not None and hit.data == data
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    assert cache.gc().temp_removed == 1
    assert not leftover.exists()
    assert_healthy(tmp_path)


@pytest.mark.parametrize("step", STEPS)
def test_fault_sigkill_at_each_step_of_a_write(tmp_path: Path, step: str) -> None:
    proc = spawn("step", str(tmp_path), step)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, out
    data = payload(99, 7)
    meta = integrity.compute(data)
    cache = AssetCache(tmp_path, memory_bytes=0)
    hit = cache.get(meta)
    # Killed before the rename: no entry.  After: the whole entry.  Never a part.
    assert hit is None or hit.data == data
    assert (hit is not None) == (step in ("fsync_dir", "append"))
    assert cache.recall("step") is None  # a torn index record is skipped
    assert_healthy(tmp_path)


def test_fault_sigkill_at_random_instants_never_leaves_wrong_bytes(tmp_path: Path) -> None:
    rng = random.Random(5)
    for run in range(KILLS):
        proc = spawn("loop", str(tmp_path), str(run))
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(rng.randrange(0, 8)):  # let a few writes complete first
            proc.stdout.readline()
        time.sleep(rng.random() * 0.005)  # then kill mid-way through the next one
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)

    cache = AssetCache(tmp_path, memory_bytes=0)
    report = cache.verify()
    assert report.clean and report.checked > KILLS, report
    seen = 0
    for run in range(KILLS):
        for i in range(50):
            data = payload(run, i)
            hit = cache.get(integrity.compute(data))
            assert hit is None or hit.data == data
            seen += hit is not None
            remembered = cache.recall(f"{run}/{i}")
            assert remembered is None or remembered == integrity.compute(data)
    assert seen == report.checked
    assert_healthy(tmp_path)


# -- several processes -------------------------------------------------------


def test_fault_processes_writing_and_reading_one_key(tmp_path: Path) -> None:
    AssetCache(tmp_path)
    procs = [spawn("hammer", str(tmp_path), "150", "1" if n < 2 else "0") for n in range(4)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["wrong"] for r in results) == 0
    assert sum(r["hits"] for r in results) > 0
    assert sum(r["corrupted"] for r in results) > 0  # readers did meet damage
    cache = AssetCache(tmp_path, memory_bytes=0)
    hit = cache.get(integrity.compute(shared_payload()))
    assert hit is None or hit.data == shared_payload()
    cache.verify(repair=True)  # a corruptor may have struck last
    assert_healthy(tmp_path)


def test_single_flight_across_processes_downloads_once(tmp_path: Path) -> None:
    AssetCache(tmp_path)
    log = tmp_path / "downloads.log"
    procs = [spawn("flight", str(tmp_path), str(log)) for _ in range(4)]
    for proc in procs:
        assert proc.communicate(timeout=60)[0].strip() == "done"
    assert len(log.read_text().splitlines()) == 1


@pytest.fixture
def killed_holder(tmp_path: Path) -> Path:
    proc = spawn("hold", str(tmp_path))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert list((tmp_path / "locks").glob("*.lock"))  # the lock file stays behind
    return tmp_path


def test_single_flight_lock_of_a_killed_process_does_not_block(killed_holder: Path) -> None:
    cache = AssetCache(killed_holder)
    entered = threading.Event()

    def enter() -> None:
        with cache.single_flight(integrity.compute(shared_payload())):
            entered.set()

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    thread.join(10)
    assert entered.is_set()


# -- disks that refuse ---------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("write", errno.ENOSPC),
        ("fsync", errno.ENOSPC),
        ("replace", errno.ENOSPC),
        ("create_temp", errno.EROFS),
        ("create_temp", errno.EACCES),
        ("makedirs", errno.EPERM),
        ("fsync", errno.EIO),
        ("write", errno.EDQUOT),
    ],
)
def test_fault_disk_errors_degrade_to_memory_only(
    tmp_path: Path, operation: str, code: int
) -> None:
    fs = FaultyFileSystem()
    clock_now = [1_000_000.0]
    events: list[CacheEvent] = []
    cache = AssetCache(tmp_path, fs=fs, clock=lambda: clock_now[0], on_event=events.append)
    fs.fail(operation, code)
    meta, data = entry(1)
    cache.put(meta, data)  # never raises
    assert cache.degraded is not None and errno.errorcode[code] in cache.degraded
    assert [e.kind for e in events] == ["degraded"]
    hit = cache.get(meta)
    assert hit is not None and hit.source is Source.MEMORY and hit.data == data
    stats = cache.stats()
    assert stats.degraded == cache.degraded and stats.degradations == 1
    assert not content_path(tmp_path, meta).exists()
    assert not list(tmp_path.rglob(".tmp-*"))  # nothing half-written left
    assert cache.verify().clean

    meta2, data2 = entry(2)
    cache.put(meta2, data2)  # memory only: the disk is not asked again at once
    assert cache.get(meta2) is not None and not content_path(tmp_path, meta2).exists()

    fs.heal()
    clock_now[0] += 60  # later, a write tries the disk again
    meta3, data3 = entry(3)
    cache.put(meta3, data3)
    assert cache.degraded is None and events[-1].kind == "recovered"
    assert content_path(tmp_path, meta3).read_bytes() == data3
    assert_healthy(tmp_path)


def test_fault_read_errors_are_misses_not_exceptions(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    cache = AssetCache(tmp_path, memory_bytes=0, fs=fs)
    meta, data = entry(1)
    cache.put(meta, data)
    fs.fail("read", errno.EIO)
    assert cache.get(meta) is None
    fs.heal()
    hit = cache.get(meta)
    assert hit is not None and hit.data == data


def test_fault_read_only_index_degrades(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    cache = AssetCache(tmp_path, fs=fs)
    meta, _ = entry(1)
    fs.fail("append", errno.EROFS)
    cache.remember("app.js", meta)
    assert cache.degraded is not None
    assert cache.recall("app.js") == meta  # remembered in this process at least


def test_fault_read_only_root_at_start_degrades(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    fs.fail("makedirs", errno.EROFS)
    cache = AssetCache(tmp_path / "new", fs=fs)
    assert cache.degraded is not None and "EROFS" in cache.degraded
    meta, data = entry(1)
    cache.put(meta, data)
    assert cache.get(meta) is not None
    assert cache.verify().clean and cache.gc().entries == 0


def test_fault_quarantine_on_a_read_only_disk_still_refuses_bad_bytes(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    cache = AssetCache(tmp_path, memory_bytes=0, fs=fs)
    meta, data = entry(1)
    cache.put(meta, data)
    content_path(tmp_path, meta).write_bytes(data[:-1])
    fs.fail("replace", errno.EROFS)
    fs.fail("unlink", errno.EROFS)
    assert cache.get(meta) is None
    assert cache.get(meta) is None  # still there, still refused
    fs.heal()
    cache.put(meta, data)
    assert_healthy(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_fault_real_read_only_folder(tmp_path: Path) -> None:
    meta, data = entry(1)
    AssetCache(tmp_path)
    for folder in [tmp_path, *tmp_path.rglob("*")]:
        folder.chmod(0o555)
    try:
        cache = AssetCache(tmp_path)
        cache.put(meta, data)
        assert cache.degraded is not None
        assert cache.get(meta) is not None
    finally:
        for folder in [tmp_path, *tmp_path.rglob("*")]:
            folder.chmod(0o755)
    assert_healthy(tmp_path)
