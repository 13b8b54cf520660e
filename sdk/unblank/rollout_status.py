"""What a rollout looks like: the counts of a canary's window, and its status.

The value objects :class:`~unblank.guarded.Rollout` returns and ``unblank
rollout status`` prints. Page views and incidents are counted per
generation and cause; the policy weighs every incident except those that say
nothing about the generation (the user's network being ``offline``, planned
``maintenance``).

>>> window = window_of(
...     [("g1", "view", "", 90), ("g1", "incident", "offline", 4),
...      ("g2", "view", "", 10), ("g2", "incident", "app-crash", 3)],
...     stable="g1", canary="g2")
>>> [(g.role, g.counts) for g in window]
[('stable', Counts(page_views=90, incidents=0)), ('canary', Counts(page_views=10, incidents=3))]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from unblank._exceptions import RolloutStoreError
from unblank.canary import CanaryPointer
from unblank.rollout import Counts, Decision, RolloutPolicy
from unblank.rollout_store import DecisionRecord, RolloutStore

__all__ = [
    "NOT_THE_GENERATION",
    "STATE_CODES",
    "GenerationCounts",
    "RolloutStatus",
    "State",
    "pair",
    "stored_policy",
    "window_of",
]

# Causes that say nothing about the generation: the user's network, planned work.
NOT_THE_GENERATION: Final = frozenset({"offline", "maintenance"})

State = Literal["none", "watching", "promoted", "rolled back"]
STATE_CODES: Final[Mapping[State, int]] = {
    "none": 0,
    "watching": 1,
    "promoted": 2,
    "rolled back": 3,
}


@dataclass(frozen=True, slots=True)
class GenerationCounts:
    """What one generation counted during a canary: page views, incidents by cause,
    and incidents the watchdog recovered from (no white screen), by cause."""

    generation: str
    role: Literal["stable", "canary", "other"]
    page_views: int = 0
    incidents: Mapping[str, int] = field(default_factory=dict)
    recovered: Mapping[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> Counts:
        """What the policy weighs: page views, and incidents the generation can cause."""
        bad = sum(n for cause, n in self.incidents.items() if cause not in NOT_THE_GENERATION)
        return Counts(self.page_views, bad)

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "generation": self.generation,
            "role": self.role,
            "page_views": self.page_views,
            "incidents": counts.incidents,
            "rate": round(counts.rate, 6),
            "incidents_by_cause": dict(sorted(self.incidents.items())),
            "recovered_by_cause": dict(sorted(self.recovered.items())),
        }


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """Everything ``unblank rollout status`` shows."""

    state: State
    stable: str | None
    canary: CanaryPointer | None
    elapsed: float  # seconds the canary has run
    policy: RolloutPolicy
    generations: tuple[GenerationCounts, ...]  # the running (or last) canary's window
    verdict: Decision | None  # what the policy says now, for a running canary
    decisions: tuple[DecisionRecord, ...]

    @property
    def state_code(self) -> int:
        """0 none, 1 watching, 2 promoted, 3 rolled back (the last canary's end)."""
        return STATE_CODES[self.state]

    def to_dict(self) -> dict[str, Any]:
        canary = self.canary
        return {
            "state": self.state,
            "stable": self.stable,
            "canary": None
            if canary is None
            else {**canary.to_dict(), "elapsed": round(self.elapsed, 1)},
            "policy": dataclasses.asdict(self.policy),
            "thresholds": {
                "rollback_at": round(self.policy.rollback_at, 3),
                "accept_at": round(self.policy.accept_at, 3),
            },
            "generations": [g.to_dict() for g in self.generations],
            "verdict": None if self.verdict is None else self.verdict.figures(),
            "decisions": [d.to_dict() for d in self.decisions],
        }


def window_of(
    rows: Iterable[tuple[str, str, str, int]], *, stable: str | None, canary: str | None
) -> tuple[GenerationCounts, ...]:
    """Counts per generation from the store's ``(generation, kind, cause, n)`` rows:
    stable first, canary second, any other generation after them."""
    views: dict[str, int] = {}
    incidents: dict[str, dict[str, int]] = {}
    recovered: dict[str, dict[str, int]] = {}
    for generation, kind, cause, n in rows:
        if kind == "view":
            views[generation] = views.get(generation, 0) + n
        else:
            into = incidents if kind == "incident" else recovered
            by_cause = into.setdefault(generation, {})
            by_cause[cause] = by_cause.get(cause, 0) + n
    names = [g for g in (stable, canary) if g is not None]
    names += sorted((set(views) | set(incidents) | set(recovered)) - set(names))
    return tuple(
        GenerationCounts(
            generation=name,
            role="stable" if name == stable else "canary" if name == canary else "other",
            page_views=views.get(name, 0),
            incidents=incidents.get(name, {}),
            recovered=recovered.get(name, {}),
        )
        for name in names
    )


def pair(window: tuple[GenerationCounts, ...]) -> tuple[GenerationCounts, GenerationCounts]:
    """The stable and the canary generation's counts of a window (empty when absent)."""
    stable = next((g for g in window if g.role == "stable"), GenerationCounts("", "stable"))
    canary = next((g for g in window if g.role == "canary"), GenerationCounts("", "canary"))
    return stable, canary


def stored_policy(store: RolloutStore) -> RolloutPolicy | None:
    """The policy an app last evaluated with (None: no app has yet, or unreadable)."""
    try:
        text = store.get("policy")
        return RolloutPolicy(**json.loads(text)) if text else None
    except (RolloutStoreError, ValueError, TypeError):
        return None
