"""The browser fault matrix's parts: servers that misbehave on cue, an app backend
that renders its shell with the SDK, and a Chromium that can tell what it shows.

    origin  = unblank serve's app behind `Faults` (404, HTML with 200, hang,
              corrupted bytes, 503, slow) on a real uvicorn
    mirror  = a second unblank serve of the same DIST, with its own `Faults`
    backend = the app backend, rendering the shell for whatever `Scenario` the
              test set: `Backend` (Starlette + Shell + UnblankMiddleware) for
              the fixture app, `ExampleBackend` (the example's own `LoanApp`)
              for the example app
    Browser = Selenium + Debian's Chromium, one fresh tab per scenario, the
              HTTP cache, Cache Storage and service workers cleared between them

`tests/test_watchdog_browser.py` runs the scenarios on every `AppSpec` in
`APPS`: the fixture app in `tests/fixtures/watchdog_app` and the example app
in `examples/loan_app`. Faults name files by role ("entry", "import", "lazy",
"css"); each app says which of its files plays which.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import jinja2
from PIL import Image, ImageStat
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import Message, Receive, Scope, Send

from examples.loan_app.server import FRONTEND as EXAMPLE_FRONTEND
from examples.loan_app.server import Chaos, DistManifest, LoanApp
from tests.conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_ARGS
from tests.realserver import serve_in_thread
from unblank import Manifest, Shell, UnblankMiddleware
from unblank.reports import ReportIntake
from unblank.shell import WatchdogSettings
from unblank_pages import negotiate
from unblank_server.app import create_app

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "watchdog_app"

# A service worker of the kind that holds bad copies: assets from Cache
# Storage first, the shell from the network with the cached one as fallback.
SERVICE_WORKER = """
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (e) => {
  const r = e.request;
  if (r.method !== "GET") return;
  if (r.mode === "navigate") {
    e.respondWith(fetch(r).then((res) => {
      const copy = res.clone();
      caches.open("shell").then((c) => c.put(r.url.split("?")[0], copy));
      return res;
    }).catch(() => caches.match(r.url.split("?")[0])));
    return;
  }
  e.respondWith(caches.match(r).then((hit) => hit || fetch(r)));
});
"""

SHELL = """<!doctype html>
<html lang="en" data-chaos="{{ chaos }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fixture app</title>
{{ unblank_head() }}
{{ import_map() }}
{% if entry == "classic" %}
{{ asset_tag("app.css") }}
{{ asset_tag("classic.js", module=False) }}
{% else %}
{{ asset_tag("app.css") }}
{{ asset_tag("main.js") }}
{% endif %}
</head>
<body><div id="app"></div></body>
</html>
"""


# --------------------------------------------------------------------------- faults


class Faults:
    """ASGI wrapper: answers the paths it is told to break, passes the rest on.

    ``rules`` maps a path suffix to a fault: ``404``, ``html200``, ``hang``,
    ``corrupt`` (one byte changed, the length kept), ``503``, ``slow:<s>``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rules: dict[str, str] = {}
        self.requests: list[str] = []
        self.release = threading.Event()

    def clear(self) -> None:
        self.rules.clear()
        self.requests.clear()

    def count(self, suffix: str) -> int:
        return sum(1 for path in self.requests if path.endswith(suffix))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        self.requests.append(path)
        fault = next((f for suffix, f in self.rules.items() if path.endswith(suffix)), None)
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "404":
            await self.app({**scope, "path": "/static/gone.000000000000.js"}, receive, send)
        elif fault == "html200":
            body = b"<!doctype html><title>App</title><div id=app></div>"
            await _send(send, 200, body, "text/html; charset=utf-8")
        elif fault == "hang":
            while not self.release.is_set():
                await asyncio.sleep(0.1)
        elif fault == "503":
            await _send(send, 503, b"busy", "text/plain", [(b"retry-after", b"2")])
        elif fault.startswith("slow:"):
            await asyncio.sleep(float(fault[5:]))
            await self.app(scope, receive, send)
        elif fault == "corrupt":
            headers = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
            await self.app({**scope, "headers": headers}, receive, _corrupting(send))
        else:
            raise ValueError(f"unknown fault {fault!r}")


