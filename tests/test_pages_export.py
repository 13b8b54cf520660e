"""``unblank pages export``: the static pages and nginx snippets, and a real nginx serving them."""

from __future__ import annotations

import html.parser
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from unblank_pages import REASONS, Brand, PageRenderer
from unblank_pages.export import EDGE_REFERENCE, EDGE_STATUSES, export_pages

NGINX = Path("/usr/sbin/nginx")
LOCALES = ("en", "zh-Hans")
NGINX_START_TIMEOUT = 5.0  # seconds; nginx starts in milliseconds


class _TagBalance(html.parser.HTMLParser):
    """Counts open tags that are never closed: enough to tell a whole page from a broken one."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "source", "path", "rect"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.mismatched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        elif tag not in self.VOID:
            self.mismatched.append(tag)


def _title(reason: str, locale: str) -> str:
    text: str = PageRenderer().catalogs[locale]["reasons"][reason]["title"]
    return text


# -- the written tree -------------------------------------------------------------


def test_export_pages_writes_every_reason_per_locale(tmp_path: Path) -> None:
    written = export_pages(tmp_path / "out")
    out = (tmp_path / "out").resolve()
    for locale in LOCALES:
        for reason in REASONS:
            page = out / locale / f"{reason}.html"
            assert page in written
            body = page.read_text(encoding="utf-8")
            assert body.lstrip().lower().startswith("<!doctype html>")
            assert f'lang="{locale}"' in body
            assert _title(reason, locale) in body
            assert f"<code>{EDGE_REFERENCE}</code>" in body
            checker = _TagBalance()
            checker.feed(body)
            checker.close()
            assert checker.stack == [] and checker.mismatched == [], (locale, reason)
    for reason in REASONS:
        assert (out / f"{reason}.html").read_bytes() == (out / "en" / f"{reason}.html").read_bytes()
    assert len(written) == len(REASONS) * (len(LOCALES) + 1) + 2


def test_export_pages_snippets_name_every_status_and_absolute_folder(tmp_path: Path) -> None:
    export_pages(tmp_path / "out")
    out = (tmp_path / "out").resolve()
    server = (out / "nginx" / "unblank-pages-server.conf").read_text(encoding="utf-8")
    http = (out / "nginx" / "unblank-pages-http.conf").read_text(encoding="utf-8")
    assert "proxy_intercept_errors on;" in server
    for status, reason in EDGE_STATUSES.items():
        assert f"error_page {status} /_unblank/pages/{reason}.html;" in server
    assert "error_page 404" not in server
    assert f'alias "{out}/$unblank_pages_locale/";' in server
    assert "internal;" in server
    assert 'add_header Cache-Control "no-store" always;' in server
    assert "map $http_accept_language $unblank_pages_locale {" in http
    assert "default en;" in http
    assert " zh-Hans;" in http


def test_export_pages_uses_the_renderer_brand(tmp_path: Path) -> None:
    renderer = PageRenderer(brand=Brand(name="Northwind Loans"))
    export_pages(tmp_path, renderer=renderer)
    assert "Northwind Loans" in (tmp_path / "upstream.html").read_text(encoding="utf-8")


def test_export_pages_refuses_a_file_as_out(tmp_path: Path) -> None:
    target = tmp_path / "pages"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match="not a folder"):
        export_pages(target)


def test_export_pages_refuses_a_folder_nginx_cannot_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nginx"):
        export_pages(tmp_path / "$pages")


def test_cli_pages_export_reports_what_it_wrote(
    tmp_path: Path, run_unblank: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    done = run_unblank("pages", "export", tmp_path / "out", "--brand-name", "Northwind")
    assert done.returncode == 0, done.stderr
    assert f"{len(REASONS) * 3 + 2} files" in done.stdout
    assert str((tmp_path / "out").resolve()) in done.stdout
    assert "Northwind" in (tmp_path / "out" / "upstream.html").read_text(encoding="utf-8")


def test_cli_pages_export_quiet_prints_nothing(
    tmp_path: Path, run_unblank: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    done = run_unblank("pages", "export", tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_cli_pages_export_refuses_a_file(
    tmp_path: Path, run_unblank: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    target = tmp_path / "out"
    target.write_text("")
    done = run_unblank("pages", "export", target)
    assert done.returncode == 2
    assert "unblank pages: error:" in done.stderr and "not a folder" in done.stderr


# -- a real nginx in front of a dead and an overloaded upstream -------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Overloaded(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"app says: busy"
        self.send_response(503)
        self.send_header("Retry-After", "120")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Edge:
    port: int

    def get(self, path: str, accept_language: str | None = None) -> httpx.Response:
        headers = {"Accept-Language": accept_language} if accept_language else {}
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=5)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Edge]:
    """nginx with the exported snippets: / proxies to a closed port, /busy to a 503 app."""
    if not NGINX.is_file():
        pytest.fail(f"{NGINX} is missing: run scripts/system-deps.sh (Debian package nginx)")
    root = tmp_path_factory.mktemp("edge")
    export_pages(root / "pages")
    snippets = (root / "pages" / "nginx").resolve()
    busy = ThreadingHTTPServer(("127.0.0.1", 0), _Overloaded)
    threading.Thread(target=busy.serve_forever, daemon=True).start()
    port, dead = _free_port(), _free_port()
    (root / "logs").mkdir()
    (root / "nginx.conf").write_text(
        f"""
