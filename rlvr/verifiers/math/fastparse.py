"""A small recursive-descent parser for the everyday subset of LaTeX math, straight to sympy.

It reads numbers, single-letter and Greek variables, `\\pi`, `e`, `\\infty`, `+ - * / \\cdot
\\times \\div`, implicit multiplication (`2x`, `3\\sqrt{2}`), `^` with a braced or one-character
exponent, `\\frac`, `\\sqrt` (and `\\sqrt[n]`), brackets and braces, and the elementary
functions with a bracketed argument. That covers most final answers and costs a fraction of a
millisecond, where the ANTLR grammar costs several. It follows the grammar's conventions (`e` is
Euler's number, `i` is a plain variable, `xy` is `x*y`, `\\sqrt[3]{x}` is `x**(1/3)`), so a
string means the same whichever parser reads it.

Anything outside the subset (a letter followed by a bracket, `\\log`, subscripts, chained
powers, factorials, functions without brackets, ...) raises `NotInSubset`, and the caller falls
back to the grammar. Never `eval`.
"""

from __future__ import annotations

import re

import sympy

_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|\\[A-Za-z]+|[A-Za-z]|[-+*/^(){}\[\]|!_])")
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "phi", "rho",
          "sigma", "tau", "omega", "psi", "eta", "kappa", "nu", "xi", "zeta", "chi"}
_FUNCTIONS = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot,
              "sec": sympy.sec, "csc": sympy.csc, "ln": sympy.log, "exp": sympy.exp,
              "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
              "log": lambda x: sympy.log(x, 10)}  # the grammar's convention: \log is base 10
_PRODUCT = {"*", "\\cdot", "\\times"}
_QUOTIENT = {"/", "\\div"}


MAX_RESULT_DIGITS = 10_000  # an exact power or factorial with more digits is refused


class NotInSubset(ValueError):
    """The input uses something this parser does not read; use the full grammar instead."""


class TooLarge(ValueError):
    """An exact number in the input would have more than `MAX_RESULT_DIGITS` digits."""


def _digits(value: sympy.Basic) -> float:
    """About how many decimal digits the numerator or denominator of a rational has."""
    if not value.is_Rational:
        return 0.0
    return max(abs(value.p).bit_length(), abs(value.q).bit_length()) * 0.30103


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    """`base ** exponent`, refusing exact results too large to compute (`(10^{999})^{999}`)."""
    if exponent.is_Rational and base.is_Rational and abs(exponent) * _digits(base) > MAX_RESULT_DIGITS:
        raise TooLarge("a power with too many digits")
    return sympy.exp(exponent) if base == sympy.E else sympy.Pow(base, exponent)


