"""The ``unblank`` command line.

    unblank build SRC DIST   fingerprint, hash, precompress and publish a generation
    unblank gc DIST          remove files no retained generation needs
    unblank pages export OUT write the guided pages as static HTML, with nginx snippets
    unblank serve DIST       serve DIST CDN-style (uvicorn or granian)
    unblank cache verify|gc|stats DIR   operate an SDK asset cache folder
    unblank fetch ORIGIN DIR warm an asset cache with an origin's generation
    unblank doctor URL       load a deployed page as a browser would; report white-screen risks
    unblank rollout DIST status|promote|abort   the canary `build --canary 10%` published

Exit status: 0 on success, 2 for input the user must fix (and usage errors),
1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from unblank import Manifest, UnblankError, __version__
from unblank.integrity import ALGORITHMS
from unblank_pages import Brand, PageRenderer
from unblank_pages.export import export_pages
from unblank_server.builder import BuildOptions, BuildResult, build, gc
from unblank_server.cache_cli import add_cache_commands, cache_command, fetch_command
from unblank_server.compress import CompressionSettings
from unblank_server.doctor_cli import add_doctor_command, doctor_command
from unblank_server.errors import BadInputError, ConfigError, ServerError
from unblank_server.generations import Retention
from unblank_server.progress import NullProgress, Progress, TerminalProgress
from unblank_server.rollout_cli import (
    add_rollout_command,
    parse_percent,
    parse_policy,
    rollout_command,
)
from unblank_server.serve_cli import add_serve_command, serve_command

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2  # the convention of argparse and of most Unix tools for usage errors
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return _build(args)
        if args.command == "pages":
            return _pages_export(args)
        if args.command == "serve":
            return serve_command(args)
        if args.command == "cache":
            return cache_command(args)
        if args.command == "fetch":
            return fetch_command(args)
        if args.command == "doctor":
            return doctor_command(args)
        if args.command == "rollout":
            return rollout_command(args)
        return _gc(args)
    except (BadInputError, ConfigError) as exc:
        return _fail(args, "error", str(exc), EXIT_BAD_INPUT)
    except ServerError as exc:
        return _fail(args, "failed", str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        if args.command in ("serve", "cache", "fetch", "rollout"):
            return EXIT_INTERRUPTED
        if args.command == "pages":
            return _fail(
                args, "interrupted", "OUT may be incomplete: run it again", EXIT_INTERRUPTED
            )
        served = _served_generation(args.dist)
        _fail(args, "interrupted", f"DIST serves {served}", EXIT_INTERRUPTED)
        # Worker threads may still be inside brotli: leave without waiting for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def _fail(args: argparse.Namespace, kind: str, message: str, status: int) -> int:
    separator = "; " if kind == "interrupted" else ": "
    print(f"unblank {args.command}: {kind}{separator}{message}", file=sys.stderr)
    if getattr(args, "json", False):
        json.dump({"error": message, "exit_status": status}, sys.stdout)
        sys.stdout.write("\n")
    return status


def _served_generation(dist: Path) -> str:
    try:
        manifest = Manifest.loads((dist / "manifest.json").read_bytes())
    except (OSError, UnblankError):
        return "no generation"
    return f"generation {manifest.generation}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unblank",
        description="Deliver front-end assets so that no user ever looks at a blank screen.",
    )
    parser.add_argument("--version", action="version", version=f"unblank {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = commands.add_parser(
        "build",
        help="fingerprint, hash, precompress and publish SRC as a new generation in DIST",
        description="Fingerprint every file of SRC (app.js -> app.<hash>.js), rewrite the "
        "references of CSS, ES modules and HTML pages to the new names, compute SRI digests, "
        "precompress with brotli and gzip, and publish a new generation into DIST atomically.",
    )
    b.add_argument("src", type=Path, metavar="SRC", help="folder of front-end files")
    b.add_argument("dist", type=Path, metavar="DIST", help="output folder (created if needed)")
    b.add_argument(
        "--sri",
        type=_algorithms,
        default=("sha384",),
        metavar="ALGS",
        help="comma-separated SRI algorithms: sha256, sha384, sha512 (default sha384)",
    )
    b.add_argument(
        "--allow-missing",
        action="store_true",
        help="warn about references to missing files instead of failing",
    )
    b.add_argument(
        "--brotli-quality",
        type=int,
        default=11,
        metavar="Q",
        help="brotli quality 0-11 (default 11)",
    )
    b.add_argument(
        "--gzip-level", type=int, default=9, metavar="L", help="gzip level 1-9 (default 9)"
    )
    b.add_argument(
        "--jobs",
        type=_positive,
        default=None,
        metavar="N",
        help="worker threads (default: one per CPU core)",
    )
    b.add_argument(
        "--canary",
        type=parse_percent,
        default=None,
        metavar="PERCENT",
        help="publish as a canary for PERCENT of browsers (10%%) beside the stable generation; "
        "the app's rollout policy promotes or rolls it back (unblank rollout DIST ...)",
    )
    b.add_argument(
        "--canary-policy",
        type=parse_policy,
        default={},
        metavar="NAME=N,...",
        help="override the rollout policy for this canary: allowed_ratio, confidence, miss, "
        "min_page_views, min_duration, max_duration (seconds)",
    )
    _retention_arguments(b)
    _output_arguments(b)

    g = commands.add_parser(
        "gc",
        help="remove files that no retained generation of DIST needs",
        description="Delete files of generations older than the retention policy, and "
        "leftovers of interrupted builds. Every build does this too.",
    )
    g.add_argument("dist", type=Path, metavar="DIST", help="an output folder of unblank build")
    g.add_argument("--dry-run", action="store_true", help="list what would be removed")
    _retention_arguments(g)
    _output_arguments(g)

    p = commands.add_parser("pages", help="the guided pages for the edge (nginx, CDNs)")
    pages = p.add_subparsers(dest="pages_command", required=True, metavar="COMMAND")
    e = pages.add_parser(
        "export",
        help="write every guided page as static HTML, with nginx snippets",
        description="Write OUT/<locale>/<reason>.html for every page and locale, "
        "OUT/<reason>.html in the default locale, and OUT/nginx/unblank-pages-http.conf "
        "(include in http {}) and unblank-pages-server.conf (include in server {}), so that "
        "nginx shows our page, with the right status, when the app behind it is down.",
    )
    e.add_argument("out", type=Path, metavar="OUT", help="output folder (created if needed)")
    e.add_argument("--brand-name", default="", metavar="NAME", help="name shown on every page")
    e.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")

    add_serve_command(commands)
    add_cache_commands(commands)
    add_doctor_command(commands)
    add_rollout_command(commands)
    return parser


def _retention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep",
        type=_positive,
        default=5,
        metavar="N",
        help="keep the files of the last N generations (default 5)",
    )
    parser.add_argument(
        "--keep-days",
        type=_non_negative_float,
        default=7.0,
        metavar="DAYS",
        help="and of every generation current within DAYS days (default 7)",
    )


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress, summary or warnings; only errors"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON summary on stdout (no other output)"
    )


def _algorithms(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in ALGORITHMS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{value!r}: choose one or more of {', '.join(ALGORITHMS)}, comma-separated"
        )
    return names


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 36_500:  # also refuses NaN and infinity
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days from 0 to 36500")
    return number


def _build(args: argparse.Namespace) -> int:
    try:
        options = BuildOptions(
            sri=args.sri,
            allow_missing=args.allow_missing,
            retention=Retention(keep=args.keep, keep_days=args.keep_days),
            compression=CompressionSettings(
                brotli_quality=args.brotli_quality, gzip_level=args.gzip_level
            ),
            canary=args.canary,
            canary_policy=args.canary_policy,
            **({"jobs": args.jobs} if args.jobs else {}),
        )
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc
    progress: Progress
    if not args.quiet and not args.json and sys.stderr.isatty():
        progress = TerminalProgress(sys.stderr)
    elif args.quiet or args.json:
        progress = NullProgress()
    else:
        progress = _PlainWarnings(sys.stderr)
    result = build(args.src, args.dist, options, progress=progress)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        _print_summary(result, sys.stdout)
    return EXIT_OK


class _PlainWarnings(NullProgress):
    """No bar when stderr is not a terminal (CI logs), but warnings as they come."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def warn(self, message: str) -> None:
        super().warn(message)
        print(f"warning: {message}", file=self._stream)


