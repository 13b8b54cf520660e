"""What the server knows about each file before any request arrives.

A published file never changes under its fingerprinted name, so everything
about it (headers, entity tags, the 304 answer, which codings exist) is worked
out once when a generation is loaded; the request path only picks among these
prepared values. Bodies live on disk and, for files up to a size limit, in a
bounded memory tier that verifies every file it loads against the manifest.
"""

from __future__ import annotations

import base64
import gzip
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import brotli
from cachetools import LRUCache

from unblank import Asset, Manifest, integrity
from unblank.manifest import variant_path
from unblank_server.http import format_http_date

__all__ = [
    "CODING_ORDER",
    "FOREVER",
    "CorruptFile",
    "FileGone",
    "HeaderPolicy",
    "MemoryTier",
    "Resource",
    "Variant",
    "prepare_asset",
    "prepare_bytes",
]

logger = logging.getLogger("unblank.serve")

FOREVER: Final = (
    365 * 24 * 3600
)  # one year: what RFC 9111 caches and every CDN treat as "immutable"
# no-transform: a proxy that minifies or re-compresses would break SRI (RFC 9111 §5.2.2.6).
IMMUTABLE: Final = f"public, max-age={FOREVER}, immutable, no-transform"
REVALIDATE: Final = "no-cache, no-transform"
CODING_ORDER: Final = ("br", "gzip")  # smallest first: the server's preference among equals
_DECODERS: Final = {"br": brotli.decompress, "gzip": gzip.decompress}

Headers = list[tuple[bytes, bytes]]


class FileGone(Exception):
    """A prepared file is no longer on disk (garbage-collected, or DIST replaced)."""


class CorruptFile(Exception):
    """A file on disk does not match what its manifest says about it."""


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """The headers every asset response carries besides its own.

    ``cors_origin`` lets pages on other origins load assets with
    ``crossorigin`` (needed for SRI from a CDN domain); ``None`` leaves it out.
    """

    cors_origin: str | None = "*"
    resource_policy: str | None = "cross-origin"

    def extra(self) -> Headers:
        out: Headers = [(b"x-content-type-options", b"nosniff")]
        if self.cors_origin is not None:
            origin = self.cors_origin.encode("latin-1")
            out += [(b"access-control-allow-origin", origin), (b"timing-allow-origin", origin)]
            if self.cors_origin != "*":
                out.append((b"vary", b"Origin"))
        if self.resource_policy is not None:
            out.append((b"cross-origin-resource-policy", self.resource_policy.encode("latin-1")))
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Variant:
    """One representation of a resource: identity or one content coding."""

    coding: str | None
    file: str | None  # the resolved path on disk, or None for a pinned body
    size: int
    etag: str
    headers: Headers  # the complete 200 answer's header list
    not_modified: Headers  # the complete 304 answer's header list
    partial: Headers  # what a 206 carries besides Content-Range/Length/Type
    integrity: str  # of the decoded content, as the manifest says
    pinned: bytes | None = None  # bodies the server made itself (the manifest)
    tag: bytes = b""  # the entity tag as it appears on the wire
    label: str = "identity"  # the coding's name in metrics and logs
    inode: tuple[int, int] = (0, 0)  # (st_dev, st_ino) when prepared: a swapped file is refused


@dataclass(frozen=True, slots=True, eq=False)
class Resource:
    """Everything about one URL, prepared: its variants and validators."""

    variants: Mapping[str | None, Variant]
    codings: tuple[str, ...]  # the available codings in the server's order
    last_modified: int  # whole seconds since the epoch, as Last-Modified says
    immutable: bool
    content_type: str
    generation: str = field(default="")

    @property
    def identity(self) -> Variant:
        return self.variants[None]


def _etag(asset_integrity: str, coding: str | None) -> str:
    """A strong entity tag from the content digest, distinct per coding."""
    digest = integrity.strongest(integrity.parse(asset_integrity))[0].digest
    tag = base64.urlsafe_b64encode(digest[:18]).decode("ascii")
    return f'"{tag}-{coding}"' if coding else f'"{tag}"'


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _stat_file(root: str, relative: str) -> tuple[str, os.stat_result] | None:
    """The resolved path and stat of ``relative`` under root, if it is a regular
    file that stays inside root once every symbolic link is followed."""
    resolved = os.path.realpath(os.path.join(root, relative))
    if not _inside(root, resolved):
        logger.warning("refusing %r: it resolves outside the served root", relative)
        return None
    try:
        st = os.stat(resolved)
    except OSError:
        return None
    if not os.path.isfile(resolved):
        return None
    return resolved, st


