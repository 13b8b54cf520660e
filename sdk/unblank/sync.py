"""SyncAssetClient: the asset client for WSGI apps and scripts, blocking."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from unblank._origins import ClientStats
from unblank.client import AssetClient, Fetched, ManifestResult, PrefetchReport

__all__ = ["SyncAssetClient"]

T = TypeVar("T")


class SyncAssetClient:
    """:class:`AssetClient` for WSGI and scripts: the same calls, blocking.

    The async client runs on a private event loop in one background thread;
    any thread may call in.  Close it (or use ``with``) to stop that thread.

    >>> from unblank.testing import FakeOrigin, Site
    >>> origin = FakeOrigin(site=Site.from_files({"app.css": b"body{}"}))
    >>> with SyncAssetClient(origins=[origin.base], transport=origin.transport) as client:
    ...     client.get("app.css").data
    b'body{}'
    """

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="unblank-client")
        self._thread.daemon = True
        self._thread.start()
        self._closed = False

        async def make() -> AssetClient:
            return AssetClient(**options)

        try:
            self._client = self._call(make())
        except BaseException:
            self._stop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncAssetClient called from its own loop: use AssetClient there")
        if self._closed:
            coro.close()
            raise RuntimeError("SyncAssetClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def client(self) -> AssetClient:
        """The async client underneath (its ``stats``, ``breakers``)."""
        return self._client

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    def manifest(self) -> ManifestResult:
        return self._call(self._client.manifest())

    def get(self, name: str) -> Fetched:
        return self._call(self._client.get(name))

    def get_path(self, path: str) -> Fetched:
        return self._call(self._client.get_path(path))

    def prefetch(self) -> PrefetchReport:
        return self._call(self._client.prefetch())

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call(self._client.aclose())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
