"""Finding references in CSS and JS: what counts, and what must never count."""

from __future__ import annotations

import pytest

from unblank_server.references import (
    find_css_references,
    find_html_references,
    find_js_references,
    is_local_reference,
)


def _css(text: str) -> list[str]:
    return [r.value for r in find_css_references(text)]


def _js(text: str) -> list[str]:
    return [r.value for r in find_js_references(text)]


@pytest.mark.parametrize(
    ("css", "expected"),
    [
        ("a{background:url(img/a.png)}", ["img/a.png"]),
        ('a{background:url( "img/a b.png" )}', ["img/a b.png"]),
        ("a{background:URL('x.svg#frag')}", ["x.svg#frag"]),
        ('@import "theme.css";', ["theme.css"]),
        ("@import 'print.css' print;", ["print.css"]),
        ('@import url("base.css") layer(base);', ["base.css"]),
        ("/*# sourceMappingURL=site.css.map */", ["site.css.map"]),
        ("/* url(no.png) @import 'no.css'; */", []),
        ('a{content:"url(no.png)"}', []),
        ("a{content:'/* not a comment */'; background:url(yes.png)}", ["yes.png"]),
        ("a{mask:myurl(no.png)}", []),
        ('a{background:image-set("x.png" 1x, "y.png" 2x)}', ["x.png", "y.png"]),
        (
            "a{background:-webkit-image-set(url(x.png) 1x, 'y.avif' type(\"image/avif\"))}",
            ["x.png", "y.avif"],
        ),
    ],
)
def test_css_references_found_and_skipped(css: str, expected: list[str]) -> None:
    assert _css(css) == expected


def test_css_reference_spans_and_lines_point_at_the_text() -> None:
    text = "a{}\n\nb { background: url('img/x.png') }\n"
    (ref,) = find_css_references(text)
    assert text[ref.start : ref.end] == "img/x.png"
    assert ref.line == 3


@pytest.mark.parametrize(
    ("js", "expected"),
    [
        ('import "./side.js";', ["./side.js"]),
        ("import x from './a.js'", ["./a.js"]),
        ('import x, { a as b, "c-d" as e } from "../b.mjs"', ["../b.mjs"]),
        ('import * as ns from "./ns.js"', ["./ns.js"]),
        ('export { q } from "./c.js"', ["./c.js"]),
        ('export * from "./d.js"', ["./d.js"]),
        ('export * as z from "./e.js"', ["./e.js"]),
        ('const m = await import("./lazy.js")', ["./lazy.js"]),
        ("const m = import(`./tpl.js`)", ["./tpl.js"]),
        ('import("./with.js", { with: { type: "json" } })', ["./with.js"]),
        ('new URL("./img.png", import.meta.url)', ["./img.png"]),
        ('import x from "./a.js" with { type: "json" }', ["./a.js"]),
        ("//# sourceMappingURL=app.js.map", ["app.js.map"]),
        ("x();\n//# sourceMappingURL=app.js.map\n", ["app.js.map"]),
        ('import(/* webpackChunkName: "c" */ "./chunk.js")', ["./chunk.js"]),
        ('import a from"./min.js";export*from"./re.js"', ["./min.js", "./re.js"]),
        ('const s = "//# sourceMappingURL=" + url;', []),
        ("var s = `\n//# sourceMappingURL=in-template.map\n`;\n", []),
        ("var s = `a`;\n//# sourceMappingURL=after-template.map\n", ["after-template.map"]),
        # Never references:
        ('// import "./no.js"', []),
        ('/* export * from "./no.js" */', []),
        ("const s = \"import './no.js'\";", []),
        ("const t = `import('./no.js')`;", []),
        ('const r = /import "\\.\\/no.js"/g;', []),
        ('obj.import("./no.js")', []),
        ('x = { import: "./no.js" }', []),
        ("export const a = './no.js';", []),
        ('export default "./no.js"', []),
        ("import(name)", []),
        ('const p = "//# sourceMappingURL=no.map"', []),
    ],
)
def test_js_references_found_and_skipped(js: str, expected: list[str]) -> None:
    assert _js(js) == expected


def test_js_template_substitution_is_code() -> None:
    assert _js("const t = `${await import('./in.js')} import('./no.js')`;") == ["./in.js"]


def test_js_division_is_not_a_regex() -> None:
    src = 'let y = a / 2; import("./after-division.js"); let z = (b) / 3 / 4;'
    assert _js(src) == ["./after-division.js"]


def test_js_regex_after_control_parenthesis_is_skipped() -> None:
    src = 'if (a) /\'/.test("x"); import("./b.js"); let c = (d) / 2; import("./e.js");'
    assert _js(src) == ["./b.js", "./e.js"]


