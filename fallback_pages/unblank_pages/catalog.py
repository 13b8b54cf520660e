"""Every reason for a guided page, its HTTP status, and whether retrying helps."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["REASONS", "Reason"]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a page could not appear, as the guided page and its status tell it."""

    name: str
    status: int
    retry_helps: bool


def _catalog(*reasons: Reason) -> MappingProxyType[str, Reason]:
    return MappingProxyType({r.name: r for r in reasons})


# Statuses as DESIGN.md assigns them; reasons the browser detects (offline,
# integrity, app-crash, render-timeout) never travel in a response status of
# their own, so their pages are served with 200 when asked for by name.
REASONS: Final = _catalog(
    Reason("offline", 200, retry_helps=True),
    Reason("overloaded", 503, retry_helps=True),
    Reason("upstream", 502, retry_helps=True),
    Reason("timeout", 504, retry_helps=True),
    Reason("not-found", 404, retry_helps=False),
    Reason("integrity", 200, retry_helps=True),
    Reason("app-crash", 200, retry_helps=True),
    Reason("render-timeout", 200, retry_helps=True),
    Reason("maintenance", 503, retry_helps=True),
    Reason("rate-limited", 429, retry_helps=True),
    Reason("server-error", 500, retry_helps=True),
)
