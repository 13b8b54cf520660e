"""unblank.manifest: the version-1 manifest of DESIGN.md, strict on read.

Every rejected document must raise :class:`ManifestError` whose ``field``
names the culprit; unknown keys are ignored so an older reader keeps reading
a newer build's manifest; what :meth:`Manifest.dumps` writes,
:meth:`Manifest.loads` reads back equal.
"""

from __future__ import annotations

import copy
import dataclasses
import doctest
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from unblank import manifest as manifest_module
from unblank._exceptions import IntegrityMetadataError, ManifestError, UnblankError
from unblank.integrity import compute
from unblank.manifest import (
    Asset,
    Entry,
    Manifest,
    check_relative_path,
    format_time,
    variant_path,
)

Doc = dict[str, Any]

APP = "assets['app.js']"
MAIN = "entries['src/main.jsx']"
CREATED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def sri(content: str) -> str:
    return compute(content.encode(), ("sha384",))


def valid_doc() -> Doc:
    """A manifest with every field in use: encodings, a bundler entry, a shared folder."""
    return {
        "version": 1,
        "generation": "20261125T120000Z-3f2a",
        "created": "2026-11-25T12:00:00Z",
        "assets": {
            "app.js": {
                "path": "app.3f2a9c1e5b.js",
                "integrity": sri("app"),
                "size": 12345,
                "content_type": "text/javascript; charset=utf-8",
                "encodings": {"br": 3456, "gzip": 4567},
            },
            "assets/index-Crg7malp.js": {
                "path": "assets/index-Crg7malp.js",
                "integrity": sri("index"),
                "size": 800,
                "content_type": "text/javascript; charset=utf-8",
                "encodings": {"gzip": 400},
            },
            "assets/index-BARe8AKr.css": {
                "path": "assets/index-BARe8AKr.css",
                "integrity": sri("css"),
                "size": 300,
                "content_type": "text/css; charset=utf-8",
                "encodings": {},
            },
            "assets/Report-nthOpEjs.js": {
                "path": "assets/Report-nthOpEjs.js",
                "integrity": sri("report"),
                "size": 0,
                "content_type": "text/javascript; charset=utf-8",
            },
        },
        "entries": {
            "src/main.jsx": {
                "file": "assets/index-Crg7malp.js",
                "css": ["assets/index-BARe8AKr.css"],
                "imports": ["app.js"],
                "dynamic_imports": ["assets/Report-nthOpEjs.js"],
            }
        },
    }


def load(doc: object) -> Manifest:
    return Manifest.loads(json.dumps(doc))


def edited(edit: Callable[[Doc], object]) -> Doc:
    doc = valid_doc()
    edit(doc)
    return doc


def field_of(doc: object) -> str:
    with pytest.raises(ManifestError) as caught:
        load(doc)
    return caught.value.field


def _set(keys: tuple[str, ...], value: object) -> Callable[[Doc], object]:
    def edit(doc: Doc) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def _delete(*keys: str) -> Callable[[Doc], object]:
    def edit(doc: Doc) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return edit


# --------------------------------------------------------------------------- reading


def test_manifest_loads_reads_every_field() -> None:
    m = load(valid_doc())
    assert m.version == 1
    assert m.generation == "20261125T120000Z-3f2a"
    assert m.created == CREATED
    assert set(m.assets) == set(valid_doc()["assets"])
    app = m.asset("app.js")
    assert app == Asset(
        path="app.3f2a9c1e5b.js",
        integrity=sri("app"),
        size=12345,
        content_type="text/javascript; charset=utf-8",
        encodings={"br": 3456, "gzip": 4567},
    )
    assert m.asset("assets/Report-nthOpEjs.js").encodings == {}
    assert m.entry("src/main.jsx") == Entry(
        file="assets/index-Crg7malp.js",
        css=("assets/index-BARe8AKr.css",),
        imports=("app.js",),
        dynamic_imports=("assets/Report-nthOpEjs.js",),
    )


@pytest.mark.parametrize("encode", [str, str.encode], ids=["str", "bytes"])
def test_manifest_loads_accepts_str_and_bytes(encode: Callable[[str], str | bytes]) -> None:
    text = json.dumps(valid_doc())
    assert Manifest.loads(encode(text)) == load(valid_doc())