def test_js_regex_after_return_is_skipped() -> None:
    src = 'function f(){ return /import "\\.\\/no.js"/.test(x) } import "./yes.js";'
    assert _js(src) == ["./yes.js"]


def test_js_without_relative_strings_is_not_tokenised() -> None:
    # A large bundle with no "./" string and no source map comment: nothing to do.
    assert find_js_references("var a = 1;" * 100_000) == []


def test_js_reference_lines_are_one_based() -> None:
    src = '\n\nimport a from "./a.js";\n'
    (ref,) = find_js_references(src)
    assert ref.line == 3
    assert src[ref.start : ref.end] == "./a.js"


def test_js_unterminated_constructs_do_not_hang() -> None:
    for src in ('import "./a.js', "/* open", "`open ${", "'open", "/[/", "import(", "export {"):
        find_js_references(src + ' "./x.js"')


@pytest.mark.parametrize(
    ("value", "local"),
    [
        ("img/a.png", True),
        ("./a.js", True),
        ("../fonts/f.woff2?v=1", True),
        ("a%20b.png", True),
        ("/img/a.png", False),
        ("//cdn.example.com/a.js", False),
        ("https://example.com/a.js", False),
        ("data:image/png;base64,AAAA", False),
        ("#icon", False),
        ("", False),
        ("${base}/a.png", False),
        ("{{ asset }}", False),
        ("mailto:x@example.com", False),
    ],
)
def test_is_local_reference(value: str, local: bool) -> None:
    assert is_local_reference(value) is local


def _html(text: str) -> list[str]:
    return [r.value for r in find_html_references(text)]


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<script type="module" src="js/main.js"></script>', ["js/main.js"]),
        ("<link rel=stylesheet href=css/a.css>", ["css/a.css"]),
        ("<link rel='icon shortcut' href='f.ico'>", ["f.ico"]),
        ('<link rel="modulepreload" href="./chunk.js">', ["./chunk.js"]),
        ('<link rel="canonical" href="page.html">', []),
        ('<a href="about.html">about</a><form action="x.php"></form>', []),
        (
            '<img src="a.png" srcset="a.png 1x, b%20c.png 2x" alt="x > y">',
            ["a.png", "a.png", "b%20c.png"],
        ),
        ('<video poster="p.jpg" src="v.mp4"></video>', ["p.jpg", "v.mp4"]),
        ('<!-- <script src="no.js"></script> --><img src="yes.png">', ["yes.png"]),
        ("<script>var s = '<img src=\"no.png\">';</script><img src=yes.png>", ["yes.png"]),
        ("<style>a{background:url(no.png)}</style>", []),
        ('<IMG SRC="upper.png">', ["upper.png"]),
        ("<img alt=don't src=img/b.png>", ["img/b.png"]),
        ("<img src=c.png src=d.png>", ["c.png"]),
        ('<base href="/static/"><script src="app.js"></script>', []),
        ('<!--><img src="after-empty-comment.png">', ["after-empty-comment.png"]),
        ('<textarea><img src="no.png"></textarea><title><img src=no2.png></title>', []),
        ('<img src="img/j&#46;png">', []),
        ('<input type="image" src="go.png"><input type="text" src="no.png">', ["go.png"]),
        ('<link rel="preload" as="image" imagesrcset="a.png 1x, b.png 2x">', ["a.png", "b.png"]),
    ],
)
def test_html_subresource_references(html: str, expected: list[str]) -> None:
    assert _html(html) == expected


@pytest.mark.parametrize(
    ("js", "expected"),
    [
        ('\ufeffexport * from "./after-bom.js";', ["./after-bom.js"]),
        ('if(x){y()}/"/.test(w);import{a}from"./a.js";', ["./a.js"]),
        ('function f(){}/"/.test(w);import("./b.js")', ["./b.js"]),
        ('class C{m(){}}/`/.test(w);import("./c.js")', ["./c.js"]),
        ('if (ok) {\n go();\n}\n/[/*]/.test(s);\nconst l = () => import("./d.js");', ["./d.js"]),
        ('for await(const x of y)/"/.test(x);import("./e.js")', ["./e.js"]),
        ('const o = {a: 1} / 2; import("./f.js")', ["./f.js"]),
        ('import { \U0001d4b3 } from "./astral.js"', ["./astral.js"]),
    ],
)
def test_js_tricky_syntax_around_imports(js: str, expected: list[str]) -> None:
    assert _js(js) == expected


def test_js_long_export_list_is_rewritten() -> None:
    names = ",".join(f"i{k} as x{k}" for k in range(3000))
    assert _js(f'export{{{names}}}from"./big.js"') == ["./big.js"]
