# Paths are str through the FileSystem seam, and the os calls are what the seam wraps.
# ruff: noqa: PTH118
"""Canary pointers in DIST: which generation a share of browsers gets, and how it ends.

::

    DIST/manifest.json               the stable generation (a canary never touches it)
    DIST/canary.json                 the canary, while one runs (below)
    DIST/manifests/<g>.json          every generation's manifest, the canary's too
    DIST/.unblank/canaries/<g>.json  the pointer of every canary that ended

``canary.json``::

    {"version": 1, "generation": "20261125T…-830a4793", "percent": 10.0,
     "started": "2026-11-25T12:10:09Z", "policy": {"min_page_views": 500}}

``policy`` (optional) overrides fields of the app's
:class:`~unblank.rollout.RolloutPolicy` for this canary.

Every change is made under ``DIST/.unblank/rollout.lock`` and leaves DIST
consistent at every instant:

- **start**: ``manifests/<g>.json`` is already on disk (durably), then
  ``canary.json`` is written atomically (temporary file, fsync, rename,
  fsync of the folder).
- **promote**: ``manifest.json`` becomes the canary's manifest (atomically),
  then ``canary.json`` is renamed into ``.unblank/canaries/``. Killed between
  the two, ``canary.json`` names the stable generation: that reads as "no
  canary", and the next promote or abort tidies it away.
- **abort** (a rollback): ``canary.json`` is renamed into
  ``.unblank/canaries/`` -- one rename. The canary's files stay: pages opened
  on it still load their chunks, and the record tells ``unblank build`` that
  the generation was served (it keeps it like any other retained one).

>>> from datetime import UTC, datetime
>>> pointer = CanaryPointer(generation="g2", percent=10, started=datetime(2026, 1, 1, tzinfo=UTC))
>>> CanaryPointer.loads(pointer.dumps()) == pointer
True
>>> sum(pointer.takes(f"browser-{n}") for n in range(10_000))  # about 10%
1016
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from unblank._exceptions import ManifestError, RolloutError
from unblank._fs import FileSystem, OsFileSystem
from unblank._locks import file_lock
from unblank.manifest import Manifest, format_time, parse_time
from unblank.rollout import RolloutPolicy

__all__ = [
    "CANARY",
    "CURRENT",
    "ENDED",
    "HISTORY",
    "CanaryPointer",
    "Pointers",
    "abort_canary",
    "ended_canaries",
    "promote_canary",
    "read_canary",
    "read_pointers",
    "read_stable",
    "start_canary",
]

CURRENT: Final = "manifest.json"
CANARY: Final = "canary.json"
HISTORY: Final = "manifests"
INTERNAL: Final = ".unblank"
ENDED: Final = f"{INTERNAL}/canaries"
LOCK: Final = f"{INTERNAL}/rollout.lock"
POINTER_VERSION: Final = 1
MAX_POINTER: Final = 64 * 1024  # a pointer is ~200 bytes; anything larger is not one
# The manifest's rule for generation ids: they name files (manifests/<g>.json).
_GENERATION: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,99}$")
_POLICY_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(RolloutPolicy))
_BUCKETS: Final = 10_000  # assignment granularity: percents with two decimals


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryPointer:
    """The canary of a DIST: its generation, the share of browsers it gets, since when.

    ``policy`` overrides fields of the app's :class:`RolloutPolicy` for this canary.
    """

    generation: str
    percent: float
    started: datetime
    policy: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.generation, str) or not _GENERATION.fullmatch(self.generation):
            raise RolloutError(
                f"canary generation {self.generation!r} must be 1-100 characters of [0-9A-Za-z._-]"
            )
        percent = self.percent
        if (
            isinstance(percent, bool)
            or not isinstance(percent, int | float)
            or not math.isfinite(percent)
            or not 0 < percent < 100
        ):
            # 100% would leave no stable traffic to compare with: that is a plain deploy.
            raise RolloutError(f"canary percent must be a number in (0, 100), not {percent!r}")
        if self.started.tzinfo is None:
            raise RolloutError("canary started must be a time with a zone (UTC)")
        self.apply(RolloutPolicy())  # a bad override is an error now, not at the first request

    def apply(self, base: RolloutPolicy) -> RolloutPolicy:
        """``base`` with this canary's overrides."""
        unknown = sorted(set(self.policy) - _POLICY_FIELDS)
        if unknown:
            known = ", ".join(sorted(_POLICY_FIELDS))
            raise RolloutError(f"unknown canary policy field {unknown[0]!r} (known: {known})")
        for name, value in self.policy.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RolloutError(f"canary policy {name} must be a number, not {value!r}")
        changes: dict[str, Any] = {
            name: int(value) if name == "min_page_views" else float(value)
            for name, value in self.policy.items()
        }
        try:
            return dataclasses.replace(base, **changes)
        except ValueError as exc:
            raise RolloutError(f"canary policy: {exc}") from exc

    def takes(self, browser_id: str) -> bool:
        """Whether the browser with this id gets the canary: always the same answer
        for one canary, an independent draw for the next one."""
        digest = hashlib.sha256((browser_id + self.generation).encode("utf-8")).hexdigest()
        return int(digest[:8], 16) % _BUCKETS < round(self.percent * _BUCKETS / 100)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": POINTER_VERSION,
            "generation": self.generation,
            "percent": float(self.percent),
            "started": format_time(self.started),
        }
        if self.policy:
            data["policy"] = dict(sorted(self.policy.items()))
        return data

    def dumps(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8")

    @classmethod
    def loads(cls, data: bytes) -> CanaryPointer:
        """Parse ``canary.json``; :class:`RolloutError` names what is wrong."""
        if len(data) > MAX_POINTER:
            raise RolloutError(f"a canary pointer is at most {MAX_POINTER} bytes")
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RolloutError(f"a canary pointer is a JSON object in UTF-8 ({exc})") from exc
        if not isinstance(obj, dict):
            raise RolloutError("a canary pointer is a JSON object")
        if obj.get("version") != POINTER_VERSION:
            raise RolloutError(
                f"canary pointer version {obj.get('version')!r} is not {POINTER_VERSION}: "
                "written by a newer unblank?"
            )
        policy = obj.get("policy", {})
        if not isinstance(policy, dict):
            raise RolloutError("canary pointer field policy must be an object")
        try:
            started = parse_time(obj.get("started"), "started")
        except ManifestError as exc:
            raise RolloutError(f"canary pointer field {exc.field}: {exc.reason}") from exc
        return cls(
            generation=obj.get("generation"),  # type: ignore[arg-type]  # checked by the class
            percent=obj.get("percent"),  # type: ignore[arg-type]
            started=started,
            policy=policy,
        )


@dataclass(frozen=True, slots=True)
class Pointers:
    """What DIST serves: the stable manifest, and the canary with its manifest, if any."""

    stable: Manifest | None
    canary: CanaryPointer | None = None
    canary_manifest: Manifest | None = None


def read_pointers(dist: str | os.PathLike[str], *, fs: FileSystem | None = None) -> Pointers:
    """The stable and canary generations of ``dist``.

    A ``canary.json`` naming the stable generation (a promotion killed halfway)
    counts as no canary. Raises :class:`RolloutError` for pointers or manifests
    that cannot be read.
    """
    fs = fs or OsFileSystem()
    root = os.fspath(dist)
    stable = _read_manifest(fs, os.path.join(root, CURRENT))
    canary = _read_pointer(fs, root)
    if canary is None or (stable is not None and canary.generation == stable.generation):
        return Pointers(stable)
    manifest = _read_manifest(fs, os.path.join(root, HISTORY, f"{canary.generation}.json"))
    if manifest is None or manifest.generation != canary.generation:
        raise RolloutError(
            f"{CANARY} names generation {canary.generation}, but {HISTORY}/"
            f"{canary.generation}.json is missing or names another: abort the canary "
            f"(unblank rollout {root} abort)"
        )
    return Pointers(stable, canary, manifest)


def read_canary(
    dist: str | os.PathLike[str], *, fs: FileSystem | None = None
) -> CanaryPointer | None:
    """``canary.json`` as written (None when there is none), without reading any
    manifest. :class:`RolloutError` when it cannot be read or is not valid."""
    return _read_pointer(fs or OsFileSystem(), os.fspath(dist))


def read_stable(dist: str | os.PathLike[str], *, fs: FileSystem | None = None) -> Manifest | None:
    """``manifest.json`` (None before the first build); :class:`RolloutError` if unreadable."""
    return _read_manifest(fs or OsFileSystem(), os.path.join(os.fspath(dist), CURRENT))


def start_canary(
    dist: str | os.PathLike[str], pointer: CanaryPointer, *, fs: FileSystem | None = None
) -> None:
    """Publish ``pointer`` as DIST's canary; its manifest must already be in ``manifests/``.

    Raises :class:`RolloutError` when DIST has no stable generation, a canary
    already runs, or the canary is the stable generation.
    """
    fs = fs or OsFileSystem()
    root = os.fspath(dist)
    with _locked(fs, root):
        now = read_pointers(root, fs=fs)
        if now.stable is None:
            raise RolloutError(
                f"{root} has no stable generation yet: a canary needs one to compare "
                "with; publish the first generation without --canary"
            )
        if now.canary is not None:
            raise RolloutError(
                f"a canary is already running in {root} (generation {now.canary.generation} "
                f"at {now.canary.percent:g}%): promote or abort it first "
                f"(unblank rollout {root} promote|abort)"
            )
        if pointer.generation == now.stable.generation:
            raise RolloutError(f"generation {pointer.generation} is already the stable one")
        manifest = _read_manifest(fs, os.path.join(root, HISTORY, f"{pointer.generation}.json"))
        if manifest is None:
            raise RolloutError(f"{HISTORY}/{pointer.generation}.json must be published first")
        _write_atomic(fs, root, CANARY, pointer.dumps())


def promote_canary(
    dist: str | os.PathLike[str],
    *,
    generation: str | None = None,
    fs: FileSystem | None = None,
) -> CanaryPointer:
    """Make the canary the stable generation; returns the pointer that ended.

    ``generation``: promote only if that is still the canary (a policy that
    decided on what it saw must not promote a newer canary).
    """
    fs = fs or OsFileSystem()
    root = os.fspath(dist)
    with _locked(fs, root):
        pointer = _running(fs, root, generation)
        stable = _read_manifest(fs, os.path.join(root, CURRENT))
        if stable is None or stable.generation != pointer.generation:
            # (Equal: a promotion killed after its first step; only the pointer is left.)
            path = os.path.join(root, HISTORY, f"{pointer.generation}.json")
            data = _read_bytes(fs, path)
            manifest = _read_manifest(fs, path, data)
            if data is None or manifest is None or manifest.generation != pointer.generation:
                raise RolloutError(
                    f"{path} is missing or names another generation: the canary cannot be "
                    f"promoted; abort it (unblank rollout {root} abort)"
                )
            _write_atomic(fs, root, CURRENT, data)  # the very bytes the build published
        _retire(fs, root, pointer)
        return pointer


def abort_canary(
    dist: str | os.PathLike[str],
    *,
    generation: str | None = None,
    fs: FileSystem | None = None,
) -> CanaryPointer:
    """End the canary (roll back): every new page gets the stable generation again.

    One rename; the canary's files and manifest stay for the pages still open on it.
    """
    fs = fs or OsFileSystem()
    root = os.fspath(dist)
    with _locked(fs, root):
        pointer = _running(fs, root, generation)
        _retire(fs, root, pointer)
        return pointer


def ended_canaries(
    dist: str | os.PathLike[str], *, fs: FileSystem | None = None
) -> dict[str, CanaryPointer]:
    """The canaries that ended in DIST, by generation (unreadable records are skipped)."""
    fs = fs or OsFileSystem()
    folder = os.path.join(os.fspath(dist), ENDED)
    try:
        names = fs.listdir(folder)
    except OSError:
        return {}
    found = {}
    for name in sorted(names):
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            data, _ = fs.read(os.path.join(folder, name))
            pointer = CanaryPointer.loads(data)
        except (OSError, RolloutError):
            continue
        found[pointer.generation] = pointer
    return found


# -- internals -------------------------------------------------------------------


def _running(fs: FileSystem, root: str, generation: str | None) -> CanaryPointer:
    pointer = _read_pointer(fs, root)
    if pointer is None:
        raise RolloutError(f"no canary is running in {root}")
    if generation is not None and pointer.generation != generation:
        raise RolloutError(
            f"the canary of {root} is now generation {pointer.generation}, not {generation}"
        )
    return pointer


def _retire(fs: FileSystem, root: str, pointer: CanaryPointer) -> None:
    folder = os.path.join(root, ENDED)
    try:
        fs.makedirs(folder)
        fs.replace(os.path.join(root, CANARY), os.path.join(folder, f"{pointer.generation}.json"))
        fs.fsync_dir(root)
        fs.fsync_dir(folder)
    except OSError as exc:
        raise _os_error(f"cannot end the canary in {root}", exc) from exc


def _read_pointer(fs: FileSystem, root: str) -> CanaryPointer | None:
    path = os.path.join(root, CANARY)
    try:
        data, _ = fs.read(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error(f"cannot read {path}", exc) from exc
    try:
        return CanaryPointer.loads(data)
    except RolloutError as exc:
        raise RolloutError(f"{path}: {exc}") from exc


def _read_bytes(fs: FileSystem, path: str) -> bytes | None:
    try:
        data, _ = fs.read(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error(f"cannot read {path}", exc) from exc
    return data


def _read_manifest(fs: FileSystem, path: str, data: bytes | None = None) -> Manifest | None:
    if data is None:
        data = _read_bytes(fs, path)
    if data is None:
        return None
    try:
        return Manifest.loads(data)
    except ManifestError as exc:
        raise RolloutError(f"{path} is not a valid manifest: {exc}") from exc


def _write_atomic(fs: FileSystem, root: str, name: str, data: bytes) -> None:
    """Temporary file, fsync, rename over ``name``, fsync of the folder."""
    target = os.path.join(root, name)
    prefix = f".{name}.rollout-"
    _sweep(fs, root, prefix)
    try:
        fd, tmp = fs.create_temp(root, prefix)
    except OSError as exc:
        raise _os_error(f"cannot write {target}", exc) from exc
    try:
        try:
            fs.write(fd, data)
            fs.fsync(fd)
        finally:
            fs.close(fd)
        fs.replace(tmp, target)
        fs.fsync_dir(root)
    except OSError as exc:
        with contextlib.suppress(OSError):  # gone already, or the disk refuses even that
            fs.unlink(tmp)
        raise _os_error(f"cannot write {target}", exc) from exc


def _sweep(fs: FileSystem, root: str, prefix: str) -> None:
    """Remove temporary files a killed writer left (we hold the lock: none is in use)."""
    with contextlib.suppress(OSError):
        for name in fs.listdir(root):
            if name.startswith(prefix):
                fs.unlink(os.path.join(root, name))


@contextlib.contextmanager
def _locked(fs: FileSystem, root: str) -> Iterator[None]:
    """``flock`` on ``.unblank/rollout.lock`` around one change of the pointers."""
    try:
        fs.makedirs(os.path.join(root, INTERNAL))
    except OSError as exc:
        raise _os_error(f"cannot use {root}", exc) from exc
    with file_lock(os.path.join(root, LOCK)):
        yield


def _os_error(what: str, exc: OSError) -> RolloutError:
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (the process needs write access to DIST; or use Rollout(act=False))"
    return RolloutError(f"{what}: {exc.strerror or exc}{hint}")
