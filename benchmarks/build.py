"""Benchmark ``unblank build`` against WhiteNoise's compressor on a realistic corpus.

The corpus is the distribution files of popular npm packages (installed by this
script with npm, pinned versions), a small app that references them, and
generated images, cached under ``.cache/bench-corpus/``.  In one run, on fresh
copies of the corpus, it times:

* ``unblank build SRC DIST`` into a new DIST (fingerprints, SRI, br + gzip);
* ``python -m whitenoise.compress DIR`` (br + gzip, in place);
* both again after one file changed: unblank into the same DIST, WhiteNoise
  on a fresh copy that carries the same change (it has no incremental mode);
* an unblank rebuild where nothing changed.

Usage::

    .venv/bin/python benchmarks/build.py --reps 3 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import brotli

REPO: Final = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS: Final = REPO / ".cache" / "bench-corpus"
DEFAULT_WORK: Final = REPO / ".cache" / "bench-work"

# Pinned so that every run compresses the same bytes.  Chosen for real front-end
# dist files: big bundles with source maps (bootstrap, three, leaflet), hundreds
# of small ES modules importing each other (lodash-es), fonts (Font Awesome, KaTeX).
PACKAGES: Final = {
    "react": "18.3.1",
    "react-dom": "18.3.1",
    "vue": "3.5.13",
    "bootstrap": "5.3.3",
    "@fortawesome/fontawesome-free": "6.7.2",
    "lodash-es": "4.17.21",
    "three": "0.170.0",
    "katex": "0.16.21",
    "d3": "7.9.0",
    "jquery": "3.7.1",
    "leaflet": "1.9.4",
}

# (folder under node_modules, folder in the corpus, file pattern).  Whole dist
# folders are copied so that every source map and CSS url() they name resolves:
# the benchmark needs no --allow-missing.
COPIES: Final = (
    ("react/umd", "react", "*"),
    ("react-dom/umd", "react-dom", "*"),
    ("vue/dist", "vue", "*"),
    ("bootstrap/dist", "bootstrap", "*"),
    ("@fortawesome/fontawesome-free/css", "fontawesome/css", "*"),
    ("@fortawesome/fontawesome-free/webfonts", "fontawesome/webfonts", "*"),
    ("@fortawesome/fontawesome-free/svgs/brands", "fontawesome/svgs/brands", "*"),
    ("@fortawesome/fontawesome-free/svgs/regular", "fontawesome/svgs/regular", "*"),
    ("lodash-es", "lodash-es", "*.js"),
    ("three/build", "three", "three.module*.js"),
    ("katex/dist", "katex", "*"),
    ("d3/dist", "d3", "*"),
    ("jquery/dist", "jquery", "*"),
    ("leaflet/dist", "leaflet", "*"),
)

APP_JS: Final = """\
import debounce from "../lodash-es/debounce.js";
import throttle from "../lodash-es/throttle.js";
import { createApp, h } from "../vue/vue.esm-browser.prod.js";
import * as THREE from "../three/three.module.min.js";
import katex from "../katex/katex.mjs";

const scene = new THREE.Scene();
const onResize = debounce(() => scene.updateMatrixWorld(), 100);
window.addEventListener("resize", onResize);
window.addEventListener("scroll", throttle(() => {}, 50));
createApp({ render: () => h("div", { innerHTML: katex.renderToString("e^{i\\\\pi}+1=0") }) })
  .mount("#app");
