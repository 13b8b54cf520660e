"""Every reason for a guided page: its HTTP status and how the page retries."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

__all__ = ["REASONS", "Reason", "Retry"]

Retry = Literal["countdown", "online", "none"]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a page could not appear, as the guided page and its status tell it.

    ``retry`` says what the page does by itself: ``countdown`` retries after a
    visible, pausable countdown with backoff; ``online`` retries when the
    browser is back online; ``none`` offers navigation instead.
    ``wait`` is the first countdown, in seconds, when no Retry-After is given.
    """

    name: str
    status: int
    retry: Retry
    wait: int = 0


def _catalog(*reasons: Reason) -> MappingProxyType[str, Reason]:
    return MappingProxyType({r.name: r for r in reasons})


# Statuses as DESIGN.md assigns them.  Reasons the browser detects (offline,
# integrity, app-crash, render-timeout) never travel in a response status of
# their own: asked for by name (/_unblank/pages/<reason>) they come with 200.
REASONS: Final = _catalog(
    Reason("offline", 200, "online", wait=10),
    Reason("overloaded", 503, "countdown", wait=15),
    Reason("upstream", 502, "countdown", wait=10),
    Reason("timeout", 504, "countdown", wait=10),
    Reason("not-found", 404, "none"),
    # A request the server cannot answer as sent (400), with a method it does not
    # allow (405), a range outside the file (416), a coding it cannot send (406):
    # repeating it unchanged cannot help, so the page never retries by itself.
    Reason("bad-request", 400, "none"),
    Reason("integrity", 200, "countdown", wait=5),
    Reason("app-crash", 200, "countdown", wait=10),
    Reason("render-timeout", 200, "countdown", wait=10),
    Reason("maintenance", 503, "countdown", wait=60),
    Reason("rate-limited", 429, "countdown", wait=30),
    Reason("server-error", 500, "countdown", wait=15),
)
