"""Generations in DIST: their ids, when a build publishes one, and what gc keeps.

In-process and fast: ``build()`` and ``gc()`` are called directly, with the
``now`` parameter standing in for the clock, and the command line through
``cli.main``.  The promise under test (DESIGN.md): the files of the last N
generations, and of every generation current within the last days, stay in
DIST, so a page loaded before a deploy still finds every file it asks for;
everything else, and whatever a killed build left half-written, goes.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from unblank.manifest import Manifest
from unblank_server import cli
from unblank_server.builder import BuildOptions, BuildResult, build, gc
from unblank_server.errors import BadInputError
from unblank_server.fsutil import TEMP_SUFFIX, is_temp_name
from unblank_server.generations import CURRENT, HISTORY, INTERNAL, Retention, new_generation_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
KEEP_TWO = Retention(keep=2, keep_days=0)
# Text long and repetitive enough that brotli and gzip variants are worth keeping.
FILLER = "unblank keeps every generation a loaded page may still ask for.\n" * 40
Files = dict[str, str | bytes]


# --------------------------------------------------------------------------- helpers


def write_src(src: Path, files: Files) -> None:
    """Make ``src`` hold exactly ``files``."""
    shutil.rmtree(src, ignore_errors=True)
    for name, content in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)


def build_files(
    tmp_path: Path,
    files: Files,
    retention: Retention = KEEP_TWO,
    now: datetime | None = None,
) -> BuildResult:
    """Build ``files`` (as tmp_path/src) into tmp_path/dist."""
    src = tmp_path / "src"
    write_src(src, files)
    return build(src, tmp_path / "dist", BuildOptions(retention=retention), now=now)


def manifest_of(dist: Path, generation: str) -> Manifest:
    return Manifest.loads((dist / HISTORY / f"{generation}.json").read_bytes())


def published_files(dist: Path) -> set[str]:
    """Every file in DIST but the internal folder, as POSIX paths."""
    return {
        path.relative_to(dist).as_posix()
        for path in dist.rglob("*")
        if path.is_file() and path.relative_to(dist).parts[0] != INTERNAL
    }


def needed_by(dist: Path, *generations: str) -> set[str]:
    """What DIST must hold to serve ``generations``: their files and manifests."""
    needed = {CURRENT}
    for generation in generations:
        needed |= manifest_of(dist, generation).files()
        needed.add(f"{HISTORY}/{generation}.json")
    return needed


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (internal ones included) with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def site(tag: str) -> Files:
    """A small site whose files all change with ``tag``."""
    return {
        "app.js": f"console.log({tag!r});\n{FILLER}",
        "css/site.css": f".x {{ background: url(../img/logo.png) }}\n/* {tag} */\n{FILLER}",
        "img/logo.png": f"PNG {tag}".encode(),
    }


def temp_name(name: str) -> str:
    """The name fsutil gives the temporary file that becomes ``name``."""
    return f".{name}.0badc0de{TEMP_SUFFIX}"


# --------------------------------------------------------------------------- generation ids


def test_generation_ids_increase_with_pinned_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    epoch = 1_700_000_000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
    ids = [build_files(tmp_path, site(tag)).generation for tag in "abcd"]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    dist = tmp_path / "dist"
    current = Manifest.loads((dist / CURRENT).read_bytes())
    assert current.generation == ids[-1]
    assert current.created == datetime.fromtimestamp(epoch, UTC)


def test_generation_ids_increase_when_clock_steps_back(tmp_path: Path) -> None:
    times = [T0, T0 - DAY, T0 - 2 * DAY]
    ids = [build_files(tmp_path, site(str(i)), now=now).generation for i, now in enumerate(times)]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_new_generation_id_sorts_as_time() -> None:
    times = [
        datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 10, 1, tzinfo=UTC),
        datetime(2026, 10, 1, tzinfo=UTC),
    ]
    # Content hashes that sort against the times: the time part alone must decide.
    ids = [new_generation_id(t, str(-i).encode(), []) for i, t in enumerate(times)]

    assert ids == sorted(ids)
    for generation in ids:  # a valid manifest generation (it names a file)
        Manifest(generation=generation, created=T0, assets={})


@pytest.mark.parametrize("offset", [timedelta(0), -HOUR, -365 * DAY])
def test_new_generation_id_follows_every_existing_one(offset: timedelta) -> None:
    existing = [new_generation_id(T0 + i * HOUR, b"x", []) for i in range(3)]
    newest = max(existing)

    generation = new_generation_id(T0 + 2 * HOUR + offset, b"x", reversed(existing))

    assert generation > newest
    assert new_generation_id(T0, b"x", [*existing, generation]) > generation


# --------------------------------------------------------------------------- publishing


def test_build_identical_input_publishes_nothing(tmp_path: Path) -> None:
    first = build_files(tmp_path, site("a"), now=T0)
    dist = tmp_path / "dist"
    before = snapshot(dist)
    stat = (dist / CURRENT).stat()

    again = build_files(tmp_path, site("a"), now=T0 + DAY)

    assert first.published
    assert not again.published
    assert again.generation == first.generation
    assert again.removed_files == 0
    assert (dist / CURRENT).stat().st_mtime_ns == stat.st_mtime_ns
    after = snapshot(dist)
    assert {k: v for k, v in after.items() if not k.startswith(INTERNAL)} == {
        k: v for k, v in before.items() if not k.startswith(INTERNAL)
    }
    assert sorted(p.name for p in (dist / HISTORY).iterdir()) == [f"{first.generation}.json"]


# --------------------------------------------------------------------------- retention


def test_gc_keep_two_removes_oldest_generation_except_shared_files(tmp_path: Path) -> None:
    shared: Files = {"common.txt": FILLER, "img/same.png": b"PNG same"}
    a = build_files(
        tmp_path, {**shared, "gone.txt": "a" + FILLER, "back.css": "b{}" + FILLER}, now=T0
    )
    b = build_files(tmp_path, {**shared, "b.txt": "b" + FILLER}, now=T0 + HOUR)
    dist = tmp_path / "dist"
    assert b.removed_files == 0
    assert published_files(dist) == needed_by(dist, a.generation, b.generation)
    of_a = manifest_of(dist, a.generation)
    needed_by_a = needed_by(dist, a.generation)

    c = build_files(tmp_path, {**shared, "back.css": "b{}" + FILLER}, now=T0 + 2 * HOUR)

    assert published_files(dist) == needed_by(dist, b.generation, c.generation)
    gone = of_a.assets["gone.txt"]
    assert set(gone.encodings) == {"br", "gzip"}  # the variants went with the file
    for path in (gone.path, f"{gone.path}.br", f"{gone.path}.gz"):
        assert not (dist / path).exists()
    # A file A and C both hold (B did not) and files every generation shares stay.
    assert of_a.assets["back.css"].path in manifest_of(dist, c.generation).paths()
    for name in ("back.css", "common.txt", "img/same.png"):
        assert (dist / of_a.assets[name].path).exists()
    assert c.removed_files == len(needed_by_a - published_files(dist))
    assert not (dist / HISTORY / f"{a.generation}.json").exists()


@pytest.mark.parametrize(("days", "kept"), [(1, True), (8, False)])
def test_gc_keep_days_retains_recently_superseded_generation(
    tmp_path: Path, days: int, kept: bool
) -> None:
    retention = Retention(keep=1, keep_days=7)
    a = build_files(tmp_path, site("a"), retention, now=T0)
    b = build_files(tmp_path, site("b"), retention, now=T0 + HOUR)  # A superseded now
    dist = tmp_path / "dist"
    assert published_files(dist) == needed_by(dist, a.generation, b.generation)

    # The same input again publishes nothing but collects garbage at its ``now``.
    later = build_files(tmp_path, site("b"), retention, now=T0 + HOUR + days * DAY)

    assert not later.published
    expected = (a.generation, b.generation) if kept else (b.generation,)
    assert published_files(dist) == needed_by(dist, *expected)
    assert (later.removed_files > 0) is not kept


def test_gc_keep_days_counts_real_time_with_pinned_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SOURCE_DATE_EPOCH pins the manifests' time, not the clock retention runs on.

    CI systems often pin it to one constant (Nix: 1980-01-01); if gc read the
    pinned time as "now", no generation would ever be old enough to collect.
    """
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "315532800")
    retention = Retention(keep=1, keep_days=0.5 / 86_400)  # half a second
    first = build_files(tmp_path, site("a"), retention)
    second = build_files(tmp_path, site("b"), retention)
    dist = tmp_path / "dist"
    assert published_files(dist) == needed_by(dist, first.generation, second.generation)
    time.sleep(0.6)  # the first generation has now been superseded for longer than that

    removed_generations, _, _ = gc(dist, retention)

    assert removed_generations == [first.generation]
    assert published_files(dist) == needed_by(dist, second.generation)


