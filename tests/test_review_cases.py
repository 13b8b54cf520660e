"""Cases a new-user review found: DIST ownership, kept names, odd input, interrupts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unblank import Manifest, integrity
from unblank_server.builder import BuildOptions, build
from unblank_server.cli import main
from unblank_server.compress import CompressionSettings
from unblank_server.errors import BadInputError, MissingReferenceError
from unblank_server.generations import Retention

FAST = BuildOptions(
    compression=CompressionSettings(brotli_quality=4, gzip_level=6),
    retention=Retention(keep=1, keep_days=0),
)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def current(dist: Path) -> Manifest:
    return Manifest.loads((dist / "manifest.json").read_bytes())


def test_gc_never_deletes_files_unblank_did_not_write(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "one"})
    dist = tmp_path / "dist"
    build(src, dist, FAST)
    foreign = write(dist, {".git/config": "[core]", "CNAME": "example.com", "_headers": "/*"})
    for text in ("two", "three"):
        write(src, {"a.txt": text})
        result = build(src, dist, FAST)
        assert result.removed_files >= 1  # the old a.<hash>.txt went
    for name in (".git/config", "CNAME", "_headers"):
        assert (foreign / name).exists(), name


def test_kept_name_with_changed_content_is_fingerprinted(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"assets/index-BARe8AKr.js": "console.log(1)\n"})
    dist = tmp_path / "dist"
    options = BuildOptions(compression=FAST.compression)  # default retention: keep both
    build(src, dist, options)
    first = current(dist)
    write(src, {"assets/index-BARe8AKr.js": "console.log(2)\n"})
    result = build(src, dist, options)
    second = current(dist)
    assert any("not a content hash" in w for w in result.warnings)
    assert second.asset("assets/index-BARe8AKr.js").path != "assets/index-BARe8AKr.js"
    old = first.asset("assets/index-BARe8AKr.js")
    assert integrity.verify((dist / old.path).read_bytes(), old.integrity)


def test_missing_current_manifest_keeps_history(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "one"})
    dist = tmp_path / "dist"
    options = BuildOptions(compression=FAST.compression)
    for text in ("one", "two", "three"):
        write(src, {"a.txt": text})
        build(src, dist, options)
    (dist / "manifest.json").unlink()
    write(src, {"a.txt": "four"})
    build(src, dist, options)
    assert len(list((dist / "manifests").glob("*.json"))) == 4


def test_bundler_manifest_through_symlink_outside_src_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"manifest.json": json.dumps({})})
    src = write(tmp_path / "src", {"app.js": "x"})
    (src / ".vite").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BadInputError, match="outside SRC"):
        build(src, tmp_path / "dist", FAST)


def test_missing_references_are_all_listed(tmp_path: Path) -> None:
    src = write(
        tmp_path / "src",
        {
            "a.css": "x{background:url(gone1.png)}\ny{background:url(gone2.png)}",
            "b.js": 'import "./gone3.js";',
            "c.css": "z{background:url(.hidden/f.png)}",
            ".hidden/f.png": "png",
        },
    )
    with pytest.raises(MissingReferenceError) as info:
        build(src, tmp_path / "dist", FAST)
    text = str(info.value)
    assert "(4 missing references)" in text
    for where in ("a.css:1", "a.css:2", "b.js:1", "c.css:1"):
        assert where in text
    assert "names a hidden file, which is not published" in text


def test_json_reports_errors_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(tmp_path / "nope"), str(tmp_path / "dist"), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["exit_status"] == 2
    assert out["error"].startswith("SRC ")
    assert "does not exist" in out["error"]


@pytest.mark.parametrize("days", ["inf", "1000000"])
def test_keep_days_out_of_range_exits_2(tmp_path: Path, days: str) -> None:
    src = write(tmp_path / "src", {"a.txt": "a"})
    with pytest.raises(SystemExit) as info:
        main(["build", str(src), str(tmp_path / "dist"), "--keep-days", days])
    assert info.value.code == 2


def test_dist_under_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path / "src", {"a.txt": "a"})
    (tmp_path / "file").write_text("x")
    assert main(["build", str(src), str(tmp_path / "file" / "dist")]) == 2
    assert "Not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_interrupt_exits_at_once_and_names_the_served_generation(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "first"})
    dist = tmp_path / "dist"
    build(src, dist, FAST)
    served = current(dist).generation
    words = " ".join(f"w{i * 7919 % 100003}" for i in range(4_000_000))
    write(src, {"big.txt": words})  # brotli 11 on this takes well over ten seconds
    proc = subprocess.Popen(
        [sys.executable, "-m", "unblank_server", "build", str(src), str(dist)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(dist.rglob(".big.*.br.*.unblank-tmp")) and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until brotli is working on it
    assert list(dist.rglob(".big.*.br.*.unblank-tmp")), "brotli never started"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    # Generous for a loaded CI machine, and still far less than brotli needs.
    assert time.monotonic() - started < 8
    assert f"interrupted; DIST serves generation {served}" in err
    assert current(dist).generation == served


def test_changed_bundler_file_under_the_same_name_stops_the_build(tmp_path: Path) -> None:
    vite = {
        "index.html": {"file": "assets/index.js", "isEntry": True, "imports": ["_vendor.js"]},
        "_vendor.js": {"file": "assets/vendor.js"},
    }
    src = write(
        tmp_path / "src",
        {
            ".vite/manifest.json": json.dumps(vite),
            "assets/index.js": 'import { v } from "./vendor.js";\n',
            "assets/vendor.js": "export const v = 1;\n",
        },
    )
    dist = tmp_path / "dist"
    build(src, dist, FAST)
    served = current(dist)
    write(src, {"assets/vendor.js": "export const v = 2;\n"})
    with pytest.raises(BadInputError, match=r"assets/vendor\.js changed content.*\[hash\]"):
        build(src, dist, FAST)
    assert current(dist) == served
    assert (dist / "assets/vendor.js").read_text() == "export const v = 1;\n"


def test_gc_leaves_empty_folders_it_did_not_make(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a/b.txt": "one"})
    dist = tmp_path / "dist"
    build(src, dist, FAST)
    (dist / ".git/refs/heads").mkdir(parents=True)
    (dist / "uploads").mkdir()
    write(src, {"a/b.txt": "two"})
    build(src, dist, FAST)
    assert (dist / ".git/refs/heads").is_dir()
    assert (dist / "uploads").is_dir()
    write(src, {"c.txt": "three"})
    (src / "a/b.txt").unlink()
    (src / "a").rmdir()
    build(src, dist, FAST)
    assert not (dist / "a").exists()  # emptied by gc: removed


def test_dist_copied_without_hidden_files_is_still_ours(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "one"})
    dist = tmp_path / "dist"
    build(src, dist, FAST)
    for path in sorted((dist / ".unblank").iterdir()):
        path.unlink()
    (dist / ".unblank").rmdir()
    write(src, {"a.txt": "two"})
    assert build(src, dist, FAST).published


def test_unreadable_history_never_lets_a_kept_name_be_overwritten(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.js": "console.log(0)", "lib-BARe8AKr.js": "lib L0"})
    dist = tmp_path / "dist"
    options = BuildOptions(compression=FAST.compression)
    build(src, dist, options)
    (src / "lib-BARe8AKr.js").unlink()
    write(src, {"a.js": "console.log(1)"})
    build(src, dist, options)
    (dist / "manifests/00000000-bogus.json").write_text('{"version": 99}')
    write(src, {"lib-BARe8AKr.js": "lib L1"})
    result = build(src, dist, options)
    assert (dist / "lib-BARe8AKr.js").read_text() == "lib L0"
    assert current(dist).asset("lib-BARe8AKr.js").path != "lib-BARe8AKr.js"
    assert any("garbage collection skipped" in w for w in result.warnings)


def test_user_file_at_a_kept_name_is_not_overwritten(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"app.js": "console.log(1)"})
    dist = tmp_path / "dist"
    build(src, dist, FAST)
    write(dist, {"vendor-BARe8AKr.js": "USER DATA"})
    write(src, {"vendor-BARe8AKr.js": 'console.log("src")'})
    with pytest.raises(BadInputError, match="unblank did not write"):
        build(src, dist, FAST)
    assert (dist / "vendor-BARe8AKr.js").read_text() == "USER DATA"


@pytest.mark.parametrize("attribute", ["integrity", "integrity=", 'integrity=""'])
def test_html_integrity_without_a_value_is_left_alone(tmp_path: Path, attribute: str) -> None:
    src = write(
        tmp_path / "src", {"a.js": "x", "index.html": f'<script src="a.js" {attribute}></script>'}
    )
    build(src, tmp_path / "dist", FAST)
    page = current(tmp_path / "dist").asset("index.html")
    html = (tmp_path / "dist" / page.path).read_text()
    assert attribute in html


def test_html_integrity_in_a_reference_cycle_is_final(tmp_path: Path) -> None:
    src = write(
        tmp_path / "src",
        {
            "index.html": '<script type=module src="js/app.js" integrity=sha384-x></script>',
            "js/app.js": 'const u = new URL("../index.html", import.meta.url);',
        },
    )
    build(src, tmp_path / "dist", BuildOptions(sri=("sha256", "sha384")))
    manifest = current(tmp_path / "dist")
    app = manifest.asset("js/app.js")
    html = (tmp_path / "dist" / manifest.asset("index.html").path).read_text()
    assert f'integrity="{app.integrity}"' in html  # quoted: the value holds two tokens
    assert integrity.verify((tmp_path / "dist" / app.path).read_bytes(), app.integrity)


def test_swapped_arguments_are_explained(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "a"})
    build(src, tmp_path / "dist", FAST)
    with pytest.raises(BadInputError, match="looks like the output of unblank build"):
        build(tmp_path / "dist", tmp_path / "new", FAST)
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_memory_stays_flat_on_a_large_module_with_imports(tmp_path: Path) -> None:
    line = "export const v = compute(state, 'c') + 42; var q = function (a, b) { return a / b };\n"
    src = write(
        tmp_path / "src",
        {"big.js": 'import { x } from "./x.js";\n' + line * (8_500_000 // len(line)), "x.js": "1"},
    )
    # VmHWM, not ru_maxrss: the peak of this process's own memory, which does not
    # carry over the pytest process's size from before exec().
    code = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from unblank_server.references import find_js_references\n"
        "refs = find_js_references(Path(sys.argv[1]).read_text())\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())\n"
        "print(len(refs), int(peak[1]) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(src / "big.js")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert out[0] == "1"
    assert int(out[1]) < 80, f"peak RSS {out[1]} MB for an 8.5 MB module"  # tokens are not kept


def test_bundler_manifest_naming_a_missing_file(tmp_path: Path) -> None:
    vite = {"index.html": {"file": "assets/gone-BARe8AKr.js", "isEntry": True}}
    src = write(tmp_path / "src", {".vite/manifest.json": json.dumps(vite), "a.txt": "a"})
    with pytest.raises(
        MissingReferenceError, match=r"^\.vite/manifest\.json: reference 'assets/gone"
    ):
        build(src, tmp_path / "dist", FAST)
