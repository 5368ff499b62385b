"""The countdown verifier: does the model's arithmetic expression reach the target with the numbers?

`problem.reference` is `{"numbers": [25, 3, 7], "target": 96}`. The expression is read from the
last `<answer>...</answer>` block, else the last `\\boxed{...}`; in `lenient` mode, else from the
last line that is nothing but an expression. A trailing `= 96` is ignored (only the left side is
evaluated). It is parsed by a small tokenizer and recursive-descent parser of integers, `+ - * /`
and parentheses (`×`, `÷`, `\\times`, `\\div`, `\\cdot` are read as `*` and `/`), and evaluated
exactly with fractions. Never `eval`: the model's text is data, not code.

Bounds keep hostile text cheap: at most `MAX_EXPR_CHARS` characters, `MAX_TOKENS` tokens, numbers
of at most 6 digits, nesting at most `MAX_DEPTH`. There are no unary operators (`-3` is not one of
the numbers). Each given number must be used exactly once (`use_all=True`, the classic game) or at
most once (`use_all=False`).

Statuses: "correct", "wrong" (valid but misses the target), "wrong_numbers", "unparsable",
"division_by_zero", "no_answer". `format_weight` w gives reward w to a valid expression that uses
the right numbers but misses the target (TinyZero gives 0.1); a correct one gets 1.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

from rlvr.errors import BadReferenceError, ConfigError
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier

MAX_SCAN_CHARS = 20_000
MAX_EXPR_CHARS = 300
MAX_TOKENS = 100
MAX_DEPTH = 16
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_EXPR_LINE = re.compile(r"^[\d\s+\-*/()×÷xX=.\\a-z]*\d[\d\s+\-*/()×÷xX=.\\a-z]*$")
_TOKEN = re.compile(r"\s*(?:(\d{1,6})(?!\d)|([-+*/()]))")
_REPLACE = (("\\left", ""), ("\\right", ""), ("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"),
            ("×", "*"), ("÷", "/"), ("−", "-"), ("$", ""), ("\\(", ""), ("\\)", ""))


class ParseError(ValueError):
    """The text is not an expression of this grammar (the model's failure, never infrastructure)."""


def tokenize(text: str) -> list[str]:
    """Integers and the characters `+ - * / ( )`; anything else is a `ParseError`."""
    if len(text) > MAX_EXPR_CHARS:
        raise ParseError(f"expression longer than {MAX_EXPR_CHARS} characters")
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError(f"unexpected {text[pos:pos + 10].strip()!r}")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if len(tokens) > MAX_TOKENS:
            raise ParseError(f"more than {MAX_TOKENS} tokens")
    if not tokens:
        raise ParseError("empty expression")
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := atom (('*'|'/') atom)* ; atom := INT | '(' expr ')'"""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.numbers = tokens, 0, []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ParseError("expression ends too early")
        self.pos += 1
        return tok

    def expr(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self, depth: int) -> Fraction:
        value = self.atom(depth)
        while self.peek() in ("*", "/"):
            op, rhs = self.take(), self.atom(depth)
            if op == "/" and rhs == 0:
                raise ZeroDivisionError
            value = value * rhs if op == "*" else value / rhs
        return value

    def atom(self, depth: int) -> Fraction:
        tok = self.take()
        if tok == "(":
            if depth >= MAX_DEPTH:
                raise ParseError(f"parentheses nested deeper than {MAX_DEPTH}")
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise ParseError("unbalanced parentheses")
            return value
        if tok.isdigit():
            self.numbers.append(int(tok))
            return Fraction(int(tok))
        raise ParseError(f"expected a number or '(', got {tok!r}")


def evaluate_expression(text: str) -> tuple[Fraction, list[int]]:
    """The exact value of `text` and the numbers it uses, in order. Raises `ParseError` or
    `ZeroDivisionError`."""
    for old, new in _REPLACE:
        text = text.replace(old, new)
    text = text.split("=")[0]
    parser = _Parser(tokenize(text))
    value = parser.expr(0)
    if parser.peek() is not None:
        raise ParseError(f"unexpected {parser.peek()!r} after the expression")
    return value, parser.numbers


def extract_expression(text: str, lenient: bool = True) -> str | None:
    """The candidate expression: last answer tag, else last box, else (lenient) last expression line."""
    tail = text[-MAX_SCAN_CHARS:]
    for pattern in (_ANSWER_TAG, _BOXED):
        found = pattern.findall(tail)
        if found:
            return found[-1].strip()
    if lenient:
        for line in reversed(tail.strip().splitlines()):
            if line.strip() and _EXPR_LINE.match(line.strip()) and re.search(r"[-+*/×÷]", line):
                return line.strip()
    return None


class CountdownVerifier(BaseVerifier):
    """Checks `reference["numbers"]` and `reference["target"]` against the model's expression."""

    def __init__(self, use_all: bool = True, mode: str = "strict", format_weight: float = 0.0):
        if mode not in ("strict", "lenient"):
            raise ConfigError(f"countdown verifier: mode must be 'strict' or 'lenient', not {mode!r}")
        if not 0.0 <= format_weight < 1.0:
            raise ConfigError(f"countdown verifier: format_weight must be in [0, 1), not {format_weight}")
        self.use_all, self.lenient, self.format_weight = use_all, mode == "lenient", format_weight

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        try:
            numbers = [int(x) for x in problem.reference["numbers"]]
            target = Fraction(int(problem.reference["target"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadReferenceError(f"problem {problem.id}: countdown reference needs integer "
                                    "'numbers' and 'target'", problem_id=problem.id,
                                    verifier="countdown") from exc
        expr = extract_expression(completion.text, self.lenient)
        if expr is None:
            return Verdict(0.0, False, "no_answer", {"extracted": None})
        info: dict = {"extracted": expr}
        try:
            value, used = evaluate_expression(expr)
        except ZeroDivisionError:
            return Verdict(0.0, False, "division_by_zero", info)
        except ParseError as exc:
            return Verdict(0.0, False, "unparsable", {**info, "error": str(exc)})
        info["value"] = str(value)
        have, need = Counter(used), Counter(numbers)
        if (have != need) if self.use_all else bool(have - need):
            return Verdict(0.0, False, "wrong_numbers", {**info, "used": used})
        if value == target:
            return Verdict(1.0, True, "correct", info)
        return Verdict(self.format_weight, False, "wrong", info)
