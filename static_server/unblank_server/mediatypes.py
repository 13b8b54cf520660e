"""Media types and compressibility of front-end files, by extension.

A table of our own rather than :mod:`mimetypes` alone, because the system's
``/etc/mime.types`` differs between machines and a build must give the same
manifest everywhere.
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Final

__all__ = ["content_type", "is_compressible"]

_UTF8: Final = "; charset=utf-8"

_TYPES: Final[dict[str, str]] = {
    # RFC 9239 made text/javascript the one JavaScript type.
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".wasm": "application/wasm",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".apng": "image/apng",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".br": "application/octet-stream",
}

# Text-like types that take a charset parameter (RFC 9110 §8.3.1).
_CHARSET_TYPES: Final = frozenset(
    {
        "application/json",
        "application/manifest+json",
        "application/xml",
        "image/svg+xml",
    }
)

# Types that shrink under brotli/gzip.  Everything else is either already
# compressed (png, jpeg, webp, woff2, zip, video, ...) or unknown, and
# compressing it would only spend CPU: the same split WhiteNoise and nginx's
# gzip_types make.
_COMPRESSIBLE: Final = frozenset(
    {
        "application/json",
        "application/manifest+json",
        "application/xml",
        "application/wasm",
        "application/vnd.ms-fontobject",
        "application/javascript",
        "image/svg+xml",
        "image/x-icon",
        "image/bmp",
        "font/ttf",
        "font/otf",
    }
)

_FALLBACK = mimetypes.MimeTypes()  # built-in table only: never reads /etc/mime.types


def _base_type(path: str) -> str:
    ext = posixpath.splitext(path)[1].lower()
    if ext in _TYPES:
        return _TYPES[ext]
    guessed, _ = _FALLBACK.guess_type("x" + ext, strict=False)
    return guessed or "application/octet-stream"


def content_type(path: str) -> str:
    """The ``Content-Type`` to serve ``path`` with, charset included for text.

    >>> content_type("app.3f2a9c1e5b.js")
    'text/javascript; charset=utf-8'
    >>> content_type("logo.png")
    'image/png'
    """
    base = _base_type(path)
    if base.startswith("text/") or base in _CHARSET_TYPES:
        return base + _UTF8
    return base


def is_compressible(path: str) -> bool:
    """Whether precompressing ``path`` with brotli/gzip is worth trying."""
    base = _base_type(path)
    return base.startswith("text/") or base in _COMPRESSIBLE or base.endswith(("+json", "+xml"))
