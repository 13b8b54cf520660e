"""Guarded rollout: whether a canary generation is safe, from its white-screen rate.

A new generation goes to a share of browsers first (the canary) while the
others keep the stable one. Every shell served counts a page view for its
generation, every watchdog report an incident. :func:`decide` compares the
two incident rates with Wald's sequential probability ratio test on *where
the incidents fall*: if both generations were equally healthy, the canary's
share of incidents would be its share of page views; if the canary were
``allowed_ratio`` times worse, it would be larger. The evidence is summed
after every incident, and the test may be looked at as often as one likes —
its error rates hold under continuous monitoring, unlike a repeated
significance test:

- **roll back** when the evidence for "``allowed_ratio`` times worse" passes
  ``log((1 - miss) / (1 - confidence))``: a healthy canary is rolled back by
  noise with probability at most ``1 - confidence``;
- **promote** once the canary has ``min_page_views`` and either the evidence
  for "as healthy as stable" passes ``log(miss / confidence)``, or it has had
  no incident at all, or ``max_duration`` passed without a rollback;
- otherwise **watch**.

>>> policy = RolloutPolicy(min_page_views=100)
>>> decide(Counts(900, 9), Counts(100, 1), elapsed=600, policy=policy).action
'watch'
>>> decide(Counts(900, 9), Counts(40, 30), elapsed=60, policy=policy).action
'rollback'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Counts", "Decision", "RolloutPolicy", "decide"]

Action = Literal["promote", "rollback", "watch"]
# With no stable traffic to compare with, the canary is held to this rate.
_FALLBACK_SHARE: Final = 0.5


@dataclass(frozen=True, slots=True)
class Counts:
    """Page views (shells served) and incidents (watchdog reports) of one generation."""

    page_views: int
    incidents: int

    def __post_init__(self) -> None:
        if self.page_views < 0 or self.incidents < 0:
            raise ValueError(f"counts cannot be negative: {self}")

    @property
    def rate(self) -> float:
        """Incidents per page view (0 when there were none)."""
        return self.incidents / self.page_views if self.page_views else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutPolicy:
    """When a canary is promoted, kept under watch, or rolled back.

    ``allowed_ratio``: how many times the stable incident rate counts as a
    regression (the alternative the test looks for). ``confidence``: a healthy
    canary is rolled back with probability at most ``1 - confidence``.
    ``miss``: the probability of promoting a canary that is ``allowed_ratio``
    times worse when the evidence runs out at ``max_duration``.
    ``min_page_views`` and ``min_duration`` (seconds): what a canary needs
    before it can be promoted; ``max_duration``: when it is promoted anyway
    unless the evidence says it is worse.
    """

    allowed_ratio: float = 1.5
    confidence: float = 0.95
    miss: float = 0.2
    min_page_views: int = 200
    min_duration: float = 300.0
    max_duration: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not self.allowed_ratio > 1.0 or not math.isfinite(self.allowed_ratio):
            raise ValueError(f"allowed_ratio must be a finite number > 1, not {self.allowed_ratio}")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), not {self.confidence}")
        if not 0.0 < self.miss < 0.5:
            raise ValueError(f"miss must be in (0, 0.5), not {self.miss}")
        if self.min_page_views < 1:
            raise ValueError(f"min_page_views must be at least 1, not {self.min_page_views}")
        if not 0 <= self.min_duration <= self.max_duration:
            raise ValueError("durations must satisfy 0 <= min_duration <= max_duration")

    @property
    def rollback_at(self) -> float:
        """The log-likelihood ratio past which the canary is rolled back."""
        return math.log((1.0 - self.miss) / (1.0 - self.confidence))

    @property
    def accept_at(self) -> float:
        """The log-likelihood ratio below which the canary counts as healthy."""
        return math.log(self.miss / self.confidence)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the canary, why, and the figures behind it."""

    action: Action
    reason: str
    evidence: float  # the log-likelihood ratio "worse" vs "as healthy"
    stable: Counts
    canary: Counts

    def figures(self) -> dict[str, float | int | str]:
        """The decision as flat figures, for a log line or JSON."""
        return {
            "action": self.action,
            "reason": self.reason,
            "evidence": round(self.evidence, 3),
            "stable_page_views": self.stable.page_views,
            "stable_incidents": self.stable.incidents,
            "stable_rate": round(self.stable.rate, 6),
            "canary_page_views": self.canary.page_views,
            "canary_incidents": self.canary.incidents,
            "canary_rate": round(self.canary.rate, 6),
        }


def evidence(stable: Counts, canary: Counts, allowed_ratio: float) -> float:
    """Log-likelihood ratio of "canary ``allowed_ratio`` times worse" against
    "as healthy as stable", from the share of incidents that fell on the canary.

    >>> round(evidence(Counts(900, 0), Counts(100, 8), 1.5), 2)
    2.85
    """
    share = (
        canary.page_views / (canary.page_views + stable.page_views)
        if stable.page_views
        else _FALLBACK_SHARE
    )
    if canary.page_views == 0 or share <= 0.0:
        return 0.0
    healthy = share
    worse = allowed_ratio * share / (allowed_ratio * share + (1.0 - share))
    if healthy >= 1.0:  # no stable traffic at all: every incident is the canary's
        return 0.0
    return canary.incidents * math.log(worse / healthy) + stable.incidents * math.log(
        (1.0 - worse) / (1.0 - healthy)
    )


def decide(stable: Counts, canary: Counts, *, elapsed: float, policy: RolloutPolicy) -> Decision:
    """Promote, roll back, or keep watching a canary that has run ``elapsed`` seconds."""
    llr = evidence(stable, canary, policy.allowed_ratio)
    rates = (
        f"canary {canary.incidents}/{canary.page_views} ({canary.rate:.2%}) against "
        f"stable {stable.incidents}/{stable.page_views} ({stable.rate:.2%})"
    )

    def decision(action: Action, why: str) -> Decision:
        return Decision(action, f"{why}: {rates}", llr, stable, canary)

    if llr >= policy.rollback_at:
        return decision(
            "rollback",
            f"incident rate worse than {policy.allowed_ratio:g}x stable at "
            f"{policy.confidence:.0%} confidence",
        )
    if elapsed >= policy.max_duration:
        return decision("promote", f"not worse after the maximum {policy.max_duration:g} s")
    if canary.page_views < policy.min_page_views or elapsed < policy.min_duration:
        return decision(
            "watch",
            f"needs {policy.min_page_views} page views and {policy.min_duration:g} s "
            f"(has {canary.page_views} in {elapsed:.0f} s)",
        )
    if llr <= policy.accept_at:
        return decision("promote", "as healthy as stable")
    if canary.incidents == 0:
        return decision("promote", "no incident")
    return decision("watch", "not enough evidence either way yet")
