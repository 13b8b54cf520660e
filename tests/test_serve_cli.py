"""``unblank serve DIST`` as users run it: a real process, real ports, real signals.

- Under uvicorn (one worker and two) and granian: it becomes healthy, serves
  files, writes one JSON access-log line per request on stdout, and exits 0
  on SIGINT or SIGTERM, leaving no worker behind.
- Every answer carries a ``Date`` header (RFC 9110 §6.6.1).
- Mistakes are exit status 2 with a message: a missing DIST, a bad size.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_serve_deploy import publish, sri384
from unblank import Manifest
from unblank_server.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = ("sdk", "static_server", "fallback_pages")
START_TIMEOUT = 30.0  # a cold start imports uvicorn/granian and spawns workers
STOP_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    src = tmp_path_factory.mktemp("cli_src")
    out = tmp_path_factory.mktemp("cli") / "dist"
    return out, publish(src, out, 0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    env = dict(os.environ)
    roots = [str(REPO_ROOT / root) for root in SOURCE_ROOTS]
    env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
    return env


@dataclass
class Served:
    process: subprocess.Popen[str]
    base_url: str
    stdout: str = ""
    stderr: str = ""

    def stop(self, signum: int) -> int:
        """Send ``signum``, wait for the exit (bounded) and keep what it printed."""
        self.process.send_signal(signum)
        self.stdout, self.stderr = self.process.communicate(timeout=STOP_TIMEOUT)
        return self.process.returncode

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON objects among stdout's lines (granian logs there too, as text)."""
        found = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found


@contextmanager
def start(dist: Path, *options: str) -> Iterator[Served]:
    port = free_port()
    command = [sys.executable, "-m", "unblank_server", "serve", str(dist), "--port", str(port)]
    process = subprocess.Popen(
        [*command, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        start_new_session=True,  # its workers too can be killed as one group
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                out, err = process.communicate()
                pytest.fail(f"unblank serve exited {process.returncode}\n{out}\n{err}")
            try:
                if httpx.get(f"{served.base_url}/_unblank/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"unblank serve {' '.join(options)} not healthy in {START_TIMEOUT}s")
            time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=STOP_TIMEOUT)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def check_date(response: httpx.Response) -> None:
    """RFC 9110 §6.6.1: an origin server with a clock sends Date, an IMF-fixdate."""
    assert "date" in response.headers, f"no Date header: {dict(response.headers)}"
    value = response.headers["date"]
    assert value.endswith(" GMT"), value
    sent = parsedate_to_datetime(value)
    assert abs(sent - datetime.now(UTC)) < timedelta(minutes=5), value


def fetch_and_check(served: Served, manifest: Manifest, prefix: str = "/static") -> list[str]:
    """Fetch each file by both names; the paths requested."""
    paths = []
    with httpx.Client(base_url=served.base_url, timeout=10) as client:
        for name, asset in manifest.assets.items():
            for path in (f"{prefix}/{asset.path}", f"{prefix}/{name}"):
                answer = client.get(path)
                assert answer.status_code == 200, path
                assert sri384(answer.content) == asset.integrity, path
                check_date(answer)
                paths.append(path)
        missing = client.get(f"{prefix}/app.000000000000.js", headers={"accept": "text/html"})
        assert missing.status_code == 404 and "Page not found" in missing.text
        check_date(missing)
        paths.append(f"{prefix}/app.000000000000.js")
    return paths


def check_access_log(served: Served, paths: list[str]) -> None:
    records = [e for e in served.json_lines() if e.get("logger") == "unblank.access"]
    logged = [(e["http"]["method"], e["http"]["path"]) for e in records]
    for path in paths:
        assert ("GET", path) in logged, f"{path} not in the access log:\n{served.stdout}"
    for entry in records:
        assert entry["level"] == "info" and entry["time"].endswith("+00:00")
        assert entry["http"]["client"].startswith("127.0.0.1:")
        assert entry["http"]["status"] in (200, 404)


# --------------------------------------------------------------------------- servers


@pytest.mark.slow
def test_serve_under_uvicorn_logs_json_and_stops_on_sigint(dist: tuple[Path, Manifest]) -> None:
    folder, manifest = dist
    with start(folder) as served:
        paths = fetch_and_check(served, manifest)
        report = httpx.get(f"{served.base_url}/_unblank/health").json()
        assert report["generation"] == manifest.generation
        assert served.stop(signal.SIGINT) == 0, served.stderr
        check_access_log(served, paths)
        assert "Application shutdown complete" in served.stderr


@pytest.mark.slow
def test_serve_under_granian(dist: tuple[Path, Manifest]) -> None:
    pytest.importorskip("granian", reason="granian is not installed: pip install unblank[granian]")
    folder, manifest = dist
    with start(folder, "--server", "granian", "--prefix", "/assets/") as served:
        paths = fetch_and_check(served, manifest, prefix="/assets")
        metrics = httpx.get(f"{served.base_url}/_unblank/metrics")
        assert metrics.status_code == 200
        assert f'unblank_generation_info{{generation="{manifest.generation}"}} 1.0' in metrics.text
        assert served.stop(signal.SIGTERM) == 0, served.stderr
        check_access_log(served, paths)


@pytest.mark.slow
def test_serve_with_two_uvicorn_workers(dist: tuple[Path, Manifest]) -> None:
    folder, manifest = dist
    with start(folder, "--workers", "2", "--no-access-log", "--memory", "0") as served:
        fetch_and_check(served, manifest)
        assert served.stop(signal.SIGTERM) == 0, served.stderr
        workers = [
            int(line.rsplit("[", 1)[1].rstrip("]"))
            for line in served.stderr.splitlines()
            if "Started server process [" in line
        ]
        assert len(workers) == 2, served.stderr
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers), "a worker outlived unblank serve"
        assert served.json_lines() == []  # --no-access-log


# --------------------------------------------------------------------------- mistakes


def test_serve_missing_dist_is_exit_status_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dist"
    done = subprocess.run(
        [sys.executable, "-m", "unblank_server", "serve", str(missing), "--port", "0"],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2, done
    assert str(missing) in done.stderr and "not a folder" in done.stderr
    assert done.stderr.startswith("unblank serve: error: ")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--memory", "12Q"], "'12Q' is not a size"),
        (["--memory-file-limit", "lots"], "'lots' is not a size"),
        (["--port", "70000"], "not a TCP port"),
        (["--server", "gunicorn"], "invalid choice: 'gunicorn'"),
    ],
)
def test_serve_bad_option_is_a_usage_error(
    tmp_path: Path, options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", str(tmp_path), *options])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and message in err


def test_serve_bad_setting_is_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--prefix", "assets"]) == 2
    assert "'assets' must be empty or start with '/'" in capsys.readouterr().err


def test_serve_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "DIST", "--host", "--port", "--workers", "--server", "--prefix", "--cors-origin",
        "--max-in-flight", "--memory", "--memory-file-limit", "--reload-interval",
        "--access-log", "--no-access-log", "--log-level", "granian",
    ):  # fmt: skip
        assert option in out, option
