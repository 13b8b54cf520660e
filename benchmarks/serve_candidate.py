"""unblank as the candidate of the peer harness (``../shared/bench/peers``).

The harness starts this module under the same uvicorn command as every other
ASGI peer (``--factory benchmarks.serve_candidate:app``), with
``BENCH_SOURCE_DIR`` holding the benchmark files under their plain names.
The factory runs the real ``unblank build`` on them (once per source content,
cached in ``UNBLANK_BENCH_DIST``) and serves the result, so unblank is measured
on its own fingerprinted names, variants and headers.

``app_streaming`` keeps only files up to 64 KiB in memory, to measure the
streaming path on the 1 MiB file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from unblank_server.app import StaticApp, create_app
from unblank_server.builder import BuildOptions, build

__all__ = ["app", "app_streaming", "build_dist", "urls"]

_NAMES = {"small": "app.js", "medium": "vendor.js", "large": "blob.bin"}


def build_dist(source: Path, dist: Path) -> None:
    """Build SOURCE into DIST with the defaults of ``unblank build``."""
    build(source, dist, BuildOptions())


def urls(dist: Path, prefix: str = "/static") -> dict[str, str]:
    """The harness's three URLs, as unblank published them."""
    manifest = json.loads((dist / "manifest.json").read_bytes())
    return {key: f"{prefix}/{manifest['assets'][name]['path']}" for key, name in _NAMES.items()}


def _app(memory_file_limit: int) -> StaticApp:
    source = Path(os.environ["BENCH_SOURCE_DIR"])
    default = Path(tempfile.gettempdir()) / "unblank-bench-dist"
    dist = Path(os.environ.get("UNBLANK_BENCH_DIST", default))
    if not (dist / "manifest.json").exists():
        build_dist(source, dist)
    return create_app(
        dist,
        prefix=os.environ.get("BENCH_URL_PREFIX", "/static"),
        memory_file_limit=memory_file_limit,
    )


def app() -> StaticApp:
    """The app with its defaults (files up to 2 MiB served from memory)."""
    return _app(2 << 20)


def app_streaming() -> StaticApp:
    """Files above 64 KiB streamed from disk (ASGI pathsend where the server has it)."""
    return _app(64 << 10)