def test_gc_dry_run_lists_without_deleting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    retention = Retention()  # builds with the defaults remove nothing here
    ids = [
        build_files(tmp_path, site(tag), retention, now=T0 + i * HOUR).generation
        for i, tag in enumerate("abc")
    ]
    dist = tmp_path / "dist"
    before = snapshot(dist)
    doomed = sorted(needed_by(dist, *ids) - needed_by(dist, ids[-1]))
    capsys.readouterr()

    code = cli.main(["gc", str(dist), "--keep", "1", "--keep-days", "0", "--dry-run", "--json"])

    assert code == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["dry_run"] is True
    assert listed["removed_generations"] == ids[:2]
    assert listed["removed_files"] == doomed
    assert listed["freed_bytes"] == sum(len(before[name]) for name in doomed)
    assert snapshot(dist) == before

    code = cli.main(["gc", str(dist), "--keep", "1", "--keep-days", "0", "--json"])

    assert code == 0
    done = json.loads(capsys.readouterr().out)
    assert done["dry_run"] is False
    assert done["removed_files"] == doomed
    assert published_files(dist) == needed_by(dist, ids[-1])


@pytest.mark.parametrize("state", ["missing", "empty", "foreign files"])
def test_gc_refuses_folder_not_made_by_unblank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    folder = tmp_path / "site"
    if state != "missing":
        folder.mkdir()
    if state == "foreign files":
        (folder / "index.html").write_text("<h1>mine</h1>")
        (folder / "assets").mkdir()
        (folder / "assets" / "app.js").write_text("alert(1)")
    before = snapshot(folder) if folder.exists() else None

    code = cli.main(["gc", str(folder)])

    assert code == 2
    assert "not an unblank build output" in capsys.readouterr().err
    assert (snapshot(folder) if folder.exists() else None) == before
    with pytest.raises(BadInputError):
        gc(folder, dry_run=True)


