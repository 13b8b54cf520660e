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
from collections.abc import Iterator
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
_WORD = re.compile(r"[A-Za-z_$\u0080-\ufefe\uff00-\U0010ffff][\w$\u0080-\ufefe\uff00-\U0010ffff]*")
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
    kind: str  # "word", "string", "punct", "ctrl" (a ")" or "}" a regex may follow), "other"
    value: str
    start: int
    end: int


_CONTROL_WORDS: Final = frozenset({"if", "while", "for", "with"})
# After these, "{" opens a block (its "}" may be followed by a regex), not an object.
_BLOCK_AFTER: Final = frozenset({")", ";", "{", "}", "=>", "else", "do", "try", "finally"})


class _Tokenizer:
    """Tokens that matter for module syntax, one at a time: nothing is kept but
    the previous token and the open brackets, so memory does not grow with the file."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.maps: list[tuple[int, int, str]] = []
        self.last: _Token | None = None
        self.before_last: _Token | None = None
        self.braces: list[str] = []  # "block" / "object" per "{", "`" per template "${"
        self.parens: list[bool] = []  # per "(": does it follow if/while/for/with?

    def __iter__(self) -> Iterator[_Token]:
        text, pos, size = self.text, 0, len(self.text)
        while pos < size:
            token, pos = self._next(text, pos)
            if token is not None:
                self.before_last, self.last = self.last, token
                yield token

    def _next(self, text: str, pos: int) -> tuple[_Token | None, int]:
        ch = text[pos]
        m: re.Match[str] | None
        if ch.isspace() or ch == "\ufeff":  # a byte-order mark is not part of a word
            m = _SPACE.match(text, pos)
            return None, (m.end() if m else pos + 1)
        if ch == "/" and text.startswith("//", pos):
            m = _LINE_COMMENT.match(text, pos)
            end = m.end() if m else len(text)
            mm = _JS_MAP.match(text[pos:end])
            if mm:
                self.maps.append((pos + mm.start("v"), pos + mm.end("v"), mm["v"]))
            return None, end
        if ch == "/" and text.startswith("/*", pos):
            m = _BLOCK_COMMENT.match(text, pos)
            return None, (m.end() if m else len(text))
        if ch == "/" and self._regex_allowed():
            m = _REGEX.match(text, pos)
            end = m.end() if m else pos + 1
            return _Token("other", text[pos:end], pos, end), end
        if ch in "'\"":
            m = (_SQ if ch == "'" else _DQ).match(text, pos)
            end = m.end() if m else len(text)
            return _Token("string", text[pos:end], pos, end), end
        if ch == "`":
            return self._template(pos + 1, opened_at=pos)
        if ch == "}" and self.braces and self.braces[-1] == "`":
            self.braces.pop()
            return self._template(pos + 1, opened_at=None)
        if (m := _WORD.match(text, pos)) is not None:
            return _Token("word", m.group(0), pos, m.end()), m.end()
        if ch.isdigit() or (ch == "." and text[pos + 1 : pos + 2].isdigit()):
            m = _NUMBER.match(text, pos)
            end = m.end() if m else pos + 1
            return _Token("other", text[pos:end], pos, end), end
        width = 3 if text.startswith(_PUNCT3, pos) else 2 if text.startswith(_PUNCT2, pos) else 1
        value = text[pos : pos + width]
        return _Token(self._punct_kind(value), value, pos, pos + width), pos + width

    def _punct_kind(self, value: str) -> str:
        last = self.last
        if value == "{":
            block = last is None or last.kind == "ctrl" or last.value in _BLOCK_AFTER
            if last is not None and last.kind == "word":
                block = block or last.value not in _REGEX_AFTER_WORDS
            self.braces.append("block" if block else "object")
        elif value == "}" and self.braces:
            if self.braces.pop() == "block":
                return "ctrl"  # "if (x) {...} /re/.test(y)": a regex may follow
        elif value == "(":
            control = last is not None and last.value in _CONTROL_WORDS
            for_await = (
                last is not None
                and last.value == "await"
                and (self.before_last is not None and self.before_last.value == "for")
            )
            self.parens.append(control or for_await)
        elif value == ")" and self.parens and self.parens.pop():
            return "ctrl"  # "if (x) /re/.test(y)": a regex may follow
        return "punct"

    def _template(self, pos: int, *, opened_at: int | None) -> tuple[_Token, int]:
        """Scan template text from ``pos``; stop after the closing backtick or at ``${``."""
        text = self.text
        m = _TEMPLATE_PART.match(text, pos)
        end = m.end() if m else pos
        if text.startswith("${", end):
            self.braces.append("`")
            return _Token("other", "`", pos, end), end + 2
        close = min(end + 1, len(text))
        if opened_at is not None:
            # A whole template without substitutions: as good as a string literal.
            return _Token("string", text[opened_at:close], opened_at, close), close
        return _Token("other", "`", pos, close), close

    def _regex_allowed(self) -> bool:
        last = self.last
        if last is None or last.kind == "ctrl":
            return True
        if last.kind == "word":
            return last.value in _REGEX_AFTER_WORDS
        if last.kind in ("string", "other"):
            return False
        return last.value not in (")", "]", "}", "++", "--")


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
    tokenizer = _Tokenizer(text)
    spans: list[tuple[int, int, bool]] = []
    windows: list[_Window] = []
    previous: _Token | None = None
    for token in tokenizer:
        for window in windows:
            window.tokens.append(token)
        for window in [w for w in windows if w.done()]:
            windows.remove(window)
            spans.extend(window.spans())
        member = previous is not None and previous.value in (".", "?.")
        if token.kind == "word" and token.value in _KEYWORDS and not member:
            windows.append(_Window([token]))
        previous = token
    for window in windows:
        spans.extend(window.spans())
    spans.extend((start, end, False) for start, end, _ in tokenizer.maps)
    lines = _newlines(text)
    refs = []
    for start, end, module in sorted(set(spans)):
        line = _line_at(text, start, lines)
        refs.append(Reference(start, end, text[start:end], line, module=module))
    return refs


_KEYWORDS: Final = frozenset({"import", "export", "new"})
_CLAUSE_TOKENS: Final = frozenset({"{", "}", ",", "*"})


@dataclass(slots=True)
class _Window:
    """The tokens from an ``import``/``export``/``new`` keyword on, until its
    statement shape is decided."""

    tokens: list[_Token]

    def done(self) -> bool:
        tokens = self.tokens
        keyword = tokens[0].value
        if keyword == "new":
            return len(tokens) >= 11
        if len(tokens) < 2:
            return False
        second = tokens[1]
        if keyword == "import":
            if second.kind == "string" or second.value in (".", ":", "=", ","):
                return True
            if second.value == "(":
                return len(tokens) >= 4
        elif second.value not in ("*", "{"):
            return True  # export const/function/default ...: no specifier
        # An import/export clause: ends with `from "<specifier>"` or at a token no
        # clause holds.
        last = tokens[-1]
        if last.kind == "string":
            return len(tokens) >= 2 and tokens[-2].kind == "word" and tokens[-2].value == "from"
        return last.kind == "other" or (
            last.kind in ("punct", "ctrl") and last.value not in _CLAUSE_TOKENS
        )

    def spans(self) -> list[tuple[int, int, bool]]:
        keyword = self.tokens[0].value
        if keyword == "import":
            found = _import_specifiers(self.tokens, 0)
        elif keyword == "export":
            found = _export_specifiers(self.tokens, 0)
        else:
            return [(a, b, False) for a, b in _new_url_specifiers(self.tokens, 0)]
        return [(a, b, True) for a, b in found]


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
    for k in range(j, len(tokens) - 1):
        token = tokens[k]
        if token.kind == "word" and token.value == "from" and tokens[k + 1].kind == "string":
            span = _string_span(tokens[k + 1])
            return [span] if span else []
        if token.kind in ("punct", "ctrl") and token.value not in _CLAUSE_TOKENS:
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