def test_manifest_entries_are_optional() -> None:
    m = load(edited(_delete("entries")))
    assert m.entries == {}


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-11-25T12:00:00Z", CREATED),
        ("2026-11-25T12:00:00+00:00", CREATED),
        ("2026-11-25T20:00:00+08:00", CREATED),
        ("2026-11-25T07:00:00-05:00", CREATED),
        ("2026-11-25T12:00:00.250Z", CREATED + timedelta(milliseconds=250)),
    ],
)
def test_manifest_created_reads_rfc3339_with_offset(created: str, expected: datetime) -> None:
    assert load(edited(_set(("created",), created))).created == expected


# --------------------------------------------------------------------------- round trip


def _without_entries(doc: Doc) -> None:
    del doc["entries"]


def _unicode_name(doc: Doc) -> None:
    doc["assets"]["图片/логотип.svg"] = {
        "path": "图片/логотип.0a1b2c.svg",
        "integrity": f"{sri('svg')} {compute(b'svg', ('sha512',))}",
        "size": 1,
        "content_type": "image/svg+xml",
    }


ROUND_TRIP_EDITS: dict[str, Callable[[Doc], object]] = {
    "full": lambda doc: None,
    "no entries": _without_entries,
    "microseconds": _set(("created",), "2026-11-25T12:00:00.123456Z"),
    "non-UTC offset": _set(("created",), "2026-11-25T20:00:00+08:00"),
    "unicode names and two algorithms": _unicode_name,
    "empty assets": lambda doc: doc.update(assets={}, entries={}),
}


@pytest.mark.parametrize("edit", ROUND_TRIP_EDITS.values(), ids=ROUND_TRIP_EDITS.keys())
def test_manifest_round_trip_is_equal(edit: Callable[[Doc], object]) -> None:
    m = load(edited(edit))
    again = Manifest.loads(m.dumps())
    assert again == m
    assert again.dumps() == m.dumps()


def test_manifest_round_trip_from_constructor() -> None:
    m = Manifest(
        generation="g1",
        created=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-3))),
        assets={
            "a.js": Asset(
                path="a.0123.js",
                integrity=sri("a"),
                size=5,
                content_type="text/javascript",
                encodings={"gzip": 4, "br": 3},
            ),
            "b.css": Asset(path="b.4567.css", integrity=sri("b"), size=0, content_type="text/css"),
        },
        entries={"main.js": Entry(file="a.js", css=("b.css",))},
    )
    assert Manifest.loads(m.dumps()) == m


def test_manifest_dumps_is_deterministic() -> None:
    doc = valid_doc()
    shuffled = copy.deepcopy(doc)
    shuffled["assets"] = dict(reversed(doc["assets"].items()))
    for asset in shuffled["assets"].values():
        if "encodings" in asset:
            asset["encodings"] = dict(reversed(asset["encodings"].items()))
    shuffled["entries"]["a/other.jsx"] = {"file": "app.js"}
    doc["entries"] = {"a/other.jsx": {"file": "app.js"}, **doc["entries"]}
    first, second = load(doc), load(shuffled)
    assert first.dumps() == second.dumps() == first.dumps()


def test_manifest_dumps_sorts_names_and_ends_with_newline() -> None:
    out = load(valid_doc()).dumps()
    assert out.endswith(b"}\n")
    data = json.loads(out)
    assert list(data) == ["version", "generation", "created", "assets", "entries"]
    assert list(data["assets"]) == sorted(valid_doc()["assets"])
    assert list(data["assets"]["app.js"]["encodings"]) == ["br", "gzip"]
    assert data["created"] == "2026-11-25T12:00:00Z"


def test_manifest_dumps_writes_utf8_unescaped() -> None:
    out = load(edited(_unicode_name)).dumps()
    assert "图片/логотип.svg".encode() in out
    assert b"\\u" not in out


def test_manifest_dumps_omits_empty_entries() -> None:
    assert "entries" not in json.loads(load(edited(_without_entries)).dumps())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (CREATED, "2026-11-25T12:00:00Z"),
        (CREATED.astimezone(timezone(timedelta(hours=8))), "2026-11-25T12:00:00Z"),
        (CREATED.replace(microsecond=5), "2026-11-25T12:00:00.000005Z"),
    ],
)
def test_format_time_writes_utc_with_z(value: datetime, text: str) -> None:
    assert format_time(value) == text


# --------------------------------------------------------------------------- version


