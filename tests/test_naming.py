"""Fingerprinted names: making them, recognising bundler hashes, content types."""

from __future__ import annotations

import pytest

from unblank_server.mediatypes import content_type, is_compressible
from unblank_server.naming import fingerprinted_name, looks_fingerprinted

DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("app.js", "app.0123456789ab.js"),
        ("css/site.min.css", "css/site.min.0123456789ab.css"),
        ("css/site.css.map", "css/site.css.0123456789ab.map"),
        ("LICENSE", "LICENSE.0123456789ab"),
        ("a b/ü.svg", "a b/ü.0123456789ab.svg"),
    ],
)
def test_fingerprinted_name_inserts_hash_before_extension(path: str, expected: str) -> None:
    assert fingerprinted_name(path, DIGEST) == expected


def test_fingerprinted_names_are_recognised_as_fingerprinted() -> None:
    for path in ("app.js", "css/site.min.css", "x.css.map", "font.woff2"):
        assert looks_fingerprinted(fingerprinted_name(path, DIGEST))


@pytest.mark.parametrize(
    "name",
    [
        "assets/index-Crg7malp.js",  # Vite / Rollup
        "assets/index-BARe8AKr.css",
        "assets/shared-ChJ_jdJJ.css",
        "index-BW9e1a_D.js",
        "main.3f2a9c1e5b.js",  # webpack [contenthash]
        "runtime.8a7c9d0e1f2a3b4c5d6e.js",
        "chunk-KSWLZ3QJ.js",  # esbuild
        "main.KSWLZ3QJ.js",
        "index-Crg7malp.css.map",
    ],
)
def test_bundler_hashes_are_recognised(name: str) -> None:
    assert looks_fingerprinted(name)


@pytest.mark.parametrize(
    "name",
    [
        "app.js",
        "Inter-SemiBold.woff2",
        "OpenSans-ExtraBold.ttf",
        "roboto-v30-latin-regular.woff2",
        "fa-solid-900.woff2",
        "jquery-3.7.1.min.js",
        "bootstrap.bundle.min.js",
        "vue.esm-browser.prod.js",
        "polyfills-es2015.js",
        "manifest.webmanifest",
        "assets/index-polyfill.js",
        "hire-a-helper.svg",  # Font Awesome icon names
        "face-sad-tear.svg",
        "d-and-d-beyond.svg",
        "pied-piper-pp.svg",
        "htmx-2-compat.js",  # review finds: words and numbers, not hashes
        "arrow-down-1-9.svg",
        "og-1200x630.png",
        "hero-1280x720.jpg",
        "logo-v2-final.svg",
        "sha-256-impl.js",
        "app.v2beta01.js",
        "index-BW9e-a_D.js",  # a Rollup hash with "-" is missed: harmless, renamed
        "README",
    ],
)
def test_plain_names_are_not_mistaken_for_hashes(name: str) -> None:
    assert not looks_fingerprinted(name)


@pytest.mark.parametrize(
    ("path", "expected", "compressible"),
    [
        ("a.js", "text/javascript; charset=utf-8", True),
        ("a.mjs", "text/javascript; charset=utf-8", True),
        ("a.css", "text/css; charset=utf-8", True),
        ("a.json", "application/json; charset=utf-8", True),
        ("a.map", "application/json; charset=utf-8", True),
        ("a.svg", "image/svg+xml; charset=utf-8", True),
        ("a.wasm", "application/wasm", True),
        ("a.ttf", "font/ttf", True),
        ("a.png", "image/png", False),
        ("a.jpg", "image/jpeg", False),
        ("a.webp", "image/webp", False),
        ("a.woff2", "font/woff2", False),
        ("a.zip", "application/zip", False),
        ("a.unknownext", "application/octet-stream", False),
    ],
)
def test_content_type_and_compressibility(path: str, expected: str, compressible: bool) -> None:
    assert content_type(path) == expected
    assert is_compressible(path) is compressible
