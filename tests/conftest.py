"""Fixtures shared by the test suite.

- ``chromium``: one headless Chromium per session, driven by Selenium, with
  the browser console and the DevTools network log recorded.
- ``static_http_server``: serves a folder over plain HTTP on 127.0.0.1 from a
  background thread (no unblank code involved), to put built files in front
  of the browser exactly as they are on disk.
- ``run_unblank``: runs the ``unblank`` command line of this working tree as a
  subprocess, the way users and CI call it.
- ``unblank_build``: the same for ``unblank build ... --json``, returning its summary.
- ``vite_dist`` / ``vite_unblank_dist`` / ``vite_unblank_summary``: the fixture app in
  ``tests/fixtures/vite_app`` built once per session by the real Vite, then
  published by ``unblank build``.  npm packages are installed once into
  ``.cache/vite_app/<hash of package.json + package-lock.json>`` at the
  repository root and reused while those two files are unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

REPO_ROOT = Path(__file__).resolve().parent.parent
# The three source roots (DESIGN.md): the subprocess must run this tree's code.
SOURCE_ROOTS = ("sdk", "static_server", "fallback_pages")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
VITE_APP = Path(__file__).resolve().parent / "fixtures" / "vite_app"
VITE_CACHE = REPO_ROOT / ".cache" / "vite_app"
# What `npm ci` needs to reproduce node_modules: the cache is keyed by their bytes.
NPM_INPUTS = ("package.json", "package-lock.json")
NPM_TIMEOUT = 600  # a cold install downloads Vite, Rollup, esbuild, React: minutes on a slow link
# Vite 6's "engines" (tests/fixtures/vite_app/package.json pins it): Debian 12's nodejs 18 will do.
NODE_NEEDED = "Node.js 18, 20 or 22+"
BUILD_TIMEOUT = 300
SHUTDOWN_POLL = 0.05  # seconds; serve_forever's default 0.5 s would be added to every test

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root in CI, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """A headless Chromium for the whole session.

    Console messages are in ``driver.get_log("browser")`` and DevTools network
    events (``Network.responseReceived`` ...) in ``driver.get_log("performance")``;
    reading a log drains it, so read it once before a step to start clean.
    """
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.fail(
                f"{path} is missing: browser tests need Debian's {package} package. Run "
                "`make test`, which installs it, or `apt-get install chromium chromium-driver`.",
                pytrace=False,
            )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# --------------------------------------------------------------------------- static HTTP


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files as they are, open to every origin, never cached, never logging."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        # Each test decides what the browser gets; a copy cached by an earlier test must not count.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _RunningServer:
    server: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def static_http_server() -> Iterator[Callable[[Path], str]]:
    """Serve a folder: ``base_url = static_http_server(folder)``, e.g. ``http://127.0.0.1:43121``.

    Every server started by the test is shut down when the test ends.
    """
    running: list[_RunningServer] = []

    def serve(directory: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL},
            name="static-http",
            daemon=True,
        )
        thread.start()
        running.append(_RunningServer(server, thread))
        host, port = server.server_address[:2]
        return f"http://{host!s}:{port}"

    try:
        yield serve
    finally:
        for item in running:
            item.stop()


# --------------------------------------------------------------------------- unblank CLI


def unblank_command() -> list[str]:
    """The command line that runs `unblank` from this working tree."""
    return [sys.executable, "-m", "unblank_server"]


def _subprocess_env() -> dict[str, str]:
    roots = [str(REPO_ROOT / root) for root in SOURCE_ROOTS]
    inherited = os.environ.get("PYTHONPATH")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*roots, *([inherited] if inherited else [])])
    return env


RunUnblank = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def run_unblank() -> RunUnblank:
    """Run ``unblank *args`` and return the finished process (stdout/stderr as text)."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*unblank_command(), *(str(arg) for arg in args)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            env=_subprocess_env(),
            check=False,
        )

    return run


