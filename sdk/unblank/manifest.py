"""The unblank manifest, version 1 (DESIGN.md): one model for writer and reader.

``unblank build`` writes manifests through :meth:`Manifest.dumps` and every
reader (the server, the SDK's cache, the shell helpers) loads them through
:meth:`Manifest.loads`, so the two can never disagree.  Parsing is strict: a
wrong type, a missing field, a path that could escape the served root or an
integrity string that is not SRI metadata raises :class:`ManifestError`
naming the field.  Keys this version does not know are ignored, so that a
backend running an older unblank keeps reading manifests of a newer build.

>>> manifest = Manifest.loads(
...     '{"version": 1, "generation": "g1", "created": "2026-11-25T12:00:00Z",'
...     ' "assets": {"app.js": {"path": "app.0123456789ab.js",'
...     ' "integrity": "sha384-' + "A" * 64 + '", "size": 10,'
...     ' "content_type": "text/javascript; charset=utf-8", "encodings": {}}}}'
... )
>>> manifest.asset("app.js").path
'app.0123456789ab.js'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from unblank import integrity
from unblank._exceptions import IntegrityMetadataError, ManifestError

__all__ = [
    "ENCODINGS",
    "MANIFEST_VERSION",
    "Asset",
    "Entry",
    "Manifest",
    "check_relative_path",
]

MANIFEST_VERSION: Final = 1
# Content codings a version-1 manifest may list, by their RFC 9110 names.
ENCODINGS: Final = ("br", "gzip")
# RFC 3339 §5.6 date-time: full-date "T" full-time, with "Z" or a numeric offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
# Generation ids name files (manifests/<generation>.json): keep them to a safe alphabet.
_GENERATION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,99}$")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def check_relative_path(value: object, field_name: str) -> str:
    """Return ``value`` if it is a safe relative POSIX path, else raise.

    Safe means: a non-empty string of ``/``-separated segments, none empty,
    ``.`` or ``..``, no backslash, NUL or other control character, no leading
    ``/`` and no drive letter -- a path that cannot leave the folder it is
    joined to on any platform.
    """
    if not isinstance(value, str) or not value:
        raise ManifestError(field_name, "must be a non-empty relative path string")
    if _has_control(value):
        raise ManifestError(field_name, f"{value!r} contains a control character")
    if "\\" in value:
        raise ManifestError(field_name, f"{value!r} contains a backslash; use '/'")
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise ManifestError(field_name, f"{value!r} is absolute; paths are relative to the root")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ManifestError(
                field_name, f"{value!r} has an empty, '.' or '..' segment and could escape the root"
            )
    return value


@dataclass(frozen=True, slots=True)
class Asset:
    """One published file: where it is, how to verify it, what variants exist.

    The constructor checks every field as strictly as :meth:`Manifest.loads`
    does, so a manifest built in Python can always be written and read back.
    """

    path: str
    integrity: str
    size: int
    content_type: str
    encodings: Mapping[str, int] = field(default_factory=lambda: _EMPTY, hash=False)

    def __post_init__(self) -> None:
        check_relative_path(self.path, "path")
        if not isinstance(self.integrity, str):
            raise ManifestError("integrity", "must be a string of SRI metadata")
        try:
            integrity.parse(self.integrity)
        except IntegrityMetadataError as exc:
            raise ManifestError("integrity", str(exc)) from exc
        _non_negative_int(self.size, "size")
        _check_header_value(self.content_type, "content_type")
        if not isinstance(self.encodings, Mapping):
            raise ManifestError("encodings", "must be an object of content coding sizes")
        for name, value in self.encodings.items():
            if name not in ENCODINGS:
                raise ManifestError(
                    "encodings",
                    f"unknown content coding {name!r}; version 1 knows {', '.join(ENCODINGS)}",
                )
            _non_negative_int(value, f"encodings.{name}")
        object.__setattr__(self, "encodings", MappingProxyType(dict(self.encodings)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "integrity": self.integrity,
            "size": self.size,
            "content_type": self.content_type,
            "encodings": {n: self.encodings[n] for n in ENCODINGS if n in self.encodings},
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> Asset:
        obj = _object(data, where)
        fields = {key: _require(obj, key, where) for key in _ASSET_REQUIRED}
        encodings = _object(obj.get("encodings", {}), f"{where}.encodings")
        with _prefixed(where):
            return cls(**fields, encodings=encodings)


_ASSET_REQUIRED: Final = ("path", "integrity", "size", "content_type")


@dataclass(frozen=True, slots=True)
class Entry:
    """A bundler entry point and every file the shell needs for it.

    ``file`` is the entry's script, ``css`` every stylesheet it needs (its own
    and those of the chunks it imports statically), ``imports`` the chunks to
    ``modulepreload`` and ``dynamic_imports`` the chunks it may load later.
    All are logical asset names, keys of :attr:`Manifest.assets`.
    """

    file: str
    css: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    dynamic_imports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_relative_path(self.file, "file")
        for name in ("css", "imports", "dynamic_imports"):
            items = getattr(self, name)
            if isinstance(items, str) or not isinstance(items, list | tuple):
                raise ManifestError(name, "must be a list of asset names")
            for i, item in enumerate(items):
                check_relative_path(item, f"{name}[{i}]")
            object.__setattr__(self, name, tuple(items))

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "css": list(self.css),
            "imports": list(self.imports),
            "dynamic_imports": list(self.dynamic_imports),
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> Entry:
        obj = _object(data, where)
        file = _require(obj, "file", where)
        lists = {name: obj.get(name, []) for name in ("css", "imports", "dynamic_imports")}
        for name, value in lists.items():
            if not isinstance(value, list):
                raise ManifestError(f"{where}.{name}", "must be a list of asset names")
        with _prefixed(where):
            return cls(file=file, **lists)

    def files(self) -> tuple[str, ...]:
        """Every asset this entry names, the entry script first."""
        return (self.file, *self.css, *self.imports, *self.dynamic_imports)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed, validated manifest; build one with :meth:`loads` or the constructor."""

    generation: str
    created: datetime
    assets: Mapping[str, Asset] = field(hash=False)
    entries: Mapping[str, Entry] = field(default_factory=lambda: _EMPTY, hash=False)
    version: int = MANIFEST_VERSION
    _by_path: Mapping[str, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != MANIFEST_VERSION:
            raise ManifestError(
                "version",
                f"{self.version!r} is not supported; this unblank reads version {MANIFEST_VERSION}",
            )
        if not isinstance(self.generation, str) or not _GENERATION.fullmatch(self.generation):
            raise ManifestError(
                "generation", f"{self.generation!r} must be 1-100 characters of [0-9A-Za-z._-]"
            )
        if not isinstance(self.created, datetime) or self.created.tzinfo is None:
            raise ManifestError("created", "must be a datetime with a timezone")
        _check_utc_range(self.created, "created")
        for name, asset in self.assets.items():
            if not isinstance(asset, Asset):
                raise ManifestError(f"assets[{name!r}]", "must be an Asset")
        for name, entry in self.entries.items():
            if not isinstance(name, str) or not name or _has_control(name):
                raise ManifestError(f"entries[{name!r}]", "must be named by a non-empty string")
            if not isinstance(entry, Entry):
                raise ManifestError(f"entries[{name!r}]", "must be an Entry")
        object.__setattr__(self, "assets", MappingProxyType(dict(self.assets)))
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))
        by_path: dict[str, str] = {}
        for name, asset in self.assets.items():
            check_relative_path(name, f"assets[{name!r}]")
            other = by_path.setdefault(asset.path, name)
            if other != name and self.assets[other].integrity != asset.integrity:
                raise ManifestError(
                    f"assets[{name!r}].path",
                    f"{asset.path!r} is also the path of {other!r} with different content",
                )
        object.__setattr__(self, "_by_path", MappingProxyType(by_path))
        for entry_name, entry in self.entries.items():
            for i, name in enumerate(entry.files()):
                if name not in self.assets:
                    raise ManifestError(
                        f"entries[{entry_name!r}]",
                        f"names {name!r} (item {i}), which is not in assets",
                    )

    # -- lookups -----------------------------------------------------------

    def asset(self, name: str) -> Asset:
        """The asset published for logical ``name``; ``KeyError`` if there is none."""
        return self.assets[name]

    def asset_by_path(self, path: str) -> Asset | None:
        """The asset whose published (fingerprinted) path is ``path``, if any."""
        name = self._by_path.get(path)
        return None if name is None else self.assets[name]

    def entry(self, name: str) -> Entry:
        """The bundler entry ``name`` (for example ``"src/main.jsx"``)."""
        return self.entries[name]

    def paths(self) -> frozenset[str]:
        """Every published path, without the compressed variants."""
        return frozenset(self._by_path)

    def files(self) -> frozenset[str]:
        """Every file this generation needs on disk, compressed variants included."""
        out: set[str] = set()
        for asset in self.assets.values():
            out.add(asset.path)
            out.update(variant_path(asset.path, coding) for coding in asset.encodings)
        return frozenset(out)

    # -- (de)serialisation -------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "generation": self.generation,
            "created": format_time(self.created),
            "assets": {name: self.assets[name].to_dict() for name in sorted(self.assets)},
        }
        if self.entries:
            data["entries"] = {name: self.entries[name].to_dict() for name in sorted(self.entries)}
        return data

    def dumps(self) -> bytes:
        """Deterministic JSON: sorted names, two-space indent, trailing newline."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=False)
        return (text + "\n").encode("utf-8")

    @classmethod
    def loads(cls, data: str | bytes) -> Manifest:
        """Parse and validate manifest JSON; raise :class:`ManifestError` naming the field."""
        try:
            # RFC 8259 §8.1: JSON exchanged between systems is UTF-8; decoding
            # first stops json.loads from guessing UTF-16 or UTF-32 from bytes.
            text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
            raw = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ManifestError("(document)", f"is not valid UTF-8 JSON: {exc}") from exc
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        obj = _object(data, "(document)")
        version = _require(obj, "version", "(document)")
        if type(version) is not int or version != MANIFEST_VERSION:
            raise ManifestError(
                "version",
                f"{version!r} is not supported; this unblank reads version {MANIFEST_VERSION}",
            )
        generation = _require(obj, "generation", "(document)")
        if not isinstance(generation, str) or not _GENERATION.fullmatch(generation):
            raise ManifestError(
                "generation", f"{generation!r} must be 1-100 characters of [0-9A-Za-z._-]"
            )
        created = parse_time(_require(obj, "created", "(document)"), "created")
        raw_assets = _object(_require(obj, "assets", "(document)"), "assets")
        assets = {
            check_relative_path(name, f"assets[{name!r}]"): Asset.from_dict(
                value, f"assets[{name!r}]"
            )
            for name, value in raw_assets.items()
        }
        raw_entries = _object(obj.get("entries", {}), "entries")
        entries = {
            name: Entry.from_dict(value, f"entries[{name!r}]")
            for name, value in raw_entries.items()
        }
        return cls(generation=generation, created=created, assets=assets, entries=entries)


def variant_path(path: str, coding: str) -> str:
    """Where the ``coding`` variant of ``path`` lives: ``app.js`` -> ``app.js.br``."""
    return path + {"br": ".br", "gzip": ".gz"}[coding]


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, microseconds only when present."""
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def parse_time(value: object, field_name: str) -> datetime:
    """Parse an RFC 3339 ``date-time`` (§5.6), refusing the rest of ISO 8601."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ManifestError(
            field_name, f"{value!r} is not an RFC 3339 time like 2026-11-25T12:00:00Z"
        )
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ManifestError(field_name, f"{value!r} is not a valid time: {exc}") from exc
    _check_utc_range(parsed, field_name)
    return parsed


def _check_utc_range(value: datetime, field_name: str) -> None:
    try:
        value.astimezone(UTC)
    except OverflowError as exc:
        raise ManifestError(field_name, f"{value!r} is out of range in UTC") from exc


# Control characters, and lone surrogates that no UTF-8 file name or header can hold.
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _check_header_value(value: object, field_name: str) -> None:
    if not isinstance(value, str) or not value.strip() or _has_control(value):
        raise ManifestError(field_name, "must be a non-empty media type without control characters")


@contextmanager
def _prefixed(where: str) -> Iterator[None]:
    """Re-raise a field error of a nested object with the object's place in front."""
    try:
        yield
    except ManifestError as exc:
        raise ManifestError(f"{where}.{exc.field}", exc.reason) from exc.__cause__


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(where, f"must be a JSON object, not {type(value).__name__}")
    return value


def _require(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        prefix = "" if where == "(document)" else f"{where}."
        raise ManifestError(f"{prefix}{key}", "is missing")
    return obj[key]


def _non_negative_int(value: object, where: str) -> int:
    if type(value) is not int or value < 0:
        raise ManifestError(where, f"{value!r} must be a non-negative integer")
    return value
