"""Benchmark ``unblank serve`` against the Python peers and nginx, in one run.

It drives the shared peer harness (``bench_peers.py``, see ``--harness``): the
harness builds the asset set, starts each server on 127.0.0.1 pinned to CPU 0,
probes its wire behaviour, loads it with ``wrk`` on CPU 1 and stops it. This
script adds unblank four times to the harness's peers:

* ``unblank``: the app under the harness's own uvicorn command (the same flags
  as every other ASGI peer);
* ``unblank-granian``: the same app under granian (one worker, one runtime
  thread), the server ``unblank serve --server granian`` uses;
* ``unblank-stream`` and ``unblank-granian-stream``: with the memory tier off
  for files above 64 KiB, so the 1 MiB file is streamed from disk (uvicorn:
  read in a thread; granian: ASGI ``pathsend``).

Then it prints the goals of the serving issue as ratios measured in this run.

Usage::

    .venv/bin/python benchmarks/serve.py                 # 3 reps x 8 s, ~25 min
    .venv/bin/python benchmarks/serve.py --quick         # 1 rep x 3 s, ~4 min
    .venv/bin/python benchmarks/serve.py --peers starlette,nginx --reps 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_HARNESS: Final = ROOT.parent / "shared" / "bench" / "peers" / "bench_peers.py"
CANDIDATE: Final = "benchmarks.serve_candidate"
OURS: Final = ("unblank", "unblank-granian", "unblank-stream", "unblank-granian-stream")
PYTHON_PEERS: Final = (
    "starlette",
    "servestatic",
    "blacknoise",
    "whitenoise-gunicorn",
    "whitenoise-a2wsgi",
)
SCENARIOS: Final = ("get_4k", "get_100k_br", "cond_304", "get_1m")
STREAM_LIMIT: Final = 64 * 1024  # the streaming variants keep only files up to this in memory


def load_harness(path: Path) -> ModuleType:
    if not path.is_file():
        sys.exit(
            f"serve.py: the peer harness {path} is missing; pass --harness "
            "PATH/TO/bench_peers.py (it ships beside the project in ../shared/bench/peers)"
        )
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        sys.exit(f"serve.py: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def check_tools() -> None:
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None]
    if not Path("/usr/lib/nginx/modules/ngx_http_brotli_static_module.so").exists():
        missing.append("libnginx-mod-http-brotli-static")
    if not missing:
        return
    packages = ["nginx" if t == "nginx" else t for t in missing]
    if shutil.which("apt-get") and _is_root():
        print(f"serve.py: installing Debian's {' '.join(packages)}", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True)
        return
    sys.exit(f"serve.py: install {' '.join(packages)} first (Debian: apt-get install ...)")


def _is_root() -> bool:
    return os.geteuid() == 0


def _granian(py: str, factory: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            py, "-m", "granian", "--interface", "asgi", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--runtime-threads", "1", "--loop", "uvloop", "--no-ws",
            "--log-level", "warning", "--no-access-log", "--backlog", "2048",
            "--working-dir", str(ROOT), f"{CANDIDATE}:{factory}",
        ]  # fmt: skip

    return command


def add_unblank_peers(harness: ModuleType, urls: dict[str, str]) -> None:
    """Teach the harness the four unblank peers (it knows one candidate only)."""
    original = harness.peer_specs

    def peer_specs(args: argparse.Namespace) -> dict[str, Any]:
        specs: dict[str, Any] = original(args)
        py = args.python

        def uvicorn(factory: str) -> Callable[[int], list[str]]:
            return lambda port: harness._uvicorn_cmd(
                py, f"{CANDIDATE}:{factory}", port, factory=True, app_dir=str(ROOT)
            )

        specs["unblank"] = {
            "kind": "asgi",
            "desc": "unblank create_app / uvicorn 1 proc, uvloop+httptools",
            "cmd": uvicorn("app"),
            "urls": urls,
        }
        specs["unblank-stream"] = {
            "kind": "asgi",
            "desc": "unblank, memory tier only for files <= 64 KiB / uvicorn 1 proc",
            "cmd": uvicorn("app_streaming"),
            "urls": urls,
        }
        specs["unblank-granian"] = {
            "kind": "asgi",
            "desc": "unblank create_app / granian 1 worker, 1 runtime thread, uvloop",
            "cmd": _granian(py, "app"),
            "urls": urls,
        }
        specs["unblank-granian-stream"] = {
            "kind": "asgi",
            "desc": "unblank, memory tier only for files <= 64 KiB / granian (pathsend)",
            "cmd": _granian(py, "app_streaming"),
            "urls": urls,
        }
        return specs

    harness.__dict__["peer_specs"] = peer_specs


def prepare(harness: ModuleType, work: Path) -> dict[str, str]:
    """The harness's assets, built by ``unblank build``; the URLs unblank gives them."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.serve_candidate import build_dist, urls

    harness.make_assets(str(work / "data"))
    dist = work / "unblank-dist"
    shutil.rmtree(dist, ignore_errors=True)
    build_dist(work / "data" / "source", dist)
    os.environ["UNBLANK_BENCH_DIST"] = str(dist)  # the servers' environment comes from ours
    found: dict[str, str] = urls(dist)
    return found


