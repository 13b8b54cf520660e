"""The demo (``make demo``): its runner, the chaos panel's API, and the fault matrix on it.

The demo runs as a child process, the way a person runs it
(``python -m examples.demo --port 0``), and the tests read its URLs from what
it prints. Without a browser: every switch flips through the panel's API,
shows in the panel's state and does to the servers what it says; a deploy
publishes a new generation while the old files stay served; reset restores
everything; Ctrl-C stops it with 130, a taken port stops it with advice.

In Chromium (``browser``): for every switch, the app opened in a fresh tab
ends rendered (after a recovery) or on the guided page of the right reason,
in a screenshot that is not blank, and renders again once the switch is off.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.common.by import By

from examples.chaos.process import REPO, DemoProcess
from examples.chaos.switches import SWITCHES
from tests import test_pages_browser
from tests.watchdog_matrix import (
    fresh_tab,
    new_driver,
    page_state,
    screenshot_is_not_blank,
    wait_for,
)
from unblank import Manifest
from unblank.shell import WatchdogSettings

pytestmark = pytest.mark.slow

axe_source = test_pages_browser.axe_source  # the fixture: axe-core, installed from npm once

JSON = {"content-type": "application/json"}
INCIDENT_WAIT = 10.0  # seconds a report may take to reach the panel (sendBeacon is lazy)


class Api:
    """The chaos panel's JSON API."""

    def __init__(self, demo: DemoProcess) -> None:
        self.app = demo.urls["app"]
        self.origin = demo.urls["origin"].removesuffix("/static/")
        self.mirror = demo.urls["mirror"].removesuffix("/static/")
        self.http = httpx.Client(timeout=30)

    def state(self) -> dict[str, Any]:
        answer = self.http.get(f"{self.app}/_demo/api/state")
        assert answer.status_code == 200, answer.text
        state: dict[str, Any] = answer.json()
        return state

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.http.post(f"{self.app}/_demo/api/{path}", json=body or {}, headers=JSON)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def flip(self, name: str, on: bool, value: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"on": on}
        if value is not None:
            body["value"] = value
        return self.post(f"switches/{name}", body)

    def manifest(self, base: str) -> Manifest:
        return Manifest.loads(self.http.get(f"{base}/_unblank/manifest.json").content)

    def incident(self, **fields: str) -> dict[str, Any]:
        """The newest incident the panel lists with these fields, waiting for it."""
        deadline = time.monotonic() + INCIDENT_WAIT
        while True:
            incidents: list[dict[str, Any]] = self.state()["incidents"]
            for incident in incidents:
                if all(incident.get(k) == v for k, v in fields.items()):
                    return incident
            if time.monotonic() > deadline:
                raise AssertionError(f"no incident with {fields}; the panel lists {incidents}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    with DemoProcess(root=tmp_path_factory.mktemp("demo") / "root") as running:
        yield running


@pytest.fixture
def api(demo: DemoProcess) -> Iterator[Api]:
    client = Api(demo)
    client.post("reset")
    yield client
    client.post("reset")
    client.http.close()


def digest(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


# --------------------------------------------------------------------------- the runner


def test_demo_prints_its_urls_and_a_line_per_switch(demo: DemoProcess, api: Api) -> None:
    assert set(demo.urls) == {"app", "panel", "origin", "mirror"}
    for url in demo.urls.values():
        assert url.startswith("http://127.0.0.1:")
    printed = "".join(demo.output)
    for name in (*SWITCHES, "deploy", "reset"):
        assert f"\n  {name} " in printed, name
    shell = api.http.get(demo.urls["app"])
    assert shell.status_code == 200
    assert 'id="unblank-fallback"' in shell.text  # the watchdog's guided pages, inline
    generation = api.state()["generation"]
    assert shell.headers["x-unblank-generation"] == generation
    assert api.manifest(api.origin).generation == generation
    assert api.manifest(api.mirror).generation == generation
    panel = api.http.get(demo.urls["panel"])
    assert panel.status_code == 200 and "Chaos panel" in panel.text
    assert "worker-src 'self'" in panel.headers["content-security-policy"]


def test_ctrl_c_stops_the_demo_with_130(tmp_path: Path) -> None:
    demo = DemoProcess(root=tmp_path / "demo")
    demo.start()
    assert httpx.get(demo.urls["app"]).status_code == 200
    assert demo.stop() == 130
    assert "The demo stopped." in "".join(demo.output)
    with pytest.raises(httpx.ConnectError):
        httpx.get(demo.urls["app"])


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "examples.demo", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_taken_port_is_refused_with_advice(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_demo("--port", str(port), "--dir", str(tmp_path / "demo"))
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "--port 8080" in done.stderr


def test_a_folder_that_is_not_the_demos_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    done = run_demo("--port", "0", "--dir", str(tmp_path))
    assert done.returncode == 2
    assert "not the demo's" in done.stderr and "--dir" in done.stderr
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


# --------------------------------------------------------------------------- the switches


def check_origin_down(api: Api, on: bool) -> None:
    if on:
        with pytest.raises(httpx.ConnectError):
            api.http.get(f"{api.origin}/_unblank/health")
        assert api.state()["servers"]["asset origin"]["running"] is False
    else:
        assert api.http.get(f"{api.origin}/_unblank/health").status_code == 200
    assert api.http.get(api.app).status_code == 200  # the backend reads the mirror meanwhile


def check_corrupted_asset(api: Api, on: bool) -> None:
    entry = api.manifest(api.mirror).asset("main.js")
    served = api.http.get(f"{api.origin}/static/{entry.path}").content
    assert len(served) == entry.size
    assert (digest(served) != entry.integrity) is on
    mirrored = api.http.get(f"{api.mirror}/static/{entry.path}").content
    assert digest(mirrored) == entry.integrity


def check_deleted_chunk(api: Api, on: bool) -> None:
    releases = api.state()["releases"]
    assert len(releases) >= 2  # switching it on deployed
    current = api.manifest(api.origin).asset("report.js").path
    old = Manifest.loads(
        api.http.get(f"{api.origin}/_unblank/manifests/{releases[1]['generation']}.json").content
    ).asset("report.js")
    assert old.path != current
    for base in (api.origin, api.mirror):
        assert api.http.get(f"{base}/static/{current}").status_code == 200
        status = api.http.get(f"{base}/static/{old.path}").status_code
        assert status == (404 if on else 200), (base, status)


def check_slow_network(api: Api, on: bool) -> None:
    entry = api.manifest(api.origin).asset("main.js").path
    for base in (api.origin, api.mirror):
        started = time.monotonic()
        assert api.http.get(f"{base}/static/{entry}").status_code == 200
        took = time.monotonic() - started
        assert (took >= 1.0) if on else (took < 0.5), (base, took)


def check_overload(api: Api, on: bool) -> None:
    if on:
        for left in (2, 1):
            assert api.state()["switches"]["overload"]["left"] == left
            shed = api.http.get(api.app)
            assert shed.status_code == 503 and shed.headers["retry-after"] == "3"
            assert 'data-reason="overloaded"' in shed.text
        assert api.state()["switches"]["overload"]["on"] is False  # off by itself
    assert api.http.get(api.app).status_code == 200


def check_boot_exception(api: Api, on: bool) -> None:
    chaos = "boot-exception" if on else ""
    assert f'<html lang="en" data-chaos="{chaos}">' in api.http.get(api.app).text


def check_maintenance(api: Api, on: bool) -> None:
    page = api.http.get(api.app)
    assert page.status_code == (503 if on else 200)
    assert ('data-reason="maintenance"' in page.text) is on
    quote = api.http.get(f"{api.app}/api/quote?amount=12000&term=36", headers={"accept": "*/*"})
    assert quote.status_code == (503 if on else 200)
    assert api.http.get(f"{api.app}/_demo/").status_code == 200  # the panel never is


def check_offline(api: Api, on: bool) -> None:
    assert api.http.get(f"{api.app}/_demo/api/offline").json() == {"offline": on}
    worker = api.http.get(f"{api.app}/_demo/offline-sw.js")
    assert worker.headers["service-worker-allowed"] == "/"
    assert worker.headers["content-type"].startswith("text/javascript")


CHECKS: dict[str, Callable[[Api, bool], None]] = {
    "origin-down": check_origin_down,
    "corrupted-asset": check_corrupted_asset,
    "deleted-chunk": check_deleted_chunk,
    "slow-network": check_slow_network,
    "overload": check_overload,
    "boot-exception": check_boot_exception,
    "maintenance": check_maintenance,
    "offline": check_offline,
}
VALUES = {"slow-network": 1, "overload": 2}


def test_every_switch_has_a_check() -> None:
    assert set(CHECKS) == set(SWITCHES)


def test_the_switches_say_what_really_happens() -> None:
    # A delay near the watchdog's asset_timeout would be judged a hung origin (the
    # mirror takes over, reported as upstream), not the slow network the switch shows.
    slow = SWITCHES["slow-network"].setting
    assert slow is not None and slow.high <= WatchdogSettings().asset_timeout - 2
    assert "same browser as the panel" in SWITCHES["offline"].does
    maintenance = SWITCHES["maintenance"].see
    assert "new page load shows the maintenance page" in maintenance
    assert "inline message" in maintenance


@pytest.mark.parametrize("name", list(SWITCHES))
def test_a_switch_flips_through_the_api_and_shows_in_the_state(api: Api, name: str) -> None:
    state = api.flip(name, True, VALUES.get(name))
    assert state["switches"][name]["on"] is True
    if name in VALUES:
        assert state["switches"][name]["setting"]["value"] == VALUES[name]
    assert [n for n, s in state["switches"].items() if s["on"]] == [name]
    CHECKS[name](api, True)
    if name != "overload":  # it is off once it shed its page loads
        assert api.flip(name, False)["switches"][name]["on"] is False
    CHECKS[name](api, False)


def test_deploy_publishes_a_new_generation_and_keeps_the_old_files(api: Api) -> None:
    before = api.state()
    old = api.manifest(api.origin)
    shell = api.http.get(api.app)
    assert shell.headers["x-unblank-generation"] == old.generation
    deployed = api.post("deploy")
    assert deployed["version"] == before["version"] + 1
    assert deployed["generation"] != old.generation
    shell = api.http.get(api.app)
    assert shell.headers["x-unblank-generation"] == deployed["generation"]
    new = api.manifest(api.origin)
    assert new.generation == deployed["generation"]
    assert new.asset("loan.js").path != old.asset("loan.js").path  # the version is in it
    for base in (api.origin, api.mirror):
        for name in ("main.js", "loan.js", "report.js", "app.css"):
            answer = api.http.get(f"{base}/static/{old.asset(name).path}")
            assert answer.status_code == 200, (base, name)
            assert digest(answer.content) == old.asset(name).integrity
    version = f'export const VERSION = "{deployed["version"]}";'
    assert version in api.http.get(f"{api.origin}/static/{new.asset('loan.js').path}").text
    state = api.state()
    assert state["version"] == deployed["version"]
    assert state["releases"][0] == {k: deployed[k] for k in ("version", "generation")}


def test_reset_turns_every_switch_off(api: Api) -> None:
    for name in SWITCHES:
        api.flip(name, True, VALUES.get(name))
    assert all(s["on"] for s in api.state()["switches"].values())
    state = api.post("reset")
    assert not any(s["on"] for s in state["switches"].values())
    assert state["switches"]["slow-network"]["setting"]["value"] == 3  # the default again
    for name, check in CHECKS.items():
        if name != "deleted-chunk":  # a deploy stays deployed; its checks want two versions
            check(api, False)


def test_the_panel_lists_the_incidents_the_backend_receives(api: Api) -> None:
    beacon = {"cause": "upstream", "outcome": "recovered", "asset": "main.js", "kind": "script"}
    answer = api.http.post(f"{api.app}/_unblank/report", json=beacon)
    assert answer.status_code == 204
    incident = api.incident(cause="upstream", asset="main.js")
    assert incident["outcome"] == "recovered" and incident["at"].count(":") == 2


def test_the_panel_api_refuses_what_it_cannot_do(api: Api) -> None:
    base = f"{api.app}/_demo/api"
    cases = [
        (api.http.post(f"{base}/switches/offline", content=b'{"on": true}'), 415),
        (api.http.post(f"{base}/switches/nope", json={"on": True}, headers=JSON), 404),
        (api.http.post(f"{base}/switches/offline", json={"on": "yes"}, headers=JSON), 422),
        (api.http.post(f"{base}/switches/offline", json={"on": True, "value": 1}), 422),
        (api.http.post(f"{base}/switches/overload", json={"on": True, "value": 0}), 422),
        (api.http.post(f"{base}/switches/overload", content=b"[", headers=JSON), 422),
        (api.http.post(f"{base}/deploy", content=b"x" * 2000, headers=JSON), 413),
        (api.http.post(f"{base}/canary", content=b"{}"), 415),
    ]
    for answer, status in cases:
        assert answer.status_code == status, (answer.request.url, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == status
    assert not any(s["on"] for s in api.state()["switches"].values())
    wrong_method = api.http.get(f"{base}/deploy", headers={"accept": "text/html"})
    assert wrong_method.status_code == 405 and 'data-reason="bad-request"' in wrong_method.text


def canary_pointer(demo: DemoProcess) -> Path:
    return demo.root / "dist" / "canary.json"


def test_a_broken_canary_is_published_beside_the_stable_generation(
    demo: DemoProcess, api: Api
) -> None:
    before = api.state()
    stable = before["generation"]
    assert before["canary"]["available"] is True
    assert before["canary"]["rollout"]["canary"] is None
    canary = api.post("canary")["generation"]
    assert canary != stable
    pointer = json.loads(canary_pointer(demo).read_text())
    assert pointer["generation"] == canary and pointer["percent"] == 50
    rollout = api.state()["canary"]["rollout"]
    assert rollout["state"] == "watching" and rollout["stable"] == stable
    assert rollout["canary"]["generation"] == canary and rollout["canary"]["percent"] == 50
    assert api.state()["generation"] == stable  # the stable version stays published
    assert api.manifest(api.origin).generation == stable
    entry = Manifest.loads((demo.root / "dist" / "manifests" / f"{canary}.json").read_bytes())
    for base in (api.origin, api.mirror):  # the canary's files are served beside the stable ones
        assert api.http.get(f"{base}/static/{entry.asset('main.js').path}").status_code == 200
    # New browsers (no cookie) draw a generation; a browser keeps its own. Few page
    # views: no incident arrives without a browser, and 20 would promote.
    seen = set()
    for _ in range(4):
        with httpx.Client(timeout=30) as browser:
            first = browser.get(api.app)
            assert first.status_code == 200 and "unblank_rollout" in browser.cookies
            drawn = first.headers["x-unblank-generation"]
            assert browser.get(api.app).headers["x-unblank-generation"] == drawn
            seen.add(drawn)
    assert seen <= {stable, canary}
    again = api.http.post(f"{api.app}/_demo/api/canary", json={}, headers=JSON)
    assert again.status_code == 409 and canary in again.json()["detail"]
    # Reset ends it by hand: the pointer goes, the decision shows.
    state = api.post("reset")
    assert not canary_pointer(demo).exists()
    rollout = state["canary"]["rollout"]
    assert rollout["state"] == "rolled back" and rollout["canary"] is None
    assert rollout["decision"]["action"] == "rollback"
    assert rollout["decision"]["canary"] == canary
    assert rollout["decision"]["reason"] == "reset from the chaos panel"
    assert api.http.get(api.app).headers["x-unblank-generation"] == stable


# --------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    chrome = new_driver(tmp_path_factory.mktemp("demo-profile"))
    yield chrome
    chrome.quit()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def open_app(driver: webdriver.Chrome, api: Api, path: str = "/") -> None:
    """The app in a fresh tab: no cached files, workers or storage left."""
    fresh_tab(driver, [api.app, api.origin, api.mirror])
    driver.get(f"{api.app}{path}")


def rendered(state: dict[str, Any]) -> bool:
    return bool(state.get("rendered")) and bool(state.get("ready"))


def guided(reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda state: state.get("page") == reason


def settle(
    driver: webdriver.Chrome, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    state, _ = wait_for(driver, predicate, timeout)
    assert screenshot_is_not_blank(driver), f"the screenshot of {state} is blank"
    return state


def footer(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.ID, "version").text)


def on_version(driver: webdriver.Chrome, version: int) -> Callable[[dict[str, Any]], bool]:
    """The app rendered, its footer naming ``version``."""

    def check(state: dict[str, Any]) -> bool:
        try:
            return rendered(state) and f"version {version} " in footer(driver)
        except WebDriverException:  # the page is being replaced
            return False

    return check


def retry_now(driver: webdriver.Chrome) -> None:
    """The guided page's main action ("Try again"), instead of waiting for its countdown."""
    driver.find_element(By.ID, "main-action").click()


@pytest.mark.browser
def test_browser_the_app_renders(driver: webdriver.Chrome, api: Api) -> None:
    open_app(driver, api)
    state = settle(driver, rendered)
    assert state["incidents"] == 0
    version = api.state()["version"]
    assert footer(driver).startswith(f"Northwind Loans · version {version} · generation ")
    driver.find_element(By.ID, "get-quote").click()
    wait_for(driver, lambda _: "a month" in driver.find_element(By.ID, "quote").text, 10)


# Switches after which the app still renders (the watchdog recovers), and
# the incident it reports.
RECOVERED = [
    ("origin-down", None, {"cause": "upstream", "outcome": "recovered"}),
    ("corrupted-asset", None, {"cause": "integrity", "outcome": "recovered"}),
    ("slow-network", 2, None),
]


@pytest.mark.browser
@pytest.mark.parametrize(("name", "value", "incident"), RECOVERED)
def test_browser_the_app_recovers(
    driver: webdriver.Chrome,
    api: Api,
    name: str,
    value: int | None,
    incident: dict[str, str] | None,
) -> None:
    api.flip(name, True, value)
    started = time.monotonic()
    open_app(driver, api)
    state = settle(driver, rendered)
    if incident is None:  # slow, not broken: nothing to recover from, nothing to report
        assert time.monotonic() - started >= 2 * (value or 0)
        assert state["incidents"] == 0
    else:
        api.incident(**incident)
    api.flip(name, False)
    open_app(driver, api)
    assert settle(driver, rendered)["incidents"] == 0


# Switches that end on a guided page; switched off, "Try again" brings the app.
GUIDED = [
    ("boot-exception", "app-crash"),
    ("maintenance", "maintenance"),
]


@pytest.mark.browser
@pytest.mark.parametrize(("name", "reason"), GUIDED)
def test_browser_the_right_guided_page(
    driver: webdriver.Chrome, api: Api, name: str, reason: str
) -> None:
    api.flip(name, True)
    open_app(driver, api)
    settle(driver, guided(reason))
    api.flip(name, False)
    retry_now(driver)
    settle(driver, rendered)


@pytest.mark.browser
def test_browser_overload_recovers_by_itself(driver: webdriver.Chrome, api: Api) -> None:
    api.flip("overload", True, 1)
    open_app(driver, api)
    settle(driver, guided("overloaded"), 10)
    settle(driver, rendered, 15)  # after its Retry-After, with no one touching it
    assert api.state()["switches"]["overload"]["on"] is False


@pytest.mark.browser
def test_browser_offline(driver: webdriver.Chrome, api: Api) -> None:
    api.flip("offline", True)
    fresh_tab(driver, [api.app, api.origin, api.mirror])
    driver.get(f"{api.app}/_demo/")  # the panel installs the switch's service worker
    wait_for_worker(driver, "on")
    driver.get(api.app)
    settle(driver, guided("offline"))
    api.flip("offline", False)
    retry_now(driver)
    settle(driver, rendered)


@pytest.mark.browser
def test_browser_offline_from_the_panel_reaches_an_open_tab(
    driver: webdriver.Chrome, api: Api
) -> None:
    # As a person runs the demo: the app open in one tab, the panel in another.
    open_app(driver, api)
    settle(driver, rendered)
    app_tab = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get(f"{api.app}/_demo/")
        wait_for_worker(driver, "off")
        driver.find_element(By.ID, "switch-offline").click()
        wait_for_worker(driver, "on")
        assert api.state()["switches"]["offline"]["on"] is True
        driver.switch_to.window(app_tab)
        driver.find_element(By.ID, "open-report").click()  # its chunk cannot come
        settle(driver, guided("offline"))
        driver.switch_to.window(driver.window_handles[-1])
        driver.find_element(By.ID, "switch-offline").click()
        wait_for_worker(driver, "off")
    finally:
        driver.close()
        driver.switch_to.window(app_tab)
    retry_now(driver)
    settle(driver, lambda s: rendered(s) and bool(s.get("report")))


def wait_for_worker(driver: webdriver.Chrome, state: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            shown = driver.execute_script("return document.documentElement.dataset.offlineWorker")
            if shown == state:
                return
        except JavascriptException:
            pass
        time.sleep(0.1)
    raise TimeoutException(f"the panel did not switch the offline worker {state}")


@pytest.mark.browser
def test_browser_a_chunk_deleted_after_a_deploy(driver: webdriver.Chrome, api: Api) -> None:
    open_app(driver, api)
    settle(driver, rendered)
    version = api.state()["version"]
    assert f"version {version} " in footer(driver)
    api.flip("deleted-chunk", True)  # deploys version + 1, the old report chunk is gone
    driver.find_element(By.ID, "open-report").click()
    state = settle(driver, lambda s: rendered(s) and bool(s.get("report")))
    assert f"version {version + 1} " in footer(driver)  # reloaded into the new version
    assert "#report" in state["url"]
    api.incident(cause="not-found", outcome="reloading", kind="chunk")


@pytest.mark.browser
def test_browser_pages_open_during_a_deploy_keep_working(
    driver: webdriver.Chrome, api: Api
) -> None:
    open_app(driver, api)
    settle(driver, rendered)
    before = footer(driver)
    deployed = api.post("deploy")
    driver.find_element(By.ID, "open-report").click()
    settle(driver, lambda s: rendered(s) and bool(s.get("report")))
    assert footer(driver) == before  # the old version's report chunk: no reload
    assert page_state(driver)["incidents"] == 0
    driver.get(api.app)
    settle(driver, on_version(driver, deployed["version"]))


@pytest.mark.browser
@pytest.mark.npm
def test_browser_the_panel_works_and_is_accessible(
    driver: webdriver.Chrome, api: Api, axe_source: str
) -> None:
    fresh_tab(driver, [api.app])
    driver.get(f"{api.app}/_demo/")
    wait_for_worker(driver, "off")  # drawn from the state, which it read
    driver.execute_script(axe_source)
    result: dict[str, Any] = driver.execute_async_script(test_pages_browser.AXE_RUN)
    assert "error" not in result, result
    assert not result["violations"], test_pages_browser.describe(result["violations"])

    switch = driver.find_element(By.ID, "switch-maintenance")
    assert switch.get_attribute("role") == "switch"
    assert switch.get_attribute("aria-checked") == "false"
    switch.click()
    wait_for(driver, lambda _: switch.get_attribute("aria-checked") == "true", 10)
    assert api.state()["switches"]["maintenance"]["on"] is True
    assert driver.find_element(By.ID, "on").text == "Maintenance"

    version = api.state()["version"]
    driver.find_element(By.ID, "deploy").click()
    shown = lambda _: driver.find_element(By.ID, "version").text == str(version + 1)  # noqa: E731
    wait_for(driver, shown, 15)
    driver.find_element(By.ID, "reset").click()
    wait_for(driver, lambda _: switch.get_attribute("aria-checked") == "false", 10)
    assert not any(s["on"] for s in api.state()["switches"].values())
    assert driver.find_element(By.ID, "canary").get_attribute("disabled") is None


CANARY_TABS = 16  # new browsers opened at most before the rollback must have come
CANARY_WAIT = 25.0  # seconds the policy gets, from the canary's deploy to its rollback


@pytest.mark.browser
def test_browser_a_broken_canary_is_rolled_back_by_itself(
    demo: DemoProcess, driver: webdriver.Chrome, api: Api
) -> None:
    stable, version = api.state()["generation"], api.state()["version"]
    canary = api.post("canary")["generation"]
    deadline = time.monotonic() + CANARY_WAIT
    opened = 0
    # Every tab a new browser (its cookies cleared first), left open: the canary's
    # pages crash at boot, reload, crash again and report it each time.
    while canary_pointer(demo).exists() and time.monotonic() < deadline:
        if opened < CANARY_TABS:
            driver.switch_to.new_window("tab")
            driver.execute_cdp_cmd(
                "Storage.clearDataForOrigin", {"origin": api.app, "storageTypes": "cookies"}
            )
            driver.get(f"{api.app}/?tab={opened}")
            opened += 1
        time.sleep(0.5)
    rollout = api.state()["canary"]["rollout"]
    assert not canary_pointer(demo).exists(), rollout
    print(f"\nrolled back after {opened} tabs")
    assert rollout["state"] == "rolled back" and rollout["stable"] == stable
    decision = rollout["decision"]
    assert decision["action"] == "rollback" and decision["canary"] == canary
    assert decision["actor"].startswith("policy (pid")
    assert "worse than 3x stable" in decision["reason"]
    by_role = {g["role"]: g for g in rollout["generations"]}
    assert by_role["canary"]["incidents"] > 0 and by_role["stable"]["incidents"] == 0
    api.incident(cause="app-crash", generation=canary)
    # A new browser afterwards gets the stable generation, and it renders.
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    open_app(driver, api)
    settle(driver, on_version(driver, version))
    assert footer(driver).endswith(f"generation {stable}")
    assert api.http.get(api.app).headers["x-unblank-generation"] == stable
