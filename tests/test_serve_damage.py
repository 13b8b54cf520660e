"""What the server does when DIST or the requests turn against it: damaged
variants, folders swapped for links, rollbacks, megabyte headers, mounting."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from unblank import Manifest
from unblank.manifest import variant_path
from unblank_server.app import StaticApp, create_app
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings

FAST = BuildOptions(compression=CompressionSettings(brotli_quality=1, gzip_level=1))
SCRIPT = "".join(f"export const value{i} = {i} * 2; // line {i}\n" for i in range(400))


def publish(src: Path, dist: Path, when: datetime | None = None) -> Manifest:
    build(src, dist, FAST, now=when)
    return Manifest.loads((dist / "manifest.json").read_bytes())


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "css").mkdir(parents=True)
    (src / "app.js").write_text(SCRIPT, encoding="utf-8")
    (src / "css" / "site.css").write_text("body { color: #123456; }\n" * 40, encoding="utf-8")
    out = tmp_path / "dist"
    publish(src, out)
    return out


@pytest.fixture
def app(dist: Path) -> Iterator[StaticApp]:
    application = create_app(dist, reload_interval=0)
    yield application
    application.close()


def get(app: object, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path, headers=headers or {})

    return asyncio.run(run())


def damage(path: Path) -> None:
    """Same size, garbage content: only verification can tell."""
    size = path.stat().st_size
    path.write_bytes(b"\x1f\x8b" + bytes((n * 31 + 7) % 256 for n in range(size - 2)))


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_damaged_variant_falls_back_to_the_whole_file(
    app: StaticApp, dist: Path, coding: str
) -> None:
    asset = Manifest.loads((dist / "manifest.json").read_bytes()).assets["app.js"]
    damage(dist / variant_path(asset.path, coding))
    reply = get(app, f"/static/{asset.path}", {"accept-encoding": coding})
    assert reply.status_code == 200
    assert "content-encoding" not in reply.headers
    assert reply.content == SCRIPT.encode()


def test_damaged_variant_without_identity_is_a_guided_500(app: StaticApp, dist: Path) -> None:
    asset = Manifest.loads((dist / "manifest.json").read_bytes()).assets["app.js"]
    damage(dist / variant_path(asset.path, "gzip"))
    reply = get(
        app,
        f"/static/{asset.path}",
        {"accept-encoding": "gzip, identity;q=0", "accept": "text/html"},
    )
    assert reply.status_code == 500
    assert reply.headers["content-type"].startswith("text/html")
    assert "<h1" in reply.text


def test_folder_swapped_for_a_link_out_of_dist_is_refused(
    app: StaticApp, dist: Path, tmp_path: Path
) -> None:
    asset = Manifest.loads((dist / "manifest.json").read_bytes()).assets["css/site.css"]
    assert get(app, f"/static/{asset.path}").status_code == 200
    app.tier.clear()
    outside = tmp_path / "outside"
    outside.mkdir()
    for original in (dist / "css").iterdir():
        size = original.stat().st_size
        (outside / original.name).write_bytes((b"SECRET" * (size // 6 + 1))[:size])
    shutil.move(dist / "css", dist / "css.real")
    (dist / "css").symlink_to(outside, target_is_directory=True)
    for coding in ("identity", "gzip", "br"):
        reply = get(app, f"/static/{asset.path}", {"accept-encoding": coding})
        assert b"SECRET" not in reply.content
        assert reply.status_code == 404


def test_streamed_file_swapped_folder_is_refused(dist: Path, tmp_path: Path) -> None:
    application = create_app(dist, memory_bytes=0, reload_interval=0)
    try:
        asset = Manifest.loads((dist / "manifest.json").read_bytes()).assets["css/site.css"]
        outside = tmp_path / "elsewhere"
        shutil.copytree(dist / "css", outside)
        (outside / Path(asset.path).name).write_bytes(b"X" * asset.size)
        shutil.move(dist / "css", dist / "css.real")
        (dist / "css").symlink_to(outside, target_is_directory=True)
        reply = get(application, f"/static/{asset.path}")
        assert reply.status_code == 404
        assert b"XXXX" not in reply.content
    finally:
        application.close()


def test_rollback_moves_last_modified_forward(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "dist"
    src.mkdir()
    start = datetime.now(UTC) + timedelta(days=1)  # publications later than any file
    (src / "app.js").write_text("export const v = 1;\n", encoding="utf-8")
    publish(src, out, start)
    application = create_app(out, reload_interval=0)
    try:
        (src / "app.js").write_text("export const v = 2;\n", encoding="utf-8")
        publish(src, out, start + timedelta(minutes=1))
        application.store.reload()
        second = get(application, "/static/app.js")
        (src / "app.js").write_text("export const v = 1;\n", encoding="utf-8")  # roll back
        publish(src, out, start + timedelta(minutes=2))
        application.store.reload()
        third = get(application, "/static/app.js")
        assert third.content == b"export const v = 1;\n"
        revalidated = get(
            application, "/static/app.js", {"if-modified-since": second.headers["last-modified"]}
        )
        assert revalidated.status_code == 200
        assert revalidated.content == b"export const v = 1;\n"
    finally:
        application.close()


def test_megabyte_headers_are_answered_but_not_remembered(app: StaticApp, dist: Path) -> None:
    asset = Manifest.loads((dist / "manifest.json").read_bytes()).assets["app.js"]
    before = len(app._negotiated)
    for i in range(20):
        junk = f"gzip;q=0.5, x-{i}-" + "a" * 300_000
        reply = get(app, f"/static/{asset.path}", {"accept-encoding": junk})
        assert reply.status_code == 200
        missing = get(app, "/static/nope.js", {"accept": junk, "accept-language": junk})
        assert missing.status_code == 404
    assert len(app._negotiated) <= before + 1
    assert all(value is None or len(value) <= 256 for value in app.pages._formats)
    assert all(value is None or len(value) <= 256 for value in app.pages._locales)


def test_folders_and_the_root_are_not_found(app: StaticApp) -> None:
    for path in ("/static/", "/static/css/", "/static/css"):
        assert get(app, path).status_code == 404, path


def test_mounted_problem_type_points_under_the_mount(dist: Path) -> None:
    assets = create_app(dist, reload_interval=0)
    try:
        host = Starlette(routes=[Mount("/static", app=assets)])
        reply = get(host, "/static/missing.0123456789ab.js", {"accept": "application/json"})
        assert reply.status_code == 404
        problem = json.loads(reply.content)
        assert problem["type"] == "/static/_unblank/pages/not-found"
        page = get(host, problem["type"], {"accept": "text/html"})
        assert page.status_code == 200
        assert "<h1" in page.text
    finally:
        assets.close()


def test_page_by_name_is_200_but_its_problem_keeps_the_reason_status(app: StaticApp) -> None:
    reply = get(app, "/_unblank/pages/overloaded", {"accept": "application/json"})
    assert reply.status_code == 200
    assert json.loads(reply.content)["status"] == 503


def test_damage_keeps_gzip_magic_bytes(dist: Path) -> None:
    # The damage above keeps gzip's magic bytes: decoding, not sniffing, catches it.
    asset = Manifest.loads((dist / "manifest.json").read_bytes()).assets["app.js"]
    path = dist / variant_path(asset.path, "gzip")
    damage(path)
    with pytest.raises((OSError, EOFError, gzip.BadGzipFile)):
        gzip.decompress(path.read_bytes())
    assert hashlib.sha256(path.read_bytes()).hexdigest()
