"""RetryPolicy: full-jitter backoff, Retry-After, the retry budget, the deadline."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

import unblank.retry
from unblank.retry import Deadline, RetryBudget, RetryPolicy


def test_retry_docstring_examples_run() -> None:
    assert doctest.testmod(unblank.retry).failed == 0


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.999])
def test_backoff_full_jitter_spans_zero_to_the_exponential_ceiling(draw: float) -> None:
    policy = RetryPolicy(base=0.5, cap=100.0)
    for retry in range(6):
        assert policy.backoff(retry, random=lambda: draw) == pytest.approx(draw * 0.5 * 2**retry)


def test_backoff_is_capped_even_for_huge_retry_numbers() -> None:
    policy = RetryPolicy(base=1.0, cap=3.0)
    assert policy.backoff(10_000, random=lambda: 1.0) == 3.0


def test_backoff_clamps_a_random_source_outside_zero_one() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    assert policy.backoff(2, random=lambda: 7.0) == 4.0
    assert policy.backoff(2, random=lambda: -1.0) == 0.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("99999999999999999999", 30.0),  # capped, no overflow
        ("-5", None),  # not delay-seconds
        ("1.5", None),
        ("", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_delay_seconds(header: str | None, expected: float | None) -> None:
    assert RetryPolicy(retry_after_cap=30.0).retry_after(header, now=0.0) == expected


def test_retry_after_http_date_counts_from_now_and_is_capped() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    policy = RetryPolicy(retry_after_cap=60.0)
    in_ten = format_datetime(datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC), usegmt=True)
    in_an_hour = format_datetime(datetime(2026, 1, 1, 13, 0, 0, tzinfo=UTC), usegmt=True)
    past = format_datetime(datetime(2025, 1, 1, tzinfo=UTC), usegmt=True)
    assert policy.retry_after(in_ten, now=now) == 10.0
    assert policy.retry_after(in_an_hour, now=now) == 60.0
    assert policy.retry_after(past, now=now) == 0.0


def test_retry_budget_keeps_retries_below_the_ratio_of_requests() -> None:
    budget = RetryBudget(ratio=0.1, reserve=2.0)
    retries = 0
    for _ in range(1000):  # a storm: every request fails and wants a retry
        budget.deposit()
        if budget.withdraw():
            retries += 1
    assert retries <= 2 + 0.1 * 1000
    assert retries >= 0.1 * 1000 - 1


def test_retry_budget_capacity_bounds_what_a_quiet_spell_banks() -> None:
    budget = RetryBudget(ratio=0.5, reserve=1.0)
    for _ in range(10_000):
        budget.deposit()
    assert budget.tokens == budget.capacity == 51.0


def test_deadline_counts_down_on_the_injected_clock() -> None:
    now = [5.0]
    deadline = Deadline(seconds=1.0, clock=lambda: now[0])
    assert not deadline.expired()
    now[0] = 6.5
    assert deadline.remaining() == 0.0
    assert deadline.expired()


@pytest.mark.parametrize(
    "bad",
    [{"attempts": 0}, {"attempts": 1.5}, {"base": -1.0}, {"cap": float("inf")}],
)
def test_retry_policy_refuses_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**bad)  # type: ignore[arg-type]