def _print_summary(result: BuildResult, out: TextIO) -> None:
    if result.published and result.canary is not None:
        print(
            f"published generation {result.generation} as a canary for {result.canary:g}% "
            "of browsers",
            file=out,
        )
        print(f"  stable stays         {result.previous_generation}", file=out)
        print(f"  watch it with        unblank rollout {result.dist} status", file=out)
    elif result.published:
        print(f"published generation {result.generation}", file=out)
        if result.previous_generation:
            print(f"  replacing            {result.previous_generation}", file=out)
    else:
        print(f"unchanged: generation {result.generation} already holds this input", file=out)
    print(
        f"  files      {result.files:>9}  ({result.fingerprinted} fingerprinted, "
        f"{result.kept_names} kept their names, {result.reused} already in DIST)",
        file=out,
    )
    identity = result.bytes["identity"]
    print(f"  identity   {_mb(identity):>9}  (all files as they are)", file=out)
    for coding in ("br", "gzip"):
        size = result.bytes[coding]
        share = size / identity if identity else 1.0
        print(
            f"  {coding:<10} {_mb(size):>9}  ({share:.0%}: all files, {coding} where smaller)",
            file=out,
        )
    if result.removed_files:
        print(
            f"  removed    {result.removed_files:>9}  files no retained generation needs", file=out
        )
    if result.warnings:
        print(f"  warnings   {len(result.warnings):>9}", file=out)
    print(f"  time       {result.seconds:>8.2f}s  -> {result.dist}", file=out)


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _gc(args: argparse.Namespace) -> int:
    try:
        retention = Retention(keep=args.keep, keep_days=args.keep_days)
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc
    generations, files, freed = gc(args.dist, retention, dry_run=args.dry_run)
    if args.json:
        summary = {
            "removed_generations": generations,
            "removed_files": files,
            "freed_bytes": freed,
            "dry_run": args.dry_run,
        }
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        verb = "would remove" if args.dry_run else "removed"
        print(
            f"{verb} {len(files)} files ({_mb(freed)}) of {len(generations)} generations",
            file=sys.stdout,
        )
        for name in files:
            print(f"  {name}", file=sys.stdout)
    return EXIT_OK


def _pages_export(args: argparse.Namespace) -> int:
    try:
        written = export_pages(args.out, renderer=PageRenderer(brand=Brand(name=args.brand_name)))
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc
    except OSError as exc:
        raise BadInputError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    if not args.quiet:
        out = args.out.resolve()
        print(f"wrote {len(written)} files to {out}", file=sys.stdout)
        print(f"  include {out}/nginx/unblank-pages-http.conf   in http {{}}", file=sys.stdout)
        print(f"  include {out}/nginx/unblank-pages-server.conf in server {{}}", file=sys.stdout)
    return EXIT_OK