def _build(
    *,
    coding: str | None,
    file: str | None,
    size: int,
    etag: str,
    content_type: str,
    last_modified: str,
    cache_control: str,
    vary: bool,
    policy: Headers,
    asset_integrity: str,
    pinned: bytes | None = None,
    inode: tuple[int, int] = (0, 0),
) -> Variant:
    # RFC 9110 §15.4.5: a 304 carries what a cache needs to update the response
    # it holds (ETag, Cache-Control, Vary) and nothing it already has.
    not_modified: Headers = [
        (b"etag", etag.encode("ascii")),
        (b"cache-control", cache_control.encode("ascii")),
    ]
    if vary:
        not_modified.append((b"vary", b"Accept-Encoding"))
    not_modified += [header for header in policy if header[0] == b"vary"]
    # No Accept-Ranges: RFC 9110 §14.3 makes it optional, clients send Range
    # anyway, and each header costs the ASGI server time on every response.
    common = [
        (b"last-modified", last_modified.encode("ascii")),
        *not_modified,
        *(header for header in policy if header[0] != b"vary"),
    ]
    full = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(size).encode("ascii")),
        *common,
    ]
    if coding is not None:
        full.append((b"content-encoding", coding.encode("ascii")))
    return Variant(
        coding=coding,
        file=file,
        size=size,
        etag=etag,
        headers=full,
        not_modified=not_modified,
        partial=common,
        integrity=asset_integrity,
        pinned=pinned,
        tag=etag.encode("ascii"),
        label=coding or "identity",
        inode=inode,
    )


def prepare_asset(
    root: str,
    asset: Asset,
    *,
    immutable: bool,
    policy: HeaderPolicy,
    generation: str = "",
    published: float = 0.0,
) -> Resource | None:
    """The prepared resource for ``asset`` under ``root``; None when its file is
    missing or is not the size the manifest says (it is then never served)."""
    found = _stat_file(root, asset.path)
    if found is None or found[1].st_size != asset.size:
        if found is not None:
            logger.error(
                "not serving %r: %d bytes on disk, the manifest says %d",
                asset.path,
                found[1].st_size,
                asset.size,
            )
        return None
    resolved, st = found
    # A logical name changes content when a generation is published, even back
    # to an older file (a rollback): its Last-Modified never goes backwards.
    mtime = int(max(st.st_mtime, published))
    last_modified = format_http_date(mtime)
    codings: list[str] = []
    files: dict[str | None, tuple[str, int, tuple[int, int]]] = {
        None: (resolved, asset.size, (st.st_dev, st.st_ino))
    }
    for coding in CODING_ORDER:
        if coding not in asset.encodings:
            continue
        encoded = _stat_file(root, variant_path(asset.path, coding))
        if encoded is None or encoded[1].st_size != asset.encodings[coding]:
            continue  # served without it: identity (or another coding) still works
        files[coding] = (
            encoded[0],
            asset.encodings[coding],
            (encoded[1].st_dev, encoded[1].st_ino),
        )
        codings.append(coding)
    extra = policy.extra()
    variants = {
        coding: _build(
            coding=coding,
            file=path,
            size=size,
            etag=_etag(asset.integrity, coding),
            content_type=asset.content_type,
            last_modified=last_modified,
            cache_control=IMMUTABLE if immutable else REVALIDATE,
            vary=bool(codings),
            policy=extra,
            asset_integrity=asset.integrity,
            inode=inode,
        )
        for coding, (path, size, inode) in files.items()
    }
    return Resource(
        variants=variants,
        codings=tuple(codings),
        last_modified=mtime,
        immutable=immutable,
        content_type=asset.content_type,
        generation=generation,
    )


def prepare_bytes(
    body: bytes, *, content_type: str, modified: float, policy: HeaderPolicy
) -> Resource:
    """A revalidated resource whose body the server holds itself (the manifest)."""
    digest = integrity.compute(body)
    mtime = int(modified)
    candidates: dict[str | None, bytes] = {None: body}
    if len(body) >= 256:
        candidates["br"] = brotli.compress(body, quality=5)
        candidates["gzip"] = gzip.compress(body, compresslevel=6, mtime=0)
    codings = tuple(c for c in CODING_ORDER if c in candidates)
    extra = policy.extra()
    variants = {
        coding: _build(
            coding=coding,
            file=None,
            size=len(data),
            etag=_etag(digest, coding),
            content_type=content_type,
            last_modified=format_http_date(mtime),
            cache_control=REVALIDATE,
            vary=bool(codings),
            policy=extra,
            asset_integrity=digest,
            pinned=data,
        )
        for coding, data in candidates.items()
    }
    return Resource(
        variants=variants,
        codings=codings,
        last_modified=mtime,
        immutable=False,
        content_type=content_type,
    )


