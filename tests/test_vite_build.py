"""``unblank build`` on the output of a real Vite build (tests/fixtures/vite_app).

Vite names its chunks and assets by content hash and its chunks import each
other by those names, so unblank must publish them unchanged, fingerprint only
what Vite copied verbatim (``public/`` files, the HTML pages), and turn Vite's
``.vite/manifest.json`` into the manifest's ``entries``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import brotli
import pytest

from unblank import integrity
from unblank.manifest import Manifest, variant_path

pytestmark = [pytest.mark.npm, pytest.mark.slow]

VITE_APP = Path(__file__).resolve().parent / "fixtures" / "vite_app"
ViteManifest = dict[str, dict[str, Any]]
# Files Vite copies without a hash, by where they come from in the fixture app.
PUBLIC_FILES = ("favicon.svg", "robots.txt")
HTML_PAGES = ("index.html", "admin.html")
SOURCE_MAPPING_URL = re.compile(r"[#@] sourceMappingURL=(\S+)")
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".html": "text/html",
    ".txt": "text/plain",
    ".map": "application/json",
}


def load_vite_manifest(vite_dist: Path) -> ViteManifest:
    data: ViteManifest = json.loads((vite_dist / ".vite" / "manifest.json").read_bytes())
    return data


def files_of_vite(vite: ViteManifest) -> set[str]:
    """Every output file the Vite manifest names: chunks, their CSS and their assets."""
    names: set[str] = set()
    for chunk in vite.values():
        names.add(chunk["file"])
        names.update(chunk.get("css", ()))
        names.update(chunk.get("assets", ()))
    return names


def static_closure(vite: ViteManifest, key: str) -> list[str]:
    """Keys of the chunks ``key`` imports statically, transitively, dependencies first."""
    seen: list[str] = []

    def visit(name: str) -> None:
        for imported in vite[name].get("imports", ()):
            if imported not in seen:
                seen.append(imported)
                visit(imported)

    visit(key)
    return seen


def expected_entry(vite: ViteManifest, key: str) -> dict[str, list[str] | str]:
    """What DESIGN.md says the manifest's entry for Vite's ``key`` holds, read off Vite's graph."""
    chunks = static_closure(vite, key)
    css = [sheet for name in [*chunks, key] for sheet in vite[name].get("css", ())]
    return {
        "file": vite[key]["file"],
        "css": sorted(set(css)),
        "imports": sorted(vite[name]["file"] for name in chunks),
        "dynamic_imports": sorted(
            vite[name]["file"] for name in vite[key].get("dynamicImports", ())
        ),
    }


def walk_files(root: Path) -> Iterator[str]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path.relative_to(root).as_posix()


@pytest.fixture(scope="module")
def manifest(vite_unblank_dist: Path) -> Manifest:
    return Manifest.loads((vite_unblank_dist / "manifest.json").read_bytes())


@pytest.fixture(scope="module")
def vite(vite_dist: Path) -> ViteManifest:
    return load_vite_manifest(vite_dist)


def test_fixture_app_vite_graph_has_what_the_tests_need(vite: ViteManifest) -> None:
    # Guards the fixture itself: a Vite upgrade that stops splitting it this way
    # would silently make the tests below weaker.
    entries = [key for key, chunk in vite.items() if chunk.get("isEntry")]
    assert sorted(entries) == ["admin.html", "index.html"]
    main = vite["index.html"]
    assert main.get("css")
    assert main.get("assets")
    assert main.get("dynamicImports")
    shared = static_closure(vite, "index.html")
    assert any(vite[name].get("css") for name in shared)
    report = vite[main["dynamicImports"][0]]
    assert report.get("isDynamicEntry")
    assert report.get("css")


def test_fixture_app_has_source_maps(vite: ViteManifest, vite_dist: Path) -> None:
    assert all(
        (vite_dist / f"{chunk['file']}.map").is_file()
        for chunk in vite.values()
        if chunk["file"].endswith(".js")
    )


def test_build_vite_summary_reports_a_published_generation(
    vite_unblank_summary: dict[str, Any], vite_unblank_dist: Path, manifest: Manifest
) -> None:
    assert vite_unblank_summary["published"] is True
    assert vite_unblank_summary["generation"] == manifest.generation
    kept = (vite_unblank_dist / "manifests" / f"{manifest.generation}.json").read_bytes()
    assert Manifest.loads(kept).generation == manifest.generation


def test_build_vite_chunks_and_assets_keep_their_names_and_bytes(
    vite: ViteManifest, vite_dist: Path, vite_unblank_dist: Path, manifest: Manifest
) -> None:
    names = files_of_vite(vite)
    assert names
    for name in sorted(names):
        assert name in manifest.assets, f"Vite's {name} is not in the manifest"
        assert manifest.assets[name].path == name, f"Vite's {name} was renamed"
        published = (vite_unblank_dist / name).read_bytes()
        assert published == (vite_dist / name).read_bytes(), f"{name} differs from Vite's output"


