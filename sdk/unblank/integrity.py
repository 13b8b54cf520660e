"""Subresource Integrity metadata: parse, compute and verify.

Follows the W3C SRI specification (https://www.w3.org/TR/SRI/, "parse metadata"
and "get the strongest metadata from set"): metadata is a whitespace-separated
list of ``<alg>-<base64 digest>[?options]`` tokens; tokens naming an algorithm
we do not know are ignored; options are ignored; only the tokens of the
strongest algorithm present count, and content matches when it matches any of
them.  Unlike a browser, which silently ignores a malformed token, unblank
raises :class:`IntegrityMetadataError` for one: metadata we wrote or received
and cannot read is a bug to report, not a check to skip.

>>> meta = compute(b"alert(1)")
>>> meta.startswith("sha384-")
True
>>> verify(b"alert(1)", meta)
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Final

from unblank._exceptions import IntegrityMetadataError, IntegrityMismatch

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "Digest",
    "IntegrityHasher",
    "compute",
    "compute_stream",
    "parse",
    "strongest",
    "verify",
    "verify_or_raise",
]

# The algorithms of the SRI spec, weakest first; the index is the strength order.
ALGORITHMS: Final = ("sha256", "sha384", "sha512")
_DIGEST_SIZE: Final = {"sha256": 32, "sha384": 48, "sha512": 64}
# sha384 is what the SRI spec's examples and every major CDN publish.
DEFAULT_ALGORITHMS: Final = ("sha384",)
_CHUNK: Final = 1 << 20  # stream in 1 MiB pieces: memory stays flat on large files
# base64 or base64url (the spec's grammar allows both alphabets), optional padding.
# The spec splits on ASCII whitespace only: a no-break space is part of a token.
_ASCII_WHITESPACE = re.compile(r"[\t\n\f\r ]+")
_TOKEN = re.compile(r"^(?P<alg>[A-Za-z0-9]+)-(?P<value>[A-Za-z0-9+/\-_]+={0,2})(?:\?.*)?$")


@dataclass(frozen=True, slots=True)
class Digest:
    """One parsed token: algorithm and raw digest bytes."""

    algorithm: str
    digest: bytes

    def __str__(self) -> str:
        return f"{self.algorithm}-{base64.b64encode(self.digest).decode('ascii')}"


def parse(metadata: str) -> tuple[Digest, ...]:
    """Parse SRI metadata into its tokens of known algorithms, in order.

    Raises :class:`IntegrityMetadataError` for a token that is not
    ``alg-base64`` or whose digest has the wrong length for its algorithm, and
    for metadata holding no token of a known algorithm.
    """
    if not isinstance(metadata, str):
        raise IntegrityMetadataError(
            f"integrity metadata must be a string, not {type(metadata).__name__}"
        )
    digests: list[Digest] = []
    tokens = [t for t in _ASCII_WHITESPACE.split(metadata) if t]
    for token in tokens:
        match = _TOKEN.match(token)
        if match is None:
            raise IntegrityMetadataError(
                f"integrity token {_short(token)} is not '<algorithm>-<base64 digest>'"
            )
        algorithm = match["alg"].lower()
        if algorithm not in _DIGEST_SIZE:
            continue  # the spec: unknown algorithms are ignored
        digest = _decode_base64(match["value"], token)
        if len(digest) != _DIGEST_SIZE[algorithm]:
            raise IntegrityMetadataError(
                f"integrity token {_short(token)}: a {algorithm} digest is "
                f"{_DIGEST_SIZE[algorithm]} bytes, this one is {len(digest)}"
            )
        digests.append(Digest(algorithm, digest))
    if not digests:
        known = ", ".join(ALGORITHMS)
        raise IntegrityMetadataError(
            f"integrity metadata {_short(metadata)} has no token of a known algorithm ({known})"
        )
    return tuple(digests)


def strongest(digests: Iterable[Digest]) -> tuple[Digest, ...]:
    """The tokens of the strongest algorithm among ``digests`` (SRI §3.3.4)."""
    items = tuple(digests)
    if not items:
        return ()
    best = max(ALGORITHMS.index(d.algorithm) for d in items)
    return tuple(d for d in items if ALGORITHMS.index(d.algorithm) == best)


class IntegrityHasher:
    """Feed bytes in pieces, get SRI metadata for all of them.

    >>> hasher = IntegrityHasher(("sha256", "sha384"))
    >>> hasher.update(b"body { }")
    >>> hasher.metadata().split()[0].startswith("sha256-")
    True
    """

    __slots__ = ("_hashes",)

    def __init__(self, algorithms: Iterable[str] | str = DEFAULT_ALGORITHMS) -> None:
        if isinstance(algorithms, str):  # compute(data, "sha384") means one algorithm
            algorithms = (algorithms,)
        names = tuple(dict.fromkeys(a.lower() for a in algorithms))
        if not names:
            raise ValueError("IntegrityHasher needs at least one algorithm")
        for name in names:
            if name not in _DIGEST_SIZE:
                raise ValueError(
                    f"unknown SRI algorithm {name!r}; choose from {', '.join(ALGORITHMS)}"
                )
        self._hashes = {name: hashlib.new(name) for name in names}

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for h in self._hashes.values():
            h.update(data)

    def digests(self) -> tuple[Digest, ...]:
        return tuple(Digest(name, h.digest()) for name, h in self._hashes.items())

    def metadata(self) -> str:
        return " ".join(str(d) for d in self.digests())


def compute(
    data: bytes | bytearray | memoryview, algorithms: Iterable[str] | str = DEFAULT_ALGORITHMS
) -> str:
    """SRI metadata for ``data``: one token per algorithm, in the order given."""
    hasher = IntegrityHasher(algorithms)
    hasher.update(data)
    return hasher.metadata()


def compute_stream(stream: IO[bytes], algorithms: Iterable[str] | str = DEFAULT_ALGORITHMS) -> str:
    """SRI metadata for everything left in a binary stream, read in 1 MiB pieces."""
    hasher = IntegrityHasher(algorithms)
    while chunk := stream.read(_CHUNK):
        hasher.update(chunk)
    return hasher.metadata()


def verify(data: bytes | bytearray | memoryview, metadata: str) -> bool:
    """True when ``data`` matches ``metadata`` by its strongest algorithm.

    Digests are compared in constant time.  Raises
    :class:`IntegrityMetadataError` when ``metadata`` is malformed.
    """
    expected = strongest(parse(metadata))
    algorithm = expected[0].algorithm
    actual = hashlib.new(algorithm, data).digest()
    return _matches_any(actual, expected)


def verify_or_raise(data: bytes | bytearray | memoryview, metadata: str) -> None:
    """Like :func:`verify`, but raise :class:`IntegrityMismatch` on a mismatch."""
    expected = strongest(parse(metadata))
    algorithm = expected[0].algorithm
    actual = Digest(algorithm, hashlib.new(algorithm, data).digest())
    if not _matches_any(actual.digest, expected):
        raise IntegrityMismatch(
            f"content has {actual}, expected {' or '.join(str(d) for d in expected)}",
            expected=metadata,
            actual=str(actual),
        )


def _matches_any(actual: bytes, expected: tuple[Digest, ...]) -> bool:
    # Check every candidate so the time taken does not depend on which matched.
    found = False
    for candidate in expected:
        found |= hmac.compare_digest(actual, candidate.digest)
    return found


def _decode_base64(value: str, token: str) -> bytes:
    standard = value.replace("-", "+").replace("_", "/")
    unpadded = standard.rstrip("=")
    try:
        digest = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IntegrityMetadataError(
            f"integrity token {_short(token)} does not hold valid base64"
        ) from exc
    # Browsers compare the base64 text itself: extra padding or stray low bits
    # make a value no browser would ever match, so refuse it here.
    canonical = base64.b64encode(digest).decode("ascii")
    if standard not in (canonical, canonical.rstrip("=")):
        raise IntegrityMetadataError(
            f"integrity token {_short(token)} is not canonical base64 (expected {canonical})"
        )
    return digest


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
