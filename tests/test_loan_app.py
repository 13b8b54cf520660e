"""The example app's backend (examples/loan_app), without a browser.

In-process ASGI for the JSON API, the shell's headers and the chaos switches;
a real ``unblank serve`` on 127.0.0.1 for the manifest fetched by an
AssetClient and the verified copies the app serves again as a mirror. The
browser side is in test_watchdog_browser.py (the fault matrix's ``example``
runs).
"""

from __future__ import annotations

import asyncio
import doctest
import re
import shutil
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import examples.loan_app.quotes
from examples.loan_app.quotes import parse_quote_request, quote
from examples.loan_app.server import FRONTEND, MIRROR_PATH, Chaos, LoanApp, from_environment
from tests.realserver import serve_in_thread
from unblank import AssetCache, AssetClient, Manifest
from unblank.shell import WatchdogSettings
from unblank_server.app import create_app
from unblank_server.builder import build

ASSETS = "http://127.0.0.1:8001/static/"
MIRROR = "http://127.0.0.1:8002/static/"
JSON = {"accept": "application/json"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loan") / "dist"
    build(FRONTEND, out)
    return out


@pytest.fixture
def loan(dist: Path) -> LoanApp:
    return LoanApp(manifest=dist, base_url=ASSETS, mirrors=[MIRROR])


def call(app: LoanApp, job: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``job`` with an HTTP client talking to ``app`` in-process."""

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://loan.test") as client:
            return await job(client)

    return asyncio.run(main())


def get(app: LoanApp, url: str, **options: Any) -> httpx.Response:
    response: httpx.Response = call(app, lambda client: client.get(url, **options))
    return response


def post(app: LoanApp, url: str, **options: Any) -> httpx.Response:
    response: httpx.Response = call(app, lambda client: client.post(url, **options))
    return response


# --------------------------------------------------------------------------- quotes


def test_quotes_docstring_examples_run() -> None:
    result = doctest.testmod(examples.loan_app.quotes, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    ("term", "rate"), [(12, "6.90"), (24, "6.90"), (36, "7.40"), (48, "7.40"), (84, "7.90")]
)
def test_quote_rate_follows_the_term(term: int, rate: str) -> None:
    answer = quote(parse_quote_request({"amount": 10000, "term": term}))
    assert answer.annual_rate == Decimal(rate)
    # The payments repay the loan: the last cent of rounding is all that is left over.
    assert answer.total_repaid == answer.monthly_payment * term
    assert Decimal(0) < answer.total_interest < answer.amount


def test_quote_accepts_numbers_and_query_strings_alike() -> None:
    from_json = parse_quote_request({"amount": 12000.5, "term": 36})
    from_query = parse_quote_request({"amount": " 12000.50 ", "term": "36"})
    assert from_json == from_query
    assert from_json.amount == Decimal("12000.50")


# --------------------------------------------------------------------------- the JSON API


def test_api_quote_by_post_and_by_get(loan: LoanApp) -> None:
    posted = post(loan, "/api/quote", json={"amount": 12000, "term": 36}, headers=JSON)
    assert posted.status_code == 200
    assert posted.headers["cache-control"] == "no-store"
    assert posted.json() == {
        "amount": "12000.00",
        "term": 36,
        "annual_rate": "7.40",
        "monthly_payment": "372.72",
        "total_repaid": "13417.92",
        "total_interest": "1417.92",
        "currency": "USD",
    }
    got = get(loan, "/api/quote?amount=12000&term=36", headers=JSON)
    assert got.json() == posted.json()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["amount", "term"]),
        ({"amount": True, "term": 36}, ["amount"]),
        ({"amount": "12k", "term": 36}, ["amount"]),
        ({"amount": 999, "term": 36}, ["amount"]),
        ({"amount": 50000.01, "term": 36}, ["amount"]),
        ({"amount": "12000.001", "term": 36}, ["amount"]),
        ({"amount": 1e300, "term": 36}, ["amount"]),
        ({"amount": [12000], "term": 36}, ["amount"]),
        ({"amount": 12000, "term": 37}, ["term"]),
        ({"amount": 12000, "term": 36.0}, ["term"]),
        ({"amount": 12000, "term": False}, ["term"]),
        ({"amount": 12000, "term": "-36"}, ["term"]),
    ],
)
def test_api_bad_fields_are_422_problem_json_naming_each(
    loan: LoanApp, body: dict[str, Any], fields: list[str]
) -> None:
    answer = post(loan, "/api/quote", json=body, headers=JSON)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Content"
    assert problem["instance"] == answer.headers["x-request-id"]
    assert [e["pointer"] for e in problem["errors"]] == [f"#/{f}" for f in fields]
    assert all(e["detail"].startswith(e["pointer"][2:]) for e in problem["errors"])


def test_api_bad_query_names_the_parameter(loan: LoanApp) -> None:
    answer = get(loan, "/api/quote?amount=NaN&term=36")
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"detail": "amount must be a number of dollars, like 12000.50", "parameter": "amount"}
    ]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"amount": NaN, "term": 36}', "application/json", 422),  # Python's json reads NaN
        (b'{"amount": 12000, "term": 36', "application/json", 422),
        (b"\xff\xfe{}", "application/json", 422),
        (b"[12000, 36]", "application/json", 422),
        (b"[" * 4000, "application/json", 422),
        (b'{"amount": 12000, "term": 36}', "text/plain", 415),
        (b'{"amount": "' + b"1" * 5000 + b'", "term": 36}', "application/json", 413),
    ],
)
def test_api_bad_bodies_are_problem_json(
    loan: LoanApp, content: bytes, content_type: str, status: int
) -> None:
    headers = {**JSON, "content-type": content_type}
    answer = post(loan, "/api/quote", content=content, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == status


def test_api_too_big_without_content_length_is_stopped_while_reading(loan: LoanApp) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    answer = post(
        loan,
        "/api/quote",
        content=chunks(),
        headers={**JSON, "content-type": "application/json"},
    )
    assert answer.status_code == 413


def test_unknown_paths_and_methods_get_guided_answers(loan: LoanApp) -> None:
    missing = get(loan, "/nowhere", headers=JSON)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    page = call(loan, lambda client: client.delete("/api/quote"))
    assert page.status_code == 405
    assert "POST" in page.headers["allow"]
    assert 'data-reason="bad-request"' in page.text


# --------------------------------------------------------------------------- the shell


def nonces(html: str) -> set[str]:
    """The nonces of the <script> and <style> elements; each must have one.

    Data blocks (``<script type="application/json">``) are never run, so CSP
    does not apply to them.
    """
    tags = re.findall(r"<(?:script|style)\b[^>]*>", html)
    tags = [tag for tag in tags if 'type="application/json"' not in tag]
    assert tags
    found = {re.search(r'\snonce="([^"]+)"', tag) for tag in tags}
    assert None not in found, [t for t in tags if "nonce=" not in t]
    return {match.group(1) for match in found if match}


def test_shell_headers_and_a_strict_csp_with_the_inline_scripts_nonce(
    loan: LoanApp, dist: Path
) -> None:
    answer = get(loan, "/")
    assert answer.status_code == 200
    headers = answer.headers
    generation = Manifest.loads((dist / "manifest.json").read_bytes()).generation
    assert headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', headers["etag"])
    assert headers["x-unblank-generation"] == generation
    policy = headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert nonces(answer.text) == {nonce.group(1)}
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "script-src 'nonce-" in policy and "object-src 'none'" in policy
    for directive in ("style-src", "img-src", "connect-src"):
        sources = re.search(rf"{directive} ([^;]+)", policy)
        assert sources is not None
        assert {"http://127.0.0.1:8001", "http://127.0.0.1:8002"} <= set(sources[1].split())
    again = get(loan, "/")
    assert nonce.group(1) not in again.headers["content-security-policy"]


def test_shell_tags_carry_integrity_and_the_watchdog_knows_the_mirrors(loan: LoanApp) -> None:
    html = get(loan, "/").text
    entry = re.search(r'<script type="module" src="([^"]+)" integrity="sha384-[^"]+"', html)
    assert entry is not None and entry[1].startswith(ASSETS + "main.")
    assert re.search(r'<link rel="stylesheet" href="[^"]+/app\.[0-9a-f]{12}\.css" integ', html)
    assert f'"mirrors":["{MIRROR}"]' in html
    assert '<script type="importmap"' in html and f'"{MIRROR}report.' in html
    # The body holds nothing visible but the app's root: a white screen stays one.
    body = html.split("<body>", 1)[1]
    assert re.sub(r"<noscript>.*?</noscript>|\s", "", body, flags=re.S) == (
        '<divid="app"></div></body></html>'
    )


def test_shell_follows_a_new_build(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(FRONTEND, src)
    build(src, tmp_path / "dist")
    loan = LoanApp(manifest=tmp_path / "dist", base_url=ASSETS)
    first = get(loan, "/").headers["x-unblank-generation"]
    report = src / "report.js"
    report.write_text(report.read_text().replace("2026.1", "2026.2"))
    build(src, tmp_path / "dist")
    second = get(loan, "/")
    assert second.headers["x-unblank-generation"] != first
    published = Manifest.loads((tmp_path / "dist" / "manifest.json").read_bytes())
    assert published.assets["report.js"].path in second.text  # in the import map


def test_settings_changed_at_runtime_reach_the_next_shell(loan: LoanApp) -> None:
    loan.base_url = "http://127.0.0.1:9001/static/"
    loan.mirrors = []
    loan.watchdog = WatchdogSettings(ready_timeout=3)
    answer = get(loan, "/")
    assert '"base":"http://127.0.0.1:9001/static/"' in answer.text
    assert '"mirrors":[]' in answer.text and '"ready":3000' in answer.text
    assert "http://127.0.0.1:9001" in answer.headers["content-security-policy"]
    assert "8002" not in answer.headers["content-security-policy"]


def test_bad_configuration_fails_at_construction(dist: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end with '/'"):
        LoanApp(manifest=dist, base_url="http://127.0.0.1:8001/static")
    with pytest.raises(ValueError, match="not one string"):
        LoanApp(manifest=dist, base_url=ASSETS, mirrors=MIRROR)
    with pytest.raises(ValueError, match="unblank build"):
        LoanApp(manifest=tmp_path, base_url=ASSETS)


# --------------------------------------------------------------------------- chaos


def test_chaos_front_end_switches_reach_data_chaos(loan: LoanApp) -> None:
    assert '<html lang="en" data-chaos="">' in get(loan, "/").text
    loan.chaos.boot_exception = True
    loan.chaos.never_render = True
    assert 'data-chaos="boot-exception never-render"' in get(loan, "/").text


def test_chaos_overloaded_answers_the_next_shells_503_then_recovers(loan: LoanApp) -> None:
    loan.chaos = Chaos(overloaded=2, retry_after=7)
    for _ in range(2):
        busy = get(loan, "/", headers={"accept": "text/html"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "7"
        assert 'data-reason="overloaded"' in busy.text
        assert "default-src 'none'" in busy.headers["content-security-policy"]
        assert nonces(busy.text) <= {
            m[1] for m in re.finditer(r"'nonce-([^']+)'", busy.headers["content-security-policy"])
        }
    assert get(loan, "/").status_code == 200
    assert loan.chaos.overloaded == 0


def test_chaos_overloaded_counts_page_loads_not_head_requests(loan: LoanApp) -> None:
    loan.chaos = Chaos(overloaded=1, retry_after=7)
    for _ in range(3):  # a monitor's HEAD / is answered 503 but sheds no page load
        head = call(loan, lambda client: client.head("/"))
        assert head.status_code == 503 and loan.chaos.overloaded == 1
    assert get(loan, "/").status_code == 503 and loan.chaos.overloaded == 0
    assert get(loan, "/").status_code == 200


def test_chaos_api_error_is_500_problem_json_or_the_server_error_page(loan: LoanApp) -> None:
    loan.chaos.api = "error"
    problem = get(loan, "/api/quote?amount=12000&term=36", headers=JSON)
    assert problem.status_code == 500
    assert problem.headers["content-type"].startswith("application/problem+json")
    assert problem.json()["instance"] == problem.headers["x-request-id"]
    assert "chaos" not in problem.text  # the exception's message stays in the logs
    page = get(loan, "/api/quote?amount=12000&term=36", headers={"accept": "text/html"})
    assert page.status_code == 500 and 'data-reason="server-error"' in page.text


def test_chaos_slow_api_is_cut_off_by_the_time_budget(dist: Path) -> None:
    loan = LoanApp(manifest=dist, base_url=ASSETS, time_budget=0.2, chaos=Chaos(api="slow"))
    answer = get(loan, "/api/quote?amount=12000&term=36", headers=JSON)
    assert answer.status_code == 504
    assert answer.json()["type"].endswith("/timeout")


def test_maintenance_switch_answers_503_but_not_the_watchdog_endpoints(loan: LoanApp) -> None:
    loan.maintenance = True
    assert loan.middleware.maintenance is True
    page = get(loan, "/", headers={"accept": "text/html"})
    assert page.status_code == 503 and 'data-reason="maintenance"' in page.text
    assert "retry-after" in page.headers
    assert get(loan, "/api/quote?amount=12000&term=36", headers=JSON).status_code == 503
    beacon = post(loan, "/_unblank/report", content=b'{"cause": "offline"}')
    assert beacon.status_code == 204
    loan.maintenance = False
    assert get(loan, "/").status_code == 200


# --------------------------------------------------------------------------- AssetClient


@pytest.fixture(scope="module")
def origin_url(dist: Path) -> Iterator[str]:
    with create_app(dist, reload_interval=0) as app, serve_in_thread(app) as url:
        yield url


def test_manifest_from_an_asset_client_and_the_app_as_a_mirror(origin_url: str, dist: Path) -> None:
    published = Manifest.loads((dist / "manifest.json").read_bytes())
    entry = published.assets["main.js"]

    async def main() -> None:
        async with AssetClient(origins=[origin_url], deadline=5.0) as client:
            loan = LoanApp(manifest=client, base_url=f"{origin_url}/static/", mirrors=[MIRROR])
            transport = httpx.ASGITransport(app=loan)
            async with httpx.AsyncClient(transport=transport, base_url="http://loan.test") as web:
                shell = await web.get("/")
                assert shell.status_code == 200
                assert shell.headers["x-unblank-generation"] == published.generation
                # The app's own mirror comes last, after the configured ones.
                assert f'"mirrors":["{MIRROR}","{MIRROR_PATH}"]' in shell.text
                assert f'"{MIRROR_PATH}{entry.path}"' in shell.text  # in the import map
                copy = await web.get(f"{MIRROR_PATH}{entry.path}")
                assert copy.status_code == 200
                assert copy.content == (dist / entry.path).read_bytes()
                assert copy.headers["access-control-allow-origin"] == "*"
                unknown = await web.get(f"{MIRROR_PATH}nothing.0123456789ab.js", headers=JSON)
                assert unknown.status_code == 404
            await loan.aclose()  # the warming the shell started, before the client closes

    asyncio.run(main())


def test_the_mirror_cache_is_warmed_and_serves_with_every_origin_down(
    dist: Path, tmp_path: Path
) -> None:
    published = Manifest.loads((dist / "manifest.json").read_bytes())

    async def main() -> None:
        with create_app(dist, reload_interval=0) as app, serve_in_thread(app) as origin:
            client = AssetClient(origins=[origin], cache=AssetCache(tmp_path), deadline=2.0)
            loan = LoanApp(manifest=client, base_url=f"{origin}/static/", close_client=True)
            report = await loan.warm()
            assert report is not None and not report.failed
            assert set(report.fetched) == set(published.assets)
        # The origin is gone: the shell (the manifest kept) and every file still come.
        transport = httpx.ASGITransport(app=loan)
        async with httpx.AsyncClient(transport=transport, base_url="http://loan.test") as web:
            assert (await web.get("/")).status_code == 200
            for asset in published.assets.values():
                copy = await web.get(f"{MIRROR_PATH}{asset.path}")
                assert copy.status_code == 200
                assert copy.content == (dist / asset.path).read_bytes()
        await loan.aclose()

    asyncio.run(main())


def test_asset_client_mode_without_the_mirror(origin_url: str) -> None:
    async def main() -> None:
        async with AssetClient(origins=[origin_url], deadline=5.0) as client:
            loan = LoanApp(manifest=client, base_url=f"{origin_url}/static/", serve_mirror=False)
            transport = httpx.ASGITransport(app=loan)
            async with httpx.AsyncClient(transport=transport, base_url="http://loan.test") as web:
                assert '"mirrors":[]' in (await web.get("/")).text
                assert (await web.get(f"{MIRROR_PATH}main.js", headers=JSON)).status_code == 404
            assert await loan.warm() is None  # no mirror of its own: nothing to warm

    asyncio.run(main())


def test_no_origin_and_no_manifest_kept_is_the_upstream_page() -> None:
    dead = "http://127.0.0.1:9"  # discard: nothing listens there

    async def main() -> httpx.Response:
        async with AssetClient(origins=[dead], deadline=1.0) as client:
            loan = LoanApp(manifest=client, base_url=f"{dead}/static/")
            transport = httpx.ASGITransport(app=loan)
            async with httpx.AsyncClient(transport=transport, base_url="http://loan.test") as web:
                return await web.get("/", headers={"accept": "text/html"})

    answer = asyncio.run(main())
    assert answer.status_code == 502 and 'data-reason="upstream"' in answer.text


# --------------------------------------------------------------------------- uvicorn --factory


def test_from_environment_reads_a_dist_or_an_origin(dist: Path, origin_url: str) -> None:
    app = from_environment(
        {"LOAN_APP_DIST": str(dist), "LOAN_APP_ASSETS": ASSETS, "LOAN_APP_MIRRORS": MIRROR}
    )
    assert (app.client, app.base_url, app.mirrors) == (None, ASSETS, [MIRROR])
    assert get(app, "/").status_code == 200

    async def from_origin() -> None:
        # The AssetClient belongs to the event loop it runs on: one loop for it all.
        fetched = from_environment({"LOAN_APP_ORIGIN": origin_url})
        assert fetched.client is not None and fetched.base_url == f"{origin_url}/static/"
        transport = httpx.ASGITransport(app=fetched)
        async with httpx.AsyncClient(transport=transport, base_url="http://loan.test") as web:
            assert (await web.get("/")).headers["x-unblank-generation"]
        await fetched.aclose()

    asyncio.run(from_origin())


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "LOAN_APP_DIST"),
        ({"LOAN_APP_DIST": "d", "LOAN_APP_ORIGIN": "http://o"}, "one of them"),
        ({"LOAN_APP_DIST": "d"}, "LOAN_APP_ASSETS"),
    ],
)
def test_from_environment_says_what_is_missing(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_environment(environ)


def test_the_loan_app_serves_under_uvicorn_with_its_lifespan(dist: Path) -> None:
    loan = LoanApp(manifest=dist, base_url=ASSETS)
    with serve_in_thread(loan) as url:
        answer = httpx.get(f"{url}/api/quote", params={"amount": "5000", "term": "12"})
    assert answer.status_code == 200 and answer.json()["term"] == 12
