"""Guided pages: every reason and locale, negotiation, escaping, size, overrides."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from unblank_pages import (
    REASONS,
    Brand,
    PageRenderer,
    UnknownReasonError,
    negotiate,
    render,
    request_id_from,
    retry_after_seconds,
)
from unblank_pages.negotiation import choose_format, choose_locale, parse_weighted

LOCALES = ("en", "zh-Hans")
XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("reason", list(REASONS))
def test_page_for_every_reason_and_locale(reason: str, locale: str) -> None:
    page = render(reason, locale=locale, request_id="req-123")
    html = page.body.decode()
    assert page.status == REASONS[reason].status
    assert page.content_type == "text/html; charset=utf-8"
    assert page.headers["Content-Language"] == locale
    assert f'<html lang="{locale}"' in html
    assert html.count("<h1>") == 1
    title = re.search(r"<title>(.*?)</title>", html)
    h1 = re.search(r"<h1>(.*?)</h1>", html)
    assert title is not None and h1 is not None and h1[1] in title[1]
    assert 'role="status"' in html and 'aria-live="polite"' in html
    assert "req-123" in html
    assert "http-equiv" not in html.lower()  # no meta refresh (fails WCAG 2.2.1)
    assert len(gzip.compress(page.body)) <= 13 * 1024
    # Self-contained: no stylesheet, script or image is fetched.
    # (The icon link is a data: URL: it stops Chromium from asking for /favicon.ico.)
    assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']
    assert not re.search(r"<(?:img|script)[^>]*\ssrc=", html)
    assert "prefers-color-scheme:dark" in html and "prefers-reduced-motion" in html


def test_retry_policies_fit_the_reason() -> None:
    assert 'data-retry="none"' in render("not-found").body.decode()
    assert ">Try again now<" not in render("not-found").body.decode()
    assert 'href="/"' in render("not-found").body.decode()
    assert 'data-retry="online"' in render("offline").body.decode()
    countdown = render("upstream").body.decode()
    assert 'data-retry="countdown"' in countdown
    assert 'id="pause"' in countdown and "<noscript>" in countdown  # usable without JS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, 30),
        ("120", 120),
        ("  7 ", 7),
        ("junk", None),
        ("-5", None),
        (None, None),
        (10**9, 86400),
        ("\u00b2", None),  # str.isdigit() says yes; int() says no
        ("9" * 5000, None),
        (1.5, None),
        ("Wed, 25 Nov 2026 12:00:00", None),  # no zone
    ],
)
def test_retry_after_seconds(value: object, expected: int | None) -> None:
    assert retry_after_seconds(value) == expected  # type: ignore[arg-type]


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(later, now) == 90
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0


def test_retry_after_reaches_header_and_page() -> None:
    page = render("maintenance", retry_after="600")
    assert page.headers["Retry-After"] == "600"
    assert 'data-retry-after="600"' in page.body.decode()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
        ("application/json", "application/problem+json"),
        ("application/problem+json", "application/problem+json"),
        ("text/plain", "text/plain"),
        ("text/*;q=0.5, application/json;q=0.9", "application/problem+json"),
        ("text/html;q=0, text/plain", "text/plain"),
        ("*/*", "text/html"),
        ("", "text/html"),
        (None, "text/html"),
        (";;;,,,q=abc", "text/html"),
        ("text/html;q=2", "text/html"),
        ("image/png", "text/html"),
        ("x" * 5000, "text/html"),
        ("application/json, text/plain, */*", "application/problem+json"),  # axios
        ("application/json;q=0.9, application/problem+json;q=0.1", "application/problem+json"),
        ("text/plain, */*", "text/plain"),
    ],
)
def test_choose_format(accept: str | None, expected: str) -> None:
    assert choose_format(accept) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR, zh;q=0.5", "zh-Hans"),
        ("zh-TW", "en"),
        ("de", "en"),
        ("zh;q=0, en", "en"),
        ("*", "en"),
        ("💥", "en"),
        ("zh_CN", "zh-Hans"),
        (None, "en"),
    ],
)
def test_choose_locale(header: str | None, expected: str) -> None:
    assert choose_locale(header, ["en", "zh-Hans"], "en") == expected


def test_parse_weighted_orders_by_q_then_position() -> None:
    assert parse_weighted("a;q=0.5, b, c;q=0.5") == [("b", 1.0), ("a", 0.5), ("c", 0.5)]


def test_negotiated_problem_json() -> None:
    page = negotiate(
        "upstream",
        accept="application/json",
        accept_language="zh-CN",
        request_id="trace-7",
        retry_after=5,
    )
    assert page.status == 502
    assert page.content_type == "application/problem+json; charset=utf-8"
    doc = json.loads(page.body)
    assert doc == {
        "type": "/_unblank/pages/upstream",
        "title": "依赖的服务没有响应",
        "status": 502,
        "detail": doc["detail"],
        "instance": "trace-7",
        "retry_after": 5,
    }
    assert page.headers["Vary"] == "Accept, Accept-Language"


def test_negotiated_text() -> None:
    page = negotiate("not-found", accept="text/plain", request_id="abc")
    text = page.body.decode()
    assert text.startswith("Page not found\n")
    assert "Reference ID: abc" in text


@pytest.mark.parametrize("header", ["ok-1.2:3", "A" * 128])
def test_request_id_kept_when_well_formed(header: str) -> None:
    assert request_id_from(header) == header


@pytest.mark.parametrize("header", [None, "", XSS, "a b", "x" * 129, "-leading", "é"])
def test_request_id_replaced_when_malformed(header: str | None) -> None:
    assert re.fullmatch(r"ub-[0-9a-f]{16}", request_id_from(header))


def test_nothing_from_a_request_is_reflected_unescaped() -> None:
    page = negotiate(
        "server-error",
        accept="text/html",
        accept_language=XSS,
        request_id=XSS,
        detail=XSS,
    )
    html = page.body.decode()
    assert "<script>alert" not in html
    assert "<img src=x" not in html  # escaped text, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the detail, escaped
    direct = render("server-error", request_id=XSS, detail=XSS).body.decode()
    assert "<script>alert" not in direct
    assert "&#34;&gt;&lt;script&gt;" in direct or "&quot;&gt;&lt;script&gt;" in direct


def test_brand_restyles_and_is_escaped() -> None:
    brand = Brand(
        name="<b>Northwind</b>",
        primary="#004400",
        support="mailto:help@example.com",
        logo_svg='<svg viewBox="0 0 1 1"><rect width="1" height="1"/></svg>',
    )
    html = render("overloaded", brand=brand).body.decode()
    assert "&lt;b&gt;Northwind&lt;/b&gt;" in html
    assert "--accent:#004400" in html
    assert 'href="mailto:help@example.com"' in html
    assert '<svg viewBox="0 0 1 1">' in html


@pytest.mark.parametrize(
    "kwargs",
    [
        {"primary": "red;}body{display:none"},
        {"logo_svg": "<svg><script>alert(1)</script></svg>"},
        {"logo_svg": '<svg onload="alert(1)"></svg>'},
        {"logo_svg": "<img src=x>"},
        {"support": "javascript:alert(1)"},
        {"home": "javascript:alert(1)"},
    ],
)
def test_brand_refuses_unsafe_settings(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="Brand"):
        Brand(**kwargs)


def test_unknown_reason_is_a_clear_error() -> None:
    with pytest.raises(UnknownReasonError, match="unknown reason 'nope'; known: offline"):
        render("nope")


def test_unknown_locale_falls_back_to_english() -> None:
    assert render("timeout", locale="xx").headers["Content-Language"] == "en"


def test_user_templates_override_pages(tmp_path: Path) -> None:
    (tmp_path / "maintenance.html").write_text("<p>{{ text.title }} / {{ request_id }}</p>")
    renderer = PageRenderer(templates=tmp_path)
    assert renderer.html("maintenance", request_id="<x>").body == (
        b"<p>We are doing maintenance / &lt;x&gt;</p>"
    )
    assert b"<h1>" in renderer.html("timeout").body  # the others keep the built-in page


def test_adding_a_language_is_adding_a_file(tmp_path: Path) -> None:
    english = json.loads(_package_catalog("en"))
    english["reasons"]["timeout"]["title"] = "Das dauert zu lange"
    (tmp_path / "de.json").write_text(json.dumps(english), encoding="utf-8")
    renderer = PageRenderer(locales=tmp_path)
    page = renderer.negotiate("timeout", accept_language="de-DE")
    assert page.headers["Content-Language"] == "de"
    assert "Das dauert zu lange" in page.body.decode()


def test_incomplete_catalog_is_refused(tmp_path: Path) -> None:
    (tmp_path / "xx.json").write_text('{"common": {}, "reasons": {}}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"xx\.json: common\.retry_now is missing"):
        PageRenderer(locales=tmp_path)


def _package_catalog(tag: str) -> str:
    root = Path(__file__).resolve().parent.parent / "fallback_pages/unblank_pages/locales"
    return (root / f"{tag}.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("method", ["POST", "put", "DELETE"])
def test_after_an_unsafe_method_the_page_never_retries_by_itself(method: str) -> None:
    html = render("timeout", method=method).body.decode()
    assert 'data-retry="none"' in html
    assert 'id="pause"' not in html


def test_brand_colours_must_keep_the_button_readable() -> None:
    with pytest.raises(ValueError, match=r"1\.\d:1 against the button text #ffffff"):
        Brand(primary="#ffff00")
    with pytest.raises(ValueError, match="primary_dark"):
        Brand(primary_dark="#1f4e79")
    with pytest.raises(ValueError, match="home"):
        Brand(home="//evil.example")
