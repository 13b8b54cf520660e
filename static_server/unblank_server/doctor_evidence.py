"""The evidence ``unblank doctor`` gathers and the verdicts it gives.

:mod:`unblank_server.doctor` fills an :class:`Evidence` (the shell's answer,
every asset's answers per coding, the probes of a missing file, the
generations); :mod:`unblank_server.doctor_checks` turns it into one
:class:`Check` per white-screen risk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

import httpx

from unblank import integrity
from unblank._exceptions import IntegrityMetadataError
from unblank_server.doctor_page import Page, Tag

__all__ = [
    "TITLES",
    "Answer",
    "AssetRef",
    "AssetResult",
    "Check",
    "Evidence",
    "GenerationResult",
    "History",
    "Probe",
    "Verdict",
    "cache_directives",
    "metadata_problem",
    "origin_of",
]

TITLES: Final = {
    "shell-cache": "HTML shell not cached for long",
    "watchdog": "unblank watchdog in the shell",
    "assets-load": "every asset loads",
    "integrity": "integrity on every asset",
    "crossorigin": "crossorigin where SRI needs CORS",
    "cors": "CORS headers on cross-origin assets",
    "integrity-match": "integrity matches the bytes, per encoding",
    "immutable": "fingerprinted files cached as immutable",
    "vary": "Vary: Accept-Encoding on compressed answers",
    "compression": "text assets compressed",
    "spa-fallback": "no HTML 200 for a missing asset",
    "error-page": "guided error page at the edge",
    "generations": "previous generations still served",
}


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict: ``details`` says what was found, ``advice`` what to change."""

    id: str
    title: str
    verdict: Verdict
    details: str
    advice: str = ""
    urls: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict.value,
            "details": self.details,
            "advice": self.advice,
            "urls": list(self.urls),
        }


# -- the evidence ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetRef:
    """A URL the page loads, with every tag naming it and the import map's integrity."""

    url: str
    tags: tuple[Tag, ...]
    mapped_integrity: str | None
    cross_origin: bool
    fingerprinted: bool
    # The URL of the same file (same name, same integrity) at the base the page
    # loads it from, when this is only an import map's copy of it at a mirror.
    mirror_of: str = ""

    @property
    def kind(self) -> str:
        return self.tags[0].kind if self.tags else "module-chunk"

    @property
    def is_script(self) -> bool:
        return not self.tags or any(t.is_script for t in self.tags)

    @property
    def cors(self) -> bool:
        # import() of a chunk only the import map names is a CORS request too.
        return not self.tags or any(t.cors for t in self.tags)

    @property
    def sri_without_cors(self) -> bool:
        """A script or stylesheet tag with integrity but no crossorigin: the browser
        refuses the file unless it is requested with CORS (and the host allows it)."""
        return any(
            t.integrity and not t.cors and t.kind in ("script", "stylesheet") for t in self.tags
        )

    @property
    def credentials(self) -> bool:
        return any(t.crossorigin == "use-credentials" for t in self.tags)

    @property
    def integrities(self) -> tuple[str, ...]:
        """Every metadata a browser checks the bytes against."""
        # integrity="" asks for nothing: browsers load the file unchecked.
        found = [t.integrity for t in self.tags if t.integrity and t.integrity.strip()]
        # The import map's integrity applies to module scripts and imports, not to
        # classic scripts and stylesheets.
        if self.mapped_integrity and (
            not self.tags or any(t.kind in ("module", "modulepreload") for t in self.tags)
        ):
            found.append(self.mapped_integrity)
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class Answer:
    """One GET of an asset with ``Accept-Encoding: <asked>``."""

    asked: str
    url: str = ""
    status: int = 0
    headers: httpx.Headers = field(default_factory=httpx.Headers, compare=False)
    coding: str = "identity"
    size: int = 0  # decoded bytes
    looks_html: bool = False
    matches: Mapping[str, bool] = field(default_factory=dict)  # readable metadata -> verified
    served: str = ""  # the SRI digest of what was served, for messages
    failure: str = ""
    failure_kind: str = ""  # "network", "oversize", "decode"

    @property
    def ok(self) -> bool:
        return not self.failure and self.status == 200

    def header(self, name: str) -> str:
        return ", ".join(self.headers.get_list(name))

    @property
    def media_type(self) -> str:
        return self.header("content-type").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class AssetResult:
    ref: AssetRef
    answers: tuple[Answer, ...]  # identity first

    @property
    def identity(self) -> Answer:
        return self.answers[0]

    @property
    def name(self) -> str:
        return self.ref.url.rsplit("/", 1)[-1] or self.ref.url


@dataclass(frozen=True, slots=True)
class Probe:
    """The answer to a made-up fingerprinted file next to the page's assets."""

    url: str
    status: int = 0
    media_type: str = ""
    html: bool = False
    guided: bool = False  # unblank's guided page
    text_chars: int = 0  # visible text of an HTML answer
    failure: str = ""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    generation: str
    files: int  # files of this generation that the current one no longer has
    gone: tuple[str, ...]  # URLs of those that do not answer 200


@dataclass(frozen=True, slots=True)
class History:
    manifest_url: str = ""
    current: str = ""
    base: str = ""
    listed: tuple[str, ...] = ()
    checked: tuple[GenerationResult, ...] = ()
    note: str = ""  # why nothing could be checked


@dataclass(frozen=True, slots=True)
class Evidence:
    page: Page
    shell_headers: httpx.Headers
    assets: tuple[AssetResult, ...]
    probes: tuple[Probe, ...]
    history: History
    unchecked: int = 0  # assets beyond --max-assets

    @property
    def primary(self) -> tuple[AssetResult, ...]:
        """The assets that are not a mirror's copy of another: what per-file quality
        (caching, compression, Vary) is judged on."""
        return tuple(r for r in self.assets if not r.ref.mirror_of)

    @property
    def mirrors(self) -> tuple[AssetResult, ...]:
        """The import map's copies, at a mirror, of files checked at their own base."""
        return tuple(r for r in self.assets if r.ref.mirror_of)


# -- reading headers and metadata ------------------------------------------------


def cache_directives(value: str) -> dict[str, str]:
    """``Cache-Control`` as {directive: value}; the first of repeated directives wins.

    >>> cache_directives('public, max-age=60, no-cache="set-cookie"')
    {'public': '', 'max-age': '60', 'no-cache': 'set-cookie'}
    """
    out: dict[str, str] = {}
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        name = name.strip().lower()
        if name:
            out.setdefault(name, arg.strip().strip('"'))
    return out


def metadata_problem(metadata: str) -> str:
    """Why SRI ``metadata`` is unreadable, or "" when unblank.integrity reads it."""
    try:
        integrity.parse(metadata)
    except IntegrityMetadataError as exc:
        return str(exc)
    return ""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, the port only when it is not the default.

    >>> origin_of("HTTPS://CDN.example.com:443/static/app.js"), origin_of("http://[::1]:8000/")
    ('https://cdn.example.com', 'http://[::1]:8000')
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url  # not a URL one can fetch: its own origin
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")
