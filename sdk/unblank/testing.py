"""Test helpers for apps that embed unblank: fake origins with faults to inject.

:class:`FakeOrigin` answers like ``unblank serve`` (files under ``/static/``,
the manifest at ``/_unblank/manifest.json`` with an ETag and 304s) through an
httpx ``MockTransport``, so an :class:`~unblank.AssetClient` can be tested
without a network.  Faults are injected per origin or per URL path, for the
next *n* requests or for good: refused connections, timeouts, 5xx, 429 with
``Retry-After``, short bodies, wrong bytes, HTML instead of the asset, slowness.
Several origins share one transport through :class:`FakeNetwork`.
:class:`CacheCorruptor` damages a cache folder (flipped bits, truncation,
NULs, another entry's bytes, a garbled or lost index, killed writers' temp
files); :class:`FaultyFileSystem` makes its disk fail (``AssetCache(fs=...)``).

>>> site = Site.from_files({"app.js": b"alert(1)"})
>>> primary = FakeOrigin(site=site, base="http://primary.test")
>>> mirror = FakeOrigin(site=site, base="http://mirror.test")
>>> primary.inject(Fault.refuse())
>>> network = FakeNetwork(primary, mirror)
>>> # AssetClient(origins=[primary.base], mirrors=[mirror.base], transport=network.transport)
>>> primary.requests, mirror.requests
(0, 0)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import httpx

from unblank import integrity
from unblank._fs import FaultyFileSystem
from unblank.manifest import Asset, Manifest

__all__ = [
    "CacheCorruptor",
    "FakeNetwork",
    "FakeOrigin",
    "Fault",
    "FaultyFileSystem",
    "Site",
    "corrupt_files_holding",
]

_HTML = b"<!doctype html><title>502</title><h1>Bad gateway</h1>"


@dataclass(frozen=True, slots=True)
class Site:
    """What an origin serves: manifest bytes and files by published path."""

    manifest: bytes
    files: Mapping[str, bytes]

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], *, generation: str = "g1") -> Site:
        """A manifest for ``files`` (logical name -> bytes), fingerprinting each name.

        >>> site = Site.from_files({"js/app.js": b"1"})
        >>> sorted(site.files)
        ['js/app.6b86b273ff34.js']
        """
        assets: dict[str, Asset] = {}
        published: dict[str, bytes] = {}
        for name, data in files.items():
            stem, dot, ext = name.rpartition(".")
            digest = hashlib.sha256(data).hexdigest()[:12]
            path = f"{stem}.{digest}.{ext}" if dot and "/" not in ext else f"{name}.{digest}"
            kind = "text/css" if ext == "css" else "text/javascript; charset=utf-8"
            assets[name] = Asset(
                path=path, integrity=integrity.compute(data), size=len(data), content_type=kind
            )
            published[path] = data
        manifest = Manifest(
            generation=generation, created=datetime(2026, 1, 1, tzinfo=UTC), assets=assets
        )
        return cls(manifest.dumps(), MappingProxyType(published))

    @classmethod
    def from_dist(cls, dist: str | os.PathLike[str]) -> Site:
        """The current generation of a DIST folder written by ``unblank build``."""
        root = Path(dist)
        raw = (root / "manifest.json").read_bytes()
        manifest = Manifest.loads(raw)
        files = {path: (root / path).read_bytes() for path in manifest.paths()}
        return cls(raw, MappingProxyType(files))

    def parsed(self) -> Manifest:
        return Manifest.loads(self.manifest)


@dataclass(frozen=True, slots=True)
class Fault:
    """One way for a request to go wrong; build one with the class methods."""

    kind: str
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0

    @classmethod
    def refuse(cls) -> Fault:
        """The connection is refused (``httpx.ConnectError``)."""
        return cls("refuse")

    @classmethod
    def timeout(cls) -> Fault:
        """No answer in time (``httpx.ReadTimeout``)."""
        return cls("timeout")

    @classmethod
    def error(cls, status: int = 503, *, retry_after: str | None = None) -> Fault:
        """An HTTP error status, with ``Retry-After`` if given."""
        return cls("status", status=status, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, retry_after: str = "1") -> Fault:
        """429 Too Many Requests with ``Retry-After``."""
        return cls("status", status=429, retry_after=retry_after)

    @classmethod
    def short_body(cls) -> Fault:
        """A 200 whose body stops halfway."""
        return cls("short")

    @classmethod
    def wrong_bytes(cls) -> Fault:
        """A 200 with one byte flipped."""
        return cls("wrong")

    @classmethod
    def html(cls) -> Fault:
        """A 200 with an HTML error page instead of the asset (a CDN or a captive portal)."""
        return cls("html")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """The right answer after ``seconds``, waited through the origin's ``sleep``."""
        return cls("slow", seconds=seconds)


