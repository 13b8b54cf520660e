"""Deploys without white screens: `unblank serve` under real uvicorn while builds publish.

- A client hammers the server (fingerprinted files of the first generation,
  logical names, the manifest) while the real builder publishes new
  generations: every answer is a 200 or 304, complete and correct, old
  fingerprinted files stay served and the manifest switches, with no restart.
- A broken ``manifest.json`` keeps the last good generation served.
- A generation that ``unblank gc`` removed stops being served once reloaded.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brotli
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.realserver import serve_in_thread
from unblank import Manifest
from unblank_server.app import StaticApp, create_app
from unblank_server.builder import BuildOptions, build
from unblank_server.compress import CompressionSettings

RELOAD = 0.05  # seconds between the server's looks at DIST
WAIT = 10.0  # the longest any poll below waits for the server to notice a change
CLIENTS = 8
MAX_REQUESTS = 3000
MAX_SECONDS = 20.0
DEPLOYS = 4  # generations published while the client hammers (after the first)
BETWEEN_DEPLOYS = 0.15
ENCODINGS = ("br", "gzip", "identity", "br, gzip", "gzip;q=1, br;q=0.5")
FAST = BuildOptions(compression=CompressionSettings(brotli_quality=4, gzip_level=6), jobs=1)

RunUnblank = Callable[..., Any]


# --------------------------------------------------------------------------- helpers


def write_sources(src: Path, version: int) -> None:
    """A small front end whose app.js/app.css change with ``version``; lib.js never does;
    big.js is larger than the memory tier's file limit used below, so it is streamed."""
    src.mkdir(parents=True, exist_ok=True)
    (src / "app.js").write_text(
        f'import "./lib.js";\ndocument.body.dataset.version = "{version}";\n'
        + f"// generation {version}\n" * 40
    )
    (src / "app.css").write_text(f"body {{ --version: {version}; }}\n" * 60)
    (src / "lib.js").write_text("export const lib = 'unchanged';\n" * 30)
    line = f"export const big{version} = '{'x' * 60}';\n"
    (src / "big.js").write_text(line * (96_000 // len(line)))


def publish(src: Path, dist: Path, version: int) -> Manifest:
    """Run the real builder on version ``version`` of the sources; the manifest it published."""
    write_sources(src, version)
    result = build(src, dist, FAST)
    assert result.published
    return Manifest.loads((dist / "manifests" / f"{result.generation}.json").read_bytes())


def sri384(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode("ascii")


def decode(raw: bytes, coding: str | None) -> bytes:
    if coding in (None, "identity"):
        return raw
    if coding == "br":
        return bytes(brotli.decompress(raw))
    if coding == "gzip":
        return gzip.decompress(raw)
    raise AssertionError(f"unexpected Content-Encoding {coding!r}")


def metric(base_url: str, name: str, **labels: str) -> float:
    """The value of one sample of ``/_unblank/metrics``."""
    text = httpx.get(f"{base_url}/_unblank/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in the metrics page:\n{text}")


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(0.02)


def health(base_url: str) -> dict[str, Any]:
    answer = httpx.get(f"{base_url}/_unblank/health", timeout=10)
    assert answer.headers.get("content-type") == "application/json", (
        f"/_unblank/health answered {answer.status_code} {answer.headers} {answer.text[:500]!r}"
    )
    report: dict[str, Any] = answer.json()
    report["http_status"] = answer.status_code
    return report


@contextmanager
def serving(dist: Path, **settings: Any) -> Iterator[tuple[StaticApp, str]]:
    """The app for ``dist`` under uvicorn in a thread: ``(app, base URL)``."""
    settings.setdefault("reload_interval", RELOAD)
    app = create_app(dist, **settings)
    try:
        with serve_in_thread(app) as base_url:
            yield app, base_url
    finally:
        app.close()


# --------------------------------------------------------------------------- the hammer


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request of the hammering client and what came back."""

    kind: str  # "fingerprinted", "logical" or "manifest"
    name: str  # the logical name (or "manifest.json")
    status: int
    headers: httpx.Headers
    raw: bytes  # the body as sent, still content-coded
    sent_etag: str | None
    published_before: int  # generations whose build had returned when the request went out
    started_after: int  # generations whose build had begun when the answer was in


class Deploys:
    """Counts builds started and finished, for the window each answer must fall in."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0


def hammer(
    base_url: str,
    targets: list[tuple[str, str, str]],
    deploys: Deploys,
    stop: threading.Event,
    out: list[Exchange],
    count: list[int],
    lock: threading.Lock,
    seed: int,
) -> None:
    """Request ``targets`` (kind, name, URL path) in turn until stopped or the budget runs out."""
    etags: dict[tuple[str, str], str] = {}
    i = seed
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while not stop.is_set():
            with lock:
                if count[0] >= MAX_REQUESTS:
                    return
                count[0] += 1
            kind, name, path = targets[i % len(targets)]
            coding = ENCODINGS[(i // len(targets)) % len(ENCODINGS)]
            headers = {"accept-encoding": coding}
            sent_etag = etags.get((path, coding)) if i % 3 == 0 else None
            if sent_etag is not None:
                headers["if-none-match"] = sent_etag
            before = deploys.finished
            with client.stream("GET", path, headers=headers) as response:
                raw = b"".join(response.iter_raw())
            etag = response.headers.get("etag")
            if etag is not None:
                etags[(path, coding)] = etag
            status, answered = response.status_code, response.headers
            after = deploys.started
            out.append(Exchange(kind, name, status, answered, raw, sent_etag, before, after))
            i += 1


def check_exchange(
    exchange: Exchange, generations: list[Manifest], manifest_bytes: dict[str, bytes]
) -> str | None:
    """What is wrong with one answer, or None; returns the generation a manifest answer named."""
    where = f"{exchange.kind} {exchange.name} ({exchange.status})"
    assert exchange.status in (200, 304), f"{where}: {exchange.raw[:300]!r}"
    if exchange.status == 304:
        assert exchange.raw == b"", where
        assert exchange.headers["etag"] == exchange.sent_etag, where
        return None
    assert int(exchange.headers["content-length"]) == len(exchange.raw), f"{where}: truncated"
    body = decode(exchange.raw, exchange.headers.get("content-encoding"))
    # The server may lag one reload behind the last finished build, and a build
    # publishes (renames manifest.json) a moment before it returns.
    first = max(0, exchange.published_before - 2)
    window = generations[first : exchange.started_after]
    if exchange.kind == "fingerprinted":
        assert sri384(body) == generations[0].assets[exchange.name].integrity, where
        assert "immutable" in exchange.headers["cache-control"], where
        return None
    if exchange.kind == "logical":
        digests = {m.generation: m.assets[exchange.name].integrity for m in window}
        assert sri384(body) in digests.values(), (
            f"{where}: the body is none of generations {sorted(digests)}"
        )
        assert exchange.headers["cache-control"].startswith("no-cache"), where
        return None
    try:
        named = json.loads(body)["generation"]
    except ValueError as exc:
        raise AssertionError(f"{where}: {exchange.headers} {exchange.raw[:200]!r}") from exc
    assert named in {m.generation for m in window}, f"{where}: generation {named} out of window"
    assert body == manifest_bytes[named], f"{where}: not the published manifest of {named}"
    return str(named)


def test_builds_publish_while_a_client_hammers_and_nothing_fails(tmp_path: Path) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    generations = [publish(src, dist, 0)]
    first = generations[0]
    targets = [("fingerprinted", name, f"/static/{a.path}") for name, a in first.assets.items()]
    targets += [("logical", name, f"/static/{name}") for name in first.assets]
    targets.append(("manifest", "manifest.json", "/_unblank/manifest.json"))
    deploys = Deploys()
    deploys.started = deploys.finished = 1
    stop = threading.Event()
    exchanges: list[list[Exchange]] = [[] for _ in range(CLIENTS)]
    count, lock = [0], threading.Lock()
    failures: list[BaseException] = []

    def client(index: int) -> None:
        try:
            hammer(base_url, targets, deploys, stop, exchanges[index], count, lock, index * 5)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    with serving(dist, memory_file_limit=64 * 1024) as (app, base_url):
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + MAX_SECONDS
        try:
            for version in range(1, DEPLOYS + 1):
                time.sleep(BETWEEN_DEPLOYS)
                deploys.started += 1
                generations.append(publish(src, dist, version))
                deploys.finished += 1
            last = generations[-1].generation
            wait_for(lambda: health(base_url)["generation"] == last, "the last generation")
            time.sleep(BETWEEN_DEPLOYS)  # the client keeps going on the new generation
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not failures, failures
        assert not any(thread.is_alive() for thread in threads)

        manifest_bytes = {
            m.generation: (dist / "manifests" / f"{m.generation}.json").read_bytes()
            for m in generations
        }
        assert len(set(manifest_bytes)) == DEPLOYS + 1
        seen_generations: set[str] = set()
        for stream in exchanges:
            named_before = ""
            for exchange in stream:
                named = check_exchange(exchange, generations, manifest_bytes)
                if named is not None:
                    assert named >= named_before, "the manifest went back a generation"
                    named_before = named
                    seen_generations.add(named)
        answers = [e for stream in exchanges for e in stream]
        print(
            "STATS",
            len(answers),
            sorted(seen_generations),
            {s: sum(1 for e in answers if e.status == s) for s in (200, 304)},
        )
        assert len(answers) >= 100, f"only {len(answers)} requests were made"
        assert {e.status for e in answers} == {200, 304}
        # The client saw generations change under it, not just the first and the last.
        assert len(seen_generations) >= 3, seen_generations

        # After the deploys: the manifest is the last generation's, files of the
        # first are still there, and every generation is served.
        manifest = httpx.get(f"{base_url}/_unblank/manifest.json")
        assert manifest.status_code == 200
        assert manifest.json()["generation"] == generations[-1].generation
        assert manifest.content == manifest_bytes[generations[-1].generation]
        for generation in (generations[0], generations[-1]):
            for asset in generation.assets.values():
                answer = httpx.get(f"{base_url}/static/{asset.path}")
                assert answer.status_code == 200, asset.path
                assert sri384(answer.content) == asset.integrity
        assert health(base_url)["generations"] == [m.generation for m in generations]
        app_js = httpx.get(f"{base_url}/static/app.js")
        assert sri384(app_js.content) == generations[-1].assets["app.js"].integrity
        assert app.stats.reloads == DEPLOYS + 1


def write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.broken-tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def test_a_broken_manifest_keeps_the_last_good_generation(tmp_path: Path) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    good = publish(src, dist, 0)
    good_bytes = (dist / "manifest.json").read_bytes()
    with serving(dist) as (_, base_url):
        failures = metric(base_url, "unblank_generation_reload_failures_total")
        write_atomic(dist / "manifest.json", b'{"version": 1, "generation": ')
        wait_for(
            lambda: metric(base_url, "unblank_generation_reload_failures_total") > failures,
            "the failed reload to be counted",
        )
        report = health(base_url)
        assert report["http_status"] == 200
        assert report["ready"] is True and report["generation"] == good.generation
        served = httpx.get(f"{base_url}/_unblank/manifest.json")
        assert served.status_code == 200 and served.content == good_bytes
        for name, asset in good.assets.items():
            for path in (asset.path, name):
                answer = httpx.get(f"{base_url}/static/{path}")
                assert answer.status_code == 200, path
                assert sri384(answer.content) == asset.integrity
        # Counted once, not at every look at DIST.
        time.sleep(RELOAD * 6)
        assert metric(base_url, "unblank_generation_reload_failures_total") == failures + 1

        # Repaired, and a new build goes live as usual.
        write_atomic(dist / "manifest.json", good_bytes)
        newer = publish(src, dist, 1)
        wait_for(lambda: health(base_url)["generation"] == newer.generation, "the new generation")
        answer = httpx.get(f"{base_url}/static/app.js")
        assert sri384(answer.content) == newer.assets["app.js"].integrity


def test_a_generation_removed_by_gc_stops_being_served(
    tmp_path: Path, run_unblank: RunUnblank
) -> None:
    src, dist = tmp_path / "src", tmp_path / "dist"
    old = publish(src, dist, 0)
    new = publish(src, dist, 1)
    with serving(dist) as (_, base_url):
        assert health(base_url)["generations"] == [old.generation, new.generation]
        old_app = f"{base_url}/static/{old.assets['app.js'].path}"
        assert httpx.get(old_app).status_code == 200  # and now in the memory tier
        done = run_unblank("gc", dist, "--keep", "1", "--keep-days", "0", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["removed_generations"] == [old.generation]
        wait_for(
            lambda: health(base_url)["generations"] == [new.generation],
            "the server to drop the collected generation",
        )
        page = httpx.get(old_app, headers={"accept": "text/html"})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Page not found" in page.text
        # Visible to a page on another origin that asked with `crossorigin`.
        assert page.headers["access-control-allow-origin"] == "*"
        problem = httpx.get(old_app, headers={"accept": "application/problem+json"})
        assert problem.status_code == 404
        assert problem.headers["content-type"].startswith("application/problem+json")
        assert problem.json()["status"] == 404
        # What the current generation shares with the old one is still there.
        assert old.assets["lib.js"].path == new.assets["lib.js"].path
        for asset in new.assets.values():
            answer = httpx.get(f"{base_url}/static/{asset.path}")
            assert answer.status_code == 200, asset.path
            assert sri384(answer.content) == asset.integrity


def test_files_of_a_generation_published_a_moment_ago_are_served_at_once(
    tmp_path: Path,
) -> None:
    # A shell rendered from the new manifest asks for its files before the
    # watcher's next look (here: a minute away): a miss looks at DIST itself.
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.js").write_text("export const v = 1;\n")
    dist = tmp_path / "dist"
    build(src, dist)
    with create_app(dist, reload_interval=60) as app, serve_in_thread(app) as base:
        assert httpx.get(f"{base}/_unblank/health").status_code == 200
        (src / "app.js").write_text("export const v = 2;\n")
        build(src, dist)
        new = Manifest.loads((dist / "manifest.json").read_bytes())
        answer = httpx.get(f"{base}/static/{new.assets['app.js'].path}")
        assert answer.status_code == 200
        assert answer.text == "export const v = 2;\n"
        # Scanning for paths nobody published stays a cheap 404.
        for n in range(20):
            assert httpx.get(f"{base}/static/nope-{n}.js").status_code == 404
