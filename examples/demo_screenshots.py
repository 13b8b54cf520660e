"""Screenshots of the demo for the README: the app, the chaos panel, a guided page.

    .venv/bin/python -m examples.demo_screenshots [--out docs/screenshots]

Starts the demo (``python -m examples.demo --port 0``, in a temporary
folder), drives it in headless Chromium and writes:

- ``demo-app.png``: the loan app with a quote and its repayment report;
- ``demo-chaos-panel.png``: the chaos panel, the origin down and the
  incidents of the recoveries that followed;
- ``demo-guided-page.png``: the app-crash page after an exception at boot.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from examples.chaos.process import REPO, DemoProcess

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMEDRIVER: Final = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS: Final = (  # as tests/conftest.py starts it, plus no scrollbars in the pictures
    "--headless=new",
    "--no-sandbox",  # runs as root in CI, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WIDTH: Final = 1100
DEFAULT_OUT: Final = REPO / "docs" / "screenshots"
JSON: Final = {"content-type": "application/json"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo_screenshots")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default docs/screenshots")
    out: Path = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="demo-screenshots-") as tmp,
        DemoProcess(root=Path(tmp) / "demo") as demo,
        start_chromium(Path(tmp) / "profile") as driver,
        httpx.Client(base_url=demo.urls["app"], headers=JSON, timeout=30) as api,
    ):
        app = demo.urls["app"]
        shoot_app(driver, app, out / "demo-app.png")
        shoot_panel(driver, api, app, out / "demo-chaos-panel.png")
        shoot_guided_page(driver, api, app, out / "demo-guided-page.png")
    for name in ("demo-app.png", "demo-chaos-panel.png", "demo-guided-page.png"):
        print(out / name)
    return 0


@contextmanager
def start_chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise SystemExit(f"{path} is missing: `apt-get install chromium chromium-driver`")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shoot_app(driver: webdriver.Chrome, app: str, out: Path) -> None:
    driver.get(app)
    until(driver, lambda: driver.find_element(By.ID, "rendered"))
    driver.find_element(By.ID, "get-quote").click()
    until(driver, lambda: "a month" in driver.find_element(By.ID, "quote").text)
    driver.find_element(By.ID, "open-report").click()
    until(driver, lambda: driver.find_element(By.CSS_SELECTOR, "#report table"))
    driver.execute_script("document.activeElement.blur(); scrollTo(0, 0)")
    whole_page(driver, out)


def shoot_panel(driver: webdriver.Chrome, api: httpx.Client, app: str, out: Path) -> None:
    api.post("/_demo/api/deploy", json={})
    api.post("/_demo/api/switches/origin-down", json={"on": True})
    for _ in range(2):  # two first-time visitors: each recovers from the mirror, and reports it
        clear_cache(driver)
        driver.get(app)
        until(driver, lambda: driver.execute_script("return !!window.unblank.state.ready"))
    until(driver, lambda: len(api.get("/_demo/api/state").json()["incidents"]) >= 2)
    driver.get(f"{app}/_demo/")
    until(driver, lambda: driver.find_element(By.CSS_SELECTOR, "#incidents tr"))
    whole_page(driver, out)
    api.post("/_demo/api/reset", json={})


def shoot_guided_page(driver: webdriver.Chrome, api: httpx.Client, app: str, out: Path) -> None:
    api.post("/_demo/api/switches/boot-exception", json={"on": True})
    clear_cache(driver)
    driver.get(app)
    until(driver, lambda: driver.find_element(By.ID, "unblank-page"), timeout=30)
    driver.execute_script("document.activeElement.blur()")  # no focus ring in the picture
    viewport(driver, 800)
    driver.save_screenshot(str(out))
    api.post("/_demo/api/reset", json={})


def clear_cache(driver: webdriver.Chrome) -> None:
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})


def whole_page(driver: webdriver.Chrome, out: Path) -> None:
    viewport(driver, 800)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    viewport(driver, height)
    driver.save_screenshot(str(out))


def viewport(driver: webdriver.Chrome, height: int) -> None:
    metrics = {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def until(driver: webdriver.Chrome, condition: Callable[[], Any], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except WebDriverException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"gave up after {timeout} s at {driver.current_url}")


if __name__ == "__main__":
    raise SystemExit(main())
