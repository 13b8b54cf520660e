"""Operations of the SDK: ``unblank fetch``, ``unblank cache verify|gc|stats``
against a real ``unblank serve`` on 127.0.0.1, and the Prometheus collector."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.realserver import serve_in_thread
from unblank import AssetCache, AssetClient, FetchError, Manifest, StaleTooOld, integrity
from unblank.metrics import SdkCollector
from unblank.testing import CacheCorruptor, FakeOrigin, Fault, Site
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
    # an asset's entry (the client's manifest record is an entry too, rewritten on its own time)
    victim = next(p for p in content_files(folder) if not p.read_bytes().startswith(b'{"record"'))
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
    records = (tmp_path / "c" / "index" / "index.jsonl").read_text(encoding="utf-8")
    assert '"manifest:' in records  # remembered again


def test_cache_commands_refuse_a_folder_that_is_not_a_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["cache", "verify", str(tmp_path)]) == 2
    assert "not a cache folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_restarted_client_protects_its_generation_from_eviction(tmp_path: Path) -> None:
    files = {f"f{i}.bin": bytes([i]) * 50_000 for i in range(4)}
    fake = FakeOrigin(site=Site.from_files(files))
    folder = tmp_path / "c"

    async def warm() -> None:
        async with AssetClient(
            origins=[fake.base], cache=AssetCache(folder), transport=fake.transport
        ) as client:
            await client.prefetch()

    asyncio.run(warm())
    # A new process whose cache is smaller than the generation plus one more entry.
    cache = AssetCache(folder, memory_bytes=0, max_bytes=210_000)

    async def restart() -> None:
        async with AssetClient(origins=[fake.base], cache=cache, transport=fake.transport) as c:
            await c.manifest()  # 304: nothing new to persist, but the pins must be there

            junk = b"not in the manifest" * 3000
            await asyncio.to_thread(cache.put, integrity.compute(junk), junk)

    asyncio.run(restart())
    manifest = Manifest.loads(Site.from_files(files).manifest)
    for name in files:
        meta = manifest.assets[name].integrity
        assert cache.get(meta) is not None, f"{name} of the current generation was evicted"


def test_stale_bound_holds_on_every_call_after_it_passes(tmp_path: Path) -> None:
    fake = FakeOrigin(site=Site.from_files({"app.css": b"body{}" * 10}))
    now = [1_000_000.0]

    def wall() -> float:
        return now[0]

    async def scenario() -> list[str]:
        outcomes: list[str] = []
        async with AssetClient(
            origins=[fake.base],
            cache=AssetCache(tmp_path / "c"),
            transport=fake.transport,
            wall_clock=wall,
            stale_manifest_for=60,
            manifest_max_age=0,
            sleep=_no_sleep,
        ) as client:
            await client.get("app.css")
            fake.inject(Fault.refuse())
            now[0] += 30
            fetched = await client.get("app.css")
            outcomes.append(f"stale={fetched.stale}")
            now[0] += 60
            for _ in range(3):
                try:
                    await client.get("app.css")
                    outcomes.append("served")
                except StaleTooOld:
                    outcomes.append("too old")
        return outcomes

    assert asyncio.run(scenario()) == ["stale=True", "too old", "too old", "too old"]


async def _no_sleep(seconds: float) -> None:
    return None


@contextmanager
def never_answering() -> Iterator[str]:
    """The base URL of a server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_one_deadline_bounds_the_whole_get(tmp_path: Path) -> None:
    async def scenario(base: str) -> float:
        started = time.monotonic()
        async with AssetClient(origins=[base], deadline=2.0, request_timeout=10.0) as client:
            with pytest.raises(FetchError):
                await client.get("app.js")
        return time.monotonic() - started

    with never_answering() as base:
        # one deadline for the whole call: about 2 s, where manifest + asset took 4
        assert asyncio.run(scenario(base)) < 3.5


