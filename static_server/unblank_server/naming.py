"""Fingerprinted names: making them, and recognising names that already are.

unblank names a file ``<stem>.<12 hex>.<ext>``: 48 bits of a SHA-256 digest,
more than the 10 hex characters the issue tracker asks for and the same
length class as webpack's ``[contenthash]``.  Bundler output already carries
hashes in its names (Vite/Rollup ``index-Crg7malp.js``, webpack
``main.3f2a9c1e.js``, esbuild ``chunk-KSWLZ3QJ.js``); such files keep their
names, because chunks import each other by name.

Recognition is deliberately conservative: a word that merely looks random
(``Inter-SemiBold.woff2``) must not be mistaken for a hash, since a file
wrongly taken as fingerprinted would be cached as immutable.  A hash missed
is harmless: the file just gets a fingerprint of ours too.
"""

from __future__ import annotations

import posixpath
import re
from typing import Final

__all__ = ["FINGERPRINT_LENGTH", "fingerprinted_name", "looks_fingerprinted"]

FINGERPRINT_LENGTH: Final = 12
_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,10}$")
_HEX = re.compile(r"[0-9a-f]+")
_BASE32 = re.compile(r"[A-Z2-7]+")
_ROLLUP_TOKEN = re.compile(r"[A-Za-z0-9_]{8}")  # Rollup/Vite: 8 chars of base64url
_CAMEL_WORD = re.compile(r"[A-Za-z][a-z]*(?:[A-Z][a-z]*)*")


def fingerprinted_name(path: str, digest_hex: str) -> str:
    """``css/site.css`` + digest -> ``css/site.<12 hex>.css`` (the folder is kept).

    >>> fingerprinted_name("img/logo.png", "0123456789abcdef")
    'img/logo.0123456789ab.png'
    >>> fingerprinted_name("LICENSE", "0123456789abcdef")
    'LICENSE.0123456789ab'
    """
    folder, base = posixpath.split(path)
    stem, ext = _split_extension(base)
    name = f"{stem}.{digest_hex[:FINGERPRINT_LENGTH]}{ext}"
    return posixpath.join(folder, name) if folder else name


def looks_fingerprinted(path: str) -> bool:
    """Whether the name of ``path`` already carries a content hash.

    >>> looks_fingerprinted("assets/index-BARe8AKr.js")
    True
    >>> looks_fingerprinted("main.3f2a9c1e5b.js"), looks_fingerprinted("Inter-SemiBold.woff2")
    (True, False)
    """
    base = posixpath.basename(path)
    parts = base.split(".")
    # The hash sits before the extension, or before two (``index-x1y2z3w4.css.map``).
    for n_ext in (1, 2):
        if len(parts) <= n_ext or not all(_EXTENSION.match(p) for p in parts[-n_ext:]):
            continue
        head = ".".join(parts[:-n_ext])
        if _has_dot_hash(head) or _has_dash_hash(head):
            return True
    return False


def _split_extension(base: str) -> tuple[str, str]:
    stem, ext = posixpath.splitext(base)
    if not stem or not _EXTENSION.match(ext[1:]):  # ".htaccess", "x.tar-gz?"...
        return base, ""
    return stem, ext


def _has_dot_hash(head: str) -> bool:
    # webpack/Parcel/unblank: ".<hex>"; esbuild with "." separators: ".<BASE32>".
    if "." not in head:
        return False
    stem, token = head.rsplit(".", 1)
    if not stem or not 8 <= len(token) <= 64:
        return False
    if _HEX.fullmatch(token) or _BASE32.fullmatch(token):
        return _has_digit_and_letter(token)
    return False


def _has_dash_hash(head: str) -> bool:
    # Rollup/Vite and esbuild: "-<8 characters>".  A token holding "-" is taken
    # for words ("htmx-2-compat", "logo-v2-final"); one without capitals too
    # ("og-1200x630"); so is a camel-case word ("SemiBold").
    if len(head) < 10 or head[-9] != "-":
        return False
    token = head[-8:]
    if not _ROLLUP_TOKEN.fullmatch(token):
        return False
    upper = any(c.isupper() for c in token)
    lower = any(c.islower() for c in token)
    digit = any(c.isdigit() for c in token)
    if upper and lower:
        return digit or "_" in token or not _CAMEL_WORD.fullmatch(token)
    # esbuild's base32 hashes: capitals and digits ("KSWLZ3QJ").
    return upper and digit and sum(c.isalpha() for c in token) >= 4


def _has_digit_and_letter(token: str) -> bool:
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
