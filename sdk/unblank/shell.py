"""Jinja2 helpers for the server-rendered shell: fingerprinted, verified tags.

A :class:`Shell` turns logical asset names into the tags a page needs, each
with the fingerprinted URL, its ``integrity`` and ``crossorigin`` (SRI needs
CORS when assets come from another origin), and the request's CSP nonce::

    shell = Shell(manifest=lambda: client_manifest(), base_url="https://cdn.example.com/static/")
    shell.install(templates.env)          # Starlette's Jinja2Templates, or any Environment

    {{ import_map(nonce=nonce) }}
    {{ entry_tags("index.html", nonce=nonce) }}
    {{ asset_tag("css/print.css") }}
    <img src="{{ asset_url('img/logo.svg') }}">

``import_map()`` carries the integrity of every JavaScript file, so chunks
loaded later by ``import()`` are verified too (import-map ``integrity``).

``unblank_head()`` goes first in ``<head>``: the watchdog (inline, with the
request's CSP nonce) and the guided pages it can show without the network,
inside ``<template>`` elements. Installed in Jinja2, every helper finds
``request`` in the template's context by itself (Starlette passes it), and
with it the nonce and request id :class:`~unblank.UnblankMiddleware` made::

    <head>
      {{ unblank_head() }}
      {{ import_map() }}
      {{ entry_tags("index.html") }}
    </head>

:meth:`Shell.template_response` sends the page as a shell must go out:
``Cache-Control: no-cache``, an ``ETag``, and ``X-Unblank-Generation``.

>>> from unblank import Asset, Manifest
>>> from datetime import UTC, datetime
>>> js = Asset("app.0123456789ab.js", "sha384-" + "A" * 64, 10, "text/javascript")
>>> manifest = Manifest("g1", datetime(2026, 1, 1, tzinfo=UTC), {"app.js": js})
>>> print(Shell(manifest=manifest).asset_tag("app.js", nonce="r4nd0m"))
<script type="module" src="/static/app.0123456789ab.js" integrity=... nonce="r4nd0m"></script>
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Final

import jinja2
from markupsafe import Markup, escape
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from unblank._exceptions import RolloutError
from unblank.guarded import Rollout
from unblank.manifest import Asset, Manifest
from unblank_pages import PageRenderer, request_id_from
from unblank_pages.negotiation import choose_locale
from unblank_pages.render import FALLBACK_REASONS

__all__ = ["Shell", "WatchdogSettings", "watchdog_source"]

# scope["state"] keys UnblankMiddleware fills for every request.
NONCE_KEY: Final = "unblank_nonce"
REQUEST_ID_KEY: Final = "unblank_request_id"

_JS: Final = ("text/javascript", "application/javascript", "application/x-javascript")
_CSS: Final = "text/css"


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogSettings:
    """How the watchdog in the browser waits and retries (times in seconds).

    ``ready_timeout``: how long the app has to call ``unblank.ready()`` before
    the viewport is checked for a white screen (longer while assets still
    arrive, never more than three times this). ``asset_timeout``: how long a
    script or stylesheet may stay unanswered before the watchdog checks whether
    its origin answers at all. ``retry_for``: the time a failing asset is
    retried (from mirrors, then cache-busted). ``crash_grace``: how long after
    an exception at boot the page may stay empty before it counts as a crash.
    ``root``: the CSS selector of the element the app renders into.
    """

    ready_timeout: float = 10.0
    asset_timeout: float = 8.0
    retry_for: float = 20.0
    crash_grace: float = 2.0
    root: str = "#app, #root, [data-unblank-root]"
    param: str = "__unblank"

    def __post_init__(self) -> None:
        for name in ("ready_timeout", "asset_timeout", "retry_for", "crash_grace"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= 600
            ):
                raise ValueError(
                    f"WatchdogSettings.{name} must be seconds in (0, 600], not {value!r}"
                )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,31}", self.param):
            raise ValueError(f"WatchdogSettings.param {self.param!r}: use letters, digits and _")


@cache
def watchdog_source() -> str:
    """The watchdog as shipped: its source without comments, indentation and the
    spaces that separate nothing (strings, template strings and regular
    expressions are kept as written). The config goes where
    ``__UNBLANK_CONFIG__`` stands.
    """
    text = files("unblank").joinpath("watchdog.js").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    compacted = (_compact(line) for line in lines if line and not line.startswith("//"))
    return "\n".join(line.rstrip() for line in compacted)


_WORD: Final = re.compile(r"[\w$]")
# After these, "/" starts a regular expression; anywhere else it divides.
# (Keep "/" out of the watchdog after ")" or "}": there it could be either.)
_BEFORE_REGEX: Final = frozenset("(,=:[!&|?{};+-*%<>~^")
_KEYWORD_BEFORE_REGEX: Final = re.compile(
    r"\b(?:return|typeof|case|in|of|void|throw|delete|instanceof|new|yield|await|do|else)$"
)


def _compact(line: str) -> str:
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        char = line[i]
        if char in "'\"`":
            end = i + 1
            while line[end] != char:
                end += 2 if line[end] == "\\" else 1
            out.append(line[i : end + 1])
            i = end + 1
        elif line.startswith("//", i):
            break  # a comment to the end of the line ("//" never starts a regex)
        elif char == "/" and _regex_may_start("".join(out)):
            end, in_class = i + 1, False
            while in_class or line[end] != "/":
                if line[end] == "\\":
                    end += 1
                elif line[end] in "[]":
                    in_class = line[end] == "["
                end += 1
            end += 1
            while end < n and line[end].isalpha():
                end += 1
            out.append(line[i:end])
            i = end
        elif char == " ":
            before = out[-1][-1:] if out else ""
            after = line[i + 1 : i + 2]
            keep = (_WORD.match(before) and _WORD.match(after)) or (before + after in ("++", "--"))
            if keep:
                out.append(" ")
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _regex_may_start(text: str) -> bool:
    text = text.rstrip()
    return not text or text[-1] in _BEFORE_REGEX or _KEYWORD_BEFORE_REGEX.search(text) is not None


def _json_for_script(value: object) -> str:
    # "</script>" and "<!--" cannot occur once every "<" is escaped in the JSON.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")


def _media(asset: Asset) -> str:
    return asset.content_type.split(";", 1)[0].strip().lower()


class Shell:
    """Tags for one site's assets.

    ``manifest`` is the current :class:`~unblank.Manifest` or a callable that
    returns it (so a new generation shows up without rebuilding the shell);
    ``base_url`` is where the files are served (``unblank serve``: ``/static/``);
    ``crossorigin`` the attribute every tag carries (``None`` for none, when
    assets share the page's origin and no SRI-over-CORS is needed).

    The watchdog: ``mirrors`` are more base URLs serving the same files (another
    ``unblank serve``, or ``/_unblank/mirror/`` from the middleware), tried in
    order when an asset fails; ``report_url`` receives its incident beacons;
    ``watchdog`` tunes its timing; ``pages`` renders the guided pages it carries
    (your :class:`~unblank_pages.PageRenderer`, for a brand or translations).

    Guarded rollout: with ``rollout`` (a :class:`~unblank.guarded.Rollout`;
    ``manifest`` may then be left out), every helper given the request renders
    the generation :meth:`Rollout.assign` picked for that browser (the stable
    one, or the canary), the watchdog reports that generation, and
    :meth:`response` sets the browser-id cookie. A page view is counted once
    per request.
    """

    def __init__(
        self,
        *,
        manifest: Manifest | Callable[[], Manifest] | None = None,
        base_url: str = "/static/",
        crossorigin: str | None = "anonymous",
        mirrors: Sequence[str] = (),
        report_url: str = "/_unblank/report",
        watchdog: WatchdogSettings | None = None,
        pages: PageRenderer | None = None,
        rollout: Rollout | None = None,
    ) -> None:
        if manifest is None and rollout is None:
            raise ValueError("Shell needs a manifest (or a callable returning one) or a rollout")
        if rollout is not None and not isinstance(rollout, Rollout):
            raise ValueError(f"Shell rollout must be an unblank.guarded.Rollout, not {rollout!r}")
        if isinstance(mirrors, str):
            raise ValueError("mirrors is a list of base URLs, not one string")
        mirrors = tuple(mirrors)
        if not report_url.startswith(("/", "https://", "http://")) or report_url.startswith("//"):
            raise ValueError(f"report_url {report_url!r} must be a path or an http(s) URL")
        for base in (base_url, *mirrors):
            if not base.endswith("/"):
                raise ValueError(f"base URL {base!r} must end with '/'")
            if not base.startswith(("/", "https://", "http://")) or base.startswith("//"):
                raise ValueError(f"base URL {base!r} must be a path or an http(s) URL")
        if crossorigin not in (None, "anonymous", "use-credentials"):
            raise ValueError(
                f"crossorigin {crossorigin!r}: use 'anonymous', 'use-credentials' or None"
            )
        self._manifest = manifest
        self.rollout = rollout
        self.base_url = base_url
        self.crossorigin = crossorigin
        self.mirrors = tuple(mirrors)
        self.report_url = report_url
        self.watchdog = watchdog or WatchdogSettings()
        self.pages = pages or PageRenderer()
        self._fallbacks: dict[tuple[str, str | None], str] = {}

    @property
    def manifest(self) -> Manifest:
        """The generation rendered when no request says otherwise (with a rollout
        and no ``manifest``: the stable one)."""
        source = self._manifest
        if source is None:
            if self.rollout is None:  # __init__ refuses this; for mypy
                raise RolloutError("Shell has neither a manifest nor a rollout")
            return self.rollout.stable
        return source if isinstance(source, Manifest) else source()

    def manifest_for(self, request: Request | None) -> Manifest:
        """The generation ``request``'s shell renders: assigned by the rollout (once
        per request), else :attr:`manifest`."""
        if self.rollout is None or request is None:
            return self.manifest
        return self.rollout.assign(request).manifest

    # -- helpers ---------------------------------------------------------------

    def asset_url(self, name: str, *, request: Request | None = None) -> str:
        """The fingerprinted URL of logical ``name``; ``KeyError`` names a missing one."""
        return self.base_url + self._asset(self.manifest_for(request), name).path

    def asset_tag(
        self,
        name: str,
        *,
        nonce: str | None = None,
        module: bool = True,
        defer: bool = True,
        request: Request | None = None,
    ) -> Markup:
        """``<script>`` for JavaScript, ``<link rel="stylesheet">`` for CSS.

        ``module=False`` makes a classic script, kept in order with ``defer``;
        ``defer=False`` too makes it parser-blocking (for legacy code that
        must run where it stands; the watchdog retries it in place).
        """
        asset = self._asset(self.manifest_for(request), name)
        media = _media(asset)
        url = self.base_url + asset.path
        if media in _JS:
            kind: dict[str, str | None] = (
                {"type": "module"} if module else {"defer": None} if defer else {}
            )
            return self._tag("script", {**kind, "src": url}, asset, nonce, close=True)
        if media == _CSS:
            return self._tag("link", {"rel": "stylesheet", "href": url}, asset, nonce)
        raise ValueError(
            f"{name!r} is {media}: asset_tag makes script and stylesheet tags; use asset_url"
        )

    def entry_tags(
        self, entry: str, *, nonce: str | None = None, request: Request | None = None
    ) -> Markup:
        """Everything a bundler entry needs, in the order browsers want it:
        its stylesheets, ``modulepreload`` of its static imports, its script."""
        manifest = self.manifest_for(request)
        try:
            found = manifest.entry(entry)
        except KeyError:
            known = ", ".join(sorted(manifest.entries)) or "none"
            raise KeyError(
                f"no entry {entry!r} in generation {manifest.generation} (entries: {known})"
            ) from None
        tags = [self.asset_tag(css, nonce=nonce, request=request) for css in found.css]
        for name in found.imports:
            asset = self._asset(manifest, name)
            attrs: dict[str, str | None] = {
                "rel": "modulepreload",
                "href": self.base_url + asset.path,
            }
            tags.append(self._tag("link", attrs, asset, nonce))
        tags.append(self.asset_tag(found.file, nonce=nonce, request=request))
        return Markup("\n").join(tags)

    def import_map(self, *, nonce: str | None = None, request: Request | None = None) -> Markup:
        """``<script type="importmap">`` with the ``integrity`` of every JavaScript
        file of the generation, so ``import()`` verifies lazy chunks too."""
        manifest = self.manifest_for(request)
        integrity = {
            base + asset.path: asset.integrity
            for base in (self.base_url, *self.mirrors)
            for asset in sorted(manifest.assets.values(), key=lambda a: a.path)
            if _media(asset) in _JS
        }
        # "</" cannot end the script early once every "<" is escaped in the JSON.
        body = json.dumps({"imports": {}, "integrity": integrity}, indent=None)
        body = body.replace("<", "\\u003c")
        nonce_attr = Markup(' nonce="{}"').format(nonce) if nonce else Markup("")
        json_text = Markup(body)  # noqa: S704 - JSON with every "<" escaped: inert in a script
        return Markup('<script type="importmap"{}>{}</script>').format(nonce_attr, json_text)

    def unblank_head(
        self,
        request: Request | None = None,
        *,
        nonce: str | None = None,
        locale: str | None = None,
        request_id: str | None = None,
    ) -> Markup:
        """The watchdog and its guided pages: put it first in ``<head>``.

        ``request`` supplies what is not given: the nonce and request id
        :class:`~unblank.UnblankMiddleware` made, the language from
        ``Accept-Language``.
        """
        state = _state(request)
        nonce = nonce if nonce is not None else state.get(NONCE_KEY)
        if request_id is None:
            # One reference for the page the user may read out and the reports.
            request_id = state.get(REQUEST_ID_KEY) or request_id_from(None)
            scope = getattr(request, "scope", None)
            if isinstance(scope, dict):  # the same reference for the ETag to leave out
                scope.setdefault("state", {})[REQUEST_ID_KEY] = request_id
        if locale is None and request is not None:
            locale = choose_locale(
                request.headers.get("accept-language"),
                self.pages.catalogs,
                self.pages.default_locale,
            )
        settings = self.watchdog
        config = {
            "generation": self.manifest_for(request).generation,
            "base": self.base_url,
            "mirrors": list(self.mirrors),
            "report": self.report_url,
            "ready": int(settings.ready_timeout * 1000),
            "assetTimeout": int(settings.asset_timeout * 1000),
            "retryFor": int(settings.retry_for * 1000),
            "crashGrace": int(settings.crash_grace * 1000),
            "root": settings.root,
            "param": settings.param,
            "reference": request_id,
        }
        script = watchdog_source().replace("__UNBLANK_CONFIG__", _json_for_script(config))
        nonce_attr = Markup(' nonce="{}"').format(nonce) if nonce else Markup("")
        fallback = self.pages.fallback(
            FALLBACK_REASONS, locale=locale, request_id=request_id, nonce=nonce
        )
        code = Markup(script)  # noqa: S704 - our own source; its config is JSON with "<" escaped
        html = Markup(fallback)  # noqa: S704 - rendered by unblank_pages with autoescape
        return Markup("<script{}>{}</script>\n{}").format(nonce_attr, code, html)

    def template_response(
        self,
        templates: Any,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> Response:
        """Render ``name`` with Starlette's ``Jinja2Templates`` and send it as a shell."""
        template = templates.get_template(name)
        html = template.render({**(context or {}), "request": request})
        return self.response(
            html, request, status_code=status_code, headers=headers, background=background
        )

    def response(
        self,
        html: str,
        request: Request | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> Response:
        """The rendered shell as a response: ``Cache-Control: no-cache`` (a deploy
        is seen at the next load), a weak ``ETag`` of the body without the
        request's reference (304 when it matches ``If-None-Match``; a body with a
        CSP nonce never matches another), ``X-Unblank-Generation``, and ``Vary:
        Accept-Language`` (the guided pages inside follow the language).

        With a rollout the generation is the request's assignment, the
        browser-id cookie is set for a new browser, and the page varies with
        ``Cookie`` and is ``private`` (a shared cache must not hand one
        browser's generation, or its cookie, to another)."""
        body = html.encode("utf-8")
        # The request's reference makes every body unique; without it two renders
        # of one generation are the same page: a weak validator. The CSP nonce
        # stays in: a 304 would keep a cached body whose nonce no longer matches
        # the policy a 304 may carry (a blank page), so nonce shells never get one.
        reference = _state(request).get(REQUEST_ID_KEY)
        same = body
        if isinstance(reference, str) and reference:
            same = same.replace(reference.encode("utf-8"), b"")
        etag = 'W/"' + hashlib.sha256(same).hexdigest()[:32] + '"'
        out = {
            "Cache-Control": "no-cache",
            "ETag": etag,
            "X-Unblank-Generation": self.manifest_for(request).generation,
            "Vary": "Accept-Language",
        }
        if self.rollout is not None:
            out["Cache-Control"] = "private, no-cache"
            out["Vary"] = "Accept-Language, Cookie"
        out.update(headers or {})
        cookie = self.rollout.assign(request).set_cookie if self.rollout and request else None
        if request is not None and status_code == 200:
            wanted = request.headers.get("if-none-match", "")
            tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
            if etag.removeprefix("W/") in tags:
                response = Response(status_code=304, headers=out, background=background)
                if cookie is not None:
                    response.headers.append("Set-Cookie", cookie)
                return response
        response = Response(
            body,
            status_code=status_code,
            headers=out,
            media_type="text/html",
            background=background,
        )
        if cookie is not None:
            response.headers.append("Set-Cookie", cookie)
        return response

    def install(self, env: Any) -> None:
        """Add ``asset_url``, ``asset_tag``, ``entry_tags``, ``import_map`` and
        ``unblank_head`` to a Jinja2 ``Environment`` (``Jinja2Templates(...).env``
        for Starlette). In a template they read ``request`` from the context, so
        the nonce comes by itself; an explicit ``nonce=`` wins. With a rollout
        they render the generation assigned to the request."""

        def with_request(method: Callable[..., Any], nonce: bool = True) -> Callable[..., Any]:
            @jinja2.pass_context
            def helper(context: jinja2.runtime.Context, *args: Any, **kwargs: Any) -> Any:
                request = context.get("request")
                if nonce and "nonce" not in kwargs:
                    kwargs["nonce"] = _state(request).get(NONCE_KEY, context.get("csp_nonce"))
                if not (method == self.unblank_head and args):
                    kwargs.setdefault("request", request)
                return method(*args, **kwargs)

            return helper

        env.globals.update(
            asset_url=with_request(self.asset_url, nonce=False),
            asset_tag=with_request(self.asset_tag),
            entry_tags=with_request(self.entry_tags),
            import_map=with_request(self.import_map),
            unblank_head=with_request(self.unblank_head),
        )

    # -- internals ---------------------------------------------------------------

    @staticmethod
    def _asset(manifest: Manifest, name: str) -> Asset:
        asset = manifest.assets.get(name)
        if asset is None:
            raise KeyError(
                f"no asset {name!r} in generation {manifest.generation}: check the name "
                "against SRC, or rebuild"
            )
        return asset

    def _tag(
        self,
        name: str,
        attrs: dict[str, str | None],
        asset: Asset,
        nonce: str | None,
        *,
        close: bool = False,
    ) -> Markup:
        attrs = {**attrs, "integrity": asset.integrity}
        if self.crossorigin is not None:
            attrs["crossorigin"] = self.crossorigin
        if nonce:
            attrs["nonce"] = nonce
        parts = [
            str(escape(key)) if value is None else f'{escape(key)}="{escape(value)}"'
            for key, value in attrs.items()
        ]
        html = f"<{name} {' '.join(parts)}>" + (f"</{name}>" if close else "")
        return Markup(html)  # noqa: S704 - every name and value above is escaped


def _state(request: Any) -> Mapping[str, Any]:
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, Mapping) else None
    return state if isinstance(state, Mapping) else {}
