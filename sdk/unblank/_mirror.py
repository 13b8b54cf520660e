"""The SDK's verified cache as one more origin for the watchdog (``/_unblank/mirror/``).

A path is looked up in the client's current manifest and nowhere else: the
mirror answers exactly the published paths it knows, with bytes that passed
the manifest's integrity, so no spelling of a path (``..``, ``%2e``, a
backslash, a NUL) can make it read anything.  What it knows about an asset
never changes, so its headers are worked out once.

>>> import asyncio
>>> from unblank import AssetClient
>>> from unblank.testing import FakeOrigin, Site
>>> origin = FakeOrigin(site=Site.from_files({"app.js": b"alert(1)"}))
>>> async def main() -> tuple[int, bytes]:
...     async with AssetClient(origins=[origin.base], transport=origin.transport) as client:
...         mirror = Mirror(client)
...         path = (await client.current_manifest()).asset("app.js").path
...         found = await mirror.answer(path, if_none_match=None)
...         assert not isinstance(found, str)
...         return found.status, found.body
>>> asyncio.run(main())
(200, b'alert(1)')
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from unblank import integrity
from unblank._asgi import Headers
from unblank._exceptions import FetchError
from unblank.client import AssetClient
from unblank.manifest import Asset

__all__ = ["Mirror", "MirrorAnswer", "etag_for", "etag_matches"]

FOREVER: Final = b"public, max-age=31536000, immutable"  # a year: what RFC 9111 caches keep
# CORS and CORP let a page on any origin load the copy with `crossorigin` and
# check its integrity; the same headers go on the mirror's error pages.
SHARED: Final[Headers] = [
    (b"access-control-allow-origin", b"*"),
    (b"cross-origin-resource-policy", b"cross-origin"),
    (b"x-content-type-options", b"nosniff"),
]
MISS_REFRESH: Final = 5.0  # seconds between manifest revalidations caused by unknown paths
_MAX_PATH: Final = 1024  # longer than any published path: not worth a lookup
_PREPARED: Final = 4096  # assets whose headers are kept

Miss = Literal["not-found", "upstream"]


@dataclass(frozen=True, slots=True)
class MirrorAnswer:
    """200 with the verified bytes, or 304 (``body`` empty)."""

    status: int
    headers: Headers
    body: bytes


def etag_for(asset_integrity: str) -> str:
    """The strong entity tag of an asset: from its digest, as ``unblank serve`` makes it,
    so a copy from the mirror revalidates against the origin's tag and back."""
    digest = integrity.strongest(integrity.parse(asset_integrity))[0].digest
    return '"' + base64.urlsafe_b64encode(digest[:18]).decode("ascii") + '"'


def etag_matches(field: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` field names ``etag`` (weak comparison, RFC 9110 §13.1.2).

    >>> etag_matches('"a", W/"b"', '"b"'), etag_matches("*", '"x"'), etag_matches('"a"', '"b"')
    (True, True, False)
    """
    if len(field) > 8192:
        return False  # junk, not a list of tags we could have sent
    if field.strip(" \t") == "*":
        return True
    for tag in field.split(","):
        tag = tag.strip(" \t")
        if tag.removeprefix("W/") == etag:
            return True
    return False


class Mirror:
    """Answers ``GET <mirror_path><published path>`` from an :class:`~unblank.AssetClient`."""

    def __init__(self, client: AssetClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._clock = clock
        self._refreshed: float | None = None
        self._prepared: dict[str, tuple[str, str, Headers]] = {}  # path: integrity, etag, headers

    async def answer(self, path: str, *, if_none_match: str | None) -> MirrorAnswer | Miss:
        """The answer for ``path``, or the reason of the guided page to send instead."""
        try:
            async with asyncio.timeout(self.client.deadline):
                asset = await self._lookup(path)
                if asset is None:
                    return "not-found"
                etag, headers = self._headers(asset)
                if if_none_match is not None and etag_matches(if_none_match, etag):
                    return MirrorAnswer(304, [h for h in headers if h[0] != b"content-length"], b"")
                fetched = await self.client.fetch_asset(asset)
        except (FetchError, TimeoutError):
            return "upstream"
        return MirrorAnswer(200, headers, fetched.data)

    async def _lookup(self, path: str) -> Asset | None:
        if not path or len(path) > _MAX_PATH:
            return None
        manifest = await self.client.current_manifest()
        asset = manifest.asset_by_path(path)
        if asset is not None:
            return asset
        # Perhaps a deploy the client has not seen yet; but unknown paths are
        # also what scanners send, and each must not cost a request to the origin.
        now = self._clock()
        if self._refreshed is not None and now - self._refreshed < MISS_REFRESH:
            return None
        self._refreshed = now
        return (await self.client.manifest()).manifest.asset_by_path(path)

    def _headers(self, asset: Asset) -> tuple[str, Headers]:
        prepared = self._prepared.get(asset.path)
        if prepared is not None and prepared[0] == asset.integrity:
            return prepared[1], prepared[2]
        etag = etag_for(asset.integrity)
        headers: Headers = [
            (b"content-type", asset.content_type.encode("latin-1")),
            (b"content-length", str(asset.size).encode("ascii")),
            (b"cache-control", FOREVER),
            (b"etag", etag.encode("ascii")),
            *SHARED,
        ]
        if len(self._prepared) >= _PREPARED:
            self._prepared.clear()
        self._prepared[asset.path] = (asset.integrity, etag, headers)
        return etag, headers