"""

APP_CSS: Final = """\
@import url("../bootstrap/css/bootstrap.min.css");
@import url("../fontawesome/css/all.min.css");
@import url("../katex/katex.min.css");
.hero { background: url("../images/png/screenshot-00.png") center / cover no-repeat; }
.map-layers { background-image: url("../leaflet/images/layers.png"); }
.photo { background-image: url("../images/photos/photo-00.jpg"); }
"""

GENERATOR_VERSION: Final = 1  # bump when the generated files change, to rebuild cached corpora
DEFAULT_CHANGE: Final = "jquery/jquery.js"  # 280 KB of real code that nothing else imports

FONT_EXTS: Final = frozenset({".woff", ".woff2", ".ttf", ".otf", ".eot"})
IMAGE_EXTS: Final = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
MB: Final = 1_000_000


# -- the corpus ---------------------------------------------------------------


def corpus_spec() -> dict[str, Any]:
    return {"packages": PACKAGES, "copies": COPIES, "generator": GENERATOR_VERSION}


def prepare_corpus(root: Path) -> Path:
    """Install and assemble the corpus under ``root`` (once); return its source folder."""
    src, stamp = root / "src", root / "spec.json"
    spec = json.dumps(corpus_spec(), sort_keys=True)
    if src.is_dir() and stamp.is_file() and stamp.read_text() == spec:
        return src
    if root == DEFAULT_CORPUS:
        _ignore_cache_folder(root.parent)
    npm_dir = root / "npm"
    install_packages(npm_dir)
    shutil.rmtree(src, ignore_errors=True)
    for package_dir, dest, pattern in COPIES:
        copy_files(npm_dir / "node_modules" / package_dir, src / dest, pattern)
    write_app(src / "app")
    write_images(src / "images", random.Random(20240601))
    stamp.write_text(spec)
    return src


def _ignore_cache_folder(cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# benchmark caches, made by benchmarks/build.py\n*\n")


def install_packages(npm_dir: Path) -> None:
    if shutil.which("npm") is None:
        raise SystemExit("npm is not on PATH: install Node.js (apt-get install npm) and retry")
    npm_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "unblank-bench-corpus", "private": True, "dependencies": PACKAGES}
    (npm_dir / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"installing {len(PACKAGES)} npm packages into {npm_dir} ...", flush=True)
    # --ignore-scripts: only the published dist files are needed, no install hooks.
    command = ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    subprocess.run(command, cwd=npm_dir, check=True)


def copy_files(source: Path, dest: Path, pattern: str) -> None:
    if not source.is_dir():
        raise SystemExit(f"{source} is missing: did the npm install of its package fail?")
    for path in sorted(source.rglob(pattern)):
        if path.is_file():
            target = dest / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def write_app(app: Path) -> None:
    app.mkdir(parents=True, exist_ok=True)
    (app / "main.js").write_text(APP_JS)
    (app / "app.css").write_text(APP_CSS)


def write_images(images: Path, rng: random.Random) -> None:
    """Deterministic images: incompressible like real photos, plus small compressible icons."""
    for sub in ("png", "photos", "icons"):
        (images / sub).mkdir(parents=True, exist_ok=True)
    for i in range(12):  # noisy screenshots: zlib cannot shrink random pixels
        width, height = rng.randrange(200, 480), rng.randrange(150, 320)
        (images / "png" / f"screenshot-{i:02}.png").write_bytes(noise_png(width, height, rng))
    for i in range(40):
        size = rng.choice((32, 48, 64, 96))
        (images / "icons" / f"icon-{i:02}.png").write_bytes(gradient_png(size, i))
    for i in range(16):
        (images / "photos" / f"photo-{i:02}.jpg").write_bytes(jpeg_like(rng))


def _png(width: int, height: int, rows: Iterator[bytes]) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data)
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def noise_png(width: int, height: int, rng: random.Random) -> bytes:
    return _png(width, height, (rng.randbytes(width * 3) for _ in range(height)))


def gradient_png(size: int, seed: int) -> bytes:
    def row(y: int) -> bytes:
        return bytes(v for x in range(size) for v in (x * 255 // size, y * 255 // size, seed * 6))

    return _png(size, size, (row(y) for y in range(size)))


def jpeg_like(rng: random.Random) -> bytes:
    """A random payload in a JFIF frame: as incompressible as a photo (not decodable)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + rng.randbytes(rng.randrange(60_000, 150_000)) + b"\xff\xd9"


def kind_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in FONT_EXTS:
        return "font"
    if ext in IMAGE_EXTS:
        return "image"
    return ext.lstrip(".") or "other"


def corpus_stats(src: Path) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, int]] = {}
    for path in src.rglob("*"):
        if path.is_file():
            entry = stats.setdefault(kind_of(path), {"files": 0, "bytes": 0})
            entry["files"] += 1
            entry["bytes"] += path.stat().st_size
    files, size = (sum(e[key] for e in stats.values()) for key in ("files", "bytes"))
    total = {"files": files, "bytes": size}
    return dict(sorted(stats.items(), key=lambda kv: -kv[1]["bytes"])) | {"total": total}


def print_corpus_stats(src: Path, stats: dict[str, dict[str, int]]) -> None:
    print(f"corpus: {src}")
    for kind, entry in stats.items():
        print(f"  {kind:<8} {entry['files']:>6} files {entry['bytes'] / MB:>8.2f} MB")


