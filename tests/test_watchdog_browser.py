"""The fault matrix: no user ever looks at a blank screen, proved in real Chromium.

Every scenario runs on two apps (the ``site`` fixture's parameters): the
fixture app (``tests/fixtures/watchdog_app``, its backend Starlette + the SDK's
shell + UnblankMiddleware) and the example app (``examples/loan_app``, its own
backend `LoanApp`), both with a strict CSP with nonces. Their assets come from
``unblank serve`` on one port and a mirror on another, each behind `Faults`.
For every scenario the test asserts the final state — the app rendered
(possibly after a recovery), or the guided page of the right cause, in the DOM
and in a screenshot that is not blank — how long it took, and that the backend
received the incident report. Scenarios an app cannot play (a classic-script
entry, a canvas-only app: the fixture's) are skipped for it.

Time-to-state of every scenario is printed at the end (``pytest -s``) and
written to ``.cache/watchdog-matrix.json``.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from examples.loan_app.server import LoanApp
from tests.watchdog_matrix import (
    APPS,
    AppBackend,
    AppSpec,
    Faults,
    Scenario,
    fresh_tab,
    new_driver,
    origin_app,
    page_state,
    running,
    screenshot_is_not_blank,
    set_network,
    unique,
    wait_for,
)
from unblank import AssetClient, Manifest
from unblank.reports import ReportIntake
from unblank.shell import WatchdogSettings
from unblank_server.builder import build

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
TIMES: dict[str, float] = {}
# Short timers so the matrix runs in minutes; the defaults are 10/8/20/3 s.
FAST = WatchdogSettings(ready_timeout=3, asset_timeout=2, retry_for=10, crash_grace=1)


class Site:
    """Everything one scenario needs: the servers, their faults, the browser."""

    def __init__(
        self,
        app: AppSpec,
        driver: webdriver.Chrome,
        backend: AppBackend,
        urls: list[str],
        origin: Faults,
        mirror: Faults,
        src: Path,
    ) -> None:
        self.app = app
        self.driver = driver
        self.backend = backend
        self.backend_url, self.origin_url, self.mirror_url = urls
        self.origin = origin
        self.mirror = mirror
        self.src = src

    @property
    def manifest(self) -> Manifest:
        return self.backend.manifest()

    def path(self, name: str) -> str:
        """The published path of a role's file ("entry", "lazy"...) or of a logical name."""
        return self.manifest.assets[self.app.roles.get(name, name)].path

    def needs(self, feature: str) -> None:
        if feature not in self.app.supports:
            pytest.skip(reason=f"the {self.app.name} app has no {feature}")

    def label(self, name: str) -> str:
        """A scenario's name in the time table: which app played it, too."""
        return f"{name} [{self.app.name}]"

    def start(
        self,
        scenario: Scenario,
        *,
        origin: dict[str, str] | None = None,
        mirror: dict[str, str] | None = None,
        path: str = "/",
        network: dict[str, Any] | None = None,
    ) -> float:
        """A fresh tab opening the shell with these faults (role or logical name ->
        fault); returns the time it started."""
        self.origin.clear()
        self.mirror.clear()
        self.origin.rules.update({self.path(k): v for k, v in (origin or {}).items()})
        self.mirror.rules.update({self.path(k): v for k, v in (mirror or {}).items()})
        self.backend.reset(scenario)
        fresh_tab(self.driver, [self.backend_url, self.origin_url, self.mirror_url])
        if network:
            set_network(self.driver, **network)
        started = time.monotonic()
        self.driver.get(f"{self.backend_url}{path}{'&' if '?' in path else '?'}t={unique()}")
        return started

    def scenario(self, **changes: Any) -> Scenario:
        options: dict[str, Any] = {
            "base_url": f"{self.origin_url}/static/",
            "mirrors": [f"{self.mirror_url}/static/"],
            "watchdog": FAST,
        }
        options.update(changes)
        return Scenario(**options)

    def report(self, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """The first report whose fields match, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for report in self.backend.reports:
                if all(report.get(k) == v for k, v in fields.items()):
                    return report
            time.sleep(0.1)
        raise AssertionError(f"no report with {fields}; received {self.backend.reports}")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One Chromium for both apps (each scenario opens a fresh tab)."""
    chrome = new_driver(tmp_path_factory.mktemp("watchdog-profile"))
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module", params=sorted(APPS))
def site(
    request: pytest.FixtureRequest,
    driver: webdriver.Chrome,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    app = APPS[request.param]
    src = tmp_path_factory.mktemp(f"watchdog_src_{app.name}")
    shutil.copytree(app.src, src, dirs_exist_ok=True)  # a deploy changes the copy
    dist = tmp_path_factory.mktemp(f"watchdog_{app.name}") / "dist"
    build(src, dist)
    origin, mirror = origin_app(dist), origin_app(dist)
    backend = app.backend(dist)
    try:
        with running(backend.app, origin, mirror) as urls:
            yield Site(app, driver, backend, urls, origin, mirror, src)
            origin.release.set()
            mirror.release.set()
    finally:
        backend.close()
        origin.app.close()
        mirror.app.close()


@pytest.fixture(scope="module", autouse=True)
def time_table() -> Iterator[None]:
    yield
    out = ROOT / ".cache" / "watchdog-matrix.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(TIMES, indent=1, sort_keys=True) + "\n")
    print("\nwatchdog fault matrix, seconds to the final state:")
    for name, seconds in sorted(TIMES.items(), key=by_app_then_time):
        print(f"  {seconds:6.2f}  {name}")


def by_app_then_time(item: tuple[str, float]) -> tuple[str, float]:
    name, seconds = item
    return name.rsplit(" [", 1)[-1], seconds


def with_report(state: dict[str, Any]) -> bool:
    return rendered(state) and bool(state.get("report"))


def rendered(state: dict[str, Any]) -> bool:
    return bool(state.get("rendered")) and bool(state.get("ready"))


def guided(reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda state: state.get("page") == reason


def settle(
    site: Site,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    started: float,
    timeout: float = 30,
) -> dict[str, Any]:
    state, _ = wait_for(site.driver, predicate, timeout)
    TIMES[site.label(name)] = round(time.monotonic() - started, 2)
    assert screenshot_is_not_blank(site.driver), f"{site.label(name)}: the screenshot is blank"
    return state


def dead_port() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- healthy


def test_healthy(site: Site) -> None:
    started = site.start(site.scenario())
    state = settle(site, "healthy", rendered, started)
    assert state["incidents"] == 0
    assert styled(site), "the stylesheet did not apply"
    time.sleep(FAST.ready_timeout + 1)
    assert page_is_app(site), "a healthy app was replaced"
    assert site.backend.reports == []
    assert len(site.backend.shells) == 1


def styled(site: Site) -> bool:
    selector, prop, values = site.app.style
    return site.driver.find_element(By.CSS_SELECTOR, selector).value_of_css_property(prop) in values


def page_is_app(site: Site) -> bool:
    state = site.driver.execute_script(
        "return !!document.getElementById('rendered') && !document.getElementById('unblank-page')"
    )
    return bool(state)


def test_healthy_on_a_throttled_network_is_never_replaced(site: Site) -> None:
    # 600 ms round trips, 20 KB/s and an entry script that takes 2.5 s more:
    # the page needs longer than the watchdog's timers here, and must be let be.
    started = site.start(
        site.scenario(),
        origin={"entry": "slow:2.5"},
        network={"offline": False, "latency": 600, "throughput": 20_000},
    )
    settle(site, "throttled network", rendered, started, timeout=60)
    set_network(site.driver, offline=False)
    assert site.backend.reports == [], site.backend.reports
    assert len(site.backend.shells) == 1


# --------------------------------------------------------------------------- assets


def test_module_entry_404_is_taken_from_the_mirror(site: Site) -> None:
    started = site.start(site.scenario(), origin={"entry": "404"})
    settle(site, "module entry 404 (mirror)", rendered, started)
    report = site.report(outcome="recovered")
    assert report["cause"] == "not-found"
    assert site.mirror.count(site.path("entry")) >= 1


def test_classic_entry_404_everywhere_reloads_once_then_guides(site: Site) -> None:
    site.needs("classic entry")
    started = site.start(
        site.scenario(entry="classic"),
        origin={"classic": "404"},
        mirror={"classic": "404"},
    )
    settle(site, "classic entry 404 everywhere", guided("not-found"), started)
    site.report(cause="not-found", outcome="reloading", kind="script")
    site.report(cause="not-found", outcome="page")
    time.sleep(3)
    assert len(site.backend.shells) == 2, site.backend.shells
    assert guided("not-found")(page_state(site.driver))


def test_classic_entry_from_the_mirror(site: Site) -> None:
    site.needs("classic entry")
    started = site.start(site.scenario(entry="classic"), origin={"classic": "404"})
    settle(site, "classic entry 404 (mirror)", rendered, started)
    site.report(cause="not-found", outcome="recovered")


def test_asset_answered_with_html_and_200(site: Site) -> None:
    started = site.start(site.scenario(mirrors=[]), origin={"entry": "html200"})
    settle(site, "entry answered with HTML + 200", guided("not-found"), started)
    site.report(cause="not-found", outcome="page")
    assert len(site.backend.shells) == 2


def test_css_404_is_taken_from_the_mirror(site: Site) -> None:
    started = site.start(site.scenario(), origin={"css": "404"})
    settle(site, "stylesheet 404 (mirror)", rendered, started)
    assert styled(site), "the stylesheet from the mirror did not apply"
    site.report(cause="not-found", outcome="recovered", kind="stylesheet")


def test_origin_refusing_connections_mirror_takes_over(site: Site) -> None:
    started = site.start(site.scenario(base_url=f"{dead_port()}/static/"))
    settle(site, "origin refuses connections (mirror)", rendered, started)
    site.report(cause="upstream", outcome="recovered")


def test_the_backend_is_the_last_mirror(site: Site) -> None:
    # The demo's set-up: the backend reads the manifest with an AssetClient and
    # serves its verified copies at /_unblank/mirror/. The browser cannot reach
    # the asset origin; the backend can, and every file comes through it.
    site.needs("mirror of its own")
    intake = ReportIntake(rate=1000, burst=1000)
    loan = LoanApp(
        manifest=AssetClient(origins=[site.origin_url], deadline=5.0),
        close_client=True,  # at the server's shutdown, on its event loop
        base_url=f"{dead_port()}/static/",
        watchdog=FAST,
        reports=intake,
    )
    with running(loan) as (url,):
        fresh_tab(site.driver, [url])
        started = time.monotonic()
        site.driver.get(f"{url}/#report")
        settle(site, "origin unreachable, the backend's mirror", with_report, started)
        assert styled(site), "the stylesheet from the backend's mirror did not apply"
        assert loan.middleware.stats.mirror_hits >= 4  # entry, its import, the CSS, the report
        deadline = time.monotonic() + 10
        while intake.accepted.get("upstream", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert intake.accepted.get("upstream", 0) >= 1, intake.accepted


def test_an_asset_that_hangs_is_taken_from_the_mirror(site: Site) -> None:
    started = site.start(site.scenario(), origin={"entry": "hang"})
    settle(site, "entry hangs (mirror)", rendered, started)
    site.report(cause="upstream", outcome="recovered")


def test_corrupted_bytes_with_a_good_mirror(site: Site) -> None:
    started = site.start(site.scenario(), origin={"entry": "corrupt"})
    settle(site, "corrupted entry (mirror)", rendered, started)
    site.report(cause="integrity", outcome="recovered")


def test_corrupted_bytes_with_no_good_copy_anywhere(site: Site) -> None:
    started = site.start(
        site.scenario(), origin={"import": "corrupt"}, mirror={"import": "corrupt"}
    )
    settle(site, "corrupted import, no good copy", guided("integrity"), started)
    site.report(cause="integrity", outcome="page")
    assert len(site.backend.shells) == 2


# --------------------------------------------------------------------------- the app itself


def test_exception_at_boot(site: Site) -> None:
    started = site.start(site.scenario(chaos="boot-exception"))
    settle(site, "exception at boot", guided("app-crash"), started)
    report = site.report(cause="app-crash", outcome="page")
    assert "threw while starting" in report.get("message", "")
    assert len(site.backend.shells) == 2


def test_an_app_that_never_renders(site: Site) -> None:
    started = site.start(site.scenario(chaos="never-render"))
    settle(site, "app never renders", guided("render-timeout"), started)
    site.report(cause="render-timeout", outcome="page")
    assert len(site.backend.shells) == 2


def test_a_canvas_only_app_is_not_a_white_screen(site: Site) -> None:
    site.needs("canvas edition")
    started = site.start(site.scenario(chaos="canvas"))
    settle(site, "canvas-only app", rendered, started)
    time.sleep(FAST.ready_timeout + 1)
    assert page_state(site.driver)["page"] is None
    assert site.backend.reports == []


# --------------------------------------------------------------------------- server and network


def test_a_503_with_retry_after_recovers_by_itself(site: Site) -> None:
    scenario = site.scenario()
    scenario.overloaded = 1
    started = site.start(scenario)
    wait_for(site.driver, guided("overloaded"), 15)
    settle(site, "shell 503 + Retry-After, then fine", rendered, started)
    assert len(site.backend.shells) == 2


def test_offline_at_first_load(site: Site) -> None:
    # The shell arrives, then the network is gone before the app's files do.
    started = site.start(site.scenario(), origin={"entry": "hang"}, mirror={"entry": "hang"})
    wait_for(site.driver, lambda s: s.get("url", "").startswith(site.backend_url), 15)
    set_network(site.driver, offline=True)
    settle(site, "offline at first load", guided("offline"), started)
    site.origin.clear()
    site.mirror.clear()
    set_network(site.driver, offline=False)
    wait_for(site.driver, rendered, 30)
    TIMES[site.label("offline at first load: back online")] = round(time.monotonic() - started, 2)
    site.report(cause="offline", outcome="page")


def test_offline_mid_session(site: Site) -> None:
    site.start(site.scenario())
    wait_for(site.driver, rendered, 30)
    set_network(site.driver, offline=True)
    started = time.monotonic()
    site.driver.find_element(By.ID, "open-report").click()
    settle(site, "offline mid-session (lazy view)", guided("offline"), started)
    set_network(site.driver, offline=False)
    wait_for(site.driver, with_report, 30)
    TIMES[site.label("offline mid-session: back online")] = round(time.monotonic() - started, 2)
    site.report(cause="offline", outcome="page", kind="chunk")


def test_json_clients_get_problem_json(site: Site) -> None:
    site.start(site.scenario(api_failure=True))
    wait_for(site.driver, rendered, 30)
    answer = site.driver.execute_async_script(
        """
        const [url, done] = arguments;
        fetch(url, {headers: {accept: "application/json"}})
          .then(async (r) => done({status: r.status, type: r.headers.get("content-type"),
                                   body: await r.json(), id: r.headers.get("x-request-id")}));
        """,
        site.app.api,
    )
    assert answer["status"] == 500
    assert answer["type"].startswith("application/problem+json")
    assert answer["body"]["status"] == 500
    assert answer["body"]["instance"] == answer["id"]
    assert "Traceback" not in json.dumps(answer["body"])
    page = httpx.get(f"{site.backend_url}{site.app.api}", headers={"accept": "text/html"})
    assert page.status_code == 500 and 'data-reason="server-error"' in page.text


def test_a_stale_service_worker_copy_is_replaced(site: Site) -> None:
    site.start(site.scenario(mirrors=[]))
    wait_for(site.driver, rendered, 30)
    install_service_worker(site)
    entry = f"{site.origin_url}/static/{site.path('entry')}"
    site.driver.execute_async_script(
        """
        const [url, done] = arguments;
        caches.open("assets").then((c) => c.put(url, new Response("export const broken = 1;",
          {headers: {"content-type": "text/javascript"}}))).then(() => done());
        """,
        entry,
    )
    site.backend.reset(site.scenario(mirrors=[]))
    started = time.monotonic()
    site.driver.get(f"{site.backend_url}/?t={(token := unique())}")
    loaded = lambda s: token in s.get("url", "") and rendered(s)  # noqa: E731
    settle(site, "stale service worker copy", loaded, started)
    site.report(cause="integrity", outcome="recovered")
    left = site.driver.execute_async_script(
        "const [url, done] = arguments; caches.match(url).then((r) => done(!!r));", entry
    )
    assert left is False, "the bad copy is still in Cache Storage"


def install_service_worker(site: Site) -> None:
    site.driver.execute_async_script(
        """
        const done = arguments[0];
        navigator.serviceWorker.register("/sw.js").then(() => navigator.serviceWorker.ready)
          .then(() => navigator.serviceWorker.controller || new Promise(
            (r) => navigator.serviceWorker.addEventListener("controllerchange", r)))
          .then(() => done(true), (e) => done(String(e)));
        """
    )


# --------------------------------------------------------------------------- deploys


def test_a_lazy_chunk_gone_after_a_deploy(site: Site) -> None:
    site.start(site.scenario())
    wait_for(site.driver, rendered, 30)
    old_report = site.path("lazy")
    # A deploy: the report view changes (a new fingerprint), the old one is gone.
    before, after = site.app.deploy
    lazy = site.src / site.app.roles["lazy"]
    lazy.write_text(lazy.read_text().replace(before, after))
    build(site.src, site.backend.dist)
    assert site.path("lazy") != old_report
    # The deploy is done when the origins serve it (they look every 0.2 s):
    # a reload before that would find the new file nowhere.
    for base in (site.origin_url, site.mirror_url):
        served(f"{base}/static/{site.path('lazy')}")
    site.origin.rules[old_report] = "404"
    site.mirror.rules[old_report] = "404"
    started = time.monotonic()
    site.driver.find_element(By.ID, "open-report").click()
    settle(site, "lazy chunk gone after a deploy", with_report, started)
    site.report(cause="not-found", outcome="reloading", kind="chunk")
    text = site.driver.find_element(By.ID, "report-slot").text
    assert after in text


def served(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(url).status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} is still not served after {timeout} s")
        time.sleep(0.05)
