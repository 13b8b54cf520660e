"""The guided pages as a user's Chromium shows them.

- Every page, in every locale, loads with no request besides itself, has one
  ``h1`` that its title names, and puts focus on its main action.
- Countdown pages count down visibly, pause and resume (WCAG 2.2.1), and
  retry by themselves once ``Retry-After`` has passed.
- ``not-found`` offers navigation home instead of a countdown.
- axe-core (installed from npm into ``.cache/axe-core``) finds no violation
  on any page, locale or colour scheme.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.test_browser_sri import drain_logs, read_log
from unblank_pages import render
from unblank_pages.catalog import REASONS

pytestmark = pytest.mark.browser

Serve = Callable[[Path], str]
LOCALES: Final = ("en", "zh-Hans")
SCHEMES: Final = ("light", "dark")
PAGES: Final = [(reason, locale) for reason in REASONS for locale in LOCALES]
COUNTDOWN: Final = [name for name, entry in REASONS.items() if entry.retry == "countdown"]
AXE_DIR: Final = Path(__file__).resolve().parent.parent / ".cache" / "axe-core"
AXE_JS: Final = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
AXE_VERSION: Final = "axe-core@4"
NPM_TIMEOUT: Final = 300
TICK: Final = 1.0  # retry.js counts down once a second
STOPPED_FOR: Final = 1.5  # long enough for a running countdown to tick at least once
INTERNAL_SCHEMES: Final = ("data:", "chrome:", "chrome-extension:", "about:")
NUMBER: Final = re.compile(r"\((\d+)\)")


def page_name(reason: str, locale: str) -> str:
    return f"{reason}.{locale}.html"


@pytest.fixture(scope="module")
def pages_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every reason in every locale, as the files a server would send."""
    folder = tmp_path_factory.mktemp("pages")
    for reason, locale in PAGES:
        page = render(reason, locale=locale, request_id="req-browser-1")
        (folder / page_name(reason, locale)).write_bytes(page.body)
    return folder


@pytest.fixture
def pages_url(pages_dir: Path, static_http_server: Serve) -> str:
    # A fresh origin per test: retry.js keeps its backoff in sessionStorage, per origin.
    return static_http_server(pages_dir)


