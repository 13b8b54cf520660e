"""Guarded rollout end to end, in Chromium: canaries promoted and rolled back by themselves.

An app backend (Starlette + ``Shell(rollout=...)`` + ``UnblankMiddleware(rollout=...)``)
renders the fixture app's shell from a DIST served by ``unblank serve``; the
rollout policy is short (a few page views, no minimum duration) and checked
every 0.2 s from the request path. Each page load is a new browser: a fresh
tab with cookies and storage cleared, so it draws its own assignment.

1. A healthy canary at 50% is promoted once it has had its page views with
   no incident; pages then render the new generation.
2. A canary whose entry script throws at boot: its pages end on the
   ``app-crash`` guided page (after one reload), the watchdog reports them
   with the canary's generation, and the policy rolls it back by itself;
   new page loads get the stable generation and render.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from selenium import webdriver
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from tests.watchdog_matrix import (
    CSP,
    FIXTURE,
    fresh_tab,
    new_driver,
    origin_app,
    running,
    screenshot_is_not_blank,
    unique,
    wait_for,
)
from unblank import Rollout, RolloutPolicy, Shell, UnblankMiddleware
from unblank.canary import abort_canary, read_pointers
from unblank.metrics import SdkCollector
from unblank.reports import ReportIntake
from unblank.shell import WatchdogSettings
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings

pytestmark = pytest.mark.browser

OPTIONS = BuildOptions(compression=CompressionSettings(brotli_quality=4, gzip_level=6), jobs=1)
# Few page views, no minimum duration; allowed_ratio 3 keeps the number of
# crashing pages the evidence needs small (about six at a 50% split).
POLICY = RolloutPolicy(min_page_views=6, min_duration=0, allowed_ratio=3.0)
WATCHDOG = WatchdogSettings(ready_timeout=3, asset_timeout=3, retry_for=4, crash_grace=0.5)
MAX_LOADS = 40  # page loads a canary may take before the test gives up
SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Fixture app</title>
{{ unblank_head() }}
{{ import_map() }}
{{ asset_tag("app.css") }}
{{ asset_tag("main.js") }}
</head>
<body><div id="app"></div></body>
</html>
"""


@dataclass
class Site:
    dist: Path
    src: Path
    rollout: Rollout
    shell: Shell
    driver: webdriver.Chrome
    urls: list[str] = field(default_factory=list)  # backend, origin
    served: list[str] = field(default_factory=list)  # the generation of every shell served

    def load(self) -> dict[str, Any]:
        """Open the app as a new browser; returns what the tab ends on."""
        fresh_tab(self.driver, self.urls)
        before = len(self.served)
        self.driver.get(f"{self.urls[0]}/?t={unique()}")
        state, _ = wait_for(
            self.driver,
            lambda s: (bool(s.get("rendered")) and bool(s.get("ready"))) or bool(s.get("page")),
            20,
        )
        state["generation"] = self.served[before] if len(self.served) > before else None
        return state

    def build(self, src: Path, *, canary: float | None = None) -> str:
        """Publish ``src``; returns the new generation once the origin serves its files."""
        result = build(src, self.dist, BuildOptions(canary=canary, jobs=1))
        pointers = read_pointers(self.dist)
        manifest = pointers.canary_manifest if canary else pointers.stable
        assert manifest is not None and manifest.generation == result.generation
        entry = manifest.asset("main.js").path
        deadline = time.monotonic() + 10
        while httpx.get(f"{self.urls[1]}/static/{entry}").status_code != 200:
            assert time.monotonic() < deadline, "the origin never served the new generation"
            time.sleep(0.1)
        return result.generation


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("rollout")
    src = root / "src"
    shutil.copytree(FIXTURE, src)
    dist = root / "dist"
    build(src, dist, OPTIONS)
    rollout = Rollout(dist, policy=POLICY, check_interval=0.2)
    shell = Shell(rollout=rollout, watchdog=WATCHDOG)
    templates = Jinja2Templates(
        env=jinja2.Environment(loader=jinja2.DictLoader({"shell": SHELL}), autoescape=True)
    )
    shell.install(templates.env)
    served: list[str] = []

    async def index(request: Request) -> Response:
        served.append(shell.manifest_for(request).generation)
        return shell.template_response(templates, request, "shell")

    backend = Starlette(
        routes=[Route("/", index)],
        middleware=[
            Middleware(
                UnblankMiddleware,
                rollout=rollout,
                reports=ReportIntake(rate=1000, burst=1000),
                content_security_policy=CSP,
            )
        ],
    )
    origin = origin_app(dist)
    driver = new_driver(root / "profile")
    try:
        with running(backend, origin) as urls:
            shell.base_url = f"{urls[1]}/static/"
            yield Site(dist, src, rollout, shell, driver, urls, served)
            origin.release.set()
    finally:
        driver.quit()
        origin.app.close()
        rollout.close()


