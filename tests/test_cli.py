"""The ``unblank`` command line: exit statuses, messages, --json, progress."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unblank_server.cli import main

FAST = ["--brotli-quality", "4", "--gzip-level", "6"]


def make_src(root: Path) -> Path:
    (root / "css").mkdir(parents=True)
    (root / "css/a.css").write_text("a { color: red }\n" * 50)
    (root / "b.js").write_text('import "./c.js";\n')
    (root / "c.js").write_text("console.log('c')\n")
    return root


def test_cli_build_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_src(tmp_path / "src")
    assert main(["build", str(src), str(tmp_path / "dist"), "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {
        "generation", "published", "previous_generation", "files", "fingerprinted",
        "kept_names", "reused", "bytes", "seconds", "removed_files", "warnings", "dist",
    }  # fmt: skip
    assert out["published"] is True and out["files"] == 3 and out["fingerprinted"] == 3
    assert out["bytes"]["identity"] > out["bytes"]["br"] > 0
    assert out["bytes"]["gzip"] > 0


def test_cli_build_human_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_src(tmp_path / "src")
    assert main(["build", str(src), str(tmp_path / "dist"), *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("published generation ")
    assert "files" in out and "br" in out and "gzip" in out and "time" in out
    assert main(["build", str(src), str(tmp_path / "dist"), *FAST]) == 0
    assert capsys.readouterr().out.startswith("unchanged: generation ")


def test_cli_build_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_src(tmp_path / "src")
    assert main(["build", str(src), str(tmp_path / "dist"), "--quiet", *FAST]) == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("file", "is not a folder"),
        ("inside", "is inside SRC"),
        ("missing-ref", "b.js:1: reference './gone.js'"),
    ],
)
def test_cli_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    src = make_src(tmp_path / "src")
    dist = tmp_path / "dist"
    if setup == "missing":
        src = tmp_path / "nope"
    elif setup == "file":
        src = src / "b.js"
    elif setup == "inside":
        dist = src / "out"
    else:
        (src / "b.js").write_text('import "./gone.js";\n')
    assert main(["build", str(src), str(dist), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unblank build: error: ") and message in err


@pytest.mark.parametrize(
    "args",
    [
        ["--sri", "md5"],
        ["--sri", ""],
        ["--keep", "0"],
        ["--keep-days", "-1"],
        ["--keep-days", "nan"],
        ["--jobs", "zero"],
        ["--brotli-quality", "12"],
        ["--gzip-level", "0"],
    ],
)
def test_cli_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    src = make_src(tmp_path / "src")
    try:
        code = main(["build", str(src), str(tmp_path / "dist"), *args])
    except SystemExit as exc:  # argparse refuses the option itself
        code = int(str(exc.code))
    assert code == 2
    assert capsys.readouterr().err


def test_cli_allow_missing_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_src(tmp_path / "src")
    (src / "b.js").write_text('import "./gone.js";\n')
    args = ["build", str(src), str(tmp_path / "dist"), "--allow-missing", *FAST]
    assert main(args) == 0
    assert "warning: b.js:1: reference './gone.js'" in capsys.readouterr().err


def test_cli_gc_dry_run_and_not_a_dist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_src(tmp_path / "src")
    dist = tmp_path / "dist"
    main(["build", str(src), str(dist), "--quiet", *FAST])
    assert main(["gc", str(dist), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed_files"] == []
    assert out["dry_run"] is True
    assert main(["gc", str(src)]) == 2
    assert "is not an unblank build output" in capsys.readouterr().err


def _unblank() -> list[str]:
    script = Path(sys.executable).with_name("unblank")
    if script.exists():
        return [str(script)]
    found = shutil.which("unblank")
    return [found] if found else [sys.executable, "-m", "unblank_server"]


@pytest.mark.slow
def test_console_script_runs_a_build(tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    proc = subprocess.run(
        [*_unblank(), "build", str(src), str(tmp_path / "dist"), "--json", *FAST],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == 3
    proc = subprocess.run(
        [*_unblank(), "build", str(tmp_path / "nope"), str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.slow
def test_progress_bar_draws_on_a_terminal(tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    # A pseudo-terminal on stderr makes the build draw its bar there.
    leader, follower = os.openpty()
    try:
        proc = subprocess.run(
            [*_unblank(), "build", str(src), str(tmp_path / "dist"), *FAST],
            stdout=subprocess.PIPE,
            stderr=follower,
            check=False,
            timeout=60,
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    text = drawn.decode()
    for stage in ("scan", "write", "compress"):
        assert stage in text
    assert "100%" in text and "[####" in text
