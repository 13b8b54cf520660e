# Paths are str through the FileSystem seam, and the os calls are what the seam wraps.
# ruff: noqa: PTH118
"""Guarded rollout in an app backend: which generation each browser gets, and the
policy that promotes or rolls back the canary from the white screens it causes.

::

    rollout = Rollout("static-dist")                  # the DIST `unblank build` writes
    shell = Shell(rollout=rollout, base_url="/static/")
    app = Starlette(routes=..., middleware=[Middleware(UnblankMiddleware, rollout=rollout)])

:meth:`Rollout.assign` gives each browser a random id in a cookie and, while
a canary runs, the canary's generation when ``sha256(id + canary)`` falls in
its percent: sticky for the whole canary, with no state kept per browser.
:class:`~unblank.Shell` renders the assigned generation's tags, sets the
cookie and counts a page view; :class:`~unblank.UnblankMiddleware` counts
the watchdog's reports as incidents of the generation they name. Every
``check_interval`` seconds (from the request path) the counts since the
canary started go to :func:`~unblank.rollout.decide`; a rollback or a
promotion is carried out at once (``act=True``), recorded, and logged on
``unblank.rollout`` with the figures behind it.

>>> rollout = Rollout("/nonexistent/dist")
>>> rollout
Rollout('/nonexistent/dist', check_interval=5.0, act=True)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from unblank._exceptions import RolloutError, RolloutStoreError
from unblank._fs import FileSystem, OsFileSystem
from unblank.canary import (
    CANARY,
    CURRENT,
    HISTORY,
    INTERNAL,
    CanaryPointer,
    Pointers,
    abort_canary,
    promote_canary,
    read_pointers,
    read_stable,
)
from unblank.manifest import Manifest, format_time
from unblank.reports import Report
from unblank.rollout import Decision, RolloutPolicy, decide
from unblank.rollout_status import GenerationCounts, RolloutStatus, State, pair, window_of
from unblank.rollout_store import DecisionRecord, Kind, RolloutStore

__all__ = ["ASSIGNMENT_KEY", "Assignment", "Rollout"]

ASSIGNMENT_KEY: Final = "unblank_assignment"  # scope["state"]: one assignment per request
STORE: Final = f"{INTERNAL}/rollout.sqlite3"
COOKIE_AGE: Final = 400 * 24 * 3600  # the most browsers keep a cookie (RFC 6265bis §5.5)
POINTER_CHECK: Final = 1.0  # seconds between looks at DIST's pointers (three stats)
# Outcomes of a report that mean a user looked at a failing page (or its reload);
# "recovered" means the watchdog repaired the page before anything showed.
INCIDENT_OUTCOMES: Final = frozenset({"page", "reloading", None})
UNKNOWN: Final = "unknown"  # reports naming a generation DIST does not hold
_BROWSER_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_COOKIE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

logger = logging.getLogger("unblank.rollout")


@dataclass(frozen=True, slots=True)
class Assignment:
    """The generation a request's shell renders, and the cookie to set (new browsers)."""

    manifest: Manifest
    canary: bool
    set_cookie: str | None = None  # a Set-Cookie value, for a browser seen the first time


