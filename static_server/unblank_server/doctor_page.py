"""What an HTML shell asks a browser to load, read with the stdlib HTML parser.

    page = read_page(html, "https://app.example.com/")
    [(tag.kind, tag.url, tag.integrity) for tag in page.tags]
    page.import_integrity          # the import map's {url: metadata}
    page.watchdog_script, page.fallback_template

Only what decides whether the page can start is collected: scripts (classic
and module), stylesheets, ``modulepreload`` and ``preload`` of scripts and
styles, the import maps' ``integrity``, ``<base href>``, and the marks of
unblank's watchdog. The shell is hostile input: malformed markup, endless
tags or an import map that is not JSON give ``problems``, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Final
from urllib.parse import urldefrag, urljoin

from unblank_server.doctor_fetch import is_http_url

__all__ = ["Page", "Tag", "read_page"]

MAX_TAGS: Final = 1000  # tags collected; a real shell has tens
MAX_INLINE: Final = 1 << 20  # characters of one inline script kept (import maps, the watchdog)
# The HTML standard's JavaScript MIME type essences.
JS_ESSENCES: Final = frozenset(
    {
        "text/javascript",
        "application/javascript",
        "application/ecmascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    }
)
# A <script type> that makes a classic script: an essence, empty, or the old "javascript".
_JS_TYPES: Final = JS_ESSENCES | {"", "javascript"}
# Schemes that load nothing from a server (and so are nothing for the doctor to check).
_LOCAL_SCHEMES: Final = ("data:", "blob:", "javascript:", "about:")
_PRELOADS: Final = {"script": "preload-script", "style": "preload-style"}
# What only unblank's inline watchdog says (sdk/unblank/watchdog.js).
_WATCHDOG_MARKS: Final = ("unblank-fallback", "window.unblank", "w.unblank")


@dataclass(frozen=True, slots=True)
class Tag:
    """One thing the page loads: ``kind`` is ``script``, ``module``, ``stylesheet``,
    ``modulepreload``, ``preload-script`` or ``preload-style``. ``crossorigin`` is
    ``None`` without the attribute, else ``anonymous`` or ``use-credentials``."""

    kind: str
    url: str
    integrity: str | None
    crossorigin: str | None
    line: int

    @property
    def cors(self) -> bool:
        """Whether the browser fetches it in CORS mode (module graphs always are)."""
        return self.kind in ("module", "modulepreload") or self.crossorigin is not None

    @property
    def is_script(self) -> bool:
        return self.kind in ("script", "module", "modulepreload", "preload-script")


@dataclass(frozen=True, slots=True)
class Page:
    url: str
    tags: tuple[Tag, ...]
    import_integrity: Mapping[str, str]
    watchdog_script: bool
    fallback_template: bool
    problems: tuple[str, ...]  # markup that could not be read whole
    import_map_problems: tuple[str, ...]  # import maps browsers would ignore


def read_page(html: str, url: str) -> Page:
    """The tags of ``html`` with URLs resolved against ``url`` (or ``<base href>``)."""
    parser = _ShellParser(url)
    try:
        parser.feed(html)
        parser.close()
    except Exception as exc:  # html.parser on hostile input: report it and go on
        parser.problems.append(f"the HTML parser stopped at line {parser.getpos()[0]}: {exc}")
    return Page(
        url=url,
        tags=tuple(parser.tags),
        import_integrity=MappingProxyType(parser.import_integrity),
        watchdog_script=parser.watchdog_script,
        fallback_template=parser.fallback_template,
        problems=tuple(parser.problems),
        import_map_problems=tuple(parser.import_map_problems),
    )


class _ShellParser(HTMLParser):
    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = url
        self._base_seen = False
        self.tags: list[Tag] = []
        self.import_integrity: dict[str, str] = {}
        self.watchdog_script = False
        self.fallback_template = False
        self.problems: list[str] = []
        self.import_map_problems: list[str] = []
        self._inline: str | None = None  # "classic" or "importmap" while inside such a script
        self._text: list[str] = []
        self._text_size = 0
        self._skipped = 0

    # -- tags ---------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found: dict[str, str] = {}
        for name, value in attrs:
            found.setdefault(name, value or "")  # the first of repeated attributes wins
        if tag == "base" and "href" in found and not self._base_seen:
            self._base_seen = True  # only the first <base href> counts
            with suppress(ValueError):  # a <base> no browser can use changes nothing
                resolved = urljoin(self.base, found["href"].strip())
                if is_http_url(resolved):
                    self.base = resolved
        elif tag == "script":
            self._script(found)
        elif tag == "link":
            self._link(found)
        elif tag == "template" and found.get("id") == "unblank-fallback":
            self.fallback_template = True

    def _script(self, attrs: dict[str, str]) -> None:
        kind = attrs.get("type", "").strip().lower()
        if "src" not in attrs:
            if kind == "importmap":
                self._start_inline("importmap")
            elif kind in _JS_TYPES or kind == "module":
                self._start_inline("classic")
            return
        if kind == "module":
            self._add("module", attrs["src"], attrs)
        elif kind in _JS_TYPES and "nomodule" not in attrs:  # browsers with modules skip those
            self._add("script", attrs["src"], attrs)

    def _link(self, attrs: dict[str, str]) -> None:
        rels = attrs.get("rel", "").lower().split()
        href = attrs.get("href")
        if href is None:
            return
        if "stylesheet" in rels and "alternate" not in rels:
            self._add("stylesheet", href, attrs)
        elif "modulepreload" in rels:
            self._add("modulepreload", href, attrs)
        elif "preload" in rels and attrs.get("as", "").strip().lower() in _PRELOADS:
            self._add(_PRELOADS[attrs["as"].strip().lower()], href, attrs)

    def _add(self, kind: str, reference: str, attrs: dict[str, str]) -> None:
        try:
            url = urldefrag(urljoin(self.base, reference.strip())).url
        except ValueError:  # urljoin on "http://[oops/": a URL no browser can load either
            url = ""
        if not is_http_url(url):
            if not reference.strip().lower().startswith(_LOCAL_SCHEMES):
                line = self.getpos()[0]
                self.problems.append(f"line {line}: {reference[:80]!r} is not a URL to load")
            return
        if len(self.tags) >= MAX_TAGS:
            self._skipped += 1
            return
        crossorigin = attrs.get("crossorigin")
        if crossorigin is not None:
            # HTML: the empty value and any invalid one mean "anonymous".
            credentials = crossorigin.strip().lower() == "use-credentials"
            crossorigin = "use-credentials" if credentials else "anonymous"
        integrity = attrs.get("integrity")
        self.tags.append(Tag(kind, url, integrity, crossorigin, self.getpos()[0]))

    # -- inline scripts -----------------------------------------------------------

    def _start_inline(self, kind: str) -> None:
        self._inline = kind
        self._text = []
        self._text_size = 0

    def handle_data(self, data: str) -> None:
        if self._inline is not None and self._text_size < MAX_INLINE:
            self._text.append(data)
            self._text_size += len(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != "script" or self._inline is None:
            return
        text = "".join(self._text)
        if self._inline == "importmap":
            self._import_map(text)
        elif any(mark in text for mark in _WATCHDOG_MARKS):
            self.watchdog_script = True
        self._inline = None
        self._text = []

    def _import_map(self, text: str) -> None:
        if self._text_size >= MAX_INLINE:
            self._bad_map(f"an import map is larger than {MAX_INLINE} characters")
            return
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self._bad_map(f"an import map is not valid JSON ({exc}): browsers ignore it")
            return
        if not isinstance(data, dict):
            self._bad_map("an import map is not a JSON object: browsers ignore it")
            return
        integrity = data.get("integrity", {})
        if not isinstance(integrity, dict):
            self._bad_map('an import map\'s "integrity" is not an object: it is ignored')
            return
        for key, value in integrity.items():
            try:
                url = urldefrag(urljoin(self.base, key.strip())).url
            except ValueError:
                url = ""
            if not isinstance(value, str):
                self._bad_map(f"the import map's integrity for {key[:80]!r} is not text")
            elif is_http_url(url):
                self.import_integrity.setdefault(url, value)

    def _bad_map(self, problem: str) -> None:
        self.import_map_problems.append(problem)

    def close(self) -> None:
        super().close()
        if self._skipped:
            self.problems.append(f"{self._skipped} tags beyond the first {MAX_TAGS} were not read")
