"""The rollout's counts, shared by every backend process on a machine: SQLite in DIST.

``DIST/.unblank/rollout.sqlite3`` (WAL, so readers never wait for the writer)
holds two tables:

- ``counts``: page views and incidents, keyed by ``(rollout, generation,
  kind, cause)``. ``rollout`` is the canary generation that was running when
  the event was counted (``''`` when none), so "the stable generation's
  counts since the canary started" is one ``WHERE`` and needs no time
  buckets; ``kind`` is ``view``, ``incident`` or ``recovered`` (an incident
  the watchdog repaired: the user saw no white screen).
- ``decisions``: every promotion and rollback -- when, by whom, why, and the
  figures behind it.

A page view must not cost a disk write: :meth:`RolloutStore.add` only adds
to a table in memory, and the deltas go to SQLite in one transaction at most
every ``flush_interval`` seconds (and at :meth:`close`). Processes add their
deltas to the stored counts (``INSERT ... ON CONFLICT DO UPDATE SET n = n +
excluded.n``), so none overwrites another's. When the database cannot be
written (a full disk, another process holding it past ``busy_timeout``), the
deltas stay in memory and go with the next flush.

>>> store = RolloutStore(":memory:", clock=lambda: 0.0)
>>> store.add("g2", "g2", "view", n=3)
>>> store.add("g2", "g2", "incident", "app-crash")
>>> store.flush()
True
>>> sorted(store.rows("g2"))
[('g2', 'incident', 'app-crash', 1), ('g2', 'view', '', 3)]
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from unblank._exceptions import RolloutStoreError

__all__ = ["KINDS", "DecisionRecord", "Kind", "RolloutStore"]

Kind = Literal["view", "incident", "recovered"]
KINDS: Final = ("view", "incident", "recovered")
FLUSH_INTERVAL: Final = 1.0  # seconds: a second of counts is all a crash can lose
BUSY_TIMEOUT: Final = 5.0  # seconds a flush waits for another process's transaction
SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS counts (
    rollout TEXT NOT NULL,
    generation TEXT NOT NULL,
    kind TEXT NOT NULL,
    cause TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (rollout, generation, kind, cause)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    canary TEXT NOT NULL,
    stable TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    figures TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_UPSERT: Final = (
    "INSERT INTO counts (rollout, generation, kind, cause, n) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (rollout, generation, kind, cause) DO UPDATE SET n = n + excluded.n"
)

logger = logging.getLogger("unblank.rollout")

Key = tuple[str, str, str, str]  # rollout, generation, kind, cause


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A promotion or rollback as recorded: ``figures`` are :meth:`Decision.figures`."""

    at: str  # RFC 3339
    canary: str
    stable: str
    action: str  # "promote" or "rollback"
    reason: str
    actor: str  # "policy (pid 4242 on web-1)", "alice@ops-1 (unblank rollout abort)"
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "canary": self.canary,
            "stable": self.stable,
            "action": self.action,
            "reason": self.reason,
            "actor": self.actor,
            "figures": dict(self.figures),
        }


