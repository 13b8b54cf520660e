"""When to try again: full-jitter backoff, a retry budget, Retry-After, one deadline.

- **Backoff** is "full jitter" from AWS's *Exponential Backoff and Jitter*
  (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):
  ``sleep = random(0, min(cap, base * 2**n))``.  Spreading retries over the
  whole interval is what stops a crowd of clients from retrying in lock-step.
- **The retry budget** is a token bucket (Finagle's ``RetryBudget``, gRPC's
  retry throttling): every request deposits ``ratio`` of a token, every retry
  withdraws a whole one, so retries stay below ``ratio`` of the requests (plus
  a small ``reserve`` for a quiet client) and a failing origin does not get a
  retry storm on top of its failure.
- **Retry-After** (RFC 9110 §10.2.3) is read as delay-seconds or an HTTP-date
  and capped, so a hostile or confused server cannot park us for a day.
- **A deadline** bounds a whole call, retries and waits included.

>>> policy = RetryPolicy(base=0.1, cap=1.0)
>>> policy.backoff(3, random=lambda: 0.5)  # half of min(1.0, 0.1 * 2**3)
0.4
>>> policy.retry_after("120", now=0.0)  # capped at retry_after_cap
30.0
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["RETRYABLE_STATUSES", "Deadline", "RetryBudget", "RetryPolicy"]

# 408 Request Timeout, 425 Too Early, 429 Too Many Requests and the 5xx that
# mean "not now" rather than "never" (RFC 9110 §15.5.9, §15.6; RFC 8470; RFC 6585).
RETRYABLE_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to try again.

    - ``attempts``: rounds over the origins and mirrors per call (1: no retry).
    - ``base``/``cap``: the full-jitter backoff in seconds between rounds.
    - ``budget_ratio``/``budget_reserve``: retries may be at most this fraction
      of requests, plus a reserve of this many tokens (see :class:`RetryBudget`).
    - ``retry_after_cap``: the longest ``Retry-After`` obeyed, in seconds.

    >>> RetryPolicy(attempts=1)
    RetryPolicy(attempts=1, base=0.1, cap=2.0, budget_ratio=0.2, budget_reserve=10.0, \
retry_after_cap=30.0)
    """

    attempts: int = 3
    base: float = 0.1
    cap: float = 2.0
    budget_ratio: float = 0.2
    budget_reserve: float = 10.0
    retry_after_cap: float = 30.0

    def __post_init__(self) -> None:
        if type(self.attempts) is not int or self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be an integer >= 1, not {self.attempts!r}")
        for name in ("base", "cap", "budget_ratio", "budget_reserve", "retry_after_cap"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0, not {value!r}")

    def backoff(self, retry: int, *, random: Callable[[], float]) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(retry, 64))
        return ceiling * min(max(random(), 0.0), 1.0)

    def retry_after(self, value: str | None, *, now: float) -> float | None:
        """Seconds a ``Retry-After`` header asks for, capped; ``None`` if absent or unreadable.

        ``now`` is the wall-clock time (seconds since the epoch) for HTTP-dates.

        >>> RetryPolicy().retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0)
        6.0
        >>> RetryPolicy().retry_after("soon", now=0.0) is None
        True
        """
        if value is None:
            return None
        text = value.strip()
        if text.isdigit():  # delay-seconds = 1*DIGIT (RFC 9110 §10.2.3), no sign, no fraction
            seconds = float(int(text[:12]))  # a 12-digit prefix is already far beyond any cap
        else:
            try:
                when = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
            if when.tzinfo is None:  # an HTTP-date is always GMT (RFC 9110 §5.6.7)
                return None
            seconds = when.timestamp() - now
        return min(max(seconds, 0.0), self.retry_after_cap)

    def new_budget(self) -> RetryBudget:
        return RetryBudget(ratio=self.budget_ratio, reserve=self.budget_reserve)


@dataclass(slots=True)
class RetryBudget:
    """A token bucket shared by every call of one client.

    >>> budget = RetryBudget(ratio=0.5, reserve=1.0)
    >>> budget.deposit(); budget.deposit()      # two requests: +1 token
    >>> budget.withdraw(), budget.withdraw(), budget.withdraw()
    (True, True, False)
    """

    ratio: float
    reserve: float
    tokens: float = field(init=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.tokens = self.reserve
        self._lock = threading.Lock()

    @property
    def capacity(self) -> float:
        # A long quiet spell must not bank an unbounded storm for later.
        return self.reserve + 100.0 * self.ratio

    def deposit(self) -> None:
        """Count one request."""
        with self._lock:
            self.tokens = min(self.capacity, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        """Take a token for one retry; ``False`` when the budget is spent."""
        with self._lock:
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True


@dataclass(slots=True)
class Deadline:
    """One overall time limit, measured on an injectable monotonic clock.

    >>> now = [100.0]
    >>> deadline = Deadline(seconds=2.0, clock=lambda: now[0])
    >>> now[0] = 101.5
    >>> deadline.remaining()
    0.5
    """

    seconds: float
    clock: Callable[[], float]
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()

    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - self.clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0
