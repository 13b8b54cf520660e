"""``unblank doctor URL``: load a deployed page as a browser would, find white-screen risks.

    with httpx.Client(timeout=10) as client:
        report = Doctor(client=client).examine("https://app.example.com/")
    for check in report.checks:
        print(check.verdict, check.id, check.details, check.advice)
    report.exit_status()          # 1 when a check FAILs

The doctor GETs the page with a browser's headers, reads the tags it loads
(:mod:`~unblank_server.doctor_page`), fetches every asset once per coding
(identity, gzip, br) and verifies the decoded bytes against their
``integrity`` with :mod:`unblank.integrity`, asks for a made-up fingerprinted
file next to them (an SPA fallback answers it with HTML and 200), and, when
the site publishes unblank's manifest and its history, checks that the files
of the previous generations still answer. The verdicts are
:mod:`~unblank_server.doctor_checks`'. All I/O goes through the
``httpx.Client`` passed in (tests use ``httpx.MockTransport``), and every
read is bounded (:mod:`~unblank_server.doctor_fetch`).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Final
from urllib.parse import unquote, urlsplit

import httpx

from unblank import Manifest, UnblankError, __version__, integrity
from unblank_server.doctor_checks import run_checks
from unblank_server.doctor_evidence import (
    Answer,
    AssetRef,
    AssetResult,
    Check,
    Evidence,
    GenerationResult,
    History,
    Probe,
    Verdict,
    metadata_problem,
    origin_of,
)
from unblank_server.doctor_fetch import (
    BadEncoding,
    Fetched,
    Fetcher,
    FetchFailed,
    MiB,
    TooLarge,
    is_http_url,
)
from unblank_server.doctor_page import Page, Tag, read_page
from unblank_server.errors import BadInputError
from unblank_server.naming import looks_fingerprinted

__all__ = ["USER_AGENT", "Doctor", "DoctorSettings", "Report", "UnreachablePage"]

USER_AGENT: Final = f"Mozilla/5.0 (compatible; unblank-doctor/{__version__})"
# What Chromium sends for a navigation, and for a script or a stylesheet.
_PAGE_ACCEPT: Final = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
_CSS_ACCEPT: Final = "text/css,*/*;q=0.1"
_CODINGS: Final = ("identity", "gzip", "br")
# A name that looks like a build's output and that no build ever writes.
PROBE_NAME: Final = "unblank-doctor-probe.0123456789ab.js"
_PROBE_BYTES: Final = 256 * 1024
_LISTING_BYTES: Final = MiB
_MAX_PROBES: Final = 3  # asset folders probed for a missing file
_MAX_LEVELS: Final = 4  # folders above an asset searched for the manifest
_MAX_GENERATIONS: Final = 100
_GENERATION: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,99}")
_HTML_START: Final = (b"<!doctype html", b"<html", b"<head", b"<body")


class UnreachablePage(BadInputError):
    """The URL is not an http(s) URL, or does not answer 200 with an HTML page."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorSettings:
    """Bounds of one examination: assets checked, bytes read, redirects followed,
    requests sent, fetches in parallel, earlier generations checked, time per fetch.

    >>> DoctorSettings(max_assets=10).max_asset_bytes == 32 * MiB
    True
    """

    max_assets: int = 40
    max_page_bytes: int = 5 * MiB
    max_asset_bytes: int = 32 * MiB
    max_manifest_bytes: int = 8 * MiB
    max_redirects: int = 5
    max_requests: int = 500
    workers: int = 4
    history: int = 2  # previous generations whose files are checked
    time_limit: float = 60.0  # seconds for one fetch, first byte sent to last byte read

    def __post_init__(self) -> None:
        for name in ("max_assets", "max_page_bytes", "max_asset_bytes", "max_manifest_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"DoctorSettings.{name} must be at least 1")
        if self.max_redirects < 0 or self.max_requests < 1 or self.workers < 1:
            raise ValueError("DoctorSettings: redirects >= 0, requests >= 1, workers >= 1")
        if not 0 < self.time_limit <= 3600:
            raise ValueError("DoctorSettings.time_limit must be seconds in (0, 3600]")


@dataclass(frozen=True, slots=True)
class Report:
    """The verdicts on one page; ``exit_status`` is what the command line returns."""

    url: str
    page_url: str
    checks: tuple[Check, ...]
    assets: tuple[AssetResult, ...]
    requests: int
    unchecked: int = 0

    def count(self, verdict: Verdict) -> int:
        return sum(1 for check in self.checks if check.verdict is verdict)

    def exit_status(self, *, strict: bool = False) -> int:
        """1 when a check FAILs (or WARNs, with ``strict``), else 0."""
        if self.count(Verdict.FAIL) or (strict and self.count(Verdict.WARN)):
            return 1
        return 0

    def result(self, *, strict: bool = False) -> Verdict:
        if self.count(Verdict.FAIL):
            return Verdict.FAIL
        if self.count(Verdict.WARN):
            return Verdict.FAIL if strict else Verdict.WARN
        return Verdict.PASS

    def to_dict(self, *, strict: bool = False) -> dict[str, object]:
        return {
            "url": self.url,
            "page_url": self.page_url,
            "result": self.result(strict=strict).value,
            "exit_status": self.exit_status(strict=strict),
            "strict": strict,
            "counts": {v.value: self.count(v) for v in Verdict},
            "requests": self.requests,
            "checks": [check.to_dict() for check in self.checks],
            "assets": [_asset_dict(result) for result in self.assets],
            "unchecked_assets": self.unchecked,
        }


class Doctor:
    """Examines pages through one ``httpx.Client``, within :class:`DoctorSettings`."""

    def __init__(self, *, client: httpx.Client, settings: DoctorSettings | None = None) -> None:
        self.settings = settings or DoctorSettings()
        self._client = client

    def examine(self, url: str) -> Report:
        """Load ``url`` and judge it; :class:`UnreachablePage` when there is no page."""
        settings = self.settings
        fetcher = Fetcher(
            self._client,
            max_redirects=settings.max_redirects,
            max_requests=settings.max_requests,
            time_limit=settings.time_limit,
            user_agent=USER_AGENT,
        )
        shell, page = self._load_page(fetcher, url)
        refs, unchecked = _asset_refs(page, settings.max_assets)
        with ThreadPoolExecutor(max_workers=settings.workers) as pool:
            origin = origin_of(page.url)
            assets = tuple(
                pool.map(lambda ref: _examine_asset(fetcher, ref, settings, origin), refs)
            )
            probes = tuple(_probe(fetcher, folder) for folder in _probe_folders(page, refs))
            history = _History(fetcher, settings, pool).examine(page, refs)
        evidence = Evidence(page, shell.headers, assets, probes, history, unchecked)
        return Report(url, shell.url, run_checks(evidence), assets, fetcher.requests, unchecked)

    def _load_page(self, fetcher: Fetcher, url: str) -> tuple[Fetched, Page]:
        if not is_http_url(url):
            raise UnreachablePage(
                f"{url[:200]!r} is not an http(s) URL: give the address of a page, "
                "such as https://app.example.com/"
            )
        headers = {"Accept": _PAGE_ACCEPT, "Accept-Encoding": "br, gzip"}
        try:
            shell = fetcher.get(url, headers=headers, limit=self.settings.max_page_bytes)
        except FetchFailed as exc:
            raise UnreachablePage(f"cannot load {url}: {exc}") from exc
        if shell.status != 200:
            raise UnreachablePage(
                f"{shell.url} answered {shell.status}: give the URL of a page users open "
                "(it must answer 200 with HTML)"
            )
        if shell.media_type not in ("text/html", "application/xhtml+xml"):
            raise UnreachablePage(
                f"{shell.url} answered {shell.media_type or 'no content type'}, not an HTML page"
            )
        return shell, read_page(shell.body.decode(_charset(shell), "replace"), shell.url)


# -- assets ------------------------------------------------------------------------


def _asset_refs(page: Page, limit: int) -> tuple[list[AssetRef], int]:
    by_url: dict[str, list[Tag]] = {}
    for tag in page.tags:
        by_url.setdefault(tag.url, []).append(tag)
    for url in page.import_integrity:
        by_url.setdefault(url, [])  # a chunk only import() loads
    page_origin = origin_of(page.url)
    refs = [
        AssetRef(
            url=url,
            tags=tuple(tags),
            mapped_integrity=page.import_integrity.get(url),
            cross_origin=origin_of(url) != page_origin,
            fingerprinted=looks_fingerprinted(urlsplit(url).path),
        )
        for url, tags in by_url.items()
    ]
    refs = _mark_mirror_copies(refs)
    return refs[:limit], max(0, len(refs) - limit)


def _mark_mirror_copies(refs: Sequence[AssetRef]) -> list[AssetRef]:
    """Mark the import map's entries that only repeat a file already listed — same
    name, same integrity, another base (``unblank.Shell(mirrors=...)`` lists every file
    under the origin and under each mirror) — as copies of the first URL naming it.

    Tagged URLs come first, then the import map's in its order (the origin's first).
    A copy is still fetched and verified; per-file quality is judged on the first.
    """
    first: dict[tuple[str, str], str] = {}
    out = []
    for ref in refs:
        name = unquote(urlsplit(ref.url).path.rsplit("/", 1)[-1])
        keys = [(name, m.strip()) for m in ref.integrities if name and m.strip()]
        primary = next((first[k] for k in keys if k in first), "") if not ref.tags else ""
        if primary:
            ref = replace(ref, mirror_of=primary)
        else:
            for key in keys:
                first.setdefault(key, ref.url)
        out.append(ref)
    return out


def _examine_asset(
    fetcher: Fetcher, ref: AssetRef, settings: DoctorSettings, page_origin: str
) -> AssetResult:
    headers = {"Accept": "*/*" if ref.is_script else _CSS_ACCEPT}
    if ref.cross_origin and (ref.cors or ref.sri_without_cors):
        # What a browser sends with a CORS request; a tag with integrity but no
        # crossorigin needs one too, so ask whether the host would allow it.
        headers["Origin"] = page_origin
    answers = []
    for asked in _CODINGS:
        request = {**headers, "Accept-Encoding": asked}
        answers.append(_fetch_answer(fetcher, ref, asked, request, settings.max_asset_bytes))
    return AssetResult(ref, tuple(answers))


def _fetch_answer(
    fetcher: Fetcher, ref: AssetRef, asked: str, headers: dict[str, str], limit: int
) -> Answer:
    try:
        got = fetcher.get(ref.url, headers=headers, limit=limit)
    except TooLarge as exc:
        return Answer(asked, ref.url, failure=str(exc), failure_kind="oversize")
    except BadEncoding as exc:
        return Answer(asked, ref.url, failure=str(exc), failure_kind="decode")
    except FetchFailed as exc:
        return Answer(asked, ref.url, failure=str(exc), failure_kind="network")
    readable = [m for m in ref.integrities if not metadata_problem(m)]
    matches = {m: integrity.verify(got.body, m) for m in readable} if got.status == 200 else {}
    served = ""
    if readable and got.status == 200:
        algorithm = integrity.strongest(integrity.parse(readable[0]))[0].algorithm
        served = integrity.compute(got.body, algorithm)
    return Answer(
        asked=asked,
        url=got.url,
        status=got.status,
        headers=got.headers,
        coding=got.coding,
        size=len(got.body),
        looks_html=got.body.lstrip()[:20].lower().startswith(_HTML_START),
        matches=matches,
        served=served,
    )


# -- a file that does not exist ----------------------------------------------------


def _probe_folders(page: Page, refs: Sequence[AssetRef]) -> list[str]:
    folders = [ref.url.split("?", 1)[0].rsplit("/", 1)[0] + "/" for ref in refs]
    if not folders:
        folders = [page.url.split("?", 1)[0].rsplit("/", 1)[0] + "/"]
    return list(dict.fromkeys(folders))[:_MAX_PROBES]


def _probe(fetcher: Fetcher, folder: str) -> Probe:
    url = folder + PROBE_NAME
    headers = {"Accept": "*/*", "Accept-Encoding": "br, gzip"}
    try:
        got = fetcher.get(url, headers=headers, limit=_PROBE_BYTES)
    except FetchFailed as exc:
        return Probe(url, failure=str(exc))
    media = got.media_type
    if media not in ("text/html", "application/xhtml+xml"):
        return Probe(url, got.status, media)
    text = got.body.decode(_charset(got), "replace")
    guided = 'id="unblank-page"' in text  # unblank_pages' <main id="unblank-page">
    return Probe(url, got.status, media, html=True, guided=guided, text_chars=_visible_text(text))


class _TextCounter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chars = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template", "title"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template", "title") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.chars += len(" ".join(data.split()))


