"""Faults of an asset server, switched on and off while it runs.

:class:`AssetFaults` is an ASGI layer in front of ``unblank serve``'s app
(:func:`unblank_server.app.create_app`): it changes only what the chaos panel
asks for and passes everything else through untouched::

    faults = AssetFaults(create_app(dist))
    faults.corrupt = True  # the entry module arrives with one byte changed
    faults.delay = 3.0  # every file arrives three seconds late
    faults.gone = frozenset({"report.0123456789ab.js"})  # answered 404, as if deleted

Only files under ``/static/`` are touched: the manifest and the server's own
``/_unblank/`` answers stay as they are, so the app backend still learns
about new generations while files misbehave.
"""

from __future__ import annotations

import asyncio
import re
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ENTRY", "AssetFaults"]

PREFIX: Final = "/static/"
# The loan app's entry module, by its logical name or a fingerprinted one.
ENTRY: Final = re.compile(r"main(?:\.[0-9a-f]{12})?\.js")
# A fingerprinted name no build ever publishes: asking the server for it gives
# its real 404 (a guided page with CORS headers), as a deleted file would.
NOWHERE: Final = "gone.000000000000.js"


class AssetFaults:
    """An ASGI app serving ``app``'s files with the faults switched on.

    - ``corrupt``: the entry module (``main.<hash>.js``) comes with one byte
      flipped and its length kept, as a bad disk or proxy would serve it; it
      is sent uncompressed, so the flipped byte is the browser's to find;
    - ``delay``: seconds every file waits before it is answered;
    - ``gone``: published paths (relative to ``/static/``) answered 404.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.corrupt = False
        self.delay = 0.0
        self.gone: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"<AssetFaults corrupt={self.corrupt} delay={self.delay} gone={len(self.gone)}>"

    def clear(self) -> None:
        self.corrupt = False
        self.delay = 0.0
        self.gone = frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        name = path[len(PREFIX) :]
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        if name in self.gone:
            scope = {**scope, "path": PREFIX + NOWHERE, "raw_path": (PREFIX + NOWHERE).encode()}
        elif self.corrupt and ENTRY.fullmatch(name):
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
            scope = {**scope, "headers": headers}
            send = _flipping(send)
        await self.app(scope, receive, send)


def _flipping(send: Send) -> Send:
    """``send`` with one byte of the (first non-empty) body changed.

    The bad copy is sent ``no-store``: a browser's HTTP cache would otherwise
    keep it for a year (the file is immutable) and the demo would go on
    showing the fault after the switch is off.
    """
    flipped = False

    async def flip(message: Message) -> None:
        nonlocal flipped
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message["headers"] if k.lower() != b"cache-control"]
            message = {**message, "headers": [*headers, (b"cache-control", b"no-store")]}
        elif message["type"] == "http.response.body" and message.get("body") and not flipped:
            body = bytearray(message["body"])
            body[len(body) // 2] ^= 0x20  # a space for a letter's case: still text, wrong digest
            message = {**message, "body": bytes(body)}
            flipped = True
        await send(message)

    return flip
