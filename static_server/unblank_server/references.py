"""Find the references a CSS or JavaScript file makes to other files.

Only references that unblank can rewrite are reported: CSS ``url()`` and
``@import``, ``sourceMappingURL`` comments, and the string specifiers of
ES-module ``import``/``export ... from``/``import()`` and of
``new URL("...", import.meta.url)``.  Comments and strings are skipped by a
small scanner, so ``// import "./x.js"`` or ``"url(a.png)"`` in a string is
never taken for a reference.  The scanners return spans into the text; the
builder decides which references are local files and rewrites them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Reference",
    "find_css_references",
    "find_html_references",
    "find_js_references",
    "is_local_reference",
]


@dataclass(frozen=True, slots=True)
class Reference:
    """``text[start:end]`` is the reference exactly as written, on ``line`` (1-based).

    ``module`` marks an ES-module specifier: only ``./`` and ``../`` ones name
    files; bare ones (``"react"``) are for import maps and the bundler.
    ``integrity_for`` marks an HTML ``integrity`` attribute: it holds the
    start of the URL reference whose file's SRI digest it must carry.
    """

    start: int
    end: int
    value: str
    line: int
    module: bool = False
    integrity_for: int | None = None


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_local_reference(value: str, *, module: bool = False) -> bool:
    """Whether ``value`` names a file relative to the referring file.

    For a module specifier (``module=True``) that means it starts with
    ``./`` or ``../``, as the HTML spec's module resolution requires.

    Absolute URLs (``https:``, ``data:``, ``//host``), root-relative paths
    (``/img/a.png``: their meaning depends on where the app is mounted),
    fragments (``#icon``) and template placeholders are left alone.
    """
    value = value.strip()
    if module and not value.startswith(("./", "../")):
        return False
    if not value or value.startswith(("#", "/", "?")) or _SCHEME.match(value):
        return False
    return not any(marker in value for marker in ("${", "{{", "<%", "\\"))


def _line_at(text: str, offset: int, cache: list[int]) -> int:
    # cache holds the offsets of every newline; a bisect gives the line number.
    from bisect import bisect_right

    return bisect_right(cache, offset - 1) + 1


def _newlines(text: str) -> list[int]:
    return [m.start() for m in re.finditer("\n", text)]


# -- CSS ---------------------------------------------------------------------

# One pass, leftmost match first: a comment or a string that is not the
# argument of url()/@import is consumed whole, so nothing inside it counts.
_CSS = re.compile(
    # The lookahead lets the engine skip, at C speed, every position where no
    # alternative can start (2-3x faster on large stylesheets).
    r"(?=[/uU@iI\"'-])"
    r"(?:(?P<comment>/\*.*?(?:\*/|\Z))"
    r"|(?<![\w-])url\(\s*(?:\"(?P<udq>[^\"\n]*)\"|'(?P<usq>[^'\n]*)'|(?P<ubare>[^)\s\"']*))\s*\)"
    r"|@import\s+(?:\"(?P<idq>[^\"\n]*)\"|'(?P<isq>[^'\n]*)')"
    r"|(?P<imageset>(?<![\w-])(?:-webkit-)?image-set\()"
    r"|\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?)",
    re.S | re.I,
)
_CSS_MAP = re.compile(r"^/\*[#@]\s*sourceMappingURL=(?P<v>[^\s*]+)\s*\*/$")
_CSS_GROUPS: Final = ("udq", "usq", "ubare", "idq", "isq")


def find_css_references(text: str) -> list[Reference]:
    """References in a stylesheet, in order of appearance.

    >>> [r.value for r in find_css_references('@import "a.css"; b { background: url(i.png) }')]
    ['a.css', 'i.png']
    """
    lines = _newlines(text)
    refs = []
    for m in _CSS.finditer(text):
        if m["imageset"] is not None:
            for start, end in _image_set_strings(text, m.end()):
                refs.append(Reference(start, end, text[start:end], _line_at(text, start, lines)))
            continue
        if m["comment"] is not None:
            mm = _CSS_MAP.match(m["comment"])
            if mm is None:
                continue
            start, end = m.start() + mm.start("v"), m.start() + mm.end("v")
        else:
            group = next((g for g in _CSS_GROUPS if m[g] is not None), None)
            if group is None:
                continue  # a plain string
            start, end = m.span(group)
        refs.append(Reference(start, end, text[start:end], _line_at(text, start, lines)))
    return sorted(refs, key=lambda r: r.start)


_ARGUMENT_STRING = re.compile(r"\s*(?:\"(?P<dq>[^\"\n]*)\"|'(?P<sq>[^'\n]*)')")
_ARGUMENT_REST = re.compile(r"(?:[^,()\"']|\"[^\"\n]*\"|'[^'\n]*'|\((?:[^()]|\([^()]*\))*\))*")


def _image_set_strings(text: str, pos: int) -> list[tuple[int, int]]:
    """Spans of the bare strings among ``image-set(...)``'s arguments.

    ``image-set("a.png" 1x, url(b.png) 2x, "c.avif" type("image/avif"))``:
    "a.png" and "c.avif" are references (url() ones are found on their own);
    "image/avif", an argument of ``type()``, is not.
    """
    spans = []
    while pos < len(text):
        m = _ARGUMENT_STRING.match(text, pos)
        if m is not None:
            group = "dq" if m["dq"] is not None else "sq"
            spans.append(m.span(group))
            pos = m.end()
        rest = _ARGUMENT_REST.match(text, pos)
        pos = rest.end() if rest else pos
        if pos >= len(text) or text[pos] != ",":
            break  # ")" closes the list (or the text ends)
        pos += 1
    return spans


# -- HTML ----------------------------------------------------------------------

# Subresources a page loads itself; links to other pages (<a href>, <form
# action>, <iframe src>) keep their user-visible names and are left alone.
_HTML_ATTRIBUTES: Final = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "audio": ("src",),
    "video": ("src", "poster"),
    "track": ("src",),
    "embed": ("src",),
    "input": ("src",),  # <input type=image>
    "image": ("href",),  # SVG <image> inside HTML
    "link": ("href", "imagesrcset"),
}
_SRCSET_ATTRIBUTES: Final = frozenset({"srcset", "imagesrcset"})
_LINK_RELS: Final = frozenset(
    {
        "stylesheet",
        "modulepreload",
        "preload",
        "prefetch",
        "icon",
        "shortcut",
        "apple-touch-icon",
        "apple-touch-icon-precomposed",
        "mask-icon",
        "manifest",
    }
)
# A quote starts a quoted value only right after "=" (the HTML tokenizer's
# rule): in "alt=don't" it is part of an unquoted value.
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s>]*)"
_HTML = re.compile(
    r"(?P<comment><!--(?:-?>|.*?(?:-->|\Z)))"
    r"|<(?P<tag>[A-Za-z][A-Za-z0-9-]*)(?P<attrs>(?:\s*=\s*" + _VALUE + r"|[^>=]|=)*)>",
    re.S,
)
_ATTRIBUTE = re.compile(
    r"(?P<name>[^\s=/>]+)(?:\s*=\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s>]+)))?"
)
# Elements whose content is text, not markup: a tag inside them is no tag.
_RAW_TEXT_END: Final = {
    name: re.compile(rf"</{name}", re.I) for name in ("script", "style", "textarea", "title")
}
_SRCSET_URL = re.compile(r"\s*(?P<url>[^\s,][^\s]*?),?(?=\s|$)(?:\s+[^,]*)?(?:,|$)")


def find_html_references(text: str) -> list[Reference]:
    """Subresource URLs of a page: scripts, stylesheets, images, media, icons.

    >>> [r.value for r in find_html_references('<link rel="stylesheet" href="a.css">'
    ...     '<a href="b.html">b</a><img src=c.png srcset="c2.png 2x, c3.png 3x">')]
    ['a.css', 'c.png', 'c2.png', 'c3.png']
    """
    lines = _newlines(text)
    refs: list[Reference] = []
    pos = 0
    while (m := _HTML.search(text, pos)) is not None:
        pos = m.end()
        tag = (m["tag"] or "").lower()
        if not tag:
            continue  # a comment
        if tag in _RAW_TEXT_END:  # skip a script's or style's text
            end = _RAW_TEXT_END[tag].search(text, pos)
            pos = end.start() if end else len(text)
        if tag == "base" and "href" in m["attrs"].lower():
            return []  # URLs resolve against <base href>: leave the page as written
        wanted = _HTML_ATTRIBUTES.get(tag)
        if not wanted:
            continue
        attrs: dict[str, re.Match[str]] = {}
        for found in _ATTRIBUTE.finditer(m["attrs"]):
            attrs.setdefault(
                found["name"].lower(), found
            )  # the first of duplicates wins, as in browsers
        if tag == "input" and (_attribute_value(attrs.get("type")) or "").lower() != "image":
            continue
        if tag == "link":
            rel_match = attrs.get("rel")
            rels = set((_attribute_value(rel_match) or "").lower().split())
            if not rels & _LINK_RELS:
                continue
        base = m.start("attrs")
        for name in wanted:
            attr = attrs.get(name)
            value = _attribute_value(attr)
            if attr is None or value is None:
                continue
            group = next(g for g in ("dq", "sq", "bare") if attr[g] is not None)
            start = base + attr.start(group)
            spans = (
                [
                    (start + u.start("url"), start + u.end("url"))
                    for u in _SRCSET_URL.finditer(value)
                ]
                if name in _SRCSET_ATTRIBUTES
                else [(start, start + len(value))]
            )
            for a, b in spans:
                if "&" in text[a:b].split("?", 1)[0]:
                    continue  # a character reference in the path: left as written
                refs.append(Reference(a, b, text[a:b], _line_at(text, a, lines)))
                guard = attrs.get("integrity")
                if name in ("src", "href") and _attribute_value(guard):
                    refs.append(_integrity_reference(text, base, guard, a, lines))
    return sorted(refs, key=lambda r: r.start)


def _integrity_reference(
    text: str, base: int, attr: re.Match[str] | None, url_start: int, lines: list[int]
) -> Reference:
    if attr is None:  # the caller checked that it has a value
        raise ValueError("no integrity attribute")
    group = next(g for g in ("dq", "sq", "bare") if attr[g] is not None)
    start, end = base + attr.start(group), base + attr.end(group)
    line = _line_at(text, start, lines)
    return Reference(start, end, text[start:end], line, integrity_for=url_start)


def _attribute_value(attr: re.Match[str] | None) -> str | None:
    if attr is None:
        return None
    for group in ("dq", "sq", "bare"):
        if attr[group] is not None:
            return str(attr[group])
    return None


# -- JavaScript ----------------------------------------------------------------

# Keywords after which a "/" starts a regular expression, not a division.
_REGEX_AFTER_WORDS: Final = frozenset(
    {
        "return",
        "typeof",
        "instanceof",
        "in",
        "of",
        "new",
        "delete",
        "void",
        "throw",
        "case",
        "do",
        "else",
        "yield",
        "await",
    }
)
_WORD = re.compile(r"[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*")
_NUMBER = re.compile(r"\.?\d[\w.]*")
_SPACE = re.compile(r"\s+")
_LINE_COMMENT = re.compile(r"//[^\n\r\u2028\u2029]*")
_BLOCK_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_SQ = re.compile(r"'(?:[^'\\\n]|\\.)*'?", re.S)
_DQ = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"?", re.S)
_REGEX = re.compile(r"/(?:[^/\\\[\n]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[A-Za-z]*")
_TEMPLATE_PART = re.compile(r"(?:[^`\\$]|\\.|\$(?!\{))*", re.S)
_JS_MAP = re.compile(r"^//[#@]\s*sourceMappingURL=(?P<v>\S+)")
_PUNCT3 = ("===", "!==", "**=", "...", "<<=", ">>=", ">>>", "&&=", "||=", "??=")
_PUNCT2 = ("=>", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "++", "--", "+=", "-=", "*=")
# ``from``/``import``/``import(``/``URL(`` then a string starting like a
# relative path (comments between allowed, for webpack's magic comments):
# a file without one cannot hold a rewritable specifier and is not tokenised.
_MODULE_HINT = re.compile(
    r"(?:\bfrom|\bimport|\bURL)\s*\(?\s*(?:/\*[^*]*\*+(?:[^/*][^*]*\*+)*/\s*)*[\"'`]\.\.?/"
)
# Without module syntax, only source-map comments remain: a line comment whose
# line ends with the URL (so "//# sourceMappingURL=" + url in code never counts).
_MAP_LINE = re.compile(r"(?m)//[#@][ \t]*sourceMappingURL=(?P<v>[^\s'\"`]+)[ \t]*\r?$")
_RELATIVE_STRING = re.compile(r"[\"'`]\.\.?/")
_HINT_BEFORE = re.compile(_MODULE_HINT.pattern.removesuffix(r"[\"'`]\.\.?/") + r"\Z")
_HINT_WINDOW: Final = 1000  # characters before a "./" string where its keyword may be


def _has_module_hint(text: str) -> bool:
    """``_MODULE_HINT.search(text)``, six times faster: find the rarer part first
    (a string starting with ``./``), then look back for its keyword."""
    for m in _RELATIVE_STRING.finditer(text):
        if _HINT_BEFORE.search(text, max(0, m.start() - _HINT_WINDOW), m.start()):
            return True
    return False


# The same two patterns over bytes, for files too large to read whole.
MODULE_HINT_BYTES: Final = re.compile(_MODULE_HINT.pattern.encode("ascii"))
MAP_LINE_BYTES: Final = re.compile(_MAP_LINE.pattern.encode("ascii"))


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "string", "punct", "other"
    value: str
    start: int
    end: int


def _tokenize(text: str) -> tuple[list[_Token], list[tuple[int, int, str]]]:
    """Tokens that matter for module syntax, and the sourceMappingURL comments."""
    tokens: list[_Token] = []
    maps: list[tuple[int, int, str]] = []
    stack: list[str] = []  # "{" for blocks, "`" for a template's ${ ... }
    parens: list[bool] = []  # per open "(": does it follow if/while/for/with?
    pos, size = 0, len(text)
    while pos < size:
        ch = text[pos]
        m: re.Match[str] | None
        if ch.isspace():
            m = _SPACE.match(text, pos)
            assert m is not None
            pos = m.end()
        elif ch == "/" and text.startswith("//", pos):
            m = _LINE_COMMENT.match(text, pos)
            assert m is not None
            mm = _JS_MAP.match(m.group(0))
            if mm:
                maps.append((pos + mm.start("v"), pos + mm.end("v"), mm["v"]))
            pos = m.end()
        elif ch == "/" and text.startswith("/*", pos):
            m = _BLOCK_COMMENT.match(text, pos)
            assert m is not None
            pos = m.end()
        elif ch == "/" and _regex_allowed(tokens):
            m = _REGEX.match(text, pos)
            end = m.end() if m else pos + 1
            tokens.append(_Token("other", text[pos:end], pos, end))
            pos = end
        elif ch in "'\"":
            m = (_SQ if ch == "'" else _DQ).match(text, pos)
            assert m is not None
            tokens.append(_Token("string", m.group(0), pos, m.end()))
            pos = m.end()
        elif ch == "`":
            pos = _template(text, pos + 1, tokens, stack, pos)
        elif ch == "}" and stack and stack[-1] == "`":
            stack.pop()
            pos = _template(text, pos + 1, tokens, stack, None)
        elif (m := _WORD.match(text, pos)) is not None:
            tokens.append(_Token("word", m.group(0), pos, m.end()))
            pos = m.end()
        elif ch.isdigit() or (ch == "." and text[pos + 1 : pos + 2].isdigit()):
            m = _NUMBER.match(text, pos)
            assert m is not None
            tokens.append(_Token("other", m.group(0), pos, m.end()))
            pos = m.end()
        else:
            width = (
                3 if text.startswith(_PUNCT3, pos) else 2 if text.startswith(_PUNCT2, pos) else 1
            )
            value = text[pos : pos + width]
            kind = "punct"
            if value == "{":
                stack.append("{")
            elif value == "}" and stack:
                stack.pop()
            elif value == "(":
                last = tokens[-1] if tokens else None
                parens.append(last is not None and last.value in _CONTROL_WORDS)
            elif value == ")" and parens and parens.pop():
                kind = "ctrl"  # "if (x) /re/.test(y)": a regex may follow
            tokens.append(_Token(kind, value, pos, pos + width))
            pos += width
    return tokens, maps


def _template(
    text: str, pos: int, tokens: list[_Token], stack: list[str], opened_at: int | None
) -> int:
    """Scan template text from ``pos``; stop after the closing backtick or at ``${``."""
    m = _TEMPLATE_PART.match(text, pos)
    end = m.end() if m else pos
    if text.startswith("${", end):
        stack.append("`")
        tokens.append(_Token("other", "`", pos, end))
        return end + 2
    close = min(end + 1, len(text))
    if opened_at is not None:
        # A whole template without substitutions: as good as a string literal.
        tokens.append(_Token("string", text[opened_at:close], opened_at, close))
    else:
        tokens.append(_Token("other", "`", pos, close))
    return close


_CONTROL_WORDS: Final = frozenset({"if", "while", "for", "with"})


def _regex_allowed(tokens: list[_Token]) -> bool:
    if not tokens:
        return True
    last = tokens[-1]
    if last.kind == "ctrl":
        return True
    if last.kind == "word":
        return last.value in _REGEX_AFTER_WORDS
    if last.kind in ("string", "other"):
        return False
    return last.value not in (")", "]", "}", "++", "--")


_CLAUSE_WORDS_END = ";"
_MAX_CLAUSE = 2000  # tokens scanned for "from" after import/export: a clause is never longer


def find_js_references(text: str) -> list[Reference]:
    """Module specifiers and source-map comments of an ES module or script.

    >>> src = 'import a from "./a.js"; const b = import("./b.js"); // import "./no.js"'
    >>> [r.value for r in find_js_references(src)]
    ['./a.js', './b.js']
    """
    if not _has_module_hint(text):
        if "sourceMappingURL" not in text:
            return []
        found = list(_MAP_LINE.finditer(text))
        # A comment line inside a template literal is text: with an odd number of
        # backticks before a match, let the tokenizer decide.
        if all(text.count("`", 0, m.start()) % 2 == 0 for m in found):
            lines = _newlines(text)
            return [
                Reference(m.start("v"), m.end("v"), m["v"], _line_at(text, m.start("v"), lines))
                for m in found
            ]
    lines = _newlines(text)
    tokens, maps = _tokenize(text)
    spans = [(start, end, False) for start, end, _ in maps]
    for i, token in enumerate(tokens):
        if token.kind != "word" or (i and tokens[i - 1].value in (".", "?.")):
            continue
        if token.value == "import":
            spans.extend((a, b, True) for a, b in _import_specifiers(tokens, i))
        elif token.value == "export":
            spans.extend((a, b, True) for a, b in _export_specifiers(tokens, i))
        elif token.value == "new":
            spans.extend((a, b, False) for a, b in _new_url_specifiers(tokens, i))
    refs = []
    for start, end, module in sorted(set(spans)):
        line = _line_at(text, start, lines)
        refs.append(Reference(start, end, text[start:end], line, module=module))
    return refs


def _string_span(token: _Token) -> tuple[int, int] | None:
    if token.kind != "string" or len(token.value) < 2 or token.value[-1] != token.value[0]:
        return None
    return token.start + 1, token.end - 1


def _at(tokens: list[_Token], i: int) -> _Token | None:
    return tokens[i] if 0 <= i < len(tokens) else None


def _import_specifiers(tokens: list[_Token], i: int) -> list[tuple[int, int]]:
    nxt = _at(tokens, i + 1)
    if nxt is None or nxt.value in (".", ":", "=", ","):
        return []  # import.meta, { import: 1 }, ...
    if nxt.kind == "string":  # import "./side-effect.js"
        span = _string_span(nxt)
        return [span] if span else []
    if nxt.value == "(":  # import("./chunk.js") / import("./x.js", { with: ... })
        arg, after = _at(tokens, i + 2), _at(tokens, i + 3)
        if arg is not None and after is not None and after.value in (")", ","):
            span = _string_span(arg)
            return [span] if span else []
        return []
    return _from_clause(tokens, i + 1)


def _export_specifiers(tokens: list[_Token], i: int) -> list[tuple[int, int]]:
    nxt = _at(tokens, i + 1)
    if nxt is None or nxt.value not in ("*", "{"):
        return []  # export const/function/default ...: no specifier
    return _from_clause(tokens, i + 1)


def _from_clause(tokens: list[_Token], j: int) -> list[tuple[int, int]]:
    """Scan an import/export clause for ``from "<specifier>"``."""
    for k in range(j, min(j + _MAX_CLAUSE, len(tokens) - 1)):
        token = tokens[k]
        if token.kind == "word" and token.value == "from" and tokens[k + 1].kind == "string":
            span = _string_span(tokens[k + 1])
            return [span] if span else []
        if token.kind in ("punct", "ctrl") and token.value not in ("{", "}", ",", "*"):
            return []
        if token.kind == "other":
            return []
    return []


def _new_url_specifiers(tokens: list[_Token], i: int) -> list[tuple[int, int]]:
    shape = [t.value for t in tokens[i + 1 : i + 11]]
    if shape[:2] != ["URL", "("] or len(shape) < 10:
        return []
    if shape[3:10] != [",", "import", ".", "meta", ".", "url", ")"]:
        return []
    span = _string_span(tokens[i + 3])
    return [span] if span else []