def _visible_text(html: str) -> int:
    counter = _TextCounter()
    with suppress(Exception):  # hostile markup: what was counted so far stands
        counter.feed(html)
        counter.close()
    return counter.chars


# -- generations -------------------------------------------------------------------


class _History:
    """Finds unblank's manifest next to the assets, lists earlier generations, and
    checks that the files only they use still answer."""

    def __init__(self, fetcher: Fetcher, settings: DoctorSettings, pool: ThreadPoolExecutor):
        self._fetcher = fetcher
        self._settings = settings
        self._pool = pool

    def examine(self, page: Page, refs: Sequence[AssetRef]) -> History:
        urls = [ref.url.split("?", 1)[0] for ref in refs]
        found = self._current(page, urls)
        if isinstance(found, str):
            return History(note=found)
        manifest, manifest_url, base = found
        listed, where = self._list(manifest_url)
        earlier = sorted((g for g in listed if g < manifest.generation), reverse=True)
        known = History(manifest_url, manifest.generation, base, tuple(listed))
        if not earlier:
            note = (
                f"generation {manifest.generation} is the only one {where}"
                if listed
                else f"{manifest_url} answers, but no list of earlier generations is reachable "
                "over HTTP (neither /_unblank/health nor a manifests/ listing)"
            )
            return replace(known, note=note)
        checked = []
        for generation in earlier[: self._settings.history]:
            old = self._old_manifest(generation, manifest_url, base)
            if old is not None:
                checked.append(self._check_files(generation, old, manifest, base))
        if not checked:
            note = (
                f"{len(listed)} generations are listed {where}, but their manifests are not "
                "reachable over HTTP: the files of earlier generations cannot be checked"
            )
            return replace(known, note=note)
        return replace(known, checked=tuple(checked))

    def _current(self, page: Page, urls: Sequence[str]) -> tuple[Manifest, str, str] | str:
        tried = _manifest_candidates(page.url, urls)
        mismatch = ""
        for url in tried:
            manifest = self._manifest(url)
            if manifest is None:
                continue
            base = _base_of(manifest, urls)
            if base is not None:
                return manifest, url, base
            mismatch = f"; {url} names none of the page's files"
        return f"no unblank manifest found ({', '.join(tried[:3])}...){mismatch}"

    def _manifest(self, url: str) -> Manifest | None:
        headers = {"Accept": "application/json", "Accept-Encoding": "br, gzip"}
        try:
            got = self._fetcher.get(url, headers=headers, limit=self._settings.max_manifest_bytes)
        except FetchFailed:
            return None
        if got.status != 200:
            return None
        try:
            return Manifest.loads(got.body)
        except UnblankError:
            return None

    def _list(self, manifest_url: str) -> tuple[list[str], str]:
        folder = manifest_url.rsplit("/", 1)[0] + "/"
        if folder.endswith("/_unblank/"):
            health = folder + "health"
            return self._names(self._json(health), "generations"), f"at {health}"
        listing = folder + "manifests/"
        return self._names(self._json(listing), "name"), f"in {listing}"

    def _json(self, url: str) -> object:
        headers = {"Accept": "application/json, text/html;q=0.9", "Accept-Encoding": "br, gzip"}
        try:
            got = self._fetcher.get(url, headers=headers, limit=_LISTING_BYTES)
        except FetchFailed:
            return None
        if got.status != 200:
            return None
        text = got.body.decode(_charset(got), "replace")
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return _Links.of(text)  # a directory listing: <a href="<generation>.json">

    @staticmethod
    def _names(data: object, key: str) -> list[str]:
        items: Iterable[object] = ()
        if isinstance(data, dict) and isinstance(data.get(key), list):
            items = data[key]  # /_unblank/health: {"generations": [...]}
        elif isinstance(data, list):
            items = (x.get(key) if isinstance(x, dict) else x for x in data)  # nginx json index
        names = []
        for item in items:
            if isinstance(item, str):
                name = item.removesuffix(".json")
                if _GENERATION.fullmatch(name) and name != "index":
                    names.append(name)
        return sorted(set(names))[-_MAX_GENERATIONS:]

    def _old_manifest(self, generation: str, manifest_url: str, base: str) -> Manifest | None:
        folder = manifest_url.rsplit("/", 1)[0] + "/"
        candidates = (f"{folder}manifests/{generation}.json", f"{base}manifests/{generation}.json")
        for url in dict.fromkeys(candidates):
            manifest = self._manifest(url)
            if manifest is not None and manifest.generation == generation:
                return manifest
        return None

    def _check_files(
        self, generation: str, old: Manifest, current: Manifest, base: str
    ) -> GenerationResult:
        paths = sorted(old.paths() - current.paths())[: self._settings.max_assets]
        urls = [base + path for path in paths]
        answered = list(self._pool.map(self._answers, urls))
        gone = tuple(url for url, ok in zip(urls, answered, strict=True) if not ok)
        return GenerationResult(generation, len(urls), gone)

    def _answers(self, url: str) -> bool:
        headers = {"Accept": "*/*", "Accept-Encoding": "br, gzip"}
        try:
            got = self._fetcher.get(url, headers=headers, limit=1, read_body=False)
        except FetchFailed:
            return False
        wants_html = url.endswith((".html", ".htm"))
        return got.status == 200 and (wants_html or got.media_type != "text/html")


