"""Planning a build: which name each file gets, and what its content becomes.

A file's fingerprint hashes its final bytes, and those bytes name the files
it references, so files are named in dependency order (Tarjan's strongly
connected components, targets first).  Files that reference each other in a
cycle cannot each hash the other's final name; such a group is hashed as a
whole and each member's name derived from the group hash and its own name.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote

from unblank.integrity import IntegrityHasher
from unblank_server.errors import BadInputError
from unblank_server.generations import CURRENT, HISTORY, INTERNAL
from unblank_server.naming import fingerprinted_name
from unblank_server.references import Reference
from unblank_server.sources import SourceFile

__all__ = [
    "Hashes",
    "PlannedFile",
    "check_outputs",
    "name_group",
    "naming_order",
    "output_size",
    "resolve_target",
]

_VARIANT_SUFFIXES: Final = (".br", ".gz")
_CHUNK: Final = 1 << 20


@dataclass(slots=True)
class PlannedFile:
    """A source file on its way to DIST."""

    source: SourceFile
    keep_name: bool
    kind: str | None  # "css" / "js" when its references are rewritten
    sha256: str = ""
    integrity: str = ""
    text: str | None = None
    references: list[tuple[Reference, str]] = field(default_factory=list)
    data: bytes | None = None  # the rewritten content, when it differs from the source
    path: str = ""
    # A file too large to hold whose references (byte offsets) are rewritten while
    # it is streamed: ``patches`` replace source byte ranges.
    streamed: bool = False
    patches: list[tuple[int, int, bytes]] = field(default_factory=list)
    patched_size: int = 0


def resolve_target(referrer: str, value: str) -> str | None:
    """The logical name ``value`` points to from ``referrer``, or None if outside SRC."""
    path = value.split("#", 1)[0].split("?", 1)[0]
    path = unquote(path)
    if not path or path.endswith("/"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(referrer), path))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        return None
    return joined


def naming_order(files: dict[str, PlannedFile]) -> Iterator[list[PlannedFile]]:
    """Groups of files to name, each after every group it references (Tarjan's SCCs)."""
    graph = {
        name: sorted({t for _, t in item.references if not files[t].keep_name})
        for name, item in files.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if child < len(graph[node]):
                work.append((node, child + 1))
                nxt = graph[node][child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(files[member])
                    if member == node:
                        break
                yield sorted(group, key=lambda f: f.source.name)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])


def name_group(
    group: list[PlannedFile], files: dict[str, PlannedFile], sri: tuple[str, ...]
) -> None:
    """Give every file of a group its final name and content."""
    members = {f.source.name for f in group}
    cyclic = len(group) > 1 or any(t in members for _, t in group[0].references)
    if not cyclic:
        item = group[0]
        _rewrite(item, files, sri)
        item.path = (
            item.source.name
            if item.keep_name
            else fingerprinted_name(item.source.name, item.sha256)
        )
        return
    # Files that reference each other cannot each hash the other's final name:
    # hash the group as a whole (with references out of the group resolved),
    # and derive each member's name from that group hash and its own name.
    group_hash = hashlib.sha256()
    for item in group:
        # A file held in memory contributes its text; a streamed one its digest.
        outside = _rewritten_text(item, files, skip=members) if item.text else item.sha256
        group_hash.update(
            item.source.name.encode() + b"\0" + outside.encode("utf-8", "surrogateescape") + b"\0"
        )
    for item in group:
        member_hash = hashlib.sha256(group_hash.digest() + item.source.name.encode()).hexdigest()
        item.path = fingerprinted_name(item.source.name, member_hash)
    # Pages last: their integrity attributes carry the digests of the members
    # they load, which are final only once those members are rewritten.
    for item in sorted(
        group, key=lambda f: any(r.integrity_for is not None for r, _ in f.references)
    ):
        _rewrite(item, files, sri)


def _rewrite(item: PlannedFile, files: dict[str, PlannedFile], sri: tuple[str, ...]) -> None:
    """Replace references to renamed files; recompute digests when content changed."""
    if item.streamed:
        _plan_patches(item, files, sri)
        return
    if item.text is None or not any(not files[t].keep_name for _, t in item.references):
        item.text = None  # not needed any more: the source file is copied as it is
        return
    data = _rewritten_text(item, files, skip=frozenset()).encode("utf-8", "surrogateescape")
    item.text = None
    hasher = Hashes(sri)
    hasher.update(data)
    item.data = data
    item.sha256, item.integrity = hasher.sha256.hexdigest(), hasher.sri.metadata()


def _rewritten_text(
    item: PlannedFile, files: dict[str, PlannedFile], *, skip: Iterable[str]
) -> str:
    text = item.text or ""
    skipped = set(skip)
    out: list[str] = []
    pos = 0
    for ref, target in item.references:
        dest = files[target]
        if dest.keep_name or target in skipped:
            continue
        out.append(text[pos : ref.start])
        if ref.integrity_for is not None:
            # The digest of the bytes now published; quoted if the value was not
            # and now holds several tokens.
            quoted = ref.start > 0 and text[ref.start - 1] in "\"'"
            value = dest.integrity
            out.append(value if quoted or " " not in value else f'"{value}"')
        else:
            out.append(_renamed_reference(ref.value, dest.path))
        pos = ref.end
    out.append(text[pos:])
    return "".join(out)


def _renamed_reference(written: str, new_path: str) -> str:
    """Swap the file name in a reference as written, keeping its folder, query and fragment."""
    cut = len(written)
    for mark in ("?", "#"):
        found = written.find(mark)
        if found != -1:
            cut = min(cut, found)
    path, suffix = written[:cut], written[cut:]
    folder, _, _ = path.rpartition("/")
    new_base = posixpath.basename(new_path)
    encoded = (
        new_base if unquote(path.rpartition("/")[2]) == path.rpartition("/")[2] else quote(new_base)
    )
    return (f"{folder}/" if "/" in path else "") + encoded + suffix


def _plan_patches(item: PlannedFile, files: dict[str, PlannedFile], sri: tuple[str, ...]) -> None:
    """The byte-range replacements for a streamed file, and its final digests."""
    item.patches = [
        (ref.start, ref.end, _renamed_reference(ref.value, files[t].path).encode("utf-8"))
        for ref, t in item.references
        if not files[t].keep_name
    ]
    if not item.patches:
        return
    hasher = Hashes(sri)
    size = 0
    for piece in patched_chunks(item.source.path, item.patches):
        hasher.update(piece)
        size += len(piece)
    item.sha256, item.integrity = hasher.sha256.hexdigest(), hasher.sri.metadata()
    item.patched_size = size


def patched_chunks(path: Path, patches: list[tuple[int, int, bytes]]) -> Iterator[bytes]:
    """The bytes of ``path`` in pieces, with ``(start, end, new)`` ranges replaced."""
    with open(path, "rb") as handle:
        pos = 0
        for start, end, new in sorted(patches):
            while pos < start:
                piece = handle.read(min(_CHUNK, start - pos))
                if not piece:
                    return
                pos += len(piece)
                yield piece
            yield new
            handle.seek(end)
            pos = end
        while piece := handle.read(_CHUNK):
            yield piece


def check_outputs(files: dict[str, PlannedFile]) -> dict[str, PlannedFile]:
    """Map output paths to files; refuse clashes and paths DIST reserves."""
    by_path: dict[str, PlannedFile] = {}
    for item in files.values():
        path = item.path
        if path == CURRENT or path.startswith((f"{HISTORY}/", f"{INTERNAL}/")):
            raise BadInputError(
                f"{item.source.name!r} would be published as {path!r}, a name DIST reserves "
                f"for its manifests; rename it in SRC"
            )
        other = by_path.setdefault(path, item)
        if other is not item and other.sha256 != item.sha256:
            raise BadInputError(
                f"{item.source.name!r} and {other.source.name!r} would both be published as "
                f"{path!r} with different content"
            )
    for path, item in by_path.items():
        for suffix in _VARIANT_SUFFIXES:
            if path.endswith(suffix) and path.removesuffix(suffix) in by_path:
                raise BadInputError(
                    f"{item.source.name!r} would be published as {path!r}, the name of a "
                    "precompressed variant unblank makes; rename it in SRC"
                )
    return by_path


class Hashes:
    """SHA-256 for the file name and the SRI digests, in one pass over the bytes."""

    __slots__ = ("sha256", "sri")

    def __init__(self, sri: tuple[str, ...]) -> None:
        self.sha256 = hashlib.sha256()
        self.sri = IntegrityHasher(sri)

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.sri.update(data)


def output_size(item: PlannedFile) -> int:
    if item.data is not None:
        return len(item.data)
    return item.patched_size if item.patches else item.source.size
