"""``unblank rollout DIST status|promote|abort``: the canary of a DIST, by hand.

``status`` shows the stable and canary generations, the page views and
incidents each counted since the canary started (every backend process
adds to ``DIST/.unblank/rollout.sqlite3``), the policy's verdict with its
evidence, and the decisions made so far; ``--json`` prints the same as one
object (:meth:`~unblank.rollout_status.RolloutStatus.to_dict`). ``promote`` makes
the canary the stable generation; ``abort`` rolls it back (its files stay
for the pages still open on it). Both are recorded with who, when, why and
the figures of the moment.

Exit status: 0 done; 2 for what the user must fix (no canary to promote, a
DIST that is not one, a ``canary.json`` that is not valid); 1 when the
counts cannot be read or written.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from unblank import RolloutError, RolloutPolicy, RolloutStoreError
from unblank.canary import CANARY, ENDED, read_pointers
from unblank.guarded import STORE, Rollout
from unblank.rollout_status import (
    NOT_THE_GENERATION,
    GenerationCounts,
    RolloutStatus,
    stored_policy,
)
from unblank.rollout_store import DecisionRecord, RolloutStore
from unblank_server.errors import BadInputError, ServerError

__all__ = [
    "add_rollout_command",
    "format_status",
    "parse_percent",
    "parse_policy",
    "rollout_command",
]


def parse_percent(value: str) -> float:
    """``10%`` or ``10`` -> 10.0; a canary takes more than 0 and less than 100 percent."""
    try:
        number = float(value.strip().removesuffix("%"))
    except ValueError:
        number = float("nan")
    if not 0 < number < 100:  # also refuses NaN and infinity
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a share of browsers above 0% and below 100% (like 10%)"
        )
    return number


def parse_policy(value: str) -> dict[str, float]:
    """``min_page_views=500,allowed_ratio=2`` -> overrides of the rollout policy."""
    fields = set(RolloutPolicy.__dataclass_fields__)
    found: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, text = part.partition("=")
        name = name.strip()
        if not sep or name not in fields:
            raise argparse.ArgumentTypeError(
                f"{part!r}: write NAME=NUMBER with NAME one of {', '.join(sorted(fields))}"
            )
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: {text!r} is not a number") from None
        found[name] = int(number) if name == "min_page_views" and number.is_integer() else number
    return found


def add_rollout_command(commands: Any) -> None:
    r = commands.add_parser(
        "rollout",
        help="the canary of DIST: status, promote, abort",
        description="Show or end the canary `unblank build --canary` published. status: the "
        "counts since it started, the policy's verdict and the decisions so far; promote: make "
        "it the stable generation; abort: roll it back (its files stay for open pages).",
    )
    r.add_argument("dist", type=Path, metavar="DIST", help="an output folder of unblank build")
    actions = r.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
    s = actions.add_parser("status", help="the canary, its counts, the verdict, the decisions")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument(
        "--decisions", type=int, default=10, metavar="N", help="show the last N (default 10)"
    )
    for name, text in (
        ("promote", "make the canary the stable generation"),
        ("abort", "roll the canary back; its files stay for pages still open on it"),
    ):
        a = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        a.add_argument("--reason", default="", help="why, for the record")
        a.add_argument("--json", action="store_true", help="print the decision as JSON")


def rollout_command(args: argparse.Namespace) -> int:
    dist: Path = args.dist
    if not (dist / "manifest.json").is_file():
        raise BadInputError(f"{str(dist)!r} has no manifest.json: not an unblank build output")
    try:
        return _run(args, dist)
    except RolloutStoreError as exc:
        raise ServerError(str(exc)) from exc
    except RolloutError as exc:
        raise BadInputError(str(exc)) from exc


def _run(args: argparse.Namespace, dist: Path) -> int:
    try:
        read_pointers(dist)  # an app serves stable alone past a broken canary.json; we say so
    except RolloutError as exc:
        if args.rollout_command != "abort" or not (dist / CANARY).exists():
            raise
        return _retire_unreadable(dist, exc)
    # The decision is printed here: no stray copy of its log line on stderr.
    quiet = logging.NullHandler()
    logging.getLogger("unblank.rollout").addHandler(quiet)
    store = RolloutStore(dist / STORE)
    # Judge with the policy the app decides with (it saves it), else the defaults.
    policy = stored_policy(store) or RolloutPolicy()
    rollout = Rollout(dist, policy=policy, store=store, check_interval=None)
    try:
        if args.rollout_command == "status":
            status = rollout.status(decisions=max(0, args.decisions))
            if args.json:
                json.dump(status.to_dict(), sys.stdout, indent=2)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(format_status(status, dist))
            return 0
        actor = f"{_user()} (unblank rollout {args.rollout_command})"
        if args.rollout_command == "promote":
            record = rollout.promote(reason=args.reason, actor=actor)
        else:
            record = rollout.abort(reason=args.reason, actor=actor)
        if args.json:
            json.dump(record.to_dict(), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            _print_record(record, sys.stdout)
        return 0
    finally:
        store.close()
        logging.getLogger("unblank.rollout").removeHandler(quiet)


def _retire_unreadable(dist: Path, problem: RolloutError) -> int:
    """``abort`` of a canary.json no one can use: moved aside, stable stays."""
    folder = dist / ENDED
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"unreadable-{stamp}.json"
    (dist / CANARY).replace(target)
    sys.stdout.write(
        f"canary.json could not be used ({problem}); moved to {target}: "
        "every browser gets the stable generation\n"
    )
    return 0


def _user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        name = "unknown"
    return f"{name}@{socket.gethostname()}"


def _print_record(record: DecisionRecord, out: TextIO) -> None:
    figures = record.figures
    if record.action == "promote":
        print(f"promoted generation {record.canary}; it is the stable generation now", file=out)
        print(f"  replacing          {record.stable}", file=out)
    else:
        print(f"rolled back generation {record.canary}; new pages get {record.stable}", file=out)
        print("  its files stay for the pages still open on it", file=out)
    print(
        f"  figures            canary {figures.get('canary_incidents', 0)}/"
        f"{figures.get('canary_page_views', 0)}, stable {figures.get('stable_incidents', 0)}/"
        f"{figures.get('stable_page_views', 0)}, evidence {figures.get('evidence', 0)}",
        file=out,
    )
    print(f"  recorded           {record.at} by {record.actor}", file=out)


def format_status(status: RolloutStatus, dist: Path) -> str:
    """``unblank rollout status`` as text."""
    lines = [f"stable    {status.stable or '(none)'}"]
    canary = status.canary
    if canary is not None:
        started = canary.to_dict()["started"]
        lines.append(
            f"canary    {canary.generation}  {canary.percent:g}% of browsers for "
            f"{_duration(status.elapsed)} (since {started})"
        )
    lines.append(f"state     {status.state}")
    if status.generations:
        title = "since the canary started" if canary else "during the last canary"
        lines += ["", f"counts {title}:", _table(status)]
    if status.verdict is not None:
        policy = status.policy
        lines += [
            "",
            f"verdict   {status.verdict.action}: {status.verdict.reason}",
            f"evidence  {status.verdict.evidence:.3f} (rolled back at {policy.rollback_at:.3f}, "
            f"healthy at {policy.accept_at:.3f} or below)",
            f"policy    allowed_ratio {policy.allowed_ratio:g}, confidence "
            f"{policy.confidence:g}, miss {policy.miss:g}, min_page_views "
            f"{policy.min_page_views}, min_duration {policy.min_duration:g}s, max_duration "
            f"{policy.max_duration:g}s",
        ]
    causes = [g for g in status.generations if g.incidents or g.recovered]
    if causes:
        lines += ["", "incidents by cause:"]
        for counts in causes:
            lines.append(f"  {counts.role:<7} {_causes(counts)}")
    if status.decisions:
        lines += ["", "decisions:"]
        for record in status.decisions:
            lines.append(
                f"  {record.at}  {record.action:<8}  {record.canary}  by {record.actor}: "
                f"{record.reason}"
            )
    if canary is None and status.state == "none":
        lines += ["", f"no canary: publish one with `unblank build SRC {dist} --canary 10%`"]
    return "\n".join(lines) + "\n"


def _causes(counts: GenerationCounts) -> str:
    """``app-crash 4, not-found 2; not weighed: offline 1; recovered: integrity 3``."""
    weighed = {c: n for c, n in counts.incidents.items() if c not in NOT_THE_GENERATION}
    ignored = {c: n for c, n in counts.incidents.items() if c in NOT_THE_GENERATION}
    parts = [", ".join(f"{c} {n}" for c, n in sorted(weighed.items())) or "none"]
    for title, found in (("not weighed", ignored), ("recovered", counts.recovered)):
        if found:
            parts.append(f"{title}: " + ", ".join(f"{c} {n}" for c, n in sorted(found.items())))
    return "; ".join(parts)


def _table(status: RolloutStatus) -> str:
    width = max(len(g.generation) for g in status.generations)
    rows = [f"  {'generation':<{width}}  {'role':<6}  {'page views':>10}  {'incidents':>9}  rate"]
    for g in status.generations:
        counts = g.counts
        rows.append(
            f"  {g.generation:<{width}}  {g.role:<6}  {counts.page_views:>10,}  "
            f"{counts.incidents:>9,}  {counts.rate:.2%}"
        )
    return "\n".join(rows)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
