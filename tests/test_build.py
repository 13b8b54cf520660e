"""``unblank build``: names, rewriting, SRI, variants, reuse and determinism."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import random
import re
from pathlib import Path

import brotli
import pytest

from unblank import Manifest, integrity
from unblank.manifest import variant_path
from unblank_server.builder import BuildOptions, BuildResult, build
from unblank_server.compress import CompressionSettings
from unblank_server.errors import BadInputError, MissingReferenceError

FAST = BuildOptions(compression=CompressionSettings(brotli_quality=5, gzip_level=6))
TEXT = "body { color: #123456; margin: 0 auto; padding: 1rem 2rem; }\n" * 40


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return root


def run(src: Path, dist: Path, options: BuildOptions = FAST) -> tuple[BuildResult, Manifest]:
    result = build(src, dist, options)
    return result, Manifest.loads((dist / "manifest.json").read_bytes())


def published(dist: Path, manifest: Manifest, name: str) -> bytes:
    return (dist / manifest.asset(name).path).read_bytes()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "src",
        {
            "css/site.css": (
                '@import "theme.css";\n'
                "a { background: url(../img/a.png?v=2#top) }\n"
                "b { background: url('data:image/png;base64,AAAA') }\n"
                "c { background: url(https://cdn.example.com/x.png) }\n"
                "d { background: url(/abs/x.png) }\n"
                "e { filter: url(#shadow) }\n" + TEXT + "/*# sourceMappingURL=site.css.map */\n"
            ),
            "css/theme.css": ":root { --x: 1 }\n",
            "css/site.css.map": '{"version": 3}',
            "img/a.png": os.urandom(2000),
            "js/main.js": (
                'import { b } from "./b.js";\n'
                'export * from "./util/c.js";\n'
                'const lazy = () => import("./lazy.js");\n'
                'const logo = new URL("../img/a.png", import.meta.url);\n'
                'import pkg from "bare-package";\n'
                '// import "./commented-out.js"\n'
            ),
            "js/b.js": 'export const b = "b";\n',
            "js/util/c.js": "export const c = 1;\n",
            "js/lazy.js": "export default 1;\n",
            "assets/index-BARe8AKr.js": 'import "./chunk-Crg7malp.js"; // kept as is\n',
            "assets/chunk-Crg7malp.js": "console.log(1)\n",
        },
    )


def test_build_fingerprints_every_plain_file(src: Path, tmp_path: Path) -> None:
    result, manifest = run(src, tmp_path / "dist")
    assert result.published and result.files == 10
    for name, asset in manifest.assets.items():
        if name.startswith("assets/"):
            assert asset.path == name  # bundler output keeps its name
        else:
            stem, ext = posixpath.splitext(name)
            assert re.fullmatch(re.escape(stem) + r"\.[0-9a-f]{12}" + re.escape(ext), asset.path)
        assert (tmp_path / "dist" / asset.path).is_file()
    assert result.kept_names == 2 and result.fingerprinted == 8


def test_build_rewrites_css_references(src: Path, tmp_path: Path) -> None:
    _, manifest = run(src, tmp_path / "dist")
    css = published(tmp_path / "dist", manifest, "css/site.css").decode()
    png = posixpath.basename(manifest.asset("img/a.png").path)
    theme = manifest.asset("css/theme.css").path.split("/")[-1]
    smap = manifest.asset("css/site.css.map").path.split("/")[-1]
    assert f'@import "{theme}";' in css
    assert f"url(../img/{png}?v=2#top)" in css  # query and fragment kept
    assert f"/*# sourceMappingURL={smap} */" in css
    for untouched in ("data:image/png;base64,AAAA", "https://cdn.example.com/x.png", "/abs/x.png"):
        assert untouched in css
    assert "url(#shadow)" in css


def test_build_rewrites_js_module_specifiers(src: Path, tmp_path: Path) -> None:
    _, manifest = run(src, tmp_path / "dist")
    js = published(tmp_path / "dist", manifest, "js/main.js").decode()

    def base(name: str) -> str:
        return manifest.asset(name).path.rsplit("/", 1)[1]

    assert f'from "./{base("js/b.js")}"' in js
    assert f'from "./util/{base("js/util/c.js")}"' in js
    assert f'import("./{base("js/lazy.js")}")' in js
    assert f'new URL("../img/{base("img/a.png")}", import.meta.url)' in js
    assert '"bare-package"' in js and '"./commented-out.js"' in js


def test_build_leaves_bundler_files_byte_identical(src: Path, tmp_path: Path) -> None:
    _, manifest = run(src, tmp_path / "dist")
    for name in ("assets/index-BARe8AKr.js", "assets/chunk-Crg7malp.js"):
        assert published(tmp_path / "dist", manifest, name) == (src / name).read_bytes()


def test_build_integrity_matches_published_bytes(src: Path, tmp_path: Path) -> None:
    options = BuildOptions(sri=("sha256", "sha384", "sha512"), compression=FAST.compression)
    _, manifest = run(src, tmp_path / "dist", options)
    for asset in manifest.assets.values():
        data = (tmp_path / "dist" / asset.path).read_bytes()
        assert [t.split("-")[0] for t in asset.integrity.split()] == ["sha256", "sha384", "sha512"]
        assert integrity.verify(data, asset.integrity)
        assert asset.size == len(data)
        expected = hashlib.sha384(data).digest()
        assert integrity.parse(asset.integrity)[1].digest == expected


def test_build_variants_decode_to_the_asset(src: Path, tmp_path: Path) -> None:
    _, manifest = run(src, tmp_path / "dist")
    site = manifest.asset("css/site.css")
    assert set(site.encodings) == {"br", "gzip"}
    for asset in manifest.assets.values():
        data = (tmp_path / "dist" / asset.path).read_bytes()
        for coding, size in asset.encodings.items():
            variant = (tmp_path / "dist" / variant_path(asset.path, coding)).read_bytes()
            assert len(variant) == size < len(data)
            decoded = brotli.decompress(variant) if coding == "br" else gzip.decompress(variant)
            assert decoded == data
    # Already-compressed formats and tiny files get no variants.
    assert manifest.asset("img/a.png").encodings == {}
    assert manifest.asset("js/b.js").encodings == {}
    assert not list((tmp_path / "dist").rglob("*.png.br"))


def test_build_skips_variants_that_are_not_smaller(tmp_path: Path) -> None:
    rng = random.Random(7)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(5000))
    src = write_tree(tmp_path / "src", {"noise.txt": noise, "text.txt": TEXT})
    _, manifest = run(src, tmp_path / "dist")
    assert set(manifest.asset("text.txt").encodings) == {"br", "gzip"}
    # Random base-64 text compresses by about a quarter: kept.  Truly random bytes
    # in a .txt would not be; check the rule on a .svg made of random bytes.
    write_tree(src, {"random.svg": os.urandom(5000)})
    _, manifest = run(src, tmp_path / "dist")
    assert manifest.asset("random.svg").encodings == {}
    assert not (tmp_path / "dist" / (manifest.asset("random.svg").path + ".br")).exists()


def test_build_name_changes_cascade_to_referrers(src: Path, tmp_path: Path) -> None:
    _, first = run(src, tmp_path / "dist")
    (src / "img/a.png").write_bytes(os.urandom(2000))
    _, second = run(src, tmp_path / "dist")
    assert first.asset("img/a.png").path != second.asset("img/a.png").path
    assert first.asset("css/site.css").path != second.asset("css/site.css").path
    assert first.asset("js/main.js").path != second.asset("js/main.js").path
    assert first.asset("css/theme.css").path == second.asset("css/theme.css").path


def test_build_names_import_cycles(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {
            "a.js": 'import { b } from "./b.js"; export const a = 1;\n',
            "b.js": 'import { a } from "./a.js"; export const b = 2;\n',
            "self.js": 'export const s = () => import("./self.js");\n',
        },
    )
    _, first = run(src, tmp_path / "dist")
    a_path, b_path = first.asset("a.js").path, first.asset("b.js").path
    assert f'"./{b_path}"' in published(tmp_path / "dist", first, "a.js").decode()
    assert f'"./{a_path}"' in published(tmp_path / "dist", first, "b.js").decode()
    self_path = first.asset("self.js").path
    assert f'"./{self_path}"' in published(tmp_path / "dist", first, "self.js").decode()
    (src / "b.js").write_text('import { a } from "./a.js"; export const b = 3;\n')
    _, second = run(src, tmp_path / "dist")
    assert second.asset("a.js").path != a_path and second.asset("b.js").path != b_path


def test_build_keeps_percent_encoded_references(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {"a b.png": b"\x89PNG" + os.urandom(100), "s.css": "x{background:url(a%20b.png)}"},
    )
    _, manifest = run(src, tmp_path / "dist")
    css = published(tmp_path / "dist", manifest, "s.css").decode()
    new = manifest.asset("a b.png").path
    assert f"url({new.replace(' ', '%20')})" in css


def test_build_missing_reference_names_file_and_line(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"css/s.css": "a{}\n\nb{background:url(gone.png)}\n"})
    with pytest.raises(MissingReferenceError) as info:
        build(src, tmp_path / "dist", FAST)
    assert info.value.file == "css/s.css" and info.value.line == 3
    assert "css/s.css:3" in str(info.value) and "gone.png" in str(info.value)
    assert not (tmp_path / "dist" / "manifest.json").exists()


def test_build_reference_outside_src_is_missing(tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(b"x")
    src = write_tree(tmp_path / "src", {"s.css": "b{background:url(../secret.png)}"})
    with pytest.raises(MissingReferenceError):
        build(src, tmp_path / "dist", FAST)


def test_build_allow_missing_warns_and_keeps_reference(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"m.js": 'import "./gone.js";\n//# sourceMappingURL=m.map'})
    options = BuildOptions(allow_missing=True, compression=FAST.compression)
    result, manifest = run(src, tmp_path / "dist", options)
    assert len(result.warnings) == 2 and "m.js:1" in result.warnings[0]
    assert '"./gone.js"' in published(tmp_path / "dist", manifest, "m.js").decode()


def test_build_is_deterministic(src: Path, tmp_path: Path) -> None:
    _, one = run(src, tmp_path / "one")
    _, two = run(src, tmp_path / "two")
    assert one.assets == two.assets
    for name in one.files():
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_build_source_date_epoch_pins_created(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    _, manifest = run(src, tmp_path / "dist")
    assert manifest.created.timestamp() == 1700000000
    # Generation ids keep the real clock: retention counts days by them.
    assert not manifest.generation.startswith("2023")


def test_rebuild_reuses_files_and_variants(src: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _, first = run(src, dist)
    site_br = dist / variant_path(first.asset("css/site.css").path, "br")
    before = site_br.stat().st_mtime_ns
    (src / "js/lazy.js").write_text("export default 2;\n")
    result, _ = run(src, dist)
    assert result.published and result.previous_generation == first.generation
    assert result.reused == result.files - 2  # lazy.js and main.js, which names it
    assert site_br.stat().st_mtime_ns == before  # not compressed again


def test_rebuild_replaces_corrupted_files_and_variants(src: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _, manifest = run(src, dist)
    site = manifest.asset("css/site.css")
    (dist / site.path).write_bytes(b"corrupted")
    (dist / variant_path(site.path, "br")).write_bytes(b"not brotli")
    (dist / variant_path(site.path, "gzip")).write_bytes(gzip.compress(b"other content"))
    result, _ = run(src, dist)
    assert not result.published  # same input: same generation
    data = (dist / site.path).read_bytes()
    assert integrity.verify(data, site.integrity)
    assert brotli.decompress((dist / variant_path(site.path, "br")).read_bytes()) == data
    assert gzip.decompress((dist / variant_path(site.path, "gzip")).read_bytes()) == data


def test_rebuild_with_other_compression_settings_keeps_published_variants(
    src: Path, tmp_path: Path
) -> None:
    # A retained generation lists each variant's size: replacing the file would
    # make it lie.  New settings apply to new content only.
    dist = tmp_path / "dist"
    _, first = run(src, dist)
    path = dist / variant_path(first.asset("css/site.css").path, "br")
    before = path.read_bytes()
    stronger = BuildOptions(compression=CompressionSettings(brotli_quality=11))
    (src / "css/theme.css").write_text(TEXT + ":root { --y: 2 }\n")
    _, second = run(src, dist, stronger)
    assert path.read_bytes() == before
    theme = second.asset("css/theme.css")
    data = (dist / theme.path).read_bytes()
    assert brotli.decompress((dist / variant_path(theme.path, "br")).read_bytes()) == data
    assert theme.encodings["br"] == len(brotli.compress(data, quality=11))


def test_build_reads_hidden_rules(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {
            ".DS_Store": b"x",
            ".git/config": "x",
            ".well-known/security.txt": "Contact: mailto:security@example.com\n",
            "a.txt": "a",
        },
    )
    _, manifest = run(src, tmp_path / "dist")
    assert sorted(manifest.assets) == [".well-known/security.txt", "a.txt"]


def test_build_leaves_out_bundler_precompressed_siblings(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {
            "assets/index-BARe8AKr.js": TEXT,
            "assets/index-BARe8AKr.js.br": b"stale",
            "assets/index-BARe8AKr.js.gz": b"stale",
        },
    )
    result, manifest = run(src, tmp_path / "dist")
    assert list(manifest.assets) == ["assets/index-BARe8AKr.js"]
    assert "precompressed" in result.warnings[0]
    variant = tmp_path / "dist/assets/index-BARe8AKr.js.br"
    assert brotli.decompress(variant.read_bytes()) == TEXT.encode()


def test_build_identical_input_publishes_nothing(src: Path, tmp_path: Path) -> None:
    first, _ = run(src, tmp_path / "dist")
    second, _ = run(src, tmp_path / "dist")
    assert not second.published and second.generation == first.generation
    assert second.reused == second.files


# -- hostile input ----------------------------------------------------------------


def test_build_refuses_missing_src(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        build(tmp_path / "nope", tmp_path / "dist")


def test_build_refuses_src_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="not a folder"):
        build(tmp_path / "file", tmp_path / "dist")


@pytest.mark.parametrize("inner", [".", "out", "a/b/out"])
def test_build_refuses_dist_inside_src(tmp_path: Path, inner: str) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": "a"})
    with pytest.raises(BadInputError, match="inside SRC"):
        build(src, src / inner)
    assert sorted(p.name for p in src.iterdir()) == ["a.txt"]


def test_build_refuses_src_inside_dist(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "dist" / "src", {"a.txt": "a"})
    with pytest.raises(BadInputError, match="inside DIST"):
        build(src, tmp_path / "dist")


def test_build_refuses_symlink_leading_outside(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    src = write_tree(tmp_path / "src", {"a.txt": "a"})
    (src / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(BadInputError, match="leads outside SRC"):
        build(src, tmp_path / "dist")


def test_build_follows_symlinks_inside_src(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"real/a.txt": "a"})
    (src / "alias").symlink_to(src / "real")
    (src / "loop").symlink_to(src)
    _, manifest = run(src, tmp_path / "dist")
    assert "real/a.txt" in manifest.assets and "alias/a.txt" in manifest.assets


def test_build_refuses_non_utf8_names(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": "a"})
    with open(os.fsencode(src) + b"/bad-\xff.txt", "wb") as handle:
        handle.write(b"x")
    with pytest.raises(BadInputError, match="not valid UTF-8") as info:
        build(src, tmp_path / "dist")
    assert "bad-" in str(info.value)


def test_build_refuses_special_files(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": "a"})
    os.mkfifo(src / "pipe")
    with pytest.raises(BadInputError, match="'pipe' is not a regular file"):
        build(src, tmp_path / "dist")


def test_build_reports_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As root, permissions do not stop reads; inject the error at the read seam.
    src = write_tree(tmp_path / "src", {"a.css": "a{}", "b.txt": "b"})
    real_read_bytes = Path.read_bytes

    def failing(self: Path) -> bytes:
        if self.name == "a.css":
            raise PermissionError(13, "Permission denied")
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(BadInputError, match=r"cannot read 'a\.css': Permission denied"):
        build(src, tmp_path / "dist")


def test_build_refuses_foreign_non_empty_dist(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": "a"})
    dist = write_tree(tmp_path / "dist", {"precious.txt": "keep me"})
    with pytest.raises(BadInputError, match="not empty"):
        build(src, dist)
    assert (dist / "precious.txt").read_text() == "keep me"


def test_build_refuses_reserved_output_names(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"manifests/g-0123456789ab.json": "{}"})
    with pytest.raises(BadInputError, match="reserves"):
        build(src, tmp_path / "dist")


def test_build_reads_vite_manifest_strictly(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {
            "assets/index-BARe8AKr.js": "x",
            ".vite/manifest.json": json.dumps({"index.html": {"file": "../../etc/passwd"}}),
        },
    )
    with pytest.raises(BadInputError, match=r"\.vite/manifest\.json.*escape"):
        build(src, tmp_path / "dist")


def test_build_rewrites_html_subresources_but_not_links(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {
            "index.html": (
                '<link rel="stylesheet" href="css/site.css">\n'
                '<script type="module" src="./js/app.js"></script>\n'
                '<a href="about.html">About</a> <img src="/cdn/logo.png">\n'
            ),
            "about.html": "<p>about</p>",
            "css/site.css": "a{}",
            "js/app.js": "console.log(1)",
        },
    )
    _, manifest = run(src, tmp_path / "dist")
    html = published(tmp_path / "dist", manifest, "index.html").decode()
    assert f'href="{manifest.asset("css/site.css").path}"' in html
    assert f'src="./{manifest.asset("js/app.js").path}"' in html
    assert 'href="about.html"' in html  # a page link keeps its user-visible name
    assert 'src="/cdn/logo.png"' in html


def test_build_html_missing_subresource_is_an_error(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"index.html": '<script src="gone.js"></script>'})
    with pytest.raises(MissingReferenceError, match=r"index\.html:1: reference 'gone\.js'"):
        build(src, tmp_path / "dist", FAST)


def test_build_updates_html_integrity_of_rewritten_files(tmp_path: Path) -> None:
    css = "a { background: url(i.png) }\n"
    original = integrity.compute(css.encode())
    src = write_tree(
        tmp_path / "src",
        {
            "index.html": (
                f'<link rel="stylesheet" href="s.css" integrity="{original}" crossorigin>\n'
                '<script src="https://cdn.example.com/x.js" integrity="sha384-kept"></script>\n'
            ),
            "s.css": css,
            "i.png": os.urandom(64),
        },
    )
    _, manifest = run(src, tmp_path / "dist")
    html = published(tmp_path / "dist", manifest, "index.html").decode()
    sheet = manifest.asset("s.css")
    assert sheet.integrity != original  # url(i.png) was rewritten: other bytes
    assert f'href="{sheet.path}" integrity="{sheet.integrity}"' in html
    assert 'integrity="sha384-kept"' in html  # not ours: left alone
    _, again = run(src, tmp_path / "dist")  # the scan cache carries the attribute too
    assert published(tmp_path / "dist", again, "index.html").decode() == html