# -- the goals, as ratios ---------------------------------------------------------


def _rps(summary: dict[str, Any], peer: str, scenario: str) -> float | None:
    value = summary.get(peer, {}).get(scenario, {}).get("rps_median")
    return float(value) if value else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def goals(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, measured, target, met) for each goal of the issue."""
    summary = results.get("summary", {})
    out: list[tuple[str, str, str, bool | None]] = []

    def check(label: str, a: float | None, b: float | None, target: float) -> None:
        met = None if not (a and b) else a / b >= target
        out.append((label, _ratio(a, b), f">= {target}", met))

    for scenario in ("get_4k", "get_100k_br", "cond_304"):
        ceiling = _rps(summary, "asgi-memory-ceiling", scenario)
        for peer in ("unblank", "unblank-granian"):
            check(
                f"{scenario}: {peer} / asgi-memory-ceiling",
                _rps(summary, peer, scenario),
                ceiling,
                0.8,
            )
    whitenoise = _rps(summary, "whitenoise-gunicorn", "get_1m")
    for peer in OURS:
        check(
            f"get_1m: {peer} / whitenoise-gunicorn", _rps(summary, peer, "get_1m"), whitenoise, 0.9
        )
    nginx = _rps(summary, "nginx", "get_4k")
    check(
        "stretch get_4k: unblank-granian / nginx",
        _rps(summary, "unblank-granian", "get_4k"),
        nginx,
        0.5,
    )
    return out


def probe_verdicts(probe: dict[str, Any], sizes: dict[str, int]) -> dict[str, bool]:
    """Each wire behaviour of the harness's probe: correct or not (RFC 9110)."""
    large = sizes["large"]

    def vary(h: dict[str, Any]) -> bool:
        return "accept-encoding" in str(h.get("vary") or "").lower()

    mb = probe["medium_br"]
    rm = probe["range_multi"]
    return {
        "br chosen, body intact": mb["status"] == 200
        and mb["content_encoding"] == "br"
        and mb["body_ok"],
        "gzip-only client gets gzip": probe["medium_gzip_only"]["content_encoding"] == "gzip",
        "br;q=0 honoured": probe["medium_br_q0"]["content_encoding"] != "br"
        and probe["medium_br_q0"]["body_ok"],
        "Vary: Accept-Encoding": vary(mb) and vary(probe["medium_identity"]),
        "immutable caching": "immutable" in str(mb["cache_control"] or ""),
        "If-None-Match exact -> 304": probe.get("inm_exact", {}).get("status") == 304,
        "If-None-Match W/ -> 304": probe.get("inm_weak", {}).get("status") == 304,
        "If-None-Match list -> 304": probe.get("inm_list", {}).get("status") == 304,
        "INM miss beats IMS -> 200": probe.get("inm_mismatch_plus_ims", {}).get("status") == 200,
        "If-Modified-Since -> 304": probe.get("ims", {}).get("status") == 304,
        "Range -> 206": probe["range_single"]["status"] == 206
        and probe["range_single"]["content_range"] == f"bytes 0-99/{large}"
        and probe["range_single"]["len"] == 100,
        "multi-range: multipart 206 or full 200": (
            rm["status"] == 206 and str(rm["content_type"]).startswith("multipart/byteranges")
        )
        or (rm["status"] == 200 and rm["len"] == large),
        "416 with bytes */len": probe["range_unsatisfiable"]["status"] == 416
        and probe["range_unsatisfiable"]["content_range"] == f"bytes */{large}",
        "stale If-Range -> full 200": probe["if_range_stale"]["status"] == 200
        and probe["if_range_stale"]["len"] == large,
        "HEAD = GET without body": probe["head"]["status"] == 200
        and probe["head"]["body_len"] == 0
        and str(probe["head"]["content_length"]) == str(mb["len"]),
        "POST -> 405 + Allow": probe["post"]["status"] == 405
        and "GET" in str(probe["post"]["allow"]),
        "missing -> 404": probe["missing"]["status"] == 404,
        "no traversal": not probe["traversal_leaked"]
        and all(400 <= v["status"] < 500 for v in probe["traversal"].values()),
    }


