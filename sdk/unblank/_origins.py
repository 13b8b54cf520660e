"""Origins, counters, events and the failover loop behind :class:`unblank.AssetClient`.

One call of the client (a manifest, an asset) runs :meth:`Failover.run`: it
tries the origins in order, then the mirrors, skipping those whose circuit
breaker is open; when every one failed it waits (full-jitter backoff, or
longer if a ``Retry-After`` asked) and goes round again, as long as the retry
budget and the call's deadline allow.  What each try ended with is kept, so
the final :class:`~unblank.FetchError` says what to check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from unblank._exceptions import FetchError
from unblank.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from unblank.retry import Deadline, RetryBudget, RetryPolicy

__all__ = ["AttemptFailed", "ClientEvent", "ClientStats", "Failover", "Origin", "OriginStats"]

T = TypeVar("T")
_log = logging.getLogger("unblank.client")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an ``unblank serve`` (or a CDN in front of one) answers.

    >>> Origin("https://cdn.example.com/").asset_url("app.3f2a9c1e5b.js")
    'https://cdn.example.com/static/app.3f2a9c1e5b.js'
    >>> Origin("https://cdn.example.com", prefix="").manifest_url
    'https://cdn.example.com/_unblank/manifest.json'
    """

    base: str
    prefix: str = "/static"
    manifest_path: str = "/_unblank/manifest.json"

    def __post_init__(self) -> None:
        if not isinstance(self.base, str):
            raise ValueError(f"origin base must be a URL string, not {type(self.base).__name__}")
        try:
            url = httpx.URL(self.base)
        except httpx.InvalidURL as exc:
            raise ValueError(f"origin {self.base!r} is not a URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment:
            raise ValueError(
                f"origin {self.base!r} must be an http(s) URL like https://cdn.example.com"
            )
        object.__setattr__(self, "base", self.base.rstrip("/"))
        for name in ("prefix", "manifest_path"):
            value = getattr(self, name)
            if not isinstance(value, str) or (value and not value.startswith("/")):
                raise ValueError(f"origin {name} must be empty or start with '/', not {value!r}")
        object.__setattr__(self, "prefix", self.prefix.rstrip("/"))

    @classmethod
    def coerce(cls, value: str | Origin) -> Origin:
        return value if isinstance(value, Origin) else cls(value)

    def asset_url(self, path: str) -> str:
        return f"{self.base}{self.prefix}/{path}"

    @property
    def manifest_url(self) -> str:
        return self.base + self.manifest_path


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Something the client did that operators may want to count or log.

    ``kind`` is one of ``request``, ``retry``, ``failure``,
    ``integrity_failure``, ``breaker`` (``detail`` is ``"closed->open"``...),
    ``mirror``, ``stale``, ``repaired`` and ``budget_exhausted``.
    """

    kind: str
    origin: str | None = None
    detail: str = ""


@dataclass(slots=True)
class OriginStats:
    """Counters of one origin or mirror (mutable: the client updates them)."""

    requests: int = 0
    failures: int = 0
    integrity_failures: int = 0
    retries: int = 0
    breaker_transitions: int = 0
    breaker_state: str = BreakerState.CLOSED.value


@dataclass(slots=True)
class ClientStats:
    """Every counter of one client; ``as_dict()`` for logs and metrics."""

    origins: dict[str, OriginStats] = field(default_factory=dict)
    cache_hits: int = 0
    mirror_used: int = 0
    stale_served: int = 0
    repaired: int = 0
    budget_exhausted: int = 0

    def origin(self, base: str) -> OriginStats:
        return self.origins.setdefault(base, OriginStats())

    def as_dict(self) -> dict[str, Any]:
        return {
            "origins": {
                base: {name: getattr(stats, name) for name in OriginStats.__slots__}
                for base, stats in self.origins.items()
            },
            **{name: getattr(self, name) for name in ClientStats.__slots__ if name != "origins"},
        }


class AttemptFailed(Exception):
    """One try at one origin gave no usable answer.

    ``counts``: ``True`` is a failure for the origin's breaker, ``False`` an
    answer from a healthy origin (a 404: do not ask it again in this call),
    ``None`` neither (a 429: it is alive and asked us to wait).
    """

    def __init__(
        self,
        outcome: str,
        *,
        counts: bool | None = True,
        retry: bool = True,
        retry_after: float | None = None,
        integrity: bool = False,
    ) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.counts = counts
        self.retry = retry
        self.retry_after = retry_after
        self.integrity = integrity


Emit = Callable[[ClientEvent], None]


class Failover:
    """The origins and mirrors of one client, their breakers, and the retry loop."""

    def __init__(
        self,
        *,
        origins: Sequence[Origin],
        mirrors: Sequence[Origin],
        retry: RetryPolicy,
        breaker: BreakerPolicy,
        deadline: float,
        request_timeout: float,
        stats: ClientStats,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
        random: Callable[[], float],
        emit: Emit,
    ) -> None:
        self.candidates = tuple((o, False) for o in origins) + tuple((m, True) for m in mirrors)
        self.retry = retry
        self.budget: RetryBudget = retry.new_budget()
        self.deadline = deadline
        self.request_timeout = request_timeout
        self.stats = stats
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._emit = emit
        self.breakers: dict[str, CircuitBreaker] = {}
        for origin, _ in self.candidates:
            stats.origin(origin.base)
            if origin.base not in self.breakers:
                self.breakers[origin.base] = CircuitBreaker(
                    breaker, clock=clock, on_transition=self._transition_hook(origin.base)
                )

    def _transition_hook(self, base: str) -> Callable[[BreakerState, BreakerState], None]:
        def hook(old: BreakerState, new: BreakerState) -> None:
            counters = self.stats.origin(base)
            counters.breaker_transitions += 1
            counters.breaker_state = new.value
            self._emit(ClientEvent("breaker", base, f"{old.value}->{new.value}"))

        return hook

    async def run(
        self, what: str, attempt: Callable[[Origin], Awaitable[T]], url: Callable[[Origin], str]
    ) -> tuple[T, Origin, bool]:
        """``(value, origin, is_mirror)`` of the first try that succeeds; else FetchError
        whose ``attempts`` are ``(url(origin), outcome)`` pairs."""
        deadline = Deadline(seconds=self.deadline, clock=self._clock)
        attempts: list[tuple[str, str]] = []
        settled: set[int] = set()  # answered for good in this call (a 404)
        skipped: set[int] = set()
        not_before: dict[int, float] = {}
        why = ""
        for round_ in range(self.retry.attempts):
            if round_:
                why = await self._wait(round_, deadline, settled, not_before)
                if why:
                    break
            sent = 0
            for index, (origin, mirror) in enumerate(self.candidates):
                if index in settled or not_before.get(index, 0.0) > self._clock():
                    continue
                if deadline.expired():
                    why = f"the deadline of {self.deadline:g}s passed"
                    break
                breaker = self.breakers[origin.base]
                permit = breaker.acquire()
                if permit is None:
                    if index not in skipped:
                        skipped.add(index)
                        attempts.append((url(origin), "skipped: its circuit breaker is open"))
                    continue
                if round_ and not self.budget.withdraw():
                    breaker.release(permit)
                    self.stats.budget_exhausted += 1
                    self._emit(ClientEvent("budget_exhausted", origin.base))
                    why = "the retry budget is spent (too many retries across calls lately)"
                    break
                sent += 1
                counters = self.stats.origin(origin.base)
                counters.requests += 1
                self.budget.deposit()
                if round_:
                    counters.retries += 1
                    self._emit(ClientEvent("retry", origin.base, what))
                self._emit(ClientEvent("request", origin.base, what))
                try:
                    async with asyncio.timeout(min(deadline.remaining(), self.request_timeout)):
                        value = await attempt(origin)
                except AttemptFailed as failed:
                    failure = failed
                except httpx.TimeoutException as exc:
                    failure = AttemptFailed(f"timed out ({type(exc).__name__})")
                except TimeoutError:
                    failure = AttemptFailed("timed out (no answer within the time left)")
                except httpx.ConnectError as exc:
                    failure = AttemptFailed(f"could not connect: {exc or type(exc).__name__}")
                except httpx.HTTPError as exc:
                    failure = AttemptFailed(f"network error: {type(exc).__name__}: {exc}")
                except BaseException:
                    breaker.release(permit)
                    raise
                else:
                    breaker.record(permit, ok=True)
                    if mirror:
                        self.stats.mirror_used += 1
                        self._emit(ClientEvent("mirror", origin.base, what))
                    return value, origin, mirror
                self._record_failure(origin, failure, what)
                if failure.counts is None:
                    breaker.release(permit)
                else:
                    breaker.record(permit, ok=not failure.counts)
                attempts.append((url(origin), failure.outcome))
                if not failure.retry:
                    settled.add(index)
                if failure.retry_after is not None:
                    not_before[index] = self._clock() + failure.retry_after
            if why:
                break
            if not sent and len(skipped | settled) == len(self.candidates):
                why = "no origin or mirror can be asked"
                break
        raise self._error(what, attempts, why)

    async def _wait(
        self, round_: int, deadline: Deadline, settled: set[int], not_before: dict[int, float]
    ) -> str:
        """Sleep before round ``round_``; a non-empty reason means: stop instead."""
        waiting = [i for i in range(len(self.candidates)) if i not in settled]
        if not waiting:
            return "every origin and mirror gave a final answer"
        now = self._clock()
        asked = min(not_before.get(i, now) for i in waiting) - now
        delay = max(self.retry.backoff(round_ - 1, random=self._random), asked)
        if delay >= deadline.remaining():
            if asked > 0 and asked >= deadline.remaining():
                return f"Retry-After asks for {asked:g}s, beyond the deadline of {self.deadline:g}s"
            return f"the deadline of {self.deadline:g}s would pass before the next try"
        if delay > 0:
            await self._sleep(delay)
        return ""

    def _record_failure(self, origin: Origin, failure: AttemptFailed, what: str) -> None:
        counters = self.stats.origin(origin.base)
        counters.failures += 1
        self._emit(ClientEvent("failure", origin.base, f"{what}: {failure.outcome}"))
        if failure.integrity:
            counters.integrity_failures += 1
            self._emit(ClientEvent("integrity_failure", origin.base, what))

    def _error(self, what: str, attempts: list[tuple[str, str]], why: str) -> FetchError:
        lines = "".join(f"\n  - {where}: {outcome}" for where, outcome in attempts)
        stop = f"; stopped because {why}" if why else ""
        return FetchError(
            f"could not fetch {what} from any origin or mirror "
            f"({len(attempts)} attempt(s){stop}):{lines}\n"
            "Check that the origins are reachable and serve the current build "
            "(`unblank serve DIST`), and that their manifest and files agree.",
            attempts=tuple(attempts),
        )


def report(on_event: Callable[[ClientEvent], object] | None) -> Emit:
    """An emitter that calls ``on_event`` and never lets a broken hook break a fetch."""

    def emit(event: ClientEvent) -> None:
        if on_event is None:
            return
        try:
            on_event(event)
        except Exception:
            _log.exception("unblank on_event hook failed on %r", event)

    return emit
