"""Turn one normalised answer string into a `Value`: the structure first, then each scalar.

The structure is split here, by a bracket-aware scan, before any expression parser runs:
multiple-choice letters, word answers, matrices (`pmatrix`/`bmatrix`/`array`), unions (`\\cup`),
sets `\\{...\\}`, tuples and intervals `(a, b]`, bare lists `1, 2` (also `1 or 2`, `1 and 2`),
relations and chains (`x = 3`, `x \\ge 2`, `1 < x < 2`, `x \\in [1, 2]`) and `a \\pm b`.
Each leaf is then a scalar: a unit, percent or degree sign is peeled off, and the rest is read by
`expression` (numbers by a fast path, everything else by a grammar, never by `eval`).

Parsed values are cached by their string (a reference is parsed once per worker, not once per
sample). This module does not decide equivalence.
"""

from __future__ import annotations

import functools
import re

import sympy

from rlvr.verifiers.math.expression import (ROUNDED_PLACES, decimals_written, parse_expression,
                                            parse_number)
from rlvr.verifiers.math.units import split_unit
from rlvr.verifiers.math.values import (Choice, Clock, IntervalValue, Items, MatrixValue, Relation,
                                        Scalar, Text, UnparsableAnswer, Value)

MAX_PARSE_CHARS = 1_000  # each expression inside is further limited by `expression.check_size`
MAX_ITEMS = 64
MAX_DEPTH = 6
_OPEN, _CLOSE = "([{", ")]}"
_CHOICE = re.compile(r"^(?:\\text\{)?\s*\(?\s*([A-J])\s*\)?\s*\}?$")
_WORD = re.compile(r"[A-Za-z]{3,}")
_FUNCTION_WORDS = {  # written bare, these are math, not a word answer (commands are removed first)
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "max", "min", "gcd", "lcm", "det", "mod", "lim", "sum", "int", "infty",
    "theta", "alpha", "beta", "gamma", "delta", "lambda", "sigma", "omega", "phi", "rho", "tau"}
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                      "ninety": 90, "hundred": 100, "a hundred": 100, "one hundred": 100})
_DENOMINATORS = {"half": 2, "halve": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5,
                 "sixth": 6, "eighth": 8, "tenth": 10}
_FRACTION_WORDS = re.compile(
    r"^(a|one|two|three|four|five|seven|nine)[\s-]+"
    r"(half|halves|thirds?|quarters?|fourths?|fifths?|sixths?|eighths?|tenths?)$", re.I)
_TEXT_NUMBER = re.compile(r"\\text\{((?:[^{}a-zA-Z\\]|\\[a-zA-Z]+)*)\}")  # `\text{5}`, `\text{\infty}`
_REALS = {"\\mathbb{R}", "\\mathbb R", "\\R", "\\text{all real numbers}", "all real numbers"}
_SEPARATORS = re.compile(  # `1 or 2`, `19, 46, and 82`, `(11,7)or(7,11)`, `1 \\text{ and } 2`
    r",?\s*\\text\{\s*(?:or|and|,)\s*\}|,?\s+(?:or|and)\s+|(?<=[)\]}])\s*(?:or|and)\s*(?=[(\[\\])|;")
_EITHER = re.compile(r"^(?:\\text\{\s*)?(?:either|both)\s+(?:\}\s*)?(?=.*\b(?:or|and)\b)", re.I)
_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?\s*(?:\\text\{\s*)?"
                    r"(?:([ap])\.?\s*m\.?)?\s*\}?$", re.I)
_MATRIX = re.compile(r"^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.S)
_RELATIONS = [("\\le", "<="), ("\\ge", ">="), ("\\ne", "!="), ("\\in", "in"), ("=", "="),
              ("<", "<"), (">", ">")]
_INEQUALITY = re.compile(r"\\le(?![a-zA-Z])|\\ge(?![a-zA-Z])|<|>")
_TRIG = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])")
_DEGREE_ARGUMENT = re.compile(r"(\d+(?:\.\d+)?)\s*°")
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}


