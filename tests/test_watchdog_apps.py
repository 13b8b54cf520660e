"""The watchdog on a real bundler's output, and on a page nobody is looking at.

- A React app built by the real Vite (``tests/fixtures/vite_app``, built with
  ``--base ./`` so its chunks and CSS resolve next to the module that loads
  them, on the asset origin) and published by ``unblank build``; the shell
  uses ``entry_tags("index.html")`` (stylesheet, ``modulepreload`` of the
  shared chunk, module entry) and the import map. The app never calls
  ``unblank.ready()``: the watchdog must judge it by what it draws. Faults: a
  shared chunk corrupted at the origin (modulepreload and import fail, the
  mirror takes over), the lazy Report chunk gone after a deploy (a reload
  brings the app back), the Report's CSS preload failing (``vite:preloadError``).
- The fixture app opened in a background tab, loading slowly: never replaced.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from tests.conftest import BUILD_TIMEOUT, VITE_APP, _run_tool, install_vite_app_packages
from tests.watchdog_matrix import (
    CSP,
    Backend,
    Faults,
    Scenario,
    fresh_tab,
    new_driver,
    origin_app,
    page_state,
    running,
    screenshot_is_not_blank,
    unique,
    wait_for,
)
from unblank import Manifest, Shell, UnblankMiddleware
from unblank.reports import ReportIntake
from unblank.shell import WatchdogSettings
from unblank_server.builder import build

pytestmark = [pytest.mark.browser, pytest.mark.npm]

FAST = WatchdogSettings(ready_timeout=3, asset_timeout=2, retry_for=10, crash_grace=1)
VITE_SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Vite app</title>
{{ unblank_head() }}
{{ import_map() }}
{{ entry_tags("index.html") }}
</head>
<body><div id="root"></div></body>
</html>
"""


