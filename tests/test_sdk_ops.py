"""Operations of the SDK: ``unblank fetch``, ``unblank cache verify|gc|stats``
against a real ``unblank serve`` on 127.0.0.1, and the Prometheus collector."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.realserver import serve_in_thread
from unblank import AssetCache, AssetClient, Manifest
from unblank.metrics import SdkCollector
from unblank.testing import FakeOrigin, Fault, Site
from unblank_server.app import create_app
from unblank_server.builder import BuildOptions, build
from unblank_server.cli import main
from unblank_server.compress import CompressionSettings


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Manifest]]:
    src = tmp_path_factory.mktemp("src")
    (src / "app.js").write_text("export const answer = 42;\n" * 50, encoding="utf-8")
    (src / "app.css").write_text("body { margin: 0 }\n" * 50, encoding="utf-8")
    (src / "logo.bin").write_bytes(bytes(range(256)) * 40)
    dist = tmp_path_factory.mktemp("dist")
    build(src, dist, BuildOptions(compression=CompressionSettings(brotli_quality=1, gzip_level=1)))
    manifest = Manifest.loads((dist / "manifest.json").read_bytes())
    with create_app(dist, reload_interval=0) as app, serve_in_thread(app) as base:
        yield base, manifest


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(list(args))
    return status, capsys.readouterr().out


def content_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "content").rglob("*") if p.is_file())


def test_fetch_warms_a_cache_with_the_whole_generation(
    origin: tuple[str, Manifest], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, manifest = origin
    status, out = run(capsys, "fetch", base, str(tmp_path / "cache"), "--json")
    assert status == 0
    report = json.loads(out)
    assert report["generation"] == manifest.generation
    assert set(report["fetched"]) == set(manifest.assets)
    assert report["failed"] == {}
    cache = AssetCache(tmp_path / "cache", memory_bytes=0)
    for asset in manifest.assets.values():
        assert cache.get(asset.integrity) is not None


def test_verify_finds_and_repairs_damage(
    origin: tuple[str, Manifest], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = origin
    folder = tmp_path / "cache"
    assert run(capsys, "fetch", base, str(folder))[0] == 0
    assert run(capsys, "cache", "verify", str(folder))[0] == 0
    victim = content_files(folder)[0]
    data = bytearray(victim.read_bytes())
    data[0] ^= 0x20
    victim.write_bytes(bytes(data))
    status, out = run(capsys, "cache", "verify", str(folder), "--json")
    assert status == 1
    assert json.loads(out)["bad"] and not json.loads(out)["quarantined"]
    status, out = run(capsys, "cache", "verify", str(folder), "--repair", "--json")
    assert status == 1
    assert json.loads(out)["quarantined"]
    assert not victim.exists()
    assert run(capsys, "cache", "verify", str(folder))[0] == 0
    # the next fetch puts the missing entry back
    assert run(capsys, "fetch", base, str(folder))[0] == 0
    assert victim.exists()


def test_gc_spares_the_current_generation(
    origin: tuple[str, Manifest], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, manifest = origin
    folder = tmp_path / "cache"
    assert run(capsys, "fetch", base, str(folder))[0] == 0
    extra = AssetCache(folder, memory_bytes=0)
    from unblank import integrity

    junk = b"an entry no manifest names" * 100
    extra.put(integrity.compute(junk), junk)
    status, out = run(capsys, "cache", "gc", str(folder), "--max-bytes", "1K", "--json")
    assert status == 0
    assert len(json.loads(out)["evicted"]) == 1
    cache = AssetCache(folder, memory_bytes=0)
    for asset in manifest.assets.values():
        assert cache.get(asset.integrity) is not None
    status, out = run(capsys, "cache", "stats", str(folder), "--json")
    assert status == 0
    assert json.loads(out)["entries"] == len({a.integrity for a in manifest.assets.values()}) + 1


def test_cache_commands_refuse_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["cache", "stats", str(tmp_path / "nope")])
    assert status == 2
    assert "is not a cache folder" in capsys.readouterr().err


def test_fetch_from_a_dead_origin_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["fetch", "http://127.0.0.1:9", str(tmp_path / "c"), "--deadline", "1"])
    assert status == 2
    assert "http://127.0.0.1:9" in capsys.readouterr().err


def test_collector_exports_cache_and_client_counters(tmp_path: Path) -> None:
    fake = FakeOrigin(site=Site.from_files({"app.js": b"console.log(1)\n" * 20}))
    cache = AssetCache(tmp_path / "cache")

    async def scenario() -> AssetClient:
        client = AssetClient(origins=[fake.base], cache=cache, transport=fake.transport)
        await client.get("app.js")
        await client.get("app.js")
        fake.inject(Fault.error(503), times=1)
        await client.manifest()
        return client

    client = asyncio.run(scenario())
    registry = CollectorRegistry()
    registry.register(SdkCollector(cache=cache, client=client))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    hits = {s.labels["tier"]: s.value for s in families["unblank_cache_hits"].samples}
    assert hits["memory"] >= 1
    assert families["unblank_cache_writes"].samples[0].value >= 2  # asset + manifest record
    requests = families["unblank_client_requests"].samples
    assert requests[0].labels["origin"] == fake.base
    assert requests[0].value >= 3
    assert families["unblank_client_failures"].samples[0].value >= 1
    states = {s.labels["state"]: s.value for s in families["unblank_client_breaker_state"].samples}
    assert states == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    assert families["unblank_cache_entries"].samples[0].value == 2


def test_collector_needs_something_to_report() -> None:
    with pytest.raises(ValueError, match="cache, a client or both"):
        SdkCollector()


def test_lost_index_still_finds_the_last_manifest_in_content(tmp_path: Path) -> None:
    fake = FakeOrigin(site=Site.from_files({"app.js": b"console.log(2)\n" * 20}))

    async def first() -> str:
        async with AssetClient(
            origins=[fake.base], cache=AssetCache(tmp_path / "c"), transport=fake.transport
        ) as client:
            await client.get("app.js")
            return (await client.manifest()).manifest.generation

    generation = asyncio.run(first())
    for index in (tmp_path / "c" / "index").iterdir():
        index.unlink()  # the index is lost; the content is not
    fake.inject(Fault.refuse())  # and every origin is down after the restart

    async def after_restart() -> tuple[str, bool, bytes]:
        async with AssetClient(
            origins=[fake.base], cache=AssetCache(tmp_path / "c"), transport=fake.transport
        ) as client:
            result = await client.manifest()
            fetched = await client.get("app.js")
            return result.manifest.generation, result.stale, fetched.data

    found, stale, data = asyncio.run(after_restart())
    assert (found, stale) == (generation, True)
    assert data == b"console.log(2)\n" * 20
    assert AssetCache(tmp_path / "c").recall("manifest") is not None  # remembered again