@pytest.mark.parametrize("name", PUBLIC_FILES + HTML_PAGES)
def test_build_vite_unhashed_files_are_fingerprinted(
    name: str, vite_dist: Path, vite_unblank_dist: Path, manifest: Manifest
) -> None:
    path = manifest.assets[name].path
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    assert re.fullmatch(rf"{re.escape(stem)}\.[0-9A-Za-z_-]{{8,}}{re.escape(suffix)}", path), path
    assert not (vite_unblank_dist / name).exists(), f"{name} was also published unhashed"
    if name in PUBLIC_FILES:
        assert (vite_unblank_dist / path).read_bytes() == (VITE_APP / "public" / name).read_bytes()


def test_build_vite_publishes_every_output_file_and_nothing_of_dot_vite(
    vite_dist: Path, vite_unblank_dist: Path, manifest: Manifest
) -> None:
    outputs = {name for name in walk_files(vite_dist) if not name.startswith(".vite/")}
    assert set(manifest.assets) == outputs
    assert not (vite_unblank_dist / ".vite").exists()
    published = {
        name
        for name in walk_files(vite_unblank_dist)
        if name != "manifest.json" and not name.startswith(("manifests/", ".unblank/"))
    }
    assert published == set(manifest.files())


# Known bug, found by this test: unblank recognises Vite's hash in a .map name by its look
# (naming.looks_fingerprinted), and a hash that reads like a CamelCase word ("CjLaJpIa", the
# fixture's shared chunk) is taken for a word: the map is renamed while the chunk, which names
# it in its sourceMappingURL comment, keeps its name and bytes. Remove the mark once fixed.


def test_build_vite_source_maps_keep_their_chunk_names(
    vite: ViteManifest, vite_dist: Path, manifest: Manifest
) -> None:
    maps = sorted(
        f"{name}.map" for name in files_of_vite(vite) if (vite_dist / f"{name}.map").is_file()
    )
    assert maps
    renamed = {
        name: manifest.assets[name].path for name in maps if manifest.assets[name].path != name
    }
    assert renamed == {}


def test_build_vite_source_map_comments_resolve(
    vite_unblank_dist: Path, manifest: Manifest
) -> None:
    dangling: dict[str, str] = {}
    for asset in manifest.assets.values():
        if not asset.path.endswith((".js", ".css")):
            continue
        text = (vite_unblank_dist / asset.path).read_text(encoding="utf-8")
        for url in SOURCE_MAPPING_URL.findall(text):
            target = PurePosixPath(asset.path).parent / url
            if not (vite_unblank_dist / target).is_file():
                dangling[asset.path] = url
    assert dangling == {}


def test_build_vite_entries_match_vite_graph(vite: ViteManifest, manifest: Manifest) -> None:
    vite_entries = {key for key, chunk in vite.items() if chunk.get("isEntry")}
    assert vite_entries <= set(manifest.entries), "an entry point of Vite is missing"
    for key, entry in manifest.entries.items():
        assert key in vite, f"entry {key!r} is not in Vite's manifest"
        actual = {
            "file": entry.file,
            "css": sorted(entry.css),
            "imports": sorted(entry.imports),
            "dynamic_imports": sorted(entry.dynamic_imports),
        }
        assert actual == expected_entry(vite, key), key
        assert len(set(entry.css)) == len(entry.css), f"{key}: a stylesheet is listed twice"
        for name in entry.files():
            assert name in manifest.assets, f"{key} names {name}, which is not an asset"


def test_build_vite_integrity_and_sizes_match_bytes_on_disk(
    vite_unblank_dist: Path, manifest: Manifest
) -> None:
    for name, asset in manifest.assets.items():
        data = (vite_unblank_dist / asset.path).read_bytes()
        assert asset.size == len(data), name
        assert asset.integrity == integrity.compute(data, ["sha384"]), name
        assert integrity.verify(data, asset.integrity), name
        assert not integrity.verify(data + b"\n", asset.integrity), name
        expected_type = MEDIA_TYPES[PurePosixPath(name).suffix]
        assert asset.content_type.split(";")[0].strip() == expected_type, name


def test_build_vite_compressed_variants_decode_to_the_exact_bytes(
    vite_unblank_dist: Path, manifest: Manifest
) -> None:
    decoders = {"br": brotli.decompress, "gzip": gzip.decompress}
    compressed = 0
    for name, asset in manifest.assets.items():
        identity = (vite_unblank_dist / asset.path).read_bytes()
        for coding, size in asset.encodings.items():
            variant = (vite_unblank_dist / variant_path(asset.path, coding)).read_bytes()
            assert len(variant) == size, f"{name} {coding}"
            assert size < len(identity), f"{name}: {coding} variant is not smaller"
            assert decoders[coding](variant) == identity, f"{name} {coding}"
            compressed += 1
    # React alone is ~200 kB of JavaScript: the shared chunk must have both variants.
    shared = max(manifest.assets.values(), key=lambda asset: asset.size)
    assert set(shared.encodings) == {"br", "gzip"}
    assert compressed >= 2
