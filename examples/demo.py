"""The demo: the example app, its asset origin and a mirror, and a chaos panel to break them.

    make demo                    (the README's first command)
    .venv/bin/python -m examples.demo [--port 8000] [--dir .cache/demo]

It publishes the example front end (``examples/loan_app/frontend``, a loan
application) with ``unblank build`` into ``.cache/demo/dist``, then starts,
in this one process, on 127.0.0.1:

- the asset origin and a mirror: two ``unblank serve`` apps of that DIST;
- the app backend on port 8000: the example's Starlette app with the SDK's
  shell and middleware, reading the manifest through an AssetClient (whose
  verified cache is the watchdog's last mirror, ``/_unblank/mirror/``);
- the chaos panel at ``/_demo/``: a switch for every fault of the browser
  fault matrix, "Deploy new version", "Reset all", and the incidents the
  watchdog reported.

It prints the URLs and one line per switch, then the incidents as browsers
report them. Ctrl-C stops it (exit status 130). ``--port 0`` takes a free
port (the tests' way).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from examples.chaos.releases import DemoError
from examples.chaos.servers import PortTaken
from examples.chaos.stack import DEFAULT_PORT, Demo
from examples.chaos.switches import SWITCHES

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_DIR: Final = ROOT / ".cache" / "demo"
SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, a closed terminal


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo",
        description="The unblank demo: a loan app, its asset servers and a chaos panel.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the app's port on 127.0.0.1 (default {DEFAULT_PORT}; 0: a free one)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="the demo's folder, emptied at every start (default .cache/demo)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: a port is from 0 to 65535")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s  %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("demo").setLevel(logging.INFO)
    try:
        return asyncio.run(run(port=args.port, root=args.dir))
    except PortTaken as exc:
        print(
            f"demo: {exc}: is the demo already running? Stop what uses the port, or choose "
            f"another one:\n  .venv/bin/python -m examples.demo --port 8080\n"
            f"  make demo DEMO_ARGS='--port 8080'",
            file=sys.stderr,
        )
        return 2
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the servers were up
        return 130


async def run(*, port: int, root: Path) -> int:
    """Run the demo until SIGINT or SIGTERM; returns 128 + the signal's number."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(number: int) -> None:
        received.append(number)
        stop.set()

    for number in SIGNALS:
        loop.add_signal_handler(number, on_signal, number)
    try:
        async with Demo(root=root, port=port) as demo:
            print_banner(demo)
            await stop.wait()
            print("\nStopping the demo…", flush=True)
    finally:
        for number in SIGNALS:
            loop.remove_signal_handler(number)
    print("The demo stopped.", flush=True)
    return 128 + received[0]


def print_banner(demo: Demo) -> None:
    urls, current = demo.urls, demo.releases.current
    dist = _shown(demo.releases.dist)
    switches = "\n".join(f"  {name:<16} {s.short}" for name, s in SWITCHES.items())
    print(
        f"""
unblank demo: Northwind Loans, a loan application that never shows a blank page.

  app           {urls["app"]}
  chaos panel   {urls["panel"]}
  asset origin  {urls["origin"]}  (unblank serve of {dist})
  mirror        {urls["mirror"]}  (a second unblank serve of the same DIST)
  published     version {current.version}, generation {current.generation}

Open the app, then break it from the chaos panel:
{switches}
  {"deploy":<16} publish the next version while pages are open; they keep working
  {"reset":<16} every switch off

The panel's API, for scripts:
  curl -X POST -H 'content-type: application/json' -d '{{"on": true}}' \\
       {urls["app"]}/_demo/api/switches/origin-down

Incidents reported by browsers appear below. Ctrl-C stops the demo.
""",
        flush=True,
    )


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:  # another drive
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