# --------------------------------------------------------------------------- after a kill


@pytest.mark.parametrize(
    "folder", [".", "img", HISTORY, INTERNAL], ids=["root", "asset-folder", HISTORY, "internal"]
)
def test_build_removes_leftover_temp_files(tmp_path: Path, folder: str) -> None:
    first = build_files(tmp_path, site("a"))
    dist = tmp_path / "dist"
    of_first = manifest_of(dist, first.generation)
    beside = {
        ".": CURRENT,
        "img": Path(of_first.assets["img/logo.png"].path).name,
        HISTORY: f"{first.generation}.json",
        INTERNAL: "variants.json",
    }[folder]
    leftover = dist / folder / temp_name(beside)
    assert is_temp_name(leftover.name)
    leftover.write_bytes(b'{"version": 1, "gener')  # cut short by SIGKILL
    before = snapshot(dist)

    again = build_files(tmp_path, site("a"))

    assert not again.published
    assert not leftover.exists()
    after = snapshot(dist)
    del before[leftover.relative_to(dist).as_posix()]
    assert {k: after.get(k) for k in before if not k.startswith(INTERNAL)} == {
        k: v for k, v in before.items() if not k.startswith(INTERNAL)
    }


def test_build_after_kill_between_renames_keeps_served_generation(tmp_path: Path) -> None:
    """A build killed after writing manifests/<new>.json but before manifest.json.

    Its generation was never served; the next build must still keep the one
    that was (keep=2: the current one and the one it replaces).
    """
    build_files(tmp_path, site("a"), now=T0)
    served = build_files(tmp_path, site("b"), now=T0 + HOUR)
    dist = tmp_path / "dist"
    served_manifest = (dist / CURRENT).read_bytes()
    needed = needed_by(dist, served.generation)
    build_files(tmp_path, site("c"), now=T0 + 2 * HOUR)
    (dist / CURRENT).write_bytes(served_manifest)  # as if killed before the last rename

    recovery = build_files(tmp_path, site("c"), now=T0 + 3 * HOUR)

    assert recovery.published
    assert recovery.previous_generation == served.generation
    missing = sorted(needed - published_files(dist))
    assert not missing, f"files of the generation served until now were deleted: {missing}"


@pytest.mark.parametrize(
    "garbled",
    [b"", b'{"version": 1, "generation": "2026', b"\xff\xfe not json", b'{"version": 1}'],
    ids=["empty", "truncated", "not-utf8", "incomplete"],
)
def test_gc_skips_with_warning_when_history_manifest_garbled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], garbled: bytes
) -> None:
    a = build_files(tmp_path, site("a"), Retention(), now=T0)
    build_files(tmp_path, site("b"), Retention(), now=T0 + HOUR)
    dist = tmp_path / "dist"
    bad = dist / HISTORY / f"{a.generation}.json"
    bad.write_bytes(garbled)
    before = snapshot(dist)

    c = build_files(tmp_path, site("c"), Retention(keep=1, keep_days=0), now=T0 + 2 * HOUR)

    assert c.published
    assert c.removed_files == 0
    assert any("garbage collection skipped" in w and bad.name in w for w in c.warnings)
    after = snapshot(dist)
    unchanged = [k for k in before if k != CURRENT and not k.startswith(INTERNAL)]
    assert {k: after.get(k) for k in unchanged} == {k: before[k] for k in unchanged}
    capsys.readouterr()

    code = cli.main(["gc", str(dist), "--keep", "1", "--keep-days", "0"])

    assert code != 0
    assert bad.name in capsys.readouterr().err
    assert snapshot(dist) == after


# --------------------------------------------------------------------------- claiming DIST


def test_build_refuses_non_empty_folder_not_made_by_unblank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    write_src(src, site("a"))
    write_src(dist, {"index.html": "<h1>mine</h1>", "assets/app.js": "alert(1)"})
    before = snapshot(dist)

    code = cli.main(["build", str(src), str(dist), "--quiet"])

    assert code == 2
    assert "not empty" in capsys.readouterr().err
    assert snapshot(dist) == before
    assert not (dist / INTERNAL).exists()
