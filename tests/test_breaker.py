"""CircuitBreaker: failure rate over a window, cool-down, one half-open probe."""

from __future__ import annotations

import doctest
import threading

import pytest

import unblank.breaker
from unblank.breaker import BreakerPolicy, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(
    **policy: float,
) -> tuple[CircuitBreaker, Clock, list[tuple[BreakerState, BreakerState]]]:
    clock = Clock()
    seen: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        BreakerPolicy(**policy),  # type: ignore[arg-type]
        clock=clock,
        on_transition=lambda old, new: seen.append((old, new)),
    )
    return breaker, clock, seen


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), ok=False)


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), ok=True)


def test_breaker_docstring_examples_run() -> None:
    assert doctest.testmod(unblank.breaker).failed == 0


def test_breaker_stays_closed_below_the_minimum_number_of_calls() -> None:
    breaker, _, seen = make(minimum_calls=5, window=10)
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED
    assert seen == []


def test_breaker_opens_at_the_failure_rate_over_the_window() -> None:
    breaker, _, seen = make(failure_rate=0.5, minimum_calls=4, window=10)
    succeed(breaker, 3)
    fail(breaker, 2)  # 2 of 5: 40 %
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)  # 3 of 6: 50 %
    assert breaker.failure_rate() == 0.0  # the window starts afresh when it opens
    assert str(breaker.state) == "open"
    assert seen == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert breaker.acquire() is None


def test_breaker_window_forgets_old_failures() -> None:
    breaker, _, _ = make(failure_rate=0.5, minimum_calls=4, window=4)
    fail(breaker)
    succeed(breaker, 20)
    fail(breaker)  # 1 of the last 4
    assert breaker.state is BreakerState.CLOSED


def test_breaker_half_open_lets_exactly_one_probe_through_then_closes() -> None:
    breaker, clock, seen = make(minimum_calls=2, window=2, cool_down=10.0)
    fail(breaker, 2)
    clock.now = 9.9
    assert breaker.acquire() is None  # still cooling down
    clock.now = 10.0
    probe = breaker.acquire()
    assert probe is not None and probe.probe
    assert [breaker.acquire() for _ in range(5)] == [None] * 5
    breaker.record(probe, ok=True)
    assert breaker.state is BreakerState.CLOSED
    assert seen == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_breaker_failed_probe_reopens_for_another_cool_down() -> None:
    breaker, clock, _ = make(minimum_calls=1, window=1, cool_down=10.0)
    fail(breaker)
    clock.now = 10.0
    fail(breaker)  # the probe
    assert breaker.state is BreakerState.OPEN
    clock.now = 19.0
    assert breaker.acquire() is None
    clock.now = 20.0
    assert breaker.acquire() is not None


def test_breaker_released_probe_frees_the_slot() -> None:
    breaker, clock, _ = make(minimum_calls=1, window=1, cool_down=1.0)
    fail(breaker)
    clock.now = 1.0
    probe = breaker.acquire()
    breaker.release(probe)  # the probing request was cancelled
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire() is not None


def test_breaker_ignores_outcomes_of_permits_from_an_earlier_state() -> None:
    breaker, _, _ = make(minimum_calls=2, window=2)
    late = breaker.acquire()  # a slow request started while closed
    fail(breaker, 2)
    breaker.record(late, ok=True)  # must not close the open breaker
    assert breaker.state is BreakerState.OPEN


def test_breaker_one_probe_among_many_threads() -> None:
    breaker, clock, _ = make(minimum_calls=1, window=1, cool_down=1.0)
    fail(breaker)
    clock.now = 2.0
    start = threading.Barrier(16)
    permits = []

    def worker() -> None:
        start.wait()
        permits.append(breaker.acquire())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(p is not None for p in permits) == 1


@pytest.mark.parametrize(
    "bad",
    [{"failure_rate": 0.0}, {"failure_rate": 1.5}, {"window": 0}, {"minimum_calls": 30}],
)
def test_breaker_policy_refuses_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="BreakerPolicy"):
        BreakerPolicy(**bad)  # type: ignore[arg-type]