# -- measuring a command ------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One timed command: wall and CPU seconds, peak memory."""

    seconds: float
    cpu_seconds: float  # user + system, the process and the children it waited for
    max_rss_mb: float  # the largest single process (wait4's ru_maxrss)
    tree_rss_mb: float  # the whole process tree, summed, sampled every 100 ms
    other_cpu_seconds: float  # CPU that other processes used meanwhile: noise, ideally ~0
    report: dict[str, Any] = field(default_factory=dict)  # unblank's --json summary
    output: dict[str, int] = field(default_factory=dict)  # what the tool left on disk


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and its descendants, from /proc (Linux)."""
    parent_of, rss_of = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended while we looked
            parent_of[int(entry.name)], rss_of[int(entry.name)] = int(fields[1]), int(fields[21])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parent_of.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss_of.get(pid, 0) for pid in tree) * os.sysconf("SC_PAGE_SIZE")


def _sample_peak(pid: int, done: threading.Event, peak: list[int]) -> None:
    while not done.wait(0.1):  # a /proc scan costs ~2 ms of CPU: keep it under 2%
        peak[0] = max(peak[0], _tree_rss(pid))


def _busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine and this process have used so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    try:
        jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    busy = sum(jiffies[:8]) - jiffies[3] - jiffies[4]
    return busy / os.sysconf("SC_CLK_TCK"), own.ru_utime + own.ru_stime


def _wait_for(command: Sequence[str], out: IO[bytes], err: IO[bytes]) -> tuple[Any, ...]:
    """Run ``command``; return (seconds, exit status, rusage, peak tree RSS in bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=out, stderr=err)
    done, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_sample_peak, args=(proc.pid, done, peak), daemon=True)
    sampler.start()
    # wait4(), not Popen.wait(): it gives this one child's resource usage.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
    done.set()
    sampler.join()
    return seconds, proc.returncode, usage, peak[0]


def measure(command: Sequence[str]) -> tuple[Run, str]:
    """Run ``command`` and return its costs and stdout; exit on failure, showing stderr."""
    os.sync()  # the previous step's dirty pages must not be flushed on this step's clock
    machine_before, own_before = _busy_seconds()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        seconds, code, usage, peak = _wait_for(command, out, err)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        sys.stderr.write(stderr)
        raise SystemExit(f"{' '.join(command)} failed with exit status {code}")
    machine_after, own_after = _busy_seconds()
    cpu = usage.ru_utime + usage.ru_stime
    other = machine_after - machine_before - cpu - (own_after - own_before)
    run = Run(seconds, cpu, usage.ru_maxrss / 1024, peak / 2**20, max(other, 0.0))
    return run, stdout


# -- the two tools ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    brotli_quality: int = 11  # brotli.compress's default, what WhiteNoise uses
    gzip_level: int = 9  # what WhiteNoise hard-codes
    sri: str = "sha384"
    allow_missing: bool = False  # the corpus is complete: a missing file is a bug to report


def unblank_command(unblank: str, src: Path, dist: Path, settings: Settings) -> list[str]:
    return [
        unblank, "build", str(src), str(dist), "--json",  # --json: quiet but for the summary
        "--sri", settings.sri,
        "--brotli-quality", str(settings.brotli_quality),
        "--gzip-level", str(settings.gzip_level),
        *(["--allow-missing"] if settings.allow_missing else []),
    ]  # fmt: skip


def whitenoise_command(folder: Path) -> list[str]:
    # WhiteNoise takes no quality flags: brotli.compress() defaults to quality 11,
    # gzip is level 9; -q only silences its per-file log.
    return [sys.executable, "-m", "whitenoise.compress", "-q", str(folder)]


def run_unblank(unblank: str, src: Path, dist: Path, settings: Settings) -> Run:
    run, out = measure(unblank_command(unblank, src, dist, settings))
    try:
        run.report = json.loads(out)
    except json.JSONDecodeError:
        print(f"warning: unblank's --json output is not one JSON object: {out[:200]!r}")
    run.output = unblank_output(dist)
    return run


