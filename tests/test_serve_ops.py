"""Operating `unblank serve`: load shedding, health, metrics and the access log.

Every test runs the app under a real uvicorn server on 127.0.0.1.

- Beyond ``max_in_flight`` requests being answered, the next ones get a 503
  at once, with ``Retry-After`` and the ``overloaded`` guided page; the
  admitted ones complete, byte for byte; health and metrics are never shed.
- ``/_unblank/health`` is ready once a generation is loaded (503 before),
  ``/_unblank/health/live`` always answers 200.
- ``/_unblank/metrics`` is Prometheus text whose values follow the requests.
- The access log has one structured record per request; its JSON formatter
  writes one valid JSON object per line.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.test_serve_deploy import health, publish, serving, sri384, wait_for
from unblank import Manifest
from unblank_server.serving import JsonFormatter

BLOB_SIZE = 16 << 20  # far more than loopback socket buffers hold for a client that does not read
RETRY_AFTER = 7
OVERLOADED_TITLE = "We are very busy right now"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def blob_dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """DIST with a large binary file (never precompressed) and the small front end."""
    src = tmp_path_factory.mktemp("blob_src")
    (src / "blob.bin").write_bytes(os.urandom(BLOB_SIZE))
    dist = tmp_path_factory.mktemp("blob") / "dist"
    return dist, publish(src, dist, 0)


def scrape(base_url: str) -> tuple[Samples, int]:
    """Every sample of the metrics page by (name, labels), and the page's size."""
    answer = httpx.get(f"{base_url}/_unblank/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return samples, len(answer.content)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --------------------------------------------------------------------------- load shedding


def check_overloaded(answer: httpx.Response, accept: str) -> None:
    assert answer.status_code == 503, answer.text[:300]
    assert answer.headers["retry-after"] == str(RETRY_AFTER)
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["access-control-allow-origin"] == "*"
    if accept == "text/html":
        assert answer.headers["content-type"].startswith("text/html")
        assert OVERLOADED_TITLE in answer.text
    else:
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert problem["status"] == 503 and problem["type"] == "/_unblank/pages/overloaded"
        assert problem["retry_after"] == RETRY_AFTER


def test_overload_is_shed_with_503_and_admitted_requests_complete(
    blob_dist: tuple[Path, Manifest],
) -> None:
    dist, manifest = blob_dist
    blob = manifest.assets["blob.bin"]
    small = manifest.assets["app.js"]
    with (
        serving(dist, max_in_flight=2, memory_bytes=0, shed_retry_after=RETRY_AFTER) as (_, url),
        ExitStack() as stack,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        # Two downloads the client does not read yet: both admitted, both stay in flight.
        held = [stack.enter_context(client.stream("GET", f"/static/{blob.path}")) for _ in range(2)]
        assert [r.status_code for r in held] == [200, 200]
        wait_for(lambda: health(url)["in_flight"] == 2, "two requests in flight")

        # Everything else that needs a file is answered at once with 503 ...
        accepts = ["text/html", "application/problem+json"] * 4
        paths = [blob.path, small.path, "app.js", blob.path] * 2

        def fetch(i: int) -> httpx.Response:
            return httpx.get(f"{url}/static/{paths[i]}", headers={"accept": accepts[i]}, timeout=10)

        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            shed = list(pool.map(fetch, range(len(paths))))
        for answer, accept in zip(shed, accepts, strict=True):
            check_overloaded(answer, accept)
        # ... HEAD too, without a body.
        head = httpx.head(f"{url}/static/{small.path}")
        assert head.status_code == 503 and head.content == b""
        assert head.headers["retry-after"] == str(RETRY_AFTER)

        # Health and metrics are answered, not shed, and count what happened.
        report = health(url)
        assert report["http_status"] == 200 and report["in_flight"] == 2
        assert httpx.get(f"{url}/_unblank/health/live").status_code == 200
        samples, _ = scrape(url)
        assert value(samples, "unblank_shed_requests_total") == len(paths) + 1
        assert value(samples, "unblank_in_flight_requests") == 2
        assert value(samples, "unblank_requests_total", status="503", encoding="identity") == (
            len(paths) + 1
        )

        # The admitted downloads complete, byte for byte.
        for response in held:
            body = response.read()
            assert len(body) == int(response.headers["content-length"]) == blob.size
            assert sri384(body) == blob.integrity
        wait_for(lambda: health(url)["in_flight"] == 0, "the downloads to finish")
        again = httpx.get(f"{url}/static/{small.path}")
        assert again.status_code == 200 and sri384(again.content) == small.integrity


def test_a_burst_gets_complete_files_or_overloaded_pages(
    blob_dist: tuple[Path, Manifest],
) -> None:
    dist, manifest = blob_dist
    blob = manifest.assets["blob.bin"]
    clients = 6
    start = threading.Barrier(clients)

    def download(_: int) -> tuple[int, httpx.Headers, bytes]:
        start.wait(timeout=10)
        with httpx.Client(timeout=20) as client:
            answer = client.get(f"{url}/static/{blob.path}", headers={"accept": "text/html"})
            return answer.status_code, answer.headers, answer.content

    with serving(dist, max_in_flight=2, memory_bytes=0, shed_retry_after=RETRY_AFTER) as (_, url):
        with ThreadPoolExecutor(max_workers=clients) as pool:
            answers = list(pool.map(download, range(clients)))
        samples, _ = scrape(url)
    complete = 0
    for status, headers, body in answers:
        assert status in (200, 503)
        assert int(headers["content-length"]) == len(body)
        if status == 200:
            assert sri384(body) == blob.integrity
            complete += 1
        else:
            assert headers["retry-after"] == str(RETRY_AFTER)
            assert OVERLOADED_TITLE.encode() in body
    assert complete >= 1
    assert value(samples, "unblank_shed_requests_total") == clients - complete


# --------------------------------------------------------------------------- health


def test_health_before_and_after_the_first_build(tmp_path: Path) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    dist.mkdir()
    with serving(dist) as (_, url):
        report = health(url)
        assert report["http_status"] == 503
        assert report["status"] == "unavailable" and report["ready"] is False
        assert report["generation"] is None and report["generations"] == []
        assert "unblank build" in report["problem"]
        live = httpx.get(f"{url}/_unblank/health/live")
        assert live.status_code == 200 and live.json()["status"] == "ok"
        assert live.headers["cache-control"] == "no-store"
        # No generation yet: files and the manifest are "maintenance", never a blank.
        for path in ("/static/app.js", "/_unblank/manifest.json"):
            answer = httpx.get(f"{url}{path}", headers={"accept": "application/problem+json"})
            assert answer.status_code == 503, path
            assert answer.json()["type"] == "/_unblank/pages/maintenance"
            assert "retry-after" in answer.headers
        samples, _ = scrape(url)
        assert not [key for key in samples if key[0] == "unblank_generation_info"]
        assert value(samples, "unblank_generations_served") == 0

        manifest = publish(src, dist, 0)
        wait_for(lambda: health(url)["http_status"] == 200, "the first generation")
        report = health(url)
        assert report["status"] == "ok" and report["ready"] is True
        assert report["generation"] == manifest.generation
        assert report["generations"] == [manifest.generation]
        assert report["files"] > 0 and "problem" not in report
        assert httpx.get(f"{url}/_unblank/health/ready").status_code == 200
        assert httpx.get(f"{url}/_unblank/health/live").json()["generation"] == (
            manifest.generation
        )
        head = httpx.head(f"{url}/_unblank/health")
        assert head.status_code == 200 and head.content == b""
        assert httpx.post(f"{url}/_unblank/health").status_code == 405


# --------------------------------------------------------------------------- metrics


def test_metrics_follow_the_requests(tmp_path: Path) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    first = publish(src, dist, 0)
    app_js = first.assets["app.js"]
    assert set(app_js.encodings) == {"br", "gzip"}
    with serving(dist) as (_, url):
        before, page_size = scrape(url)
        assert value(before, "unblank_generation_info", generation=first.generation) == 1
        assert value(before, "unblank_generations_served") == 1
        assert value(before, "unblank_generation_reloads_total") == 1
        assert value(before, "unblank_generation_reload_failures_total") == 0
        assert value(before, "unblank_in_flight_requests") == 0

        sent = 0
        with httpx.Client(base_url=url) as client:
            for coding in ("br", "br", "identity", "identity", "gzip"):
                with client.stream(
                    "GET", f"/static/{app_js.path}", headers={"accept-encoding": coding}
                ) as answer:
                    raw = b"".join(answer.iter_raw())
                assert answer.status_code == 200
                assert answer.headers.get("content-encoding", "identity") == coding
                sent += len(raw)
            missing = client.get("/static/app.000000000000.js")
            assert missing.status_code == 404
            sent += len(missing.content)
        after, _ = scrape(url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("unblank_requests_total", status="200", encoding="br") == 2
    assert delta("unblank_requests_total", status="200", encoding="gzip") == 1
    # Two identity GETs, and the first scrape, which was counted once it was sent.
    assert delta("unblank_requests_total", status="200", encoding="identity") == 3
    assert delta("unblank_requests_total", status="404", encoding="identity") == 1
    assert delta("unblank_response_body_bytes_total") == sent + page_size
    # Each variant misses once, is loaded, then hits.
    assert delta("unblank_memory_tier_misses_total") == 3
    assert delta("unblank_memory_tier_hits_total") == 2
    hits = value(after, "unblank_memory_tier_hits_total")
    misses = value(after, "unblank_memory_tier_misses_total")
    assert value(after, "unblank_memory_tier_hit_ratio") == pytest.approx(hits / (hits + misses))
    tier_bytes = app_js.size + app_js.encodings["br"] + app_js.encodings["gzip"]
    assert value(after, "unblank_memory_tier_bytes") == tier_bytes
    # The latency histogram: cumulative buckets ending in +Inf == count.
    count = value(after, "unblank_request_duration_seconds_count")
    assert count - value(before, "unblank_request_duration_seconds_count") == 7
    buckets = sorted(
        (float(dict(labels)["le"]), number)
        for (name, labels), number in after.items()
        if name == "unblank_request_duration_seconds_bucket"
    )
    assert len(buckets) >= 10 and buckets[-1] == (float("inf"), count)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets))
    assert value(after, "unblank_request_duration_seconds_sum") > 0


def test_metrics_name_the_generation_served(tmp_path: Path) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    first = publish(src, dist, 0)
    with serving(dist) as (_, url):
        second = publish(src, dist, 1)
        wait_for(lambda: health(url)["generation"] == second.generation, "the new generation")
        samples, _ = scrape(url)
    info = {dict(labels)["generation"]: number for (name, labels), number in samples.items()
            if name == "unblank_generation_info"}  # fmt: skip
    assert info == {second.generation: 1}
    assert value(samples, "unblank_generations_served") == 2
    assert value(samples, "unblank_generation_reloads_total") == 2
    assert first.generation != second.generation


# --------------------------------------------------------------------------- access log


@contextmanager
def access_log_to(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Send ``unblank.access`` records to ``caplog``, whatever its propagation is set to
    (``unblank serve`` turns it off to write JSON lines on stdout)."""
    access = logging.getLogger("unblank.access")
    level, propagate = access.level, access.propagate
    handler = caplog.handler  # the handler of the test's call phase
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False  # or the root logger's copy of the handler sees each twice
    try:
        yield
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
        access.propagate = propagate


def access_only(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "unblank.access"]


def test_access_log_has_one_structured_record_per_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    manifest = publish(src, dist, 0)
    app_js = manifest.assets["app.js"]
    with (
        access_log_to(caplog),
        serving(dist, access_log=True) as (_, url),
        httpx.Client(base_url=url) as client,
    ):
        client.get(
            f"/static/{app_js.path}",
            params={"v": "1"},
            headers={"accept-encoding": "br", "x-request-id": "req-42", "user-agent": "probe/1"},
        )
        client.head("/static/missing.000000000000.js")
        client.get("/_unblank/health")
        wait_for(lambda: len(access_only(caplog.records)) >= 3, "three access records")
        time.sleep(0.1)  # nothing more arrives
    records = access_only(caplog.records)
    assert len(records) == 3
    fields = [getattr(r, "http") for r in records]  # noqa: B009 - set through `extra`
    first, second, third = fields
    assert first["method"] == "GET" and first["path"] == f"/static/{app_js.path}"
    assert first["query"] == "v=1" and first["status"] == 200 and first["encoding"] == "br"
    assert first["bytes"] == app_js.encodings["br"]
    assert first["request_id"] == "req-42" and first["user_agent"] == "probe/1"
    assert first["client"].startswith("127.0.0.1:")
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert (second["method"], second["status"], second["bytes"]) == ("HEAD", 404, 0)
    assert second["query"] is None and second["request_id"] is None
    assert (third["path"], third["status"]) == ("/_unblank/health", 200)
    assert records[0].getMessage() == f"GET /static/{app_js.path} 200"

    formatter = JsonFormatter()
    for record, http in zip(records, fields, strict=True):
        line = formatter.format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert entry["logger"] == "unblank.access" and entry["level"] == "info"
        assert entry["message"] == record.getMessage()
        assert entry["http"] == http
        assert entry["time"].endswith("+00:00")


def test_json_formatter_writes_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("unblank.serve").makeRecord(
            "unblank.serve", logging.ERROR, __file__, 1, "failed: %s", ("ünïcode",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["message"] == "failed: ünïcode"
    assert "ValueError: boom" in entry["exception"]
    assert "http" not in entry
