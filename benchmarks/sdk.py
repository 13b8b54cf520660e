"""Benchmark the SDK's asset cache and its self-repair, against diskcache.

In one run, on the same data:

* memory-tier hit latency of ``AssetCache.get`` (and ``diskcache.Cache.get``
  for comparison, which has no memory tier and does not verify);
* verified disk reads of 1 MiB entries (memory tier off), as a fraction of raw
  ``hashlib.sha384`` throughput over the same bytes already in memory — the
  cost of reading and verifying against the cost of verifying alone (goal:
  at least 0.8); ``diskcache`` reads of the same entries, unverified;
* the time ``AssetClient.get`` takes to detect a corrupted 100 KiB entry on
  disk, quarantine it, fetch it again from a real ``unblank serve`` on
  127.0.0.1 and return verified bytes (goal: median under 20 ms).

Usage::

    .venv/bin/python benchmarks/sdk.py [--reps 7] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.realserver import serve_in_thread  # noqa: E402
from unblank import AssetCache, AssetClient, Manifest, integrity  # noqa: E402
from unblank.cache import Source  # noqa: E402
from unblank_server.app import create_app  # noqa: E402
from unblank_server.builder import BuildOptions, build  # noqa: E402
from unblank_server.compress import CompressionSettings  # noqa: E402

MiB: Final = 1 << 20
ENTRIES: Final = 32  # 32 MiB of 1 MiB entries: larger than L2/L3, smaller than the page cache


def payload(size: int, seed: int) -> bytes:
    """Deterministic bytes that no compressor shrinks much."""
    out = bytearray()
    block = hashlib.sha512(seed.to_bytes(8, "big")).digest()
    while len(out) < size:
        block = hashlib.sha512(block).digest()
        out += block
    return bytes(out[:size])


def per_second(fn: Callable[[], object], *, minimum: float = 1.0) -> float:
    """Calls per second of ``fn``, measured for at least ``minimum`` seconds."""
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= minimum:
            return calls / elapsed


def memory_hits(work: Path) -> dict[str, float]:
    import diskcache

    data = payload(4096, 1)
    meta = integrity.compute(data)
    cache = AssetCache(work / "mem", memory_bytes=64 * MiB)
    cache.put(meta, data)
    assert cache.get(meta) is not None
    ours = per_second(lambda: cache.get(meta))
    with diskcache.Cache(str(work / "diskcache-mem")) as other:
        other.set(meta, data)
        theirs = per_second(lambda: other.get(meta))
    return {"unblank_get_ns": 1e9 / ours, "diskcache_get_ns": 1e9 / theirs}


def disk_reads(work: Path) -> dict[str, float]:
    import diskcache

    blobs = [payload(MiB, 100 + i) for i in range(ENTRIES)]
    metas = [integrity.compute(b) for b in blobs]
    cache = AssetCache(work / "disk", memory_bytes=0)
    for meta, blob in zip(metas, blobs, strict=True):
        cache.put(meta, blob)

    def read_all() -> None:
        for meta in metas:
            hit = cache.get(meta)
            if hit is None or hit.source is not Source.DISK:
                raise RuntimeError("disk tier lost an entry")

    def hash_all() -> None:
        for blob in blobs:
            hashlib.sha384(blob).digest()

    read_all()  # warm the page cache: both sides then read from memory
    ours = per_second(read_all, minimum=2.0) * ENTRIES * MiB
    raw = per_second(hash_all, minimum=2.0) * ENTRIES * MiB
    with diskcache.Cache(str(work / "diskcache-disk")) as other:
        for meta, blob in zip(metas, blobs, strict=True):
            other.set(meta, blob)

        def other_all() -> None:
            for meta in metas:
                other.get(meta)

        other_all()
        theirs = per_second(other_all, minimum=2.0) * ENTRIES * MiB
    return {
        "unblank_verified_mb_s": ours / 1e6,
        "sha384_mb_s": raw / 1e6,
        "diskcache_unverified_mb_s": theirs / 1e6,
        "ratio_to_sha384": ours / raw,
    }


def repair_times(work: Path, reps: int) -> dict[str, Any]:
    src, dist = work / "src", work / "dist"
    src.mkdir()
    (src / "bundle.js").write_bytes(payload(100 * 1024, 7).hex()[: 100 * 1024].encode())
    build(src, dist, BuildOptions(compression=CompressionSettings(brotli_quality=5, gzip_level=6)))
    manifest = Manifest.loads((dist / "manifest.json").read_bytes())
    asset = manifest.assets["bundle.js"]
    app = create_app(dist, access_log=False)
    cache = AssetCache(work / "client-cache", memory_bytes=0)
    times: list[float] = []
    with serve_in_thread(app) as base:

        async def run() -> None:
            client = AssetClient(origins=[base], cache=cache)
            try:
                await client.get("bundle.js")  # learn the manifest, fill the cache
                for _ in range(reps):
                    damage(cache, asset.integrity)
                    started = time.perf_counter()
                    fetched = await client.get("bundle.js")
                    times.append(time.perf_counter() - started)
                    if fetched.source is not Source.REPAIRED:
                        raise RuntimeError(f"expected a repair, got {fetched.source}")
                    if not integrity.verify(fetched.data, asset.integrity):
                        raise RuntimeError("repaired bytes do not verify")
            finally:
                await client.aclose()

        asyncio.run(run())
    app.close()
    return {
        "median_ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
        "all_ms": [round(t * 1000, 2) for t in times],
    }


def damage(cache: AssetCache, meta: str) -> None:
    """Flip one bit of the entry's file on disk (content-addressed by its digest)."""
    digest = integrity.strongest(integrity.parse(meta))[0]
    hexd = digest.digest.hex()
    if cache.root is None:
        raise RuntimeError("the benchmark's cache has a disk tier")
    path = Path(cache.root) / "content" / digest.algorithm / hexd[:2] / hexd
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="repairs to time (median reported)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="unblank-sdk-bench-") as scratch:
        work = Path(scratch)
        figures: dict[str, Any] = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "memory_hit": memory_hits(work),
            "disk_read_1mib": disk_reads(work),
            "repair_100kib": repair_times(work, args.reps),
        }
    hit, disk, repair = figures["memory_hit"], figures["disk_read_1mib"], figures["repair_100kib"]
    print(
        f"memory-tier hit: {hit['unblank_get_ns']:.0f} ns "
        f"(diskcache get: {hit['diskcache_get_ns']:.0f} ns)"
    )
    print(
        f"verified 1 MiB disk reads: {disk['unblank_verified_mb_s']:.0f} MB/s = "
        f"{disk['ratio_to_sha384']:.2f} of sha384 ({disk['sha384_mb_s']:.0f} MB/s; goal >= 0.8); "
        f"diskcache, unverified: {disk['diskcache_unverified_mb_s']:.0f} MB/s"
    )
    print(
        f"detect + quarantine + refetch + verify a corrupted 100 KiB entry: median "
        f"{repair['median_ms']:.1f} ms, max {repair['max_ms']:.1f} ms (goal: median < 20 ms)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
