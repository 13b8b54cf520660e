"""AssetClient against fake origins: the client half of the SDK's fault suite.

Every test runs on a fake clock: ``FakeTime.sleep`` records what the client
asked to wait and moves the clocks forward, so nothing really waits.
"""

from __future__ import annotations

import asyncio
import doctest
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

import unblank.client
import unblank.testing
from unblank import FetchError, StaleTooOld
from unblank.breaker import BreakerPolicy, BreakerState
from unblank.cache import AssetCache, Source
from unblank.client import AssetClient, ClientEvent
from unblank.retry import RetryPolicy
from unblank.sync import SyncAssetClient
from unblank.testing import FakeNetwork, FakeOrigin, Fault, Site, corrupt_files_holding

T = TypeVar("T")

FILES = {
    "app.js": b"document.body.textContent = 'hello';\n" * 20,
    "app.css": b"body { color: #123; }\n" * 20,
    "lib.js": b"export const lib = 1;\n" * 20,
    "chunk.js": b"export default 42;\n" * 20,
    "vendor.js": b"/* vendor */\n" * 50,
}
SITE = Site.from_files(FILES)
PRIMARY, SECONDARY, MIRROR = "http://primary.test", "http://secondary.test", "http://mirror.test"
NO_RETRY = RetryPolicy(attempts=1)
# Open at once and probe at once: every request goes through, so only the policy under test acts.
ALWAYS_PROBE = BreakerPolicy(cool_down=0.0)