@pytest.mark.parametrize("version", [2, 0, -1, "1", True, 1.0, None, [1]], ids=repr)
def test_manifest_rejects_unknown_version(version: object) -> None:
    assert field_of(edited(_set(("version",), version))) == "version"


# --------------------------------------------------------------------------- missing fields

MISSING: dict[str, tuple[tuple[str, ...], str]] = {
    "version": (("version",), "version"),
    "generation": (("generation",), "generation"),
    "created": (("created",), "created"),
    "assets": (("assets",), "assets"),
    "path": (("assets", "app.js", "path"), f"{APP}.path"),
    "integrity": (("assets", "app.js", "integrity"), f"{APP}.integrity"),
    "size": (("assets", "app.js", "size"), f"{APP}.size"),
    "content_type": (("assets", "app.js", "content_type"), f"{APP}.content_type"),
    "entry file": (("entries", "src/main.jsx", "file"), f"{MAIN}.file"),
}


@pytest.mark.parametrize(("keys", "field"), MISSING.values(), ids=MISSING.keys())
def test_manifest_rejects_missing_field(keys: tuple[str, ...], field: str) -> None:
    with pytest.raises(ManifestError, match="is missing") as caught:
        load(edited(_delete(*keys)))
    assert caught.value.field == field


# --------------------------------------------------------------------------- wrong values

WRONG: list[tuple[tuple[str, ...], object, str]] = [
    (("assets", "app.js", "size"), -1, f"{APP}.size"),
    (("assets", "app.js", "size"), True, f"{APP}.size"),
    (("assets", "app.js", "size"), False, f"{APP}.size"),
    (("assets", "app.js", "size"), 1.5, f"{APP}.size"),
    (("assets", "app.js", "size"), 1.0, f"{APP}.size"),
    (("assets", "app.js", "size"), "1", f"{APP}.size"),
    (("assets", "app.js", "size"), None, f"{APP}.size"),
    (("assets", "app.js", "encodings"), {"zstd": 1}, f"{APP}.encodings"),
    (("assets", "app.js", "encodings"), {"deflate": 1}, f"{APP}.encodings"),
    (("assets", "app.js", "encodings"), {"BR": 1}, f"{APP}.encodings"),
    (("assets", "app.js", "encodings"), {"br": -1}, f"{APP}.encodings.br"),
    (("assets", "app.js", "encodings"), {"gzip": True}, f"{APP}.encodings.gzip"),
    (("assets", "app.js", "encodings"), {"br": 1.0}, f"{APP}.encodings.br"),
    (("assets", "app.js", "encodings"), {"br": "1"}, f"{APP}.encodings.br"),
    (("assets", "app.js", "encodings"), ["br"], f"{APP}.encodings"),
    (("assets", "app.js", "encodings"), None, f"{APP}.encodings"),
    (("assets", "app.js", "content_type"), "", f"{APP}.content_type"),
    (("assets", "app.js", "content_type"), "   ", f"{APP}.content_type"),
    (("assets", "app.js", "content_type"), 5, f"{APP}.content_type"),
    (("assets", "app.js", "content_type"), None, f"{APP}.content_type"),
    (("assets", "app.js", "content_type"), "text/css\nX-Evil: 1", f"{APP}.content_type"),
    (("assets", "app.js", "integrity"), 384, f"{APP}.integrity"),
    (("assets", "app.js", "integrity"), None, f"{APP}.integrity"),
    (("assets", "app.js", "integrity"), [sri("app")], f"{APP}.integrity"),
    (("assets", "app.js"), "app.3f2a9c1e5b.js", APP),
    (("assets", "app.js"), None, APP),
    (("assets",), [], "assets"),
    (("assets",), "app.js", "assets"),
    (("assets",), None, "assets"),
    (("entries",), [], "entries"),
    (("entries",), None, "entries"),
    (("entries", "src/main.jsx"), "app.js", MAIN),
    (("entries", "src/main.jsx", "css"), "assets/index-BARe8AKr.css", f"{MAIN}.css"),
    (("entries", "src/main.jsx", "css"), None, f"{MAIN}.css"),
    (("entries", "src/main.jsx", "imports"), {"app.js": 1}, f"{MAIN}.imports"),
    (("entries", "src/main.jsx", "dynamic_imports"), [7], f"{MAIN}.dynamic_imports[0]"),
    (("entries", "src/main.jsx", "css"), ["app.js", None], f"{MAIN}.css[1]"),
    (("entries", "src/main.jsx", "file"), 1, f"{MAIN}.file"),
    (("generation",), "", "generation"),
    (("generation",), "-g1", "generation"),
    (("generation",), ".g1", "generation"),
    (("generation",), "g 1", "generation"),
    (("generation",), "a/b", "generation"),
    (("generation",), "../x", "generation"),
    (("generation",), "g\x00", "generation"),
    (("generation",), "g" * 101, "generation"),
    (("generation",), 1, "generation"),
    (("generation",), None, "generation"),
    (("created",), "2026-11-25T12:00:00", "created"),
    (("created",), "2026-11-25", "created"),
    (("created",), "yesterday", "created"),
    (("created",), "", "created"),
    (("created",), 1764072000, "created"),
    (("created",), None, "created"),
]