def _corrupting(send: Send) -> Send:
    async def corrupt(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            body = bytearray(message["body"])
            body[len(body) // 2] ^= 0x20
            message = {**message, "body": bytes(body)}
        await send(message)

    return corrupt


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"access-control-allow-origin", b"*"),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- backend


@dataclass
class Scenario:
    """What the backend renders next: where assets come from, what goes wrong."""

    base_url: str = ""
    mirrors: list[str] = field(default_factory=list)
    entry: str = "module"
    chaos: str = ""
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings)
    overloaded: int = 0  # the next N shell requests get 503 + Retry-After: 2
    api_failure: bool = False  # the JSON API's handler raises


class Backend:
    """The app backend (Starlette + Shell + UnblankMiddleware) and what it received.

    ``scenario`` is what the next shell renders; ``shells`` the shell URLs
    asked for and ``reports`` the incident reports accepted, since ``reset``.
    """

    def __init__(self, dist: Path, scenario: Scenario | None = None) -> None:
        self.dist = dist
        self.scenario = scenario or Scenario()
        self.shells: list[str] = []
        self.reports: list[dict[str, Any]] = []
        self._manifest: tuple[tuple[int, int], Manifest] | None = None
        self._templates = Jinja2Templates(
            env=jinja2.Environment(loader=jinja2.DictLoader({"shell": SHELL}), autoescape=True)
        )
        self.app = Starlette(
            routes=[
                Route("/", self._shell),
                Route("/sw.js", self._service_worker),
                Route("/api/data", self._api_data),
                Route("/api/boom", self._api_boom),
            ],
            middleware=[
                Middleware(
                    UnblankMiddleware,
                    content_security_policy=CSP,
                    reports=ReportIntake(rate=1000, burst=1000),
                )
            ],
        )
        self._handler = _ReportCatcher(self.reports)
        logging.getLogger("unblank.report").addHandler(self._handler)

    def close(self) -> None:
        logging.getLogger("unblank.report").removeHandler(self._handler)

    def reset(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.shells.clear()
        self.reports.clear()

    def manifest(self) -> Manifest:
        stat = (self.dist / "manifest.json").stat()
        key = (stat.st_ino, stat.st_mtime_ns)
        if self._manifest is None or self._manifest[0] != key:
            self._manifest = (key, Manifest.loads((self.dist / "manifest.json").read_bytes()))
        return self._manifest[1]

    async def _shell(self, request: Request) -> Response:
        current = self.scenario
        self.shells.append(str(request.url))
        if current.overloaded > 0:
            current.overloaded -= 1
            page = negotiate(
                "overloaded",
                accept=request.headers.get("accept"),
                retry_after=2,
                nonce=request.scope["state"].get("unblank_nonce"),
            )
            return Response(page.body, page.status, dict(page.headers), page.content_type)
        site = Shell(
            manifest=self.manifest,
            base_url=current.base_url,
            mirrors=current.mirrors,
            watchdog=current.watchdog,
        )
        site.install(self._templates.env)
        context = {"chaos": current.chaos, "entry": current.entry}
        return site.template_response(self._templates, request, "shell", context)

    async def _service_worker(self, request: Request) -> Response:
        headers = {"Cache-Control": "no-store"}
        return Response(SERVICE_WORKER, media_type="text/javascript", headers=headers)

    async def _api_data(self, request: Request) -> Response:
        if self.scenario.api_failure:
            raise RuntimeError("fixture: the API handler failed")
        return JSONResponse({"rate": 4.2})

    async def _api_boom(self, request: Request) -> Response:
        raise RuntimeError("fixture: the API handler failed")


class _ReportCatcher(logging.Handler):
    def __init__(self, into: list[dict[str, Any]]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        report = getattr(record, "report", None)
        if isinstance(report, dict):
            self.into.append(report)


class AppBackend(Protocol):
    """What the matrix needs of an app backend: `Backend` and `ExampleBackend` have it."""

    dist: Path
    shells: list[str]
    reports: list[dict[str, Any]]

    @property
    def app(self) -> Any: ...  # the ASGI app to serve

    def reset(self, scenario: Scenario) -> None: ...

    def manifest(self) -> Manifest: ...

    def close(self) -> None: ...


class ExampleBackend:
    """The example app's own backend (`LoanApp` from examples/loan_app) in `Backend`'s role.

    ``reset`` turns a `Scenario` into the app's settings and chaos switches;
    in front of the app, ``app`` counts the shells asked for and serves the
    test's service worker at ``/sw.js`` (the example has none of its own).
    """

    CHAOS = frozenset({"boot-exception", "never-render"})  # what its front end knows

    def __init__(self, dist: Path, scenario: Scenario | None = None) -> None:
        self.dist = dist
        self.shells: list[str] = []
        self.reports: list[dict[str, Any]] = []
        self.loan = LoanApp(
            manifest=dist, base_url="/static/", reports=ReportIntake(rate=1000, burst=1000)
        )
        self._manifest = DistManifest(dist)
        self.reset(scenario or Scenario())
        self._handler = _ReportCatcher(self.reports)
        logging.getLogger("unblank.report").addHandler(self._handler)

    @property
    def app(self) -> ExampleBackend:
        return self

    def close(self) -> None:
        logging.getLogger("unblank.report").removeHandler(self._handler)

    def reset(self, scenario: Scenario) -> None:
        words = set(scenario.chaos.split())
        if scenario.entry != "module" or not words <= self.CHAOS:
            raise ValueError(f"the example app cannot play {scenario}")
        loan = self.loan
        loan.base_url = scenario.base_url
        loan.mirrors = list(scenario.mirrors)
        loan.watchdog = scenario.watchdog
        loan.chaos = Chaos(
            boot_exception="boot-exception" in words,
            never_render="never-render" in words,
            overloaded=scenario.overloaded,
            retry_after=2,
            api="error" if scenario.api_failure else None,
        )
        self.shells.clear()
        self.reports.clear()

    def manifest(self) -> Manifest:
        return self._manifest.load()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/sw.js":
            headers = [(b"cache-control", b"no-store")]
            body = SERVICE_WORKER.encode()
            await _send(send, 200, body, "text/javascript; charset=utf-8", headers)
            return
        if scope["type"] == "http" and scope["path"] == "/":
            query = scope["query_string"].decode("latin-1")
            self.shells.append("/" + (f"?{query}" if query else ""))
        await self.loan(scope, receive, send)


@dataclass(frozen=True)
class AppSpec:
    """One front end the matrix runs on, and the names of its parts.

    ``roles``: the logical name of the file each fault targets: ``entry`` (the
    module the shell loads), ``import`` (a module the entry imports), ``lazy``
    (the chunk ``import()`` loads), ``css`` (the stylesheet); ``classic`` for an
    app with a classic-script edition. ``style`` is a CSS selector, property and
    the values that only the app's stylesheet gives it; ``deploy`` a text of the
    lazy file and the one a new version has; ``api`` a JSON API address that
    fails under ``Scenario(api_failure=True)``. ``supports`` names the optional
    scenarios it can play: ``classic entry``, ``canvas edition``, ``mirror of
    its own`` (a backend that serves its AssetClient's cache to the watchdog).
    """

    name: str
    src: Path
    backend: Callable[[Path], AppBackend]
    roles: Mapping[str, str]
    style: tuple[str, str, tuple[str, ...]]
    deploy: tuple[str, str]
    api: str
    supports: frozenset[str] = frozenset()


APPS: dict[str, AppSpec] = {
    "fixture": AppSpec(
        name="fixture",
        src=FIXTURE,
        backend=Backend,
        roles={
            "entry": "main.js",
            "import": "lib.js",
            "lazy": "report.js",
            "css": "app.css",
            "classic": "classic.js",
        },
        style=("#rendered", "color", ("rgb(1, 2, 3)", "rgba(1, 2, 3, 1)")),
        deploy=("1,043.00", "1,044.00"),
        api="/api/data",
        supports=frozenset({"classic entry", "canvas edition"}),
    ),
    "example": AppSpec(
        name="example",
        src=EXAMPLE_FRONTEND,
        backend=ExampleBackend,
        roles={"entry": "main.js", "import": "loan.js", "lazy": "report.js", "css": "app.css"},
        style=("#rendered h1", "color", ("rgb(31, 78, 121)", "rgba(31, 78, 121, 1)")),
        deploy=("2026.1", "2026.2"),
        api="/api/quote?amount=12000&term=36",
        supports=frozenset({"mirror of its own"}),
    ),
}


# A strict policy: no inline script or style without the nonce, no eval.
CSP = (
    "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; "
    "style-src 'nonce-{nonce}' http://127.0.0.1:*; connect-src 'self' http://127.0.0.1:*; "
    "img-src 'self' data:; worker-src 'self'; base-uri 'none'; object-src 'none'"
)


# --------------------------------------------------------------------------- browser


def new_driver(profile: Path) -> webdriver.Chrome:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1024,768")
    # get() returns at once: a page whose file hangs never fires "load", and the
    # test watches what the tab shows instead.
    options.page_load_strategy = "none"
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def fresh_tab(driver: webdriver.Chrome, origins: list[str]) -> None:
    """A new tab (new sessionStorage) with no cached copies, workers or caches left."""
    old = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.switch_to.window(old)
    driver.close()
    driver.switch_to.window(driver.window_handles[-1])
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    set_network(driver, offline=False)
    for origin in origins:
        driver.execute_cdp_cmd(
            "Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"}
        )


def set_network(
    driver: webdriver.Chrome, *, offline: bool, latency: int = 0, throughput: int = -1
) -> None:
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {
            "offline": offline,
            "latency": latency,
            "downloadThroughput": throughput,
            "uploadThroughput": throughput,
        },
    )


