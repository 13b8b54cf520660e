"""The checks of ``unblank doctor``: evidence in, one verdict per white-screen risk out.

Each ``check_*`` function is pure: it reads the :class:`~unblank_server.doctor_evidence.Evidence`
that :mod:`unblank_server.doctor` gathered and returns one
:class:`~unblank_server.doctor_evidence.Check` with a verdict, what was found,
and one concrete sentence saying what to change.

=================  ====================================================  =====
check              what it looks at                                      worst
=================  ====================================================  =====
shell-cache        the HTML shell is not cached for long                 FAIL
watchdog           the shell carries unblank's watchdog and pages        WARN
assets-load        every asset answers 200 with its type                 FAIL
integrity          every asset tag carries readable ``integrity``        FAIL
crossorigin        cross-origin SRI tags ask for CORS                    FAIL
cors               cross-origin CORS or SRI assets get Allow-Origin      FAIL
integrity-match    the bytes of every coding match ``integrity``         FAIL
immutable          fingerprinted files are cached as immutable           WARN
vary               compressed answers carry ``Vary: Accept-Encoding``    FAIL
compression        text assets above 1 KiB are compressed                WARN
spa-fallback       a missing asset is not answered with HTML and 200     FAIL
error-page         a missing file gets a guided page, not a bare 404     WARN
generations        the previous generation's files are still served      FAIL
=================  ====================================================  =====

An import map that lists every file under the origin and again under each
mirror (``unblank.Shell(mirrors=...)``) names copies of the same files: an
entry with the name and integrity of a file already listed is a mirror copy
(:attr:`~unblank_server.doctor_evidence.AssetRef.mirror_of`). Copies are
fetched and verified like any asset (assets-load, integrity-match, cors), but
immutable, vary and compression judge the primary copy only: a mirror is a
last resort and may serve identity only. The details name the mirrors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from unblank_server.doctor_evidence import (
    TITLES,
    Answer,
    AssetResult,
    Check,
    Evidence,
    Verdict,
    cache_directives,
    metadata_problem,
    origin_of,
)
from unblank_server.doctor_page import JS_ESSENCES, Tag

__all__ = ["CHECKS", "run_checks"]

YEAR: Final = 365 * 24 * 3600  # what CDNs treat as "immutable"
# Below this, a fingerprinted file is revalidated so often the cache barely helps.
LONG_ENOUGH: Final = 30 * 24 * 3600
# A shell fresher than this may name files a deploy just removed (and keeps a
# fixed page from reaching users); up to SHELL_OK is a reasonable micro-cache.
SHELL_OK: Final = 60
SHELL_RISK: Final = 600
COMPRESS_ABOVE: Final = 1024  # bytes: below one packet, compression saves nothing
_JS: Final = JS_ESSENCES
# What browsers never run as a classic script even without nosniff (Fetch, "should
# response to request be blocked due to its MIME type?").
_NEVER_SCRIPT: Final = ("audio/", "image/", "video/", "text/csv")
_TEXT: Final = frozenset(
    {
        *_JS,
        "application/json",
        "application/manifest+json",
        "application/xml",
        "image/svg+xml",
        "application/wasm",
    }
)
_SHOWN: Final = 3  # names quoted in one line of details
# Visible characters below which an HTML error page says no more than its status
# (nginx's default "404 Not Found" page has 22).
_PAGE_TEXT: Final = 200


# -- helpers -----------------------------------------------------------------------


def _seconds(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()):  # "²".isdigit() is True
        return None
    return min(int(value[:12]), 100 * YEAR)


def _lifetime(directives: Mapping[str, str]) -> int | None:
    """The longest any cache keeps it fresh: the larger of max-age and s-maxage."""
    ages = [a for a in (_seconds(directives.get(k)) for k in ("max-age", "s-maxage")) if a]
    zero = "max-age" in directives or "s-maxage" in directives
    return max(ages) if ages else (0 if zero else None)


def _duration(seconds: int) -> str:
    for unit, size in (("year", YEAR), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if (seconds >= size and seconds % size == 0) or seconds >= 2 * size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _mirror_bases(assets: Iterable[AssetResult]) -> list[str]:
    """The base URLs of the mirror copies: each copy's URL without the path it shares
    with its primary (``http://app/_unblank/mirror/`` for ``.../_unblank/mirror/app.js``)."""
    bases = []
    for result in assets:
        ref = result.ref
        if ref.mirror_of:
            copy, primary = ref.url.split("/"), ref.mirror_of.split("/")
            shared = 0
            while shared < min(len(copy), len(primary)) - 3 and (
                copy[-1 - shared] == primary[-1 - shared]
            ):
                shared += 1
            bases.append("/".join(copy[: len(copy) - shared]) + "/")
    return list(dict.fromkeys(bases))


def _mirror_note(ev: Evidence) -> str:
    """What the details say of the mirror copies judged on their primary."""
    if not ev.mirrors:
        return ""
    bases = _mirror_bases(ev.mirrors)
    return (
        f"; {len(ev.mirrors)} mirror {'copy' if len(ev.mirrors) == 1 else 'copies'} at "
        f"{_names(bases)} judged on the primary copy (a mirror is a last resort)"
    )


def _check(
    id: str,
    verdict: Verdict,
    details: str,
    advice: str = "",
    urls: Iterable[str] = (),
) -> Check:
    return Check(
        id,
        TITLES[id],
        verdict,
        details,
        advice if verdict != Verdict.PASS else "",
        tuple(dict.fromkeys(urls)),
    )


def _no_assets(id: str) -> Check:
    return _check(id, Verdict.SKIP, "the page loads no script or stylesheet from a server")


# -- the shell ---------------------------------------------------------------------


def check_shell_cache(ev: Evidence) -> Check:
    value = ", ".join(ev.shell_headers.get_list("cache-control"))
    directives = cache_directives(value)
    validator = "etag" in ev.shell_headers or "last-modified" in ev.shell_headers
    advice = (
        "Send the HTML shell with Cache-Control: no-cache and an ETag, so every load "
        "revalidates it and sees a deploy at once."
    )
    if "immutable" in directives:
        return _check(
            "shell-cache",
            Verdict.FAIL,
            f"the shell is sent as immutable (Cache-Control: {value}): browsers keep a shell "
            "that names files a later deploy removes",
            advice,
            [ev.page.url],
        )
    if "no-store" in directives or "no-cache" in directives:
        note = "" if validator else " (no ETag or Last-Modified: each load downloads it whole)"
        return _check("shell-cache", Verdict.PASS, f"Cache-Control: {value}{note}")
    lifetime = _lifetime(directives)
    if lifetime is None:
        return _check(
            "shell-cache",
            Verdict.WARN,
            "the shell has no Cache-Control: browsers and proxies may guess how long to "
            "keep it (RFC 9111 §4.2.2)",
            advice,
            [ev.page.url],
        )
    if lifetime <= SHELL_OK:
        return _check("shell-cache", Verdict.PASS, f"Cache-Control: {value}")
    verdict = Verdict.WARN if lifetime <= SHELL_RISK else Verdict.FAIL
    return _check(
        "shell-cache",
        verdict,
        f"the shell is cached for {_duration(lifetime)} (Cache-Control: {value}): after a "
        "deploy, a cached shell names files that may be gone",
        advice,
        [ev.page.url],
    )


def check_watchdog(ev: Evidence) -> Check:
    page = ev.page
    if page.watchdog_script and page.fallback_template:
        return _check("watchdog", Verdict.PASS, "unblank's watchdog and guided pages are inline")
    if page.watchdog_script or page.fallback_template:
        missing = "guided pages" if page.watchdog_script else "watchdog script"
        found = f"the shell carries unblank's {'watchdog' if page.watchdog_script else 'pages'}"
        return _check(
            "watchdog",
            Verdict.WARN,
            f"{found} but not its {missing}",
            "Put {{ unblank_head() }} first in the shell's <head>: it carries both.",
            [page.url],
        )
    return _check(
        "watchdog",
        Verdict.WARN,
        "no unblank watchdog in the shell: a failed asset leaves a blank page, with no retry "
        "and no guided page",
        "Put {{ unblank_head() }} (unblank.Shell) first in the shell's <head>.",
        [page.url],
    )


# -- assets ------------------------------------------------------------------------


def check_assets_load(ev: Evidence) -> Check:
    if not ev.assets:
        return _no_assets("assets-load")
    broken: list[tuple[str, str]] = []
    large: list[tuple[str, str]] = []
    for result in ev.assets:
        for answer in result.answers:
            problem = _load_problem(result, answer)
            if problem and answer.failure_kind == "oversize":
                large.append((result.ref.url, f"{result.name}: {problem}"))
            elif problem:
                broken.append((result.ref.url, f"{result.name}: {problem}"))
                break  # one problem per asset is enough to say
    more = f"; {ev.unchecked} more assets not checked (--max-assets)" if ev.unchecked else ""
    if ev.mirrors:
        bases = _mirror_bases(ev.mirrors)
        more += f"; {len(ev.mirrors)} of them copies at the mirror {_names(bases)}"
    more += "".join(f"; {problem}" for problem in ev.page.problems)
    if broken:
        return _check(
            "assets-load",
            Verdict.FAIL,
            f"{len(broken)} of {len(ev.assets)} assets do not load: "
            + "; ".join(text for _, text in broken[:_SHOWN])
            + more,
            "Deploy every file the shell names before the shell itself, and serve scripts as "
            "text/javascript and stylesheets as text/css.",
            [url for url, _ in broken],
        )
    if large:
        return _check(
            "assets-load",
            Verdict.WARN,
            "; ".join(text for _, text in large[:_SHOWN]) + more,
            "Split the largest bundles: a file this size is slow to arrive on a poor network.",
            [url for url, _ in large],
        )
    if ev.page.problems:
        return _check(
            "assets-load",
            Verdict.WARN,
            f"every asset answers 200, but the shell could not be read whole{more}",
            "Check the shell's markup with an HTML validator: browsers may read it differently.",
            [ev.page.url],
        )
    return _check(
        "assets-load",
        Verdict.PASS,
        f"every asset answers 200 ({_n(len(ev.assets), 'asset')}){more}",
    )


def _load_problem(result: AssetResult, answer: Answer) -> str:
    coding = "" if answer.asked == "identity" else f" (asked for {answer.asked})"
    if answer.failure:
        return answer.failure + coding
    if answer.status != 200:
        return f"answers {answer.status}{coding}"
    media = answer.media_type
    if answer.looks_html or media == "text/html":
        return f"answers 200 with an HTML page instead of the file{coding}"
    if result.ref.is_script and media not in _JS and _strict_type(result, answer):
        return f"is served as {media or 'no type'}, which browsers refuse for a script"
    if not result.ref.is_script and media != "text/css":
        return f"is served as {media or 'no type'}, which browsers refuse for a stylesheet"
    return ""


def _strict_type(result: AssetResult, answer: Answer) -> bool:
    """Whether a script of the wrong type is refused: module scripts always are;
    classic ones under nosniff, or when their type is one no script can have."""
    classic = all(t.kind in ("script", "preload-script") for t in result.ref.tags)
    nosniff = answer.header("x-content-type-options").strip().lower() == "nosniff"
    return not classic or nosniff or answer.media_type.startswith(_NEVER_SCRIPT)


def check_integrity(ev: Evidence) -> Check:
    if not ev.assets:
        return _no_assets("integrity")
    missing: list[AssetResult] = []
    unreadable: list[tuple[str, str]] = []
    for result in ev.assets:
        if not result.ref.integrities:
            missing.append(result)
        for metadata in result.ref.integrities:
            problem = metadata_problem(metadata)
            if problem:
                unreadable.append((result.ref.url, f"{result.name}: {problem}"))
    problems = list(ev.page.import_map_problems)
    if unreadable or problems:
        found = [t for _, t in unreadable[:_SHOWN]]
        return _check(
            "integrity",
            Verdict.FAIL,
            "; ".join(found + problems)
            + ": browsers ignore such metadata (nothing is verified) or refuse the file",
            "Write integrity from the build's manifest (unblank.Shell's asset_tag and import_map "
            "do): sha384-<base64 of the digest>.",
            [url for url, _ in unreadable] or [ev.page.url],
        )
    if missing:
        return _check(
            "integrity",
            Verdict.WARN,
            f"{len(missing)} of {len(ev.assets)} assets carry no integrity: "
            f"{_names([r.name for r in missing])}; a corrupted or stale copy would run unnoticed",
            "Add integrity (and crossorigin) to every script and stylesheet tag, or render them "
            "with unblank.Shell's asset_tag and import_map.",
            [r.ref.url for r in missing],
        )
    return _check(
        "integrity", Verdict.PASS, f"every asset carries integrity ({_n(len(ev.assets), 'asset')})"
    )


def check_crossorigin(ev: Evidence) -> Check:
    if not ev.assets:
        return _no_assets("crossorigin")
    needed = [
        (result, tag)
        for result in ev.assets
        if result.ref.cross_origin
        for tag in result.ref.tags
        # A preload without CORS is only wasted; the script or stylesheet itself is refused.
        if tag.integrity and not tag.cors and tag.kind in ("script", "stylesheet")
    ]
    if needed:
        names = [f"{r.name} (<{_element(t)}> line {t.line})" for r, t in needed]
        return _check(
            "crossorigin",
            Verdict.FAIL,
            f"{_n(len(needed), 'cross-origin tag')} with integrity but no crossorigin: "
            f"{_names(names)}; the browser cannot check SRI on an opaque answer and refuses them",
            'Add crossorigin="anonymous" to every tag that loads a file from another origin, '
            "and have that host send Access-Control-Allow-Origin (see cors).",
            [r.ref.url for r, _ in needed],
        )
    crossing = sum(1 for r in ev.assets if r.ref.cross_origin)
    if not crossing:
        return _check("crossorigin", Verdict.PASS, "every asset shares the page's origin")
    return _check(
        "crossorigin",
        Verdict.PASS,
        f"{_n(crossing, 'cross-origin asset')}; every one with integrity is requested with CORS",
    )


def _element(tag: Tag) -> str:
    return "script" if tag.kind in ("script", "module") else "link"


def check_cors(ev: Evidence) -> Check:
    checked = [
        r
        for r in ev.assets
        if r.ref.cross_origin and (r.ref.cors or r.ref.sri_without_cors) and r.identity.ok
    ]
    if not checked:
        return _check("cors", Verdict.SKIP, "no asset is requested from another origin with CORS")
    origin = origin_of(ev.page.url)
    refused: list[tuple[str, str]] = []
    for result in checked:
        problem = _cors_problem(result, origin)
        if problem and not result.ref.cors:
            problem += " (its tag needs crossorigin too: see crossorigin)"
        if problem:
            refused.append((result.ref.url, f"{result.name}: {problem}"))
    if refused:
        return _check(
            "cors",
            Verdict.FAIL,
            f"{len(refused)} of {len(checked)} cross-origin assets would be refused: "
            + "; ".join(t for _, t in refused[:_SHOWN]),
            f"Send Access-Control-Allow-Origin: * (or {origin}) with every asset "
            "(unblank serve --cors-origin).",
            [url for url, _ in refused],
        )
    return _check(
        "cors",
        Verdict.PASS,
        f"every cross-origin asset answers with Access-Control-Allow-Origin "
        f"({_n(len(checked), 'asset')})",
    )


def _cors_problem(result: AssetResult, origin: str) -> str:
    answer = result.identity
    allowed = answer.header("access-control-allow-origin").strip()
    if not allowed:
        return "no Access-Control-Allow-Origin"
    if allowed != "*" and allowed != origin:
        return f"Access-Control-Allow-Origin is {allowed[:80]!r}, not {origin!r}"
    if result.ref.credentials:
        if allowed == "*":
            return 'crossorigin="use-credentials" cannot use Access-Control-Allow-Origin: *'
        if answer.header("access-control-allow-credentials").strip().lower() != "true":
            return "use-credentials without Access-Control-Allow-Credentials: true"
    return ""


def check_integrity_match(ev: Evidence) -> Check:
    verified = [r for r in ev.assets if r.ref.integrities]
    if not verified:
        return _check("integrity-match", Verdict.SKIP, "no asset carries integrity to compare")
    bad: list[tuple[str, str]] = []
    counted = 0
    for result in verified:
        answered = [a for a in result.answers if a.ok]
        counted += len(answered)
        wrong = [a for a in answered if False in a.matches.values()]
        if wrong:
            bad.append((result.ref.url, _mismatch_text(result, wrong)))
    if bad:
        return _check(
            "integrity-match",
            Verdict.FAIL,
            "; ".join(t for _, t in bad[:_SHOWN]) + ": browsers refuse these bytes",
            "Republish the files and the shell from one build, and make sure nothing between "
            "them rewrites bytes (Cache-Control: no-transform).",
            [url for url, _ in bad],
        )
    return _check(
        "integrity-match",
        Verdict.PASS,
        f"every coding of every asset matches its integrity ({_n(counted, 'answer')} "
        f"of {_n(len(verified), 'asset')})",
    )


def _mismatch_text(result: AssetResult, wrong: Sequence[Answer]) -> str:
    codings = ", ".join(dict.fromkeys(a.coding for a in wrong))
    good = [a.coding for a in result.answers if a.ok and a not in wrong]
    matches = f" (the {', '.join(good)} answer matches)" if good else ""
    return f"{result.name}: the {codings} bytes do not match{matches}; served {wrong[0].served}"


def check_immutable(ev: Evidence) -> Check:
    fingerprinted = [r for r in ev.primary if r.ref.fingerprinted and r.identity.ok]
    if not fingerprinted:
        return _check(
            "immutable", Verdict.SKIP, "no asset has a content hash in its name (app.<hash>.js)"
        )
    short: list[tuple[str, str]] = []
    for result in fingerprinted:
        value = result.identity.header("cache-control")
        directives = cache_directives(value)
        lifetime = _lifetime(directives) or 0
        if "no-store" in directives or "no-cache" in directives or lifetime < LONG_ENOUGH:
            short.append((result.ref.url, f"{result.name}: {value or 'no Cache-Control'}"))
        elif "immutable" not in directives:
            short.append((result.ref.url, f"{result.name}: {value} (no immutable)"))
    if short:
        return _check(
            "immutable",
            Verdict.WARN,
            f"{len(short)} of {len(fingerprinted)} fingerprinted files are not cached as "
            f"immutable: {'; '.join(t for _, t in short[:_SHOWN])}{_mirror_note(ev)}",
            "Serve fingerprinted files with Cache-Control: public, max-age=31536000, "
            "immutable (unblank serve does).",
            [url for url, _ in short],
        )
    return _check(
        "immutable",
        Verdict.PASS,
        f"every fingerprinted file is cached as immutable ({_n(len(fingerprinted), 'file')})"
        + _mirror_note(ev),
    )


def check_vary(ev: Evidence) -> Check:
    compressed = [(r, a) for r in ev.primary for a in r.answers if a.ok and a.coding != "identity"]
    if not compressed:
        return _check("vary", Verdict.SKIP, "no answer is compressed")
    missing = [
        (r.ref.url, f"{r.name} ({a.coding})")
        for r, a in compressed
        if not {"accept-encoding", "*"} & {v.strip().lower() for v in a.header("vary").split(",")}
    ]
    if missing:
        return _check(
            "vary",
            Verdict.FAIL,
            f"{len(missing)} of {len(compressed)} compressed answers lack Vary: Accept-Encoding: "
            f"{_names([t for _, t in missing])}; a shared cache may hand br or gzip bytes to a "
            f"client that cannot decode them{_mirror_note(ev)}",
            "Send Vary: Accept-Encoding with every answer of a file that has compressed variants.",
            [url for url, _ in missing],
        )
    return _check(
        "vary",
        Verdict.PASS,
        f"every compressed answer carries Vary: Accept-Encoding ({_n(len(compressed), 'answer')})"
        + _mirror_note(ev),
    )


def check_compression(ev: Evidence) -> Check:
    text = [
        r
        for r in ev.primary
        if r.identity.ok and r.identity.size > COMPRESS_ABOVE and _is_text(r.identity.media_type)
    ]
    if not text:
        return _check("compression", Verdict.SKIP, f"no text asset above {COMPRESS_ABOVE} bytes")
    plain = [r for r in text if all(a.coding == "identity" for a in r.answers if a.ok)]
    if plain:
        size = sum(r.identity.size for r in plain)
        return _check(
            "compression",
            Verdict.WARN,
            f"{len(plain)} of {len(text)} text assets ({size} bytes) are never compressed: "
            f"{_names([r.name for r in plain])}; on a slow network the page may time out"
            + _mirror_note(ev),
            "Serve br and gzip (unblank build precompresses them; unblank serve negotiates).",
            [r.ref.url for r in plain],
        )
    codings = sorted({a.coding for r in text for a in r.answers if a.ok} - {"identity"})
    return _check(
        "compression",
        Verdict.PASS,
        f"every text asset is compressed ({_n(len(text), 'asset')}; {', '.join(codings)})"
        + _mirror_note(ev),
    )


def _is_text(media: str) -> bool:
    return media.startswith("text/") or media in _TEXT


# -- probes and generations ----------------------------------------------------------


def check_spa_fallback(ev: Evidence) -> Check:
    answered = [p for p in ev.probes if not p.failure]
    if not answered:
        reason = ev.probes[0].failure if ev.probes else "nothing to probe"
        return _check("spa-fallback", Verdict.SKIP, f"the probe got no answer: {reason}")
    fallback = [p for p in answered if 200 <= p.status < 300]
    if fallback:
        what = "an HTML page" if any(p.media_type == "text/html" for p in fallback) else "a body"
        return _check(
            "spa-fallback",
            Verdict.FAIL,
            f"a file that does not exist answers {fallback[0].status} with {what}: after a "
            "deploy, browsers get the app's HTML in place of a script and show a blank page",
            "Answer missing files under the asset path with 404 (turn off the SPA fallback "
            "there: nginx try_files ... =404, or serve assets with unblank serve).",
            [p.url for p in fallback],
        )
    statuses = ", ".join(sorted({str(p.status) for p in answered}))
    return _check("spa-fallback", Verdict.PASS, f"a missing file answers {statuses}")


def check_error_page(ev: Evidence) -> Check:
    errors = [p for p in ev.probes if not p.failure and p.status >= 400]
    if not errors:
        return _check("error-page", Verdict.SKIP, "no error answer to judge (see spa-fallback)")
    bare = [p for p in errors if not p.guided and (not p.html or p.text_chars < _PAGE_TEXT)]
    if bare:
        probe = bare[0]
        what = (
            f"an HTML page with {probe.text_chars} characters of text"
            if probe.html
            else probe.media_type or "no content type"
        )
        return _check(
            "error-page",
            Verdict.WARN,
            f"a missing file gets a bare {probe.status} ({what}): a user who opens it sees no "
            "explanation",
            "Answer errors at the edge with guided pages (unblank pages export OUT writes them "
            "with nginx snippets; unblank serve answers with them).",
            [p.url for p in bare],
        )
    if all(p.guided for p in errors):
        return _check("error-page", Verdict.PASS, "a missing file gets unblank's guided page")
    return _check("error-page", Verdict.PASS, "a missing file gets an HTML error page")


def check_generations(ev: Evidence) -> Check:
    history = ev.history
    if not history.checked:
        return _check("generations", Verdict.SKIP, history.note or "no manifest found")
    latest = history.checked[0]
    gone_latest = list(latest.gone)
    gone_older = [url for g in history.checked[1:] for url in g.gone]
    names = ", ".join(g.generation for g in history.checked)
    if gone_latest or gone_older:
        verdict = Verdict.FAIL if gone_latest else Verdict.WARN
        which = latest if gone_latest else next(g for g in history.checked if g.gone)
        return _check(
            "generations",
            verdict,
            f"{len(which.gone)} of {which.files} files of generation {which.generation} are "
            "gone: a page opened before the deploy asks for them and breaks",
            "Keep the files of the last generations when deploying (unblank build keeps 5 and "
            "7 days; never sync with --delete).",
            gone_latest + gone_older,
        )
    total = sum(g.files for g in history.checked)
    return _check(
        "generations",
        Verdict.PASS,
        f"every file only earlier generations use is still served ({_n(total, 'file')} of {names})",
    )


CHECKS: Final[tuple[Callable[[Evidence], Check], ...]] = (
    check_shell_cache,
    check_watchdog,
    check_assets_load,
    check_integrity,
    check_crossorigin,
    check_cors,
    check_integrity_match,
    check_immutable,
    check_vary,
    check_compression,
    check_spa_fallback,
    check_error_page,
    check_generations,
)


def run_checks(ev: Evidence) -> tuple[Check, ...]:
    return tuple(check(ev) for check in CHECKS)
