"""The whole demo in one process, on one event loop.

- the **asset origin**: ``unblank serve``'s app (:func:`~unblank_server.app.create_app`)
  of the demo's DIST, behind :class:`~examples.chaos.faults.AssetFaults`;
- a **mirror**: a second one of the same DIST, with faults of its own;
- the **app backend**: the example's :class:`~examples.loan_app.server.LoanApp`
  reading the manifest with an :class:`~unblank.AssetClient` (origin, then
  mirror), serving its verified cache at ``/_unblank/mirror/`` as the
  watchdog's last mirror, with the chaos panel beside it at ``/_demo/``;
  its :class:`~unblank.Rollout` on the demo's DIST watches canaries with a
  policy short enough to watch (:data:`CANARY_POLICY`), and the panel's
  "Deploy a broken version as canary" publishes one at :data:`CANARY_PERCENT`.

All on 127.0.0.1: the backend on ``port`` (8000 unless told; 0 for a free
one), the asset servers on free ports::

    async with Demo(root=Path(".cache/demo"), port=8000) as demo:
        print(demo.urls["app"])  # http://127.0.0.1:8000
        await demo.control.flip("origin-down", True)
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from examples.chaos.control import OVERLOAD_RETRY_AFTER, ChaosControl, Incidents, Servers
from examples.chaos.faults import AssetFaults
from examples.chaos.panel import PREFIX, DemoBackend, panel_app
from examples.chaos.releases import DemoError, Releases
from examples.chaos.servers import Listener
from examples.loan_app.server import LoanApp
from unblank import AssetCache, AssetClient, Rollout, RolloutPolicy
from unblank.reports import ReportIntake
from unblank_server.app import StaticApp, create_app
from unblank_server.builder import BuildOptions, build

__all__ = ["DEFAULT_PORT", "Demo"]

DEFAULT_PORT: Final = 8000
MARKER: Final = ".unblank-demo"  # says a folder is the demo's to empty
RELOAD: Final = 0.2  # seconds between the asset servers' looks at DIST: deploys show at once
MANIFEST_MAX_AGE: Final = 1.0  # seconds the backend trusts its manifest before revalidating
MAINTENANCE_RETRY: Final = 10  # seconds the maintenance page waits: short, for a demo
# One browser flipping faults sends many reports; the default (20, then one per
# 5 s) is for the open internet.
REPORT_RATE: Final = 5.0  # per second and browser
REPORT_BURST: Final = 200
# Guarded rollout, for watching: half the browsers get the canary, a few page
# views decide (a canary that crashes at boot goes after about seven of its
# page views: four tabs, each crashing, reloading and crashing again), and the
# policy looks at the counts twice a second.
CANARY_PERCENT: Final = 50.0
CANARY_POLICY: Final = RolloutPolicy(min_page_views=20, min_duration=0, allowed_ratio=3.0)
CANARY_CHECK: Final = 0.5  # seconds


class Demo:
    """The demo's servers, started by ``async with`` (or :meth:`start`) and stopped after.

    ``root``: the demo's folder (its own copy of the front end, the DIST, the
    backend's cache); emptied at every start, so it must be empty or the
    demo's. :class:`~examples.chaos.servers.PortTaken` when ``port`` is in use.
    """

    def __init__(self, *, root: Path, port: int = DEFAULT_PORT) -> None:
        self.root = root
        self.releases = Releases(root)
        self.backend = Listener(_not_started, name="app backend", port=port)
        self._static: list[StaticApp] = []
        self._listeners: list[Listener] = []
        self._incidents = Incidents()
        self._control: ChaosControl | None = None
        self._rollout: Rollout | None = None

    def __repr__(self) -> str:
        return f"<Demo {self.backend.url} root={str(self.root)!r}>"

    @property
    def control(self) -> ChaosControl:
        if self._control is None:
            raise RuntimeError("the demo is not started")
        return self._control

    @property
    def urls(self) -> dict[str, str]:
        """``app``, ``panel``, ``origin`` and ``mirror``: where each part answers."""
        servers = self.control.servers
        return {
            "app": servers.app,
            "panel": f"{servers.app}{PREFIX}/",
            "origin": f"{servers.origin.url}/static/",
            "mirror": f"{servers.mirror.url}/static/",
        }

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self.backend.reserve()  # a taken port fails before anything is built
        cache = self._prepare_root()
        self.releases.start()
        origin, origin_faults = self._asset_server("asset origin")
        mirror, mirror_faults = self._asset_server("mirror")
        for listener in (origin, mirror):
            await listener.start()
        client = AssetClient(
            origins=[origin.url],
            mirrors=[mirror.url],
            cache=AssetCache(cache),
            manifest_max_age=MANIFEST_MAX_AGE,
            deadline=5.0,
        )
        rollout = self._rollout = Rollout(
            self.releases.dist, policy=CANARY_POLICY, check_interval=CANARY_CHECK
        )
        loan = LoanApp(
            manifest=client,
            base_url=f"{origin.url}/static/",
            mirrors=[f"{mirror.url}/static/"],
            close_client=True,
            reports=ReportIntake(rate=REPORT_RATE, burst=REPORT_BURST),
            rollout=rollout,
        )
        loan.middleware.maintenance_retry_after = MAINTENANCE_RETRY
        loan.chaos.retry_after = OVERLOAD_RETRY_AFTER
        logging.getLogger("unblank.report").addHandler(self._incidents)
        self._control = ChaosControl(
            loan=loan,
            client=client,
            servers=Servers(
                app=self.backend.url,
                origin=origin,
                mirror=mirror,
                origin_faults=origin_faults,
                mirror_faults=mirror_faults,
            ),
            releases=self.releases,
            incidents=self._incidents,
        )
        self._control.rollout = rollout
        self._control.canary = self._deploy_canary
        self.backend.app = DemoBackend(loan, panel_app(self._control))
        self._listeners.append(self.backend)
        await self.backend.start()

    async def stop(self) -> None:
        """Stop every server (the backend first: it closes its AssetClient)."""
        for listener in (self.backend, *self._listeners):
            await listener.stop()
        self._listeners.clear()
        for app in self._static:
            app.close()
        self._static.clear()
        if self._rollout is not None:
            self._rollout.close()
            self._rollout = None
        logging.getLogger("unblank.report").removeHandler(self._incidents)

    async def _deploy_canary(self, source: Path) -> str:
        """Publish ``source`` as a canary for :data:`CANARY_PERCENT` of the browsers
        (built off the event loop); returns its generation once the asset servers
        serve its files and the backend's rollout sees it."""
        dist = self.releases.dist
        options = BuildOptions(canary=CANARY_PERCENT)
        result = await asyncio.to_thread(build, source, dist, options)
        await self.control.until_files_served(self.releases.manifest(result.generation))
        if self._rollout is not None:
            self._rollout.pointers(fresh=True)
        return result.generation

    def _asset_server(self, name: str) -> tuple[Listener, AssetFaults]:
        static = create_app(self.releases.dist, reload_interval=RELOAD)
        self._static.append(static)
        faults = AssetFaults(static)
        listener = Listener(faults, name=name)
        self._listeners.append(listener)
        return listener, faults

    def _prepare_root(self) -> Path:
        """Make ``root`` the demo's (or refuse a folder that is someone else's);
        returns the backend's cache folder, emptied."""
        root = self.root
        if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
            raise DemoError(
                f"{root} holds files that are not the demo's, and the demo empties its "
                "folder at every start: choose an empty or new folder with --dir"
            )
        root.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("The unblank demo's folder: emptied at every start.\n")
        cache = root / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        return cache


async def _not_started(scope: object, receive: object, send: object) -> None:
    raise RuntimeError("the demo's backend app is set in Demo.start()")
