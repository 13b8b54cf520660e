"""The real Chromium accepts what ``unblank build`` publishes.

- Every SRI digest unblank computes (sha256, sha384, sha512) is one Chromium
  verifies, and a wrong one makes Chromium block the file.
- The Vite fixture app, published by unblank, still starts in a browser: its
  chunks import each other by their unchanged names, and the lazily loaded
  view arrives with its CSS.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from unblank import integrity
from unblank.manifest import Manifest

pytestmark = pytest.mark.browser

Serve = Callable[[Path], str]
UnblankBuild = Callable[..., dict[str, Any]]
WAIT_SECONDS = 15
PROBE_COLOR = "rgb(1, 2, 3)"
SCRIPT = b"window.__ok = true;\n"
STYLESHEET = f"#probe {{ color: {PROBE_COLOR}; }}\n".encode()


@pytest.fixture(scope="module")
def sri_dist(unblank_build: UnblankBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("sri_src")
    (src / "js").mkdir()
    (src / "js" / "app.js").write_bytes(SCRIPT)
    (src / "app.css").write_bytes(STYLESHEET)
    dist = tmp_path_factory.mktemp("sri") / "dist"
    unblank_build(src, dist, "--sri", "sha256,sha384,sha512")
    return dist


def load_manifest(dist: Path) -> Manifest:
    return Manifest.loads((dist / "manifest.json").read_bytes())


def tokens_by_algorithm(metadata: str) -> dict[str, str]:
    return {token.split("-", 1)[0]: token for token in metadata.split()}


def tamper(token: str) -> str:
    """The same token with one digest character changed: valid syntax, wrong digest."""
    algorithm, value = token.split("-", 1)
    first = "B" if value[0] == "A" else "A"
    return f"{algorithm}-{first}{value[1:]}"


def write_page(dist: Path, name: str, script: tuple[str, str], style: tuple[str, str]) -> str:
    """A page including one script and one stylesheet by (path, integrity)."""
    (script_path, script_sri), (style_path, style_sri) = script, style
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<link rel='stylesheet' href='/{html.escape(style_path)}'"
        f" integrity='{html.escape(style_sri)}' crossorigin='anonymous'>"
        f"<script src='/{html.escape(script_path)}'"
        f" integrity='{html.escape(script_sri)}' crossorigin='anonymous'></script>"
        "</head><body><p id='probe'>probe</p></body></html>"
    )
    (dist / name).write_text(page, encoding="utf-8")
    return name


def read_log(driver: webdriver.Chrome, kind: str) -> list[dict[str, Any]]:
    """Entries of a Chromium log ("browser": console, "performance": DevTools) since last read."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def drain_logs(driver: webdriver.Chrome) -> None:
    read_log(driver, "browser")
    read_log(driver, "performance")


def response_statuses(driver: webdriver.Chrome) -> dict[str, int]:
    """URL -> HTTP status of every response since the logs were last read."""
    statuses: dict[str, int] = {}
    for entry in read_log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            statuses[response["url"]] = int(response["status"])
    return statuses


def page_state(driver: webdriver.Chrome) -> tuple[object, str]:
    ran = driver.execute_script("return window.__ok === true")
    color = driver.execute_script("return getComputedStyle(document.getElementById('probe')).color")
    return ran, str(color)


@pytest.mark.parametrize("algorithms", ["sha256", "sha384", "sha512", "all"])
def test_chromium_accepts_unblank_integrity(
    algorithms: str, sri_dist: Path, chromium: webdriver.Chrome, static_http_server: Serve
) -> None:
    manifest = load_manifest(sri_dist)
    script, style = manifest.assets["js/app.js"], manifest.assets["app.css"]
    for asset in (script, style):
        assert set(tokens_by_algorithm(asset.integrity)) == {"sha256", "sha384", "sha512"}

    def pick(metadata: str) -> str:
        # With all three, Chromium checks only the strongest (sha512, SRI "get the
        # strongest metadata"); one algorithm at a time proves each digest.
        return metadata if algorithms == "all" else tokens_by_algorithm(metadata)[algorithms]

    page = write_page(
        sri_dist,
        f"ok-{algorithms}.html",
        (script.path, pick(script.integrity)),
        (style.path, pick(style.integrity)),
    )
    base = static_http_server(sri_dist)
    drain_logs(chromium)
    chromium.get(f"{base}/{page}")
    assert page_state(chromium) == (True, PROBE_COLOR)
    errors = [entry["message"] for entry in read_log(chromium, "browser")]
    assert not [message for message in errors if "integrity" in message], errors


