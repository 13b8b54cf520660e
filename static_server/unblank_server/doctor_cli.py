"""The ``unblank doctor URL`` command's arguments, entry point and output.

Text output is one line per check — verdict, check, what was found, what to
change — then the URLs concerned, then the overall result. ``--json`` prints
the report (:meth:`~unblank_server.doctor.Report.to_dict`) for CI. Exit
status: 0 when nothing FAILs, 1 when a check FAILs (or WARNs, with
``--strict``), 2 when there is no page to examine, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Final, TextIO

import httpx

from unblank_server.doctor import Doctor, DoctorSettings, Report
from unblank_server.doctor_evidence import Verdict

__all__ = ["add_doctor_command", "doctor_command", "print_report"]

EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it
_URLS_SHOWN: Final = 5
_INDENT: Final = " " * 6


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number <= 300:  # also refuses NaN and infinity
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds from 0 to 300")
    return number


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number from 1 to 1000")
    return number


def add_doctor_command(commands: Any) -> None:
    d = commands.add_parser(
        "doctor",
        help="load a deployed page as a browser would and report white-screen risks",
        description="GET the page with a browser's headers, fetch every script and stylesheet "
        "it loads once per coding (identity, gzip, br), and check what leaves users with a "
        "blank page: integrity and crossorigin, integrity against the bytes served, caching "
        "of the shell and of fingerprinted files, Vary, compression, CORS, an HTML 200 for a "
        "missing file, guided error pages, and the files of earlier generations. Exit status "
        "0 when nothing fails, 1 when a check fails, 2 when there is no page to examine.",
    )
    d.add_argument("url", metavar="URL", help="the page users open, e.g. https://app.example.com/")
    d.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="per request: to connect, and between bytes (default 10)",
    )
    d.add_argument(
        "--max-assets",
        type=_count,
        default=40,
        metavar="N",
        help="check at most N assets (default 40)",
    )
    d.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    d.add_argument(
        "--json", action="store_true", help="print the report as JSON on stdout (for CI)"
    )


def doctor_command(args: argparse.Namespace) -> int:
    # A whole fetch may take a few read timeouts: a large bundle on a slow link.
    settings = DoctorSettings(max_assets=args.max_assets, time_limit=max(60.0, args.timeout * 3))
    timeout = httpx.Timeout(args.timeout)
    try:
        with httpx.Client(
            timeout=timeout,
            follow_redirects=False,  # the doctor follows them itself, http(s) only
            limits=httpx.Limits(max_connections=settings.workers * 2),
        ) as client:
            report = Doctor(client=client, settings=settings).examine(args.url)
    except KeyboardInterrupt:
        print("unblank doctor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        json.dump(report.to_dict(strict=args.strict), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report, sys.stdout, strict=args.strict)
    return report.exit_status(strict=args.strict)


def print_report(report: Report, out: TextIO, *, strict: bool = False) -> None:
    """The report as text: a line per check, the URLs concerned under it."""
    assets = len(report.assets)
    print(f"unblank doctor {report.page_url}", file=out)
    print(f"  {assets} assets checked, {report.requests} requests\n", file=out)
    width = max(len(check.id) for check in report.checks)
    for check in report.checks:
        line = f"{check.verdict.value.upper():<4}  {check.id:<{width}}  {check.details}"
        if check.advice:
            line += f" -> {check.advice}"
        print(line, file=out)
        if check.verdict in (Verdict.WARN, Verdict.FAIL):
            for url in check.urls[:_URLS_SHOWN]:
                print(f"{_INDENT}{url}", file=out)
            if len(check.urls) > _URLS_SHOWN:
                print(f"{_INDENT}... and {len(check.urls) - _URLS_SHOWN} more", file=out)
    counts = ", ".join(
        f"{report.count(verdict)} {verdict.value}"
        for verdict in (Verdict.FAIL, Verdict.WARN, Verdict.PASS, Verdict.SKIP)
    )
    result = report.result(strict=strict).value.upper()
    print(f"\nresult: {result} ({counts})", file=out)