daemon off;
{_worker_user()}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/scratch;
    proxy_temp_path {root}/scratch;
    fastcgi_temp_path {root}/scratch;
    uwsgi_temp_path {root}/scratch;
    scgi_temp_path {root}/scratch;
    include {snippets}/unblank-pages-http.conf;
    server {{
        listen 127.0.0.1:{port};
        include {snippets}/unblank-pages-server.conf;
        location / {{ proxy_pass http://127.0.0.1:{dead}; }}
        location /busy {{ proxy_pass http://127.0.0.1:{busy.server_address[1]}; }}
    }}
}}
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [NGINX, "-p", f"{root}/", "-c", f"{root}/nginx.conf", "-e", f"{root}/error.log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process, root)
        yield _Edge(port)
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful shutdown
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        busy.shutdown()
        busy.server_close()
        shutil.rmtree(root / "scratch", ignore_errors=True)


def _worker_user() -> str:
    # Run as root, nginx hands requests to workers running as "nobody", who cannot
    # read pytest's private temporary folders: keep the workers as this user.
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + NGINX_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
            pytest.fail(f"nginx exited {process.returncode}:\n{output}\n{log}", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} within {NGINX_START_TIMEOUT}s")


@pytest.mark.slow
def test_nginx_answers_dead_upstream_with_the_upstream_page(edge: _Edge) -> None:
    response = edge.get("/")
    headers, body = response.headers, response.text
    assert response.status_code == 502
    assert _title("upstream", "en") in body
    assert "<center>nginx" not in body  # nginx's own error page
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Language"] == "en"
    assert headers.get("X-Request-ID")
    # The reference on the page is the one nginx logs and sends in X-Request-ID.
    assert f"<code>{headers['X-Request-ID']}</code>" in body
    assert "Retry-After" not in headers


@pytest.mark.slow
@pytest.mark.parametrize(
    ("accept_language", "locale"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("zh-TW,zh;q=0.9", "en"),  # Traditional Chinese: no catalog, so the default
        ("en-GB,zh-CN;q=0.5", "en"),
        ("de-DE", "en"),
    ],
)
def test_nginx_picks_the_page_language(edge: _Edge, accept_language: str, locale: str) -> None:
    response = edge.get("/", accept_language)
    assert response.status_code == 502
    assert _title("upstream", locale) in response.text
    assert response.headers["Content-Language"] == locale


@pytest.mark.slow
def test_nginx_replaces_the_app_503_with_the_overloaded_page(edge: _Edge) -> None:
    response = edge.get("/busy", "zh-CN")
    assert response.status_code == 503
    assert _title("overloaded", "zh-Hans") in response.text
    assert "app says: busy" not in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Retry-After"] == "120"  # the app's, passed on
    assert 'data-retry-after="120"' in response.text  # and counted down by the page


@pytest.mark.slow
def test_nginx_does_not_serve_the_pages_folder_directly(edge: _Edge) -> None:
    response = edge.get("/_unblank/pages/upstream.html")
    # The location is internal: asked for directly, nginx answers 404 (its own page).
    assert response.status_code == 404
    assert _title("upstream", "en") not in response.text
