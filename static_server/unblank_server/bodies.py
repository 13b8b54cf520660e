"""Where the bytes of a file come from: pinned, the memory tier, or the disk.

Small bodies are read and verified once into the memory tier, however many
requests ask for them at the same moment; larger ones are streamed from disk
in pieces, each read in a worker thread so the event loop never waits on I/O.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import anyio
import anyio.to_thread

from unblank_server.replies import Headers, Send
from unblank_server.resources import MemoryTier, Variant, open_checked, read_verified

__all__ = ["CHUNK", "Bodies"]

logger = logging.getLogger("unblank.serve")

CHUNK: Final = 512 * 1024  # streamed files go out in pieces of this size


class Bodies:
    """The bodies of one app's variants; ``file_limit`` -1 keeps none in memory."""

    def __init__(self, *, tier: MemoryTier, file_limit: int) -> None:
        self.tier = tier
        self.file_limit = file_limit
        self._loading: dict[str, anyio.Event] = {}  # bodies being read, by file

    async def whole(self, variant: Variant) -> bytes | None:
        """The whole body when it is (or can be) held in memory, else None."""
        if variant.pinned is not None:
            return variant.pinned
        if variant.size > self.file_limit:
            return None
        body = self.tier.get(variant)
        if body is None:
            body = await self._load(variant)
        return body

    async def _load(self, variant: Variant) -> bytes:
        """Read, verify and keep a body once, however many requests wait for it."""
        key = variant.file or ""
        pending = self._loading.get(key)
        if pending is not None:
            await pending.wait()
            body = self.tier.get(variant)
            if body is not None:
                return body
        done = anyio.Event()
        self._loading[key] = done
        try:
            loaded: bytes = await anyio.to_thread.run_sync(read_verified, variant)
            self.tier.put(variant, loaded)
        finally:
            if self._loading.get(key) is done:
                del self._loading[key]
            done.set()
        return loaded

    async def stream(
        self,
        send: Send,
        variant: Variant,
        status: int,
        headers: Headers,
        pieces: list[tuple[int, int] | bytes],
    ) -> int:
        """Send literal bytes and (offset, length) pieces of the variant's file."""
        stream, _ = await anyio.to_thread.run_sync(open_checked, variant)
        sent = 0
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            for piece in pieces:
                if isinstance(piece, bytes):
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    sent += len(piece)
                    continue
                offset, remaining = piece
                while remaining > 0:
                    chunk = await anyio.to_thread.run_sync(
                        _read_at, stream, offset, min(CHUNK, remaining)
                    )
                    if not chunk:
                        # Too late for an error page (the status is sent) and a
                        # second http.response.start would break the protocol:
                        # leave the response incomplete, so the server closes
                        # the connection and the client sees the short body.
                        logger.error("%s ended early: response cut short", variant.file)
                        return sent
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    offset += len(chunk)
                    remaining -= len(chunk)
                    sent += len(chunk)
            await send({"type": "http.response.body", "body": b""})
        finally:
            stream.close()  # type: ignore[attr-defined]
        return sent


def _read_at(stream: Any, offset: int, size: int) -> bytes:
    stream.seek(offset)
    return bytes(stream.read(size))
