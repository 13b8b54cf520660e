"""Counters kept on the request path, exposed in the Prometheus text format.

The request path only adds to plain integers (one event loop, no locks); a
``prometheus_client`` collector turns them into metric families when
``/_unblank/metrics`` is scraped. Counters are per process: with several
workers, each worker answers with its own.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["BOUNDS", "Gauges", "Stats", "exposition"]

# Latency buckets in seconds: from a memory hit (well under a millisecond) to a
# stalled client; the last bound is +Inf by the histogram's definition.
BOUNDS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class Stats:
    """What the server has done since it started."""

    def __init__(self) -> None:
        self.requests: dict[tuple[int, str], int] = {}
        self.bytes_sent = 0
        self.buckets = [0] * (len(BOUNDS) + 1)
        self.seconds_total = 0.0
        self.shed = 0
        self.reloads = 0
        self.reload_failures = 0

    def record(self, status: int, coding: str | None, body_bytes: int, seconds: float) -> None:
        key = (status, coding or "identity")
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.bytes_sent += body_bytes
        self.buckets[bisect_left(BOUNDS, seconds)] += 1
        self.seconds_total += seconds


@dataclass(frozen=True, slots=True)
class Gauges:
    """Values read from the server at scrape time."""

    tier_hits: int
    tier_misses: int
    tier_bytes: int
    in_flight: int
    generation: str | None
    generations: int
    reports: dict[str, int] = field(default_factory=dict)
    reports_rejected: dict[str, int] = field(default_factory=dict)


class _Collector(Collector):
    def __init__(self, stats: Stats, gauges: Callable[[], Gauges]) -> None:
        self._stats = stats
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        requests = CounterMetricFamily(
            "unblank_requests",
            "Requests answered, by status and content coding",
            labels=["status", "encoding"],
        )
        for (status, coding), count in sorted(stats.requests.items()):
            requests.add_metric([str(status), coding], count)
        yield requests
        yield CounterMetricFamily(
            "unblank_response_body_bytes", "Response body bytes sent", value=stats.bytes_sent
        )
        yield CounterMetricFamily(
            "unblank_shed_requests",
            "Requests answered at once with 503 because too many were in flight",
            value=stats.shed,
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, BOUNDS), "+Inf"), stats.buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "unblank_request_duration_seconds",
            "Time from a request's arrival to its last byte handed to the server",
            buckets=buckets,
            sum_value=stats.seconds_total,
        )
        yield CounterMetricFamily(
            "unblank_generation_reloads", "New generations loaded", value=stats.reloads
        )
        yield CounterMetricFamily(
            "unblank_generation_reload_failures",
            "Attempts to load a new manifest.json that failed (the last good one stays)",
            value=stats.reload_failures,
        )
        gauges = self._gauges()
        hits, misses = gauges.tier_hits, gauges.tier_misses
        yield CounterMetricFamily(
            "unblank_memory_tier_hits", "Bodies served from memory", value=hits
        )
        yield CounterMetricFamily(
            "unblank_memory_tier_misses", "Bodies that had to be read from disk", value=misses
        )
        yield GaugeMetricFamily(
            "unblank_memory_tier_hit_ratio",
            "Share of memory-tier lookups that found the body in memory",
            value=hits / (hits + misses) if hits + misses else 0.0,
        )
        yield GaugeMetricFamily(
            "unblank_memory_tier_bytes", "Bytes held by the memory tier", value=gauges.tier_bytes
        )
        yield GaugeMetricFamily(
            "unblank_in_flight_requests", "Requests being answered now", value=gauges.in_flight
        )
        info = GaugeMetricFamily(
            "unblank_generation_info",
            "The generation served as current (value 1), by id",
            labels=["generation"],
        )
        if gauges.generation:
            info.add_metric([gauges.generation], 1)
        yield info
        reports = CounterMetricFamily(
            "unblank_reports", "Incident reports accepted from browsers, by cause", labels=["cause"]
        )
        for cause, count in sorted(gauges.reports.items()):
            reports.add_metric([cause], count)
        yield reports
        rejected = CounterMetricFamily(
            "unblank_reports_rejected", "Incident reports refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(gauges.reports_rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily(
            "unblank_generations_served",
            "Generations whose files are served (the current one and those retained)",
            value=gauges.generations,
        )


def exposition(stats: Stats, gauges: Callable[[], Gauges]) -> bytes:
    """The metrics page: a registry of its own per call, never the global one."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats, gauges))
    return generate_latest(registry)
