"""Crash-safe file writing and the build lock.

A file appears under its final name only once it is complete: it is written
to a temporary name in the same folder and renamed over (``os.replace`` is
atomic on POSIX).  Before a manifest points at new files, the file system is
synced once (``syncfs``) instead of once per file, so a power cut cannot
leave a manifest naming files whose data never reached the disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Final

__all__ = [
    "TEMP_SUFFIX",
    "atomic_writer",
    "build_lock",
    "fsync_dir",
    "is_temp_name",
    "sync_filesystem",
    "write_atomic",
]

TEMP_SUFFIX: Final = ".unblank-tmp"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file a (possibly killed) build left behind."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@contextlib.contextmanager
def atomic_writer(path: Path, *, durable: bool = False) -> Iterator[IO[bytes]]:
    """Write ``path`` through a temporary file renamed into place on success.

    With ``durable=True`` the data and the folder entry are fsynced too.
    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        with open(tmp, "xb") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, durable=durable) as handle:
        handle.write(data)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return,unused-ignore]


_SYNCFS = _load_syncfs()


def sync_filesystem(folder: Path) -> None:
    """Flush every written file on the file system holding ``folder`` to disk.

    Uses Linux's ``syncfs(2)``: one call instead of an fsync per file; falls
    back to ``os.sync()`` elsewhere.
    """
    if _SYNCFS is not None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


@contextlib.contextmanager
def build_lock(folder: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/lock`` for one build or gc at a time.

    ``flock`` locks die with their process, so a build killed with SIGKILL
    never blocks the next one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
