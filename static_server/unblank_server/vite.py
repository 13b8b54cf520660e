"""Read a bundler's manifest (Vite's ``.vite/manifest.json``) into unblank's entries.

Vite's manifest maps each source module to the chunk it became, with the
chunk's CSS, its static ``imports`` and its ``dynamicImports`` (both given
as *manifest keys*, not file names).  unblank flattens this into what an
HTML shell needs per entry (Vite's "backend integration" guide): the entry
script, every stylesheet it needs (those of the chunks it imports, recursively,
then its own: Vite's order), the chunks to ``modulepreload`` (its static imports,
recursively) and the chunks it may load later.  Every file Vite names keeps
its name: chunks import each other by it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unblank import ManifestError
from unblank.manifest import Entry, check_relative_path
from unblank_server.errors import BadInputError

__all__ = ["BundlerGraph", "read_bundler_manifest"]

# Where Vite writes its manifest: .vite/manifest.json since Vite 5, manifest.json before.
_LOCATIONS = (".vite/manifest.json", "manifest.json")


@dataclass(frozen=True, slots=True)
class BundlerGraph:
    """The files a bundler produced (they keep their names) and its entries."""

    source: str
    files: frozenset[str]
    entries: dict[str, Entry]


def read_bundler_manifest(src: Path) -> BundlerGraph | None:
    """Vite's manifest under ``src``, flattened; None when there is none."""
    for location in _LOCATIONS:
        path = src / location
        if not path.is_file():
            continue
        if not path.resolve().is_relative_to(src.resolve()):
            raise BadInputError(
                f"{location} is a symbolic link (or inside one) leading outside SRC; "
                "unblank never reads files from outside SRC"
            )
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            if location == "manifest.json":
                return None  # a web app manifest or other JSON, not Vite's
            raise BadInputError(f"{location}: not readable JSON ({exc})") from exc
        if location == "manifest.json" and not _looks_like_vite(data):
            return None
        try:
            return _flatten(location, data)
        except ManifestError as exc:
            raise BadInputError(f"{location}: {exc}") from exc
    return None


def _looks_like_vite(data: object) -> bool:
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(v, dict) and isinstance(v.get("file"), str) for v in data.values())
    )


def _chunk(data: dict[str, Any], key: str) -> dict[str, Any]:
    chunk = data.get(key)
    if not isinstance(chunk, dict):
        raise ManifestError(f"[{key!r}]", "is named by another chunk but missing or not an object")
    return chunk


def _strings(chunk: dict[str, Any], field: str, key: str) -> list[str]:
    value = chunk.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"[{key!r}].{field}", "must be a list of strings")
    return value


def _flatten(location: str, data: object) -> BundlerGraph:
    if not isinstance(data, dict):
        raise ManifestError("(document)", "must be a JSON object of chunks")
    files: set[str] = set()
    for key, chunk in data.items():
        if not isinstance(chunk, dict):
            raise ManifestError(f"[{key!r}]", "must be an object")
        files.add(check_relative_path(chunk.get("file"), f"[{key!r}].file"))
        for field in ("css", "assets"):
            for i, item in enumerate(_strings(chunk, field, key)):
                files.add(check_relative_path(item, f"[{key!r}].{field}[{i}]"))
    entries = {
        key: _entry(data, key) for key, chunk in data.items() if chunk.get("isEntry") is True
    }
    return BundlerGraph(source=location, files=frozenset(files), entries=entries)


def _entry(data: dict[str, Any], key: str) -> Entry:
    chunk = _chunk(data, key)
    imports: list[str] = []
    css: list[str] = []
    # Depth-first over static imports.  Stylesheets come out in post-order (an
    # imported chunk's CSS before the importer's own), the order Vite itself
    # links them in its HTML, so rules of equal specificity resolve the same.
    seen = {key}
    stack: list[tuple[str, int]] = [(key, 0)]
    while stack:
        name, child = stack.pop()
        children = _strings(_chunk(data, name), "imports", name)
        if child < len(children):
            stack.append((name, child + 1))
            nxt = children[child]
            if nxt not in seen:
                seen.add(nxt)
                imports.append(_chunk(data, nxt)["file"])
                stack.append((nxt, 0))
            continue
        css.extend(_strings(_chunk(data, name), "css", name))
    dynamic = [_chunk(data, name)["file"] for name in _strings(chunk, "dynamicImports", key)]
    return Entry(
        file=chunk["file"],
        css=tuple(dict.fromkeys(css)),
        imports=tuple(dict.fromkeys(imports)),
        dynamic_imports=tuple(dict.fromkeys(dynamic)),
    )