def unblank_output(dist: Path) -> dict[str, int]:
    """What the current generation holds, from its manifest: files, bytes, variant bytes."""
    assets = json.loads((dist / "manifest.json").read_bytes())["assets"].values()
    sizes = {"files": len(assets), "identity": sum(a["size"] for a in assets)}
    for coding in ("br", "gzip"):
        sizes[coding] = sum(a["encodings"].get(coding, 0) for a in assets)
        sizes[coding + "_files"] = sum(coding in a["encodings"] for a in assets)
    return sizes


def run_whitenoise(folder: Path) -> Run:
    run, _ = measure(whitenoise_command(folder))
    run.output = whitenoise_output(folder)
    return run


def whitenoise_output(folder: Path) -> dict[str, int]:
    """The same figures as :func:`unblank_output`, from the files WhiteNoise left."""
    sizes = dict.fromkeys(("files", "identity", "br", "br_files", "gzip", "gzip_files"), 0)
    for path in folder.rglob("*"):
        if path.is_file():
            kind = {".br": "br", ".gz": "gzip"}.get(path.suffix)
            sizes[kind or "identity"] += path.stat().st_size
            sizes[f"{kind}_files" if kind else "files"] += 1
    return sizes


def change_file(path: Path, rep: int) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(f"\n// unblank benchmark: one changed file (rep {rep})\n")


def asset_path(dist: Path, name: str) -> str:
    manifest = json.loads((dist / "manifest.json").read_bytes())
    return str(manifest["assets"][name]["path"])


# -- one repetition -----------------------------------------------------------


@dataclass(slots=True)
class Options:
    src: Path
    work: Path
    change: str
    unblank: str | None
    whitenoise: bool
    settings: Settings


