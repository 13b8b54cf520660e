"""Precompressed variants: brotli and gzip, streamed, kept only when smaller.

Both compressors release the GIL while they work, so the builder runs these
functions on a thread pool, one file per thread, and every core is busy.
Output is deterministic: gzip gets no file name and a zero mtime.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import brotli

from unblank_server.fsutil import atomic_writer

__all__ = [
    "CompressionSettings",
    "compress_file",
    "decoded_sha256",
    "worth_keeping",
]

_Write = Callable[[bytes], object]
_CHUNK: Final = 1 << 20
# Files up to this size are compressed in one call: brotli then knows the input
# size and picks its window to fit, which gives smaller output for small files.
# Larger files are streamed, so memory stays bounded whatever the file size.
_ONE_SHOT_LIMIT: Final = 8 << 20
# A variant must save at least 5% and 64 bytes to be worth a request's
# negotiation and a file on disk (WhiteNoise keeps variants under 95% too).
_MIN_RATIO: Final = 0.95
_MIN_SAVING: Final = 64


@dataclass(frozen=True, slots=True)
class CompressionSettings:
    """How variants are made; part of the reuse key, so a change recompresses."""

    brotli_quality: int = 11
    gzip_level: int = 9

    def __post_init__(self) -> None:
        if not 0 <= self.brotli_quality <= 11:
            raise ValueError(f"brotli quality must be 0-11, not {self.brotli_quality}")
        if not 1 <= self.gzip_level <= 9:
            raise ValueError(f"gzip level must be 1-9, not {self.gzip_level}")

    @property
    def key(self) -> str:
        return f"br{self.brotli_quality}-gz{self.gzip_level}"


def worth_keeping(original: int, compressed: int) -> bool:
    return compressed <= original * _MIN_RATIO and original - compressed >= _MIN_SAVING


def _chunks(source: Path) -> Iterator[bytes]:
    with open(source, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def compress_file(source: Path, target: Path, coding: str, settings: CompressionSettings) -> int:
    """Write the ``coding`` variant of ``source`` to ``target``; return its size.

    The variant is written atomically whatever its size; the caller decides
    with :func:`worth_keeping` whether to keep it.
    """
    size = source.stat().st_size
    with atomic_writer(target) as out:
        if coding == "br":
            _brotli(source, out.write, size, settings.brotli_quality)
        elif coding == "gzip":
            _gzip(source, out.write, settings.gzip_level)
        else:
            raise ValueError(f"unknown content coding {coding!r}")
        return out.tell()


def _brotli(source: Path, write: _Write, size: int, quality: int) -> None:
    if size <= _ONE_SHOT_LIMIT:
        write(brotli.compress(source.read_bytes(), quality=quality))
        return
    compressor = brotli.Compressor(quality=quality)
    for chunk in _chunks(source):
        write(compressor.process(chunk))
    write(compressor.finish())


def _gzip(source: Path, write: _Write, level: int) -> None:
    # GzipFile with mtime=0 and no name: byte-identical output on every build.
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=_Sink(write), compresslevel=level, mtime=0
    ) as gz:
        for chunk in _chunks(source):
            gz.write(chunk)


def decoded_sha256(variant: Path, coding: str) -> str | None:
    """SHA-256 of what ``variant`` decodes to, or None if it does not decode."""
    digest = hashlib.sha256()
    try:
        if coding == "br":
            decompressor = brotli.Decompressor()
            for chunk in _chunks(variant):
                digest.update(decompressor.process(chunk))
            if not decompressor.is_finished():
                return None
        else:
            inflater = zlib.decompressobj(wbits=31)
            for chunk in _chunks(variant):
                digest.update(inflater.decompress(chunk))
            if not inflater.eof or inflater.unused_data:
                return None
    except (OSError, brotli.error, zlib.error):
        return None
    return digest.hexdigest()


class _Sink:
    """The smallest file object GzipFile needs: just ``write``."""

    def __init__(self, write: _Write) -> None:
        self.write = write

    def flush(self) -> None:
        pass