class Rollout:
    """The canary of one DIST, as an app backend sees it.

    ``dist``: the folder ``unblank build`` publishes into (pointers are read
    from it, decisions written to it). ``policy``: when the canary is promoted
    or rolled back; a canary's ``canary.json`` may override fields of it.
    ``cookie``: the name of the browser-id cookie. ``check_interval``: seconds
    between evaluations made from the request path (None: only when
    :meth:`evaluate` is called, from a background task for example). ``act``:
    carry out the policy's decisions (False: only log and measure them --
    when another process, or a CI job reading Prometheus, decides).
    ``store``: the shared counts (default ``DIST/.unblank/rollout.sqlite3``);
    ``clock`` (monotonic seconds), ``now`` (wall-clock time) and ``fs`` are
    seams for tests.
    """

    def __init__(
        self,
        dist: str | os.PathLike[str],
        *,
        policy: RolloutPolicy | None = None,
        cookie: str = "unblank_rollout",
        check_interval: float | None = 5.0,
        act: bool = True,
        store: RolloutStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        fs: FileSystem | None = None,
    ) -> None:
        if not _COOKIE_NAME.fullmatch(cookie):
            raise ValueError(f"Rollout cookie {cookie!r}: use 1-64 letters, digits, _ or -")
        if check_interval is not None and not 0 <= check_interval <= 3600:
            raise ValueError(
                f"Rollout check_interval must be seconds in [0, 3600] or None, not "
                f"{check_interval!r}"
            )
        self.dist = os.fspath(dist)
        self.policy = policy or RolloutPolicy()
        self.cookie = cookie
        self.check_interval = check_interval
        self.act = act
        self.store = store or RolloutStore(os.path.join(self.dist, STORE), clock=clock)
        self._clock = clock
        self._now = now
        self._fs = fs or OsFileSystem()
        self._lock = threading.Lock()
        self._evaluating = threading.Lock()  # one evaluation at a time from the request path
        self._evaluation_failing = False  # logged once with its traceback, then quiet
        self._pointers: Pointers | None = None
        self._signature: tuple[object, ...] = ()
        self._checked_at = float("-inf")
        self._evaluated_at = float("-inf")
        self._known: frozenset[str] = frozenset()
        self._policy_saved: str | None = None
        self._judged: tuple[str, str] | None = None  # what act=False last logged
        # Counted by this process since it started (Prometheus sums them over processes).
        self.counted: dict[tuple[str, Kind, str], int] = {}
        self.verdict: Decision | None = None  # the last evaluation's

    def __repr__(self) -> str:
        return f"Rollout({self.dist!r}, check_interval={self.check_interval!r}, act={self.act!r})"

    # -- generations -----------------------------------------------------------

    def pointers(self, *, fresh: bool = False) -> Pointers:
        """DIST's stable and canary generations, looked at every second at most
        (``fresh``: now). Raises :class:`RolloutError` before the first build."""
        now = self._clock()
        current = self._pointers
        if current is not None and not fresh and now - self._checked_at < POINTER_CHECK:
            return current
        self._checked_at = now
        signature = self._stat_pointers()
        if current is not None and signature == self._signature:
            return current
        try:
            found = read_pointers(self.dist, fs=self._fs)
        except RolloutError as exc:
            if signature != self._signature:
                logger.error("%s; serving the stable generation only", exc)
            # A canary that cannot be read is no canary: never take the site down for it.
            found = Pointers(current.stable if current else read_stable(self.dist, fs=self._fs))
        if found.stable is None:
            raise RolloutError(
                f"{self.dist} has no generation yet: run `unblank build SRC {self.dist}`"
            )
        self._known = self._generations(found)
        self._pointers, self._signature = found, signature
        return found

    @property
    def stable(self) -> Manifest:
        """The stable generation's manifest."""
        stable = self.pointers().stable
        if stable is None:  # pointers() never returns one without
            raise RolloutError(f"{self.dist} has no generation yet")
        return stable

    def assign(self, request: Any) -> Assignment:
        """The generation this request's shell renders: the same for one browser for
        the whole canary. The first call for a request counts one page view; later
        calls return the same assignment (kept in ``request.scope["state"]``)."""
        state = _state_of(request)
        if state is None:
            # Without a place to keep it, every helper of one page would draw again.
            raise RolloutError(
                f"Rollout.assign needs an ASGI request (with .scope), not {type(request).__name__}"
            )
        found = state.get(ASSIGNMENT_KEY)
        if isinstance(found, Assignment):
            return found
        pointers = self.pointers()
        stable = pointers.stable
        if stable is None:
            raise RolloutError(f"{self.dist} has no generation yet")
        canary, manifest = pointers.canary, pointers.canary_manifest
        if canary is None or manifest is None:
            assignment = Assignment(stable, canary=False)
        else:
            browser = _cookie_of(request, self.cookie)
            set_cookie = None
            if browser is None:
                browser = secrets.token_urlsafe(16)
                set_cookie = self._cookie_value(browser, secure=_is_https(request))
            takes = canary.takes(browser)
            assignment = Assignment(manifest if takes else stable, takes, set_cookie)
        state[ASSIGNMENT_KEY] = assignment
        self.page_view(assignment.manifest.generation)
        return assignment

    def _cookie_value(self, browser: str, *, secure: bool) -> str:
        value = f"{self.cookie}={browser}; Path=/; Max-Age={COOKIE_AGE}; HttpOnly; SameSite=Lax"
        return value + ("; Secure" if secure else "")

    # -- counting ------------------------------------------------------------------

    def page_view(self, generation: str) -> None:
        """Count one shell served with ``generation``."""
        self._count(generation, "view", "")

    def incident(self, generation: str, cause: str, outcome: str | None = None) -> bool:
        """Count one watchdog report; True when it counts as an incident (the user saw
        a failing page or its reload), False for one the watchdog recovered from."""
        kind: Kind = "recovered" if outcome not in INCIDENT_OUTCOMES else "incident"
        self._count(generation, kind, cause)
        return kind == "incident"

    def report(self, report: Report) -> bool:
        """Count an accepted report (:class:`~unblank.UnblankMiddleware` calls this)."""
        generation = report.fields.get("generation")
        outcome = report.fields.get("outcome")
        return self.incident(
            generation if isinstance(generation, str) else UNKNOWN,
            report.cause,
            outcome if isinstance(outcome, str) else None,
        )

    def _count(self, generation: str, kind: Kind, cause: str) -> None:
        try:
            pointers = self.pointers()
        except RolloutError as exc:
            logger.warning("not counted (%s %s): %s", kind, generation, exc)
            return
        if generation not in self._known:
            generation = UNKNOWN  # report fields are hostile: keep the key space bounded
        window = pointers.canary.generation if pointers.canary is not None else ""
        key = (generation, kind, cause)
        with self._lock:
            self.counted[key] = self.counted.get(key, 0) + 1
        self.store.add(window, generation, kind, cause)
        self._tick(pointers)

    def _tick(self, pointers: Pointers) -> None:
        interval = self.check_interval
        if interval is None or pointers.canary is None:
            return
        now = self._clock()
        if now - self._evaluated_at < interval:
            return
        if not self._evaluating.acquire(blocking=False):
            return  # another thread is at it
        try:
            self._evaluated_at = now
            self.evaluate()
            if self._evaluation_failing:
                logger.warning("evaluating the canary of %s works again", self.dist)
                self._evaluation_failing = False
        except Exception:  # a failed evaluation must never fail the request that ran it
            if not self._evaluation_failing:
                logger.exception(
                    "evaluating the canary of %s failed (logged once until it works again; "
                    "no rollback or promotion happens meanwhile)",
                    self.dist,
                )
                self._evaluation_failing = True
        finally:
            self._evaluating.release()

    # -- deciding ------------------------------------------------------------------

    def evaluate(self) -> Decision | None:
        """Run the policy on the counts since the canary started and, with ``act``,
        carry out a promotion or rollback. None when no canary runs."""
        self._evaluated_at = self._clock()
        pointers = self.pointers(fresh=True)
        canary = pointers.canary
        if canary is None or pointers.stable is None:
            self.verdict = None
            return None
        self.store.flush()
        stable_counts, canary_counts = pair(self._window(pointers, canary.generation))
        policy = canary.apply(self.policy)
        self._save_policy()
        decision = decide(
            stable_counts.counts,
            canary_counts.counts,
            elapsed=self._elapsed(canary),
            policy=policy,
        )
        self.verdict = decision
        if decision.action == "watch":
            return decision
        if not self.act:
            said = (canary.generation, decision.action)
            if self._judged != said:  # once, not at every evaluation
                self._judged = said
                logger.warning(
                    "canary %s should be %s (act=False: left to others): %s",
                    canary.generation,
                    "promoted" if decision.action == "promote" else "rolled back",
                    decision.reason,
                    extra={"rollout": decision.figures()},
                )
            return decision
        try:
            self._end(pointers, decision.action, decision.reason, _actor("policy"), decision)
        except RolloutError as exc:  # another process ended it first, or DIST is read-only
            logger.warning("canary %s not ended here: %s", canary.generation, exc)
        return decision

    def promote(self, *, reason: str = "", actor: str | None = None) -> DecisionRecord:
        """Promote the running canary now (by hand); recorded with the current figures."""
        return self._by_hand("promote", reason or "promoted by hand", actor)

    def abort(self, *, reason: str = "", actor: str | None = None) -> DecisionRecord:
        """Roll the running canary back now (by hand); its files stay."""
        return self._by_hand("rollback", reason or "aborted by hand", actor)

    def _by_hand(
        self, action: Literal["promote", "rollback"], reason: str, actor: str | None
    ) -> DecisionRecord:
        pointers = self.pointers(fresh=True)
        if pointers.canary is None:
            raise RolloutError(f"no canary is running in {self.dist}")
        self.store.flush()
        stable, canary = pair(self._window(pointers, pointers.canary.generation))
        decision = decide(
            stable.counts,
            canary.counts,
            elapsed=self._elapsed(pointers.canary),
            policy=pointers.canary.apply(self.policy),
        )
        return self._end(pointers, action, reason, actor or _actor("by hand"), decision)

    def _end(
        self,
        pointers: Pointers,
        action: Literal["promote", "rollback"],
        reason: str,
        actor: str,
        decision: Decision,
    ) -> DecisionRecord:
        canary, stable = pointers.canary, pointers.stable
        if canary is None or stable is None:
            raise RolloutError(f"no canary is running in {self.dist}")
        change = promote_canary if action == "promote" else abort_canary
        change(self.dist, generation=canary.generation, fs=self._fs)
        figures: dict[str, Any] = {
            k: v for k, v in decision.figures().items() if k not in ("action", "reason")
        }
        figures.update(
            verdict=decision.action,  # the policy's, also when a person decided
            percent=canary.percent,
            elapsed=round(self._elapsed(canary), 1),
        )
        record = DecisionRecord(
            at=format_time(self._now()),
            canary=canary.generation,
            stable=stable.generation,
            action=action,
            reason=reason,
            actor=actor,
            figures=figures,
        )
        try:
            self.store.record(record)
        except RolloutStoreError as exc:
            logger.error(
                "the %s of %s is done but not recorded: %s", action, canary.generation, exc
            )
        text = " ".join(f"{k}={v}" for k, v in figures.items())
        verb = "promoted" if action == "promote" else "rolled back"
        logger.log(
            logging.WARNING if action == "rollback" else logging.INFO,
            "canary %s %s by %s: %s (%s)",
            canary.generation,
            verb,
            actor,
            reason,
            text,
            extra={"rollout": record.to_dict()},
        )
        self.pointers(fresh=True)
        return record

    # -- looking -------------------------------------------------------------------

    def status(self, *, decisions: int = 20) -> RolloutStatus:
        """The canary, the counts of its window, the policy's verdict, the decisions."""
        pointers = self.pointers(fresh=True)
        self.store.flush()
        history = tuple(self.store.decisions(decisions))
        canary = pointers.canary
        stable = pointers.stable.generation if pointers.stable is not None else None
        if canary is not None:
            policy = canary.apply(self.policy)
            window = self._window(pointers, canary.generation)
            stable_counts, canary_counts = pair(window)
            elapsed = self._elapsed(canary)
            verdict = decide(
                stable_counts.counts, canary_counts.counts, elapsed=elapsed, policy=policy
            )
            return RolloutStatus(
                "watching", stable, canary, elapsed, policy, window, verdict, history
            )
        state: State = "none"
        ended: tuple[GenerationCounts, ...] = ()
        if history:
            last = history[-1]
            state = "promoted" if last.action == "promote" else "rolled back"
            ended = self._window(pointers, last.canary, canary=last.canary, stable=last.stable)
        return RolloutStatus(state, stable, None, 0.0, self.policy, ended, None, history)

    def close(self) -> None:
        """Flush the counts (call at shutdown; a lost second of counts is harmless)."""
        self.store.close()

    # -- internals -------------------------------------------------------------------

    def _window(
        self,
        pointers: Pointers,
        rollout: str,
        *,
        canary: str | None = None,
        stable: str | None = None,
    ) -> tuple[GenerationCounts, ...]:
        """Counts per generation during ``rollout``: stable first, canary second."""
        canary = canary or (pointers.canary.generation if pointers.canary else None)
        stable = stable or (pointers.stable.generation if pointers.stable else None)
        return window_of(self.store.rows(rollout), stable=stable, canary=canary)

    def _elapsed(self, canary: CanaryPointer) -> float:
        return max(0.0, (self._now() - canary.started).total_seconds())

    def _save_policy(self) -> None:
        """Let ``unblank rollout status`` judge with the policy this app uses."""
        text = json.dumps(dataclasses.asdict(self.policy), sort_keys=True)
        if text != self._policy_saved:
            self.store.put("policy", text)
            self._policy_saved = text

    def _stat_pointers(self) -> tuple[object, ...]:
        parts: list[object] = []
        for name in (CURRENT, CANARY, HISTORY):
            try:
                st = self._fs.stat(os.path.join(self.dist, name))
            except OSError:
                parts.append(None)
            else:
                parts.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(parts)

    def _generations(self, pointers: Pointers) -> frozenset[str]:
        """The generations DIST holds: reports naming any other count as unknown."""
        names = {m.generation for m in (pointers.stable, pointers.canary_manifest) if m}
        try:
            listed = self._fs.listdir(os.path.join(self.dist, HISTORY))
        except OSError:
            listed = []
        names.update(n.removesuffix(".json") for n in listed if n.endswith(".json"))
        return frozenset(names)


def _actor(who: str) -> str:
    return f"{who} (pid {os.getpid()} on {socket.gethostname()})"


def _state_of(request: Any) -> dict[str, Any] | None:
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    return state if isinstance(state, dict) else None


def _cookie_of(request: Any, name: str) -> str | None:
    cookies = getattr(request, "cookies", None)
    value = cookies.get(name) if isinstance(cookies, Mapping) else None
    return value if isinstance(value, str) and _BROWSER_ID.fullmatch(value) else None


def _is_https(request: Any) -> bool:
    scope = getattr(request, "scope", None)
    return isinstance(scope, dict) and scope.get("scheme") in ("https", "wss")
