"""Rewrite an extracted answer into one canonical spelling, as text, before it is parsed.

The rewrites are purely textual and each one is safe on its own: a backslash doubled by a JSON
round trip before a known command (`\\\\frac`) made single, unicode math symbols to LaTeX,
math-mode delimiters and spacing commands removed, `\\dfrac`/`\\tfrac` to `\\frac`, `\\left`/
`\\right` dropped, thousands separators (`1,234`, `1{,}234`, `14 {, }916`, `1,\\! 000`, `1\\,234`)
joined (a comma is never a decimal separator, and `0,111` is not a thousands group: it stays a
list for the parser), an approximation after an exact value dropped (`\\frac13 \\approx 0.333`),
`\\le`/`\\leq`/`≤` to one spelling, degree and percent signs to one marker each, a trailing full
stop removed.
After this, two answers that differ only in spelling are usually equal as strings, which is the
fast path of the verifier.

This module does not parse or evaluate anything and does not drop units or words (see `units`).
"""

from __future__ import annotations

import re

_UNICODE = {
    "−": "-", "–": "-", "—": "-", "×": r"\times ", "·": r"\cdot ", "÷": r"\div ", "√": r"\sqrt",
    "π": r"\pi ", "∞": r"\infty ", "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ", "±": r"\pm ",
    "°": r"^\circ ", "∪": r"\cup ", "∩": r"\cap ", "∅": r"\emptyset ", "θ": r"\theta ",
    "α": r"\alpha ", "β": r"\beta ", "²": "^2", "³": "^3", "⁻¹": "^{-1}", "½": r"\frac{1}{2}",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))

# `\\\\frac`: a backslash doubled by a JSON round trip, never a line break before a word
_DOUBLED_BACKSLASH = re.compile(r"(?<!\\)\\\\(?=(?:left|right|frac|dfrac|tfrac|sqrt|pi|cdot|times|le|ge|leq"
                                r"|geq|infty|text|boxed|begin|end|pm|in|cup)(?![a-zA-Z]))")
_SEPARATOR_SPACING = re.compile(r"(?<=\d)(?:\s*\{\s*,\s*\}\s*|,\s*\\!\s*)(?=\d{3}(?!\d))")
_DROP = re.compile(
    r"\\(?:displaystyle|textstyle|scriptstyle|left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr"
    r"|bigg|Bigg|middle|limits|nolimits|mathrm(?=\{\\)|ensuremath)(?![a-zA-Z])"
    r"|\\[!;:>]|\\(?:q?quad|enspace|thinspace|medspace|thickspace|negthinspace)(?![a-zA-Z])")
