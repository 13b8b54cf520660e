"""The demo front end, built by unblank, runs in Chromium from its fingerprinted files.

This proves the rewriting end to end: the page's <link>/<script> tags, the CSS
url()/@import and the ES-module imports (static and a lazy import()) all name
files that exist, and the browser loads nothing by an old name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.test_browser_sri import drain_logs, read_log, response_statuses
from unblank import Manifest
from unblank_server.builder import build

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo_assets"

pytestmark = pytest.mark.browser


def test_demo_runs_from_fingerprinted_files(
    tmp_path: Path, chromium: webdriver.Chrome, static_http_server: Callable[[Path], str]
) -> None:
    dist = tmp_path / "dist"
    build(DEMO, dist)
    manifest = Manifest.loads((dist / "manifest.json").read_bytes())
    base = static_http_server(dist)
    drain_logs(chromium)

    chromium.get(f"{base}/{manifest.asset('index.html').path}")
    wait = WebDriverWait(chromium, 10)
    heading = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "main h1"))
    assert heading.text == "Apply for a loan"
    brand = chromium.execute_script(
        "return getComputedStyle(document.querySelector('header')).backgroundColor"
    )
    assert brand == "rgb(31, 78, 121)"  # --brand from theme.css, through @import

    chromium.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    report = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".report h2"))
    assert report.text == "Your repayment plan"  # report.js came by import()

    statuses = response_statuses(chromium)
    loaded = {url.removeprefix(base + "/") for url in statuses if url.startswith(base)}
    for name in ("css/app.css", "css/theme.css", "js/main.js", "js/form.js", "js/report.js",
                 "img/hero.png", "img/logo.svg", "img/pattern.svg"):  # fmt: skip
        assert manifest.asset(name).path in loaded, name
    ours = {url: status for url, status in statuses.items() if url.startswith(base)}
    assert all(status == 200 for status in ours.values()), ours
    errors = [e for e in read_log(chromium, "browser") if e["level"] == "SEVERE"]
    assert errors == []
