"""The ``unblank serve`` command's arguments and entry point."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from unblank_server.errors import ConfigError
from unblank_server.serving import SERVERS, run
from unblank_server.settings import MiB, ServeSettings

__all__ = ["add_serve_command", "parse_size", "serve_command"]

_SIZE = re.compile(r"([0-9]+)\s*([KMG]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": MiB, "G": 1 << 30}


def parse_size(value: str) -> int:
    """Bytes from ``512K``, ``128M``, ``1G`` or a plain number.

    >>> parse_size("128M"), parse_size("64KiB"), parse_size("100")
    (134217728, 65536, 100)
    """
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size such as 512K, 128M or 1G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0-65535)")
    return port


def add_serve_command(commands: Any) -> None:
    s = commands.add_parser(
        "serve",
        help="serve DIST CDN-style: immutable caching, br/gzip, ETag/304, Range, guided pages",
        description="Serve what `unblank build` published in DIST: files at PREFIX/<path>, "
        "the manifest at /_unblank/manifest.json, health at /_unblank/health and metrics at "
        "/_unblank/metrics. New generations are picked up while serving.",
    )
    s.add_argument("dist", type=Path, metavar="DIST", help="an output folder of unblank build")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8000, help="port to bind (default 8000)")
    s.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    s.add_argument(
        "--server",
        choices=SERVERS,
        default="uvicorn",
        help="uvicorn (default) or granian (pip install 'unblank[granian]')",
    )
    s.add_argument("--prefix", default="/static", help="URL path of the files (default /static)")
    s.add_argument(
        "--cors-origin",
        default="*",
        help="Access-Control-Allow-Origin of every file (default *); 'none' to send none",
    )
    s.add_argument(
        "--max-in-flight",
        type=int,
        default=1024,
        metavar="N",
        help="answer 503 + Retry-After beyond N requests in flight per worker (default 1024)",
    )
    s.add_argument(
        "--memory",
        type=parse_size,
        default=128 * MiB,
        metavar="SIZE",
        help="memory tier capacity per worker (default 128M; 0 to always read from disk)",
    )
    s.add_argument(
        "--memory-file-limit",
        type=parse_size,
        default=2 * MiB,
        metavar="SIZE",
        help="largest file kept in memory (default 2M); larger files are streamed",
    )
    s.add_argument(
        "--reload-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to look for a new generation (default 1; 0 never)",
    )
    s.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one JSON line per request on stdout (default on)",
    )
    s.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
    )


def serve_command(args: argparse.Namespace) -> int:
    cors = None if args.cors_origin.lower() == "none" else args.cors_origin
    settings = ServeSettings(
        dist=args.dist,
        prefix="" if args.prefix in ("", "/") else args.prefix.rstrip("/"),
        cors_origin=cors,
        max_in_flight=args.max_in_flight,
        memory_bytes=args.memory,
        memory_file_limit=args.memory_file_limit,
        reload_interval=args.reload_interval,
        access_log=args.access_log,
    )
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    run(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        server=args.server,
        log_level=args.log_level,
    )
    return 0