_ALIASES = [
    (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\[dt]binom(?![a-zA-Z])"), r"\\binom"),
    (re.compile(r"\\(?:leq|leqslant|leqq)(?![a-zA-Z])"), r"\\le"),
    (re.compile(r"\\(?:geq|geqslant|geqq)(?![a-zA-Z])"), r"\\ge"),
    (re.compile(r"\\(?:neq)(?![a-zA-Z])"), r"\\ne"),
    (re.compile(r"^\s*(?:\\approx|=)\s*"), ""),
    (re.compile(r"\\approx(?![a-zA-Z])"), "="),
    (re.compile(r"\\lt(?![a-zA-Z])"), "<"),
    (re.compile(r"\\gt(?![a-zA-Z])"), ">"),
    (re.compile(r"<="), r"\\le "),
    (re.compile(r">="), r"\\ge "),
    (re.compile(r"!="), r"\\ne "),
    (re.compile(r"\\(?:varnothing)(?![a-zA-Z])"), r"\\emptyset"),
    (re.compile(r"(?<![A-Za-z])(?:m\s*)?\\angle\s*\{?([A-Z]{1,3})\}?"),  # the name of an angle
     lambda m: r"\theta_{" + m.group(1).lower() + "}"),
    (re.compile(r"\\(?:lbrace)(?![a-zA-Z])"), r"\\{"),
    (re.compile(r"\\(?:rbrace)(?![a-zA-Z])"), r"\\}"),
    (re.compile(r"\\(?:lvert|rvert|vert)(?![a-zA-Z])"), "|"),
    (re.compile(r"\\langle(?![a-zA-Z])"), "("),
    (re.compile(r"\\rangle(?![a-zA-Z])"), ")"),
    (re.compile(r"\\(?:cdotp|centerdot)(?![a-zA-Z])"), r"\\cdot"),
    (re.compile(r"\\(?:textbf|mathbf|textit|mathit|boldsymbol|bm|textrm|textnormal|mbox|hbox"
                r"|operatorname|mathsf|texttt)\s*\{"), r"\\text{"),
    (re.compile(r"\\mathrm\s*\{"), r"\\text{"),
    (re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\^\s*\{\s*o\s*\}"), "°"),
    (re.compile(r"°\s*(?:\\text\{\s*)?C\b\}?"), r" \\text{ celsius}"),
    (re.compile(r"°\s*(?:\\text\{\s*)?F\b\}?"), r" \\text{ fahrenheit}"),
    (re.compile(r"(?<=[\d\s])U(?=\s*[(\[])"), r"\\cup "),
    (re.compile(r"\\?%"), "%"),
    (re.compile(r"\\\$\s*(\d[\d,]*(?:\.\d+)?)"), r"\1 \\text{ dollars}"),
    (re.compile(r"\\\$|\$"), ""),
    (re.compile(r"(?<![\\a-zA-Z])sqrt\s*\(([^()]*)\)"), r"\\sqrt{\1}"),
    (re.compile(r"(?<![\\a-zA-Z])(pi|infty|infinity)(?![a-zA-Z])"), r"\\\1 "),
    (re.compile(r"\\infinity"), r"\\infty"),
    (re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))"), ""),
    (re.compile(r"(?<!\\)\\,|(?<!\\)\\ |~"), " "),
]
_THOUSANDS = re.compile(r"(?<![\d.,])([1-9]\d{0,2})((?:,\d{3})+|(?: \d{3})+)(?![\d,]|\.\d*,)")
_APPROX = re.compile(r"\\approx(?![a-zA-Z])")
_LABEL = re.compile(r"^\s*(?:[A-Za-z](?:_\{?\w+\}?)?'?|\\[A-Za-z]+)\s*(?:=\s*)?$")
_DELIMS = re.compile(r"^\s*(?:\\\(|\\\[)|(?:\\\)|\\\])\s*$")
_TRAILING = re.compile(r"[\s.;,]+$")
_SPACES = re.compile(r"\s+")
_BRACKET_SPACES = re.compile(r"([(\[])\s+|\s+([)\]])")


def _join_thousands(text: str) -> str:
    """`1,234,567` -> `1234567`; a list such as `1,23` or `1, 234` is left alone."""
    if re.search(r"[(\[]|\\\{", text):
        return text  # `(1,234)` is a point, not a number
    return _THOUSANDS.sub(lambda m: m.group(1) + re.sub("[, ]", "", m.group(2)), text)


def _drop_approximation(text: str) -> str:
    """`x = \\frac13 \\approx 0.333` -> `x = \\frac13`: the exact value is the answer and the
    decimal after it a comment; `x \\approx 0.333` and `\\approx 0.333` keep the decimal."""
    m = _APPROX.search(text)
    if m is None or text[:m.start()].count("{") != text[:m.start()].count("}"):
        return text
    left = text[:m.start()]
    return text if _LABEL.match(left) or not left.strip() else left


def normalize(text: str) -> str:
    """The canonical spelling of one extracted answer (see the module docstring)."""
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], text)
    s = _DOUBLED_BACKSLASH.sub(r"\\", s)
    s = _DELIMS.sub("", s.strip())
    s = _SEPARATOR_SPACING.sub("", s)
    s = _DROP.sub("", s)
    s = _drop_approximation(s)
    for pattern, repl in _ALIASES:
        s = pattern.sub(repl, s)
    s = _join_thousands(s)
    s = _SPACES.sub(" ", s).strip()
    s = _BRACKET_SPACES.sub(lambda m: m.group(1) or m.group(2), s)
    s = _TRAILING.sub("", s)
    if s.endswith("\\"):  # a lone trailing backslash left by `\.` or `\,`
        s = s[:-1].rstrip()
    return s


def squash(text: str) -> str:
    """`normalize` without any space: the key of the string-equality fast path."""
    return normalize(text).replace(" ", "")
