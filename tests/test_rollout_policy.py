"""The rollout policy (``unblank.rollout.decide``) on synthetic counts.

Table cases pin each rule; seeded simulations of whole canaries check the
error rates the policy promises under continuous monitoring (``decide`` is
called after every 50 page views, as a backend calling it every few seconds
would): a canary as healthy as stable is rolled back by noise at most
``1 - confidence`` of the time, a 3x regression is caught, and a canary
that crashes at boot is rolled back within a few of its page views.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

import pytest

from unblank.rollout import Counts, RolloutPolicy, decide, evidence

SEED = 20261125
POLICY = RolloutPolicy()
# Simulations count page views, not seconds: the duration rules are out of the way.
SIMULATED = RolloutPolicy(min_duration=0, max_duration=1e12)


# --------------------------------------------------------------------------- table cases


@dataclass(frozen=True)
class Case:
    name: str
    stable: Counts
    canary: Counts
    elapsed: float
    action: str
    reason: str  # a word the reason must hold


CASES = [
    Case("nothing yet", Counts(0, 0), Counts(0, 0), 0, "watch", "needs 200 page views"),
    Case("too few views", Counts(1800, 18), Counts(150, 1), 3600, "watch", "needs 200"),
    Case("too early", Counts(9000, 90), Counts(1000, 10), 120, "watch", "300 s"),
    Case("no incident", Counts(1800, 2), Counts(200, 0), 600, "promote", "no incident"),
    Case("healthier", Counts(9000, 90), Counts(1000, 0), 600, "promote", "as healthy"),
    Case("as healthy", Counts(90_000, 900), Counts(10_000, 95), 600, "promote", "as healthy"),
    Case("undecided", Counts(9000, 90), Counts(1000, 12), 600, "watch", "not enough evidence"),
    Case("regression", Counts(9000, 90), Counts(1000, 40), 600, "rollback", "worse than 1.5x"),
    # Evidence does not wait for min_page_views or min_duration: a crash is rolled back early.
    Case("boot crash", Counts(90, 1), Counts(10, 10), 20, "rollback", "95% confidence"),
    Case("out of time", Counts(9000, 90), Counts(1000, 12), 86400, "promote", "maximum"),
    Case("worse even late", Counts(9000, 90), Counts(1000, 40), 86400, "rollback", "worse"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_table(case: Case) -> None:
    decision = decide(case.stable, case.canary, elapsed=case.elapsed, policy=POLICY)
    assert decision.action == case.action, decision.reason
    assert case.reason in decision.reason
    assert decision.stable == case.stable and decision.canary == case.canary
    figures = decision.figures()
    assert figures["action"] == case.action
    assert figures["canary_page_views"] == case.canary.page_views


def test_thresholds_are_walds() -> None:
    # Rolled back past log((1 - miss) / (1 - confidence)), healthy below log(miss / confidence).
    assert POLICY.rollback_at == pytest.approx(math.log(0.8 / 0.05))
    assert POLICY.accept_at == pytest.approx(math.log(0.2 / 0.95))


def test_evidence_grows_with_canary_incidents_and_falls_with_stable_ones() -> None:
    stable = Counts(9000, 90)
    values = [evidence(stable, Counts(1000, n), 1.5) for n in range(0, 40, 5)]
    assert values == sorted(values)
    more_stable = [evidence(Counts(9000, n), Counts(1000, 10), 1.5) for n in range(50, 150, 25)]
    assert more_stable == sorted(more_stable, reverse=True)
    assert evidence(stable, Counts(0, 0), 1.5) == 0.0


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_ratio": 1.0},
        {"allowed_ratio": math.inf},
        {"confidence": 1.0},
        {"confidence": 0.4},
        {"miss": 0.0},
        {"miss": 0.5},
        {"min_page_views": 0},
        {"min_duration": 10.0, "max_duration": 5.0},
    ],
)
def test_policy_refuses_settings_that_make_no_sense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(options)).split("_")[0]):
        RolloutPolicy(**options)  # type: ignore[arg-type]


def test_counts_are_never_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        Counts(-1, 0)
    assert Counts(0, 0).rate == 0.0


# --------------------------------------------------------------------------- simulations


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Successes in ``n`` trials: geometric gaps between them (about n*p draws, not n)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    log_q = math.log1p(-p)
    successes = trial = 0
    while True:
        trial += int(math.log(1.0 - rng.random()) / log_q) + 1
        if trial > n:
            return successes
        successes += 1


@dataclass(frozen=True)
class Outcome:
    action: str
    canary_views: int  # when the policy decided


def simulate(
    rng: random.Random,
    *,
    rate: float,
    ratio: float,
    share: float,
    step: int = 50,
    limit: int = 500_000,
    policy: RolloutPolicy = SIMULATED,
) -> Outcome:
    """One canary: every ``step`` page views (``share`` of them the canary's),
    incidents at ``rate`` on stable and ``rate * ratio`` on the canary, then ``decide``."""
    stable_views = stable_incidents = canary_views = canary_incidents = 0
    while stable_views + canary_views < limit:
        canary = binomial(rng, step, share)
        stable_views += step - canary
        canary_views += canary
        stable_incidents += binomial(rng, step - canary, rate)
        canary_incidents += binomial(rng, canary, min(1.0, rate * ratio))
        decision = decide(
            Counts(stable_views, stable_incidents),
            Counts(canary_views, canary_incidents),
            elapsed=stable_views + canary_views,
            policy=policy,
        )
        if decision.action != "watch":
            return Outcome(decision.action, canary_views)
    return Outcome("watch", canary_views)


TRAFFIC = [
    pytest.param(0.02, 0.10, id="2%-incidents-10%-canary"),
    pytest.param(0.01, 0.50, id="1%-incidents-50%-canary"),
]


@pytest.mark.parametrize(("rate", "share"), TRAFFIC)
def test_a_healthy_canary_is_rarely_rolled_back(rate: float, share: float) -> None:
    rng = random.Random(SEED)
    runs = 1000
    outcomes = [simulate(rng, rate=rate, ratio=1.0, share=share) for _ in range(runs)]
    false_rollbacks = sum(o.action == "rollback" for o in outcomes) / runs
    undecided = sum(o.action == "watch" for o in outcomes)
    views = statistics.median(o.canary_views for o in outcomes)
    print(
        f"\nhealthy canary ({rate:.0%} incidents, {share:.0%} of traffic): "
        f"{false_rollbacks:.1%} rolled back over {runs} canaries; decided after a median "
        f"{views:g} canary page views"
    )
    # Wald's bound is alpha / (1 - beta) = 6.25% for these settings; its overshoot
    # makes the real rate smaller (4-5% in 4,000-canary runs). A finite sample gets
    # two standard errors of slack around the promised 1 - confidence.
    allowed = 1 - SIMULATED.confidence
    slack = 2 * math.sqrt(allowed * (1 - allowed) / runs)
    assert false_rollbacks <= allowed + slack
    assert undecided == 0


@pytest.mark.parametrize(("rate", "share"), TRAFFIC)
def test_a_3x_regression_is_caught(rate: float, share: float) -> None:
    rng = random.Random(SEED + 1)
    runs = 300
    outcomes = [simulate(rng, rate=rate, ratio=3.0, share=share) for _ in range(runs)]
    caught = [o for o in outcomes if o.action == "rollback"]
    needed = statistics.median(o.canary_views for o in caught)
    slow = statistics.quantiles([o.canary_views for o in caught], n=10)[-1]
    print(
        f"\n3x regression ({rate:.0%} -> {3 * rate:.0%}, {share:.0%} of traffic): caught in "
        f"{len(caught) / runs:.1%} of {runs} canaries, after a median {needed:g} canary page "
        f"views (90th percentile {slow:g})"
    )
    assert len(caught) / runs >= 0.95


@pytest.mark.parametrize("share", [0.10, 0.50])
def test_a_boot_crash_is_rolled_back_within_a_few_canary_page_views(share: float) -> None:
    # Every canary page is an incident; decide() runs after every page view.
    rng = random.Random(SEED + 2)
    needed = []
    for _ in range(200):
        outcome = simulate(rng, rate=0.01, ratio=100.0, share=share, step=1)
        assert outcome.action == "rollback"
        needed.append(outcome.canary_views)
    print(
        f"\nboot crash at {share:.0%} of traffic: rolled back after {min(needed)}-"
        f"{max(needed)} canary page views (median {statistics.median(needed):g})"
    )
    # At 10% of traffic each canary incident weighs log(1.5 / 1.05): 8 of them roll it
    # back; at 50%, log(1.5 / 1.25): 16, more when the split drifts towards the canary.
    assert statistics.median(needed) <= 20
    assert max(needed) <= 32
