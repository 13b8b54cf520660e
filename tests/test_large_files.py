"""Memory stays bounded on large files: hashing, copying and compressing stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unblank import Manifest, integrity

MB = 1 << 20
# The build of 64 MB of JavaScript and 128 MB of binary data must stay far below
# what reading either file whole would take (a 64 MB file read whole and decoded
# costs 128 MB on its own).  The interpreter, brotli's window and the thread
# pool's 1 MiB buffers take ~40-60 MB.
RSS_LIMIT_MB = 90

_MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(proc.stderr)
sys.stdout.write(proc.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
raise SystemExit(proc.returncode)
"""


@pytest.mark.slow
def test_build_memory_is_bounded_on_large_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    line = b"export const value = compute(state, 'constant') + 42; // no local references\n"
    with open(src / "bundle.js", "wb") as handle:
        block = line * (MB // len(line) + 1)
        for _ in range(64):
            handle.write(block[:MB])
    with open(src / "video.mp4", "wb") as handle:
        seed = bytes(range(256)) * 4096
        for i in range(128):
            handle.write(bytes([i]) + seed[1:])
    cmd = [sys.executable, "-m", "unblank_server", "build", str(src), str(tmp_path / "dist")]
    cmd += ["--json", "--brotli-quality", "4", "--gzip-level", "1"]
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    *summary, rss = proc.stdout.strip().splitlines()
    assert json.loads("\n".join(summary))["files"] == 2
    assert int(rss) < RSS_LIMIT_MB, f"peak RSS {rss} MB"
    manifest = Manifest.loads((tmp_path / "dist/manifest.json").read_bytes())
    bundle = manifest.asset("bundle.js")
    assert bundle.size == 64 * MB and set(bundle.encodings) == {"br", "gzip"}
    assert integrity.verify((tmp_path / "dist" / bundle.path).read_bytes(), bundle.integrity)
