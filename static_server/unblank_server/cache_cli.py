"""``unblank cache verify|gc|stats DIR`` and ``unblank fetch ORIGIN DIR``.

The operations side of the SDK's :class:`~unblank.AssetCache`: check every
entry of a cache folder (safe while applications use it: readers verify
every read and writes are atomic), enforce its size, show what it holds, and
warm it with a generation before an app starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from unblank import AssetCache, AssetClient, FetchError, Manifest, ManifestError, Origin
from unblank.client import PrefetchReport, manifest_records
from unblank_server.errors import BadInputError
from unblank_server.serve_cli import parse_size

__all__ = ["add_cache_commands", "cache_command", "fetch_command"]


def add_cache_commands(commands: Any) -> None:
    c = commands.add_parser(
        "cache",
        help="check, trim or show an SDK asset cache folder",
        description="Operate on the folder of an unblank.AssetCache. Every command is "
        "safe while applications use the cache.",
    )
    sub = c.add_subparsers(dest="cache_command", required=True, metavar="COMMAND")
    v = sub.add_parser(
        "verify",
        help="verify every entry against its digest",
        description="Read every entry and check it against the digest it is stored under. "
        "Exit status 1 when a damaged entry was found (with --repair: moved to quarantine/).",
    )
    v.add_argument("dir", type=Path, metavar="DIR", help="the cache folder")
    v.add_argument("--repair", action="store_true", help="quarantine damaged entries")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    g = sub.add_parser(
        "gc",
        help="remove leftovers and enforce a size",
        description="Remove temp files of interrupted writes, old quarantined files and "
        "stale index records; with --max-bytes, evict least recently used entries.",
    )
    g.add_argument("dir", type=Path, metavar="DIR", help="the cache folder")
    g.add_argument("--max-bytes", type=parse_size, default=None, metavar="SIZE", help="e.g. 2G")
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    s = sub.add_parser("stats", help="entries and bytes on disk")
    s.add_argument("dir", type=Path, metavar="DIR", help="the cache folder")
    s.add_argument("--json", action="store_true", help="print the figures as JSON")

    f = commands.add_parser(
        "fetch",
        help="warm a cache folder with every asset of an origin's current generation",
        description="Fetch ORIGIN's manifest and every asset it names into DIR, each verified "
        "against its SRI digest (then mirrors, with retries and a deadline per file).",
    )
    f.add_argument("origin", metavar="ORIGIN", help="base URL of an unblank serve (or its CDN)")
    f.add_argument("dir", type=Path, metavar="DIR", help="the cache folder (created if needed)")
    f.add_argument("--mirror", action="append", default=[], metavar="URL", help="repeatable")
    f.add_argument("--prefix", default="/static", help="URL path of the files (default /static)")
    f.add_argument("--deadline", type=float, default=30.0, help="seconds per file (default 30)")
    f.add_argument("--json", action="store_true", help="print the report as JSON")


def _open(folder: Path, *, create: bool = False) -> AssetCache:
    # Only `fetch` makes a cache: the others refuse a folder that is not one
    # rather than laying out an empty cache in it and reporting it clean.
    if (
        not create
        and not (folder / "index" / "index.jsonl").is_file()
        and not any((folder / "content").glob("sha*"))
    ):
        raise BadInputError(
            f"{str(folder)!r} is not a cache folder (no index/index.jsonl or content/sha*/); "
            "`unblank fetch ORIGIN DIR` makes one"
        )
    return AssetCache(folder, memory_bytes=0)


def _print(data: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        json.dump(data, sys.stdout, default=list)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))


def cache_command(args: argparse.Namespace) -> int:
    cache = _open(args.dir)
    if args.cache_command == "verify":
        report = cache.verify(repair=args.repair)
        lines = [f"checked {report.checked} entries ({report.bytes_checked} bytes): {report.ok} ok"]
        lines += [f"damaged: {path}" for path in report.bad]
        lines += [f"quarantined: {path}" for path in report.quarantined]
        if report.bad and not args.repair:
            lines.append("run again with --repair to move them to quarantine/")
        _print({**asdict(report), "clean": report.clean}, args.json, lines)
        return 0 if report.clean else 1
    if args.cache_command == "gc":
        _pin_current(cache)
        if args.max_bytes is not None:
            cache.max_bytes = args.max_bytes
        gc = cache.gc()
        lines = [
            f"evicted {len(gc.evicted)} entries ({gc.bytes_freed} bytes), "
            f"removed {gc.temp_removed} temp and {gc.quarantine_removed} quarantined files; "
            f"{gc.entries} entries, {gc.bytes_on_disk} bytes left"
        ]
        _print(asdict(gc), args.json, lines)
        return 0
    stats = cache.stats()
    lines = [f"{stats.entries} entries, {stats.bytes_on_disk} bytes on disk"]
    _print({"entries": stats.entries, "bytes_on_disk": stats.bytes_on_disk}, args.json, lines)
    return 0


def _pin_current(cache: AssetCache) -> None:
    """Spare what the manifests clients kept here reference (every app sharing the cache)."""
    keep: list[str] = []
    for record, hit in manifest_records(cache):
        try:
            manifest = Manifest.loads(str(record["manifest"]))
        except (KeyError, ManifestError):
            continue
        keep += [hit.integrity, *(asset.integrity for asset in manifest.assets.values())]
    cache.pin(keep)


def fetch_command(args: argparse.Namespace) -> int:
    cache = _open(args.dir, create=True)
    try:
        origins = [Origin(args.origin, prefix=args.prefix)]
        mirrors = [Origin(url, prefix=args.prefix) for url in args.mirror]
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc

    async def run() -> tuple[str, PrefetchReport]:
        client = AssetClient(origins=origins, mirrors=mirrors, cache=cache, deadline=args.deadline)
        try:
            result = await client.manifest()
            return result.manifest.generation, await client.prefetch()
        finally:
            await client.aclose()

    try:
        generation, report = asyncio.run(run())
    except FetchError as exc:
        raise BadInputError(f"cannot fetch from {args.origin}: {exc}") from exc
    lines = [f"generation {generation}: {len(report.fetched)} assets in {args.dir}"]
    lines += [f"failed: {name}: {error}" for name, error in report.failed.items()]
    data = {
        "generation": generation,
        "fetched": {name: str(source) for name, source in report.fetched.items()},
        "failed": {name: str(error) for name, error in report.failed.items()},
    }
    _print(data, args.json, lines)
    return 1 if report.failed else 0