def _manifest_candidates(page_url: str, urls: Sequence[str]) -> list[str]:
    """``<folder>/_unblank/manifest.json`` and ``<folder>/manifest.json`` for the
    folders above the first asset, nearest first, then the page origin's."""
    out = []
    if urls:
        origin = origin_of(urls[0])
        folders = urlsplit(urls[0]).path.split("/")[1:-1]
        for depth in range(len(folders), max(-1, len(folders) - _MAX_LEVELS - 1), -1):
            prefix = "/".join([origin, *folders[:depth]]) + "/"
            out += [prefix + "_unblank/manifest.json", prefix + "manifest.json"]
        out.append(origin + "/_unblank/manifest.json")  # unblank serve at the asset host's root
    out.append(origin_of(page_url) + "/_unblank/manifest.json")
    return list(dict.fromkeys(out))


def _base_of(manifest: Manifest, urls: Sequence[str]) -> str | None:
    """The URL the manifest's paths are relative to, found from an asset's URL."""
    paths = manifest.paths()
    for url in urls:
        parts = unquote(url).split("/")  # the manifest names files, not URL-encoded paths
        for start in range(3, len(parts)):
            if "/".join(parts[start:]) in paths:
                return "/".join(parts[:start]) + "/"
    return None


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and len(self.hrefs) < 10 * _MAX_GENERATIONS:
            href = dict(attrs).get("href") or ""
            if href.endswith(".json") and "/" not in href:
                self.hrefs.append(href)

    @classmethod
    def of(cls, html: str) -> list[str]:
        parser = cls()
        with suppress(Exception):  # hostile markup: the links read so far stand
            parser.feed(html)
            parser.close()
        return parser.hrefs


# -- small things ------------------------------------------------------------------


def _charset(fetched: Fetched) -> str:
    match = re.search(r"charset=\"?([A-Za-z0-9_.:-]{1,40})", fetched.header("content-type"))
    if match:
        try:
            return codecs.lookup(match[1]).name
        except LookupError:
            pass
    return "utf-8"


def _asset_dict(result: AssetResult) -> dict[str, object]:
    ref = result.ref
    return {
        "url": ref.url,
        "kind": ref.kind,
        "cross_origin": ref.cross_origin,
        "fingerprinted": ref.fingerprinted,
        "mirror_of": ref.mirror_of or None,
        "integrity": list(ref.integrities),
        "answers": [
            {
                "asked": a.asked,
                "status": a.status,
                "coding": a.coding,
                "bytes": a.size,
                "integrity_ok": all(a.matches.values()) if a.matches else None,
                "failure": a.failure or None,
            }
            for a in result.answers
        ],
    }
