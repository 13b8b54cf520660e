"""Memory stays bounded on large files: hashing, copying and compressing stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unblank import Manifest, integrity
from unblank_server import plan, scan
from unblank_server.builder import build

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
    line = "export const value = compute(state, 'constante'); // café ☕ no local import\n"
    with open(src / "bundle.js", "wb") as handle:
        block = line.encode() * (MB // len(line) + 1)
        for _ in range(64):
            handle.write(block[:MB])
        # Nearly every production bundle ends like this: the one reference in it.
        handle.write(b"\n//# sourceMappingURL=bundle.js.map\n")
    (src / "bundle.js.map").write_text('{"version": 3, "sources": [], "mappings": ""}')
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
    assert json.loads("\n".join(summary))["files"] == 3
    assert int(rss) < RSS_LIMIT_MB, f"peak RSS {rss} MB"
    manifest = Manifest.loads((tmp_path / "dist/manifest.json").read_bytes())
    bundle = manifest.asset("bundle.js")
    data = (tmp_path / "dist" / bundle.path).read_bytes()
    assert integrity.verify(data, bundle.integrity)
    assert bundle.size == len(data) and set(bundle.encodings) == {"br", "gzip"}
    map_name = manifest.asset("bundle.js.map").path
    assert data.endswith(f"\n//# sourceMappingURL={map_name}\n".encode())
    assert data.startswith(line.encode())


@pytest.mark.parametrize("chunk", [7, 64, 1000, 1042, 1043])
def test_streamed_rewrite_matches_whole_file_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    body = "var a = 'x';\n" * 50 + "//# sourceMappingURL=old.js.map\n" + "var b = 1;\n" * 30
    # 1043 bytes (7 x 149): with pieces of 7 or 1043 the comment ends the last full piece.
    (src / "app.js").write_text(body + "//# sourceMappingURL=app.js.map")
    (src / "app.js.map").write_text('{"version": 3}')
    (src / "old.js.map").write_text('{"version": 3, "old": true}')
    whole = build(src, tmp_path / "whole")
    monkeypatch.setattr(scan, "_WHOLE_TEXT_LIMIT", 10)
    monkeypatch.setattr(scan, "_CHUNK", chunk)
    monkeypatch.setattr(scan, "_OVERLAP", 48)
    monkeypatch.setattr(plan, "_CHUNK", chunk)
    streamed = build(src, tmp_path / "streamed")
    one = Manifest.loads((tmp_path / "whole/manifest.json").read_bytes())
    two = Manifest.loads((tmp_path / "streamed/manifest.json").read_bytes())
    assert one.assets == two.assets
    app = one.asset("app.js").path
    assert (tmp_path / "whole" / app).read_bytes() == (tmp_path / "streamed" / app).read_bytes()
    assert whole.files == streamed.files == 3
