"""Northwind Loans: unblank's example app, a backend on the SDK's shell and middleware.

A small single-page loan application: the front end in ``frontend/`` (plain
ES modules, a stylesheet, an SVG logo; no bundler), published by ``unblank
build`` and served by ``unblank serve``, and this backend:

- ``GET /``: the HTML shell (``templates/shell.html``) rendered with
  :class:`unblank.Shell`: the watchdog and its guided pages inline, an import
  map with the integrity of every script, fingerprinted tags with
  ``integrity`` and ``crossorigin``, and a strict CSP (the request's nonce,
  no ``unsafe-inline``, no ``eval``) naming the asset origins;
- ``GET /api/quote?amount=&term=`` and ``POST /api/quote`` (JSON): a quote, or
  ``application/problem+json`` (RFC 9457) naming every wrong field (422),
  in ``api.py`` (the figures in ``quotes.py``);
- :class:`~unblank.UnblankMiddleware` around both: a request id everywhere,
  guided pages (problem+json for API clients) for exceptions, timeouts,
  overload and maintenance, the watchdog's reports at ``/_unblank/report``,
  and, when the manifest comes from an :class:`~unblank.AssetClient`, its
  verified cache at ``/_unblank/mirror/`` as the watchdog's last mirror;
- with a :class:`~unblank.Rollout` (``rollout=``): while a canary runs, the
  shell renders the generation the rollout assigns each browser, and the
  watchdog's reports count for or against the canary.

::

    loan = LoanApp(
        manifest=Path("dist"),  # or an AssetClient pointed at `unblank serve`
        base_url="http://127.0.0.1:8001/static/",
        mirrors=["http://127.0.0.1:8002/static/"],
    )
    uvicorn.run(loan, port=8000)

    loan.chaos.boot_exception = True  # the next page throws while starting
    loan.maintenance = True  # every request but /_unblank/: maintenance (503)

Everything a running app may change (``chaos``, ``maintenance``,
``base_url``, ``mirrors``, ``watchdog``) is an attribute the next request
reads. How to run it by hand: README.md next to this file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from examples.loan_app.api import answer_quote
from unblank import (
    AssetCache,
    AssetClient,
    FetchError,
    Manifest,
    PrefetchReport,
    Rollout,
    RolloutError,
    Shell,
    UnblankMiddleware,
)
from unblank.guarded import Assignment
from unblank.reports import ReportIntake
from unblank.shell import NONCE_KEY, REQUEST_ID_KEY, WatchdogSettings
from unblank_pages import Brand, PageRenderer

__all__ = ["BRAND", "Chaos", "DistManifest", "LoanApp", "from_environment"]

logger = logging.getLogger("loan_app")

HERE: Final = Path(__file__).resolve().parent
FRONTEND: Final = HERE / "frontend"
TEMPLATES: Final = HERE / "templates"
MIRROR_PATH: Final = "/_unblank/mirror/"
BRAND: Final = Brand(name="Northwind Loans", primary="#1f4e79", support="mailto:help@example.com")
SLOW_API: Final = 60.0  # seconds chaos "slow" makes the API take: past any sane time budget

# Guided pages are self-contained: inline style and script with the nonce, nothing else.
PAGE_CSP: Final = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@dataclass(slots=True)
class Chaos:
    """Faults the running app injects; the next request sees every change.

    - ``boot_exception``: the front end throws while starting (the watchdog
      shows ``app-crash``);
    - ``never_render``: the front end draws nothing (``render-timeout``);
    - ``overloaded``: the next N shells are answered ``overloaded`` (503)
      with ``Retry-After: retry_after``;
    - ``api``: ``"error"``, the quote API raises (500, problem+json for API
      clients); ``"slow"``, it answers after the time budget (504).

    Maintenance is the middleware's own switch: :attr:`LoanApp.maintenance`.
    """

    boot_exception: bool = False
    never_render: bool = False
    overloaded: int = 0
    retry_after: int = 5
    api: Literal["error", "slow"] | None = None

    def front_end(self) -> str:
        """The words of ``<html data-chaos>``, the switches the front end reads."""
        words = (("boot-exception", self.boot_exception), ("never-render", self.never_render))
        return " ".join(word for word, on in words if on)


class ManifestSource(Protocol):
    async def current(self) -> Manifest: ...


class DistManifest:
    """``DIST/manifest.json`` of ``unblank build``, read again when a build replaces it."""

    def __init__(self, dist: str | os.PathLike[str]) -> None:
        self.path = Path(dist) / "manifest.json"
        if not self.path.is_file():
            raise ValueError(
                f"{self.path} does not exist: publish the front end first "
                f"(unblank build {FRONTEND} {dist})"
            )
        self._read: tuple[tuple[int, int, int], Manifest] | None = None

    def load(self) -> Manifest:
        stat = self.path.stat()
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._read is None or self._read[0] != key:
            self._read = (key, Manifest.loads(self.path.read_bytes()))
        return self._read[1]

    async def current(self) -> Manifest:
        return self.load()


class _ClientManifest:
    def __init__(self, client: AssetClient) -> None:
        self.client = client

    async def current(self) -> Manifest:
        return await self.client.current_manifest()


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What the shell needs for one set of asset locations, worked out once."""

    key: tuple[str, tuple[str, ...], WatchdogSettings]
    shell: Shell
    templates: Jinja2Templates  # the shell's helpers installed (one shell per environment)
    policy: str  # the CSP, "{nonce}" standing for the request's


