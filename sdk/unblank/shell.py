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

>>> from unblank import Asset, Manifest
>>> from datetime import UTC, datetime
>>> js = Asset("app.0123456789ab.js", "sha384-" + "A" * 64, 10, "text/javascript")
>>> manifest = Manifest("g1", datetime(2026, 1, 1, tzinfo=UTC), {"app.js": js})
>>> print(Shell(manifest=manifest).asset_tag("app.js", nonce="r4nd0m"))
<script type="module" src="/static/app.0123456789ab.js" integrity=... nonce="r4nd0m"></script>
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from markupsafe import Markup, escape

from unblank.manifest import Asset, Manifest

__all__ = ["Shell"]

_JS: Final = ("text/javascript", "application/javascript", "application/x-javascript")
_CSS: Final = "text/css"


def _media(asset: Asset) -> str:
    return asset.content_type.split(";", 1)[0].strip().lower()


class Shell:
    """Tags for one site's assets.

    ``manifest`` is the current :class:`~unblank.Manifest` or a callable that
    returns it (so a new generation shows up without rebuilding the shell);
    ``base_url`` is where the files are served (``unblank serve``: ``/static/``);
    ``crossorigin`` the attribute every tag carries (``None`` for none, when
    assets share the page's origin and no SRI-over-CORS is needed).
    """

    def __init__(
        self,
        *,
        manifest: Manifest | Callable[[], Manifest],
        base_url: str = "/static/",
        crossorigin: str | None = "anonymous",
    ) -> None:
        if not base_url.endswith("/"):
            raise ValueError(f"base_url {base_url!r} must end with '/'")
        if crossorigin not in (None, "anonymous", "use-credentials"):
            raise ValueError(
                f"crossorigin {crossorigin!r}: use 'anonymous', 'use-credentials' or None"
            )
        self._manifest = manifest
        self.base_url = base_url
        self.crossorigin = crossorigin

    @property
    def manifest(self) -> Manifest:
        source = self._manifest
        return source if isinstance(source, Manifest) else source()

    # -- helpers ---------------------------------------------------------------

    def asset_url(self, name: str) -> str:
        """The fingerprinted URL of logical ``name``; ``KeyError`` names a missing one."""
        return self.base_url + self._asset(self.manifest, name).path

    def asset_tag(self, name: str, *, nonce: str | None = None, module: bool = True) -> Markup:
        """``<script>`` for JavaScript (``module=False``: a classic script, kept in
        order with ``defer``), ``<link rel="stylesheet">`` for CSS."""
        asset = self._asset(self.manifest, name)
        media = _media(asset)
        url = self.base_url + asset.path
        if media in _JS:
            kind = {"type": "module"} if module else {"defer": None}
            return self._tag("script", {**kind, "src": url}, asset, nonce, close=True)
        if media == _CSS:
            return self._tag("link", {"rel": "stylesheet", "href": url}, asset, nonce)
        raise ValueError(
            f"{name!r} is {media}: asset_tag makes script and stylesheet tags; use asset_url"
        )

    def entry_tags(self, entry: str, *, nonce: str | None = None) -> Markup:
        """Everything a bundler entry needs, in the order browsers want it:
        its stylesheets, ``modulepreload`` of its static imports, its script."""
        manifest = self.manifest
        try:
            found = manifest.entry(entry)
        except KeyError:
            known = ", ".join(sorted(manifest.entries)) or "none"
            raise KeyError(
                f"no entry {entry!r} in generation {manifest.generation} (entries: {known})"
            ) from None
        tags = [self.asset_tag(css, nonce=nonce) for css in found.css]
        for name in found.imports:
            asset = self._asset(manifest, name)
            attrs: dict[str, str | None] = {
                "rel": "modulepreload",
                "href": self.base_url + asset.path,
            }
            tags.append(self._tag("link", attrs, asset, nonce))
        tags.append(self.asset_tag(found.file, nonce=nonce))
        return Markup("\n").join(tags)

    def import_map(self, *, nonce: str | None = None) -> Markup:
        """``<script type="importmap">`` with the ``integrity`` of every JavaScript
        file of the generation, so ``import()`` verifies lazy chunks too."""
        manifest = self.manifest
        integrity = {
            self.base_url + asset.path: asset.integrity
            for asset in sorted(manifest.assets.values(), key=lambda a: a.path)
            if _media(asset) in _JS
        }
        # "</" cannot end the script early once every "<" is escaped in the JSON.
        body = json.dumps({"imports": {}, "integrity": integrity}, indent=None)
        body = body.replace("<", "\\u003c")
        nonce_attr = Markup(' nonce="{}"').format(nonce) if nonce else Markup("")
        json_text = Markup(body)  # noqa: S704 - JSON with every "<" escaped: inert in a script
        return Markup('<script type="importmap"{}>{}</script>').format(nonce_attr, json_text)

    def install(self, env: Any) -> None:
        """Add ``asset_url``, ``asset_tag``, ``entry_tags`` and ``import_map`` to a
        Jinja2 ``Environment`` (``Jinja2Templates(...).env`` for Starlette)."""
        env.globals.update(
            asset_url=self.asset_url,
            asset_tag=self.asset_tag,
            entry_tags=self.entry_tags,
            import_map=self.import_map,
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
