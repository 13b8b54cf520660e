"""``unblank build``: from a folder of front-end files to a published generation.

The stages, each on a thread pool where the work allows (hashing, brotli and
zlib release the GIL):

1. **scan** -- list SRC, read Vite's manifest, hash every file, find the
   references CSS and plain JS make to other files;
2. **plan** -- resolve references, then name files in dependency order (a
   stylesheet's name depends on the names of the images it points to;
   files that reference each other in a cycle share one group hash);
3. **write** -- put each fingerprinted file in DIST, reusing one already
   there when it verifies;
4. **compress** -- brotli and gzip variants, largest files first, reusing
   variants an earlier build made from the same bytes once they decode to
   exactly those bytes;
5. **publish** the manifest atomically, then collect files no retained
   generation needs. With ``BuildOptions(canary=10)`` the new generation is
   published as a canary for 10% of browsers (``DIST/canary.json``) and
   ``manifest.json`` keeps the stable one.

>>> from pathlib import Path
>>> result = build(Path("examples/demo_assets"), Path("/tmp/unblank-doctest"))  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from unblank import Asset, Entry, Manifest, RolloutError, UnblankError
from unblank.canary import CanaryPointer, promote_canary, read_canary
from unblank.integrity import DEFAULT_ALGORITHMS, IntegrityHasher
from unblank.integrity import parse as parse_integrity
from unblank.manifest import variant_path
from unblank_server.buildcache import BuildCache
from unblank_server.compress import (
    CompressionSettings,
    compress_file,
    decoded_sha256,
    worth_keeping,
)
from unblank_server.errors import BadInputError, BuildError, MissingReferenceError
from unblank_server.fsutil import atomic_writer, build_lock, write_atomic
from unblank_server.generations import (
    CURRENT,
    HISTORY,
    INTERNAL,
    Retention,
    collect_garbage,
    drop_unpublished,
    load_current,
    load_history,
    new_generation_id,
    publish,
    publish_canary,
)
from unblank_server.mediatypes import content_type, is_compressible
from unblank_server.naming import looks_fingerprinted
from unblank_server.owned import OwnedFiles
from unblank_server.plan import (
    PlannedFile,
    check_outputs,
    name_group,
    naming_order,
    output_size,
    patched_chunks,
    resolve_target,
)
from unblank_server.progress import NullProgress, Progress
from unblank_server.references import is_local_reference
from unblank_server.scan import read_source, rewritable_kind
from unblank_server.sources import SourceFile, check_folders, scan_sources
from unblank_server.vite import BundlerGraph, read_bundler_manifest

__all__ = ["BuildOptions", "BuildResult", "build", "gc"]

_CHUNK: Final = 1 << 20
_SHOWN_MISSING: Final = 20  # missing references listed in one error
_CODINGS: Final = ("br", "gzip")
_VARIANT_SUFFIX: Final = {"br": ".br", "gzip": ".gz"}
_VARIANT_CACHE: Final = "variants.json"
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Settings of one build; every field has the documented default."""

    sri: tuple[str, ...] = DEFAULT_ALGORITHMS
    allow_missing: bool = False
    retention: Retention = field(default_factory=Retention)
    compression: CompressionSettings = field(default_factory=CompressionSettings)
    jobs: int = field(default_factory=lambda: _usable_cores())
    # Publish as a canary for this percent of browsers (None: as the new stable).
    canary: float | None = None
    canary_policy: Mapping[str, float] = field(default_factory=dict)  # RolloutPolicy overrides

    def __post_init__(self) -> None:
        IntegrityHasher(self.sri)  # raises ValueError naming an unknown algorithm
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, not {self.jobs}")
        if self.canary is not None or self.canary_policy:
            try:  # the pointer's own checks, with a placeholder generation
                CanaryPointer(
                    generation="check",
                    percent=self.canary if self.canary is not None else 0.0,
                    started=datetime.now(UTC),
                    policy=self.canary_policy,
                )
            except RolloutError as exc:
                raise ValueError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build did; ``to_dict`` is the ``--json`` summary."""

    generation: str
    published: bool
    previous_generation: str | None
    files: int
    fingerprinted: int
    kept_names: int
    reused: int
    bytes: dict[str, int]
    seconds: float
    removed_files: int
    warnings: tuple[str, ...]
    dist: str
    canary: float | None = None  # the percent, when published as a canary

    def to_dict(self) -> dict[str, Any]:
        data = {
            "generation": self.generation,
            "published": self.published,
            "previous_generation": self.previous_generation,
            "files": self.files,
            "fingerprinted": self.fingerprinted,
            "kept_names": self.kept_names,
            "reused": self.reused,
            "bytes": dict(self.bytes),
            "seconds": round(self.seconds, 3),
            "removed_files": self.removed_files,
            "warnings": list(self.warnings),
            "dist": self.dist,
        }
        if self.canary is not None:  # only then: the summary of a plain build stays as it was
            data["canary"] = {"percent": self.canary, "stable": self.previous_generation}
        return data


# -- the public entry points ---------------------------------------------------


def build(
    src: Path,
    dist: Path,
    options: BuildOptions | None = None,
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> BuildResult:
    """Build SRC into DIST and publish a new generation when anything changed.

    Raises :class:`BadInputError` for input the user must fix and
    :class:`BuildError` when DIST cannot be written.
    """
    options = options or BuildOptions()
    progress = progress or NullProgress()
    started = time.monotonic()
    src, dist = check_folders(src, dist)
    _claim_dist(dist)
    with build_lock(dist / INTERNAL, on_wait=lambda: progress.warn("waiting for another build")):
        return _Build(src, dist, options, progress, now or datetime.now(UTC)).run(started)


def gc(
    dist: Path,
    retention: Retention | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> tuple[list[str], list[str], int]:
    """Remove files of generations past retention: (generations, files, bytes freed)."""
    if not _is_unblank_dist(dist):
        raise BadInputError(
            f"{str(dist)!r} is not an unblank build output (no {INTERNAL}/, no manifests)"
        )
    with build_lock(dist / INTERNAL):
        current = load_current(dist)
        if current is not None:
            drop_unpublished(dist, current)
        result = collect_garbage(
            dist, retention or Retention(), now or datetime.now(UTC), dry_run=dry_run
        )
    return list(result.removed_generations), list(result.removed_files), result.freed_bytes


def _is_unblank_dist(dist: Path) -> bool:
    """Marked by ``.unblank/``, or (copied without hidden files) holding our manifests."""
    if (dist / INTERNAL).is_dir():
        return True
    try:
        Manifest.loads((dist / CURRENT).read_bytes())
    except (OSError, UnblankError):
        return False
    return (dist / HISTORY).is_dir()


def _usable_cores() -> int:
    """Cores this process may run on (CPU affinity, as taskset and cgroups set it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _created(now: datetime) -> datetime:
    """The manifest's ``created`` time: ``SOURCE_DATE_EPOCH`` when set.

    Reproducible builds pin it (https://reproducible-builds.org/specs/source-date-epoch/).
    Only ``created`` follows it: generation ids and retention run on the real
    clock, or a pinned epoch would keep every generation "recent" forever.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return now


def _claim_dist(dist: Path) -> None:
    """Refuse a DIST that holds files unblank did not write: gc would delete them.

    A DIST holding only ``.unblank/`` is a concurrent first build's: fine.
    """
    foreign = dist.exists() and any(p.name != INTERNAL for p in dist.iterdir())
    if foreign and not _is_unblank_dist(dist):
        raise BadInputError(
            f"DIST {str(dist)!r} is not empty and was not written by unblank build; "
            "choose a new or empty folder (garbage collection deletes files it does not know)"
        )
    try:
        (dist / INTERNAL).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(dist, exc) from exc


class _Build:
    def __init__(
        self, src: Path, dist: Path, options: BuildOptions, progress: Progress, now: datetime
    ) -> None:
        self.src = src
        self.dist = dist
        self.options = options
        self.progress = progress
        self.now = now
        self.pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="unblank")
        self.cache = BuildCache(dist / INTERNAL)
        self.live_variants: dict[str, int] = {}  # variant path -> size a manifest lists
        self.owned = OwnedFiles(dist / INTERNAL)
        self.ours = self.owned.paths()  # paths unblank wrote or a manifest names
        # The generations in DIST, read once: publish and gc both work from them.
        try:
            self.current = load_current(dist)
        except BuildError as exc:
            progress.warn(f"{exc}; publishing a new generation over it")
            self.current = None
        self.history: list[Manifest] | None = None
        self.history_error = ""
        try:
            self.history = load_history(dist)
        except BuildError as exc:
            self.history_error = str(exc)
        for manifest in [*(self.history or []), *([self.current] if self.current else [])]:
            for asset in manifest.assets.values():
                self.ours.add(asset.path)
                for coding, size in asset.encodings.items():
                    self.live_variants[variant_path(asset.path, coding)] = size

    def run(self, started: float) -> BuildResult:
        try:
            return self._run(started)
        except KeyboardInterrupt:
            # Running brotli calls cannot be stopped: do not wait for them.  Their
            # temporary files are collected by the next build.
            self.pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.progress.done()

    def _run(self, started: float) -> BuildResult:
        self._check_canary()
        bundler = read_bundler_manifest(self.src)
        files = self._scan(bundler)
        self._resolve(files)
        for group in naming_order(files):
            name_group(group, files, self.options.sri)
        by_path = check_outputs(files)
        outputs = list(by_path.values())
        done = self._map("write+compress", outputs, self._write_and_compress, output_size, "MB")
        reused = sum(1 for was_there, _ in done if was_there)
        encodings = {item.path: sizes for item, (_, sizes) in zip(outputs, done, strict=True)}
        manifest, published, previous = self._publish(files, encodings, bundler)
        removed, live = self._collect()
        self.cache.save(live | set(by_path))
        kept = sum(1 for f in files.values() if f.keep_name)
        sizes = {
            "identity": sum(
                f.source.size if f.data is None else len(f.data) for f in files.values()
            )
        }
        for coding in _CODINGS:
            # What a client accepting this coding downloads for every file once.
            sizes[coding] = sum(a.encodings.get(coding, a.size) for a in manifest.assets.values())
        warnings = getattr(self.progress, "warnings", [])
        return BuildResult(
            generation=manifest.generation,
            published=published,
            previous_generation=previous,
            files=len(files),
            fingerprinted=len(files) - kept,
            kept_names=kept,
            reused=reused,
            bytes=sizes,
            seconds=time.monotonic() - started,
            removed_files=removed,
            warnings=tuple(warnings),
            dist=str(self.dist),
            canary=self.options.canary if published else None,
        )

    def _check_canary(self) -> None:
        """Refuse early what publishing would refuse: a canary without a stable
        generation, or any build while a canary runs (it compares with the stable one)."""
        try:
            running = read_canary(self.dist)
        except RolloutError as exc:
            raise BadInputError(f"{exc}; fix or remove DIST/canary.json") from exc
        where = str(self.dist)
        current = self.current
        if running is not None and current is not None and running.generation == current.generation:
            # A promotion killed halfway: finish it, or the pointer would outlive this build.
            promote_canary(self.dist, generation=running.generation)
            running = None
        if running is not None:
            raise BadInputError(
                f"a canary is running in {where} (generation {running.generation} at "
                f"{running.percent:g}%): promote or abort it first "
                f"(unblank rollout {where} promote|abort)"
            )
        if self.options.canary is not None and self.current is None:
            raise BadInputError(
                f"{where} has no stable generation yet, and a canary needs one to be compared "
                "with: publish the first generation without --canary"
            )

    # -- helpers -------------------------------------------------------------

    def _map(
        self,
        stage: str,
        items: list[_T],
        func: Callable[[_T], _R],
        weight: Callable[[_T], int],
        unit: str = "files",
    ) -> list[_R]:
        """Run ``func`` over ``items`` on the pool, heaviest first, with progress."""
        self.progress.stage(stage, sum(weight(i) for i in items), unit)
        order = sorted(range(len(items)), key=lambda i: -weight(items[i]))
        futures = {i: self.pool.submit(func, items[i]) for i in order}
        results: dict[int, _R] = {}
        for i in order:
            results[i] = futures[i].result()
            self.progress.advance(weight(items[i]))
        return [results[i] for i in range(len(items))]

    # -- 1. scan -------------------------------------------------------------

    def _scan(self, bundler: BundlerGraph | None) -> dict[str, PlannedFile]:
        sources = scan_sources(self.src)
        names = {s.name for s in sources}
        bundled = bundler.files if bundler else frozenset()
        if bundler is not None:
            self._check_bundler_files(bundler, names)
        sources = _drop_precompressed(sources, self.progress)
        kept = {s.name for s in sources if s.name in bundled or looks_fingerprinted(s.name)}
        # A source map keeps its name with its chunk: the chunk's sourceMappingURL
        # comment, left as the bundler wrote it, names the map by that name.
        kept |= {s.name for s in sources if s.name.endswith(".map") and s.name[:-4] in kept}
        files = {}
        for source in sources:
            keep = source.name in kept
            kind = None if keep else rewritable_kind(source.name)
            files[source.name] = PlannedFile(source=source, keep_name=keep, kind=kind)
        self._map("scan", list(files.values()), self._read, lambda f: 1)
        self._unkeep_changed_names(files, bundled)
        return files

    def _unkeep_changed_names(self, files: dict[str, PlannedFile], bundled: frozenset[str]) -> None:
        """Deal with kept names whose content changed: they are not content hashes.

        A retained generation still points at the bytes under that name, and
        overwriting them would break every page of that generation.  A name
        that only looked hashed gets a fingerprint (files referencing it are
        rewritten).  A file the bundler names cannot: its chunks import it by
        that name, so the build stops and says how to configure the bundler.
        """
        live: dict[str, Asset] = {}
        for manifest in [*(self.history or []), *([self.current] if self.current else [])]:
            for asset in manifest.assets.values():
                live[asset.path] = asset
        changed = [
            item
            for item in files.values()
            if item.keep_name and self._changed_in_dist(item, live.get(item.source.name))
        ]
        from_bundler = [item.source.name for item in changed if item.source.name in bundled]
        if from_bundler:
            raise BadInputError(
                f"{', '.join(from_bundler[:5])} changed content but kept the same name, which "
                "pages of an earlier generation still load; have the bundler put a content "
                "hash in every file name (Vite/Rollup: '[name]-[hash].js', the default)"
            )
        for item in changed:
            item.keep_name = False
            item.kind = rewritable_kind(item.source.name)
            if item.kind is not None:
                read_source(item, self.options.sri, self.cache)  # now its references count
            self.progress.warn(
                f"{item.source.name!r} kept its name but its content changed since an earlier "
                "generation: the name is not a content hash, so it gets a fingerprint instead"
            )

    def _changed_in_dist(self, item: PlannedFile, old: Asset | None) -> bool:
        """Whether DIST holds other bytes under ``item``'s name that pages may use."""
        if old is not None:
            return not _same_content(item, old, self.dist)
        if self.history is None:
            # The history is unreadable, so any generation might use the file
            # there: a name whose bytes differ must not be overwritten.
            existing = _sha256_of(self.dist / item.source.name)
            return existing is not None and existing != item.sha256
        return False

    def _check_bundler_files(self, bundler: BundlerGraph, names: set[str]) -> None:
        gone = sorted(bundler.files - names)
        self._report_missing(
            [(bundler.source, 0, name, "names a file that is not in SRC") for name in gone]
        )

    def _read(self, item: PlannedFile) -> None:
        read_source(item, self.options.sri, self.cache)

    # -- 2. plan -------------------------------------------------------------

    def _resolve(self, files: dict[str, PlannedFile]) -> None:
        """Keep only references to local files, with their target; report missing ones."""
        missing: list[tuple[str, int, str, str]] = []
        for item in sorted(files.values(), key=lambda f: f.source.name):
            resolved = []
            guards = [ref for ref, _ in item.references if ref.integrity_for is not None]
            for ref, _ in item.references:
                if ref.integrity_for is not None or not is_local_reference(
                    ref.value, module=ref.module
                ):
                    continue
                target = resolve_target(item.source.name, ref.value)
                if target is None or target not in files:
                    why = self._why_missing(target)
                    missing.append((item.source.name, ref.line, ref.value, why))
                    continue
                resolved.append((ref, target))
            # An integrity attribute follows the file its element loads.
            targets = {ref.start: target for ref, target in resolved}
            resolved += [
                (g, targets[g.integrity_for]) for g in guards if g.integrity_for in targets
            ]
            item.references = sorted(resolved, key=lambda pair: pair[0].start)
        self._report_missing(missing)

    def _report_missing(self, missing: list[tuple[str, int, str, str]]) -> None:
        """Warn about each missing reference, or raise one error listing them all."""
        if self.options.allow_missing:
            for file, line, value, why in missing:
                where = _where(file, line)
                self.progress.warn(f"{where}: reference {value!r} {why} (left as written)")
            return
        if not missing:
            return
        file, line, value, why = missing[0]
        message = f"{_where(file, line)}: reference {value!r} {why}"
        if len(missing) > 1:
            shown = [f"  {_where(f, n)}: {v!r} {w}" for f, n, v, w in missing[:_SHOWN_MISSING]]
            if len(missing) > _SHOWN_MISSING:
                shown.append(f"  ... and {len(missing) - _SHOWN_MISSING} more")
            message += f" ({len(missing)} missing references)\n" + "\n".join(shown)
        raise MissingReferenceError(
            message + "\nfix the references or pass --allow-missing",
            file=file,
            line=line,
            reference=value,
        )

    def _why_missing(self, target: str | None) -> str:
        if target is None:
            return "points outside SRC"
        if any(part.startswith(".") for part in target.split("/")) and (self.src / target).exists():
            return "names a hidden file, which is not published"
        return "names a file that is not in SRC"

    # -- 3. write --------------------------------------------------------------

    def _write(self, item: PlannedFile) -> bool:
        """Put ``item`` in DIST; True when an identical copy was already there."""
        target = self.dist / item.path
        existing = _sha256_of(target)
        if existing == item.sha256:
            return True
        if existing is not None and item.path not in self.ours:
            raise BadInputError(
                f"DIST holds {item.path!r}, which unblank did not write; "
                "move it away so that the build can publish its own file there"
            )
        self.owned.add(item.path)
        try:
            if item.data is not None:
                write_atomic(target, item.data)
                return False
            if item.patches:
                with atomic_writer(target) as out:
                    digest = hashlib.sha256()
                    for piece in patched_chunks(item.source.path, item.patches):
                        digest.update(piece)
                        out.write(piece)
                    if digest.hexdigest() != item.sha256:
                        raise BadInputError(
                            f"{item.source.name!r} changed while the build was running; build again"
                        )
                return False
            with atomic_writer(target) as out, open(item.source.path, "rb") as source:
                digest = hashlib.sha256()
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                if digest.hexdigest() != item.sha256:
                    raise BadInputError(
                        f"{item.source.name!r} changed while the build was running; build again"
                    )
        except OSError as exc:
            raise _write_error(target, exc) from exc
        return False

    # -- 4. compress -----------------------------------------------------------

    def _write_and_compress(self, item: PlannedFile) -> tuple[bool, dict[str, int]]:
        """Put ``item`` in DIST, then make or reuse its variants.

        One job per file, largest first: compression of the first files starts
        while the others are still being written.  Returns whether the file
        was already there, and the sizes of the variants kept.
        """
        reused = self._write(item)
        if not is_compressible(item.path):
            return reused, {}
        key = self.options.compression.key
        record = self.cache.variants(item.path)
        same_settings = record.get("settings") == key and record.get("sha256") == item.sha256
        sizes: dict[str, int] = {}
        for coding in _CODINGS:
            if same_settings and record.get(coding) == 0:
                continue  # compressed before with these settings: not worth keeping
            size = self._variant((item, coding, same_settings))
            if size is not None:
                sizes[coding] = size
        decisions = {c: sizes.get(c, 0) for c in _CODINGS}
        self.cache.remember_variants(
            item.path, {"settings": key, "sha256": item.sha256, **decisions}
        )
        return reused, sizes

    def _variant(self, job: tuple[PlannedFile, str, bool]) -> int | None:
        """Make or reuse one variant; its size if kept.

        A variant is reused when it was made with the same settings, or when a
        retained generation lists it: its manifest gives its size, so it is
        never replaced or deleted while that generation is kept, whatever the
        settings of this build (they apply to new content).
        """
        item, coding, same_settings = job
        base = self.dist / item.path
        relative = item.path + _VARIANT_SUFFIX[coding]
        variant = base.with_name(base.name + _VARIANT_SUFFIX[coding])
        size = output_size(item)
        listed = self.live_variants.get(relative)
        if listed is None and self.history is None and variant.is_file():
            listed = variant.stat().st_size  # any generation might list it: keep it
        self.owned.add(relative)
        try:
            intact = (same_settings or listed is not None) and variant.is_file()
            if intact and decoded_sha256(variant, coding) == item.sha256:
                compressed = variant.stat().st_size
                if listed is not None and compressed == listed:
                    return compressed
            else:
                compressed = compress_file(base, variant, coding, self.options.compression)
            if worth_keeping(size, compressed):
                return compressed
            if listed is None:
                variant.unlink(missing_ok=True)
        except OSError as exc:
            raise _write_error(variant, exc) from exc
        return None

    # -- 5. publish --------------------------------------------------------------

    def _publish(
        self,
        files: dict[str, PlannedFile],
        encodings: dict[str, dict[str, int]],
        bundler: BundlerGraph | None,
    ) -> tuple[Manifest, bool, str | None]:
        assets = {
            name: Asset(
                path=item.path,
                integrity=item.integrity,
                size=output_size(item),
                content_type=content_type(item.path),
                encodings=encodings[item.path],
            )
            for name, item in files.items()
        }
        entries: dict[str, Entry] = dict(bundler.entries) if bundler else {}
        current = self.current
        if current is not None and current.assets == assets and current.entries == entries:
            return current, False, current.generation
        body = json.dumps(
            {
                "assets": {n: a.to_dict() for n, a in sorted(assets.items())},
                "entries": {n: e.to_dict() for n, e in sorted(entries.items())},
            },
            sort_keys=True,
        ).encode()
        existing = [m.generation for m in self.history or []]
        if current is not None:
            existing.append(current.generation)
        generation = new_generation_id(self.now, body, existing)
        manifest = Manifest(
            generation=generation, created=_created(self.now), assets=assets, entries=entries
        )
        if self.history is not None and current is not None:
            dropped = set(drop_unpublished(self.dist, current))
            self.history = [m for m in self.history if m.generation not in dropped]
        if self.options.canary is not None and current is not None:
            pointer = CanaryPointer(
                generation=generation,
                percent=self.options.canary,
                started=self.now,
                policy=self.options.canary_policy,
            )
            publish_canary(self.dist, manifest, pointer)
        else:
            publish(self.dist, manifest)
            self.current = manifest
        if self.history is not None:
            self.history.append(manifest)
        return manifest, True, current.generation if current else None

    def _collect(self) -> tuple[int, set[str]]:
        """Collect garbage; return how many files went and the paths still live."""
        if self.history is None:
            self.progress.warn(f"garbage collection skipped: {self.history_error}")
            return 0, set()
        result = collect_garbage(
            self.dist,
            self.options.retention,
            self.now,
            current=self.current,
            history=self.history,
        )
        kept = set(result.retained)
        live = {p for m in self.history if m.generation in kept for p in m.paths()}
        return len(result.removed_files), live


# -- helpers ------------------------------------------------------------------


def _where(file: str, line: int) -> str:
    """``file:line``, or just ``file`` for a reference without a line (a bundler manifest)."""
    return f"{file}:{line}" if line else file


def _drop_precompressed(sources: list[SourceFile], progress: Progress) -> list[SourceFile]:
    """Leave out ``x.js.br``/``x.js.gz`` made by a bundler plugin: unblank makes its own."""
    names = {s.name for s in sources}
    kept = [
        s
        for s in sources
        if not any(s.name.endswith(x) and s.name.removesuffix(x) in names for x in (".br", ".gz"))
    ]
    if len(kept) < len(sources):
        progress.warn(
            f"left out {len(sources) - len(kept)} precompressed .br/.gz files found in SRC; "
            "unblank makes and verifies its own variants"
        )
    return kept


def _same_content(item: PlannedFile, old: Asset, dist: Path) -> bool:
    """Whether ``item`` has the bytes ``old`` (a published asset) has."""
    if item.source.size != old.size:
        return False
    mine = {d.algorithm: d.digest for d in parse_integrity(item.integrity)}
    for digest in parse_integrity(old.integrity):
        if digest.algorithm in mine:
            return hmac.compare_digest(mine[digest.algorithm], digest.digest)
    return _sha256_of(dist / old.path) == item.sha256


def _write_error(target: Path, exc: OSError) -> BuildError:
    message = f"cannot write {str(target)!r}: {exc.strerror}"
    if exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR):
        return BadInputError(message)  # a name or a path the user chose
    if exc.errno == errno.ENOSPC:
        message += "; free space (`unblank gc DIST` removes old generations) and build again"
    return BuildError(message)


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
