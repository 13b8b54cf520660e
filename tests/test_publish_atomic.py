"""Publication is atomic: ``unblank build`` killed with SIGKILL at any instant.

DESIGN.md promises that "a build killed at any instant leaves the previous
generation whole and served".  These tests run the real command line as a
subprocess on a corpus built for the purpose (CSS pointing at images, ES
modules importing each other in a chain and in a cycle, text that brotli at
quality 11 takes a while over, and files of a few MB so the streaming copy is
used), kill it after a seeded random delay spread over the whole build, from
interpreter start-up to the last garbage-collected file, and check every time:

- ``manifest.json`` parses and is either the previous generation, byte for
  byte, or (when the kill came after the final rename) the new one;
- every file of every retained generation is on disk, verifies against its
  SRI digest, and each ``.br``/``.gz`` variant decodes to exactly its bytes;
- every ``manifests/<generation>.json`` is whole;
- the next build, not killed, succeeds and leaves all of the above true.

Each kill is printed as it happens, so a failure shows the seed and every delay.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import pytest

from unblank import integrity
from unblank.manifest import Manifest, variant_path
from unblank_server.fsutil import is_temp_name
from unblank_server.generations import CURRENT, HISTORY, Retention, retained

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = ("sdk", "static_server", "fallback_pages")  # DESIGN.md's three source roots
SEED = int(os.environ.get("UNBLANK_KILL_SEED", "20261125"))  # rerun a failure with its seed
KILLS = 28
# keep=2, keep_days=0: every build deletes the files of the generation before last,
# so kills also land in the middle of garbage collection.
RETENTION = Retention(keep=2, keep_days=0)
RETENTION_ARGS = ("--keep", str(RETENTION.keep), "--keep-days", str(RETENTION.keep_days))
TIMEOUT = 120  # seconds for one build: far more than the ~1 s a build of the corpus takes
# Files the builder rewrites (their references change): their bytes differ from SRC's.
REWRITTEN = (".css", ".js")
DECODERS: Mapping[str, Callable[[bytes], bytes]] = {
    "br": brotli.decompress,
    "gzip": gzip.decompress,
}
Corpus = dict[str, bytes]


# --------------------------------------------------------------------------- the corpus


def make_corpus(version: int, nonce: int) -> Corpus:
    """Front-end files, as {name: bytes}.

    Two ``version``s share half their images and share the big font per version,
    so a build reuses files an earlier generation left in DIST; the ``nonce``
    changes the text and a module in a cycle, so every build has compression
    work to do and publishes a new generation.
    """
    shared = random.Random(1000)
    per_version = random.Random(2000 + version)
    per_nonce = random.Random(3000 + nonce)
    words = [
        "".join(shared.choice(string.ascii_lowercase) for _ in range(shared.randint(2, 9)))
        for _ in range(2000)
    ]
    files: Corpus = {}
    for i in range(8):
        rng = per_version if i % 2 else shared
        files[f"img/pic{i}.png"] = rng.randbytes(rng.randint(2_000, 40_000))
    # A few MB each, not compressible: copied in 1 MiB chunks, hashed as a stream.
    files["fonts/big.woff2"] = per_version.randbytes(3_000_000)
    files["media/clip.mp4"] = shared.randbytes(2_500_000)
    for i in range(4):
        imported = f'@import "site{i + 1}.css";\n' if i < 3 else ""
        rules = "\n".join(
            f".c{i}-{j} {{ background: url(../img/pic{(i + j) % 8}.png) }}" for j in range(6)
        )
        files[f"css/site{i}.css"] = f"{imported}{rules}\n/* v{version} */\n".encode()
    for i in range(10):
        imports = "".join(
            f'import {{ f{k} }} from "./mod{k}.js";\n' for k in (i + 1, i + 2) if k < 10
        )
        files[f"js/mod{i}.js"] = (
            f"{imports}export function f{i}() {{ return {version * 100 + i}; }}\n".encode()
        )
    files["js/cyc_a.js"] = b'import { b } from "./cyc_b.js";\nexport const a = () => b;\n'
    files["js/cyc_b.js"] = (
        f'import {{ a }} from "./cyc_a.js";\nexport const b = () => a; // {nonce}\n'.encode()
    )
    files["js/main.js"] = (
        'import { f0 } from "./mod0.js";\nimport { a } from "./cyc_a.js";\n'
        'const logo = new URL("../img/pic0.png", import.meta.url);\n'
        f"console.log(f0(), a, logo, {nonce});\n"
    ).encode()
    for i in range(4):
        files[f"text/doc{i}.txt"] = " ".join(per_nonce.choices(words, k=9_000)).encode()
    files["data/words.json"] = json.dumps(per_nonce.choices(words, k=24_000)).encode()
    return files


def write_corpus(src: Path, files: Corpus) -> None:
    shutil.rmtree(src, ignore_errors=True)
    for name, data in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# --------------------------------------------------------------------------- running builds


def build_command(src: Path, dist: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "unblank_server", "build", str(src), str(dist), *options]


def subprocess_env() -> dict[str, str]:
    """This working tree's code first on the path, whatever is installed."""
    env = dict(os.environ)
    roots = [str(REPO_ROOT / root) for root in SOURCE_ROOTS]
    env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("SOURCE_DATE_EPOCH", None)
    return env


