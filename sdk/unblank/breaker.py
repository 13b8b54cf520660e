"""A circuit breaker per origin: stop asking an origin that keeps failing.

States (the classic pattern, with Resilience4j's count-based failure rate)::

    CLOSED --failure rate >= threshold over the last `window` calls
           (at least `minimum_calls` of them)--> OPEN
    OPEN --`cool_down` seconds later, on the next call--> HALF_OPEN (one probe)
    HALF_OPEN --probe succeeds--> CLOSED      --probe fails--> OPEN

Exactly one half-open probe runs at a time; every other caller is told to
skip the origin while it runs.  Unlike pybreaker, no lock is held while a
request runs: :meth:`CircuitBreaker.acquire` and :meth:`CircuitBreaker.record`
take a tiny lock only to read or change the state, so a thousand concurrent
requests to a healthy origin never wait for one another.

>>> now = [0.0]
>>> breaker = CircuitBreaker(BreakerPolicy(window=4, minimum_calls=2), clock=lambda: now[0])
>>> for _ in range(2):
...     breaker.record(breaker.acquire(), ok=False)
>>> breaker.state, breaker.acquire()
(<BreakerState.OPEN: 'open'>, None)
>>> now[0] = 31.0
>>> probe = breaker.acquire()
>>> breaker.state, breaker.acquire()     # a second caller while the probe runs
(<BreakerState.HALF_OPEN: 'half_open'>, None)
>>> breaker.record(probe, ok=True)
>>> breaker.state
<BreakerState.CLOSED: 'closed'>
"""

from __future__ import annotations

import enum
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BreakerPolicy", "BreakerState", "CircuitBreaker", "Permit"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and how long it stays open.

    - ``failure_rate``: the fraction of failed calls (0-1] that opens it.
    - ``window``: how many of the latest calls the rate is measured over.
    - ``minimum_calls``: fewer calls than this in the window never open it
      (two failures out of two calls at start-up are not a trend).
    - ``cool_down``: seconds open before one probe is let through.
    """

    failure_rate: float = 0.5
    window: int = 20
    minimum_calls: int = 5
    cool_down: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.failure_rate, int | float) or not 0 < self.failure_rate <= 1:
            raise ValueError(
                f"BreakerPolicy.failure_rate must be in (0, 1], not {self.failure_rate!r}"
            )
        for name in ("window", "minimum_calls"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"BreakerPolicy.{name} must be an integer >= 1, not {value!r}")
        if self.minimum_calls > self.window:
            raise ValueError(
                f"BreakerPolicy.minimum_calls ({self.minimum_calls}) cannot exceed "
                f"window ({self.window}): the breaker could never open"
            )
        cool = self.cool_down
        if not isinstance(cool, int | float) or not math.isfinite(cool) or cool < 0:
            raise ValueError(f"BreakerPolicy.cool_down must be a finite number >= 0, not {cool!r}")


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to send one request; hand it back through :meth:`CircuitBreaker.record`."""

    probe: bool
    generation: int  # the breaker's state generation when issued: stale outcomes are ignored


Transition = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """The breaker of one origin.  ``on_transition(old, new)`` is called on each change,
    outside the lock."""

    __slots__ = (
        "_clock",
        "_generation",
        "_lock",
        "_on_transition",
        "_opened_at",
        "_outcomes",
        "_probing",
        "_state",
        "policy",
    )

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float],
        on_transition: Transition | None = None,
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._outcomes: deque[bool] = deque(maxlen=self.policy.window)  # True = failed
        self._opened_at = 0.0
        self._probing = False
        self._generation = 0

    def __repr__(self) -> str:
        rate, calls = self.failure_rate(), len(self._outcomes)
        return f"<CircuitBreaker {self._state.value}, {rate:.0%} failed of {calls}>"

    @property
    def state(self) -> BreakerState:
        return self._state

    def failure_rate(self) -> float:
        with self._lock:
            return sum(self._outcomes) / len(self._outcomes) if self._outcomes else 0.0

    def acquire(self) -> Permit | None:
        """A permit to send a request now, or ``None``: skip this origin."""
        with self._lock:
            changed = None
            if self._state is BreakerState.OPEN:
                if self._clock() - self._opened_at < self.policy.cool_down:
                    return None
                changed = self._move(BreakerState.HALF_OPEN)
            if self._state is BreakerState.HALF_OPEN:
                if self._probing:
                    return None
                self._probing = True
                permit = Permit(probe=True, generation=self._generation)
            else:
                permit = Permit(probe=False, generation=self._generation)
        self._report(changed)
        return permit

    def record(self, permit: Permit | None, *, ok: bool) -> None:
        """The outcome of the request sent under ``permit``."""
        if permit is None:
            return
        with self._lock:
            changed = None
            if permit.probe:
                if permit.generation == self._generation:
                    self._probing = False
                    if ok:
                        self._outcomes.clear()
                        changed = self._move(BreakerState.CLOSED)
                    else:
                        changed = self._open()
            elif self._state is BreakerState.CLOSED and permit.generation == self._generation:
                self._outcomes.append(not ok)
                calls = len(self._outcomes)
                if (
                    calls >= self.policy.minimum_calls
                    and sum(self._outcomes) >= self.policy.failure_rate * calls
                ):
                    changed = self._open()
        self._report(changed)

    def release(self, permit: Permit | None) -> None:
        """Give back a permit whose request ended with no verdict (it was cancelled)."""
        if permit is None or not permit.probe:
            return
        with self._lock:
            if permit.generation == self._generation:
                self._probing = False

    # -- under the lock --------------------------------------------------

    def _open(self) -> tuple[BreakerState, BreakerState] | None:
        self._opened_at = self._clock()
        self._outcomes.clear()
        return self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> tuple[BreakerState, BreakerState] | None:
        old, self._state = self._state, new
        self._generation += 1
        return (old, new) if old is not new else None

    def _report(self, changed: tuple[BreakerState, BreakerState] | None) -> None:
        if changed is not None and self._on_transition is not None:
            self._on_transition(*changed)