def fresh_copy(src: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    return dest


def run_rep(opts: Options, rep: int) -> dict[str, Run]:
    runs: dict[str, Run] = {}
    if opts.unblank:
        src = fresh_copy(opts.src, opts.work / "unblank-src")
        dist = opts.work / "unblank-dist"
        shutil.rmtree(dist, ignore_errors=True)
        runs["unblank cold"] = run_unblank(opts.unblank, src, dist, opts.settings)
    if opts.whitenoise:
        runs["whitenoise cold"] = run_whitenoise(fresh_copy(opts.src, opts.work / "wn-cold"))
    if opts.unblank:
        before = asset_path(dist, opts.change)
        change_file(src / opts.change, rep)
        runs["unblank 1 changed"] = run_unblank(opts.unblank, src, dist, opts.settings)
        if asset_path(dist, opts.change) == before:
            raise SystemExit(f"unblank's rebuild did not republish the changed {opts.change}")
        runs["unblank no change"] = run_unblank(opts.unblank, src, dist, opts.settings)
    if opts.whitenoise:
        changed = fresh_copy(opts.src, opts.work / "wn-changed")  # no stale .br/.gz in it
        change_file(changed / opts.change, rep)
        runs["whitenoise 1 changed"] = run_whitenoise(changed)
    for name, run in runs.items():
        print(f"  rep {rep}: {name:<22} {run.seconds:7.2f} s", flush=True)
    return runs


# -- results ------------------------------------------------------------------

GOALS: Final = (
    # (label, numerator, denominator, "<=" or ">=", bound), from the issue.
    ("cold: unblank / whitenoise", "unblank cold", "whitenoise cold", "<=", 1.1),
    ("rebuild: whitenoise / unblank", "whitenoise 1 changed", "unblank 1 changed", ">=", 10.0),
    ("unblank: rebuild / cold", "unblank 1 changed", "unblank cold", "<=", 0.10),
)


_MEASURES: Final = ("seconds", "cpu_seconds", "max_rss_mb", "tree_rss_mb", "other_cpu_seconds")


def medians(reps: list[dict[str, Run]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in reps[0]:
        runs = [rep[name] for rep in reps]
        out[name] = {key: statistics.median(getattr(r, key) for r in runs) for key in _MEASURES}
    return out


def ratios(median: dict[str, dict[str, float]], measure: str = "seconds") -> list[dict[str, Any]]:
    """The goals of the issue, on wall seconds; on CPU seconds for a noisy machine."""
    results = []
    for label, num, den, op, bound in GOALS:
        if num in median and den in median:
            value = median[num][measure] / median[den][measure]
            ok = value <= bound if op == "<=" else value >= bound
            results.append({"goal": label, "ratio": value, "bound": f"{op} {bound}", "pass": ok})
    return results


def print_results(median: dict[str, dict[str, float]], cores: int) -> None:
    header = f"{'wall s':>8} {'cpu s':>8} {'max RSS':>9} {'tree RSS':>9} {'others cpu s':>13}"
    print(f"\n{'median of the reps':<24} {header}")
    for name, m in median.items():
        print(
            f"{name:<24} {m['seconds']:8.2f} {m['cpu_seconds']:8.2f}"
            f" {m['max_rss_mb']:7.0f}MB {m['tree_rss_mb']:7.0f}MB {m['other_cpu_seconds']:13.2f}"
        )
    for measure, title in (("seconds", "wall time (the goals)"), ("cpu_seconds", "CPU time")):
        print(f"\nratios of {title}:")
        for g in ratios(median, measure):
            verdict = "PASS" if g["pass"] else "FAIL"
            print(f"  {g['goal']:<32} {g['ratio']:8.3f}   goal {g['bound']:<7} {verdict}")
    noisy = [n for n, m in median.items() if m["other_cpu_seconds"] > 0.05 * m["seconds"] * cores]
    if noisy:
        print(
            f"\nwarning: other processes used over 5% of the {cores} cores during {noisy}:"
            " wall times are disturbed; the CPU-time ratios are the steadier ones"
        )


def print_outputs(last: dict[str, Run]) -> None:
    print("\noutputs of the last rep (br/gzip: variant bytes and files, where smaller):")
    for name, run in last.items():
        if run.output:
            o = run.output
            reused = f", reused {run.report['reused']}" if "reused" in run.report else ""
            print(
                f"  {name:<22} {o['files']:5} files {o['identity'] / MB:6.2f} MB,"
                f" br {o['br'] / MB:5.2f} MB ({o['br_files']}),"
                f" gzip {o['gzip'] / MB:5.2f} MB ({o['gzip_files']}){reused}"
            )


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "brotli": getattr(brotli, "version", getattr(brotli, "__version__", "?")),
    }


# -- the command line ---------------------------------------------------------


def find_unblank() -> str | None:
    beside = Path(sys.executable).parent / "unblank"
    return str(beside) if beside.exists() else shutil.which("unblank")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus cache folder")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder (wiped)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions; medians are reported")
    parser.add_argument("--change", default=DEFAULT_CHANGE, help="corpus file to change")
    parser.add_argument("--tools", choices=("both", "unblank", "whitenoise"), default="both")
    parser.add_argument("--unblank", default=find_unblank(), help="the unblank executable")
    parser.add_argument(
        "--allow-missing", action="store_true", help="pass --allow-missing to unblank build"
    )
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--keep-work", action="store_true", help="leave the scratch folder")
    parser.add_argument("--corpus-only", action="store_true", help="prepare the corpus and stop")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    src = prepare_corpus(args.corpus.resolve())
    stats = corpus_stats(src)
    print_corpus_stats(src, stats)
    if args.corpus_only:
        return 0
    if args.tools != "whitenoise" and not args.unblank:
        raise SystemExit("no unblank executable found: pip install -e . or pass --unblank PATH")
    settings = Settings(allow_missing=args.allow_missing)
    opts = Options(
        src=src,
        work=args.work.resolve(),
        change=args.change,
        unblank=args.unblank if args.tools != "whitenoise" else None,
        whitenoise=args.tools != "unblank",
        settings=settings,
    )
    print(
        f"settings: brotli quality {settings.brotli_quality}, gzip level {settings.gzip_level}"
        f" (both tools); unblank also fingerprints and computes SRI {settings.sri};"
        f" changed file: {args.change}"
    )
    try:
        reps = [run_rep(opts, rep) for rep in range(1, args.reps + 1)]
    finally:
        if not args.keep_work:
            shutil.rmtree(opts.work, ignore_errors=True)
    median = medians(reps)
    goals = ratios(median)
    print_results(median, os.cpu_count() or 1)
    print_outputs(reps[-1])
    if args.json:
        results = {
            "machine": machine(),
            "settings": asdict(settings) | {"change": args.change, "reps": args.reps},
            "corpus": stats,
            "packages": PACKAGES,
            "median": median,
            "goals": goals,
            "goals_on_cpu_time": ratios(median, "cpu_seconds"),
            "reps": [{name: asdict(run) for name, run in rep.items()} for rep in reps],
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if args.check and not all(g["pass"] for g in goals) else 0


if __name__ == "__main__":
    raise SystemExit(main())
