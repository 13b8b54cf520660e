"""AssetCache: tiers, index, eviction, gc, verify, single flight (threads and asyncio)."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import json
import os
import threading
from pathlib import Path

import pytest

from unblank import (
    AssetCache,
    CacheError,
    Hit,
    IntegrityMetadataError,
    IntegrityMismatch,
    Source,
    integrity,
)
from unblank.cache import CacheEvent


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(n: int, size: int = 100) -> tuple[str, bytes]:
    data = (f"entry {n} ".encode() * size)[:size]
    return integrity.compute(data), data


def content_path(root: Path, meta: str) -> Path:
    digest = integrity.strongest(integrity.parse(meta))[0]
    hexd = digest.digest.hex()
    return root / "content" / digest.algorithm / hexd[:2] / hexd


@pytest.mark.parametrize(
    "name", ["unblank.cache", "unblank._fs", "unblank._index", "unblank._locks"]
)
def test_cache_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_cache_creates_layout(tmp_path: Path) -> None:
    AssetCache(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "content",
        "index",
        "locks",
        "quarantine",
        "tmp",
    ]


def test_cache_root_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="not a folder"):
        AssetCache(tmp_path / "file")


@pytest.mark.parametrize(("memory_bytes", "max_bytes"), [(-1, None), (1, 0)])
def test_cache_refuses_bad_sizes(tmp_path: Path, memory_bytes: int, max_bytes: int | None) -> None:
    with pytest.raises(CacheError):
        AssetCache(tmp_path, memory_bytes=memory_bytes, max_bytes=max_bytes)


@pytest.mark.parametrize("on_disk", [True, False], ids=["disk", "memory-only"])
def test_cache_put_then_get_from_memory(tmp_path: Path, on_disk: bool) -> None:
    cache = AssetCache(tmp_path if on_disk else None)
    meta, data = entry(1)
    assert cache.get(meta) is None
    cache.put(meta, data)
    assert cache.get(meta) == Hit(data, meta, Source.MEMORY)
    assert content_path(tmp_path, meta).exists() is on_disk


def test_cache_disk_tier_survives_a_new_process(tmp_path: Path) -> None:
    meta, data = entry(1)
    AssetCache(tmp_path).put(meta, data)
    fresh = AssetCache(tmp_path)
    assert fresh.get(meta) == Hit(data, meta, Source.DISK)
    assert fresh.get(meta) == Hit(data, meta, Source.MEMORY)  # promoted
    stats = fresh.stats()
    assert (stats.disk_hits, stats.memory_hits, stats.memory_misses) == (1, 1, 1)
    assert (stats.entries, stats.bytes_on_disk) == (1, len(data))


def test_cache_put_refuses_wrong_bytes_and_stores_nothing(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta, _ = entry(1)
    with pytest.raises(IntegrityMismatch) as caught:
        cache.put(meta, b"not it")
    assert caught.value.expected == meta
    assert caught.value.actual == integrity.compute(b"not it")
    assert cache.get(meta) is None
    assert cache.stats().entries == 0


def test_cache_keys_by_strongest_algorithm(tmp_path: Path) -> None:
    data = b"body{}"
    both = integrity.compute(data, ("sha256", "sha512"))
    cache = AssetCache(tmp_path, memory_bytes=0)
    cache.put(both, data)
    assert [p.name for p in (tmp_path / "content").iterdir()] == ["sha512"]
    hit = cache.get(integrity.compute(data, "sha512"))
    assert hit is not None and hit.data == data
    # Metadata naming only sha256 is another address: content-addressing by that digest.
    assert cache.get(integrity.compute(data, "sha256")) is None


def test_cache_accepts_any_token_of_the_strongest_algorithm(tmp_path: Path) -> None:
    data = b"x = 1"
    other = integrity.compute(b"something else")
    meta = f"{other} {integrity.compute(data)}"
    cache = AssetCache(tmp_path, memory_bytes=0)
    cache.put(meta, data)
    hit = AssetCache(tmp_path, memory_bytes=0).get(meta)
    assert hit is not None and hit.data == data


def test_cache_memory_tier_is_bounded_in_bytes() -> None:
    cache = AssetCache(None, memory_bytes=1000)
    metas = []
    for n in range(10):
        meta, data = entry(n, 300)
        cache.put(meta, data)
        metas.append(meta)
        assert cache.stats().memory_bytes <= 1000
    assert cache.stats().memory_entries == 3
    assert cache.get(metas[0]) is None  # least recently used went first
    assert cache.get(metas[-1]) is not None
    big_meta, big = entry(99, 5000)
    cache.put(big_meta, big)  # larger than the whole tier: simply not kept
    assert cache.get(big_meta) is None


def test_cache_index_remembers_across_instances(tmp_path: Path) -> None:
    first = AssetCache(tmp_path)
    meta1, _ = entry(1)
    meta2, _ = entry(2)
    first.remember("app.js", meta1)
    first.remember("app.js", meta2)  # the last record wins
    first.remember("https://cdn/x.css", meta1)
    second = AssetCache(tmp_path)
    assert second.recall("app.js") == meta2
    assert second.recall("https://cdn/x.css") == meta1
    assert second.recall("nope") is None
    second.remember("late", meta1)
    assert first.recall("late") == meta1  # another instance's appends are seen


def test_cache_index_refuses_bad_metadata(tmp_path: Path) -> None:
    with pytest.raises(IntegrityMetadataError):
        AssetCache(tmp_path).remember("app.js", "md5-abc")


def test_cache_lru_eviction_by_last_use_never_evicts_pinned(tmp_path: Path) -> None:
    clock = Clock()
    events: list[CacheEvent] = []
    cache = AssetCache(
        tmp_path, memory_bytes=0, max_bytes=1000, clock=clock, on_event=events.append
    )
    metas = []
    for n in range(4):
        meta, data = entry(n, 300)
        cache.put(meta, data)
        metas.append(meta)
        clock.now += 10
    # 1200 bytes > 1000: the put of the fourth evicted down to 900, oldest first.
    assert cache.get(metas[0]) is None
    assert [e.kind for e in events] == ["evicted"]

    cache.pin([metas[1]])  # the oldest now, but the current manifest needs it
    assert cache.get(metas[2]) is not None  # used: younger than metas[3]
    clock.now += 10
    meta, data = entry(9, 300)
    cache.put(meta, data)
    alive = {m for m in [*metas, meta] if cache.get(m) is not None}
    assert alive == {metas[1], metas[2], meta}
    report = cache.gc()
    assert report.bytes_on_disk <= 1000 and report.entries == 3
    assert cache.stats().evictions == 2


def test_cache_gc_enforces_max_bytes_with_pins_over_the_limit(tmp_path: Path) -> None:
    clock = Clock()
    cache = AssetCache(tmp_path, memory_bytes=0, clock=clock)
    metas = [entry(n, 400) for n in range(3)]
    for meta, data in metas:
        cache.put(meta, data)
        clock.now += 1
    cache.pin(m for m, _ in metas)
    cache.max_bytes = 500
    report = cache.gc()
    assert report.evicted == () and report.entries == 3  # pinned beats the limit
    cache.pin([])
    report = cache.gc()
    assert len(report.evicted) == 2 and report.bytes_on_disk == 400
    assert cache.get(metas[2][0]) is not None  # the most recently used stays


def test_cache_gc_removes_old_temp_files_only(tmp_path: Path) -> None:
    clock = Clock()
    cache = AssetCache(tmp_path, clock=clock)
    meta, data = entry(1)
    cache.put(meta, data)
    folder = content_path(tmp_path, meta).parent
    old, young = folder / ".tmp-old", folder / ".tmp-young"
    stray = tmp_path / "tmp" / "scratch"
    for path in (old, young, stray):
        path.write_bytes(b"partial")
    os.utime(old, (clock.now - 120, clock.now - 120))
    os.utime(stray, (clock.now - 120, clock.now - 120))
    os.utime(young, (clock.now - 5, clock.now - 5))
    report = cache.gc()
    assert report.temp_removed == 2
    assert not old.exists() and not stray.exists() and young.exists()
    assert cache.verify().clean


def test_cache_gc_compacts_the_index(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta1, data1 = entry(1)
    meta2, _ = entry(2)
    cache.put(meta1, data1)
    for _ in range(5):
        cache.remember("app.js", meta1)
    cache.remember("gone.js", meta2)  # content never stored: pruned
    report = AssetCache(tmp_path, memory_bytes=0).gc()
    assert (report.index_kept, report.index_dropped) == (1, 1)
    lines = [x for x in (tmp_path / "index" / "index.jsonl").read_text().splitlines() if x]
    assert len(lines) == 1
    assert AssetCache(tmp_path).recall("app.js") == meta1


def test_cache_verify_reports_and_repairs(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, memory_bytes=0)
    good_meta, good = entry(1)
    bad_meta, bad = entry(2)
    cache.put(good_meta, good)
    cache.put(bad_meta, bad)
    content_path(tmp_path, bad_meta).write_bytes(b"rotten")
    stray = tmp_path / "content" / "sha384" / "zz"
    stray.mkdir()
    (stray / "not-a-digest").write_bytes(b"?")
    report = cache.verify()
    assert (report.checked, report.ok, len(report.bad), report.quarantined) == (3, 1, 2, ())
    report = cache.verify(repair=True)
    assert len(report.quarantined) == 2
    assert cache.verify().clean
    assert cache.get(good_meta) is not None


def test_cache_event_hook_errors_do_not_break_the_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: CacheEvent) -> None:
        raise RuntimeError("hook bug")

    cache = AssetCache(tmp_path, memory_bytes=0, on_event=broken)
    meta, data = entry(1)
    cache.put(meta, data)
    content_path(tmp_path, meta).write_bytes(b"")
    assert cache.get(meta) is None
    assert "hook failed" in caplog.text


def test_single_flight_threads_download_once(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta, data = entry(1)
    downloads = 0
    barrier = threading.Barrier(8)

    def worker() -> None:
        nonlocal downloads
        barrier.wait()
        with cache.single_flight(meta):
            if cache.get(meta) is None:
                downloads += 1
                cache.put(meta, data)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert downloads == 1


def test_single_flight_async_tasks_download_once(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta, data = entry(1)
    downloads = 0

    async def task() -> None:
        nonlocal downloads
        async with cache.single_flight_async(meta):
            if cache.get(meta) is None:
                downloads += 1
                await asyncio.sleep(0.01)
                cache.put(meta, data)

    async def main() -> None:
        await asyncio.gather(*(task() for _ in range(20)))

    asyncio.run(main())
    assert downloads == 1


def test_single_flight_async_does_not_block_the_loop(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta, _ = entry(1)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with cache.single_flight(meta):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 5:
                release.set()  # the loop ran while the lock was taken elsewhere
            await asyncio.sleep(0.005)

    async def main() -> None:
        tick = asyncio.create_task(ticker())
        async with cache.single_flight_async(meta):
            pass
        tick.cancel()

    asyncio.run(main())
    thread.join()
    assert ticks >= 5


def test_single_flight_async_cancelled_waiter_leaves_the_lock_free(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta, _ = entry(1)

    async def main() -> None:
        async with cache.single_flight_async(meta):
            waiter = asyncio.create_task(_enter(cache, meta))
            await asyncio.sleep(0.02)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        await asyncio.wait_for(_enter(cache, meta), 5)

    asyncio.run(main())
    done = threading.Event()

    def sync_enter() -> None:
        with cache.single_flight(meta):
            done.set()

    thread = threading.Thread(target=sync_enter)
    thread.start()
    thread.join(5)
    assert done.is_set()


async def _enter(cache: AssetCache, meta: str) -> None:
    async with cache.single_flight_async(meta):
        pass


def test_single_flight_with_unusable_lock_folder_still_works(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    meta, _ = entry(1)
    (tmp_path / "locks").rename(tmp_path / "moved")
    (tmp_path / "locks").write_text("a file where the folder was")
    with cache.single_flight(meta):
        pass


def test_cache_quarantine_note_says_why(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    cache = AssetCache(tmp_path, memory_bytes=0, clock=clock)
    meta, data = entry(1)
    cache.put(meta, data)
    content_path(tmp_path, meta).write_bytes(data[:10])
    assert cache.get(meta) is None
    notes = list((tmp_path / "quarantine").glob("*.json"))
    assert len(notes) == 1
    note = json.loads(notes[0].read_text())
    assert note["expected"] == meta
    assert note["actual"] == integrity.compute(data[:10])
    assert note["size"] == 10
    assert note["when"] == "2023-11-14T22:13:20+00:00"
    assert note["why"] == "integrity mismatch on read"
    assert note["file"].startswith("content/sha384/")
    kept = notes[0].with_suffix("")
    assert kept.read_bytes() == data[:10]
