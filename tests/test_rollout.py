"""Canaries in DIST: the pointer file, ``unblank build --canary``, ``unblank rollout``.

- ``canary.json`` is strict and the assignment it makes is sticky and splits
  browsers by its percent;
- ``build --canary`` publishes beside the stable generation (``manifest.json``
  untouched) and refuses what it must (no stable yet, a canary running);
- ``rollout status|promote|abort``: text and JSON, exit statuses, decisions
  recorded; a promotion killed halfway leaves a consistent DIST that the next
  command tidies up;
- ``unblank serve`` serves the canary's files, and retention never removes a
  running canary's files, nor treats an ended one as an unpublished leftover.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from unblank import Manifest, RolloutError
from unblank._fs import OsFileSystem
from unblank.canary import (
    CanaryPointer,
    abort_canary,
    ended_canaries,
    promote_canary,
    read_pointers,
)
from unblank_server.app import create_app
from unblank_server.builder import BuildOptions, build, gc
from unblank_server.cli import main
from unblank_server.compress import CompressionSettings
from unblank_server.generations import Retention

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "watchdog_app"
FAST = ["--brotli-quality", "4", "--gzip-level", "6", "--jobs", "1"]
OPTIONS = BuildOptions(compression=CompressionSettings(brotli_quality=4, gzip_level=6), jobs=1)
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def make_src(root: Path, version: int) -> Path:
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True)
    (root / "report.js").write_text(
        f"export function renderReport(slot) {{ slot.textContent = 'version {version}'; }}\n"
    )
    return root


def manifest_of(path: Path) -> Manifest:
    return Manifest.loads(path.read_bytes())


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """A DIST with a stable generation (v1) and a canary (v2) at 10%."""
    dist = tmp_path / "dist"
    assert main(["build", str(make_src(tmp_path / "v1", 1)), str(dist), "-q", *FAST]) == 0
    src2 = make_src(tmp_path / "v2", 2)
    assert main(["build", str(src2), str(dist), "--canary", "10%", "-q", *FAST]) == 0
    return {"dist": dist, "src2": src2, "tmp": tmp_path}


# --------------------------------------------------------------------------- the pointer


def test_pointer_round_trips_and_applies_its_policy() -> None:
    pointer = CanaryPointer(
        generation="g2", percent=12.5, started=T0, policy={"min_page_views": 50, "miss": 0.1}
    )
    assert CanaryPointer.loads(pointer.dumps()) == pointer
    data = json.loads(pointer.dumps())
    assert data == {
        "version": 1,
        "generation": "g2",
        "percent": 12.5,
        "started": "2026-11-25T12:00:00Z",
        "policy": {"min_page_views": 50, "miss": 0.1},
    }
    from unblank.rollout import RolloutPolicy

    policy = pointer.apply(RolloutPolicy(allowed_ratio=2.0))
    assert (policy.min_page_views, policy.miss, policy.allowed_ratio) == (50, 0.1, 2.0)


def pointer_text(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "version": 1,
        "generation": "g",
        "percent": 10,
        "started": "2026-01-01T00:00:00Z",
    }
    return json.dumps({**fields, **changes}).encode()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (b"not json", "JSON"),
        (b"[]", "object"),
        (pointer_text(version=2), "version"),
        (pointer_text(generation="../x"), "generation"),
        (pointer_text(generation=7), "generation"),
        (pointer_text(percent=0), "percent"),
        (pointer_text(percent=100), "percent"),
        (pointer_text(percent="10"), "percent"),
        (pointer_text(percent=True), "percent"),
        (pointer_text(started="yesterday"), "started"),
        (pointer_text(started="2026-01-01T00:00:00"), "started"),
        (pointer_text(policy={"speed": 1}), "speed"),
        (pointer_text(policy={"miss": 0.9}), "miss"),
        (pointer_text(policy={"miss": "low"}), "miss"),
        (pointer_text(policy=[]), "policy"),
        (b"{" + b" " * 70_000 + b"}", "bytes"),
    ],
)
def test_pointer_refuses_what_is_not_one(text: bytes, named: str) -> None:
    with pytest.raises(RolloutError, match=named):
        CanaryPointer.loads(text)


@pytest.mark.parametrize("percent", [1.0, 10.0, 50.0, 90.0])
def test_assignment_splits_browsers_by_percent(percent: float) -> None:
    pointer = CanaryPointer(
        generation="20261125T120000000000Z-abcdef12", percent=percent, started=T0
    )
    browsers = [f"browser-{n:05d}" for n in range(10_000)]
    taken = sum(pointer.takes(b) for b in browsers)
    # Binomial standard error at 10k browsers is at most 0.5 points: 4 of them is generous.
    tolerance = 4 * 100 * math.sqrt(percent / 100 * (1 - percent / 100) / len(browsers))
    assert abs(taken / 100 - percent) <= max(tolerance, 0.3), taken
    # Sticky: the same browser always gets the same answer for one canary...
    assert [pointer.takes(b) for b in browsers[:500]] == [pointer.takes(b) for b in browsers[:500]]


def test_assignment_is_a_new_draw_for_the_next_canary() -> None:
    first = CanaryPointer(generation="g-one", percent=50, started=T0)
    second = CanaryPointer(generation="g-two", percent=50, started=T0)
    browsers = [f"b{n}" for n in range(10_000)]
    both = sum(first.takes(b) and second.takes(b) for b in browsers)
    # ...and an independent one for another canary: the same users are not always first.
    assert 2300 <= both <= 2700


# --------------------------------------------------------------------------- build --canary


def test_build_canary_publishes_beside_stable(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dist = site["dist"]
    stable = manifest_of(dist / "manifest.json")
    pointers = read_pointers(dist)
    assert pointers.stable == stable and pointers.canary is not None
    canary = pointers.canary_manifest
    assert canary is not None and canary.generation == pointers.canary.generation
    assert canary.generation > stable.generation
    assert pointers.canary.percent == 10.0
    assert (dist / "manifests" / f"{canary.generation}.json").is_file()
    for path in canary.files():
        assert (dist / path).is_file(), path
    json_summary = site["tmp"] / "v3"
    make_src(json_summary, 3)
    assert main(["build", str(json_summary), str(dist), "--canary", "5", "--json", *FAST]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["exit_status"] == 2 and "promote or abort it first" in out["error"]


def test_build_canary_json_summary_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    assert main(["build", str(make_src(tmp_path / "a", 1)), str(dist), "-q", *FAST]) == 0
    first = manifest_of(dist / "manifest.json").generation
    src = make_src(tmp_path / "b", 2)
    assert main(["build", str(src), str(dist), "--canary", "12.5%", "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["canary"] == {"percent": 12.5, "stable": first}
    assert manifest_of(dist / "manifest.json").generation == first
    # Text summary of a canary build says where the stable one stays.
    abort_canary(dist)
    (src / "report.js").write_text("export const v = 3;\n")
    assert main(["build", str(src), str(dist), "--canary", "10", *FAST]) == 0
    text = capsys.readouterr().out
    assert "as a canary for 10% of browsers" in text and f"stable stays         {first}" in text


def test_first_build_cannot_be_a_canary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_src(tmp_path / "src", 1)
    assert main(["build", str(src), str(tmp_path / "dist"), "--canary", "10%", *FAST]) == 2
    err = capsys.readouterr().err
    assert "no stable generation yet" in err and "without --canary" in err
    assert not (tmp_path / "dist" / "manifest.json").exists()
    assert not (tmp_path / "dist" / "canary.json").exists()


def test_no_build_while_a_canary_runs(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dist = site["dist"]
    before = (dist / "manifest.json").read_bytes()
    src3 = make_src(site["tmp"] / "v3", 3)
    assert main(["build", str(src3), str(dist), "-q", *FAST]) == 2
    assert "a canary is running" in capsys.readouterr().err
    assert (dist / "manifest.json").read_bytes() == before


def test_identical_input_starts_no_canary(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    src = make_src(tmp_path / "src", 1)
    build(src, dist, OPTIONS)
    result = build(src, dist, BuildOptions(canary=10.0, jobs=1))
    assert not result.published and result.canary is None
    assert not (dist / "canary.json").exists()


@pytest.mark.parametrize(
    "args",
    [["--canary", "0"], ["--canary", "100%"], ["--canary", "ten"], ["--canary-policy", "x=1"]],
)
def test_build_canary_options_are_checked(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["build", str(tmp_path), str(tmp_path / "dist"), *args])
    assert exc.value.code == 2


def test_canary_policy_goes_into_the_pointer(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build(make_src(tmp_path / "a", 1), dist, OPTIONS)
    policy = "min_page_views=20,allowed_ratio=2"
    src = str(make_src(tmp_path / "b", 2))
    assert main(["build", src, str(dist), "--canary", "30%", "--canary-policy", policy, *FAST]) == 0
    pointer = read_pointers(dist).canary
    assert pointer is not None and dict(pointer.policy) == {
        "min_page_views": 20.0,
        "allowed_ratio": 2.0,
    }


# --------------------------------------------------------------------------- unblank rollout


def test_status_text_and_json(site: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    dist = site["dist"]
    pointers = read_pointers(dist)
    assert pointers.canary is not None and pointers.stable is not None
    assert main(["rollout", str(dist), "status"]) == 0
    text = capsys.readouterr().out
    assert f"canary    {pointers.canary.generation}  10% of browsers" in text
    assert f"stable    {pointers.stable.generation}" in text
    assert "state     watching" in text
    assert "verdict   watch: needs 200 page views" in text
    assert "rolled back at 2.773" in text
    assert main(["rollout", str(dist), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "watching"
    assert data["canary"]["generation"] == pointers.canary.generation
    assert [g["role"] for g in data["generations"]] == ["stable", "canary"]
    assert data["verdict"]["action"] == "watch"
    assert data["thresholds"]["rollback_at"] == pytest.approx(2.773, abs=1e-3)
    assert data["decisions"] == []


def test_promote_switches_stable_and_records_it(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dist = site["dist"]
    before = read_pointers(dist)
    assert before.canary is not None and before.stable is not None
    assert main(["rollout", str(dist), "promote", "--reason", "looks good", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["action"] == "promote" and record["reason"] == "looks good"
    assert record["canary"] == before.canary.generation
    assert record["stable"] == before.stable.generation
    assert "(unblank rollout promote)" in record["actor"]
    assert record["figures"]["verdict"] == "watch" and record["figures"]["percent"] == 10.0
    after = read_pointers(dist)
    assert after.stable is not None and after.stable.generation == before.canary.generation
    assert after.canary is None and not (dist / "canary.json").exists()
    published = dist / "manifests" / f"{before.canary.generation}.json"
    assert (dist / "manifest.json").read_bytes() == published.read_bytes()
    assert before.canary.generation in ended_canaries(dist)
    assert main(["rollout", str(dist), "status"]) == 0
    text = capsys.readouterr().out
    assert "state     promoted" in text and "promote   " in text and "looks good" in text
    assert main(["rollout", str(dist), "promote"]) == 2
    assert "no canary is running" in capsys.readouterr().err


def test_abort_keeps_the_canary_files(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dist = site["dist"]
    before = read_pointers(dist)
    assert before.canary_manifest is not None and before.stable is not None
    stable_bytes = (dist / "manifest.json").read_bytes()
    assert main(["rollout", str(dist), "abort", "--reason", "spike in app-crash"]) == 0
    out = capsys.readouterr().out
    assert f"rolled back generation {before.canary_manifest.generation}" in out
    assert (dist / "manifest.json").read_bytes() == stable_bytes
    assert not (dist / "canary.json").exists()
    for path in before.canary_manifest.files():
        assert (dist / path).is_file(), path
    assert main(["rollout", str(dist), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "rolled back"
    assert data["decisions"][-1]["reason"] == "spike in app-crash"
    # A new canary may start now.
    src3 = make_src(site["tmp"] / "v3", 3)
    assert main(["build", str(src3), str(dist), "--canary", "10", "-q", *FAST]) == 0


def test_rollout_on_a_folder_that_is_not_a_dist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollout", str(tmp_path), "status"]) == 2
    assert "not an unblank build output" in capsys.readouterr().err


def test_a_broken_canary_pointer_is_named(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dist = site["dist"]
    (dist / "canary.json").write_text('{"version": 1, "generation": "g", "percent": 400}')
    assert main(["rollout", str(dist), "status"]) == 2
    assert "canary.json" in capsys.readouterr().err
    assert main(["build", str(site["src2"]), str(dist), "-q", *FAST]) == 2
    assert "fix or remove DIST/canary.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    [
        '{"version":1,',
        '{"version": 1, "generation": "gone", "percent": 10, '
        '"started": "2026-11-25T18:41:48.465004Z"}',
    ],
)
def test_abort_retires_a_canary_pointer_no_one_can_use(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str], text: str
) -> None:
    # The error names `unblank rollout DIST abort` as the way out: it must be one.
    dist = site["dist"]
    (dist / "canary.json").write_text(text)
    assert main(["rollout", str(dist), "abort", "--reason", "broken"]) == 0
    assert "every browser gets the stable generation" in capsys.readouterr().out
    assert not (dist / "canary.json").exists()
    kept = list((dist / ".unblank" / "canaries").glob("unreadable-*.json"))
    assert [p.read_text() for p in kept] == [text]
    assert main(["rollout", str(dist), "status"]) == 0
    assert main(["build", str(site["src2"]), str(dist), "-q", *FAST]) == 0


def test_counts_reach_the_database_when_traffic_stops(tmp_path: Path) -> None:
    # Counted between flushes, then silence: a timer still writes them within
    # the interval, for `unblank rollout status` and the other processes.
    from unblank.rollout_store import RolloutStore

    writer = RolloutStore(tmp_path / "rollout.sqlite3", flush_interval=0.2)
    reader = RolloutStore(tmp_path / "rollout.sqlite3", flush_interval=0.2)
    try:
        writer.flush()
        writer.add("c1", "g1", "view")
        deadline = time.monotonic() + 10
        while writer.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.pending == 0
        assert reader.rows("c1") == [("g1", "view", "", 1)]
    finally:
        writer.close()
        reader.close()


# --------------------------------------------------------------------------- atomicity


class CrashingFs(OsFileSystem):
    """Real file operations, but ``replace`` onto a name ending with ``target`` fails
    as if the machine went down right there."""

    def __init__(self, target: str) -> None:
        self.target = target

    def replace(self, src: str, dst: str) -> None:
        if dst.endswith(self.target):
            raise OSError(errno.EIO, "simulated crash", dst)
        super().replace(src, dst)


def test_a_promotion_killed_before_its_first_step_changes_nothing(site: dict[str, Path]) -> None:
    dist = site["dist"]
    before = {p.name: p.read_bytes() for p in (dist / "manifest.json", dist / "canary.json")}
    with pytest.raises(RolloutError, match="simulated crash"):
        promote_canary(dist, fs=CrashingFs("/manifest.json"))
    assert {p: (dist / p).read_bytes() for p in before} == before
    assert not [p for p in dist.iterdir() if p.name.startswith(".manifest.json")]  # no temp left


def test_a_promotion_killed_halfway_is_consistent_and_finishes(site: dict[str, Path]) -> None:
    dist = site["dist"]
    canary = read_pointers(dist).canary
    assert canary is not None
    # manifest.json is replaced, then the machine dies before canary.json is retired.
    with pytest.raises(RolloutError, match="simulated crash"):
        promote_canary(dist, fs=CrashingFs(f"canaries/{canary.generation}.json"))
    assert (dist / "canary.json").exists()
    pointers = read_pointers(dist)
    # Every reader sees one consistent state: the canary is the stable one, no canary runs.
    assert pointers.stable is not None and pointers.stable.generation == canary.generation
    assert pointers.canary is None
    # The next promote (or abort) retires the pointer, whatever it was given.
    assert promote_canary(dist).generation == canary.generation
    assert not (dist / "canary.json").exists()
    assert read_pointers(dist).stable == pointers.stable


def test_a_build_finishes_a_promotion_killed_halfway(site: dict[str, Path]) -> None:
    dist = site["dist"]
    canary = read_pointers(dist).canary
    assert canary is not None
    with pytest.raises(RolloutError):
        promote_canary(dist, fs=CrashingFs(f"canaries/{canary.generation}.json"))
    build(make_src(site["tmp"] / "v3", 3), dist, OPTIONS)
    # The stale pointer is retired first: it must not name a canary again once
    # the new build makes another generation the stable one.
    assert not (dist / "canary.json").exists()
    assert canary.generation in ended_canaries(dist)
    stable = read_pointers(dist).stable
    assert stable is not None and stable.generation > canary.generation


def test_an_abort_is_one_rename(site: dict[str, Path]) -> None:
    dist = site["dist"]
    canary = read_pointers(dist).canary
    assert canary is not None
    with pytest.raises(RolloutError, match="simulated crash"):
        abort_canary(dist, fs=CrashingFs(f"{canary.generation}.json"))
    assert read_pointers(dist).canary == canary  # still running: nothing half-done
    with pytest.raises(RolloutError, match="now generation"):
        abort_canary(dist, generation="some-other-generation")
    assert abort_canary(dist, generation=canary.generation) == canary
    assert read_pointers(dist).canary is None


# --------------------------------------------------------------------------- retention, serve


def test_retention_keeps_a_running_canary_and_ended_ones(site: dict[str, Path]) -> None:
    dist = site["dist"]
    first = read_pointers(dist)
    assert first.canary_manifest is not None and first.stable is not None
    # The tightest retention keeps the stable and the running canary.
    removed_generations, _, _ = gc(dist, Retention(keep=1, keep_days=0))
    assert removed_generations == []
    for manifest in (first.stable, first.canary_manifest):
        for path in manifest.files():
            assert (dist / path).is_file(), path
    # Rolled back, then a new stable build: the old canary is a generation pages
    # loaded, kept like any other retained one (not dropped as unpublished).
    abort_canary(dist)
    build(make_src(site["tmp"] / "v3", 3), dist, OPTIONS)
    assert (dist / "manifests" / f"{first.canary_manifest.generation}.json").is_file()
    for path in first.canary_manifest.files():
        assert (dist / path).is_file(), path
    # Once retention lets it go, its record goes with it.
    build(make_src(site["tmp"] / "v4", 4), dist, BuildOptions(retention=Retention(1, 0), jobs=1))
    assert not (dist / "manifests" / f"{first.canary_manifest.generation}.json").exists()
    assert first.canary_manifest.generation not in ended_canaries(dist)


def test_a_canary_build_killed_before_its_pointer_is_dropped(site: dict[str, Path]) -> None:
    dist = site["dist"]
    abort_canary(dist)
    # A manifest in manifests/ with no pointer ever written: a build killed in between.
    leftover = read_pointers(dist).stable
    assert leftover is not None
    ghost = Manifest("29991231T000000000000Z-deadbeef", T0, leftover.assets, leftover.entries)
    (dist / "manifests" / f"{ghost.generation}.json").write_bytes(ghost.dumps())
    build(make_src(site["tmp"] / "v3", 3), dist, OPTIONS)
    assert not (dist / "manifests" / f"{ghost.generation}.json").exists()


def test_unblank_serve_serves_the_canary_files(site: dict[str, Path]) -> None:
    dist = site["dist"]
    pointers = read_pointers(dist)
    assert pointers.canary_manifest is not None and pointers.stable is not None
    canary_only = sorted(pointers.canary_manifest.paths() - pointers.stable.paths())
    assert canary_only, "the canary changed report.js: its fingerprinted name is new"
    app = create_app(dist, reload_interval=0)

    async def fetch(paths: list[str]) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.get(p) for p in paths]

    try:
        paths = [f"/static/{p}" for p in canary_only] + ["/_unblank/manifest.json"]
        answers = asyncio.run(fetch(paths))
    finally:
        app.close()
    for answer in answers[:-1]:
        assert answer.status_code == 200, answer.url
    served: dict[str, Any] = answers[-1].json()
    assert served["generation"] == pointers.stable.generation  # the manifest stays stable's
