# Paths are str through the FileSystem seam, and the os calls are what the seam wraps.
# ruff: noqa: PTH118
"""Single flight per digest: one download at a time across threads, tasks and processes.

A holder takes, in order: an :class:`asyncio.Lock` (async callers only, so
that a hundred tasks waiting for one digest park one thread, not a hundred),
a :class:`threading.Lock` per name, then ``fcntl.flock`` on
``locks/<name>.lock``.  ``flock`` belongs to the open file, so the kernel
drops it when its process dies, SIGKILL included: a killed holder never
blocks anyone, and a lock *file* left behind means nothing.

These locks only avoid duplicate downloads.  Nothing depends on them for
correctness -- every read is verified -- so when the lock folder is
unusable (read-only, full) the file lock is skipped and threads still share.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

__all__ = ["SingleFlight", "file_lock"]


@dataclass(slots=True)
class _Slot:
    lock: threading.Lock
    users: int = 0


@dataclass(frozen=True, slots=True)
class _Held:
    name: str
    fd: int | None


class SingleFlight:
    """Named mutexes shared by threads, asyncio tasks and processes.

    >>> flight = SingleFlight(folder=None)
    >>> with flight.hold("sha384-abc"):
    ...     pass
    """

    __slots__ = ("_async_slots", "_folder", "_guard", "_slots")

    def __init__(self, *, folder: str | None) -> None:
        self._folder = folder
        self._guard = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._async_slots: dict[tuple[int, str], tuple[asyncio.Lock, list[int]]] = {}

    def __repr__(self) -> str:
        return f"SingleFlight(folder={self._folder!r})"

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        held = self._acquire(name)
        try:
            yield
        finally:
            self._release(held)

    @contextlib.asynccontextmanager
    async def hold_async(self, name: str) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        key = (id(loop), name)
        with self._guard:
            entry = self._async_slots.setdefault(key, (asyncio.Lock(), [0]))
            entry[1][0] += 1
        try:
            async with entry[0]:
                pending = loop.run_in_executor(None, self._acquire, name)
                try:
                    held = await asyncio.shield(pending)
                except asyncio.CancelledError:
                    # The thread goes on waiting; whatever it acquires is let go at once.
                    pending.add_done_callback(self._release_done)
                    raise
                try:
                    yield
                finally:
                    self._release(held)
        finally:
            with self._guard:
                entry[1][0] -= 1
                if entry[1][0] == 0:
                    del self._async_slots[key]

    def _release_done(self, future: asyncio.Future[_Held]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._release(future.result())

    def _acquire(self, name: str) -> _Held:
        with self._guard:
            slot = self._slots.setdefault(name, _Slot(threading.Lock()))
            slot.users += 1
        slot.lock.acquire()
        fd = None
        if self._folder is not None:
            fd = _lock_file(os.path.join(self._folder, f"{name}.lock"))
        return _Held(name, fd)

    def _release(self, held: _Held) -> None:
        if held.fd is not None:
            os.close(held.fd)  # closing the last descriptor drops the flock
        with self._guard:
            slot = self._slots[held.name]
            slot.lock.release()
            slot.users -= 1
            if slot.users == 0:
                del self._slots[held.name]


def _lock_file(path: str) -> int | None:
    """An open descriptor holding ``flock(LOCK_EX)`` on ``path``, or None if unusable."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None  # read-only or full: de-duplication within this process still works
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def file_lock(path: str | None) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``path`` (best effort, as :class:`SingleFlight`)."""
    fd = _lock_file(path) if path is not None else None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)