class FakeTime:
    """Monotonic and wall clocks that only move when the client sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_800_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class World:
    """Three fake origins serving SITE (primary, secondary, mirror) on one network."""

    def __init__(self) -> None:
        self.time = FakeTime()
        self.primary = FakeOrigin(site=SITE, base=PRIMARY, sleep=self.time.sleep)
        self.secondary = FakeOrigin(site=SITE, base=SECONDARY, sleep=self.time.sleep)
        self.mirror = FakeOrigin(site=SITE, base=MIRROR, sleep=self.time.sleep)
        self.network = FakeNetwork(self.primary, self.secondary, self.mirror)
        self.events: list[ClientEvent] = []

    def client(
        self,
        origins: tuple[str, ...] = (PRIMARY,),
        mirrors: tuple[str, ...] = (MIRROR,),
        **options: Any,
    ) -> AssetClient:
        settings: dict[str, Any] = {
            "transport": self.network.transport,
            "clock": self.time.clock,
            "wall_clock": self.time.wall_clock,
            "sleep": self.time.sleep,
            "random": lambda: 0.5,
            "on_event": self.events.append,
        }
        settings.update(options)
        return AssetClient(origins=origins, mirrors=mirrors, **settings)

    def kinds(self, kind: str) -> list[ClientEvent]:
        return [e for e in self.events if e.kind == kind]


def asset_path(name: str) -> str:
    return f"/static/{SITE.parsed().asset(name).path}"


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory())


@pytest.fixture
def world() -> World:
    return World()


# --------------------------------------------------------------------------- basics


def test_client_docstring_examples_run() -> None:
    for module in (unblank.client, unblank.testing):
        assert doctest.testmod(module).failed == 0


def test_client_gets_verified_bytes_and_fills_the_cache(world: World) -> None:
    cache = AssetCache(None)

    async def main() -> None:
        async with world.client(cache=cache) as client:
            first = await client.get("app.js")
            again = await client.get("app.js")
            by_path = await client.get_path(SITE.parsed().asset("app.css").path)
        assert (first.data, first.source, first.origin) == (FILES["app.js"], Source.ORIGIN, PRIMARY)
        assert (again.data, again.source, again.origin) == (FILES["app.js"], Source.MEMORY, None)
        assert by_path.data == FILES["app.css"]

    run(main)
    assert world.primary.by_path[asset_path("app.js")] == 1
    assert world.time.sleeps == []


def test_client_unknown_name_is_a_key_error_naming_the_generation(world: World) -> None:
    async def main() -> None:
        async with world.client() as client:
            with pytest.raises(
                KeyError, match=r"no asset named 'nope\.js' in manifest generation g1"
            ):
                await client.get("nope.js")

    run(main)


@pytest.mark.parametrize(
    "fault",
    [Fault.refuse(), Fault.timeout(), Fault.error(503), Fault.error(500)],
    ids=["refused", "timeout", "503", "500"],
)
def test_client_failing_origin_falls_over_to_the_next_without_waiting(
    world: World, fault: Fault
) -> None:
    world.primary.inject(fault)

    async def main() -> None:
        async with world.client(origins=(PRIMARY, SECONDARY)) as client:
            result = await client.manifest()
            fetched = await client.get("app.js")
        assert (result.source, result.origin, result.stale) == (Source.ORIGIN, SECONDARY, False)
        assert (fetched.data, fetched.source, fetched.origin) == (
            FILES["app.js"],
            Source.ORIGIN,
            SECONDARY,
        )
        assert client.stats.origins[PRIMARY].failures == 2

    run(main)
    assert world.time.sleeps == []
    assert world.mirror.requests == 0


def test_client_retries_a_5xx_after_a_full_jitter_backoff(world: World) -> None:
    world.primary.inject(Fault.error(503), path=asset_path("app.js"), times=1)

    async def main() -> None:
        policy = RetryPolicy(base=0.2, cap=5.0)
        async with world.client(mirrors=(), retry=policy) as client:
            fetched = await client.get("app.js")
        assert (fetched.data, fetched.source) == (FILES["app.js"], Source.ORIGIN)
        assert client.stats.origins[PRIMARY].retries == 1

    run(main)
    assert world.time.sleeps == [pytest.approx(0.1)]  # random 0.5 x min(cap, 0.2 x 2**0)
    assert world.primary.log[-2:] == [(asset_path("app.js"), 503), (asset_path("app.js"), 200)]


@pytest.mark.parametrize("retry_after", ["3", "Thu, 01 Jan 2027 08:00:03 GMT"])
def test_client_429_waits_as_long_as_retry_after_asks(world: World, retry_after: str) -> None:
    world.time.wall = 1798790400.0  # Thu, 01 Jan 2027 08:00:00 GMT
    world.primary.inject(Fault.rate_limited(retry_after), path=asset_path("app.js"), times=1)

    async def main() -> None:
        async with world.client(mirrors=()) as client:
            fetched = await client.get("app.js")
        assert fetched.source is Source.ORIGIN
        # 429 is "alive, wait": not a failure for the breaker
        assert client.breakers[PRIMARY].failure_rate() == 0.0

    run(main)
    assert world.time.sleeps == [3.0]


def test_client_retry_after_beyond_the_deadline_gives_up_at_once(world: World) -> None:
    world.primary.inject(Fault.rate_limited("20"), path=asset_path("app.js"))

    async def main() -> None:
        async with world.client(mirrors=(), deadline=5.0) as client:
            with pytest.raises(FetchError, match="Retry-After asks for 20s, beyond the deadline"):
                await client.get("app.js")

    run(main)
    assert world.time.sleeps == []


# --------------------------------------------------------------------------- integrity


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (
            Fault.short_body(),
            f"a body of {len(FILES['app.js']) // 2} bytes where the manifest says",
        ),
        (Fault.wrong_bytes(), "bytes that do not match the manifest's integrity"),
        (Fault.html(), "an HTML page instead of the asset"),
    ],
    ids=["short", "wrong", "html"],
)
def test_client_bad_body_is_a_failure_of_that_origin_and_the_mirror_serves(
    world: World, fault: Fault, reason: str
) -> None:
    world.primary.inject(fault, path=asset_path("app.js"))
    cache = AssetCache(None)

    async def main() -> None:
        async with world.client(cache=cache, retry=NO_RETRY) as client:
            fetched = await client.get("app.js")
            assert (fetched.data, fetched.source, fetched.origin) == (
                FILES["app.js"],
                Source.MIRROR,
                MIRROR,
            )
            counters = client.stats.origins[PRIMARY]
            assert (counters.failures, counters.integrity_failures) == (1, 1)
            assert client.stats.mirror_used == 1
            assert client.breakers[PRIMARY].failure_rate() == 0.5  # manifest ok, asset not
            failure = world.kinds("failure")[0]
            assert failure.origin == PRIMARY and reason in failure.detail

    run(main)
    hit = cache.get(SITE.parsed().asset("app.js").integrity)
    assert hit is not None and hit.data == FILES["app.js"]


def test_client_every_source_wrong_raises_and_never_returns_bytes(world: World) -> None:
    for origin in (world.primary, world.mirror):
        origin.inject(Fault.wrong_bytes(), path=asset_path("app.js"))

    async def main() -> None:
        async with world.client(retry=NO_RETRY) as client:
            with pytest.raises(FetchError) as caught:
                await client.get("app.js")
        assert [url for url, _ in caught.value.attempts] == [
            PRIMARY + asset_path("app.js"),
            MIRROR + asset_path("app.js"),
        ]

    run(main)


@pytest.mark.parametrize("fault", [Fault.wrong_bytes(), Fault.html(), Fault.short_body()])
def test_client_never_accepts_a_manifest_that_does_not_parse(world: World, fault: Fault) -> None:
    world.primary.inject(fault, path="/_unblank/manifest.json")

    async def main() -> None:
        async with world.client() as client:
            result = await client.manifest()
        assert (result.source, result.origin) == (Source.MIRROR, MIRROR)
        assert result.manifest == SITE.parsed()
        assert client.stats.origins[PRIMARY].integrity_failures == 1

    run(main)


def test_client_404_moves_on_and_does_not_retry_that_origin(world: World) -> None:
    world.primary.publish(Site(SITE.manifest, {}))  # the manifest, but none of the files

    async def main() -> None:
        async with world.client() as client:
            fetched = await client.get("app.js")
        assert fetched.source is Source.MIRROR
        assert client.breakers[PRIMARY].failure_rate() == 0.0  # it answered; it is not down

    run(main)
    assert world.primary.by_path[asset_path("app.js")] == 1


# --------------------------------------------------------------------------- stale manifest


def test_client_all_origins_down_serves_the_stale_manifest_then_stale_too_old(
    world: World,
) -> None:
    cache = AssetCache(None)

    async def main() -> None:
        async with world.client(cache=cache, stale_manifest_for=3600.0) as client:
            fresh = await client.manifest()
            await client.get("app.js")
            for origin in (world.primary, world.mirror):
                origin.inject(Fault.refuse())
            world.time.advance(600)
            stale = await client.manifest()
            assert (stale.stale, stale.source, stale.origin) == (True, Source.STALE, PRIMARY)
            assert stale.manifest == fresh.manifest
            assert stale.age == pytest.approx(600.0, abs=5.0)  # the retries' backoff counts too
            assert (await client.get("app.js")).source is Source.MEMORY  # still served
            assert client.stats.stale_served == 1
            world.time.advance(3600)
            with pytest.raises(StaleTooOld, match="more than stale_manifest_for=3600s") as caught:
                await client.manifest()
            assert {url for url, _ in caught.value.attempts} >= {
                PRIMARY + "/_unblank/manifest.json",
                MIRROR + "/_unblank/manifest.json",
            }

    run(main)
    assert world.kinds("stale")


def test_client_stale_manifest_survives_a_restart_through_the_cache(
    world: World, tmp_path: Path
) -> None:
    async def main() -> None:
        async with world.client(cache=AssetCache(tmp_path)) as client:
            await client.manifest()
        world.primary.inject(Fault.refuse())
        world.mirror.inject(Fault.error(502))
        world.time.advance(100)
        async with world.client(cache=AssetCache(tmp_path)) as restarted:
            stale = await restarted.manifest()
        assert stale.stale and stale.manifest == SITE.parsed()
        assert stale.age == pytest.approx(100.0, abs=5.0)

    run(main)


def test_client_nothing_kept_and_all_down_is_a_fetch_error_listing_every_attempt(
    world: World,
) -> None:
    world.primary.inject(Fault.refuse())
    world.secondary.inject(Fault.timeout())
    world.mirror.inject(Fault.error(503))

    async def main() -> None:
        async with world.client(origins=(PRIMARY, SECONDARY), retry=RetryPolicy(attempts=2)) as c:
            with pytest.raises(FetchError) as caught:
                await c.manifest()
        error = caught.value
        assert not isinstance(error, StaleTooOld)
        outcomes = [(url.split("/_")[0], outcome.split(":")[0]) for url, outcome in error.attempts]
        assert (
            outcomes
            == [
                (PRIMARY, "could not connect"),
                (SECONDARY, "timed out (ReadTimeout)"),
                (MIRROR, "HTTP 503"),
            ]
            * 2
        )
        assert "No earlier manifest is kept" in str(error)
        assert "primary.test/_unblank/manifest.json: could not connect" in str(error)

    run(main)


def test_client_manifest_is_revalidated_with_its_etag(world: World) -> None:
    async def main() -> None:
        async with world.client() as client:
            first = await client.manifest()
            second = await client.manifest()
            assert second.manifest is first.manifest
            assert world.primary.log[-1] == ("/_unblank/manifest.json", 304)
            world.primary.publish(Site.from_files({"new.js": b"1"}, generation="g2"))
            third = await client.manifest()
            assert world.primary.log[-1] == ("/_unblank/manifest.json", 200)
            assert third.manifest.generation == "g2"
            assert "new.js" in third.manifest.assets

    run(main)


def test_client_get_revalidates_only_after_manifest_max_age(world: World) -> None:
    async def main() -> None:
        async with world.client(manifest_max_age=30.0) as client:
            await client.get("app.js")
            await client.get("lib.js")
            world.time.advance(31)
            await client.get("app.css")

    run(main)
    assert world.primary.by_path["/_unblank/manifest.json"] == 2


# --------------------------------------------------------------------------- breaker


def test_client_breaker_opens_skips_the_origin_and_closes_after_a_probe(world: World) -> None:
    names = list(FILES)
    for name in names:
        world.primary.inject(Fault.error(503), path=asset_path(name))
    policy = BreakerPolicy(failure_rate=0.5, window=4, minimum_calls=2, cool_down=30.0)

    async def main() -> None:
        async with world.client(breaker=policy, retry=NO_RETRY, manifest_max_age=1e9) as client:
            for name in names[:2]:
                assert (await client.get(name)).source is Source.MIRROR
            assert client.breakers[PRIMARY].state is BreakerState.OPEN
            before = world.primary.requests
            assert (await client.get(names[2])).source is Source.MIRROR
            assert world.primary.requests == before  # skipped while open
            world.primary.clear()
            world.time.advance(30)
            fetched = await client.get(names[3])  # the half-open probe
            assert (fetched.source, fetched.origin) == (Source.ORIGIN, PRIMARY)
            assert client.breakers[PRIMARY].state is BreakerState.CLOSED
            assert client.stats.origins[PRIMARY].breaker_transitions == 3

    run(main)
    assert [e.detail for e in world.kinds("breaker")] == [
        "closed->open",
        "open->half_open",
        "half_open->closed",
    ]


def test_client_breaker_one_half_open_probe_among_concurrent_tasks(world: World) -> None:
    names = list(FILES)
    policy = BreakerPolicy(window=2, minimum_calls=2, cool_down=30.0)
    release = asyncio.Event()

    async def held(_: float) -> None:
        await release.wait()

    async def main() -> None:
        async with world.client(breaker=policy, retry=NO_RETRY, manifest_max_age=1e9) as client:
            await client.manifest()
            world.primary.inject(Fault.refuse())
            await client.get(names[0])  # one success (the manifest), one failure: open
            assert client.breakers[PRIMARY].state is BreakerState.OPEN
            before = world.primary.requests
            world.primary.clear()
            world.primary.sleep = held
            world.primary.inject(Fault.slow(1.0))  # the probe hangs until released
            world.time.advance(30)
            tasks = [asyncio.create_task(client.get(name)) for name in names]
            for _ in range(20):
                await asyncio.sleep(0)
            assert world.primary.requests - before == 1  # exactly one probe is in flight
            assert client.breakers[PRIMARY].state is BreakerState.HALF_OPEN
            release.set()
            results = await asyncio.gather(*tasks)
            assert sorted(r.source for r in results) == [Source.MIRROR] * 4 + [Source.ORIGIN]
            assert world.primary.requests - before == 1
            assert client.breakers[PRIMARY].state is BreakerState.CLOSED

    run(main)


# --------------------------------------------------------------------------- budget, deadline


def test_client_retry_budget_stops_a_retry_storm(world: World) -> None:
    world.primary.inject(Fault.error(503), path=asset_path("app.js"))
    policy = RetryPolicy(attempts=5, base=0.0, budget_ratio=0.1, budget_reserve=2.0)
    calls = 40

    async def main() -> None:
        async with world.client(mirrors=(), retry=policy, breaker=ALWAYS_PROBE) as c:
            await c.manifest()
            for _ in range(calls):
                with pytest.raises(FetchError):
                    await c.get("app.js")
            counters = c.stats.origins[PRIMARY]
            assert counters.retries <= 2 + 0.1 * counters.requests
            assert c.stats.budget_exhausted > 0

    run(main)
    requests = world.primary.by_path[asset_path("app.js")]
    assert calls <= requests < calls * 5 // 2  # without a budget: 5 per call


def test_client_deadline_bounds_the_whole_call(world: World) -> None:
    world.primary.inject(Fault.error(503), path=asset_path("app.js"))
    policy = RetryPolicy(attempts=1000, base=1.0, cap=1.0, budget_reserve=10_000.0)

    async def main() -> None:
        async with world.client(
            mirrors=(), retry=policy, breaker=ALWAYS_PROBE, deadline=5.0, random=lambda: 1.0
        ) as c:
            await c.manifest()
            start = world.time.now
            with pytest.raises(FetchError, match="deadline of 5s"):
                await c.get("app.js")
            assert world.time.now - start <= 5.0

    run(main)
    assert 1 < world.primary.by_path[asset_path("app.js")] <= 6


def test_client_slow_origin_within_the_deadline_is_waited_for(world: World) -> None:
    world.primary.inject(Fault.slow(2.0), path=asset_path("app.js"))

    async def main() -> None:
        async with world.client(deadline=5.0) as client:
            assert (await client.get("app.js")).source is Source.ORIGIN

    run(main)
    assert world.time.sleeps == [2.0]


# --------------------------------------------------------------------------- cache


def test_client_corrupted_cache_entry_is_repaired_in_the_same_call(
    world: World, tmp_path: Path
) -> None:
    async def main() -> None:
        async with world.client(cache=AssetCache(tmp_path)) as client:
            assert (await client.get("app.js")).source is Source.ORIGIN
        assert corrupt_files_holding(tmp_path, FILES["app.js"])
        # A new process: its memory tier is empty, so the read goes to disk.
        async with world.client(cache=AssetCache(tmp_path)) as client:
            repaired = await client.get("app.js")
            assert (repaired.data, repaired.source) == (FILES["app.js"], Source.REPAIRED)
            assert client.stats.repaired == 1
            assert (await client.get("app.js")).source is Source.MEMORY
        fresh = AssetCache(tmp_path, memory_bytes=0)
        hit = fresh.get(SITE.parsed().asset("app.js").integrity)
        assert hit is not None and (hit.data, hit.source) == (FILES["app.js"], Source.DISK)

    run(main)
    assert world.kinds("repaired")


def test_client_single_flight_one_download_for_concurrent_gets(world: World) -> None:
    async def main() -> None:
        async with world.client(cache=AssetCache(None)) as client:
            await client.manifest()
            results = await asyncio.gather(*(client.get("vendor.js") for _ in range(10)))
        assert {r.data for r in results} == {FILES["vendor.js"]}

    run(main)
    assert world.primary.by_path[asset_path("vendor.js")] == 1


def test_client_prefetch_warms_the_cache_and_reports_failures(world: World) -> None:
    world.primary.inject(Fault.refuse(), path=asset_path("chunk.js"))
    world.mirror.inject(Fault.refuse(), path=asset_path("chunk.js"))
    cache = AssetCache(None)

    async def main() -> None:
        async with world.client(cache=cache, retry=NO_RETRY, prefetch_concurrency=2) as c:
            report = await c.prefetch()
        assert set(report.fetched) == set(FILES) - {"chunk.js"}
        assert set(report.fetched.values()) == {Source.ORIGIN}
        assert list(report.failed) == ["chunk.js"]

    run(main)
    for name in set(FILES) - {"chunk.js"}:
        assert cache.get(SITE.parsed().asset(name).integrity) is not None


def test_client_a_broken_event_hook_never_breaks_a_fetch(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ClientEvent) -> None:
        raise RuntimeError("hook bug")

    async def main() -> None:
        async with world.client(on_event=broken) as client:
            assert (await client.get("app.js")).data == FILES["app.js"]

    run(main)
    assert "on_event hook failed" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"origins": []}, "at least one origin"),
        ({"origins": "http://a.test"}, "not one string"),
        ({"origins": ["ftp://a.test"]}, "must be an http"),
        ({"origins": ["http://a.test"], "deadline": -1}, "deadline"),
    ],
)
def test_client_refuses_bad_configuration(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AssetClient(**options)


# --------------------------------------------------------------------------- sync facade


def test_sync_client_works_from_plain_threads(world: World) -> None:
    errors: list[BaseException] = []
    got: list[bytes] = []
    with SyncAssetClient(
        origins=[PRIMARY],
        mirrors=[MIRROR],
        transport=world.network.transport,
        cache=AssetCache(None),
    ) as client:
        assert client.manifest().manifest == SITE.parsed()

        def worker(name: str) -> None:
            try:
                got.append(client.get(name).data)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in list(FILES) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert sorted(got) == sorted(list(FILES.values()) * 3)
        assert client.prefetch().fetched
        assert client.stats.origins[PRIMARY].requests >= len(FILES)
    with pytest.raises(RuntimeError, match="closed"):
        client.get("app.js")


def test_sync_client_raises_the_async_clients_errors(world: World) -> None:
    world.primary.inject(Fault.refuse())
    with (
        SyncAssetClient(
            origins=[PRIMARY], transport=world.network.transport, retry=NO_RETRY
        ) as client,
        pytest.raises(FetchError, match="could not connect"),
    ):
        client.manifest()