@pytest.fixture
def color_scheme(chromium: webdriver.Chrome) -> Iterator[Callable[[str], None]]:
    """``color_scheme("dark")`` emulates prefers-color-scheme; reset after the test."""

    def emulate(scheme: str) -> None:
        features = [{"name": "prefers-color-scheme", "value": scheme}]
        chromium.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})

    try:
        yield emulate
    finally:
        chromium.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every network URL asked for since the logs were last read.

    ``data:`` URLs are inline by definition, and ``chrome:`` ones are Chromium's
    own pages (the blank tab it starts with), so neither counts.
    """
    urls = []
    for entry in read_log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith(INTERNAL_SCHEMES):
                urls.append(url)
    return urls


def main_action_text(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.ID, "main-action").text)


def countdown_number(driver: webdriver.Chrome) -> int | None:
    found = NUMBER.search(main_action_text(driver))
    return int(found.group(1)) if found else None


def wait_for_number_below(driver: webdriver.Chrome, value: int) -> int:
    def lower(d: webdriver.Chrome) -> int | None:
        now = countdown_number(d)
        return now if now is not None and now < value else None

    result = WebDriverWait(driver, 3 * TICK, poll_frequency=0.1).until(
        lower, f"the countdown did not go below {value}: {main_action_text(driver)!r}"
    )
    assert result is not None  # until() returns only a truthy value
    return result


# --------------------------------------------------------------------------- every page


@pytest.mark.parametrize(("reason", "locale"), PAGES)
def test_page_loads_alone_with_focus_on_main_action(
    reason: str, locale: str, chromium: webdriver.Chrome, pages_url: str
) -> None:
    url = f"{pages_url}/{page_name(reason, locale)}"
    drain_logs(chromium)
    chromium.get(url)
    assert requested_urls(chromium) == [url], "the page must need no other request"
    headings = chromium.find_elements(By.TAG_NAME, "h1")
    assert len(headings) == 1
    assert headings[0].text and headings[0].text in chromium.title
    assert chromium.execute_script("return document.activeElement.id") == "main-action"
    assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == locale
    errors = [e["message"] for e in read_log(chromium, "browser") if e["level"] == "SEVERE"]
    assert not errors


@pytest.mark.parametrize("locale", LOCALES)
def test_not_found_offers_home_without_countdown(
    locale: str, chromium: webdriver.Chrome, pages_url: str
) -> None:
    chromium.get(f"{pages_url}/{page_name('not-found', locale)}")
    action = chromium.find_element(By.ID, "main-action")
    assert action.tag_name == "a"
    assert action.get_dom_attribute("href") == "/"
    assert not chromium.find_elements(By.ID, "pause")
    before = action.text
    time.sleep(STOPPED_FOR)
    assert action.text == before and countdown_number(chromium) is None


# --------------------------------------------------------------------------- countdown


@pytest.mark.parametrize(("reason", "locale"), [page for page in PAGES if page[0] in COUNTDOWN])
def test_countdown_decreases(
    reason: str, locale: str, chromium: webdriver.Chrome, pages_url: str
) -> None:
    chromium.get(f"{pages_url}/{page_name(reason, locale)}")
    first = countdown_number(chromium)
    assert first is not None, main_action_text(chromium)
    assert first == REASONS[reason].wait
    assert wait_for_number_below(chromium, first) == first - 1


@pytest.mark.parametrize("locale", LOCALES)
def test_countdown_pauses_and_resumes(
    locale: str, chromium: webdriver.Chrome, pages_url: str
) -> None:
    chromium.get(f"{pages_url}/{page_name('maintenance', locale)}")
    pause = chromium.find_element(By.ID, "pause")
    assert pause.is_displayed() and pause.get_attribute("aria-pressed") == "false"
    pause.click()
    assert pause.get_attribute("aria-pressed") == "true"
    stopped_at = main_action_text(chromium)
    time.sleep(STOPPED_FOR)
    assert main_action_text(chromium) == stopped_at, "a paused countdown must not move"
    pause.click()
    assert pause.get_attribute("aria-pressed") == "false"
    number = NUMBER.search(stopped_at)
    assert number is not None, stopped_at
    wait_for_number_below(chromium, int(number.group(1)))


def marker_gone(driver: webdriver.Chrome) -> bool:
    """True once the page that got ``window.__marker`` has been replaced by a new load."""
    try:
        return bool(driver.execute_script("return window.__marker === undefined"))
    except WebDriverException:  # caught mid-navigation
        return False


def test_countdown_honours_short_retry_after(
    chromium: webdriver.Chrome, tmp_path: Path, static_http_server: Serve
) -> None:
    (tmp_path / "busy.html").write_bytes(render("overloaded", retry_after=2).body)
    url = f"{static_http_server(tmp_path)}/busy.html"
    chromium.get(url)
    assert countdown_number(chromium) == 2, main_action_text(chromium)
    chromium.execute_script("window.__marker = 1")
    drain_logs(chromium)

    WebDriverWait(chromium, 4, poll_frequency=0.1).until(
        marker_gone, "the page did not retry by itself within 4 s of Retry-After: 2"
    )
    assert url in requested_urls(chromium)


def test_offline_page_retries_when_the_browser_is_back_online(
    chromium: webdriver.Chrome, tmp_path: Path, static_http_server: Serve
) -> None:
    (tmp_path / "offline.html").write_bytes(render("offline").body)
    chromium.get(f"{static_http_server(tmp_path)}/offline.html")
    chromium.execute_script("window.__marker = 1")
    chromium.execute_script("window.dispatchEvent(new Event('online'))")

    WebDriverWait(chromium, 3, poll_frequency=0.1).until(
        marker_gone, "the offline page did not retry when the browser came back online"
    )


# --------------------------------------------------------------------------- axe-core


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe.min.js, installed from npm into .cache/axe-core on first use."""
    if not AXE_JS.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is not on PATH: the accessibility tests install axe-core from npm "
                "(Debian: `apt-get install nodejs npm`, or run `make test`).",
                pytrace=False,
            )
        command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR), AXE_VERSION]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
        )
        if done.returncode != 0 or not AXE_JS.is_file():
            pytest.fail(
                f"{' '.join(command)} exited {done.returncode} without {AXE_JS}\n"
                f"--- stderr\n{done.stderr[-4000:]}",
                pytrace=False,
            )
    return AXE_JS.read_text(encoding="utf-8")


AXE_RUN: Final = """
const done = arguments[arguments.length - 1];
axe.run(document).then(
  (result) => done({violations: result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({target: n.target.join(" "), summary: n.failureSummary})),
  }))}),
  (error) => done({error: String(error)}),
);
"""


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            summary = " ".join(str(node["summary"]).split())
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


@pytest.mark.npm
@pytest.mark.parametrize("scheme", SCHEMES)
def test_axe_finds_no_violations(
    scheme: str,
    axe_source: str,
    chromium: webdriver.Chrome,
    pages_url: str,
    color_scheme: Callable[[str], None],
) -> None:
    color_scheme(scheme)
    chromium.set_script_timeout(30)
    failures = []
    for reason, locale in PAGES:
        chromium.get(f"{pages_url}/{page_name(reason, locale)}")
        assert chromium.execute_script(
            "return matchMedia('(prefers-color-scheme: dark)').matches"
        ) == (scheme == "dark")
        chromium.execute_script(axe_source)
        result: dict[str, Any] = chromium.execute_async_script(AXE_RUN)
        if "error" in result:
            pytest.fail(f"axe.run failed on {reason} ({locale}, {scheme}): {result['error']}")
        if result["violations"]:
            failures.append(f"{reason} ({locale}, {scheme}):\n{describe(result['violations'])}")
    assert not failures, "axe-core found violations:\n" + "\n".join(failures)