def split_top(text: str, sep: str) -> list[str]:
    """Split `text` at each `sep` that is outside every bracket (`\\{` counts as a bracket)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and text.startswith(sep, i) and not _inside_command(text, i, sep):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _inside_command(text: str, i: int, sep: str) -> bool:
    """True when `sep` at `i` is a prefix of a longer command (`\\in` in `\\infty`)."""
    end = i + len(sep)
    return sep[-1].isalpha() and end < len(text) and text[end].isalpha()


def _wrapped(text: str) -> tuple[str, str, str] | None:
    """`(open, inside, close)` when one bracket pair encloses all of `text`, else None."""
    token = next((t for t in ("(", "[", "\\{") if text.startswith(t)), None)
    if token is None:
        return None
    closes = (")", "]") if token in "([" else ("\\}",)
    close = next((c for c in closes if text.endswith(c)), None)
    if close is None:
        return None
    inside = text[len(token):len(text) - len(close)]
    depth = 0
    for ch in inside:
        depth += ch in _OPEN
        depth -= ch in _CLOSE
        if depth < 0:
            return None  # `(1)+(2)`: the first bracket closes early
    return (token, inside, close) if depth == 0 else None


def _is_text(text: str) -> bool:
    """A word answer: no digits, and a word of 3+ letters that is not a LaTeX/math name."""
    if re.search(r"\d", text):
        return False
    plain = re.sub(r"_\{[^{}]*\}|\\[A-Za-z]+", " ", text)  # subscripts name things: `v_{max}`
    return any(w.lower() not in _FUNCTION_WORDS for w in _WORD.findall(plain))


def text_key(text: str) -> str:
    """A word answer compared case-, space- and punctuation-insensitively."""
    plain = re.sub(r"\\text\s*\{([^{}]*)\}", r"\1", text)
    return re.sub(r"[\s.,;:!'\"`{}()\\]", "", plain).lower()


def _scalar(text: str) -> Scalar:
    s = text.strip()
    if "°" in s and _TRIG.search(s):  # `\\sin 30°`: the degrees belong to the argument
        s = _DEGREE_ARGUMENT.sub(r"(\\frac{\1\\pi}{180})", s)
    percent = s.endswith("%")
    s = s.rstrip("%").strip()
    degrees = s.endswith("°")
    s = s.rstrip("°").strip()
    head, unit = split_unit(s)
    if unit is not None and unit.dimension == "angle":
        degrees, unit = True, None
    head = head.rstrip("%°").strip()
    if not head:
        raise UnparsableAnswer("a unit without a number")
    number = parse_number(head)
    if number is not None:
        return Scalar(number.value, number.approx, number.decimals, percent, degrees, unit,
                      number.rounded)
    expr = parse_expression(head)
    if isinstance(expr, sympy.core.relational.Relational):
        raise UnparsableAnswer("a relation where a value was expected")
    approx = bool(re.search(r"\d\.\d|\d\.(?!\d)", head))
    places = decimals_written(head)
    return Scalar(expr, approx, places, percent, degrees, unit, places >= ROUNDED_PLACES)


def _clock(text: str) -> Clock | None:
    """`9:30`, `09:30`, `9:30 pm`, `21:30`, `9:30:15`: a time of day, never a ratio."""
    m = _CLOCK.match(text)
    if m is None:
        return None
    hour, meridiem = int(m.group(1)), (m.group(4) or "").lower()
    if hour > 24 or meridiem and not 1 <= hour <= 12:
        return None
    if meridiem:
        hours = {hour % 12 + (12 if meridiem == "p" else 0)}
    elif 1 <= hour <= 12:
        hours = {hour % 12, hour % 12 + 12}  # `1:00` is 1 am or 1 pm
    else:
        hours = {hour % 24}
    return Clock(frozenset(hours), int(m.group(2)), int(m.group(3) or 0))


def _relation(text: str, depth: int) -> Value | None:
    if len(_INEQUALITY.findall(text)) == 2:
        return _chain(text, depth)
    for latex, op in _RELATIONS:
        parts = split_top(text, latex)
        if op == "=" and len(parts) > 2:
            parts = [parts[0], parts[-1]]  # `x = 2 + 1 = 3`: the first and the last side
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            if op in ("<", ">") and ("=" in parts[1][:1]):
                continue
            return Relation(op, _parse(parts[0].strip(), depth + 1), _parse(parts[1].strip(), depth + 1))
    return None


def _chain(text: str, depth: int) -> Value:
    """`a < x \\le b` (the two operators may differ) as an interval of x."""
    m = re.match(r"^(.*?)(\\le|\\ge|<|>)(.*?)(\\le|\\ge|<|>)(.*)$", text)
    if not m:
        raise UnparsableAnswer("a chain of relations")
    lo, op1, mid, op2, hi = (g.strip() for g in m.groups())
    ops = {"\\le": "<=", "\\ge": ">=", "<": "<", ">": ">"}
    op1, op2 = ops[op1], ops[op2]
    if op1[0] == ">" and op2[0] == ">":
        lo, hi, op1, op2 = hi, lo, _FLIP[op2], _FLIP[op1]
    if op1[0] != "<" or op2[0] != "<":
        raise UnparsableAnswer("a chain of relations that is not an interval")
    return Relation("chain", _parse(mid, depth + 1),
                    IntervalValue(_scalar(lo), _scalar(hi), op1 == "<=", op2 == "<="))


def _matrix(body: str, depth: int) -> MatrixValue:
    rows = [r for r in re.split(r"\\\\", body) if r.strip() and not r.strip().startswith("\\hline")]
    if not rows or len(rows) > MAX_ITEMS:
        raise UnparsableAnswer("an empty or oversized matrix")
    parsed = tuple(tuple(_parse(c.strip(), depth + 1) for c in r.split("&")) for r in rows)
    if len({len(r) for r in parsed}) != 1:
        raise UnparsableAnswer("a ragged matrix")
    return MatrixValue(parsed)


def _items(kind: str, parts: list[str], depth: int, brackets: str = "") -> Items:
    if len(parts) > MAX_ITEMS or any(not p.strip() for p in parts):
        raise UnparsableAnswer("an empty or oversized list")
    return Items(kind, tuple(_parse(p.strip(), depth + 1) for p in parts), brackets)


def _bracketed(s: str, depth: int) -> Value | None:
    wrapped = _wrapped(s)
    if wrapped is None:
        return None
    open_, inside, close = wrapped
    parts = split_top(inside, ",")
    if open_ == "\\{":
        return Items("set", ()) if not inside.strip() else _items("set", parts, depth)
    if len(parts) == 2 and open_ in "([":
        return _items("pair", parts, depth, open_ + close)
    if len(parts) >= 2:
        return _items("tuple", parts, depth, open_ + close)
    if open_ == "(" and close == ")":
        return _parse(inside.strip(), depth + 1)
    return None


def _parse(text: str, depth: int) -> Value:
    s = text.strip()
    if depth > MAX_DEPTH:
        raise UnparsableAnswer("nested too deeply")
    if not s:
        raise UnparsableAnswer("empty answer")
    if m := _CHOICE.match(s):
        return Choice(m.group(1))
    s = _TEXT_NUMBER.sub(r"\1", s)
    if s.startswith("{") and s.endswith("}") and _wrapped("(" + s[1:-1] + ")"):
        return _parse(s[1:-1], depth + 1)  # `{1,2}`, `{5}`: grouping braces around the answer
    if s in _REALS:
        return Items("pair", (Scalar(-sympy.oo), Scalar(sympy.oo)), "()")
    if s.lower() in _NUMBER_WORDS:
        return Scalar(sympy.Integer(_NUMBER_WORDS[s.lower()]))
    if m := _FRACTION_WORDS.match(s):  # `one half`, `two thirds`
        count = 1 if m.group(1).lower() == "a" else _NUMBER_WORDS[m.group(1).lower()]
        return Scalar(sympy.Rational(count, _DENOMINATORS[m.group(2).lower().rstrip("s")]))
    if m := _MATRIX.match(s):
        return _matrix(m.group(2), depth)
    if clock := _clock(s):
        return clock
    s = _EITHER.sub("", s)  # `either 2 or 3`, `both 1 and 4`
    if _is_text(s):
        return Text(text_key(s))
    s = _SEPARATORS.sub(",", s)
    for sep, kind in (("\\cup", "union"), (",", "list")):
        parts = split_top(s, sep)
        if len(parts) > 1:
            return _items(kind, parts, depth)
    bracketed = _bracketed(s, depth)
    if bracketed is not None:
        return bracketed
    relation = _relation(s, depth)
    if relation is not None:
        return relation
    for sign in ("\\pm", "\\mp"):
        if len(split_top(s, sign)) == 2:
            plus, minus = s.replace(sign, "+", 1), s.replace(sign, "-", 1)
            return Items("list", (_parse(plus, depth + 1), _parse(minus, depth + 1)))
    if s == "\\emptyset":
        return Items("set", ())
    return _scalar(s)


@functools.lru_cache(maxsize=4096)
def parse_answer(text: str) -> Value:
    """The `Value` of one normalised answer; raises `UnparsableAnswer`."""
    if len(text) > MAX_PARSE_CHARS:
        raise UnparsableAnswer(f"answer longer than {MAX_PARSE_CHARS} characters")
    return _parse(text, 0)
