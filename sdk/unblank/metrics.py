"""The SDK's counters in the Prometheus format, through ``prometheus-client``.

The cache and the client count in plain attributes as they work; this
collector reads them when the registry is scraped, so counting costs nothing
on the request path. Register it in your app's registry::

    from prometheus_client import REGISTRY
    from unblank.metrics import SdkCollector

    REGISTRY.register(SdkCollector(cache=cache, client=client, middleware=middleware))

With a guarded rollout (``rollout=``): page views and incidents by generation
and cause counted by this process (``unblank_rollout_page_views_total``,
``unblank_rollout_incidents_total``, ``unblank_rollout_recovered_total``:
sum them over processes and machines), and, from the counts all processes
share in DIST, the incident rate of the stable and canary generations since
the canary started, the policy's evidence, the canary's percent and the
rollout state (0 none, 1 watching, 2 promoted, 3 rolled back).

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from unblank import AssetCache
>>> registry = CollectorRegistry()
>>> registry.register(SdkCollector(cache=AssetCache(None)))
>>> b"unblank_cache_hits_total" in generate_latest(registry)
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from unblank._exceptions import RolloutError
from unblank._origins import ClientStats, OriginStats
from unblank.breaker import BreakerState
from unblank.cache import AssetCache
from unblank.guarded import Rollout
from unblank.middleware import UnblankMiddleware

__all__ = ["SdkCollector"]


class _HasStats(Protocol):
    @property
    def stats(self) -> ClientStats: ...


class SdkCollector(Collector):
    """Metrics of one :class:`~unblank.AssetCache`, one asset client and/or one
    :class:`~unblank.UnblankMiddleware`.

    ``disk=False`` leaves out the entry count and bytes on disk, which take a
    scan of the cache folder at each scrape.
    """

    def __init__(
        self,
        *,
        cache: AssetCache | None = None,
        client: _HasStats | None = None,
        middleware: UnblankMiddleware | None = None,
        rollout: Rollout | None = None,
        disk: bool = True,
    ) -> None:
        if cache is None and client is None and middleware is None and rollout is None:
            raise ValueError(
                "give SdkCollector something to measure: a cache, a client or both, "
                "and/or a middleware, and/or a rollout"
            )
        self.cache = cache
        self.client = client
        self.middleware = middleware
        self.rollout = rollout
        self.disk = disk

    def collect(self) -> Iterator[Metric]:
        if self.cache is not None:
            yield from self._cache_metrics(self.cache)
        if self.client is not None:
            yield from self._client_metrics(self.client.stats)
        if self.middleware is not None:
            yield from _middleware_metrics(self.middleware)
        if self.rollout is not None:
            yield from _rollout_metrics(self.rollout)

    def _cache_metrics(self, cache: AssetCache) -> Iterator[Metric]:
        stats = cache.stats()
        hits = CounterMetricFamily(
            "unblank_cache_hits", "Verified reads served by the cache, by tier", labels=["tier"]
        )
        misses = CounterMetricFamily(
            "unblank_cache_misses", "Reads a cache tier could not serve", labels=["tier"]
        )
        hits.add_metric(["memory"], stats.memory_hits)
        hits.add_metric(["disk"], stats.disk_hits)
        misses.add_metric(["memory"], stats.memory_misses)
        misses.add_metric(["disk"], stats.disk_misses)
        yield hits
        yield misses
        for name, value, text in (
            ("integrity_failures", stats.integrity_failures, "Entries that failed verification"),
            ("quarantines", stats.quarantines, "Damaged entries moved to quarantine/"),
            ("writes", stats.writes, "Entries written to disk"),
            ("evictions", stats.evictions, "Entries evicted to stay under max_bytes"),
            ("degradations", stats.degradations, "Times the disk tier was given up"),
        ):
            yield CounterMetricFamily(f"unblank_cache_{name}", text, value=value)
        yield GaugeMetricFamily(
            "unblank_cache_degraded",
            "1 while the cache runs memory-only after a disk fault",
            value=1 if stats.degraded else 0,
        )
        yield GaugeMetricFamily(
            "unblank_cache_memory_bytes", "Bytes in the memory tier", value=stats.memory_bytes
        )
        if self.disk:
            yield GaugeMetricFamily("unblank_cache_entries", "Entries on disk", value=stats.entries)
            yield GaugeMetricFamily(
                "unblank_cache_disk_bytes", "Bytes on disk", value=stats.bytes_on_disk
            )

    def _client_metrics(self, stats: ClientStats) -> Iterator[Metric]:
        per_origin = {
            "requests": "Requests sent to each origin or mirror",
            "failures": "Attempts that gave no usable answer",
            "integrity_failures": "Bodies or manifests that failed verification",
            "retries": "Requests that were retries",
            "breaker_transitions": "Circuit breaker state changes",
        }
        for name, text in per_origin.items():
            family = CounterMetricFamily(f"unblank_client_{name}", text, labels=["origin"])
            for base, origin in sorted(stats.origins.items()):
                family.add_metric([base], _count(origin, name))
            yield family
        state = GaugeMetricFamily(
            "unblank_client_breaker_state",
            "1 for the state each origin's circuit breaker is in",
            labels=["origin", "state"],
        )
        for base, origin in sorted(stats.origins.items()):
            for candidate in BreakerState:
                state.add_metric([base, candidate.value], int(origin.breaker_state == candidate))
        yield state
        for name, value, text in (
            ("cache_hits", stats.cache_hits, "Assets the client found in its cache"),
            ("mirror_used", stats.mirror_used, "Assets or manifests that came from a mirror"),
            ("stale_served", stats.stale_served, "Manifests served stale while origins failed"),
            ("repaired", stats.repaired, "Damaged cache entries fetched again and replaced"),
            ("retry_budget_exhausted", stats.budget_exhausted, "Retries refused by the budget"),
        ):
            yield CounterMetricFamily(f"unblank_client_{name}", text, value=value)


def _middleware_metrics(middleware: UnblankMiddleware) -> Iterator[Metric]:
    stats = middleware.stats
    yield CounterMetricFamily(
        "unblank_middleware_requests", "HTTP requests seen", value=stats.requests
    )
    answered = CounterMetricFamily(
        "unblank_middleware_answers",
        "Requests the middleware answered with a guided page instead of the app, by reason",
        labels=["reason"],
    )
    for reason, value in (
        ("exception", stats.exceptions),
        ("timeout", stats.timeouts),
        ("shed", stats.shed),
        ("maintenance", stats.maintenance),
        ("empty_error", stats.empty_errors),
    ):
        answered.add_metric([reason], value)
    yield answered
    reports = CounterMetricFamily(
        "unblank_middleware_reports", "Incident reports accepted, by cause", labels=["cause"]
    )
    for cause, value in sorted(middleware.reports.accepted.items()):
        reports.add_metric([cause], value)
    yield reports
    rejected = CounterMetricFamily(
        "unblank_middleware_reports_rejected", "Incident reports refused, by why", labels=["why"]
    )
    for why, value in sorted(middleware.reports.rejected.items()):
        rejected.add_metric([why], value)
    yield rejected
    mirror = CounterMetricFamily(
        "unblank_middleware_mirror", "Answers of the mirror, by outcome", labels=["outcome"]
    )
    for outcome, value in (
        ("hit", stats.mirror_hits),
        ("not_found", stats.mirror_misses),
        ("failed", stats.mirror_failures),
    ):
        mirror.add_metric([outcome], value)
    yield mirror
    yield GaugeMetricFamily(
        "unblank_middleware_in_flight", "Requests the app is handling", value=middleware.in_flight
    )
    yield GaugeMetricFamily(
        "unblank_middleware_maintenance",
        "1 while maintenance is on",
        value=int(middleware.in_maintenance),
    )


def _rollout_metrics(rollout: Rollout) -> Iterator[Metric]:
    views = CounterMetricFamily(
        "unblank_rollout_page_views",
        "Shells served by this process, by generation",
        labels=["generation"],
    )
    incidents = CounterMetricFamily(
        "unblank_rollout_incidents",
        "Watchdog reports of a failing page (or its reload) received by this process",
        labels=["generation", "cause"],
    )
    recovered = CounterMetricFamily(
        "unblank_rollout_recovered",
        "Watchdog reports of failures repaired before anything showed",
        labels=["generation", "cause"],
    )
    for (generation, kind, cause), n in sorted(dict(rollout.counted).items()):
        if kind == "view":
            views.add_metric([generation], n)
        else:
            family = incidents if kind == "incident" else recovered
            family.add_metric([generation, cause], n)
    yield views
    yield incidents
    yield recovered
    try:
        status = rollout.status(decisions=1)
    except RolloutError:
        return  # no generation yet, or the shared counts cannot be read: counters only
    yield GaugeMetricFamily(
        "unblank_rollout_state",
        "0 no canary, 1 watching a canary, 2 last canary promoted, 3 last canary rolled back",
        value=status.state_code,
    )
    yield GaugeMetricFamily(
        "unblank_rollout_canary_percent",
        "Share of browsers given the canary (0 when none runs)",
        value=status.canary.percent if status.canary is not None else 0.0,
    )
    rate = GaugeMetricFamily(
        "unblank_rollout_incident_rate",
        "Incidents per page view since the canary started, all processes of this DIST",
        labels=["generation", "role"],
    )
    for counts in status.generations:
        if counts.role != "other":
            rate.add_metric([counts.generation, counts.role], counts.counts.rate)
    yield rate
    if status.verdict is not None:
        yield GaugeMetricFamily(
            "unblank_rollout_evidence",
            "Log-likelihood ratio 'canary worse' vs 'as healthy' (rolled back at "
            "unblank_rollout_rollback_at)",
            value=status.verdict.evidence,
        )
        yield GaugeMetricFamily(
            "unblank_rollout_rollback_at",
            "The evidence at which the policy rolls the canary back",
            value=status.policy.rollback_at,
        )


def _count(origin: OriginStats, name: str) -> int:
    value = getattr(origin, name)
    return int(value)