def page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    """What the tab shows: the app, a guided page (and its reason), or neither yet."""
    try:
        state: dict[str, Any] = driver.execute_script(
            """
            const page = document.getElementById("unblank-page");
            const wd = window.unblank && window.unblank.state;
            return {
              rendered: !!document.getElementById("rendered") && !page,
              report: !!document.getElementById("report"),
              page: page ? page.dataset.reason : null,
              ready: !!(wd && wd.ready),
              incidents: wd ? wd.incidents.length : 0,
              url: location.href,
            };
            """
        )
    except JavascriptException:
        return {"rendered": False, "page": None}
    return state


def wait_for(
    driver: webdriver.Chrome, predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> tuple[dict[str, Any], float]:
    """Poll the tab until ``predicate(page_state)``; returns the state and seconds waited."""
    start = time.monotonic()
    state: dict[str, Any] = {}
    while time.monotonic() - start < timeout:
        state = page_state(driver)
        if predicate(state):
            return state, time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutException(f"gave up after {timeout} s; the tab shows {state}")


def screenshot_is_not_blank(driver: webdriver.Chrome) -> bool:
    """True when the screenshot is more than one flat colour (text, shapes, an image)."""
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    low, high = cast(tuple[int, int], image.getextrema())
    return high - low > 40 and ImageStat.Stat(image).stddev[0] > 2.0


def unique() -> str:
    return secrets.token_hex(4)


@contextmanager
def running(*apps: Any) -> Iterator[list[str]]:
    """Serve each app on its own uvicorn; yields their base URLs."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(serve_in_thread(app, timeout_graceful_shutdown=1)) for app in apps
        ]


def origin_app(dist: Path) -> Faults:
    return Faults(create_app(dist, reload_interval=0.2))


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