def load_until_the_canary_ends(site: Site) -> list[dict[str, Any]]:
    states = []
    for _ in range(MAX_LOADS):
        states.append(site.load())
        if read_pointers(site.dist).canary is None:
            return states
    raise AssertionError(f"the canary still runs after {MAX_LOADS} page loads: {states}")


def metrics(site: Site) -> str:
    registry = CollectorRegistry()
    registry.register(SdkCollector(rollout=site.rollout))
    return generate_latest(registry).decode()


def test_a_healthy_canary_is_promoted(site: Site) -> None:
    stable = read_pointers(site.dist).stable
    assert stable is not None
    (site.src / "report.js").write_text(
        "export function renderReport(slot) { slot.innerHTML = '<h2 id=\"report\">v2</h2>'; }\n"
    )
    canary = site.build(site.src, canary=50.0)
    started = time.monotonic()
    states = load_until_the_canary_ends(site)
    print(f"\npromoted after {len(states)} page loads in {time.monotonic() - started:.1f} s")
    assert all(s["rendered"] and s["page"] is None for s in states), states
    assert {s["generation"] for s in states} == {stable.generation, canary}
    status = site.rollout.status()
    assert status.state == "promoted" and status.stable == canary
    record = status.decisions[-1]
    assert record.action == "promote" and record.actor.startswith("policy (pid")
    assert record.reason.startswith("no incident")
    assert record.figures["canary_page_views"] >= POLICY.min_page_views
    # Every new page gets the promoted generation, and renders.
    for _ in range(2):
        state = site.load()
        assert state["rendered"] and state["generation"] == canary
    assert screenshot_is_not_blank(site.driver)
    assert "unblank_rollout_state 2.0" in metrics(site)


def test_a_canary_that_crashes_at_boot_is_rolled_back(site: Site) -> None:
    if read_pointers(site.dist).canary is not None:  # the test above failed halfway
        abort_canary(site.dist)
    stable = read_pointers(site.dist).stable
    assert stable is not None
    broken = site.src.parent / "broken"
    shutil.copytree(site.src, broken)
    main = broken / "main.js"
    main.write_text(
        main.read_text().replace(
            'import { render, chaos } from "./lib.js";\n',
            'import { render, chaos } from "./lib.js";\n\n'
            'throw new Error("canary: the new release breaks at boot");\n',
        )
    )
    canary = site.build(broken, canary=50.0)
    started = time.monotonic()
    states = load_until_the_canary_ends(site)
    print(f"\nrolled back after {len(states)} page loads in {time.monotonic() - started:.1f} s")
    crashed = [s for s in states if s["page"]]
    assert crashed and all(s["page"] == "app-crash" for s in crashed), states
    assert all(s["generation"] == canary for s in crashed)
    assert all(s["rendered"] for s in states if s["generation"] == stable.generation)
    status = site.rollout.status()
    assert status.state == "rolled back" and status.stable == stable.generation
    record = status.decisions[-1]
    assert record.action == "rollback" and record.canary == canary
    assert "worse than 3x stable" in record.reason
    by_role = {g.role: g for g in status.generations}
    assert by_role["canary"].incidents.get("app-crash", 0) >= 4
    assert by_role["stable"].counts.incidents == 0
    # The canary's files stay (pages opened on it still ask for them); new pages
    # get the stable generation and render.
    assert (site.dist / "manifests" / f"{canary}.json").is_file()
    for _ in range(3):
        state = site.load()
        assert state["rendered"] and state["page"] is None
        assert state["generation"] == stable.generation
    assert screenshot_is_not_blank(site.driver)
    text = metrics(site)
    assert "unblank_rollout_state 3.0" in text
    assert f'unblank_rollout_incidents_total{{cause="app-crash",generation="{canary}"}}' in text
