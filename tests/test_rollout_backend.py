"""The guarded rollout inside an app backend: counts, assignment, decisions, metrics.

- ``RolloutStore``: counts batched in memory and flushed at most once per
  interval; several processes add to the same SQLite file without losing a
  count; a database that fails keeps the counts for later.
- ``Rollout.assign``: a browser-id cookie on the first visit, the same
  generation for that browser for the whole canary, the percent split over
  10k browsers; hostile cookies are replaced.
- ``Rollout.evaluate``: rolls back a crashing canary and promotes a healthy
  one, records and logs the figures; ``act=False`` only judges.
- ``Shell(rollout=...)`` and ``UnblankMiddleware(rollout=...)`` in-process:
  the shell renders the assigned generation and sets the cookie, reports
  count as incidents of the generation they name, metrics show it all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from unblank import RolloutError, RolloutPolicy, Shell, UnblankMiddleware
from unblank.canary import read_pointers
from unblank.guarded import STORE, UNKNOWN, Rollout
from unblank.metrics import SdkCollector
from unblank.reports import ReportIntake
from unblank.rollout_store import RolloutStore
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "watchdog_app"
OPTIONS = BuildOptions(compression=CompressionSettings(brotli_quality=4, gzip_level=6), jobs=1)
SHORT = RolloutPolicy(min_page_views=20, min_duration=0)
SHELL = """<!doctype html><html><head>{{ unblank_head() }}{{ import_map() }}
{{ asset_tag("main.js") }}</head><body><div id="app"></div>
<img src="{{ asset_url('app.css') }}"></body></html>"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """Stable v1 and a canary v2 at 50%."""
    out = tmp_path / "dist"
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    build(src, out, OPTIONS)
    (src / "report.js").write_text("export function renderReport(slot) { slot.textContent = 2; }\n")
    build(src, out, BuildOptions(canary=50.0, jobs=1))
    return out


@pytest.fixture
def rollout(dist: Path) -> Iterator[Rollout]:
    made = Rollout(dist, policy=SHORT, check_interval=None)
    yield made
    made.close()


def request(cookie: str | None = None, scheme: str = "http") -> Request:
    headers = [(b"cookie", f"unblank_rollout={cookie}".encode())] if cookie else []
    return Request(
        {"type": "http", "method": "GET", "path": "/", "headers": headers, "scheme": scheme}
    )


def browser_of(set_cookie: str) -> str:
    found = re.match(r"unblank_rollout=([A-Za-z0-9_-]+);", set_cookie)
    assert found, set_cookie
    return found.group(1)


# --------------------------------------------------------------------------- the store


def test_store_batches_counts_until_the_interval(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "rollout.sqlite3"
    writer = RolloutStore(path, flush_interval=1.0, clock=clock)
    reader = RolloutStore(path)
    for _ in range(100):
        writer.add("g2", "g2", "view")
    assert writer.pending == 100
    assert reader.rows("g2") == []  # no transaction per page view
    clock.now = 1.0
    writer.add("g2", "g1", "view")
    assert writer.pending == 0
    assert sorted(reader.rows("g2")) == [("g1", "view", "", 1), ("g2", "view", "", 100)]
    writer.add("g2", "g2", "incident", "app-crash")
    writer.close()  # flushes what is left
    assert ("g2", "incident", "app-crash", 1) in reader.rows("g2")
    assert reader.rows("") == []
    reader.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _add_counts(path: str, views: int) -> None:
    store = RolloutStore(path, flush_interval=0.001)
    for n in range(views):
        store.add("g2", "g2" if n % 2 else "g1", "view")
        if n % 10 == 0:
            store.add("g2", "g2", "incident", "app-crash")
    store.close()


def test_several_processes_add_to_the_same_counts(tmp_path: Path) -> None:
    path = str(tmp_path / "rollout.sqlite3")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_add_counts, args=(path, 3000)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    rows = {(g, k, c): n for g, k, c, n in RolloutStore(path).rows("g2")}
    assert rows == {
        ("g1", "view", ""): 4500,
        ("g2", "view", ""): 4500,
        ("g2", "incident", "app-crash"): 900,
    }


def test_a_failing_database_keeps_the_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = True

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if broken:
            raise sqlite3.OperationalError("database is locked")
        connection: sqlite3.Connection = sqlite3.connect(*args, **kwargs)
        return connection

    store = RolloutStore(tmp_path / "r.sqlite3", flush_interval=0, connect=connect)
    with caplog.at_level(logging.WARNING, logger="unblank.rollout"):
        store.add("", "g1", "view")
        store.add("", "g1", "view")
    assert store.pending == 2
    assert len([r for r in caplog.records if "kept in memory" in r.message]) == 1  # said once
    broken = False
    assert store.flush()
    assert store.rows("") == [("g1", "view", "", 2)]


def test_store_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="kind"):
        RolloutStore(":memory:").add("", "g", "click")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- assignment


def test_without_a_canary_everyone_gets_stable_and_no_cookie(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    build(FIXTURE, out, OPTIONS)
    only = Rollout(out, check_interval=None)
    assignment = only.assign(request())
    assert not assignment.canary and assignment.set_cookie is None
    assert assignment.manifest == read_pointers(out).stable


def test_assignment_is_sticky_per_browser(rollout: Rollout) -> None:
    first = rollout.assign(request())
    assert first.set_cookie is not None
    assert "Path=/" in first.set_cookie and "HttpOnly" in first.set_cookie
    assert "SameSite=Lax" in first.set_cookie and "Max-Age=" in first.set_cookie
    assert "Secure" not in first.set_cookie
    browser = browser_of(first.set_cookie)
    for _ in range(20):
        again = rollout.assign(request(browser))
        assert again.set_cookie is None
        assert again.manifest.generation == first.manifest.generation
    assert "; Secure" in (rollout.assign(request(scheme="https")).set_cookie or "")


def test_assignment_splits_10k_browsers(rollout: Rollout) -> None:
    canary = sum(
        rollout.assign(request(f"synthetic-browser-{n:06d}")).canary for n in range(10_000)
    )
    assert 4800 <= canary <= 5200  # 50% +- 4 standard errors


@pytest.mark.parametrize("cookie", ["short", "x" * 65, "bad value!", "../../etc"])
def test_a_hostile_cookie_is_replaced(rollout: Rollout, cookie: str) -> None:
    assert rollout.assign(request(cookie)).set_cookie is not None


def test_one_page_view_per_request(rollout: Rollout) -> None:
    one = request()
    first = rollout.assign(one)
    assert rollout.assign(one) is first
    generation = first.manifest.generation
    assert rollout.counted == {(generation, "view", ""): 1}


def test_a_broken_canary_pointer_never_takes_the_site_down(
    rollout: Rollout, caplog: pytest.LogCaptureFixture
) -> None:
    stable = read_pointers(rollout.dist).stable
    (Path(rollout.dist) / "canary.json").write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="unblank.rollout"):
        for _ in range(3):
            assignment = rollout.assign(request())
            assert assignment.manifest == stable and not assignment.canary
    assert len([r for r in caplog.records if "stable generation only" in r.message]) == 1


# --------------------------------------------------------------------------- counting, deciding


def test_reports_count_by_outcome(rollout: Rollout) -> None:
    pointers = read_pointers(rollout.dist)
    canary = pointers.canary_manifest
    assert canary is not None
    assert rollout.incident(canary.generation, "app-crash", "page")
    assert rollout.incident(canary.generation, "app-crash", "reloading")
    assert rollout.incident(canary.generation, "not-found")
    assert not rollout.incident(canary.generation, "integrity", "recovered")
    rollout.incident("a-generation-dist-never-had", "app-crash", "page")
    assert rollout.counted[(canary.generation, "incident", "app-crash")] == 2
    assert rollout.counted[(canary.generation, "recovered", "integrity")] == 1
    assert rollout.counted[(UNKNOWN, "incident", "app-crash")] == 1


def fill(rollout: Rollout, *, stable: tuple[int, int], canary: tuple[int, int]) -> None:
    pointers = read_pointers(rollout.dist)
    assert pointers.stable is not None and pointers.canary_manifest is not None
    for generation, (views, incidents) in (
        (pointers.stable.generation, stable),
        (pointers.canary_manifest.generation, canary),
    ):
        for _ in range(views):
            rollout.page_view(generation)
        for _ in range(incidents):
            rollout.incident(generation, "app-crash", "page")


def test_a_crashing_canary_is_rolled_back_and_logged(
    rollout: Rollout, caplog: pytest.LogCaptureFixture
) -> None:
    before = read_pointers(rollout.dist)
    assert before.canary is not None and before.stable is not None
    fill(rollout, stable=(30, 0), canary=(30, 30))
    with caplog.at_level(logging.INFO, logger="unblank.rollout"):
        decision = rollout.evaluate()
    assert decision is not None and decision.action == "rollback"
    after = read_pointers(rollout.dist)
    assert after.canary is None and after.stable == before.stable
    [line] = [r for r in caplog.records if r.name == "unblank.rollout"]
    assert line.levelno == logging.WARNING
    assert "rolled back by policy (pid" in line.getMessage()
    assert "canary_incidents=30" in line.getMessage() and "evidence=" in line.getMessage()
    status = rollout.status()
    assert status.state == "rolled back" and status.state_code == 3
    [record] = status.decisions
    assert record.action == "rollback" and record.canary == before.canary.generation
    assert record.figures["canary_page_views"] == 30 and record.figures["verdict"] == "rollback"
    # New pages get the stable generation, and no cookie is needed any more.
    assert rollout.assign(request()).manifest == before.stable
    assert rollout.evaluate() is None


def test_a_healthy_canary_is_promoted(rollout: Rollout) -> None:
    before = read_pointers(rollout.dist)
    assert before.canary_manifest is not None
    fill(rollout, stable=(25, 0), canary=(25, 0))
    decision = rollout.evaluate()
    assert decision is not None and decision.action == "promote"
    assert read_pointers(rollout.dist).stable == before.canary_manifest
    assert rollout.status().state == "promoted"


def test_act_false_only_judges(dist: Path, caplog: pytest.LogCaptureFixture) -> None:
    watcher = Rollout(dist, policy=SHORT, check_interval=None, act=False)
    fill(watcher, stable=(30, 0), canary=(30, 30))
    with caplog.at_level(logging.INFO, logger="unblank.rollout"):
        decision = watcher.evaluate()
        assert watcher.evaluate() == decision
    assert decision is not None and decision.action == "rollback"
    assert read_pointers(dist).canary is not None
    assert watcher.status().verdict == decision
    [line] = [r.getMessage() for r in caplog.records if r.name == "unblank.rollout"]
    assert "should be rolled back (act=False" in line
    watcher.close()


def test_the_request_path_evaluates_every_check_interval(dist: Path) -> None:
    clock = Clock()
    checked = Rollout(dist, policy=SHORT, check_interval=5.0, clock=clock)
    fill(checked, stable=(30, 0), canary=(30, 30))
    # The first count evaluated (nothing to see yet); the next look is 5 s later.
    assert read_pointers(dist).canary is not None
    clock.now = 5.0
    checked.page_view("a page view, any generation")
    assert read_pointers(dist).canary is None
    checked.close()


def test_the_elapsed_time_counts_from_the_pointer(dist: Path) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    timed = Rollout(
        dist, policy=RolloutPolicy(min_page_views=1), check_interval=None, now=lambda: later
    )
    status = timed.status()
    assert 7190 < status.elapsed < 7300
    assert status.verdict is not None and "needs 1 page views and 300 s" in status.verdict.reason
    timed.close()


def test_the_cli_judges_with_the_policy_the_app_saved(
    rollout: Rollout, capsys: pytest.CaptureFixture[str]
) -> None:
    from unblank_server.cli import main

    rollout.evaluate()  # saves SHORT
    assert main(["rollout", str(rollout.dist), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"]["min_page_views"] == 20


# --------------------------------------------------------------------------- shell, middleware


def backend(rollout: Rollout) -> Starlette:
    templates = Jinja2Templates(
        env=jinja2.Environment(loader=jinja2.DictLoader({"shell": SHELL}), autoescape=True)
    )
    shell = Shell(rollout=rollout, base_url="/static/")
    shell.install(templates.env)

    async def index(request: Request) -> Response:
        return shell.template_response(templates, request, "shell")

    intake = ReportIntake(rate=1000, burst=1000)
    return Starlette(
        routes=[Route("/", index)],
        middleware=[Middleware(UnblankMiddleware, rollout=rollout, reports=intake)],
    )


async def visit(app: Starlette, browsers: int) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    answers = []
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(browsers):
            client.cookies.clear()
            first = await client.get("/")
            again = await client.get("/")  # the same browser, cookie sent back
            assert again.headers["x-unblank-generation"] == first.headers["x-unblank-generation"]
            assert "set-cookie" not in again.headers
            answers.append(first)
    return answers


def test_the_shell_renders_the_assigned_generation(rollout: Rollout) -> None:
    pointers = read_pointers(rollout.dist)
    assert pointers.stable is not None and pointers.canary_manifest is not None
    answers = asyncio.run(visit(backend(rollout), 16))
    seen = {a.headers["x-unblank-generation"] for a in answers}
    assert seen == {pointers.stable.generation, pointers.canary_manifest.generation}
    for answer in answers:
        manifest = (
            pointers.stable
            if answer.headers["x-unblank-generation"] == pointers.stable.generation
            else pointers.canary_manifest
        )
        found = re.search(r'\{"generation".*?\}(?=;|\))', answer.text)
        assert found is not None
        config = json.loads(found.group(0))
        assert config["generation"] == manifest.generation  # the watchdog reports it
        assert manifest.asset("main.js").path in answer.text
        assert manifest.asset("app.css").path in answer.text  # asset_url too
        assert manifest.asset("report.js").path in answer.text  # the import map
        assert answer.headers["cache-control"] == "private, no-cache"
        assert answer.headers["vary"] == "Accept-Language, Cookie"
        assert "unblank_rollout=" in answer.headers["set-cookie"]
    views = sum(n for (_, kind, _), n in rollout.counted.items() if kind == "view")
    assert views == 32


async def report(app: Starlette, body: dict[str, Any]) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/_unblank/report", content=json.dumps(body))
        return answer.status_code


def test_reports_become_incidents_of_their_generation(rollout: Rollout) -> None:
    app = backend(rollout)
    canary = read_pointers(rollout.dist).canary_manifest
    assert canary is not None
    body = {"cause": "app-crash", "outcome": "page", "generation": canary.generation}
    assert asyncio.run(report(app, body)) == 204
    assert asyncio.run(report(app, {**body, "outcome": "recovered"})) == 204
    assert asyncio.run(report(app, {"cause": "app-crash"})) == 204  # no generation: unknown
    assert rollout.counted == {
        (canary.generation, "incident", "app-crash"): 1,
        (canary.generation, "recovered", "app-crash"): 1,
        (UNKNOWN, "incident", "app-crash"): 1,
    }


def test_metrics_show_counts_rates_and_state(rollout: Rollout) -> None:
    fill(rollout, stable=(10, 1), canary=(10, 2))
    pointers = read_pointers(rollout.dist)
    assert pointers.stable is not None and pointers.canary_manifest is not None
    registry = CollectorRegistry()
    registry.register(SdkCollector(rollout=rollout))
    text = generate_latest(registry).decode()
    stable, canary = pointers.stable.generation, pointers.canary_manifest.generation
    assert f'unblank_rollout_page_views_total{{generation="{canary}"}} 10.0' in text
    assert f'unblank_rollout_incidents_total{{cause="app-crash",generation="{canary}"}} 2.0' in text
    assert f'unblank_rollout_incident_rate{{generation="{canary}",role="canary"}} 0.2' in text
    assert f'unblank_rollout_incident_rate{{generation="{stable}",role="stable"}} 0.1' in text
    assert "unblank_rollout_state 1.0" in text
    assert "unblank_rollout_canary_percent 50.0" in text
    assert "unblank_rollout_evidence " in text and "unblank_rollout_rollback_at 2.77" in text


def test_shell_and_middleware_check_what_they_are_given() -> None:
    with pytest.raises(ValueError, match="manifest"):
        Shell()
    with pytest.raises(ValueError, match="Rollout"):
        Shell(rollout="static-dist")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Rollout"):
        UnblankMiddleware(backend, rollout=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cookie"):
        Rollout("d", cookie="a b")
    with pytest.raises(ValueError, match="check_interval"):
        Rollout("d", check_interval=-1)


def test_the_store_lives_in_dist(rollout: Rollout) -> None:
    rollout.page_view("x")
    rollout.close()
    assert (Path(rollout.dist) / STORE).is_file()


def test_the_cli_status_shows_counts_and_causes(
    rollout: Rollout, capsys: pytest.CaptureFixture[str]
) -> None:
    from unblank_server.cli import main

    fill(rollout, stable=(90, 2), canary=(10, 1))
    pointers = read_pointers(rollout.dist)
    assert pointers.stable is not None and pointers.canary_manifest is not None
    rollout.incident(pointers.stable.generation, "offline", "page")
    rollout.incident(pointers.canary_manifest.generation, "integrity", "recovered")
    rollout.close()
    assert main(["rollout", str(rollout.dist), "status"]) == 0
    text = capsys.readouterr().out
    assert f"  {pointers.stable.generation}  stable          90          2  2.22%" in text
    assert f"  {pointers.canary_manifest.generation}  canary          10          1  10.00%" in text
    assert "  stable  app-crash 2; not weighed: offline 1" in text
    assert "  canary  app-crash 1; recovered: integrity 1" in text


def test_assign_needs_a_request_it_can_remember_the_draw_in(rollout: Rollout) -> None:
    with pytest.raises(RolloutError, match="ASGI request"):
        rollout.assign(object())
