"""unblank_pages: the guided pages a user sees instead of a blank screen.

This package renders pages and imports neither ``unblank`` nor
``unblank_server``.  Its catalog names every reason for a guided page with
the HTTP status it is served with (DESIGN.md, "Reasons for a guided page").

>>> REASONS["overloaded"].status
503
"""

from __future__ import annotations

from unblank_pages.catalog import REASONS, Reason
from unblank_pages.render import (
    Brand,
    Page,
    PageRenderer,
    UnknownReasonError,
    negotiate,
    render,
    request_id_from,
    retry_after_seconds,
)

__all__ = [
    "REASONS",
    "Brand",
    "Page",
    "PageRenderer",
    "Reason",
    "UnknownReasonError",
    "negotiate",
    "render",
    "request_id_from",
    "retry_after_seconds",
]