class MemoryTier:
    """Bodies of files up to ``file_limit`` bytes, at most ``capacity`` bytes in all,
    least recently used out first. Every body is verified as it is loaded: the
    identity against the manifest's SRI digest, a coded one by decoding it.

    >>> tier = MemoryTier(capacity=1 << 20, file_limit=64 << 10)
    >>> tier.capacity, tier.used
    (1048576, 0)
    """

    def __init__(self, *, capacity: int, file_limit: int) -> None:
        if capacity < 0 or file_limit < 0:
            raise ValueError("memory tier sizes must not be negative")
        self.capacity = capacity
        self.file_limit = min(file_limit, capacity)
        # Only the event loop's thread touches the cache (cachetools is not
        # thread-safe): bodies are read in worker threads, then put() here.
        self.cache: LRUCache[str, bytes] = LRUCache(maxsize=max(capacity, 1), getsizeof=len)
        self.hits = 0
        self.misses = 0

    @property
    def used(self) -> int:
        return int(self.cache.currsize)

    def holds(self, variant: Variant) -> bool:
        """Whether this variant's body is kept in memory once loaded."""
        return variant.pinned is None and variant.size <= self.file_limit and self.capacity > 0

    def get(self, variant: Variant) -> bytes | None:
        if variant.pinned is not None:
            return variant.pinned
        body = self.cache.get(variant.file)  # type: ignore[arg-type]
        if body is None:
            self.misses += 1
        else:
            self.hits += 1
        return body

    def put(self, variant: Variant, body: bytes) -> None:
        """Keep a body read (and verified) by :func:`read_verified`."""
        if self.holds(variant):
            self.cache[variant.file] = body  # type: ignore[index]

    def clear(self) -> None:
        self.cache.clear()


def _open(variant: Variant) -> int:
    """A descriptor of the very file that was prepared: no symbolic link as the
    last component, and the same (device, inode), so a file or folder swapped
    since (for one that leads out of DIST) is refused."""
    if variant.file is None:
        raise FileGone("no file")
    try:
        fd = os.open(variant.file, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileGone(variant.file) from exc
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != variant.inode:
        os.close(fd)
        raise FileGone(f"{variant.file} is not the file that was prepared")
    if st.st_size != variant.size:
        os.close(fd)
        raise CorruptFile(f"{variant.file}: {st.st_size} bytes, expected {variant.size}")
    return fd


def read_verified(variant: Variant) -> bytes:
    """The whole body of a variant, checked against its manifest entry."""
    fd = _open(variant)
    try:
        with os.fdopen(fd, "rb") as stream:
            body = stream.read(variant.size + 1)
        decoded = _DECODERS[variant.coding](body) if variant.coding else body
    except OSError as exc:
        raise CorruptFile(f"{variant.file}: cannot be read: {exc}") from exc
    except Exception as exc:  # brotli.error, gzip.BadGzipFile, EOFError, zlib.error
        raise CorruptFile(f"{variant.file}: cannot be decoded as {variant.coding}: {exc}") from exc
    if len(body) != variant.size:
        raise CorruptFile(f"{variant.file}: {len(body)} bytes, expected {variant.size}")
    if not integrity.verify(decoded, variant.integrity):
        raise CorruptFile(f"{variant.file}: content does not match {variant.integrity[:20]}…")
    return body


def open_checked(variant: Variant) -> tuple[object, int]:
    """An open file of the expected size, for streaming."""
    fd = _open(variant)
    return os.fdopen(fd, "rb"), variant.size


def check_in_place(variant: Variant) -> None:
    """Raise unless the variant's path still leads to the prepared file, for a
    server that opens it itself (ASGI pathsend follows symbolic links)."""
    try:
        st = os.stat(variant.file)  # type: ignore[arg-type]  # pinned bodies never get here
    except (OSError, TypeError) as exc:
        raise FileGone(str(variant.file)) from exc
    if (st.st_dev, st.st_ino) != variant.inode or not stat.S_ISREG(st.st_mode):
        raise FileGone(f"{variant.file} is not the file that was prepared")
    if st.st_size != variant.size:
        raise CorruptFile(f"{variant.file}: {st.st_size} bytes, expected {variant.size}")


def resources_of(
    root: str,
    manifests: Iterable[Manifest],
    current: Manifest,
    *,
    policy: HeaderPolicy,
    previous: Mapping[str, Resource] | None = None,
) -> dict[str, Resource]:
    """URL path (relative to the prefix) → resource for every retained generation.

    Fingerprinted paths of every generation are immutable; the logical names of
    the current generation are revalidated. A fingerprinted path already
    prepared by ``previous`` is reused as is: its file cannot have changed.
    """
    table: dict[str, Resource] = {}
    previous = previous or {}
    for manifest in [*manifests, current]:
        for asset in manifest.assets.values():
            if asset.path in table:
                continue
            known = previous.get(asset.path)
            if (
                known is not None
                and known.immutable
                and known.identity.integrity == asset.integrity
            ):
                table[asset.path] = known
                continue
            resource = prepare_asset(
                root, asset, immutable=True, policy=policy, generation=manifest.generation
            )
            if resource is not None:
                table[asset.path] = resource
    for name, asset in current.assets.items():
        if name == asset.path:
            continue  # a bundler's own fingerprinted name: immutable already
        resource = prepare_asset(
            root,
            asset,
            immutable=False,
            policy=policy,
            generation=current.generation,
            published=current.created.timestamp(),
        )
        if resource is not None:
            table.setdefault(name, resource)
    return table
