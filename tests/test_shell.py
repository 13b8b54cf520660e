"""The shell's Jinja2 helpers: fingerprinted URLs, SRI, CORS and nonces in every tag."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

from unblank import Asset, Entry, Manifest, integrity
from unblank.shell import Shell
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings


def asset(path: str, content_type: str, data: bytes = b"x") -> Asset:
    return Asset(path, integrity.compute(data), len(data), content_type)


MANIFEST = Manifest(
    "20260101T000000000000Z-00000000",
    datetime(2026, 1, 1, tzinfo=UTC),
    {
        "src/main.js": asset("assets/main-Ab12.js", "text/javascript; charset=utf-8", b"m"),
        "src/vendor.js": asset("assets/vendor-Cd34.js", "text/javascript; charset=utf-8", b"v"),
        "src/Report.js": asset("assets/Report-Ef56.js", "text/javascript; charset=utf-8", b"r"),
        "src/main.css": asset("assets/main-Gh78.css", "text/css; charset=utf-8", b"c"),
        "logo.svg": asset("logo.0123456789ab.svg", "image/svg+xml; charset=utf-8", b"s"),
        "legacy.js": asset("legacy.0123456789ab.js", "text/javascript", b"l"),
    },
    {
        "index.html": Entry(
            file="src/main.js",
            css=("src/main.css",),
            imports=("src/vendor.js",),
            dynamic_imports=("src/Report.js",),
        )
    },
)


def attrs(tag: str) -> dict[str, str]:
    return dict(re.findall(r'([a-z-]+)="([^"]*)"', tag))


def test_asset_url_is_fingerprinted_under_the_base() -> None:
    shell = Shell(manifest=MANIFEST, base_url="https://cdn.example.com/static/")
    assert shell.asset_url("logo.svg") == "https://cdn.example.com/static/logo.0123456789ab.svg"


def test_missing_names_say_which_generation() -> None:
    shell = Shell(manifest=MANIFEST)
    with pytest.raises(KeyError, match="20260101T000000000000Z-00000000"):
        shell.asset_url("nope.js")
    with pytest.raises(KeyError, match=r"entries: index\.html"):
        shell.entry_tags("other.html")


def test_script_and_stylesheet_tags_carry_integrity_crossorigin_and_nonce() -> None:
    shell = Shell(manifest=MANIFEST)
    script = str(shell.asset_tag("src/main.js", nonce="n0nce"))
    assert script.startswith("<script ") and script.endswith("></script>")
    assert attrs(script) == {
        "type": "module",
        "src": "/static/assets/main-Ab12.js",
        "integrity": MANIFEST.assets["src/main.js"].integrity,
        "crossorigin": "anonymous",
        "nonce": "n0nce",
    }
    link = str(shell.asset_tag("src/main.css"))
    assert attrs(link)["rel"] == "stylesheet"
    assert attrs(link)["integrity"] == MANIFEST.assets["src/main.css"].integrity
    classic = str(shell.asset_tag("legacy.js", module=False))
    assert " defer " in classic and 'type="module"' not in classic


def test_other_media_types_need_asset_url() -> None:
    with pytest.raises(ValueError, match="use asset_url"):
        Shell(manifest=MANIFEST).asset_tag("logo.svg")


def test_entry_tags_in_browser_order() -> None:
    tags = str(Shell(manifest=MANIFEST).entry_tags("index.html", nonce="n")).split("\n")
    assert [attrs(t).get("rel") or attrs(t).get("type") for t in tags] == [
        "stylesheet",
        "modulepreload",
        "module",
    ]
    assert attrs(tags[1])["href"] == "/static/assets/vendor-Cd34.js"
    assert attrs(tags[1])["integrity"] == MANIFEST.assets["src/vendor.js"].integrity
    assert all(attrs(t)["nonce"] == "n" for t in tags)


def test_import_map_verifies_every_script_including_lazy_chunks() -> None:
    tag = str(Shell(manifest=MANIFEST).import_map(nonce="n"))
    match = re.fullmatch(r'<script type="importmap" nonce="n">(.*)</script>', tag)
    assert match is not None
    document = json.loads(match.group(1))
    assert document["imports"] == {}
    assert document["integrity"] == {
        "/static/" + a.path: a.integrity
        for a in MANIFEST.assets.values()
        if a.content_type.startswith("text/javascript")
    }
    assert "/static/assets/Report-Ef56.js" in document["integrity"]  # the lazy chunk


def test_hostile_values_are_escaped() -> None:
    shell = Shell(manifest=MANIFEST)
    tag = str(shell.asset_tag("src/main.js", nonce='"><script>alert(1)</script>'))
    assert "<script>alert" not in tag
    assert "&#34;&gt;&lt;script&gt;" in tag
    odd = Manifest(
        "g1",
        datetime(2026, 1, 1, tzinfo=UTC),
        {"x.js": asset("x</script><b>.0123456789ab.js", "text/javascript")},
    )
    importmap = str(Shell(manifest=odd).import_map())
    assert importmap.count("</script>") == 1 and "<b>" not in importmap


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="must end with '/'"):
        Shell(manifest=MANIFEST, base_url="/static")
    with pytest.raises(ValueError, match="crossorigin"):
        Shell(manifest=MANIFEST, crossorigin="yes")
    no_cors = str(Shell(manifest=MANIFEST, crossorigin=None).asset_tag("src/main.css"))
    assert "crossorigin" not in no_cors


def test_installed_in_jinja2_and_follows_new_generations(tmp_path: Path) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    src.mkdir()
    (src / "app.js").write_text("export const v = 1;\n", encoding="utf-8")
    (src / "app.css").write_text("body { color: red }\n", encoding="utf-8")
    fast = BuildOptions(compression=CompressionSettings(brotli_quality=1, gzip_level=1))
    build(src, dist, fast)

    def current() -> Manifest:
        return Manifest.loads((dist / "manifest.json").read_bytes())

    env = jinja2.Environment(autoescape=True)
    Shell(manifest=current).install(env)
    page = env.from_string(
        "{{ asset_tag('app.css') }}{{ asset_tag('app.js', nonce=nonce) }}"
        "<a href=\"{{ asset_url('app.js') }}\">"
    )
    first = page.render(nonce="abc")
    assert current().assets["app.js"].path in first
    assert 'nonce="abc"' in first and "&lt;" not in first
    (src / "app.js").write_text("export const v = 2;\n", encoding="utf-8")
    build(src, dist, fast)
    second = page.render(nonce="abc")
    assert current().assets["app.js"].path in second and second != first
