"""The demo: build the example front end and show what unblank published.

    make demo            (or: .venv/bin/python examples/demo.py [DIST])

It runs ``unblank build examples/demo_assets examples/demo_dist`` and prints
the manifest: every logical name with its fingerprinted path, its SRI digest
and the sizes of its brotli and gzip variants.  Run it twice: the second build
finds nothing changed and publishes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from unblank import Manifest
from unblank_server.builder import build
from unblank_server.progress import NullProgress, Progress, TerminalProgress

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "demo_assets"


def main(argv: list[str]) -> int:
    dist = Path(argv[1]) if len(argv) > 1 else HERE / "demo_dist"
    progress: Progress = TerminalProgress() if sys.stderr.isatty() else NullProgress()
    print(f"unblank build {SOURCE.relative_to(HERE.parent)} {dist}\n")
    result = build(SOURCE, dist, progress=progress)
    manifest = Manifest.loads((dist / "manifest.json").read_bytes())
    state = "published" if result.published else "unchanged, still"
    print(f"generation {manifest.generation} ({state}), {result.seconds:.2f} s\n")
    print(
        f"{'logical name':<20} {'published as':<34} {'bytes':>7} {'br':>6} {'gzip':>6}  integrity"
    )
    for name, asset in sorted(manifest.assets.items()):
        br = asset.encodings.get("br")
        gz = asset.encodings.get("gzip")
        print(
            f"{name:<20} {asset.path:<34} {asset.size:>7} {_size(br):>6} {_size(gz):>6}"
            f"  {asset.integrity[:22]}..."
        )
    print("\nReferences were rewritten to the fingerprinted names:")
    for name, marks in (
        ("index.html", ("<link", "<script")),
        ("css/app.css", ("@import", "url(")),
        ("js/main.js", ("import",)),
    ):
        path = manifest.asset(name).path
        print(f"  {path}")
        for line in (dist / path).read_text().splitlines():
            if any(mark in line for mark in marks):
                print(f"      {line.strip()}")
    print(f"\nManifest: {dist / 'manifest.json'}   history: {dist / 'manifests'}/")
    print(f"Serve it CDN-style: .venv/bin/unblank serve {dist}   (then open /_unblank/health)")
    return 0


def _size(value: int | None) -> str:
    return "-" if value is None else str(value)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