@pytest.mark.parametrize(
    ("keys", "value", "field"), WRONG, ids=[f"{'.'.join(k)}={v!r}" for k, v, _ in WRONG]
)
def test_manifest_rejects_wrong_value(keys: tuple[str, ...], value: object, field: str) -> None:
    assert field_of(edited(_set(keys, value))) == field


@pytest.mark.parametrize("generation", ["g", "1", "g" * 100, "2026-11-25T12.00.00Z_a-b.c"])
def test_manifest_accepts_generation_ids(generation: str) -> None:
    assert load(edited(_set(("generation",), generation))).generation == generation


@pytest.mark.parametrize("size", [0, 1, 2**53 + 1])
def test_manifest_accepts_non_negative_sizes(size: int) -> None:
    assert load(edited(_set(("assets", "app.js", "size"), size))).asset("app.js").size == size


# --------------------------------------------------------------------------- paths

ESCAPING_PATHS = [
    "../x",
    "..",
    ".",
    "a/..",
    "a/../../b",
    "/etc/passwd",
    "/",
    "a//b",
    "a/./b",
    "./a",
    "a/",
    "C:/x",
    "c:x",
    "C:\\x",
    "a\\b",
    "\\\\server\\share\\x",
    "x\x00y",
    "x\ny",
    "x\ty",
    "x\x7fy",
    "",
]
GOOD_PATHS = [
    "app.js",
    "assets/chunks/index-Crg7malp.js",
    "a/b/c.d.e",
    "..foo",
    "foo..",
    "...",
    ".well-known/x",
    "a b.js",
    "图片/логотип.svg",
    "ab:c",
]

# Where a path appears in the document, and the field named when it is bad.
PATH_PLACES: dict[str, tuple[Callable[[Doc, str], object], Callable[[str], str]]] = {
    "asset path": (
        lambda doc, p: doc["assets"]["app.js"].update(path=p),
        lambda p: f"{APP}.path",
    ),
    "asset name": (
        lambda doc, p: doc.update(assets={p: doc["assets"]["app.js"]}, entries={}),
        lambda p: f"assets[{p!r}]",
    ),
    "entry file": (
        lambda doc, p: doc["entries"]["src/main.jsx"].update(file=p),
        lambda p: f"{MAIN}.file",
    ),
    "entry css item": (
        lambda doc, p: doc["entries"]["src/main.jsx"].update(css=[p]),
        lambda p: f"{MAIN}.css[0]",
    ),
    "entry dynamic import item": (
        lambda doc, p: doc["entries"]["src/main.jsx"].update(dynamic_imports=["app.js", p]),
        lambda p: f"{MAIN}.dynamic_imports[1]",
    ),
}


@pytest.mark.parametrize("place", PATH_PLACES.values(), ids=PATH_PLACES.keys())
@pytest.mark.parametrize("path", ESCAPING_PATHS, ids=repr)
def test_manifest_rejects_path_that_escapes(
    place: tuple[Callable[[Doc, str], object], Callable[[str], str]], path: str
) -> None:
    put, field = place
    doc = valid_doc()
    put(doc, path)
    assert field_of(doc) == field(path)


@pytest.mark.parametrize("path", ESCAPING_PATHS, ids=repr)
def test_check_relative_path_rejects_escaping(path: str) -> None:
    with pytest.raises(ManifestError) as caught:
        check_relative_path(path, "the.field")
    assert caught.value.field == "the.field"