@dataclass(slots=True)
class _Injected:
    fault: Fault
    path: str | None
    times: int | None


@dataclass(slots=True)
class FakeOrigin:
    """One fake origin at ``base``; ``transport`` serves it alone, :class:`FakeNetwork` several.

    ``requests`` counts every request, ``by_path`` counts them per URL path,
    ``log`` holds ``(path, status or fault kind)`` of each, in order, and
    ``sleep`` (injectable) is what a :meth:`Fault.slow` waits through.
    """

    site: Site
    base: str = "http://origin.test"
    prefix: str = "/static"
    manifest_path: str = "/_unblank/manifest.json"
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    requests: int = field(default=0, init=False)
    by_path: Counter[str] = field(default_factory=Counter, init=False)
    log: list[tuple[str, int | str]] = field(default_factory=list, init=False)
    _faults: list[_Injected] = field(default_factory=list, init=False, repr=False)

    @property
    def host(self) -> str:
        return httpx.URL(self.base).host

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def url_path(self, name: str) -> str:
        """The URL path of logical asset ``name`` (``/static/app.<hash>.js``)."""
        return f"{self.prefix}/{self.site.parsed().asset(name).path}"

    def inject(self, fault: Fault, *, path: str | None = None, times: int | None = None) -> None:
        """Apply ``fault`` to requests for URL ``path`` (every path if None), for the next
        ``times`` of them (for good if None).  The latest injection matching wins."""
        self._faults.append(_Injected(fault, path, times))

    def clear(self) -> None:
        """Remove every injected fault."""
        self._faults.clear()

    def publish(self, site: Site) -> None:
        """Serve another generation from now on (a deploy)."""
        self.site = site

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path = request.url.path
        self.by_path[path] += 1
        try:
            response = await self._handle(request, path)
        except httpx.TransportError as exc:
            self.log.append((path, type(exc).__name__))
            raise
        self.log.append((path, response.status_code))
        return response

    async def _handle(self, request: httpx.Request, path: str) -> httpx.Response:
        fault = self._take_fault(path)
        if fault is not None:
            if fault.kind == "refuse":
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            if fault.kind == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            if fault.kind == "status":
                headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
                return httpx.Response(fault.status, headers=headers, content=_HTML)
            if fault.kind == "html":
                return httpx.Response(200, headers={"content-type": "text/html"}, content=_HTML)
            if fault.kind == "slow":
                await self.sleep(fault.seconds)
        response = self._answer(request)
        if fault is not None and response.status_code == 200:
            body = response.content
            if fault.kind == "short":
                return httpx.Response(200, headers=response.headers, content=body[: len(body) // 2])
            if fault.kind == "wrong":
                flipped = bytes([body[0] ^ 0x01]) + body[1:] if body else b"\0"
                return httpx.Response(200, headers=response.headers, content=flipped)
        return response

    def _take_fault(self, path: str) -> Fault | None:
        for injected in reversed(self._faults):
            if injected.path is None or injected.path == path:
                if injected.times is not None:
                    injected.times -= 1
                    if injected.times <= 0:
                        self._faults.remove(injected)
                return injected.fault
        return None

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method not in ("GET", "HEAD"):
            return httpx.Response(405)
        if path == self.manifest_path:
            raw = self.site.manifest
            etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
            headers = {"etag": etag, "cache-control": "no-cache"}
            if etag in request.headers.get("if-none-match", ""):
                return httpx.Response(304, headers=headers)
            headers["content-type"] = "application/json"
            return httpx.Response(200, headers=headers, content=raw)
        if path.startswith(self.prefix + "/"):
            data = self.site.files.get(path[len(self.prefix) + 1 :])
            if data is not None:
                headers = {"content-type": "application/octet-stream"}
                return httpx.Response(200, headers=headers, content=data)
        return httpx.Response(404, headers={"content-type": "text/html"}, content=_HTML)


class FakeNetwork:
    """Several fake origins behind one transport, routed by host; other hosts refuse.

    >>> net = FakeNetwork(FakeOrigin(site=Site.from_files({}), base="http://a.test"))
    >>> sorted(net.origins)
    ['a.test']
    """

    def __init__(self, *origins: FakeOrigin) -> None:
        self.origins = {origin.host: origin for origin in origins}
        self.transport = httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        origin = self.origins.get(request.url.host)
        if origin is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        return await origin.handle(request)


def corrupt_files_holding(
    root: str | os.PathLike[str], data: bytes, *, garbage: bytes | None = None
) -> list[Path]:
    """Overwrite every file under ``root`` whose content is exactly ``data``.

    A cache corruptor that needs no knowledge of the cache's layout: it finds
    the content file(s) of an entry by their bytes.  ``garbage`` defaults to
    ``data`` with its first byte flipped (same length: only a digest catches it).
    """
    bad = garbage if garbage is not None else bytes([data[0] ^ 0xFF]) + data[1:]
    changed: list[Path] = []
    for path in _files(Path(root)):
        try:
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                path.write_bytes(bad)
                changed.append(path)
        except OSError:
            continue
    return changed


def _files(root: Path) -> Iterable[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            yield Path(folder) / name


class CacheCorruptor:
    """Damage an :class:`~unblank.AssetCache` folder the ways disks and people do,
    to test that an integration survives it (every read must still give the
    right bytes or a clear error).

    >>> import tempfile
    >>> from unblank import AssetCache, integrity
    >>> folder = tempfile.mkdtemp()
    >>> cache = AssetCache(folder, memory_bytes=0)
    >>> meta = integrity.compute(b"console.log(1)")
    >>> cache.put(meta, b"console.log(1)")
    >>> CacheCorruptor(folder).flip_bit(meta)
    >>> cache.get(meta) is None, cache.was_quarantined(meta)
    (True, True)
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, meta: str) -> Path:
        """The content file of an entry (by its strongest digest)."""
        digest = integrity.strongest(integrity.parse(meta))[0]
        hexd = digest.digest.hex()
        return self.root / "content" / digest.algorithm / hexd[:2] / hexd

    def flip_bit(self, meta: str, *, at: int | None = None) -> None:
        data = bytearray(self.path(meta).read_bytes())
        data[len(data) // 2 if at is None else at] ^= 0x01
        self.path(meta).write_bytes(bytes(data))

    def truncate(self, meta: str, *, keep: int | None = None) -> None:
        path = self.path(meta)
        size = path.stat().st_size
        os.truncate(path, size // 2 if keep is None else keep)

    def zero_length(self, meta: str) -> None:
        os.truncate(self.path(meta), 0)

    def nul_fill(self, meta: str) -> None:
        path = self.path(meta)
        path.write_bytes(b"\0" * path.stat().st_size)

    def swap_in(self, meta: str, other: str) -> None:
        """Put another entry's valid bytes under this entry's name."""
        self.path(meta).write_bytes(self.path(other).read_bytes())

    def delete(self, meta: str) -> None:
        self.path(meta).unlink()

    def garble_index(self) -> None:
        """Flip bytes in the middle of every index line (their checksums fail)."""
        for index in (self.root / "index").glob("*.jsonl"):
            lines = index.read_bytes().split(b"\n")
            index.write_bytes(b"\n".join(line[:10] + b"#" + line[11:] for line in lines))

    def truncate_index(self) -> None:
        for index in (self.root / "index").glob("*.jsonl"):
            os.truncate(index, index.stat().st_size // 2)

    def delete_index(self) -> None:
        for index in (self.root / "index").glob("*.jsonl"):
            index.unlink()

    def leave_temp_file(self, meta: str) -> Path:
        """A half-written temp file beside the entry, as a killed writer leaves."""
        path = self.path(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".tmp-{path.name[:16]}-killed"
        temp.write_bytes(b"half a write")
        return temp
