"""The guided pages a shell carries inside ``<template>``: one per reason the watchdog shows."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from unblank_pages import REASONS, Brand, PageRenderer, UnknownReasonError, render
from unblank_pages.render import FALLBACK_REASONS

# Script types the browser runs (and CSP's script-src governs): no type, JS, modules,
# import maps. "application/json" is a data block: never run, no nonce needed.
EXECUTABLE = ("", "module", "text/javascript", "application/javascript", "importmap")
SCRIPT_KEYS = {
    "retry_now",
    "retrying",
    "retrying_in",
    "paused",
    "pause",
    "resume",
    "waiting_online",
}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    template: Element | None  # the nearest enclosing <template>, None outside any
    text: str = ""
    children: list[Element] = field(default_factory=list)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Element] = []
        self._templates: list[Element] = []
        self._raw: Element | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self._templates[-1] if self._templates else None)
        self.found.append(element)
        if element.template is not None:
            element.template.children.append(element)
        if tag == "template":
            self._templates.append(element)
        elif tag in ("script", "style"):
            self._raw = element

    def handle_endtag(self, tag: str) -> None:
        if tag == "template":
            self._templates.pop()
        elif tag in ("script", "style"):
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw is not None:
            self._raw.text += data


def parse(html: str) -> list[Element]:
    """Every element of ``html`` in document order, with the template it sits in."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.found


def is_executable(element: Element) -> bool:
    return element.tag == "script" and (element.attrs.get("type") or "") in EXECUTABLE


def templates(html: str) -> tuple[Element, dict[str, Element]]:
    """The shared ``#unblank-fallback`` template and the per-reason ones, by reason."""
    found = [e for e in parse(html) if e.tag == "template"]
    shared = [e for e in found if e.attrs.get("id") == "unblank-fallback"]
    assert len(shared) == 1
    by_reason = {str(e.attrs["data-unblank-reason"]): e for e in found if e is not shared[0]}
    assert len(by_reason) == len(found) - 1, "every other template names its reason"
    return shared[0], by_reason


def main_of(html: str) -> str:
    match = re.search(r'<main id="unblank-page".*?</main>', html, re.S)
    assert match is not None
    return match.group(0)


def test_fallback_has_one_template_per_watchdog_reason() -> None:
    html = PageRenderer().fallback(locale="en", request_id="req-42")
    shared, pages = templates(html)
    assert list(pages) == list(FALLBACK_REASONS)
    assert set(FALLBACK_REASONS) == {
        "integrity",
        "not-found",
        "upstream",
        "offline",
        "app-crash",
        "render-timeout",
    }
    for reason, template in pages.items():
        if reason == "not-found":  # see test_the_watchdogs_not_found_speaks_of_a_missing_file
            continue
        assert template.attrs["data-retry"] == REASONS[reason].retry
        assert template.attrs["data-wait"] == str(REASONS[reason].wait)
        mains = [e for e in template.children if e.tag == "main"]
        assert [m.attrs for m in mains] == [{"id": "unblank-page", "data-reason": reason}]
    assert shared.attrs["data-locale"] == "en" and shared.attrs["data-dir"] == "ltr"
    assert html.count("<code>req-42</code>") == len(FALLBACK_REASONS)


def test_the_watchdogs_not_found_speaks_of_a_missing_file_and_retries() -> None:
    # In a shell, not-found is a file a new release removed, not a mistyped
    # address: the catalog's "fallback" text, and a countdown to a reload.
    html = PageRenderer(brand=Brand(home="/start")).fallback(
        ["not-found", "offline"], request_id="r"
    )
    _, pages = templates(html)
    assert pages["not-found"].attrs["data-retry"] == "countdown"
    assert pages["not-found"].attrs["data-wait"] == "15"
    assert "Part of the app is missing" in html
    assert "Page not found" not in html
    ids = {e.attrs.get("id") for e in pages["not-found"].children}
    assert "pause" in ids
    chinese = PageRenderer().fallback(["not-found"], locale="zh-Hans", request_id="r")
    assert "应用的一部分缺失了" in chinese


def test_a_full_not_found_page_still_offers_the_way_home() -> None:
    html = PageRenderer(brand=Brand(home="/start")).html("not-found").body.decode()
    assert 'data-retry="none"' in html and 'href="/start"' in html