def _build_json(run: RunUnblank, src: Path, dist: Path, *options: str) -> dict[str, Any]:
    done = run("build", src, dist, "--json", *options)
    if done.returncode != 0:
        pytest.fail(
            f"unblank build {src} {dist} {' '.join(options)} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}",
            pytrace=False,
        )
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"unblank build --json printed no single JSON object ({exc}):\n{done.stdout}")
    if not isinstance(summary, dict):
        pytest.fail(f"unblank build --json printed {type(summary).__name__}, not an object")
    return summary


UnblankBuild = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def unblank_build(run_unblank: RunUnblank) -> UnblankBuild:
    """``summary = unblank_build(src, dist, "--sri", "sha512")``: the ``--json`` summary.

    Fails the test with the command's output unless it exits 0.
    """
    return functools.partial(_build_json, run_unblank)


# --------------------------------------------------------------------------- Vite fixture app


def _run_tool(command: list[str], cwd: Path, timeout: int) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} (in {cwd}) took more than {timeout}s: {exc}")
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} (in {cwd}) exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}",
            pytrace=False,
        )


def _npm_cache_key() -> str:
    digest = hashlib.sha256()
    for name in NPM_INPUTS:
        digest.update(name.encode() + b"\0" + (VITE_APP / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def install_vite_app_packages() -> Path:
    """node_modules for the fixture app, installed once per package.json/lock content."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"npm is not on PATH: the Vite build test needs {NODE_NEEDED} and npm "
            "(Debian: `apt-get install nodejs npm`, or run `make test`).",
            pytrace=False,
        )
    key = _npm_cache_key()
    installed = VITE_CACHE / key
    if (installed / "node_modules" / "vite" / "package.json").is_file():
        return installed / "node_modules"
    VITE_CACHE.mkdir(parents=True, exist_ok=True)
    staging = VITE_CACHE / f".staging-{key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in NPM_INPUTS:
        shutil.copy2(VITE_APP / name, staging / name)
    _run_tool([npm, "ci", "--no-audit", "--no-fund"], cwd=staging, timeout=NPM_TIMEOUT)
    try:
        staging.rename(installed)  # atomic: a half-done install is never taken for a cached one
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another run finished first: use its copy
    for old in VITE_CACHE.iterdir():
        if old.name != installed.name and not old.name.startswith(".staging-"):
            shutil.rmtree(old, ignore_errors=True)  # installs for older package.json versions
    return installed / "node_modules"


@pytest.fixture(scope="session")
def vite_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Vite's output folder for the fixture app (``dist/`` with ``.vite/manifest.json``)."""
    node_modules = install_vite_app_packages()
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH, though npm is: install {NODE_NEEDED}", pytrace=False)
    project = tmp_path_factory.mktemp("vite_app")
    shutil.copytree(
        VITE_APP, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules", "dist")
    )
    (project / "node_modules").symlink_to(node_modules, target_is_directory=True)
    out = tmp_path_factory.mktemp("vite_dist")
    vite = str(node_modules / "vite" / "bin" / "vite.js")
    _run_tool(
        [node, vite, "build", "--outDir", str(out), "--emptyOutDir"],
        cwd=project,
        timeout=BUILD_TIMEOUT,
    )
    if not (out / ".vite" / "manifest.json").is_file():
        pytest.fail(f"Vite wrote no .vite/manifest.json into {out}: is build.manifest on?")
    return out


@pytest.fixture(scope="session")
def _vite_unblank(
    vite_dist: Path, unblank_build: UnblankBuild, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    dist = tmp_path_factory.mktemp("vite_unblank") / "dist"
    return dist, unblank_build(vite_dist, dist)


@pytest.fixture(scope="session")
def vite_unblank_dist(_vite_unblank: tuple[Path, dict[str, Any]]) -> Path:
    """DIST of ``unblank build`` run (default options) on the Vite build of the fixture app."""
    return _vite_unblank[0]


@pytest.fixture(scope="session")
def vite_unblank_summary(_vite_unblank: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """What ``unblank build --json`` printed for :func:`vite_unblank_dist`."""
    return _vite_unblank[1]
