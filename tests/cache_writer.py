"""A process that uses an AssetCache, for the cache's multi-process tests.

    python tests/cache_writer.py loop ROOT SEED          put entries forever (to be killed)
    python tests/cache_writer.py step ROOT STEP          one put, SIGKILL itself at STEP
    python tests/cache_writer.py hammer ROOT N CORRUPT   put/get one key N times
    python tests/cache_writer.py flight ROOT LOG         single-flight "download" of one key
    python tests/cache_writer.py hold ROOT               hold one key's lock until killed

It prints one line per event (``ready``, ``wrote <i>``, ``locked``, a JSON
summary) and flushes, so the parent can time its kills and read results.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from unblank import integrity
from unblank._fs import OsFileSystem
from unblank.cache import AssetCache

SHARED_KEY = b"one key, many processes"
# The steps of a write at which `step` kills itself; "write" writes half first.
STEPS = ("create_temp", "write", "fsync", "utime", "replace", "fsync_dir", "append")


def payload(seed: int, i: int) -> bytes:
    """Entry ``i`` of writer ``seed``: 64 bytes to ~130 KiB, so kills land mid-write."""
    return hashlib.sha512(f"{seed}-{i}".encode()).digest() * (1 + (i * 37) % 2000)


def shared_payload() -> bytes:
    return SHARED_KEY * 5000


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class KillAt(OsFileSystem):
    """Dies by SIGKILL just before ``step`` (``write``: halfway through it)."""

    __slots__ = ("step",)

    def __init__(self, step: str) -> None:
        self.step = step

    def _die(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def create_temp(self, folder: str, prefix: str) -> tuple[int, str]:
        if self.step == "create_temp":
            self._die()
        return super().create_temp(folder, prefix)

    def write(self, fd: int, data: bytes) -> None:
        if self.step == "write":
            super().write(fd, data[: len(data) // 2])
            self._die()
        super().write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.step == "fsync":
            self._die()
        super().fsync(fd)

    def utime(self, path: str, when: float) -> None:
        if self.step == "utime" and Path(path).name.startswith(".tmp-"):
            self._die()
        super().utime(path, when)

    def replace(self, src: str, dst: str) -> None:
        if self.step == "replace":
            self._die()
        super().replace(src, dst)

    def fsync_dir(self, path: str) -> None:
        if self.step == "fsync_dir":
            self._die()
        super().fsync_dir(path)

    def append(self, path: str, data: bytes) -> None:
        if self.step == "append":
            super().append(path, data[: len(data) // 2])  # a torn index record
            self._die()
        super().append(path, data)


def loop(root: str, seed: int) -> None:
    cache = AssetCache(root, memory_bytes=0)
    say("ready")
    for i in range(100_000):
        data = payload(seed, i)
        meta = integrity.compute(data)
        cache.put(meta, data)
        cache.remember(f"{seed}/{i}", meta)
        say(f"wrote {i}")


def step(root: str, name: str) -> None:
    cache = AssetCache(root, memory_bytes=0, fs=KillAt(name))
    data = payload(99, 7)
    meta = integrity.compute(data)
    cache.put(meta, data)
    cache.remember("step", meta)
    say("survived")  # only reached when the step was never taken


def hammer(root: str, rounds: int, corrupt: bool) -> None:
    cache = AssetCache(root, memory_bytes=0)
    data = shared_payload()
    meta = integrity.compute(data)
    path = Path(root) / integrity_path(meta)
    counts = {"hits": 0, "misses": 0, "wrong": 0, "corrupted": 0}
    for i in range(rounds):
        cache.put(meta, data)
        if corrupt and i % 7 == 3:
            try:
                with path.open("r+b") as handle:  # damage in place: same inode, bad bytes
                    handle.seek(i % 1000)
                    handle.write(b"\x00" * 64)
                counts["corrupted"] += 1
            except FileNotFoundError:
                pass
        hit = cache.get(meta)
        if hit is None:
            counts["misses"] += 1
        elif hit.data != data:
            counts["wrong"] += 1
        else:
            counts["hits"] += 1
    say(json.dumps(counts))


def integrity_path(meta: str) -> str:
    digest = integrity.parse(meta)[0]
    hexd = digest.digest.hex()
    return f"content/{digest.algorithm}/{hexd[:2]}/{hexd}"


def flight(root: str, log: str) -> None:
    cache = AssetCache(root, memory_bytes=0)
    data = shared_payload()
    meta = integrity.compute(data)
    with cache.single_flight(meta):
        if cache.get(meta) is None:
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()}\n")
            time.sleep(0.1)  # a download takes a while: others must be waiting now
            cache.put(meta, data)
    say("done")


def hold(root: str) -> None:
    cache = AssetCache(root, memory_bytes=0)
    with cache.single_flight(integrity.compute(shared_payload())):
        say("locked")
        time.sleep(60)


def main(argv: list[str]) -> None:
    mode, root, *rest = argv
    if mode == "loop":
        loop(root, int(rest[0]))
    elif mode == "step":
        step(root, rest[0])
    elif mode == "hammer":
        hammer(root, int(rest[0]), rest[1] == "1")
    elif mode == "flight":
        flight(root, rest[0])
    elif mode == "hold":
        hold(root)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
