"""``POST /_unblank/report``: the watchdog's incident beacons, checked and counted.

Browsers send them with ``navigator.sendBeacon`` (a ``text/plain`` or JSON
body) to ``unblank serve`` and to apps behind
:class:`~unblank.middleware.UnblankMiddleware`.  Everything in them is
hostile: the body is bounded in bytes, every field is checked and bounded,
unknown fields and values are dropped, and each client address has a token
bucket so a loop in a page (or an attacker) cannot flood the logs.  Accepted
reports are logged as one structured record on ``unblank.report`` and
counted by cause (:attr:`ReportIntake.accepted`).

>>> intake = ReportIntake(clock=lambda: 0.0)
>>> intake.accept(b'{"cause": "integrity", "asset": "app.js", "attempts": 2}', "10.0.0.1")
Report(cause='integrity', fields={'asset': 'app.js', 'attempts': 2})
>>> intake.accept(b'{"cause": "chunk-load", "outcome": "recovered", "kind": "bogus"}', "10.0.0.1")
Report(cause='chunk-load', fields={'outcome': 'recovered'})
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from unblank._asgi import Receive

__all__ = ["CAUSES", "MAX_BODY", "Rejected", "Report", "ReportIntake", "read_body"]

MAX_BODY: Final = 8 * 1024  # a beacon with cause, asset, timings and a message fits in 2 KiB
# Every reason of a guided page the watchdog can end on, and what it saw on the
# way (a chunk that failed to load, a recovery that worked).
CAUSES: Final = frozenset(
    {
        "integrity",
        "not-found",
        "upstream",
        "timeout",
        "offline",
        "app-crash",
        "render-timeout",
        "overloaded",
        "server-error",
        "maintenance",
        "rate-limited",
        "chunk-load",
        "recovered",
    }
)
_TEXT_LIMITS: Final = {
    "asset": 512,
    "url": 2048,
    "generation": 100,
    "message": 1024,
    "origin": 512,
    "user_agent": 512,
    "reason": 64,  # the guided page's reason, or the watchdog's short word for what it saw
    "page": 2048,  # the URL of the page that failed
}
# Fields with a fixed vocabulary (the watchdog's): any other value is dropped.
_CHOICES: Final = {
    "outcome": frozenset({"recovered", "reloading", "page"}),
    "kind": frozenset(
        {"script", "stylesheet", "modulepreload", "chunk", "boot", "render", "network"}
    ),
}
_CLIENTS: Final = 10_000  # token buckets kept (least recently seen forgotten first)

logger = logging.getLogger("unblank.report")


class Rejected(Exception):
    """A report that is not accepted; ``status`` is the HTTP answer (400, 413, 429)."""

    def __init__(self, status: int, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Report:
    """A checked incident report: its cause and the bounded fields it carried."""

    cause: str
    fields: dict[str, Any] = field(default_factory=dict)


class ReportIntake:
    """Checks, rate-limits and records reports.

    ``rate`` reports per second are allowed per client address, in bursts of
    ``burst`` (a page that fails, retries and reloads sends a handful).
    """

    def __init__(
        self,
        *,
        rate: float = 0.2,
        burst: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate >= 0:
            raise ValueError(f"ReportIntake rate must be a number >= 0 per second, not {rate!r}")
        if type(burst) is not int or burst < 1:
            raise ValueError(f"ReportIntake burst must be an integer >= 1, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.accepted: dict[str, int] = {}
        self.rejected: dict[str, int] = {}

    def accept(self, body: bytes, client: str) -> Report:
        """The checked report, or :class:`Rejected` saying why not."""
        try:
            self._take_token(client)
            report = self._parse(body)
        except Rejected as exc:
            key = {400: "invalid", 413: "too_large", 429: "rate_limited"}.get(exc.status, "other")
            self.rejected[key] = self.rejected.get(key, 0) + 1
            raise
        self.accepted[report.cause] = self.accepted.get(report.cause, 0) + 1
        fields = report.fields
        logger.warning(
            "incident %s%s%s",
            report.cause,
            f" ({fields['asset']})" if "asset" in fields else "",
            f" -> {fields['outcome']}" if "outcome" in fields else "",
            extra={"report": {"cause": report.cause, "client": client, **report.fields}},
        )
        return report

    def _take_token(self, client: str) -> None:
        now = self._clock()
        tokens, then = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            wait = int((1.0 - tokens) / self.rate) + 1 if self.rate > 0 else 3600
            raise Rejected(429, "too many reports from this client", retry_after=wait)
        self._buckets[client] = (tokens - 1.0, now)
        while len(self._buckets) > _CLIENTS:
            self._buckets.popitem(last=False)

    @staticmethod
    def _parse(body: bytes) -> Report:
        if len(body) > MAX_BODY:
            raise Rejected(413, f"a report is at most {MAX_BODY} bytes")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Rejected(400, "a report is a JSON object in UTF-8") from exc
        if not isinstance(data, dict):
            raise Rejected(400, "a report is a JSON object")
        cause = data.get("cause")
        if cause not in CAUSES:
            raise Rejected(400, f"cause must be one of {', '.join(sorted(CAUSES))}")
        fields: dict[str, Any] = {}
        for name, limit in _TEXT_LIMITS.items():
            value = data.get(name)
            if isinstance(value, str):
                fields[name] = _clean(value[:limit])
        for name, allowed in _CHOICES.items():
            value = data.get(name)
            if isinstance(value, str) and value in allowed:
                fields[name] = value
        attempts = data.get("attempts")
        if isinstance(attempts, int) and not isinstance(attempts, bool) and 0 <= attempts <= 1000:
            fields["attempts"] = attempts
        timings = data.get("timings")
        if isinstance(timings, dict):
            fields["timings"] = {
                _clean(str(k)[:32]): float(v)
                for k, v in list(timings.items())[:20]
                if isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e9
            }
        return Report(str(cause), fields)


# Control characters (newlines forge log lines, ESC colours terminals) and lone
# surrogates (JSON allows "\ud800"; UTF-8 encoders refuse it, so every later
# json.dumps or log shipper would fail) never leave the intake.
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _clean(text: str) -> str:
    """``text`` with control characters and lone surrogates replaced by U+FFFD.

    >>> _clean("x\\n18:40 fake line\\x1b[31m\\ud800")
    'x\ufffd18:40 fake line\ufffd[31m\ufffd'
    """
    return _UNSAFE.sub("\ufffd", text)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, or :class:`Rejected` (413) as soon as it passes ``limit``."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejected(400, "the client left before sending the report")
        body += message.get("body", b"")
        if len(body) > limit:
            raise Rejected(413, f"a report is at most {limit} bytes")
        if not message.get("more_body", False):
            return bytes(body)
