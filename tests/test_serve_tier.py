"""The memory tier: bounded in bytes, least recently used out first, loads once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from unblank import Manifest
from unblank_server import bodies, resources
from unblank_server.app import StaticApp, create_app
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for i in range(6):
        # 40 KiB each of incompressible-looking bytes: no variants, one body per file.
        (src / f"f{i}.bin").write_bytes(bytes((i * 7919 + n * 104729) % 251 for n in range(40_000)))
    out = tmp_path_factory.mktemp("dist")
    build(src, out, BuildOptions(compression=CompressionSettings(brotli_quality=1, gzip_level=1)))
    return out


@pytest.fixture
def app(dist: Path) -> Iterator[StaticApp]:
    application = create_app(dist, memory_bytes=100_000, reload_interval=0)
    yield application
    application.close()


def urls(dist: Path) -> list[str]:
    manifest = Manifest.loads((dist / "manifest.json").read_bytes())
    return [f"/static/{manifest.assets[f'f{i}.bin'].path}" for i in range(6)]


async def fetch(app: StaticApp, paths: list[str]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return list(await asyncio.gather(*(client.get(p) for p in paths)))


def test_tier_loads_a_body_once_for_concurrent_requests(
    app: StaticApp, dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    original = resources.read_verified

    def counting(variant: resources.Variant) -> bytes:
        loads.append(str(variant.file))
        return original(variant)

    monkeypatch.setattr(bodies, "read_verified", counting)
    replies = asyncio.run(fetch(app, [urls(dist)[0]] * 16))
    assert {r.status_code for r in replies} == {200}
    assert len({r.content for r in replies}) == 1
    assert len(loads) == 1


def test_tier_stays_within_its_capacity_evicting_least_recent(app: StaticApp, dist: Path) -> None:
    paths = urls(dist)
    for path in paths:  # 6 x 40 KB through a 100 KB tier
        assert asyncio.run(fetch(app, [path]))[0].status_code == 200
        assert app.tier.used <= 100_000
    assert app.tier.used == 80_000  # the two most recent
    hits = app.tier.hits
    asyncio.run(fetch(app, [paths[-1]]))
    assert app.tier.hits == hits + 1
    misses = app.tier.misses
    asyncio.run(fetch(app, [paths[0]]))
    assert app.tier.misses == misses + 1


def test_tier_never_holds_files_above_its_file_limit(dist: Path) -> None:
    application = create_app(dist, memory_file_limit=10_000, reload_interval=0)
    try:
        replies = asyncio.run(fetch(application, urls(dist)[:2]))
        assert [r.status_code for r in replies] == [200, 200]
        assert all(len(r.content) == 40_000 for r in replies)
        assert application.tier.used == 0
    finally:
        application.close()
