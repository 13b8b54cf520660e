"""What the chaos panel's switches and buttons do to the running demo.

:class:`ChaosControl` holds the live state (which switch is on, the
published versions, the last incident reports) and applies every change to
the servers at once: stopping the asset origin, faults in front of the
origin and the mirror (:class:`~examples.chaos.faults.AssetFaults`), the
example app's own chaos switches and maintenance, and new releases::

    await control.flip("origin-down", True)  # the origin's port refuses connections
    await control.flip("slow-network", True, 2)  # every file 2 s late
    await control.deploy()  # version n+1, served by the origin and the mirror
    await control.reset()  # every switch off (the versions stay)
    control.snapshot()  # the panel's JSON

Guarded rollout (issue 8) plugs in here: ``canary`` publishes the panel's
"Deploy a broken version as canary", ``rollout`` (the backend's
:class:`~unblank.Rollout`) is what the panel shows of it, and what a deploy
or a reset ends a running canary with (a plain build refuses to run beside
one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from examples.chaos.faults import AssetFaults
from examples.chaos.releases import ENTRY, Release, Releases
from examples.chaos.servers import Listener
from examples.chaos.switches import SWITCHES, Switch
from examples.loan_app.server import Chaos, LoanApp
from unblank import AssetClient, FetchError, Manifest, Rollout, RolloutError, RolloutStoreError

__all__ = ["CanaryDeploy", "CanaryRunning", "ChaosControl", "Incidents", "NotAvailable", "Servers"]

logger = logging.getLogger("demo")

OVERLOAD_RETRY_AFTER: Final = 3  # seconds: the overloaded page's first countdown
SERVED_WITHIN: Final = 10.0  # seconds the asset servers get to pick up a new generation
INCIDENTS_KEPT: Final = 20
# The fields of an incident report the panel shows (the rest stays in the log).
INCIDENT_FIELDS: Final = ("cause", "outcome", "kind", "asset", "generation", "message")

CanaryDeploy = Callable[[Path], Awaitable[str]]
"""Publishes the front end in a folder as a canary generation and returns that generation."""

CANARY_LABEL: Final = "Deploy a broken version as canary"
CANARY_NOTE: Final = (
    "Publishes a version that throws at boot to a share of the browsers only, and "
    "watches guarded rollout roll it back by itself. Comes with guarded rollout "
    "(unblank build --canary)."
)


class UnknownSwitch(KeyError):
    """No switch has this name."""


class NotAvailable(Exception):
    """A panel action this demo does not have yet; the message says why."""


class CanaryRunning(Exception):
    """A canary is already being watched: one at a time."""


class Incidents(logging.Handler):
    """The last incident reports the backend accepted, newest first.

    Attached to the ``unblank.report`` logger, where the middleware logs every
    report it accepts (the report itself in the record's ``report``).
    """

    def __init__(self, size: int = INCIDENTS_KEPT) -> None:
        super().__init__()
        self.recent: deque[dict[str, Any]] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        report = getattr(record, "report", None)
        if not isinstance(report, dict):
            return
        at = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = {name: report[name] for name in INCIDENT_FIELDS if name in report}
        self.recent.appendleft({"at": at, **fields})


@dataclass(frozen=True, slots=True, kw_only=True)
class Servers:
    """The demo's servers and the faults in front of the asset servers."""

    app: str  # the backend's URL
    origin: Listener
    mirror: Listener
    origin_faults: AssetFaults
    mirror_faults: AssetFaults


class ChaosControl:
    """The demo's live state, and every change to it applied to the running servers."""

    def __init__(
        self,
        *,
        loan: LoanApp,
        client: AssetClient,
        servers: Servers,
        releases: Releases,
        incidents: Incidents,
    ) -> None:
        self.loan = loan
        self.client = client
        self.servers = servers
        self.releases = releases
        self.incidents = incidents
        self.on = dict.fromkeys(SWITCHES, False)
        self.values = {n: s.setting.default for n, s in SWITCHES.items() if s.setting}
        self.canary: CanaryDeploy | None = None  # the demo stack sets it (issue 8)
        self.rollout: Rollout | None = None  # the backend's, shown in the state
        self._lock = asyncio.Lock()
        self._appliers: Mapping[str, Callable[[bool], Awaitable[None]]] = {
            "origin-down": self._origin_down,
            "corrupted-asset": self._corrupted_asset,
            "deleted-chunk": self._deleted_chunk,
            "slow-network": self._slow_network,
            "overload": self._overload,
            "boot-exception": self._boot_exception,
            "maintenance": self._maintenance,
            "offline": self._offline,
        }
        if set(self._appliers) != set(SWITCHES):  # pragma: no cover - a switch without code
            raise RuntimeError("ChaosControl: every switch in SWITCHES needs an applier")

    def __repr__(self) -> str:
        on = [name for name in SWITCHES if self.is_on(name)]
        return f"<ChaosControl version={self.releases.current.version} on={on}>"

    def switch(self, name: str) -> Switch:
        try:
            return SWITCHES[name]
        except KeyError:
            raise UnknownSwitch(name) from None

    def is_on(self, name: str) -> bool:
        if name == "overload":  # it turns itself off once the pages it sheds are shed
            return self.loan.chaos.overloaded > 0
        return self.on[name]

    # -- changes -------------------------------------------------------------

    async def flip(self, name: str, on: bool, value: int | None = None) -> None:
        """Switch ``name`` on or off (``value``: its setting, checked against its range)."""
        switch = self.switch(name)
        if value is not None:
            setting = switch.setting
            if setting is None:
                raise ValueError(f"{switch.label} takes no value")
            if type(value) is not int or not setting.low <= value <= setting.high:
                raise ValueError(
                    f"{switch.label}: {setting.unit} must be a whole number from "
                    f"{setting.low} to {setting.high}, not {value!r}"
                )
        async with self._lock:
            if value is not None:
                self.values[name] = value
            await self._appliers[name](on)
            self.on[name] = on
        shown = f" ({self.values[name]} {switch.setting.unit})" if on and switch.setting else ""
        logger.info("chaos: %s %s%s", switch.label, "on" if on else "off", shown)

    async def deploy(self) -> Release:
        """Publish the next version; done when the asset servers and the backend serve it."""
        async with self._lock:
            release = await self._deploy()
        logger.info("deployed version %d (generation %s)", release.version, release.generation)
        return release

    async def reset(self) -> None:
        """Every switch off and every setting back to its default; the versions stay."""
        async with self._lock:
            for name, apply in self._appliers.items():
                await apply(False)
                self.on[name] = False
            self._end_canary("reset from the chaos panel")
            self.values = {n: s.setting.default for n, s in SWITCHES.items() if s.setting}
            self.loan.chaos = Chaos(retry_after=OVERLOAD_RETRY_AFTER)
        logger.info("chaos: every switch off")

    async def deploy_broken_canary(self) -> str:
        """The panel's "Deploy a broken version as canary" (guarded rollout, issue 8).

        Builds a copy of the current front end whose entry throws at boot
        (:meth:`Releases.broken_source`) and hands its folder to ``canary``,
        which publishes it as a canary generation and returns that
        generation. :class:`NotAvailable` until something sets ``canary``.
        """
        hook = self.canary
        if hook is None:
            raise NotAvailable(CANARY_NOTE)
        async with self._lock:
            running = self._running_canary()
            if running is not None:
                raise CanaryRunning(
                    f"canary {running} is still being watched: wait for its promotion or "
                    "rollback, or end it with Reset all"
                )
            source = await asyncio.to_thread(self.releases.broken_source)
            generation = await hook(source)
        logger.info("deployed a broken version as canary (generation %s)", generation)
        return generation

    async def until_files_served(self, manifest: Manifest) -> None:
        """Wait (at most ``SERVED_WITHIN`` s) until the running asset servers serve the
        entry of ``manifest``: a canary's files are served like a retained generation's."""
        entry = manifest.asset(ENTRY).path
        running = [s for s in (self.servers.origin, self.servers.mirror) if s.running]
        deadline = time.monotonic() + SERVED_WITHIN
        async with httpx.AsyncClient(timeout=2.0) as http:
            for server in running:
                while not await _serves(http, f"{server.url}/static/{entry}"):
                    if time.monotonic() > deadline:
                        logger.warning("the %s does not serve %s yet", server.name, entry)
                        break
                    await asyncio.sleep(0.05)

    def _running_canary(self) -> str | None:
        if self.rollout is None:
            return None
        try:
            canary = self.rollout.pointers(fresh=True).canary
        except RolloutError:
            return None
        return canary.generation if canary is not None else None

    def _end_canary(self, reason: str) -> None:
        """Roll a running canary back by hand (a plain build cannot run beside one)."""
        if self.rollout is None or self._running_canary() is None:
            return
        try:
            record = self.rollout.abort(reason=reason, actor="the chaos panel")
        except RolloutError as exc:  # the policy ended it a moment ago
            logger.info("no canary to end: %s", exc)
            return
        logger.info("canary %s rolled back: %s", record.canary, reason)

    # -- what each switch does -------------------------------------------------

    async def _origin_down(self, on: bool) -> None:
        origin = self.servers.origin
        await (origin.stop() if on else origin.start())

    async def _corrupted_asset(self, on: bool) -> None:
        self.servers.origin_faults.corrupt = on

    async def _deleted_chunk(self, on: bool) -> None:
        if on:
            await self._deploy()
        self._delete_old_chunks(on)

    async def _slow_network(self, on: bool) -> None:
        delay = float(self.values["slow-network"]) if on else 0.0
        self.servers.origin_faults.delay = self.servers.mirror_faults.delay = delay

    async def _overload(self, on: bool) -> None:
        self.loan.chaos.retry_after = OVERLOAD_RETRY_AFTER
        self.loan.chaos.overloaded = self.values["overload"] if on else 0

    async def _boot_exception(self, on: bool) -> None:
        self.loan.chaos.boot_exception = on

    async def _maintenance(self, on: bool) -> None:
        self.loan.maintenance = on

    async def _offline(self, on: bool) -> None:
        """Nothing on the servers: the panel's service worker asks for this switch."""

    def _delete_old_chunks(self, on: bool) -> None:
        gone = self.releases.earlier_paths("report.js") if on else frozenset()
        self.servers.origin_faults.gone = self.servers.mirror_faults.gone = gone

    async def _deploy(self) -> Release:
        self._end_canary("a new version was deployed from the chaos panel")
        release = await self.releases.publish()
        await self._until_served(release.generation)
        if self.on["deleted-chunk"]:
            self._delete_old_chunks(True)
        return release

    async def _until_served(self, generation: str) -> None:
        """Wait for the running asset servers to serve ``generation`` (they look at
        DIST every 0.2 s), then have the backend's AssetClient revalidate its
        manifest, so the next shell names the new files."""
        running = [s for s in (self.servers.origin, self.servers.mirror) if s.running]
        deadline = time.monotonic() + SERVED_WITHIN
        async with httpx.AsyncClient(timeout=2.0) as http:
            for server in running:
                while await _generation(http, server.url) != generation:
                    if time.monotonic() > deadline:
                        logger.warning("the %s does not serve %s yet", server.name, generation)
                        break
                    await asyncio.sleep(0.05)
        try:
            await self.client.manifest()
        except FetchError as exc:
            logger.warning("the backend could not revalidate its manifest: %s", exc)

    # -- the panel's view -------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the panel shows, as JSON."""
        current = self.releases.current
        servers = self.servers
        return {
            "app": servers.app,
            "version": current.version,
            "generation": current.generation,
            "releases": [
                {"version": r.version, "generation": r.generation}
                for r in reversed(self.releases.published)
            ],
            "servers": {
                s.name: {"url": s.url, "running": s.running}
                for s in (servers.origin, servers.mirror)
            },
            "switches": {name: self._switch_state(switch) for name, switch in SWITCHES.items()},
            "incidents": list(self.incidents.recent),
            "canary": {
                "available": self.canary is not None,
                "label": CANARY_LABEL,
                "note": CANARY_NOTE,
                "rollout": self._rollout_state(),
            },
        }

    def _rollout_state(self) -> dict[str, Any] | None:
        """The canary now (or the last one), its counts and the last decision."""
        if self.rollout is None:
            return None
        try:
            status = self.rollout.status(decisions=1)
        except (RolloutError, RolloutStoreError) as exc:
            return {"state": "unknown", "error": str(exc)}
        canary, verdict = status.canary, status.verdict
        last = status.decisions[-1] if status.decisions else None
        return {
            "state": status.state,
            "stable": status.stable,
            "canary": None
            if canary is None
            else {
                "generation": canary.generation,
                "percent": canary.percent,
                "elapsed": round(status.elapsed, 1),
            },
            "generations": [
                {
                    "generation": g.generation,
                    "role": g.role,
                    "page_views": g.page_views,
                    "incidents": g.counts.incidents,
                }
                for g in status.generations
            ],
            "verdict": None
            if verdict is None
            else {"action": verdict.action, "reason": verdict.reason},
            "decision": None
            if last is None
            else {
                k: last.to_dict()[k]
                for k in ("at", "action", "canary", "stable", "reason", "actor")
            },
        }

    def _switch_state(self, switch: Switch) -> dict[str, Any]:
        state: dict[str, Any] = {
            "label": switch.label,
            "does": switch.does,
            "see": switch.see,
            "on": self.is_on(switch.name),
        }
        setting = switch.setting
        if setting is not None:
            state["setting"] = {
                "value": self.values[switch.name],
                "unit": setting.unit,
                "low": setting.low,
                "high": setting.high,
            }
        if switch.name == "overload":
            state["left"] = self.loan.chaos.overloaded  # page loads still to shed
        return state


async def _serves(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _generation(http: httpx.AsyncClient, base: str) -> str | None:
    try:
        answer = await http.get(f"{base}/_unblank/manifest.json")
        if answer.status_code == 200:
            generation = answer.json().get("generation")
            return generation if isinstance(generation, str) else None
    except (httpx.HTTPError, ValueError):
        pass
    return None
