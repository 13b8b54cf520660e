# Paths are str through the FileSystem seam, and the os calls are what the seam wraps.
# ruff: noqa: PTH103, PTH105, PTH108, PTH116, PTH118, PTH208
"""The file-system seam of the asset cache.

:class:`AssetCache` does every disk operation through a :class:`FileSystem`,
so tests (and :mod:`unblank.testing`) can make any single step fail the way a
full disk, a read-only mount or a dying drive makes it fail, without root,
loop devices or luck.  :class:`OsFileSystem` is the real thing;
:class:`FaultyFileSystem` is the real thing with faults switched on by name.

>>> import errno
>>> fs = FaultyFileSystem()
>>> fs.fail("fsync", errno.ENOSPC)
>>> fs.faults
{'fsync': 28}
>>> fs.heal()
>>> fs.faults
{}
"""

from __future__ import annotations

import os
import secrets
from typing import Final, Protocol

__all__ = ["OPERATIONS", "FaultyFileSystem", "FileSystem", "OsFileSystem"]

# The operations a fault can be injected into, by the method's name.
OPERATIONS: Final = (
    "makedirs",
    "create_temp",
    "write",
    "fsync",
    "close",
    "replace",
    "fsync_dir",
    "read",
    "append",
    "listdir",
    "unlink",
    "stat",
    "utime",
)


class FileSystem(Protocol):
    """The few file operations the cache needs; paths are ``str``."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents; an existing folder is fine."""

    def create_temp(self, folder: str, prefix: str) -> tuple[int, str]:
        """Create a new, empty, private file in ``folder``: ``(fd, path)``."""

    def write(self, fd: int, data: bytes) -> None:
        """Write all of ``data`` to ``fd`` (looping over short writes)."""

    def fsync(self, fd: int) -> None: ...

    def close(self, fd: int) -> None: ...

    def replace(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst`` atomically (``os.replace``)."""

    def fsync_dir(self, path: str) -> None:
        """Make the renames inside folder ``path`` durable."""

    def read(self, path: str) -> tuple[bytes, os.stat_result]:
        """The whole file and the ``fstat`` of the very handle it was read from."""

    def append(self, path: str, data: bytes) -> None:
        """Append ``data`` to ``path`` (created if missing) in one ``O_APPEND`` write."""

    def listdir(self, path: str) -> list[str]: ...

    def unlink(self, path: str) -> None: ...

    def stat(self, path: str) -> os.stat_result: ...

    def utime(self, path: str, when: float) -> None:
        """Set access and modification time of ``path`` to ``when``."""


class OsFileSystem:
    """:class:`FileSystem` on the real operating system."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OsFileSystem()"

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def create_temp(self, folder: str, prefix: str) -> tuple[int, str]:
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}")
        # O_EXCL: a name collision is an error, never a shared file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        return fd, path

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, path: str) -> tuple[bytes, os.stat_result]:
        with open(path, "rb", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            return handle.read(), info

    def append(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self.write(fd, data)
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def utime(self, path: str, when: float) -> None:
        os.utime(path, (when, when))


class FaultyFileSystem(OsFileSystem):
    """:class:`OsFileSystem` whose named operations raise ``OSError(errno)``.

    ``fail("replace", errno.ENOSPC)`` makes every later ``replace`` fail until
    :meth:`heal`; ``calls`` counts the calls of each operation, faulty or not.
    """

    __slots__ = ("calls", "faults")

    def __init__(self) -> None:
        self.faults: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FaultyFileSystem(faults={self.faults!r})"

    def fail(self, operation: str, code: int) -> None:
        if operation not in OPERATIONS:
            raise ValueError(
                f"unknown operation {operation!r}; choose from {', '.join(OPERATIONS)}"
            )
        self.faults[operation] = code

    def heal(self) -> None:
        self.faults.clear()

    def _check(self, operation: str, path: str = "") -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        code = self.faults.get(operation)
        if code is not None:
            raise OSError(code, os.strerror(code), path or None)

    def makedirs(self, path: str) -> None:
        self._check("makedirs", path)
        super().makedirs(path)

    def create_temp(self, folder: str, prefix: str) -> tuple[int, str]:
        self._check("create_temp", folder)
        return super().create_temp(folder, prefix)

    def write(self, fd: int, data: bytes) -> None:
        self._check("write")
        super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._check("fsync")
        super().fsync(fd)

    def close(self, fd: int) -> None:
        super().close(fd)  # the descriptor goes either way, as with a real EIO on close
        self._check("close")

    def replace(self, src: str, dst: str) -> None:
        self._check("replace", dst)
        super().replace(src, dst)

    def fsync_dir(self, path: str) -> None:
        self._check("fsync_dir", path)
        super().fsync_dir(path)

    def read(self, path: str) -> tuple[bytes, os.stat_result]:
        self._check("read", path)
        return super().read(path)

    def append(self, path: str, data: bytes) -> None:
        self._check("append", path)
        super().append(path, data)

    def listdir(self, path: str) -> list[str]:
        self._check("listdir", path)
        return super().listdir(path)

    def unlink(self, path: str) -> None:
        self._check("unlink", path)
        super().unlink(path)

    def stat(self, path: str) -> os.stat_result:
        self._check("stat", path)
        return super().stat(path)

    def utime(self, path: str, when: float) -> None:
        self._check("utime", path)
        super().utime(path, when)
