"""``POST /_unblank/report``: beacons checked, bounded, rate-limited, logged, counted."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.realserver import serve_in_thread
from unblank.reports import MAX_BODY, Rejected, ReportIntake
from unblank_server.app import StaticApp, create_app

REPORT = {"cause": "integrity", "asset": "js/app.js", "attempts": 3, "generation": "g1"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StaticApp]:
    with create_app(tmp_path, reload_interval=0) as served:  # no generation needed
        yield served


def call(
    app: StaticApp, method: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(
                method, "/_unblank/report", content=body, headers=headers or {}
            )

    return asyncio.run(run())


def test_report_is_accepted_logged_and_counted(
    app: StaticApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="unblank.report"):
        reply = call(app, "POST", json.dumps(REPORT).encode(), {"content-type": "text/plain"})
    assert reply.status_code == 204
    assert reply.content == b""
    assert reply.headers["access-control-allow-origin"] == "*"
    [record] = [r for r in caplog.records if r.name == "unblank.report"]
    assert record.report["cause"] == "integrity"  # type: ignore[attr-defined]
    assert record.report["asset"] == "js/app.js"  # type: ignore[attr-defined]
    metrics = asyncio.run(_metrics(app))
    samples = {
        s.labels["cause"]: s.value
        for f in text_string_to_metric_families(metrics)
        if f.name == "unblank_reports"
        for s in f.samples
    }
    assert samples == {"integrity": 1.0}


async def _metrics(app: StaticApp) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return (await client.get("/_unblank/metrics")).text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'["a list"]', 400),
        (b'{"cause": "boredom"}', 400),
        (b"\xff\xfe", 400),
        (json.dumps({**REPORT, "message": "x" * MAX_BODY}).encode(), 413),
    ],
)
def test_bad_reports_get_a_guided_answer(app: StaticApp, body: bytes, status: int) -> None:
    reply = call(app, "POST", body, {"accept": "application/json"})
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert json.loads(reply.content)["status"] == status


def test_methods_other_than_post(app: StaticApp) -> None:
    reply = call(app, "GET")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "POST, HEAD, OPTIONS"
    probe = call(app, "HEAD")  # the watchdog asking whether this origin answers
    assert probe.status_code == 204 and probe.content == b""
    preflight = call(app, "OPTIONS", headers={"access-control-request-method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "POST"


def test_a_flood_from_one_client_is_limited(app: StaticApp) -> None:
    statuses = [call(app, "POST", json.dumps(REPORT).encode()).status_code for _ in range(25)]
    assert statuses[:20] == [204] * 20
    assert set(statuses[20:]) == {429}
    limited = call(app, "POST", json.dumps(REPORT).encode())
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


def test_fields_are_bounded_and_unknown_ones_dropped() -> None:
    intake = ReportIntake(clock=lambda: 0.0)
    report = intake.accept(
        json.dumps(
            {
                "cause": "chunk-load",
                "asset": "a" * 5000,
                "attempts": True,
                "timings": {"load": 12.5, "bad": "x", "flag": False},
                "password": "hunter2",
            }
        ).encode(),
        "10.0.0.2",
    )
    assert len(report.fields["asset"]) == 512
    assert "attempts" not in report.fields and "password" not in report.fields
    assert report.fields["timings"] == {"load": 12.5}


def test_buckets_refill_with_time() -> None:
    now = [0.0]
    intake = ReportIntake(rate=1.0, burst=2, clock=lambda: now[0])
    body = json.dumps(REPORT).encode()
    intake.accept(body, "c")
    intake.accept(body, "c")
    with pytest.raises(Rejected) as caught:
        intake.accept(body, "c")
    assert caught.value.status == 429
    intake.accept(body, "other client")  # one client's flood is not another's problem
    now[0] += 1.5
    intake.accept(body, "c")
    assert intake.rejected == {"rate_limited": 1}


def test_beacon_through_a_real_server(tmp_path: Path) -> None:
    with create_app(tmp_path, reload_interval=0) as app, serve_in_thread(app) as base:
        reply = httpx.post(
            f"{base}/_unblank/report",
            content=json.dumps(REPORT),
            headers={"content-type": "text/plain;charset=UTF-8", "origin": "http://shop.test"},
        )
        assert reply.status_code == 204
        huge = httpx.post(f"{base}/_unblank/report", content=b"{" + b" " * 100_000 + b"}")
        assert huge.status_code == 413


def test_control_characters_and_lone_surrogates_never_leave_the_intake() -> None:
    # A newline forges a log line, ESC colours a terminal, a lone surrogate
    # (valid JSON) makes every later UTF-8 encoder fail: all become U+FFFD.
    intake = ReportIntake(clock=lambda: 0.0)
    body = b'{"cause": "offline", "asset": "x\\n18:40  chaos: on\\u001b[31m", "message": "\\ud800"}'
    report = intake.accept(body, "10.0.0.9")
    assert report.fields["asset"] == "x\ufffd18:40  chaos: on\ufffd[31m"
    assert report.fields["message"] == "\ufffd"
    json.dumps(report.fields, ensure_ascii=False).encode("utf-8")  # never raises