def test_chromium_blocks_assets_with_tampered_integrity(
    sri_dist: Path, chromium: webdriver.Chrome, static_http_server: Serve
) -> None:
    manifest = load_manifest(sri_dist)
    script, style = manifest.assets["js/app.js"], manifest.assets["app.css"]
    page = write_page(
        sri_dist,
        "tampered.html",
        (script.path, tamper(tokens_by_algorithm(script.integrity)["sha384"])),
        (style.path, tamper(tokens_by_algorithm(style.integrity)["sha512"])),
    )
    base = static_http_server(sri_dist)
    drain_logs(chromium)
    chromium.get(f"{base}/{page}")
    ran, color = page_state(chromium)
    assert ran is False, "Chromium ran a script whose integrity does not match"
    assert color != PROBE_COLOR, "Chromium applied a stylesheet whose integrity does not match"
    # Both files did arrive: what stopped them is the integrity check, not the network.
    statuses = response_statuses(chromium)
    assert statuses.get(f"{base}/{script.path}") == 200, statuses
    assert statuses.get(f"{base}/{style.path}") == 200, statuses
    blocked = [e["message"] for e in read_log(chromium, "browser") if "integrity" in e["message"]]
    assert any(script.path in message for message in blocked), blocked
    assert any(style.path in message for message in blocked), blocked
    # The digest Chromium says it computed is the one unblank published.
    digest = tokens_by_algorithm(script.integrity)["sha384"].split("-", 1)[1]
    assert digest == integrity.compute(SCRIPT, ["sha384"]).split("-", 1)[1]
    assert any(digest in message for message in blocked), blocked


def wait_for(driver: webdriver.Chrome, css: str) -> Any:
    return WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.CSS_SELECTOR, css), f"no {css} on {driver.current_url}"
    )


def computed(driver: webdriver.Chrome, css: str, prop: str) -> str:
    element = driver.find_element(By.CSS_SELECTOR, css)
    return str(driver.execute_script(f"return getComputedStyle(arguments[0]).{prop}", element))


def failed_responses(statuses: dict[str, int]) -> dict[str, int]:
    # Browsers ask for /favicon.ico by themselves, and index.html for /favicon.svg by
    # its Vite name, which unblank fingerprints: neither is what these tests are about.
    return {
        url: status
        for url, status in statuses.items()
        if status >= 400 and not url.rsplit("/", 1)[-1].startswith("favicon.")
    }


@pytest.mark.npm
@pytest.mark.slow
def test_chromium_runs_vite_app_published_by_unblank(
    vite_unblank_dist: Path, chromium: webdriver.Chrome, static_http_server: Serve
) -> None:
    manifest = load_manifest(vite_unblank_dist)
    base = static_http_server(vite_unblank_dist)
    drain_logs(chromium)
    chromium.get(f"{base}/{manifest.assets['index.html'].path}")

    title = wait_for(chromium, "#app h1")
    assert title.text == "Hello, unblank"
    assert "logo-" in computed(chromium, "#app h1", "backgroundImage")  # main CSS + its image
    assert computed(chromium, ".badge", "backgroundColor") == "rgb(32, 74, 135)"  # shared CSS
    assert not chromium.find_elements(By.ID, "report")

    chromium.find_element(By.ID, "open-report").click()
    wait_for(chromium, "#report h2")
    # The Report chunk's own CSS arrived with it (Vite's preload helper, by name).
    assert computed(chromium, "#report", "borderTopColor") == "rgb(0, 128, 0)"

    statuses = response_statuses(chromium)
    report = manifest.entries["index.html"].dynamic_imports[0]
    assert statuses.get(f"{base}/{report}") == 200, statuses
    assert failed_responses(statuses) == {}
    severe = [
        entry["message"]
        for entry in read_log(chromium, "browser")
        if entry["level"] == "SEVERE" and "favicon.svg" not in entry["message"]
    ]
    assert severe == []


@pytest.mark.npm
@pytest.mark.slow
def test_chromium_runs_second_vite_entry_published_by_unblank(
    vite_unblank_dist: Path, chromium: webdriver.Chrome, static_http_server: Serve
) -> None:
    manifest = load_manifest(vite_unblank_dist)
    base = static_http_server(vite_unblank_dist)
    drain_logs(chromium)
    chromium.get(f"{base}/{manifest.assets['admin.html'].path}")
    assert wait_for(chromium, "#admin-app h1").text == "Hello, admin"
    assert computed(chromium, ".badge", "backgroundColor") == "rgb(32, 74, 135)"
    assert failed_responses(response_statuses(chromium)) == {}