def report(results: dict[str, Any], peers: list[str]) -> str:
    summary = results.get("summary", {})
    lines = ["# unblank serve: goals as ratios measured in this run", ""]
    lines += ["| goal | measured | target | met |", "|---|---:|---:|---|"]
    for label, measured, target, met in goals(results):
        mark = "-" if met is None else ("yes" if met else "NO")
        lines.append(f"| {label} | {measured} | {target} | {mark} |")
    lines += ["", "## Requests per second (medians)", ""]
    lines += ["| peer | " + " | ".join(SCENARIOS) + " |", "|---|" + "---:|" * len(SCENARIOS)]
    for peer in peers:
        cells = [f"{_rps(summary, peer, s) or 0:.0f}" for s in SCENARIOS]
        lines.append(f"| {peer} | " + " | ".join(cells) + " |")
    sizes = {k: int(v["size"]) for k, v in results["assets"].items()}
    lines += ["", "## Wire behaviour (the harness's probe, judged by RFC 9110)", ""]
    verdicts = {
        peer: probe_verdicts(results["peers"][peer]["probe"], sizes)
        for peer in peers
        if results["peers"].get(peer, {}).get("probe")
    }
    if verdicts:
        checks = list(next(iter(verdicts.values())))
        lines += ["| behaviour | " + " | ".join(verdicts) + " |", "|---|" + "---|" * len(verdicts)]
        for check in checks:
            row = ["ok" if verdicts[p][check] else "**wrong**" for p in verdicts]
            lines.append(f"| {check} | " + " | ".join(row) + " |")
        totals = [f"{sum(v.values())}/{len(v)}" for v in verdicts.values()]
        lines.append("| **correct** | " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--harness",
        type=Path,
        default=DEFAULT_HARNESS,
        help=f"the peer harness's bench_peers.py (default {DEFAULT_HARNESS})",
    )
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "unblank-serve-bench"
    )
    parser.add_argument("--peers", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="1 rep of 3 s per scenario")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    check_tools()
    harness = load_harness(args.harness.resolve())
    work = args.work.resolve()
    urls = prepare(harness, work)
    add_unblank_peers(harness, urls)
    default_peers = [*PYTHON_PEERS, "asgi-memory-ceiling", "nginx", *OURS]
    peers = args.peers.split(",") if args.peers else default_peers
    reps, duration = (1, 3) if args.quick else (args.reps, args.duration)
    out = (args.out or work / "results").resolve()
    harness.main(
        [
            "run", "--work", str(work), "--python", sys.executable, "--peers", ",".join(peers),
            "--reps", str(reps), "--duration", str(duration),
            "--connections", str(args.connections), "--out", str(out),
        ]
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    text = report(results, peers)
    (out / "unblank.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out}/results.md (the harness's tables) and {out}/unblank.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