def start_build(src: Path, dist: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        build_command(src, dist, *options),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def run_build(src: Path, dist: Path) -> dict[str, Any]:
    """A complete build with ``--json``; its summary."""
    code, out, err = finish(start_build(src, dist, "--json", *RETENTION_ARGS))
    assert code == 0, f"build exited {code} (seed {SEED})\n--- stdout\n{out}\n--- stderr\n{err}"
    summary: dict[str, Any] = json.loads(out)
    return summary


def time_build(src: Path, dist: Path) -> float:
    """Run a complete build; how long it took, from process start to exit (seconds)."""
    started = time.monotonic()
    code, out, err = finish(start_build(src, dist, "--quiet", *RETENTION_ARGS))
    assert code == 0, f"build exited {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    return time.monotonic() - started


@dataclass(frozen=True, slots=True)
class Kill:
    """When to kill a build: ``delay`` seconds after it starts or after it begins to publish.

    A build begins to publish when ``manifests/<generation>.json`` appears; the
    final rename of ``manifest.json`` and garbage collection follow within
    milliseconds, too short a window to hit reliably with delays from the
    start on a loaded machine, so late kills are timed from that event.
    """

    delay: float
    from_publish: bool

    def __str__(self) -> str:
        return f"{self.delay:.4f}s after {'publishing began' if self.from_publish else 'start'}"


def plan_kills(rng: random.Random, duration: float, count: int) -> list[Kill]:
    """Kills spread over a build of ``duration`` seconds, weighted to its first and last moments."""
    kills = []
    for i in range(count):
        band = i % 4
        if band == 0:  # interpreter start-up, scanning, hashing
            kills.append(Kill(rng.uniform(0.0, min(0.15, duration)), from_publish=False))
        elif band == 3:  # between the two renames, garbage collection, exit
            delay = rng.uniform(0.0, 0.03)
            kills.append(Kill(0.0 if rng.random() < 0.5 else delay, from_publish=True))
        else:
            kills.append(Kill(rng.uniform(0.0, duration), from_publish=False))
    return kills


def kill_build(process: subprocess.Popen[str], dist: Path, kill: Kill) -> None:
    if kill.from_publish:
        known = set(_history_names(dist))
        deadline = time.monotonic() + TIMEOUT
        # Poll without sleeping: the window between the two renames is short.
        while process.poll() is None and set(_history_names(dist)) <= known:
            assert time.monotonic() < deadline, "the build never began to publish"
    time.sleep(kill.delay)
    process.send_signal(signal.SIGKILL)  # does nothing once the process has exited


def _history_names(dist: Path) -> list[str]:
    try:
        return [p.name for p in (dist / HISTORY).iterdir() if not is_temp_name(p.name)]
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------- checking DIST


def read_needed(dist: Path, path: str, generation: str) -> bytes:
    try:
        return (dist / path).read_bytes()
    except FileNotFoundError:
        raise AssertionError(f"{path} of generation {generation} is missing") from None


Verified = set[tuple[str, tuple[tuple[str, int], ...]]]


def verify_generation(dist: Path, manifest: Manifest, verified: Verified) -> None:
    """Every file ``manifest`` names exists and verifies; variants decode to the asset.

    ``verified`` remembers assets (path and variants) already checked, so that
    files several generations share are read once.
    """
    gen = manifest.generation
    for name, asset in manifest.assets.items():
        key = (asset.path, tuple(sorted(asset.encodings.items())))
        if key in verified:
            continue
        data = read_needed(dist, asset.path, gen)
        assert len(data) == asset.size, f"{asset.path} ({name}, {gen}) has the wrong size"
        assert integrity.verify(data, asset.integrity), f"{asset.path} ({gen}) fails its SRI"
        for coding, size in asset.encodings.items():
            path = variant_path(asset.path, coding)
            variant = read_needed(dist, path, gen)
            assert len(variant) == size, f"{path} ({gen}): size {len(variant)}, manifest {size}"
            assert DECODERS[coding](variant) == data, f"{path} ({gen}) decodes to other bytes"
        verified.add(key)


def load_history(dist: Path) -> dict[str, Manifest]:
    """Every ``manifests/<generation>.json``, each parsed whole (temporary files skipped)."""
    found: dict[str, Manifest] = {}
    folder = dist / HISTORY
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if is_temp_name(path.name):
            continue
        manifest = Manifest.loads(path.read_bytes())
        assert path.name == f"{manifest.generation}.json", (
            f"{path.name} holds {manifest.generation}"
        )
        found[manifest.generation] = manifest
    return found


def check_dist(dist: Path) -> Manifest | None:
    """Check DIST as a server would find it; return its current manifest (None before one)."""
    history = load_history(dist)
    if not (dist / CURRENT).exists():
        return None
    data = (dist / CURRENT).read_bytes()
    current = Manifest.loads(data)
    assert current.generation in history, f"manifests/{current.generation}.json is missing"
    assert (dist / HISTORY / f"{current.generation}.json").read_bytes() == data
    verified: Verified = set()
    keep = retained(list(history.values()), current, RETENTION, datetime.now(UTC))
    for manifest in keep:
        verify_generation(dist, manifest, verified)
    return current


def temp_files(dist: Path) -> list[str]:
    return sorted(str(p.relative_to(dist)) for p in dist.rglob("*") if is_temp_name(p.name))


def check_holds(manifest: Manifest, files: Corpus) -> None:
    """``manifest`` publishes exactly ``files``: same names, same bytes where not rewritten."""
    assert sorted(manifest.assets) == sorted(files)
    for name, data in files.items():
        if not name.endswith(REWRITTEN):
            expected = integrity.compute(data, ["sha384"])
            assert manifest.assets[name].integrity == expected, f"{name} is not the source's"


# --------------------------------------------------------------------------- the tests


def test_build_killed_at_any_instant_leaves_previous_generation_whole(tmp_path: Path) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    # Calibrate on DIST itself, in the state the loop keeps it in: the files of the
    # other corpus version are there from the generation before last.
    durations = []
    for nonce in (-1, -2, -3):
        write_corpus(src, make_corpus(nonce % 2, nonce))
        durations.append(time_build(src, dist))
    duration = max(durations[1:])
    kills = plan_kills(random.Random(SEED), duration, KILLS)
    print(f"seed {SEED}; a full build takes {duration:.3f}s")

    counts = {"killed": 0, "finished": 0, "kept": 0, "replaced": 0}
    for i, kill in enumerate(kills):
        previous = (dist / CURRENT).read_bytes()
        files = make_corpus(i % 2, i)
        write_corpus(src, files)
        process = start_build(src, dist, "--quiet", *RETENTION_ARGS)
        kill_build(process, dist, kill)
        code, out, err = finish(process)
        assert code in (0, -signal.SIGKILL), f"build {i} exited {code}\n{out}\n{err}"
        counts["killed" if code else "finished"] += 1
        replaced = (dist / CURRENT).read_bytes() != previous
        counts["replaced" if replaced else "kept"] += 1
        print(
            f"kill {i:2}: {kill}: exit {code}, manifest.json {'replaced' if replaced else 'kept'}"
        )

        current = check_dist(dist)
        assert current is not None
        old = Manifest.loads(previous)
        if replaced:
            assert current.generation > old.generation
            check_holds(current, files)
        # Served until the kill, or (keep=2) retained for pages loaded from it.
        kept = load_history(dist).get(old.generation)
        assert kept is not None, f"generation {old.generation} was dropped"
        verify_generation(dist, kept, set())

        summary = run_build(src, dist)
        assert summary["published"] is not replaced
        after = check_dist(dist)
        assert after is not None
        assert after.generation == summary["generation"]
        check_holds(after, files)
        # The generation served until this build: pages loaded from it still need it.
        served = load_history(dist).get(current.generation)
        assert served is not None, f"generation {current.generation} was dropped"
        verify_generation(dist, served, set())
        assert temp_files(dist) == []

    print(f"outcomes: {counts}")
    # Kills that all came too late would prove nothing.
    assert counts["killed"] >= KILLS // 2, f"only {counts['killed']} builds were killed"


@pytest.mark.parametrize("dist_state", ["new", "published"])
def test_build_concurrent_runs_are_serialised(tmp_path: Path, dist_state: str) -> None:
    dist = tmp_path / "dist"
    if dist_state == "published":
        write_corpus(tmp_path / "src0", make_corpus(0, 0))
        run_build(tmp_path / "src0", dist)
    corpora = {tmp_path / "src1": make_corpus(1, 1), tmp_path / "src2": make_corpus(0, 2)}
    for src, files in corpora.items():
        write_corpus(src, files)
    before = check_dist(dist)

    processes = [start_build(src, dist, "--json", *RETENTION_ARGS) for src in corpora]
    results = [finish(p) for p in processes]
    for code, out, err in results:
        assert code == 0, f"build exited {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    first, second = sorted(
        (json.loads(out) for _, out, _ in results), key=lambda s: s["generation"]
    )

    assert first["published"] and second["published"]
    assert first["previous_generation"] == (before.generation if before else None)
    assert second["previous_generation"] == first["generation"]
    current = check_dist(dist)
    assert current is not None
    assert current.generation == second["generation"]
    last_src = next(
        src
        for src, (_, out, _) in zip(corpora, results, strict=True)
        if json.loads(out)["generation"] == second["generation"]
    )
    check_holds(current, corpora[last_src])
    # keep=2: the generation the first build published is retained whole as well.
    verify_generation(dist, load_history(dist)[first["generation"]], set())
    assert temp_files(dist) == []