@pytest.mark.parametrize("value", [None, 1, b"app.js", ["app.js"]], ids=repr)
def test_check_relative_path_rejects_non_string(value: object) -> None:
    with pytest.raises(ManifestError, match="non-empty relative path string"):
        check_relative_path(value, "f")


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_check_relative_path_accepts_safe_path(path: str) -> None:
    assert check_relative_path(path, "f") == path


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_manifest_accepts_safe_asset_path(path: str) -> None:
    m = load(edited(lambda doc: doc["assets"]["app.js"].update(path=path)))
    assert m.asset("app.js").path == path


# --------------------------------------------------------------------------- integrity


@pytest.mark.parametrize(
    "value",
    [
        "sha384-!!!",
        "md5-abc",
        "md5-abc sha1-def",
        "",
        " ",
        "sha384-AAAA",
        "sha384-" + compute(b"x", ("sha256",)).removeprefix("sha256-"),
        f"{sri('app')} sha512-!!!",
    ],
    ids=repr,
)
def test_manifest_rejects_invalid_integrity(value: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load(edited(_set(("assets", "app.js", "integrity"), value)))
    assert caught.value.field == f"{APP}.integrity"
    assert isinstance(caught.value.__cause__, IntegrityMetadataError)


@pytest.mark.parametrize(
    "value",
    [
        f"md5-abc {sri('app')}",
        f"{sri('app')}?ct=text/javascript",
        compute(b"app", ("sha256", "sha384", "sha512")),
        sri("app").replace("+", "-").replace("/", "_"),
    ],
)
def test_manifest_keeps_valid_integrity_verbatim(value: str) -> None:
    m = load(edited(_set(("assets", "app.js", "integrity"), value)))
    assert m.asset("app.js").integrity == value


# --------------------------------------------------------------------------- consistency


@pytest.mark.parametrize("list_name", ["file", "css", "imports", "dynamic_imports"])
def test_manifest_rejects_entry_naming_unknown_asset(list_name: str) -> None:
    value: object = "missing.js" if list_name == "file" else ["missing.js"]
    with pytest.raises(ManifestError, match=r"missing\.js") as caught:
        load(edited(_set(("entries", "src/main.jsx", list_name), value)))
    assert caught.value.field == MAIN


def test_manifest_rejects_entry_naming_a_path_not_a_name() -> None:
    # Entries name logical assets; "app.3f2a9c1e5b.js" is only app.js's published path.
    doc = edited(_set(("entries", "src/main.jsx", "imports"), ["app.3f2a9c1e5b.js"]))
    assert field_of(doc) == MAIN


def test_manifest_rejects_shared_path_with_different_integrity() -> None:
    doc = valid_doc()
    doc["assets"]["copy.js"] = dict(doc["assets"]["app.js"], integrity=sri("other"))
    field = field_of(doc)
    assert field in (f"{APP}.path", "assets['copy.js'].path")


def test_manifest_allows_shared_path_with_same_content() -> None:
    doc = valid_doc()
    doc["assets"]["copy.js"] = dict(doc["assets"]["app.js"])
    m = load(doc)
    found = m.asset_by_path("app.3f2a9c1e5b.js")
    assert found in (m.asset("app.js"), m.asset("copy.js"))
    assert found is not None
    assert found.integrity == sri("app")


# --------------------------------------------------------------------------- forward compatibility

UNKNOWN_KEYS: dict[str, Callable[[Doc], object]] = {
    "document": lambda doc: doc.update(signature={"alg": "ed25519", "value": "..."}, x=[1]),
    "asset": lambda doc: doc["assets"]["app.js"].update(sourcemap="app.js.map", hints=None),
    "entry": lambda doc: doc["entries"]["src/main.jsx"].update(isEntry=True, src="src/main.jsx"),
    "everywhere": lambda doc: [
        doc.update(future=1),
        doc["assets"]["app.js"].update(future=2),
        doc["entries"]["src/main.jsx"].update(future=3),
    ],
}


@pytest.mark.parametrize("edit", UNKNOWN_KEYS.values(), ids=UNKNOWN_KEYS.keys())
def test_manifest_ignores_unknown_keys(edit: Callable[[Doc], object]) -> None:
    m = load(edited(edit))
    assert m == load(valid_doc())
    assert m.dumps() == load(valid_doc()).dumps()


# --------------------------------------------------------------------------- lookups


def test_manifest_asset_by_path_finds_published_paths_only() -> None:
    m = load(valid_doc())
    assert m.asset_by_path("app.3f2a9c1e5b.js") == m.asset("app.js")
    assert m.asset_by_path("assets/index-Crg7malp.js") == m.asset("assets/index-Crg7malp.js")
    for path in ["app.js", "app.3f2a9c1e5b.js.br", "app.3f2a9c1e5b.js.gz", "nope", ""]:
        assert m.asset_by_path(path) is None


def test_manifest_asset_and_entry_raise_key_error_for_unknown_name() -> None:
    m = load(valid_doc())
    with pytest.raises(KeyError):
        m.asset("nope.js")
    with pytest.raises(KeyError):
        m.entry("src/nope.jsx")


def test_entry_files_lists_the_script_first() -> None:
    entry = load(valid_doc()).entry("src/main.jsx")
    assert entry.files() == (
        "assets/index-Crg7malp.js",
        "assets/index-BARe8AKr.css",
        "app.js",
        "assets/Report-nthOpEjs.js",
    )


def test_manifest_paths_are_the_published_paths() -> None:
    assert load(valid_doc()).paths() == {
        "app.3f2a9c1e5b.js",
        "assets/index-Crg7malp.js",
        "assets/index-BARe8AKr.css",
        "assets/Report-nthOpEjs.js",
    }


def test_manifest_files_include_compressed_variants() -> None:
    m = load(valid_doc())
    expected = set(m.paths()) | {
        variant_path("app.3f2a9c1e5b.js", "br"),
        variant_path("app.3f2a9c1e5b.js", "gzip"),
        variant_path("assets/index-Crg7malp.js", "gzip"),
    }
    assert m.files() == expected
    assert "app.3f2a9c1e5b.js.br" in m.files()
    assert "app.3f2a9c1e5b.js.gz" in m.files()
    assert "assets/index-BARe8AKr.css.gz" not in m.files()


@pytest.mark.parametrize(
    ("coding", "expected"), [("br", "a/app.1.js.br"), ("gzip", "a/app.1.js.gz")]
)
def test_variant_path_appends_coding_suffix(coding: str, expected: str) -> None:
    assert variant_path("a/app.1.js", coding) == expected


# --------------------------------------------------------------------------- the document

NOT_A_MANIFEST: dict[str, str | bytes] = {
    "invalid UTF-8": b'{"version": 1, "generation": "\xff"}',
    "lone continuation byte": b"\x80",
    "UTF-16 without BOM, odd length": b"{\x00}",
    "not JSON": "version: 1",
    "empty": "",
    "truncated": json.dumps(valid_doc())[:-1],
    "trailing garbage": json.dumps(valid_doc()) + "x",
    "array": "[]",
    "array of document": json.dumps([valid_doc()]),
    "null": "null",
    "number": "1",
    "string": '"manifest"',
    "true": "true",
    "UTF-8 BOM in str": "\ufeff" + json.dumps(valid_doc()),
}


@pytest.mark.parametrize("data", NOT_A_MANIFEST.values(), ids=NOT_A_MANIFEST.keys())
def test_manifest_rejects_document_that_is_not_an_object(data: str | bytes) -> None:
    with pytest.raises(ManifestError) as caught:
        Manifest.loads(data)
    assert caught.value.field == "(document)"


def test_manifest_error_names_field_and_reason() -> None:
    with pytest.raises(ManifestError) as caught:
        load(edited(_set(("assets", "app.js", "size"), -1)))
    error = caught.value
    assert error.field == f"{APP}.size"
    assert str(error) == f"manifest field {APP}.size: {error.reason}"
    assert "-1" in error.reason
    assert isinstance(error, UnblankError)
    assert isinstance(error, ValueError)


# --------------------------------------------------------------------------- the constructor


def _asset(name: str) -> Asset:
    return Asset(path=f"{name}.0123.js", integrity=sri(name), size=1, content_type="text/plain")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"created": datetime(2026, 11, 25, 12, 0)}, "created"),  # naive on purpose
        ({"generation": "../g"}, "generation"),
        ({"generation": ""}, "generation"),
        ({"assets": {"../a.js": _asset("a")}}, "assets['../a.js']"),
        ({"entries": {"main": Entry(file="missing.js")}}, "entries['main']"),
        (
            {
                "assets": {
                    "a.js": _asset("a"),
                    "b.js": dataclasses.replace(_asset("b"), path=_asset("a").path),
                }
            },
            "assets['b.js'].path",
        ),
    ],
    ids=["naive created", "bad generation", "empty generation", "asset name", "entry", "shared"],
)
def test_manifest_constructor_validates(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {
        "generation": "g1",
        "created": CREATED,
        "assets": {"a.js": _asset("a")},
    }
    arguments.update(kwargs)
    with pytest.raises(ManifestError) as caught:
        Manifest(**arguments)
    assert caught.value.field == field


def test_manifest_is_immutable() -> None:
    m = load(valid_doc())
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.generation = "g2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.assets["new.js"] = _asset("new")  # type: ignore[index]
    with pytest.raises(TypeError):
        m.asset("app.js").encodings["br"] = 1  # type: ignore[index]


def test_manifest_copies_the_mappings_it_is_given() -> None:
    assets = {"a.js": _asset("a")}
    m = Manifest(generation="g1", created=CREATED, assets=assets)
    assets["b.js"] = _asset("b")
    assert set(m.assets) == {"a.js"}


# --------------------------------------------------------------------------- docs


def test_manifest_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(manifest_module, raise_on_error=False, verbose=False)
    assert tried > 0
    assert failures == 0


# --------------------------------------------------------------------------- edge cases
# Each was a bug found by this suite and fixed in the SDK.


@pytest.mark.parametrize("generation", ["g1\n", "2026-11-25.a\n"])
def test_manifest_rejects_generation_with_trailing_newline(generation: str) -> None:
    assert field_of(edited(_set(("generation",), generation))) == "generation"


def test_manifest_rejects_deeply_nested_document() -> None:
    with pytest.raises(ManifestError) as caught:
        Manifest.loads("[" * 100_000 + "]" * 100_000)
    assert caught.value.field == "(document)"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_manifest_rejects_json_not_in_utf8(encoding: str) -> None:
    with pytest.raises(ManifestError) as caught:
        Manifest.loads(json.dumps(valid_doc()).encode(encoding))
    assert caught.value.field == "(document)"


@pytest.mark.parametrize("content_type", ["text/css\rX-Evil: 1", "text/css\x00", "text/\x7fcss"])
def test_manifest_rejects_content_type_with_control_character(content_type: str) -> None:
    doc = edited(_set(("assets", "app.js", "content_type"), content_type))
    assert field_of(doc) == f"{APP}.content_type"


@pytest.mark.parametrize(
    "created",
    [
        "20261125T120000Z",
        "2026-W48-3T12:00:00+00:00",
        "2026-11-25T12Z",
        "2026-11-25T12:00Z",
        "2026-11-25T12:00:00+0000",
        "2026-11-25T12:00:00,5Z",
    ],
)
def test_manifest_rejects_created_that_is_not_rfc3339(created: str) -> None:
    assert field_of(edited(_set(("created",), created))) == "created"


@pytest.mark.parametrize(
    "edit",
    [
        _set(("created",), "0001-01-01T00:00:00+01:00"),
        lambda doc: doc["assets"].update({"\ud800.js": doc["assets"].pop("app.js")}),
        _set(("assets", "app.js", "path"), "app.\udc00.js"),
        _set(("assets", "app.js", "content_type"), "text/\ud800"),
    ],
    ids=["created before year 1 in UTC", "lone surrogate name", "in path", "in content_type"],
)
def test_manifest_loads_only_what_dumps_can_write(edit: Callable[[Doc], object]) -> None:
    doc = valid_doc()
    doc["entries"] = {}
    edit(doc)
    try:
        m = load(doc)
    except ManifestError:
        return
    assert Manifest.loads(m.dumps()) == m


@pytest.mark.parametrize(
    "change",
    [
        {"path": "../../etc/passwd"},
        {"integrity": "md5-abc"},
        {"size": -1},
        {"encodings": {"zstd": 1}},
    ],
    ids=["escaping path", "integrity", "size", "encodings"],
)
def test_asset_constructor_rejects_what_loads_rejects(change: dict[str, Any]) -> None:
    with pytest.raises(ManifestError):
        dataclasses.replace(_asset("a"), **change)


def test_manifest_constructor_rejects_unknown_version() -> None:
    with pytest.raises(ManifestError) as caught:
        Manifest(generation="g1", created=CREATED, assets={}, version=2)
    assert caught.value.field == "version"