def _factorial(value: sympy.Expr) -> sympy.Expr:
    if value.is_Integer and value > 3_000:
        raise TooLarge("a factorial with too many digits")
    return sympy.factorial(value)


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise NotInSubset(text[pos:pos + 10])
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or expected is not None and tok != expected:
            raise NotInSubset(f"expected {expected!r}, got {tok!r}")
        self.i += 1
        return tok

    def expr(self) -> sympy.Expr:
        terms = [self.signed()]
        while self.peek() in ("+", "-"):
            sign = self.take()
            term = self.term()
            terms.append(-term if sign == "-" else term)
        return sympy.Add(*terms)

    def signed(self) -> sympy.Expr:
        if self.peek() in ("+", "-"):
            sign = self.take()
            term = self.term()
            return -term if sign == "-" else term
        return self.term()

    def term(self) -> sympy.Expr:
        value = self.power()
        while True:
            tok = self.peek()
            if tok in _PRODUCT:
                self.take()
                value = value * self.power()
            elif tok in _QUOTIENT:
                self.take()
                value = value / self.power()
            elif tok is not None and self._starts_atom(tok):
                if tok[0].isdigit():
                    raise NotInSubset("a number after a factor")  # `x2`, `2 3`
                value = value * self.power()
            else:
                return value

    @staticmethod
    def _starts_atom(tok: str) -> bool:
        if tok[0] == "\\":
            return tok not in _PRODUCT and tok not in _QUOTIENT
        return tok[0].isalnum() or tok in ("(", "{", "[")

    def power(self) -> sympy.Expr:
        base = self.atom()
        while self.peek() == "!":
            self.take()
            base = _factorial(base)
        if self.peek() == "^":
            self.take()
            exponent = self.exponent()
            if self.peek() == "^":
                raise NotInSubset("chained powers")
            return _power(base, exponent)
        return base

    def exponent(self) -> sympy.Expr:
        tok = self.take()
        if tok == "{":
            value = self.expr()
            self.take("}")
            return value
        if tok.isdigit():
            if len(tok) > 1:
                raise NotInSubset("a multi-digit exponent without braces")
            return sympy.Integer(tok)
        if tok.isalpha() and len(tok) == 1:
            return self._letter(tok)
        raise NotInSubset(f"exponent {tok!r}")

    def group(self, open_: str, close: str) -> sympy.Expr:
        self.take(open_)
        value = self.expr()
        self.take(close)
        return value

    def atom(self) -> sympy.Expr:
        tok = self.peek()
        if tok is None:
            raise NotInSubset("unexpected end")
        if tok[0].isdigit():
            self.take()
            return sympy.Rational(tok)
        if tok in ("(", "{", "["):
            return self.group(tok, {"(": ")", "{": "}", "[": "]"}[tok])
        if tok == "|":
            return sympy.Abs(self.group("|", "|"))
        if tok.isalpha():
            self.take()
            if self.peek() == "_":
                return self._subscripted(tok)
            if self.peek() == "(" and self.tokens[self.i + 2:self.i + 3] == [")"]:
                raise NotInSubset("`f(x)`: a function, read by the grammar")
            return self._letter(tok)
        return self.command(self.take())

    def command(self, tok: str) -> sympy.Expr:
        name = tok[1:]
        if name == "frac":
            return self.group("{", "}") / self.group("{", "}")
        if name == "sqrt":
            if self.peek() == "[":
                index = self.group("[", "]")
                return sympy.Pow(self.group("{", "}"), 1 / index)
            return sympy.sqrt(self.group("{", "}"))
        if name == "pi":
            return sympy.pi
        if name == "infty":
            return sympy.oo
        if name in _GREEK:
            return self._subscripted(name) if self.peek() == "_" else sympy.Symbol(name)
        if name == "binom":
            n, k = self.group("{", "}"), self.group("{", "}")
            if n.is_Integer and n > 3_000:
                raise TooLarge("a binomial with too many digits")
            return sympy.binomial(n, k)
        if name in _FUNCTIONS:
            return self.function(name)
        raise NotInSubset(f"command {tok}")

    def function(self, name: str) -> sympy.Expr:
        """`\\sin(x)`, `\\sin x`, `\\sin 2x` (argument: the product that follows), `\\sin^2 x`,
        `\\log_2 8`; a power after a bracketed argument applies to the value, as in the grammar."""
        base = None
        if name == "log" and self.peek() == "_":
            self.take()
            base = self.exponent()
        power = None
        if self.peek() == "^":
            self.take()
            power = self.exponent()
        if self.peek() == "(":
            arg = self.group("(", ")")
        else:
            arg = self.power()
            while self.peek() is not None and self._starts_atom(self.peek()) \
                    and self.peek()[1:] not in _FUNCTIONS and self.peek() != "|":
                arg = arg * self.power()
        value = sympy.log(arg, base) if base is not None else _FUNCTIONS[name](arg)
        return _power(value, power) if power is not None else value

    def _subscripted(self, name: str) -> sympy.Expr:
        """`x_1`, `x_{1}`, `V_1`, `a_n`, `x_{12}`, `\\theta_{abc}`: one symbol, named as the grammar
        names it (`x_1`, `x_{12}`); any other subscript is left to the grammar."""
        self.take("_")
        if self.peek() == "{":
            self.take("{")
            parts = []
            while self.peek() is not None and self.peek() != "}":
                parts.append(self.take())
            self.take("}")
        else:
            parts = [self.take()]
        sub = "".join(parts)
        if not parts or not all(p.isalnum() for p in parts) or len(parts) == 1 and len(sub) > 1 \
                and self.tokens[self.i - 1] != "}":
            raise NotInSubset("a subscript the grammar reads")
        return sympy.Symbol(f"{name}_{sub}" if len(sub) == 1 else f"{name}_{{{sub}}}")

    @staticmethod
    def _letter(tok: str) -> sympy.Expr:
        return sympy.E if tok == "e" else sympy.Symbol(tok)


def fast_parse(text: str) -> sympy.Expr:
    """The sympy value of `text`, or `NotInSubset` when it needs the full grammar."""
    parser = _Parser(_tokens(text))
    value = parser.expr()
    if parser.peek() is not None:
        raise NotInSubset(f"unexpected {parser.peek()!r}")
    return value
