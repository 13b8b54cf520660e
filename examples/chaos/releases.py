"""The demo's releases: its own copy of the front end, a version number, ``unblank build``.

The demo never builds the example's ``frontend/`` folder in place: it copies
it into ``ROOT/src`` and publishes from there into ``ROOT/dist``. Each
release bumps the ``VERSION`` line of ``loan.js`` (the app's footer shows
it), so every deploy changes the files and publishes a new generation, while
``unblank build`` keeps the files of the earlier ones for pages still open::

    releases = Releases(Path(".cache/demo"))
    releases.start()  # version 1, published
    generation = await releases.publish()  # version 2: what "Deploy new version" does
    releases.earlier_paths("report.js")  # the report chunks of versions 1 .. n-1
"""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from examples.loan_app.server import FRONTEND
from unblank import Manifest
from unblank_server.builder import build

__all__ = ["DemoError", "Release", "Releases"]

VERSIONED: Final = "loan.js"  # the module that carries the version the footer shows
VERSION_LINE: Final = re.compile(r'^export const VERSION = "(\d+)";$', re.MULTILINE)
ENTRY: Final = "main.js"
BROKEN: Final = 'throw new Error("a broken release: this version throws while starting");\n'


class DemoError(Exception):
    """Something the person running the demo must fix; the message says what."""


@dataclass(frozen=True, slots=True)
class Release:
    """One published version: its number and the generation ``unblank build`` gave it."""

    version: int
    generation: str


class Releases:
    """Publishes versions of ``source`` (default: the example's front end) into ``root/dist``."""

    def __init__(self, root: Path, *, source: Path = FRONTEND) -> None:
        self.root = root
        self.source = source
        self.src = root / "src"
        self.dist = root / "dist"
        self.published: list[Release] = []
        self._lock = asyncio.Lock()

    @property
    def current(self) -> Release:
        if not self.published:
            raise DemoError("nothing is published yet: call Releases.start() first")
        return self.published[-1]

    def start(self) -> Release:
        """A fresh copy of the source and a fresh DIST, with version 1 published."""
        for folder in (self.src, self.dist):
            shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.source, self.src)
        self.published.clear()
        return self._publish()

    async def publish(self) -> Release:
        """The next version, built off the event loop; one build at a time."""
        async with self._lock:
            return await asyncio.to_thread(self._publish)

    def manifest(self, generation: str | None = None) -> Manifest:
        """The current manifest, or that of a retained generation."""
        name = "manifest.json" if generation is None else f"manifests/{generation}.json"
        return Manifest.loads((self.dist / name).read_bytes())

    def earlier_paths(self, logical: str) -> frozenset[str]:
        """Published paths of ``logical`` in the retained generations but the current one."""
        current = self.manifest()
        keep = current.assets[logical].path if logical in current.assets else None
        paths = set()
        for release in self.published[:-1]:
            try:
                asset = self.manifest(release.generation).assets.get(logical)
            except FileNotFoundError:  # no longer retained: its files are gone anyway
                continue
            if asset is not None and asset.path != keep:
                paths.add(asset.path)
        return frozenset(paths)

    def broken_source(self) -> Path:
        """A copy of the current source whose entry throws at boot, with the next
        version number: what a "broken version" deploy publishes (``ROOT/broken-src``)."""
        out = self.root / "broken-src"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(self.src, out)
        _set_version(out / VERSIONED, self.current.version + 1)
        entry = out / ENTRY
        entry.write_text(BROKEN + entry.read_text())
        return out

    def _publish(self) -> Release:
        version = self.published[-1].version + 1 if self.published else 1
        _set_version(self.src / VERSIONED, version)
        result = build(self.src, self.dist)
        release = Release(version=version, generation=result.generation)
        self.published.append(release)
        return release


def _set_version(module: Path, version: int) -> None:
    text = module.read_text()
    new, found = VERSION_LINE.subn(f'export const VERSION = "{version}";', text)
    if found != 1:
        raise DemoError(
            f'{module} needs exactly one line `export const VERSION = "<number>";` '
            f"for the demo to bump; it has {found}"
        )
    module.write_text(new)
