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
_DOT_TOKEN = re.compile(r"^[A-Za-z0-9]{8,64}$")
_ROLLUP_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8}$")  # Rollup/Vite: 8 chars of base64url
_CAMEL_WORD = re.compile(r"^[A-Za-z][a-z]*(?:[A-Z][a-z]*)*$")


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
    if "." not in head:
        return False
    stem, token = head.rsplit(".", 1)
    if not stem or not _DOT_TOKEN.match(token):
        return False
    return _has_digit_and_letter(token)


def _has_dash_hash(head: str) -> bool:
    if len(head) < 10 or head[-9] != "-":
        return False
    token = head[-8:]
    if not _ROLLUP_TOKEN.match(token):
        return False
    if _has_digit_and_letter(token):
        return True
    # No digit: a hash only with capitals in it ("a-helper" of hire-a-helper.svg is
    # words), and then only when it is not shaped like a word ("SemiBold"; the
    # hash "nthOpEjs" is lost too, but Vite's manifest names such files).
    if not any(c.isupper() for c in token) or token.isupper():
        return False
    return "_" in token or "-" in token or not _CAMEL_WORD.match(token)


def _has_digit_and_letter(token: str) -> bool:
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