def test_superseded_manifest_records_do_not_pile_up(tmp_path: Path) -> None:
    fake = FakeOrigin(site=Site.from_files({"a.js": b"1" * 300}))
    cache = AssetCache(tmp_path / "c")

    async def deploys() -> None:
        async with AssetClient(
            origins=[fake.base], cache=cache, transport=fake.transport, manifest_max_age=0
        ) as client:
            for i in range(5):
                fake.publish(Site.from_files({"a.js": bytes([65 + i]) * 300}, generation=f"g{i}"))
                await client.get("a.js")

    asyncio.run(deploys())
    records = [hit for hit in cache.scan(max_size=1 << 20) if hit.data.startswith(b'{"record"')]
    assert len(records) == 1
    index = (tmp_path / "c" / "index" / "index.jsonl").read_text(encoding="utf-8")
    assert records[0].integrity in index


DAMAGE = ["flip_bit", "truncate", "zero_length", "nul_fill", "swap_in", "delete"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_corruptor_damage_never_reaches_the_caller(tmp_path: Path, damage: str) -> None:
    files = {"a.js": b"export const a = 1;\n" * 30, "b.js": b"export const b = 2;\n" * 30}
    fake = FakeOrigin(site=Site.from_files(files))
    manifest = Manifest.loads(fake.site.manifest)
    a, b = (manifest.assets[n].integrity for n in ("a.js", "b.js"))
    corruptor = CacheCorruptor(tmp_path / "c")

    async def scenario() -> list[tuple[bytes, str]]:
        cache = AssetCache(tmp_path / "c", memory_bytes=0)
        async with AssetClient(origins=[fake.base], cache=cache, transport=fake.transport) as c:
            await c.prefetch()
            if damage == "swap_in":
                corruptor.swap_in(a, b)
            else:
                getattr(corruptor, damage)(a)
            corruptor.garble_index()
            corruptor.leave_temp_file(a)
            got = [await c.get("a.js"), await c.get("b.js"), await c.get("a.js")]
            assert cache.verify().clean
            return [(f.data, str(f.source)) for f in got]

    (first, source), second, third = asyncio.run(scenario())
    assert first == files["a.js"]
    assert source in ("repaired", "origin")  # deleted: simply fetched again
    assert second == (files["b.js"], "disk")
    assert third[0] == files["a.js"]


def test_apps_sharing_a_cache_never_get_each_others_manifest(tmp_path: Path) -> None:
    first = FakeOrigin(
        site=Site.from_files({"index.html": b"<p>app one</p>"}), base="http://one.test"
    )
    second = FakeOrigin(
        site=Site.from_files({"index.html": b"<p>app two</p>"}), base="http://two.test"
    )
    folder = tmp_path / "shared"

    async def warm(origin: FakeOrigin) -> None:
        async with AssetClient(
            origins=[origin.base], cache=AssetCache(folder), transport=origin.transport
        ) as client:
            await client.prefetch()

    asyncio.run(warm(first))
    asyncio.run(warm(second))  # the last writer of the shared cache
    first.inject(Fault.refuse())

    async def restart_first() -> bytes:
        async with AssetClient(
            origins=[first.base], cache=AssetCache(folder), transport=first.transport
        ) as client:
            return (await client.get("index.html")).data

    assert asyncio.run(restart_first()) == b"<p>app one</p>"
    for index in (folder / "index").iterdir():
        index.unlink()  # and when the index is lost, the content is searched by origin too
    assert asyncio.run(restart_first()) == b"<p>app one</p>"


def test_an_origin_that_never_answers_still_leaves_time_for_the_stale_copy(
    tmp_path: Path,
) -> None:
    fake = FakeOrigin(site=Site.from_files({"app.js": b"export default 1;\n" * 20}))
    folder = tmp_path / "c"

    async def warm(hanging: str) -> None:
        async with AssetClient(
            origins=[hanging],
            mirrors=[fake.base],
            cache=AssetCache(folder),
            transport=fake.transport,
        ) as client:
            await client.prefetch()

    async def later(hanging: str) -> tuple[bool, bytes, float]:
        started = time.monotonic()
        async with AssetClient(
            origins=[hanging], cache=AssetCache(folder), deadline=4.0, request_timeout=10.0
        ) as client:
            fetched = await client.get("app.js")
        return fetched.stale, fetched.data, time.monotonic() - started

    # Warm through the fake (it answers for any host, so the record names the
    # hanging origin), then read back over the real network where it hangs.
    with never_answering() as hanging:
        asyncio.run(warm(hanging))
        stale, data, took = asyncio.run(later(hanging))
    assert stale and data == b"export default 1;\n" * 20
    assert took < 3.5  # half the deadline for the origins, then the stale copy at once