class RolloutStore:
    """Counts in memory, flushed to a SQLite file that several processes share.

    ``path``: the database file (``":memory:"`` for tests: nothing shared).
    ``connect``: opens it (the seam for tests that make the database fail).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = FLUSH_INTERVAL,
        busy_timeout: float = BUSY_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        connect: Callable[..., sqlite3.Connection] = sqlite3.connect,
    ) -> None:
        if not 0 <= flush_interval <= 3600:
            raise ValueError(f"flush_interval must be seconds in [0, 3600], not {flush_interval}")
        if not 0 < busy_timeout <= 600:
            raise ValueError(f"busy_timeout must be seconds in (0, 600], not {busy_timeout}")
        self.path = os.fspath(path)
        self.flush_interval = flush_interval
        self.busy_timeout = busy_timeout
        self._clock = clock
        self._connect = connect
        self._lock = threading.RLock()
        self._pending: dict[Key, int] = {}
        self._db: sqlite3.Connection | None = None
        self._flushed_at = clock()
        self._failing = False
        self._timer: threading.Timer | None = None
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_parent(ref))

    def __repr__(self) -> str:
        return f"RolloutStore({self.path!r}, flush_interval={self.flush_interval!r})"

    # -- counting ------------------------------------------------------------

    def add(self, rollout: str, generation: str, kind: Kind, cause: str = "", n: int = 1) -> None:
        """Count ``n`` events (in memory; flushed when the interval has passed)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        key = (rollout, generation, kind, cause)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + n
        if self._clock() - self._flushed_at >= self.flush_interval:
            self.flush()
        else:
            self._flush_later()

    def _flush_later(self) -> None:
        # Traffic may stop: what was counted still reaches the database (and
        # the other processes, and `unblank rollout status`) within the interval.
        with self._lock:
            if self._timer is not None:
                return
            timer = threading.Timer(self.flush_interval, self._timed_flush)
            timer.daemon = True
            self._timer = timer
        timer.start()

    def _timed_flush(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()

    @property
    def pending(self) -> int:
        """Events counted here and not yet in the database."""
        with self._lock:
            return sum(self._pending.values())

    def flush(self) -> bool:
        """Add the counts in memory to the database; False (and kept) when it fails."""
        with self._lock:
            self._flushed_at = self._clock()
            if not self._pending:
                return True
            deltas, self._pending = self._pending, {}
            try:
                with self._transaction() as db:
                    db.executemany(_UPSERT, [(*key, n) for key, n in deltas.items()])
            except RolloutStoreError as exc:
                for key, n in deltas.items():
                    self._pending[key] = self._pending.get(key, 0) + n
                if not self._failing:
                    logger.warning("rollout counts kept in memory for now: %s", exc)
                self._failing = True
                return False
            if self._failing:
                logger.info("rollout counts reach %s again", self.path)
            self._failing = False
            return True

    def rows(self, rollout: str | None = None) -> list[tuple[str, str, str, int]]:
        """``(generation, kind, cause, n)`` counted during ``rollout`` (None: all of
        them, summed), as stored: call :meth:`flush` first to include this process's."""
        with self._transaction(write=False) as db:
            if rollout is None:
                cursor = db.execute(
                    "SELECT generation, kind, cause, SUM(n) FROM counts "
                    "GROUP BY generation, kind, cause"
                )
            else:
                cursor = db.execute(
                    "SELECT generation, kind, cause, n FROM counts WHERE rollout = ?", (rollout,)
                )
            return [(str(g), str(k), str(c), int(n)) for g, k, c, n in cursor]

    # -- decisions and settings ----------------------------------------------------

    def record(self, decision: DecisionRecord) -> None:
        """Keep ``decision`` for ``unblank rollout status``."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO decisions (at, canary, stable, action, reason, actor, figures) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    decision.at,
                    decision.canary,
                    decision.stable,
                    decision.action,
                    decision.reason,
                    decision.actor,
                    json.dumps(decision.figures, sort_keys=True),
                ),
            )

    def decisions(self, limit: int = 20) -> list[DecisionRecord]:
        """The last ``limit`` decisions, oldest first."""
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT at, canary, stable, action, reason, actor, figures FROM decisions "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        found = []
        for at, canary, stable, action, reason, actor, figures in reversed(rows):
            try:
                parsed = json.loads(figures)
            except ValueError:
                parsed = {}
            found.append(
                DecisionRecord(at, canary, stable, action, reason, actor, parsed)
                if isinstance(parsed, dict)
                else DecisionRecord(at, canary, stable, action, reason, actor)
            )
        return found

    def put(self, key: str, value: str) -> None:
        """Remember a setting (the policy the app decides with, for the CLI's status)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def get(self, key: str) -> str | None:
        with self._transaction(write=False) as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Flush what is left and close the database."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- internals ---------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                db = self._open()
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise RolloutStoreError(f"rollout counts in {self.path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise sqlite3.OperationalError(f"cannot create its folder: {exc}") from exc
        db = self._connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if self.path != ":memory:":
                db.execute("PRAGMA journal_mode = WAL")
            # WAL with synchronous=NORMAL: a commit is not an fsync; a power cut
            # may lose the last commits, never corrupt the file.
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error:
            db.close()
            raise
        self._db = db
        return db

    def _after_fork(self) -> None:
        # The parent's connection and pending counts are the parent's: a child that
        # flushed them would count them twice.
        self._lock = threading.RLock()
        self._pending = {}
        self._db = None


def _forget_parent(ref: weakref.ReferenceType[RolloutStore]) -> None:
    store = ref()
    if store is not None:
        store._after_fork()