def test_shared_template_holds_style_texts_and_retry_script_with_nonce() -> None:
    html = PageRenderer().fallback(locale="en", request_id="r", nonce="n0nce")
    shared, _ = templates(html)
    tags = [(e.tag, e.attrs.get("type"), e.attrs.get("nonce")) for e in shared.children]
    assert tags == [
        ("style", None, "n0nce"),
        ("script", "application/json", None),
        ("script", None, "n0nce"),
    ]
    texts = json.loads(shared.children[1].text)
    assert set(texts) == SCRIPT_KEYS
    assert "{seconds}" in texts["retrying_in"]
    assert "location.replace" in shared.children[2].text
    assert "nonce" not in PageRenderer().fallback(request_id="r")


def test_fallback_names_the_brand_in_every_title() -> None:
    html = PageRenderer(brand=Brand(name="Northwind Loans")).fallback(request_id="r")
    _, pages = templates(html)
    for template in pages.values():
        assert str(template.attrs["data-title"]).endswith(" · Northwind Loans")
    assert pages["offline"].attrs["data-title"] == "You are offline · Northwind Loans"
    assert html.count("<span>Northwind Loans</span>") == len(FALLBACK_REASONS)
    plain = PageRenderer().fallback(["offline"], request_id="r")
    assert templates(plain)[1]["offline"].attrs["data-title"] == "You are offline"


def test_hostile_brand_and_request_id_stay_text() -> None:
    xss = '"><script>alert(1)</script>'
    html = PageRenderer(brand=Brand(name=xss)).fallback(request_id=xss)
    scripts = [e for e in parse(html) if e.tag == "script"]
    assert len(scripts) == 2  # the texts and the retry script, nothing injected
    assert all("alert" not in s.text for s in scripts)
    _, pages = templates(html)
    assert pages["offline"].attrs["data-title"] == f"You are offline · {xss}"


def test_fallback_subsets_and_none() -> None:
    renderer = PageRenderer()
    shared, pages = templates(renderer.fallback([], request_id="r"))
    assert pages == {} and shared.attrs["data-locale"] == "en"
    _, pages = templates(renderer.fallback(["offline", "integrity"], request_id="r"))
    assert list(pages) == ["offline", "integrity"]
    # Reasons outside FALLBACK_REASONS are in the catalog too, so they render.
    _, pages = templates(renderer.fallback(["maintenance"], request_id="r"))
    assert pages["maintenance"].attrs["data-wait"] == "60"


def test_unknown_reason_is_refused() -> None:
    with pytest.raises(UnknownReasonError, match="'teapot'") as caught:
        PageRenderer().fallback(["offline", "teapot"])
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("locale", "tag", "title"),
    [("zh-Hans", "zh-Hans", "您已离线"), ("en", "en", "You are offline"), ("fr", "en", None)],
)
def test_fallback_locale(locale: str, tag: str, title: str | None) -> None:
    shared, pages = templates(PageRenderer().fallback(locale=locale, request_id="r"))
    assert shared.attrs["data-locale"] == tag
    assert pages["offline"].attrs["data-title"] == (title or "You are offline")


def test_without_request_id_a_reference_is_made_up() -> None:
    html = PageRenderer().fallback(["offline"])
    assert re.search(r"<code>ub-[0-9a-f]{16}</code>", html)


@pytest.mark.parametrize("reason", FALLBACK_REASONS)
def test_full_pages_keep_their_structure_and_share_main_with_fallback(reason: str) -> None:
    page = render(reason, locale="en", request_id="req-9", nonce="n")
    html = page.body.decode()
    assert html.startswith("<!doctype html>")
    assert html.count(f'<main id="unblank-page" data-reason="{reason}">') == 1
    head, body = html.split("<body>")
    assert '<style nonce="n">' in head and "<main" in body
    assert body.rstrip().endswith("</script>\n</body>\n</html>")
    fallback = PageRenderer().fallback([reason], locale="en", request_id="req-9")
    if reason != "not-found":  # the watchdog's not-found has its own text
        assert main_of(fallback) == main_of(html)


def test_overriding_main_changes_fallback_and_full_pages(tmp_path: Path) -> None:
    (tmp_path / "_main.html").write_text(
        '<main id="unblank-page" data-reason="{{ reason }}"><h1>{{ text.title }}!</h1></main>\n',
        encoding="utf-8",
    )
    renderer = PageRenderer(templates=tmp_path)
    fallback = renderer.fallback(["offline"], request_id="r")
    assert "<h1>You are offline!</h1>" in fallback
    assert "<h1>You are offline!</h1>" in renderer.html("offline").body.decode()
