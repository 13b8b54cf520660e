"""``unblank_head()``: the inline watchdog as shipped, its config, nonces, locale, templates.

What a page carries in its ``<head>`` before anything else: the watchdog script
(compacted, with its JSON config) and the guided pages inside ``<template>``.
Tests that run JavaScript use ``node`` when it is installed and skip otherwise.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.test_pages_fallback import Element, is_executable, parse, templates
from tests.test_shell import MANIFEST, asset
from unblank import Manifest
from unblank.shell import Shell, WatchdogSettings, _compact, watchdog_source
from unblank_pages import REASONS, Brand, PageRenderer
from unblank_pages.render import FALLBACK_REASONS

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")
# What one TCP round trip brings on a cold connection is ~14 KB; the watchdog
# shares it with the rest of the head, so it gets 4 KiB gzipped at most.
GZIP_BUDGET = 4096
# A trace id as long as request_id_from accepts (128 characters).
LONG_REQUEST_ID = "00-" + "4bf92f3577b34da6a3ce929d0e0e4736" * 3 + "-00f067aa0ba902b7-01"
MIRRORS = ("https://mirror.example.net/static/", "/_unblank/mirror/")
XSS = "</script><script>alert(1)</script><!--"
CONFIG_AT_END = re.compile(r"\}\)\(window,document,(\{.*\})\);\Z", re.S)


def realistic_shell(**options: Any) -> Shell:
    return Shell(
        manifest=MANIFEST,
        base_url="https://cdn.example.com/static/",
        mirrors=MIRRORS,
        report_url="/_unblank/report",
        **options,
    )


def make_request(
    headers: Mapping[str, str] | None = None, state: Mapping[str, str] | None = None
) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "state": dict(state or {}),
    }
    return Request(scope)


def watchdog_script(head: str) -> Element:
    """The one inline script the head runs at once (the guided pages' wait in templates)."""
    running = [
        e
        for e in parse(head)
        if is_executable(e)
        and e.template is None
        and "type" not in e.attrs
        and "src" not in e.attrs
    ]
    assert len(running) == 1, running
    return running[0]


def config_of(head: str) -> dict[str, Any]:
    match = CONFIG_AT_END.search(watchdog_script(head).text)
    assert match is not None, "the watchdog ends by calling itself with its config"
    config = json.loads(match.group(1))
    assert isinstance(config, dict)
    return config


def run_node(tmp_path: Path, name: str, source: str) -> str:
    assert NODE is not None
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    done = subprocess.run(
        [NODE, str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def node_check(tmp_path: Path, name: str, source: str) -> None:
    assert NODE is not None
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    done = subprocess.run(
        [NODE, "--check", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr


def compact_lines(lines: list[str]) -> str:
    # As watchdog_source does it, line by line.
    return "\n".join(_compact(line.strip()) for line in lines)


def assert_csp_nonce_suffices(html: str, nonce: str | None) -> None:
    """Under ``script-src 'nonce-N'; style-src 'nonce-N'`` (no unsafe-inline) all of
    ``html`` works: every script, import map and style carries the nonce, and
    nothing needs inline attributes (handlers, style=, javascript: URLs)."""
    for element in parse(html):
        needs = (
            is_executable(element)
            or element.tag == "style"
            or (element.tag == "link" and element.attrs.get("rel") != "icon")
        )
        if needs:
            assert element.attrs.get("nonce") == nonce, (element.tag, element.attrs)
        assert not any(name.startswith("on") for name in element.attrs), element.attrs
        assert "style" not in element.attrs, element.attrs
        assert not any(
            (value or "").strip().lower().startswith("javascript:")
            for value in element.attrs.values()
        )
    if nonce is None:
        assert not any("nonce" in element.attrs for element in parse(html))


# -- size and syntax, as shipped ----------------------------------------------


@pytest.mark.parametrize("level", [9, 6])
def test_watchdog_script_fits_the_gzip_budget(level: int) -> None:
    head = str(realistic_shell().unblank_head(nonce="r4nd0m", request_id=LONG_REQUEST_ID))
    script = watchdog_script(head).text.encode("utf-8")
    packed = len(gzip.compress(script, compresslevel=level))
    print(f"\nwatchdog <script>: {len(script)} bytes, gzip -{level}: {packed} bytes")
    assert config_of(head)["reference"] == LONG_REQUEST_ID
    assert packed <= GZIP_BUDGET


def test_watchdog_source_is_compacted_and_inert_in_html() -> None:
    source = watchdog_source()
    lines = source.split("\n")
    assert all(line == line.strip() and line for line in lines)
    assert not any(line.startswith("//") for line in lines)
    assert source.count("__UNBLANK_CONFIG__") == 1
    # Inline in HTML: nothing in it may end the script or open a comment.
    assert "</script" not in source.lower() and "<!--" not in source
    original = Path(__file__).parents[1] / "sdk" / "unblank" / "watchdog.js"
    assert len(source) < len(original.read_text(encoding="utf-8")) * 0.8


def test_compaction_only_removes_whitespace() -> None:
    original = (Path(__file__).parents[1] / "sdk" / "unblank" / "watchdog.js").read_text(
        encoding="utf-8"
    )
    code = [line for line in original.splitlines() if not line.strip().startswith("//")]
    assert re.sub(r"\s", "", "".join(code)) == re.sub(r"\s", "", watchdog_source())


# A string, template string or regex literal in the watchdog's source (a regex
# starts after punctuation, "=>" or "return", as JavaScript reads them).
_LITERAL = re.compile(
    r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`"""
    r"|(?:(?<=[(,=:\[!&|?{};>])|(?<=return))\s*/(?:\\.|\[(?:\\.|[^\]\\])*\]|[^/\\\[\n])+/[a-z]*"
)


def test_every_literal_of_the_watchdog_is_shipped_as_written() -> None:
    original = (Path(__file__).parents[1] / "sdk" / "unblank" / "watchdog.js").read_text(
        encoding="utf-8"
    )
    shipped = watchdog_source()
    literals = [
        match.group(0).strip()
        for line in original.splitlines()
        if not line.strip().startswith("//")
        for match in _LITERAL.finditer(line)
    ]
    assert len(literals) > 50 and any(" " in lit for lit in literals)
    assert [lit for lit in literals if lit not in shipped] == []


@needs_node
def test_shipped_script_parses(tmp_path: Path) -> None:
    head = str(realistic_shell().unblank_head(nonce="n", request_id=LONG_REQUEST_ID))
    node_check(tmp_path, "shipped.js", watchdog_script(head).text)
    node_check(tmp_path, "source.js", watchdog_source().replace("__UNBLANK_CONFIG__", "{}"))


# A window with just what the watchdog touches while it starts; timers never fire.
_BROWSER_STUB = """
var window = {
  navigator: { onLine: true },
  location: { href: "https://app.example.com/a?b=1", search: "?b=1" },
  performance: { timeOrigin: 1, getEntriesByType: () => [] },
  addEventListener() {},
};
var document = { readyState: "loading", addEventListener() {} };
globalThis.setTimeout = () => 0;
"""


@needs_node
def test_shipped_script_runs_and_reads_its_config(tmp_path: Path) -> None:
    request_id = XSS + "\u2028\u2029"  # line separators are legal in JSON and in ES2019 strings
    shell = realistic_shell(watchdog=WatchdogSettings(root=XSS))
    head = str(shell.unblank_head(request_id=request_id))
    program = (
        _BROWSER_STUB
        + watchdog_script(head).text
        + (
            "\nconsole.log(JSON.stringify(window.unblank.config));"
            "\nconsole.log(typeof window.unblank.ready, window.unblank.state.failed);\n"
        )
    )
    config_line, api_line, _ = run_node(tmp_path, "boot.js", program).split("\n")
    assert json.loads(config_line) == config_of(head)
    assert json.loads(config_line)["reference"] == request_id
    assert json.loads(config_line)["root"] == XSS
    assert api_line == "function null"


# -- _compact ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "compacted"),
    [
        ('x = "a  b";', 'x="a  b";'),
        ("y = 'x / y';", "y='x / y';"),
        ("z = `t ${a} /x/`;", "z=`t ${a} /x/`;"),
        ('q = "a \\" b";', 'q="a \\" b";'),
        ("ok = /a b\\/c[/]/g.test(x);", "ok=/a b\\/c[/]/g.test(x);"),
        ("return /x y/.test(s);", "return/x y/.test(s);"),
        ("f(a, /[?&] (#|$)/);", "f(a,/[?&] (#|$)/);"),
        ("c = d ? /a  b/ : e;", "c=d?/a  b/:e;"),
        ("h = a / 2;", "h=a/2;"),
        ("k = (x) / 6 / y;", "k=(x)/6/y;"),
        ("m = a - -b;", "m=a- -b;"),
        ("n = a + +b;", "n=a+ +b;"),
        ("p = a - --b;", "p=a- --b;"),
        ("else onCrash(x);", "else onCrash(x);"),
        ("if (a) return b;", "if(a)return b;"),
        ("const { x, y } = z;", "const{x,y}=z;"),
        ("for (const a of b) c(a);", "for(const a of b)c(a);"),
        ("return;", "return;"),
    ],
)
def test_compact_keeps_literals_and_separates_tokens(line: str, compacted: str) -> None:
    assert _compact(line) == compacted


def test_compact_keeps_a_regex_after_an_arrow() -> None:
    # A regex with meaningful spaces after "=>" loses them ("/^ +$/" -> "/^+$/",
    # an invalid regex): the docstring promises regexes are kept as written.
    assert _compact("f = (s) => /^ +$/.test(s);") == "f=(s)=>/^ +$/.test(s);"


def test_compact_reads_a_quote_inside_a_regex_after_an_arrow() -> None:
    # Raises IndexError: the '"' inside the regex starts an unterminated string.
    assert _compact('f = (s) => /"/.test(s);') == 'f=(s)=>/"/.test(s);'


def test_compact_survives_a_trailing_comment() -> None:
    # watchdog.js forbids block comments and multi-line strings, not trailing
    # comments; one with an apostrophe makes watchdog_source() raise IndexError.
    assert _compact("x = 1; // don't").startswith("x=1;")


_SNIPPETS = [
    'const a = 7, b = 3, s = "x y";',
    "const out = [];",
    "out.push(\"a  b\" + 'x / y', `t ${a} /x/`);",
    'out.push(/a b\\/c[/]/g.test("a b/c/"), String(/a b\\/c[/]/g));',
    "out.push((function (v) { return /x y/.test(v); })(s));",
    'out.push(a / 2, (a) / 6 / b, a - -b, a + +b, -(-a), typeof a === "number" ? 1 : 0);',
    'out.push([1, 2].map((x) => x * 2).join(" "), "s p".replace(/ /g, "-"));',
    'out.push((function () { if (a > 5) return "big"; else return "small"; })());',
    'out.push(String(/[?&](#|$)/), /^(transparent|rgba\\(.*, 0\\))$/.test("rgba(0, 0, 0, 0)"));',
    "out.push(void 0 === undefined, 2 in [1, 2, 3], a instanceof Object);",
    "console.log(JSON.stringify(out));",
]


@needs_node
def test_compacted_snippets_compute_the_same(tmp_path: Path) -> None:
    original = "\n".join(_SNIPPETS)
    compacted = compact_lines(_SNIPPETS)
    assert compacted != original and len(compacted) < len(original)
    before = run_node(tmp_path, "original.js", original)
    after = run_node(tmp_path, "compacted.js", compacted)
    assert json.loads(before)[:2] == ["a  bx / y", "t 7 /x/"]
    assert after == before


# -- nonces -------------------------------------------------------------------------


def test_nonce_from_the_argument_reaches_every_inline_element() -> None:
    head = str(realistic_shell().unblank_head(nonce="n-arg", request_id="r"))
    assert watchdog_script(head).attrs.get("nonce") == "n-arg"
    assert_csp_nonce_suffices(head, "n-arg")
    inline = [e for e in parse(head) if is_executable(e) or e.tag == "style"]
    assert [e.tag for e in inline] == ["script", "style", "script"]


def test_nonce_from_the_request_state_and_the_argument_wins() -> None:
    request = make_request(state={"unblank_nonce": "n-state", "unblank_request_id": "r"})
    shell = realistic_shell()
    assert_csp_nonce_suffices(str(shell.unblank_head(request)), "n-state")
    assert_csp_nonce_suffices(str(shell.unblank_head(request, nonce="n-arg")), "n-arg")


def test_no_nonce_means_no_nonce_attribute() -> None:
    shell = realistic_shell()
    assert_csp_nonce_suffices(str(shell.unblank_head(request_id="r")), None)
    assert_csp_nonce_suffices(str(shell.unblank_head(make_request(), request_id="r")), None)


def test_hostile_nonce_is_escaped() -> None:
    head = str(realistic_shell().unblank_head(nonce='"><script>alert(1)</script>'))
    assert len([e for e in parse(head) if e.tag == "script" and e.template is None]) == 1
    assert watchdog_script(head).attrs["nonce"] == '"><script>alert(1)</script>'


def _jinja(shell: Shell) -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True)
    shell.install(env)
    return env


HEAD_TEMPLATE = '{{ unblank_head() }}{{ import_map() }}{{ entry_tags("index.html") }}'


def test_jinja_helpers_take_the_nonce_from_the_request() -> None:
    env = _jinja(realistic_shell())
    request = make_request(state={"unblank_nonce": "abc", "unblank_request_id": "r"})
    html = env.from_string(HEAD_TEMPLATE).render(request=request)
    assert_csp_nonce_suffices(html, "abc")
    assert html.count('nonce="abc"') == 3 + 1 + 3  # head, import map, entry tags
    explicit = env.from_string(
        '{{ unblank_head(nonce="x") }}{{ import_map(nonce="x") }}{{ entry_tags("index.html", '
        'nonce="x") }}'
    ).render(request=request)
    assert_csp_nonce_suffices(explicit, "x")


def test_jinja_csp_nonce_context_variable_for_tags() -> None:
    env = _jinja(realistic_shell())
    html = env.from_string('{{ import_map() }}{{ entry_tags("index.html") }}').render(
        csp_nonce="c5p"
    )
    assert_csp_nonce_suffices(html, "c5p")


def test_jinja_csp_nonce_context_variable_for_the_head() -> None:
    # import_map() and entry_tags() fall back to the context's csp_nonce, but the
    # installed unblank_head() only passes `request` on: its script goes out
    # without a nonce, and a strict CSP blocks the watchdog.
    html = _jinja(realistic_shell()).from_string(HEAD_TEMPLATE).render(csp_nonce="c5p")
    assert_csp_nonce_suffices(html, "c5p")


def test_jinja_head_accepts_the_request_passed_explicitly() -> None:
    # The helper sets kwargs["request"] while the template passes it positionally:
    # "Shell.unblank_head() got multiple values for argument 'request'".
    request = make_request(state={"unblank_nonce": "abc"})
    html = _jinja(realistic_shell()).from_string("{{ unblank_head(request) }}")
    assert 'nonce="abc"' in html.render(request=request)


# -- config -------------------------------------------------------------------------


def test_config_reflects_the_shell_and_its_settings() -> None:
    settings = WatchdogSettings(
        ready_timeout=2.5, asset_timeout=1, retry_for=30, crash_grace=0.25, root="#main"
    )
    shell = realistic_shell(watchdog=settings)
    config = config_of(str(shell.unblank_head(request_id="req-1")))
    assert config == {
        "generation": MANIFEST.generation,
        "base": "https://cdn.example.com/static/",
        "mirrors": list(MIRRORS),
        "report": "/_unblank/report",
        "ready": 2500,
        "assetTimeout": 1000,
        "retryFor": 30000,
        "crashGrace": 250,
        "root": "#main",
        "param": "__unblank",
        "reference": "req-1",
    }


def test_config_defaults() -> None:
    config = config_of(str(Shell(manifest=MANIFEST).unblank_head(request_id="r")))
    assert (config["ready"], config["assetTimeout"], config["retryFor"]) == (10000, 8000, 20000)
    assert (config["crashGrace"], config["base"], config["mirrors"]) == (2000, "/static/", [])
    assert config["root"] == "#app, #root, [data-unblank-root]"


def test_config_reference_from_argument_or_request_state() -> None:
    shell = realistic_shell()
    request = make_request(state={"unblank_request_id": "from-state"})
    assert config_of(str(shell.unblank_head(request)))["reference"] == "from-state"
    assert config_of(str(shell.unblank_head(request, request_id="arg")))["reference"] == "arg"
    head = str(shell.unblank_head(request))
    assert head.count("<code>from-state</code>") == len(FALLBACK_REASONS)


def test_reference_shown_is_the_reference_reported() -> None:
    # Without a request id the guided pages show a made-up "ub-..." reference
    # while the watchdog's beacons report reference "": support cannot match them.
    head = str(realistic_shell().unblank_head())
    shown = set(re.findall(r"<code>(.*?)</code>", head))
    assert shown == {config_of(head)["reference"]}


def test_config_follows_a_new_generation() -> None:
    current = [MANIFEST]
    shell = Shell(manifest=lambda: current[0])
    assert config_of(str(shell.unblank_head(request_id="r")))["generation"] == MANIFEST.generation
    current[0] = Manifest("g2", datetime(2026, 2, 1, tzinfo=UTC), MANIFEST.assets)
    assert config_of(str(shell.unblank_head(request_id="r")))["generation"] == "g2"


@pytest.mark.parametrize("where", ["request_id", "root", "state"])
def test_hostile_config_values_cannot_break_out(where: str) -> None:
    root = XSS if where == "root" else "#app"
    shell = realistic_shell(watchdog=WatchdogSettings(root=root))
    if where == "state":
        head = str(shell.unblank_head(make_request(state={"unblank_request_id": XSS})))
    else:
        head = str(shell.unblank_head(request_id=XSS if where == "request_id" else "r"))
    script = watchdog_script(head)  # exactly one script runs, outside every template
    assert "<" not in script.text.split("})(window,document,")[1]
    config = config_of(head)
    assert config["root" if where == "root" else "reference"] == XSS
    scripts = [e for e in parse(head) if e.tag == "script"]
    assert len(scripts) == 3  # the watchdog, then the texts and the retry script in a template
    assert all(e.template is not None for e in scripts[1:])
    assert not any("alert(1)" in e.text for e in scripts[1:])


@pytest.mark.parametrize("field", ["ready_timeout", "asset_timeout", "retry_for", "crash_grace"])
@pytest.mark.parametrize("value", [0, -1, 601, "abc", None, float("nan"), float("inf")])
def test_watchdog_settings_refuse_bad_times(field: str, value: object) -> None:
    options: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=re.escape(f"WatchdogSettings.{field} ")):
        WatchdogSettings(**options)


@pytest.mark.parametrize("param", ["", "1abc", "a-b", "has space", "a" * 33, "ü", "a=b"])
def test_watchdog_settings_refuse_bad_param_names(param: str) -> None:
    with pytest.raises(ValueError, match=r"WatchdogSettings\.param"):
        WatchdogSettings(param=param)


def test_watchdog_settings_accept_the_edges() -> None:
    edge = WatchdogSettings(ready_timeout=600, asset_timeout=0.001, param="_" + "a" * 31)
    assert edge.ready_timeout == 600 and "ready_timeout=600" in repr(edge)
    with pytest.raises(AttributeError):
        edge.ready_timeout = 1  # type: ignore[misc]


# -- locale -----------------------------------------------------------------------


def test_locale_follows_accept_language() -> None:
    shell = realistic_shell()
    chinese = str(shell.unblank_head(make_request({"Accept-Language": "zh-CN,en;q=0.5"})))
    shared, pages = templates(chinese)
    zh = PageRenderer().catalogs["zh-Hans"]
    assert shared.attrs["data-locale"] == "zh-Hans"
    assert pages["offline"].attrs["data-title"] == zh["reasons"]["offline"]["title"]
    texts = json.loads(next(e for e in shared.children if e.tag == "script").text)
    assert texts["retry_now"] == zh["common"]["retry_now"]
    english = str(shell.unblank_head(make_request()))
    assert templates(english)[0].attrs["data-locale"] == "en"
    assert templates(str(shell.unblank_head()))[0].attrs["data-locale"] == "en"


def test_explicit_locale_wins() -> None:
    shell = realistic_shell()
    request = make_request({"Accept-Language": "zh-CN"})
    head = str(shell.unblank_head(request, locale="en"))
    assert templates(head)[0].attrs["data-locale"] == "en"
    assert templates(str(shell.unblank_head(locale="zh-Hans")))[0].attrs["data-locale"] == (
        "zh-Hans"
    )


# -- the guided pages in the head ---------------------------------------------------


def test_head_carries_every_watchdog_page_from_the_shells_renderer() -> None:
    shell = realistic_shell(pages=PageRenderer(brand=Brand(name="Acme")))
    _, pages = templates(str(shell.unblank_head(request_id="r")))
    assert list(pages) == list(FALLBACK_REASONS)
    for reason, template in pages.items():
        expected = "countdown" if reason == "not-found" else REASONS[reason].retry
        assert template.attrs["data-retry"] == expected
        assert str(template.attrs["data-title"]).endswith(" · Acme")


# -- Starlette and Jinja2Templates ----------------------------------------------------


PAGE = (
    "<!doctype html><html><head>" + HEAD_TEMPLATE + "</head>"
    '<body><div id="app"></div></body></html>'
)


def with_state(app: ASGIApp, **state: str) -> ASGIApp:
    """What UnblankMiddleware does for the shell: per-request values in scope["state"]."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {}).update(state)
        await app(scope, receive, send)

    return wrapped


def make_app(shell: Shell, **state: str) -> ASGIApp:
    env = jinja2.Environment(loader=jinja2.DictLoader({"index.html": PAGE}), autoescape=True)
    pages = Jinja2Templates(env=env)
    shell.install(pages.env)

    def via_shell(request: Request) -> Response:
        return shell.template_response(pages, request, "index.html")

    def via_starlette(request: Request) -> Response:
        return pages.TemplateResponse(request, "index.html")

    app = Starlette(routes=[Route("/", via_shell), Route("/plain", via_starlette)])
    return with_state(app, **state)


def get(app: ASGIApp, path: str = "/", headers: Mapping[str, str] | None = None) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path, headers=dict(headers or {}))

    return asyncio.run(run())


@pytest.fixture(scope="module")
def app() -> ASGIApp:
    return make_app(realistic_shell(), unblank_nonce="abc", unblank_request_id="r1")


@pytest.mark.parametrize("path", ["/", "/plain"])
def test_starlette_page_tags_all_carry_the_request_nonce(app: ASGIApp, path: str) -> None:
    html = get(app, path).text
    assert_csp_nonce_suffices(html, "abc")
    elements = parse(html)
    links = [e for e in elements if e.tag == "link"]
    assert [e.attrs["rel"] for e in links] == ["stylesheet", "modulepreload"]
    assert [e.attrs.get("type") for e in elements if e.tag == "script"] == [
        None,
        "application/json",
        None,
        "importmap",
        "module",
    ]
    assert config_of(html)["reference"] == "r1"


def test_template_response_headers(app: ASGIApp) -> None:
    response = get(app, "/", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', response.headers["etag"])
    assert response.headers["x-unblank-generation"] == MANIFEST.generation
    assert response.headers["vary"] == "Accept-Language"
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-locale="zh-Hans"' in response.text


def test_template_response_answers_if_none_match(app: ASGIApp) -> None:
    first = get(app, "/")
    etag = first.headers["etag"]
    assert get(app, "/").headers["etag"] == etag  # same nonce and id: same body
    for header in (etag, etag.removeprefix("W/"), f'"other", {etag}'):
        again = get(app, "/", headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["x-unblank-generation"] == MANIFEST.generation
    other = get(app, "/", headers={"If-None-Match": '"0123"'})
    assert other.status_code == 200 and other.content == first.content
    chinese = get(app, "/", headers={"If-None-Match": etag, "Accept-Language": "zh"})
    assert chinese.status_code == 200  # another language is another body


def test_response_only_answers_304_for_200() -> None:
    shell = realistic_shell()
    sent = shell.response("<p>gone</p>", status_code=404)
    etag = sent.headers["etag"]
    request = make_request({"If-None-Match": etag})
    assert shell.response("<p>gone</p>", request, status_code=404).status_code == 404
    assert shell.response("<p>gone</p>", request).status_code == 304


# -- import map and base URLs ---------------------------------------------------------


def test_import_map_verifies_scripts_at_every_mirror() -> None:
    tag = str(realistic_shell().import_map(nonce="n"))
    document = json.loads(tag.split(">", 1)[1].rsplit("</script>", 1)[0])
    scripts = {
        a.path: a.integrity for a in MANIFEST.assets.values() if "javascript" in a.content_type
    }
    expected = {
        base + path: sri
        for base in ("https://cdn.example.com/static/", *MIRRORS)
        for path, sri in scripts.items()
    }
    assert document["integrity"] == expected
    assert "https://mirror.example.net/static/assets/Report-Ef56.js" in document["integrity"]
    assert "/_unblank/mirror/assets/main-Ab12.js" in document["integrity"]
    assert not any(key.endswith((".css", ".svg")) for key in document["integrity"])


def test_import_map_escapes_hostile_paths_at_mirrors() -> None:
    odd = Manifest(
        "g1",
        datetime(2026, 1, 1, tzinfo=UTC),
        {"x.js": asset("x</script><b>.0123456789ab.js", "text/javascript")},
    )
    tag = str(Shell(manifest=odd, mirrors=MIRRORS).import_map())
    assert tag.count("</script>") == 1 and "<b>" not in tag


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "/static"},
        {"base_url": "//evil.example/static/"},
        {"base_url": "static/"},
        {"mirrors": ("https://mirror.example.net/static",)},
        {"mirrors": ("//evil.example/",)},
        {"mirrors": ("ftp://mirror.example.net/",)},
        {"mirrors": ("javascript:alert(1)//",)},
        {"mirrors": "https://mirror.example.net/static/"},
    ],
)
def test_bad_base_urls_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"base URL|mirrors"):
        Shell(manifest=MANIFEST, **options)


def test_a_shell_revalidates_across_references_but_never_across_nonces() -> None:
    # Every render has a new reference: the validator leaves it out, so a shell
    # without a nonce is revalidated (304). A nonce stays in: a 304 would keep
    # a cached body whose nonce the policy sent with the 304 no longer allows
    # (UnblankMiddleware makes one per request, so its shells are never 304s).
    from unblank import UnblankMiddleware

    shell = realistic_shell()

    async def index(request: Request) -> Response:
        return shell.response(f"<head>{shell.unblank_head(request)}</head>", request)

    plain = Starlette(routes=[Route("/", index)])
    first, second = get(plain, "/"), get(plain, "/")
    assert first.text != second.text  # a new reference each time
    assert first.headers["etag"] == second.headers["etag"]
    assert get(plain, "/", headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    strict = UnblankMiddleware(plain, content_security_policy="script-src 'nonce-{nonce}'")
    first = get(strict, "/")
    again = get(strict, "/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 200
    assert again.headers["etag"] != first.headers["etag"]