class LoanApp:
    """The example app as an ASGI app; every option is keyword-only.

    - ``manifest``: a DIST folder of ``unblank build`` (its ``manifest.json``
      is read again when a build replaces it), or an :class:`~unblank.AssetClient`
      pointed at the asset origin (then ``serve_mirror`` serves its verified
      cache at ``/_unblank/mirror/``, adds it last to the watchdog's mirrors
      and keeps that cache warm: :meth:`warm`; ``close_client``: close the
      client when the server shuts down).
    - ``base_url``: where browsers load the files (``unblank serve``:
      ``http://host:port/static/``); ``mirrors``: more such base URLs, tried in
      order by the watchdog when a file fails.
    - ``watchdog``: the watchdog's timers; ``chaos``: faults to inject.
    - ``time_budget``, ``max_in_flight``, ``reports``: the middleware's.
    - ``pages``: how guided pages look (default: the Northwind brand).
    - ``rollout``: guarded rollout of the DIST the asset origin serves (its
      local folder). While no canary runs, nothing changes: the shell renders
      ``manifest``'s generation. While one runs, the shell renders the
      generation :meth:`Rollout.assign` gives the browser (and sets its
      cookie, counts the page view), and the middleware counts the watchdog's
      reports; ``/_unblank/mirror/`` is named as a mirror only to pages of
      the generation the AssetClient knows (the mirror serves nothing else).
      The caller owns the rollout (:meth:`Rollout.close` at shutdown).
    """

    def __init__(
        self,
        *,
        manifest: str | os.PathLike[str] | AssetClient,
        base_url: str,
        mirrors: Sequence[str] = (),
        serve_mirror: bool = True,
        close_client: bool = False,
        watchdog: WatchdogSettings | None = None,
        chaos: Chaos | None = None,
        time_budget: float | None = 10.0,
        max_in_flight: int | None = 200,
        reports: ReportIntake | None = None,
        pages: PageRenderer | None = None,
        rollout: Rollout | None = None,
    ) -> None:
        if isinstance(mirrors, str):
            raise ValueError("LoanApp mirrors is a list of base URLs, not one string")
        self.client: AssetClient | None = None
        self._source: ManifestSource
        if isinstance(manifest, AssetClient):
            self.client = manifest
            self._source = _ClientManifest(manifest)
        else:
            self._source = DistManifest(manifest)
        self.base_url = base_url
        self.mirrors = list(mirrors)
        self.watchdog = watchdog or WatchdogSettings()
        self.chaos = chaos or Chaos()
        self.pages = pages or PageRenderer(brand=BRAND)
        self._own_mirror = self.client is not None and serve_mirror
        self._close_client = close_client
        self.rollout = rollout
        self._manifest: Manifest | None = None
        # Shells by (assigned by the rollout, /_unblank/mirror/ named).
        self._prepared: dict[tuple[bool, bool], _Prepared] = {}
        self._warmed: str | None = None  # the generation whose files were fetched
        self._tasks: set[asyncio.Task[object]] = set()
        self._prepare()  # a bad base URL fails here, not at the first request
        app = Starlette(
            routes=[
                Route("/", self._page, methods=["GET"]),
                Route("/api/quote", self._quote, methods=["GET", "POST"]),
            ],
            exception_handlers={HTTPException: self._http_error},
            lifespan=self._lifespan,
        )
        self.middleware = UnblankMiddleware(
            app,
            time_budget=time_budget,
            max_in_flight=max_in_flight,
            reports=reports,
            mirror=self.client if self._own_mirror else None,
            mirror_path=MIRROR_PATH,
            pages=self.pages,
            content_security_policy=PAGE_CSP,
            rollout=rollout,
        )

    def __repr__(self) -> str:
        source = self.client if self.client is not None else self._source
        return f"<LoanApp manifest={source!r} base_url={self.base_url!r} chaos={self.chaos!r}>"

    @property
    def maintenance(self) -> bool:
        """While True, every page and API call is answered ``maintenance`` (503)."""
        return self.middleware.maintenance

    @maintenance.setter
    def maintenance(self, on: bool) -> None:
        self.middleware.maintenance = on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.middleware(scope, receive, send)

    async def warm(self) -> PrefetchReport | None:
        """Fetch every file of the current generation into the AssetClient's cache,
        so that ``/_unblank/mirror/`` has them when every origin is down.

        Runs in the background at start-up and whenever the shell meets a new
        generation (None without an own mirror, or when no origin answers).
        """
        if self.client is None or not self._own_mirror:
            return None
        try:
            report = await self.client.prefetch()
        except FetchError as exc:
            logger.warning("loan app: the mirror's cache stays cold: %s", exc)
            self._warmed = None  # the next shell tries again
            return None
        for name, failure in report.failed.items():
            logger.warning("loan app: %s is not in the mirror's cache: %s", name, failure)
        return report

    async def aclose(self) -> None:
        """Stop warming; close the AssetClient when the app owns it (``close_client``)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._close_client and self.client is not None:
            await self.client.aclose()

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._in_background(self.warm())
        yield
        await self.aclose()

    def _in_background(self, job: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            logger.error("loan app: a background job failed", exc_info=failure)

    # -- the shell -------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        chaos = self.chaos
        if chaos.overloaded > 0:
            # Starlette answers HEAD through this GET route too: only a GET is a page load
            # that the overload switch counts down.
            if request.method == "GET":
                chaos.overloaded -= 1
            return self._guided(request, "overloaded", retry_after=chaos.retry_after)
        try:
            manifest = await self._source.current()
        except FetchError:
            # No origin answered and no earlier manifest is kept: nothing to name files by.
            return self._guided(request, "upstream")
        if self._own_mirror and manifest.generation != self._warmed:
            self._warmed = manifest.generation
            self._in_background(self.warm())
        assignment = self._assignment(request)
        if assignment is None:
            prepared = self._prepare()
        else:
            # The canary's files (and a stable generation the client has not seen yet)
            # are on the asset servers, not in the client's cache behind the mirror.
            known = assignment.manifest.generation == manifest.generation
            prepared = self._prepare(assigned=True, own_mirror=known)
            manifest = assignment.manifest
        # From here to the response nothing awaits: the Shell reads this manifest.
        self._manifest = manifest
        nonce = request.scope["state"][NONCE_KEY]
        return prepared.shell.template_response(
            prepared.templates,
            request,
            "shell.html",
            {"chaos": chaos.front_end()},
            headers={"Content-Security-Policy": prepared.policy.replace("{nonce}", nonce)},
        )

    def _assignment(self, request: Request) -> Assignment | None:
        """The rollout's choice for this browser while a canary runs, else None."""
        rollout = self.rollout
        if rollout is None:
            return None
        try:
            if rollout.pointers().canary is None:
                return None
            return rollout.assign(request)
        except RolloutError as exc:  # DIST unreadable: the manifest as without a rollout
            logger.warning("loan app: no rollout assignment: %s", exc)
            return None

    def _prepare(self, *, assigned: bool = False, own_mirror: bool = True) -> _Prepared:
        named = self._own_mirror and own_mirror
        mirrors = (*self.mirrors, MIRROR_PATH) if named else tuple(self.mirrors)
        key = (self.base_url, mirrors, self.watchdog)
        prepared = self._prepared.get((assigned, named))
        if prepared is None or prepared.key != key:
            shell = Shell(
                manifest=self._current_manifest,
                base_url=self.base_url,
                mirrors=mirrors,
                watchdog=self.watchdog,
                pages=self.pages,
                rollout=self.rollout if assigned else None,
            )
            templates = Jinja2Templates(directory=TEMPLATES)
            shell.install(templates.env)
            policy = shell_policy((self.base_url, *mirrors))
            prepared = _Prepared(key, shell, templates, policy)
            self._prepared[assigned, named] = prepared
        return prepared

    def _current_manifest(self) -> Manifest:
        if self._manifest is None:  # pragma: no cover - only _page renders, after setting it
            raise RuntimeError("LoanApp: the shell was rendered before a manifest was read")
        return self._manifest

    # -- the JSON API ------------------------------------------------------------

    async def _quote(self, request: Request) -> Response:
        if self.chaos.api == "error":
            raise RuntimeError("chaos: the quote service failed")
        if self.chaos.api == "slow":
            await asyncio.sleep(SLOW_API)
        return await answer_quote(request)

    # -- guided answers ----------------------------------------------------------

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException
            raise exc
        reason = "not-found" if exc.status_code == 404 else "bad-request"
        return self._guided(request, reason, status=exc.status_code, headers=exc.headers)

    def _guided(
        self,
        request: Request,
        reason: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The guided page (HTML, problem+json or text, as asked) with the request's
        reference and nonce; the middleware adds the CSP."""
        state = request.scope.get("state", {})
        page = self.pages.negotiate(
            reason,
            accept=request.headers.get("accept"),
            accept_language=request.headers.get("accept-language"),
            request_id=state.get(REQUEST_ID_KEY),
            retry_after=retry_after,
            nonce=state.get(NONCE_KEY),
            method=request.method,
        )
        out = {**page.headers, **(headers or {})}
        return Response(page.body, status or page.status, out, page.content_type)


def shell_policy(bases: Sequence[str]) -> str:
    """The shell's CSP for assets at ``bases``; ``{nonce}`` stands for the request's.

    Scripts run only with the nonce ('strict-dynamic' lets them load their
    imports, and the watchdog its retries); styles, images (the logo, by the
    stylesheet) and fetches (the watchdog probes asset URLs) may also come
    from the asset origins; workers only from this origin (a nonce cannot
    name a service worker, and script-src is where worker-src falls back to).
    """
    sources = " ".join(["'self'", *sorted({_origin(base) for base in bases} - {"'self'"})])
    return (
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; "
        f"style-src {sources} 'nonce-{{nonce}}'; img-src {sources} data:; "
        f"connect-src {sources}; worker-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def _origin(base: str) -> str:
    """``'self'`` for a path on this backend, ``scheme://host:port`` for a URL."""
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"


def from_environment(environ: Mapping[str, str] | None = None) -> LoanApp:
    """The app configured by environment variables, for ``uvicorn --factory``:

    - ``LOAN_APP_DIST``: a DIST folder of ``unblank build`` (the manifest is read
      from it), or ``LOAN_APP_ORIGIN``: the URL of an ``unblank serve`` (the
      manifest and files are fetched by an AssetClient into ``LOAN_APP_CACHE``,
      default ``examples/loan_app/.cache``, and served again at
      ``/_unblank/mirror/``);
    - ``LOAN_APP_ASSETS``: the base URL browsers load files from (default:
      ``LOAN_APP_ORIGIN`` + ``/static/``);
    - ``LOAN_APP_MIRRORS``: more base URLs for the watchdog, space-separated.
    """
    env = os.environ if environ is None else environ
    dist, origin = env.get("LOAN_APP_DIST"), env.get("LOAN_APP_ORIGIN")
    mirrors = env.get("LOAN_APP_MIRRORS", "").split()
    base_url = env.get("LOAN_APP_ASSETS")
    if dist and not origin:
        if not base_url:
            raise ValueError("set LOAN_APP_ASSETS: the base URL browsers load the files from")
        return LoanApp(manifest=dist, base_url=base_url, mirrors=mirrors)
    if origin and not dist:
        cache = AssetCache(env.get("LOAN_APP_CACHE") or HERE / ".cache")
        client = AssetClient(origins=[origin], cache=cache)
        base_url = base_url or f"{origin.rstrip('/')}/static/"
        return LoanApp(manifest=client, base_url=base_url, mirrors=mirrors, close_client=True)
    raise ValueError("set LOAN_APP_DIST (a DIST folder) or LOAN_APP_ORIGIN (a URL), one of them")
