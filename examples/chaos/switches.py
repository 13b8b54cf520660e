"""The chaos panel's switches: what each one does, and what to watch in the app tab.

One :class:`Switch` per fault of the browser fault matrix, in the order the
panel shows them. The words are the panel's and the terminal's; what a switch
changes in the running servers is :class:`examples.chaos.control.ChaosControl`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["SWITCHES", "Setting", "Switch"]


@dataclass(frozen=True, slots=True)
class Setting:
    """A number a switch takes (``unit`` as the panel shows it), from ``low`` to ``high``."""

    unit: str
    default: int
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Switch:
    """``does``: what it changes; ``see``: what the person at the app tab sees;
    ``short``: the one line the terminal prints for it."""

    name: str
    label: str
    does: str
    see: str
    short: str
    setting: Setting | None = None


def _catalog(*switches: Switch) -> MappingProxyType[str, Switch]:
    return MappingProxyType({s.name: s for s in switches})


SWITCHES: Final = _catalog(
    Switch(
        "origin-down",
        "Origin down",
        "The asset origin (unblank serve) stops: its port refuses every connection.",
        "Reload the app: it renders anyway, every file taken from the mirror "
        "(incident upstream, recovered).",
        "the asset origin refuses connections; the app loads its files from the mirror",
    ),
    Switch(
        "corrupted-asset",
        "Corrupted asset",
        "The origin flips one byte of the app's entry module (main.js), keeping its length.",
        "Reload: the browser's integrity check rejects it, the watchdog takes the good "
        "copy from the mirror and the app renders (incident integrity, recovered).",
        "the origin serves main.js with one byte changed; SRI rejects it, the mirror's copy runs",
    ),
    Switch(
        "deleted-chunk",
        "Deleted chunk after a deploy",
        "Publishes a new version and deletes the report chunk of every earlier version "
        "from the origin and the mirror.",
        'In a tab opened before, click "Open the repayment report": the page reloads '
        "once, into the new version, and shows the report.",
        "a deploy removes the old report chunk; an open page reloads into the new version",
    ),
    Switch(
        "slow-network",
        "Slow network",
        "Every file from the origin and the mirror arrives this many seconds late.",
        "Reload: the app takes longer but renders, and no error page appears: the "
        "watchdog tells a slow network from a dead one.",
        "every file arrives late; the app is slow but renders, no error page",
        # At most 6 s: the watchdog's asset_timeout (unblank.Shell, 8 s by default) judges
        # a file whose headers take longer a hung origin and takes the mirror's copy, which
        # would be reported as an upstream incident rather than a slow network.
        Setting("seconds", 3, 1, 6),
    ),
    Switch(
        "overload",
        "Overload",
        "The backend answers the next page loads 503 overloaded, with Retry-After: 3.",
        "Reload: the overloaded page counts down and comes back to the app by itself.",
        "the next page loads get 503 + Retry-After; the guided page retries by itself",
        Setting("page loads", 2, 1, 10),
    ),
    Switch(
        "boot-exception",
        "Exception at boot",
        "The app's entry module throws before it draws anything.",
        "Reload: the page reloads once, then shows the app-crash page; switch this off "
        "and the page comes back at its next retry.",
        "the front end throws while starting; one reload, then the app-crash page",
    ),
    Switch(
        "maintenance",
        "Maintenance",
        "The backend's middleware answers every page and API call 503 maintenance.",
        "Reload: a new page load shows the maintenance page, which looks again every 10 s; "
        'in a tab already open, "Get a quote" shows an inline message instead.',
        "every page and API call gets 503 maintenance: a new page load shows the maintenance "
        "page (retried every 10 s), an open tab's API calls an inline message",
    ),
    Switch(
        "offline",
        "Offline",
        "A service worker of the demo, which this panel installs in its own browser, fails "
        "every request but the page itself: open the app tab in the same browser as the "
        "panel. (DevTools, Network, Offline is the real thing.)",
        "Reload, or open the report: the offline page; switch this off and it comes "
        "back at its next retry.",
        "a demo service worker fails every request in the panel's browser; the offline page",
    ),
)
