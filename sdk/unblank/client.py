"""AssetClient: fetch the manifest and assets from origins and mirrors, verified.

Every body from every origin is checked against the manifest's integrity
before anyone sees it: a wrong byte, a short body or an HTML error page from
a mirror is a failure of that mirror, counted by its circuit breaker, never a
result.  The manifest is revalidated with its ETag and, when every origin is
down, the last good one is served stale (and says so) within a bound.

>>> import asyncio
>>> from unblank.testing import FakeOrigin, Site
>>> origin = FakeOrigin(site=Site.from_files({"app.js": b"alert(1)"}))
>>> async def main() -> bytes:
...     async with AssetClient(origins=[origin.base], transport=origin.transport) as client:
...         return (await client.get("app.js")).data
>>> asyncio.run(main())
b'alert(1)'
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random as _random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self

import httpx

from unblank import integrity
from unblank._exceptions import FetchError, StaleTooOld, UnblankError
from unblank._origins import (
    AttemptFailed,
    ClientEvent,
    ClientStats,
    Failover,
    Origin,
    report,
)
from unblank.breaker import BreakerPolicy
from unblank.cache import AssetCache, Hit, Source
from unblank.manifest import Asset, Manifest
from unblank.retry import RETRYABLE_STATUSES, RetryPolicy

__all__ = [
    "AssetClient",
    "ClientEvent",
    "ClientStats",
    "Fetched",
    "ManifestResult",
    "Origin",
    "PrefetchReport",
]

MANIFEST_KEY: Final = "manifest"  # prefix of the cache index keys of the last good manifests
_HASH_ON_LOOP: Final = 256 << 10  # sha384 of 256 KiB takes ~0.3 ms: fine inline, more is not
MANIFEST_LIMIT: Final = 32 << 20  # a manifest of 100k assets is ~20 MiB; more is not one
_RECORD: Final = "unblank-manifest-record/1"


@dataclass(frozen=True, slots=True)
class ManifestResult:
    """A manifest and where it came from; ``stale`` is True when every origin failed
    and this is the last good copy, ``age`` seconds since it was last confirmed."""

    manifest: Manifest
    source: Source
    stale: bool
    age: float
    origin: str | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """Verified bytes of one asset; ``origin`` is the base URL they came from (None: cache)."""

    data: bytes
    integrity: str
    source: Source
    origin: str | None
    stale: bool = False  # looked up in a stale manifest (every origin failed)


@dataclass(frozen=True, slots=True)
class PrefetchReport:
    """What :meth:`AssetClient.prefetch` warmed, by logical name, and what failed."""

    fetched: Mapping[str, Source]
    failed: Mapping[str, FetchError]


@dataclass(frozen=True, slots=True)
class _Known:
    manifest: Manifest
    raw: bytes
    etag: str | None
    validated: float  # wall-clock time it was last confirmed by an origin
    origin: str | None


@dataclass(frozen=True, slots=True)
class _ManifestAnswer:
    known: _Known | None  # None: 304, the one we hold is current
    etag: str | None


class AssetClient:
    """Resilient, verified fetching of what ``unblank build`` published.

    >>> client = AssetClient(origins=["https://assets.example.com"],
    ...                      mirrors=["https://mirror.example.net"])
    >>> # async with client: data = (await client.get("app.js")).data

    Clocks, sleep, randomness and the HTTP transport are injectable so that
    the policy can be tested without a network or real waiting
    (:mod:`unblank.testing`).
    """

    def __init__(
        self,
        *,
        origins: Sequence[str | Origin],
        mirrors: Sequence[str | Origin] = (),
        cache: AssetCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        deadline: float = 10.0,
        request_timeout: float = 5.0,
        stale_manifest_for: float = 86400.0,
        manifest_max_age: float = 30.0,
        prefetch_concurrency: int = 8,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        on_event: Callable[[ClientEvent], object] | None = None,
    ) -> None:
        if isinstance(origins, str) or isinstance(mirrors, str):
            raise ValueError("origins and mirrors are lists of URLs, not one string")
        if not origins:
            raise ValueError("AssetClient needs at least one origin")
        for name, value in (
            ("deadline", deadline),
            ("request_timeout", request_timeout),
            ("stale_manifest_for", stale_manifest_for),
            ("manifest_max_age", manifest_max_age),
        ):
            if not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"AssetClient {name} must be a number >= 0, not {value!r}")
        if type(prefetch_concurrency) is not int or prefetch_concurrency < 1:
            raise ValueError("AssetClient prefetch_concurrency must be an integer >= 1")
        self.origins = tuple(Origin.coerce(o) for o in origins)
        self.mirrors = tuple(Origin.coerce(m) for m in mirrors)
        # Apps may share one cache: each set of origins keeps its own last manifest.
        self._bases = frozenset(o.base for o in (*self.origins, *self.mirrors))
        fingerprint = hashlib.sha256("\n".join(sorted(self._bases)).encode()).hexdigest()[:16]
        self._manifest_key = f"{MANIFEST_KEY}:{fingerprint}"
        self.cache = cache
        self.stats = ClientStats()
        self.deadline = deadline
        self.stale_manifest_for = stale_manifest_for
        self.manifest_max_age = manifest_max_age
        self._prefetch_concurrency = prefetch_concurrency
        self._clock = clock
        self._wall = wall_clock
        self._emit = report(on_event)
        self._failover = Failover(
            origins=self.origins,
            mirrors=self.mirrors,
            retry=retry or RetryPolicy(),
            breaker=breaker or BreakerPolicy(),
            deadline=deadline,
            request_timeout=request_timeout,
            stats=self.stats,
            clock=clock,
            sleep=sleep,
            random=random,
            emit=self._emit,
        )
        self._http = httpx.AsyncClient(
            transport=transport, timeout=request_timeout, follow_redirects=False
        )
        self._known: _Known | None = None
        self._checked_at: float | None = None  # monotonic time of the last manifest() outcome
        self._stale = False  # the manifest held is a stale copy (every origin failed)
        self._record: str | None = None  # the cache entry of the persisted manifest record
        self._manifest_lock: asyncio.Lock | None = None
        self._persisted_validated: float | None = None

    def __repr__(self) -> str:
        bases = ", ".join(o.base for o in (*self.origins, *self.mirrors))
        return f"<AssetClient {bases}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def breakers(self) -> Mapping[str, Any]:
        """The circuit breaker of each origin and mirror, by base URL."""
        return MappingProxyType(self._failover.breakers)

    # -- the manifest -----------------------------------------------------

    async def manifest(self) -> ManifestResult:
        """The current manifest, revalidated now with its ETag.

        When every origin and mirror fails, the last good manifest (kept in
        memory and in the cache) is returned with ``stale=True`` while it is
        younger than ``stale_manifest_for``; after that :class:`StaleTooOld`.
        """
        if self._known is None:
            self._known = self._load_persisted()
        # With a copy to fall back on, asking the origins may take half the
        # deadline: an origin that accepts and never answers must not eat the
        # time the stale copy and the asset still need.
        budget = self.deadline / 2 if self._known is not None else None
        try:
            async with asyncio.timeout(budget):
                answer, origin, mirror = await self._failover.run(
                    "the manifest", self._manifest_attempt, lambda o: o.manifest_url
                )
        except FetchError as exc:
            return self._serve_stale(exc)
        except TimeoutError as exc:
            failure = FetchError(f"no origin or mirror answered the manifest within {budget:g}s")
            failure.__cause__ = exc
            return self._serve_stale(failure)
        self._checked_at = self._clock()
        self._stale = False
        known = answer.known
        previous = self._known
        if known is None:  # 304: what we hold is current
            if previous is None:  # pragma: no cover - a 304 is refused without a validator
                raise FetchError("an origin answered 304 to a request without If-None-Match")
            known = _Known(
                previous.manifest, previous.raw, previous.etag, self._wall(), origin.base
            )
        self._known = known
        self._persist(known, previous)
        return ManifestResult(
            known.manifest,
            Source.MIRROR if mirror else Source.ORIGIN,
            stale=False,
            age=0.0,
            origin=origin.base,
        )

    async def current_manifest(self) -> Manifest:
        """The manifest, revalidated only when older than ``manifest_max_age``."""
        if self._manifest_lock is None:
            self._manifest_lock = asyncio.Lock()
        async with self._manifest_lock:  # concurrent callers share one revalidation
            checked, known = self._checked_at, self._known
            fresh = checked is not None and self._clock() - checked < self.manifest_max_age
            if known is not None and self._stale:
                # A stale copy is reused only while it is within its bound.
                fresh = fresh and self._wall() - known.validated <= self.stale_manifest_for
            if known is not None and fresh:
                return known.manifest
            return (await self.manifest()).manifest

    async def _manifest_attempt(self, origin: Origin) -> _ManifestAnswer:
        known = self._known
        headers = {"accept": "application/json"}
        if known is not None and known.etag:
            headers["if-none-match"] = known.etag
        async with self._http.stream("GET", origin.manifest_url, headers=headers) as response:
            if response.status_code == 304 and "if-none-match" in headers:
                return _ManifestAnswer(None, known.etag if known else None)
            self._check_status(response)
            raw = await _read_body(response, MANIFEST_LIMIT)
        try:
            manifest = Manifest.loads(raw)
        except UnblankError as exc:
            raise AttemptFailed(f"not a valid manifest: {exc}", integrity=True) from exc
        etag = response.headers.get("etag")
        return _ManifestAnswer(_Known(manifest, raw, etag, self._wall(), origin.base), etag)

    def _serve_stale(self, exc: FetchError) -> ManifestResult:
        known = self._known
        if known is None:
            raise FetchError(
                f"{exc}\nNo earlier manifest is kept to serve instead "
                "(give the client a cache so one survives restarts).",
                attempts=exc.attempts,
            ) from exc
        age = max(0.0, self._wall() - known.validated)
        if age > self.stale_manifest_for:
            raise StaleTooOld(
                f"{exc}\nThe last good manifest (generation {known.manifest.generation}) "
                f"was confirmed {age:.0f}s ago, more than stale_manifest_for="
                f"{self.stale_manifest_for:g}s allows.",
                attempts=exc.attempts,
            ) from exc
        self._checked_at = self._clock()  # only a manifest actually served counts as checked
        self._stale = True
        self.stats.stale_served += 1
        self._emit(ClientEvent("stale", known.origin, f"manifest {age:.0f}s old"))
        return ManifestResult(
            known.manifest, Source.STALE, stale=True, age=age, origin=known.origin
        )

    def _persist(self, known: _Known, previous: _Known | None) -> None:
        """Keep the manifest in the cache, so a restart while origins are down still works."""
        cache = self.cache
        if cache is None:
            return
        self._pin(known)
        new = previous is None or previous.raw != known.raw
        # Rewriting on every 304 would churn the disk; a record up to a tenth of
        # the bound old only makes the stale copy look older, never younger.
        last = self._persisted_validated
        if not new and last is not None and known.validated - last < self.stale_manifest_for / 10:
            return
        record = json.dumps(
            {
                "record": _RECORD,
                "validated": known.validated,
                "etag": known.etag,
                "origin": known.origin,
                "manifest": known.raw.decode("utf-8"),
            }
        ).encode("utf-8")
        meta = integrity.compute(record)
        cache.put(meta, record)
        cache.remember(self._manifest_key, meta)
        if self._record is not None and self._record != meta:
            cache.discard(self._record)  # superseded: records would pile up otherwise
        self._record = meta
        self._pin(known)
        self._persisted_validated = known.validated

    def _pin(self, known: _Known) -> None:
        """What the current manifest references is never evicted by ``max_bytes``."""
        if self.cache is not None:
            records = [self._record] if self._record else []
            self.cache.pin([*records, *(a.integrity for a in known.manifest.assets.values())])

    def _load_persisted(self) -> _Known | None:
        cache = self.cache
        if cache is None:
            return None
        try:
            meta = cache.recall(self._manifest_key)
            hit = cache.get(meta) if meta else None
            if hit is None:
                # the index was lost: look in the content itself
                hit = _find_record(cache, self._bases)
                if hit is None:
                    return None
                cache.remember(self._manifest_key, hit.integrity)
            record = json.loads(hit.data)
            if not isinstance(record, dict) or record.get("record") != _RECORD:
                return None
            if record.get("origin") not in self._bases:
                return None  # another app's manifest in a shared cache: never ours
            raw = str(record["manifest"]).encode("utf-8")
            etag, origin = record.get("etag"), record.get("origin")
            self._persisted_validated = float(record["validated"])
            known = _Known(
                Manifest.loads(raw),
                raw,
                etag if isinstance(etag, str) else None,
                float(record["validated"]),
                origin if isinstance(origin, str) else None,
            )
        except (UnblankError, ValueError, KeyError, TypeError):
            return None  # a record we cannot read is no record: never a half-loaded manifest
        self._record = hit.integrity
        self._pin(known)  # a restarted process protects its generation from eviction at once
        return known

    # -- assets -----------------------------------------------------------

    async def get(self, name: str) -> Fetched:
        """Verified bytes of the asset with logical ``name`` (``"app.js"``), within
        one ``deadline`` for the whole call (manifest included)."""
        return await self._within_deadline(f"asset {name!r}", self._get(name))

    async def get_path(self, path: str) -> Fetched:
        """Verified bytes of the asset published at ``path`` (``"app.3f2a9c1e5b.js"``)."""
        return await self._within_deadline(f"asset at {path!r}", self._get_path(path))

    async def _within_deadline(self, what: str, call: Awaitable[Fetched]) -> Fetched:
        try:
            async with asyncio.timeout(self.deadline):
                fetched = await call
        except TimeoutError as exc:
            raise FetchError(
                f"no verified answer for {what} within the deadline of {self.deadline:g}s"
            ) from exc
        if self._stale and not fetched.stale:
            fetched = Fetched(fetched.data, fetched.integrity, fetched.source, fetched.origin, True)
        return fetched

    async def _get(self, name: str) -> Fetched:
        manifest = await self.current_manifest()
        if name not in manifest.assets:
            manifest = (await self.manifest()).manifest  # perhaps a deploy we have not seen
        try:
            asset = manifest.asset(name)
        except KeyError:
            raise KeyError(
                f"no asset named {name!r} in manifest generation {manifest.generation}"
            ) from None
        return await self.fetch_asset(asset)

    async def _get_path(self, path: str) -> Fetched:
        manifest = await self.current_manifest()
        asset = manifest.asset_by_path(path)
        if asset is None:
            manifest = (await self.manifest()).manifest
            asset = manifest.asset_by_path(path)
        if asset is None:
            raise KeyError(f"no asset at {path!r} in manifest generation {manifest.generation}")
        return await self.fetch_asset(asset)

    async def fetch_asset(self, asset: Asset) -> Fetched:
        """Verified bytes of ``asset``: from the cache, else from the origins and mirrors."""
        cache = self.cache
        if cache is None:
            return await self._download(asset, repaired=False)
        hit = await _cache_get(cache, asset.integrity)
        if hit is not None:
            self.stats.cache_hits += 1
            return Fetched(hit.data, asset.integrity, hit.source, None)
        repaired = cache.was_quarantined(asset.integrity)
        async with cache.single_flight_async(asset.integrity):
            # another task may have fetched it meanwhile
            hit = await _cache_get(cache, asset.integrity)
            repaired = repaired or cache.was_quarantined(asset.integrity)
            if hit is not None:
                self.stats.cache_hits += 1
                return Fetched(hit.data, asset.integrity, hit.source, None)
            return await self._download(asset, repaired=repaired)

    async def prefetch(self) -> PrefetchReport:
        """Warm the cache with every asset of the current manifest, a few at a time."""
        manifest = await self.current_manifest()
        gate = asyncio.Semaphore(self._prefetch_concurrency)
        fetched: dict[str, Source] = {}
        failed: dict[str, FetchError] = {}

        async def one(name: str, asset: Asset) -> None:
            async with gate:
                try:
                    fetched[name] = (await self.fetch_asset(asset)).source
                except FetchError as exc:
                    failed[name] = exc

        async with asyncio.TaskGroup() as group:
            for name, asset in manifest.assets.items():
                group.create_task(one(name, asset))
        return PrefetchReport(
            MappingProxyType(dict(sorted(fetched.items()))),
            MappingProxyType(dict(sorted(failed.items()))),
        )

    async def _download(self, asset: Asset, *, repaired: bool) -> Fetched:
        data, origin, mirror = await self._failover.run(
            f"asset {asset.path}",
            lambda o: self._asset_attempt(o, asset),
            lambda o: o.asset_url(asset.path),
        )
        if self.cache is not None:
            # A disk write ends with two fsyncs: never on the event loop.
            await asyncio.to_thread(self.cache.put, asset.integrity, data)
        if repaired:
            self.stats.repaired += 1
            self._emit(ClientEvent("repaired", origin.base, asset.path))
            source = Source.REPAIRED
        else:
            source = Source.MIRROR if mirror else Source.ORIGIN
        return Fetched(data, asset.integrity, source, origin.base)

    async def _asset_attempt(self, origin: Origin, asset: Asset) -> bytes:
        async with self._http.stream("GET", origin.asset_url(asset.path)) as response:
            self._check_status(response)
            data = await _read_body(response, asset.size)
            kind = response.headers.get("content-type", "")
        if len(data) > _HASH_ON_LOOP:  # hashing big bodies would stall every other request
            verified = await asyncio.to_thread(integrity.verify, data, asset.integrity)
        else:
            verified = integrity.verify(data, asset.integrity)
        if verified:
            return data
        if kind.startswith("text/html") and not asset.content_type.startswith("text/html"):
            what = "an HTML page instead of the asset (an error page or a captive portal?)"
        elif len(data) != asset.size:
            what = f"a body of {len(data)} bytes where the manifest says {asset.size}"
        else:
            what = "bytes that do not match the manifest's integrity"
        raise AttemptFailed(f"sent {what}", integrity=True)

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        if status in RETRYABLE_STATUSES:
            wait = self._failover.retry.retry_after(
                response.headers.get("retry-after"), now=self._wall()
            )
            note = f" (Retry-After {wait:g}s)" if wait is not None else ""
            raise AttemptFailed(
                f"HTTP {status}{note}", counts=None if status == 429 else True, retry_after=wait
            )
        raise AttemptFailed(f"HTTP {status}", counts=status >= 500, retry=False)


def manifest_records(cache: AssetCache) -> Iterator[tuple[dict[str, Any], Hit]]:
    """Every manifest record a client kept in ``cache`` (found by content, not index)."""
    prefix = json.dumps({"record": _RECORD})[:-1].encode("utf-8")
    for hit in cache.scan(max_size=MANIFEST_LIMIT):
        if not hit.data.startswith(prefix):
            continue
        try:
            record = json.loads(hit.data)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record, hit


def _find_record(cache: AssetCache, bases: frozenset[str]) -> Hit | None:
    """The newest manifest record of these origins among the cache's entries."""
    best: tuple[float, Hit] | None = None
    for record, hit in manifest_records(cache):
        if record.get("origin") not in bases:
            continue
        try:
            validated = float(record["validated"])
        except (ValueError, KeyError, TypeError):
            continue
        if best is None or validated > best[0]:
            best = (validated, hit)
    return None if best is None else best[1]


async def _cache_get(cache: AssetCache, meta: str) -> Hit | None:
    """A cache lookup that reads and verifies disk entries off the event loop."""
    if cache.in_memory(meta):
        return cache.get(meta)
    return await asyncio.to_thread(cache.get, meta)


async def _read_body(response: httpx.Response, expected: int) -> bytes:
    """The decoded body, read no further than one byte past ``expected``."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > expected:
            break  # longer than promised: it will fail verification; reading on wastes memory
    return bytes(body)