BLOCKING_SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Legacy app</title>
{{ unblank_head() }}
</head>
<body>
<div id="app"></div>
{{ asset_tag("blocking-a.js", module=False, defer=False) }}
{{ asset_tag("blocking-b.js", module=False, defer=False) }}
</body>
</html>
"""


class ShellBackend:
    """Starlette + Shell + UnblankMiddleware rendering one shell template."""

    def __init__(self, dist: Path, template: str) -> None:
        self.dist = dist
        self.base_url = ""
        self.mirrors: list[str] = []
        self.watchdog = FAST
        self.shells: list[str] = []
        self.reports: list[dict[str, Any]] = []
        self.intake = ReportIntake(rate=1000, burst=1000)
        self._templates = Jinja2Templates(
            env=jinja2.Environment(loader=jinja2.DictLoader({"shell": template}), autoescape=True)
        )
        self.app = Starlette(
            routes=[Route("/", self._shell)],
            middleware=[
                Middleware(UnblankMiddleware, content_security_policy=CSP, reports=self.intake)
            ],
        )

    def manifest(self) -> Manifest:
        return Manifest.loads((self.dist / "manifest.json").read_bytes())

    async def _shell(self, request: Request) -> Response:
        self.shells.append(str(request.url))
        shell = Shell(
            manifest=self.manifest(),
            base_url=self.base_url,
            mirrors=self.mirrors,
            watchdog=self.watchdog,
        )
        shell.install(self._templates.env)
        return shell.template_response(self._templates, request, "shell")


@pytest.fixture(scope="module")
def vite_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    node_modules = install_vite_app_packages()
    node = shutil.which("node")
    assert node is not None
    project = tmp_path_factory.mktemp("vite_relative")
    shutil.copytree(
        VITE_APP, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules", "dist")
    )
    (project / "node_modules").symlink_to(node_modules, target_is_directory=True)
    out = tmp_path_factory.mktemp("vite_relative_out")
    vite = str(node_modules / "vite" / "bin" / "vite.js")
    command = [node, vite, "build", "--base", "./", "--outDir", str(out), "--emptyOutDir"]
    _run_tool(command, cwd=project, timeout=BUILD_TIMEOUT)
    dist = tmp_path_factory.mktemp("vite_watchdog") / "dist"
    build(out, dist)
    backend = ShellBackend(dist, VITE_SHELL)
    origin, mirror = origin_app(dist), origin_app(dist)
    catcher = _catch_reports(backend.reports)
    driver = new_driver(tmp_path_factory.mktemp("vite-profile"))
    try:
        with running(backend.app, origin, mirror) as (backend_url, origin_url, mirror_url):
            backend.base_url = f"{origin_url}/static/"
            backend.mirrors = [f"{mirror_url}/static/"]
            yield {
                "driver": driver,
                "backend": backend,
                "origin": origin,
                "mirror": mirror,
                "urls": [backend_url, origin_url, mirror_url],
                "project": project,
                "out": out,
                "node": node,
                "vite": vite,
            }
            origin.release.set()
            mirror.release.set()
    finally:
        driver.quit()
        catcher()
        origin.app.close()
        mirror.app.close()


def _catch_reports(into: list[dict[str, Any]]) -> Any:
    import logging

    class Catcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            report = getattr(record, "report", None)
            if isinstance(report, dict):
                into.append(report)

    handler = Catcher()
    logging.getLogger("unblank.report").addHandler(handler)
    return lambda: logging.getLogger("unblank.report").removeHandler(handler)


def vite_state(driver: webdriver.Chrome) -> dict[str, Any]:
    state: dict[str, Any] = driver.execute_script(
        """
        const page = document.getElementById("unblank-page");
        return {
          app: !!document.querySelector("[data-testid=app] h1") && !page,
          report: !!document.getElementById("report"),
          page: page ? page.dataset.reason : null,
          url: location.href,
        };
        """
    )
    return state


def open_vite(site: dict[str, Any], *, origin: dict[str, str] | None = None) -> float:
    driver: webdriver.Chrome = site["driver"]
    site["origin"].clear()
    site["mirror"].clear()
    site["origin"].rules.update(origin or {})
    site["backend"].shells.clear()
    site["backend"].reports.clear()
    fresh_tab(driver, site["urls"])
    started = time.monotonic()
    driver.get(f"{site['urls'][0]}/?t={unique()}")
    return started


def wait_vite(site: dict[str, Any], predicate: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = vite_state(site["driver"])
        except Exception:
            state = {}
        if state and predicate(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"gave up after {timeout} s; the tab shows {state}")


def path_of(site: dict[str, Any], suffix: str, kind: str) -> str:
    """The published path of the Vite file named like ``Report-*.js``."""
    manifest: Manifest = site["backend"].manifest()
    found = [a.path for a in manifest.assets.values() if suffix in a.path and a.path.endswith(kind)]
    assert len(found) == 1, (suffix, kind, found)
    return found[0]


def test_a_react_app_that_never_calls_ready_is_judged_by_what_it_draws(
    vite_site: dict[str, Any],
) -> None:
    open_vite(vite_site)
    wait_vite(vite_site, lambda s: s["app"])
    time.sleep(FAST.ready_timeout + 2)
    assert vite_state(vite_site["driver"])["page"] is None
    assert vite_site["backend"].reports == []
    assert screenshot_is_not_blank(vite_site["driver"])


def test_a_corrupted_shared_chunk_comes_from_the_mirror(vite_site: dict[str, Any]) -> None:
    shared = path_of(vite_site, "/shared-", ".js")
    open_vite(vite_site, origin={shared: "corrupt"})
    wait_vite(vite_site, lambda s: s["app"])
    kinds = {r.get("kind") for r in vite_site["backend"].reports if r.get("outcome") == "recovered"}
    deadline = time.monotonic() + 10
    while "modulepreload" not in kinds and time.monotonic() < deadline:
        time.sleep(0.1)
        kinds = {
            r.get("kind") for r in vite_site["backend"].reports if r.get("outcome") == "recovered"
        }
    assert "modulepreload" in kinds or "script" in kinds, vite_site["backend"].reports
    assert vite_site["mirror"].count(shared) >= 1
    assert len(vite_site["backend"].shells) == 1


def test_the_lazy_chunk_gone_after_a_deploy_reloads_into_the_app(
    vite_site: dict[str, Any],
) -> None:
    report = path_of(vite_site, "/Report-", ".js")
    open_vite(vite_site, origin={report: "404"})
    vite_site["mirror"].rules[report] = "404"
    wait_vite(vite_site, lambda s: s["app"])
    vite_site["driver"].find_element(By.ID, "open-report").click()
    wait_vite(vite_site, lambda s: s["app"] and len(vite_site["backend"].shells) == 2)
    # Vite preloads the chunk (a modulepreload link) before import() asks for it:
    # whichever fails first is the reported kind.
    causes = {(r.get("cause"), r.get("kind")) for r in vite_site["backend"].reports}
    assert causes & {("not-found", "chunk"), ("not-found", "modulepreload")}, causes
    assert screenshot_is_not_blank(vite_site["driver"])


def test_a_failed_css_preload_is_recovered(vite_site: dict[str, Any]) -> None:
    css = path_of(vite_site, "/Report-", ".css")
    open_vite(vite_site, origin={css: "404"})
    wait_vite(vite_site, lambda s: s["app"])
    vite_site["driver"].find_element(By.ID, "open-report").click()
    # Either the mirror's copy lets the report open, or a reload brings the app back.
    wait_vite(
        vite_site, lambda s: s["app"] and (s["report"] or len(vite_site["backend"].shells) == 2)
    )
    assert vite_site["backend"].reports, "no incident was reported"
    assert vite_state(vite_site["driver"])["page"] is None


# --------------------------------------------------------------------------- the fixture app


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    src = tmp_path_factory.mktemp("bg_src")
    shutil.copytree(Path(__file__).parent / "fixtures" / "watchdog_app", src, dirs_exist_ok=True)
    dist = tmp_path_factory.mktemp("bg") / "dist"
    build(src, dist)
    origin, mirror = origin_app(dist), origin_app(dist)
    backend = Backend(dist)
    legacy = ShellBackend(dist, BLOCKING_SHELL)
    catcher = _catch_reports(legacy.reports)
    driver = new_driver(tmp_path_factory.mktemp("bg-profile"))
    try:
        with running(backend.app, origin, mirror, legacy.app) as urls:
            legacy.base_url = f"{urls[1]}/static/"
            legacy.mirrors = [f"{urls[2]}/static/"]
            yield {
                "driver": driver,
                "src": src,
                "dist": dist,
                "backend": backend,
                "legacy": legacy,
                "origin": origin,
                "mirror": mirror,
                "urls": urls,
            }
            origin.release.set()
            mirror.release.set()
    finally:
        driver.quit()
        catcher()
        backend.close()
        origin.app.close()
        mirror.app.close()


def test_a_parser_blocking_script_is_retried_in_place(fixture_site: dict[str, Any]) -> None:
    # blocking-b.js needs what blocking-a.js defines: the retry of a (from the
    # mirror) must run before b, where a stood.
    driver: webdriver.Chrome = fixture_site["driver"]
    legacy: ShellBackend = fixture_site["legacy"]
    _backend_url, origin_url, mirror_url, legacy_url = fixture_site["urls"]
    origin: Faults = fixture_site["origin"]
    origin.clear()
    fixture_site["mirror"].clear()
    origin.rules[legacy.manifest().assets["blocking-a.js"].path] = "404"
    legacy.reports.clear()
    fresh_tab(driver, [legacy_url, origin_url, mirror_url])
    driver.get(f"{legacy_url}/?t={unique()}")
    _state, _ = wait_for(driver, lambda s: bool(s.get("rendered")) and bool(s.get("ready")), 30)
    assert "Fixed rate: 4.2%" in driver.find_element(By.ID, "app").text
    assert driver.execute_script("return window.unblank.state.errors") == [], "b ran before a"
    deadline = time.monotonic() + 10
    while not legacy.reports and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(r["cause"], r["outcome"]) for r in legacy.reports] == [("not-found", "recovered")]


def test_a_slow_app_in_a_background_tab_is_never_replaced(fixture_site: dict[str, Any]) -> None:
    driver: webdriver.Chrome = fixture_site["driver"]
    backend: Backend = fixture_site["backend"]
    backend_url, origin_url = fixture_site["urls"][:2]
    backend.reset(
        Scenario(
            base_url=f"{origin_url}/static/",
            watchdog=WatchdogSettings(ready_timeout=2, asset_timeout=30, crash_grace=1),
        )
    )
    origin: Faults = fixture_site["origin"]
    origin.clear()
    origin.rules[backend.manifest().assets["main.js"].path] = "slow:5"
    fresh_tab(driver, [backend_url, origin_url])
    driver.get(f"{backend_url}/?t={unique()}")
    wait_for(driver, lambda s: s.get("url", "").startswith(backend_url), 15)
    page_tab = driver.current_window_handle
    # Another tab in front: this one is hidden while its entry script is slow.
    driver.switch_to.new_window("tab")
    driver.get("data:text/html,<p>another tab</p>")
    time.sleep(8)
    driver.close()
    driver.switch_to.window(page_tab)
    wait_for(driver, lambda s: bool(s.get("rendered")), 15)
    time.sleep(3)
    state = page_state(driver)
    assert state["page"] is None and state["rendered"], state
    assert backend.reports == []


def test_another_chunk_gone_after_another_deploy_reloads_again(
    fixture_site: dict[str, Any],
) -> None:
    # The reload guard stops a loop (the same file failing after its reload),
    # not the next, unrelated incident: two deploys a minute apart, each
    # removing the report chunk an open page still names, are two reloads.
    driver: webdriver.Chrome = fixture_site["driver"]
    backend: Backend = fixture_site["backend"]
    backend_url, origin_url, mirror_url = fixture_site["urls"][:3]
    origin: Faults = fixture_site["origin"]
    mirror: Faults = fixture_site["mirror"]
    backend.reset(
        Scenario(base_url=f"{origin_url}/static/", mirrors=[f"{mirror_url}/static/"], watchdog=FAST)
    )
    origin.clear()
    mirror.clear()
    fresh_tab(driver, [backend_url, origin_url, mirror_url])
    src: Path = fixture_site["src"]
    report = src / "report.js"
    for version in (1, 2):
        # A release this browser never loaded, then one that removes its chunk.
        report.write_text(report.read_text() + f"// release {version}a\n")
        build(src, fixture_site["dist"])
        driver.get(f"{backend_url}/?t={unique()}")
        wait_for(driver, lambda s: bool(s.get("rendered")) and bool(s.get("ready")), 30)
        shells = len(backend.shells)
        gone = backend.manifest().assets["report.js"].path
        report.write_text(report.read_text() + f"// release {version}b\n")
        build(src, fixture_site["dist"])
        origin.rules[gone] = "404"
        mirror.rules[gone] = "404"
        driver.find_element(By.ID, "open-report").click()
        state, _ = wait_for(driver, reloaded_into_the_report(backend, shells), 30)
        assert state["page"] is None, state
    chunks = [r for r in backend.reports if r.get("kind") == "chunk"]
    assert [r["outcome"] for r in chunks] == ["reloading", "reloading"], backend.reports


def reloaded_into_the_report(backend: Backend, shells: int) -> Callable[[dict[str, Any]], bool]:
    return lambda state: bool(state.get("report")) and len(backend.shells) == shells + 1
