"""AssetClient against a real ``unblank serve`` app on uvicorn (127.0.0.1, port 0).

What the fake origins cannot show: the real server's URLs, ETags, 304s and
content codings, over a real socket, agree with what the client expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realserver import serve_in_thread
from unblank import integrity
from unblank.cache import AssetCache, Source
from unblank.client import AssetClient
from unblank.retry import RetryPolicy
from unblank.sync import SyncAssetClient
from unblank_server.app import create_app
from unblank_server.builder import build

SOURCES = {
    "app.js": "console.log('unblank live');\n" * 200,
    "lib.js": "export const lib = 'live';\n" * 100,
    "app.css": "body { color: #222; }\n" * 300,  # large enough to be compressed
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("live_src")
    for name, text in SOURCES.items():
        (src / name).write_text(text)
    out = tmp_path_factory.mktemp("live") / "dist"
    build(src, out)
    return out


@pytest.fixture(scope="module")
def base_url(dist: Path) -> Iterator[str]:
    with create_app(dist, reload_interval=0) as app, serve_in_thread(app) as url:
        yield url


def test_live_manifest_and_every_asset_verify(base_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with AssetClient(
            origins=[base_url], cache=AssetCache(tmp_path), deadline=5.0
        ) as client:
            first = await client.manifest()
            assert (first.source, first.stale, first.origin) == (Source.ORIGIN, False, base_url)
            again = await client.manifest()  # revalidated: the server's ETag, a 304
            assert again.manifest is first.manifest
            for name, asset in first.manifest.assets.items():
                fetched = await client.get(name)
                assert fetched.source is Source.ORIGIN
                assert integrity.verify(fetched.data, asset.integrity)
                assert fetched.data == SOURCES[name].encode()
            report = await client.prefetch()
            assert set(report.fetched.values()) == {Source.MEMORY}
            assert client.stats.origins[base_url].failures == 0

    asyncio.run(main())


def test_live_sync_client_falls_over_from_a_dead_port(base_url: str) -> None:
    dead = "http://127.0.0.1:9"  # discard: nothing listens there
    with SyncAssetClient(
        origins=[dead, base_url], retry=RetryPolicy(attempts=1), deadline=5.0
    ) as client:
        fetched = client.get("app.css")
        assert (fetched.source, fetched.origin) == (Source.ORIGIN, base_url)
        assert fetched.data == SOURCES["app.css"].encode()
        assert client.stats.origins[dead].failures >= 1
