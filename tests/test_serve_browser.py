"""`unblank serve` as a CDN, seen from the real Chromium.

The page comes from one origin and its script and stylesheet from another:
``unblank serve`` under uvicorn, named with the integrity its manifest gives.

- Chromium runs the module script and applies the stylesheet: CORS and SRI
  work cross-origin (``crossorigin="anonymous"`` + ``Access-Control-Allow-Origin``).
- A page naming a missing fingerprinted file gets a 404 for it (never an HTML
  shell with 200), and that URL opened directly shows the guided not-found
  page, never a blank one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.realserver import serve_in_thread
from tests.test_browser_sri import drain_logs, read_log, response_statuses
from unblank import Manifest
from unblank_server.app import create_app
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings

pytestmark = pytest.mark.browser

Serve = Callable[[Path], str]
WAIT_SECONDS = 15
PROBE_COLOR = "rgb(1, 2, 3)"
SCRIPT = 'document.body.dataset.ok = "yes";\n'
STYLESHEET = f"#probe {{ color: {PROBE_COLOR}; }}\n"
MISSING = "static/app.000000000000.js"


@pytest.fixture(scope="module")
def cdn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Manifest]]:
    """``unblank serve``'s app on a real uvicorn: (base URL, the manifest it serves)."""
    src = tmp_path_factory.mktemp("cdn_src")
    (src / "app.js").write_text(SCRIPT)
    (src / "app.css").write_text(STYLESHEET * 20)  # long enough to be served as br
    dist = tmp_path_factory.mktemp("cdn") / "dist"
    options = BuildOptions(compression=CompressionSettings(brotli_quality=5, gzip_level=6))
    result = build(src, dist, options)
    manifest = Manifest.loads((dist / "manifest.json").read_bytes())
    assert manifest.generation == result.generation
    app = create_app(dist, reload_interval=0)
    try:
        with serve_in_thread(app) as base_url:
            yield base_url, manifest
    finally:
        app.close()


def test_script_and_stylesheet_from_the_cdn_run_with_sri(
    cdn: tuple[str, Manifest],
    chromium: webdriver.Chrome,
    static_http_server: Serve,
    tmp_path: Path,
) -> None:
    cdn_url, manifest = cdn
    script, style = manifest.assets["app.js"], manifest.assets["app.css"]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cdn</title>"
        "<link rel='icon' href='data:,'>"
        f"<link rel='stylesheet' href='{cdn_url}/static/{style.path}'"
        f" integrity='{style.integrity}' crossorigin='anonymous'>"
        f"<script type='module' src='{cdn_url}/static/{script.path}'"
        f" integrity='{script.integrity}' crossorigin='anonymous'></script>"
        "</head><body><p id='probe'>probe</p></body></html>"
    )
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    origin = static_http_server(tmp_path)
    assert origin.rsplit(":", 1)[1] != cdn_url.rsplit(":", 1)[1]  # two origins
    drain_logs(chromium)
    chromium.get(f"{origin}/index.html")
    WebDriverWait(chromium, WAIT_SECONDS).until(
        lambda d: d.execute_script("return document.body.dataset.ok") == "yes"
    )
    color = chromium.execute_script(
        "return getComputedStyle(document.getElementById('probe')).color"
    )
    assert color == PROBE_COLOR
    statuses = response_statuses(chromium)
    assert statuses[f"{cdn_url}/static/{script.path}"] == 200
    assert statuses[f"{cdn_url}/static/{style.path}"] == 200
    errors = [e for e in read_log(chromium, "browser") if e.get("level") == "SEVERE"]
    assert errors == []


def test_a_missing_file_is_a_404_and_a_guided_page_never_a_blank(
    cdn: tuple[str, Manifest],
    chromium: webdriver.Chrome,
    static_http_server: Serve,
    tmp_path: Path,
) -> None:
    cdn_url, manifest = cdn
    style = manifest.assets["app.css"]
    missing = f"{cdn_url}/{MISSING}"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cdn</title>"
        "<link rel='icon' href='data:,'>"
        f"<link rel='stylesheet' href='{cdn_url}/static/{style.path}'"
        f" integrity='{style.integrity}' crossorigin='anonymous'>"
        f"<script type='module' src='{missing}' crossorigin='anonymous'></script>"
        "</head><body><p id='probe'>probe</p></body></html>"
    )
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    origin = static_http_server(tmp_path)
    drain_logs(chromium)
    chromium.get(f"{origin}/index.html")
    statuses: dict[str, int] = {}
    WebDriverWait(chromium, WAIT_SECONDS).until(
        lambda d: statuses.update(response_statuses(d)) or missing in statuses
    )
    assert statuses[missing] == 404
    assert chromium.execute_script("return document.body.dataset.ok") is None
    console = " ".join(str(e.get("message")) for e in read_log(chromium, "browser"))
    assert MISSING in console  # Chromium reports the failed module load

    chromium.get(missing)
    heading = WebDriverWait(chromium, WAIT_SECONDS).until(
        lambda d: d.find_element(By.TAG_NAME, "h1")
    )
    assert heading.text == "Page not found"
    assert chromium.title  # a titled page ...
    body_text = chromium.find_element(By.TAG_NAME, "body").text
    assert "There is nothing at this address" in body_text  # ... with words in it
    assert response_statuses(chromium)[missing] == 404
