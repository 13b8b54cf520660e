"""Walk SRC and list the files a build publishes, refusing hostile input.

Refused with :class:`BadInputError` (exit status 2), each naming the file:
names that are not valid UTF-8, symbolic links that lead outside SRC, files
that cannot be read, and things that are not regular files (sockets, FIFOs,
devices).  Hidden files and folders (a name starting with ``.``) are not
published, except ``.well-known/`` (RFC 8615), whose files browsers and app
stores fetch by fixed names.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from unblank_server.errors import BadInputError

__all__ = ["SourceFile", "check_folders", "scan_sources"]

_PUBLISHED_HIDDEN = frozenset({".well-known"})


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One input file: its logical name (POSIX, relative to SRC) and real location."""

    name: str
    path: Path
    size: int


def check_folders(src: Path, dist: Path) -> tuple[Path, Path]:
    """Resolve SRC and DIST and refuse combinations that would eat themselves."""
    if not src.exists():
        raise BadInputError(f"SRC {str(src)!r} does not exist")
    if not src.is_dir():
        raise BadInputError(f"SRC {str(src)!r} is not a folder")
    real_src = src.resolve()
    real_dist = dist.resolve()
    if real_dist == real_src or real_dist.is_relative_to(real_src):
        raise BadInputError(
            f"DIST {str(dist)!r} is inside SRC {str(src)!r}: the build would publish its own "
            "output; choose a DIST outside SRC"
        )
    if real_src.is_relative_to(real_dist):
        raise BadInputError(
            f"SRC {str(src)!r} is inside DIST {str(dist)!r}: garbage collection would delete it"
        )
    if real_dist.exists() and not real_dist.is_dir():
        raise BadInputError(f"DIST {str(dist)!r} exists and is not a folder")
    if (real_src / "manifest.json").is_file() and (real_src / "manifests").is_dir():
        raise BadInputError(
            f"SRC {str(src)!r} looks like the output of unblank build (manifest.json and "
            "manifests/): SRC is the folder of front-end files, DIST comes second"
        )
    return real_src, real_dist


def scan_sources(src: Path) -> list[SourceFile]:
    """Every publishable file under ``src`` (already resolved), sorted by name."""
    found: list[SourceFile] = []
    _walk(src, src, "", found, set())
    found.sort(key=lambda f: f.name)
    return found


def _walk(
    root: Path, folder: Path, prefix: str, found: list[SourceFile], ancestors: set[tuple[int, int]]
) -> None:
    """Walk ``folder``; ``ancestors`` holds the folders above it, to stop symlink loops."""
    try:
        info = folder.stat()
        here = (info.st_dev, info.st_ino)
        if here in ancestors:
            return  # a symbolic link back to a folder above: a loop
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise BadInputError(f"cannot read folder {str(folder)!r}: {exc.strerror}") from exc
    for entry in entries:
        name = _checked_name(prefix + entry.name, folder / entry.name)
        if entry.name.startswith(".") and entry.name not in _PUBLISHED_HIDDEN:
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            path = _resolve_link(root, path, name)
        try:
            info = path.stat()
        except OSError as exc:
            raise BadInputError(f"cannot read {name!r}: {exc.strerror}") from exc
        if stat.S_ISDIR(info.st_mode):
            _walk(root, path, name + "/", found, ancestors | {here})
        elif stat.S_ISREG(info.st_mode):
            if not os.access(path, os.R_OK):
                raise BadInputError(f"cannot read {name!r}: permission denied")
            found.append(SourceFile(name=name, path=path, size=info.st_size))
        else:
            raise BadInputError(f"{name!r} is not a regular file or folder; remove it from SRC")


def _checked_name(name: str, where: Path) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(where).decode("utf-8", "backslashreplace")
        raise BadInputError(
            f"the name '{shown}' is not valid UTF-8; URLs and the manifest need UTF-8 names"
        ) from None
    if "\\" in name or any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise BadInputError(
            f"the name {name!r} holds a backslash or control character, which URLs cannot carry"
        )
    return name


def _resolve_link(root: Path, link: Path, name: str) -> Path:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise BadInputError(f"symbolic link {name!r} is broken or loops") from exc
    if not target.is_relative_to(root):
        raise BadInputError(
            f"symbolic link {name!r} leads outside SRC (to {str(target)!r}); "
            "unblank never publishes files from outside SRC -- copy the file in instead"
        )
    return target
