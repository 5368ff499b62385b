"""Parse one scalar expression into sympy without eval: a fast path for numbers, then LaTeX.

Plain numbers (`42`, `-3.5`, `2e5`, `1.5\\times 10^{3}`, `\\frac{3}{4}`, `7/2`, mixed numbers
`3\\frac{1}{2}`, repeating decimals `0.\\overline{3}`) are read by regular expressions into exact
rationals; a decimal is kept exact and marked `approx`. Everything else goes to the ANTLR grammar
of `latex2sympy2_extended`, which builds sympy objects directly from the parse tree: model text
never reaches `sympify`/`parse_expr` (they call `eval`). That grammar is chosen on purpose over
sympy's own LaTeX parser, which needs an ANTLR runtime of one exact version and knows fewer of
the forms that models write (`\\dfrac`, `\\pm`, intervals, sets, matrices).

Before the grammar sees a string it is checked against size guards (length, nesting depth,
exponent and factorial size, numeric towers, `\\underbrace`), because sympy evaluates integer
powers and factorials eagerly: `10^{10^{10^{10}}}` must be refused, not computed. The worker pool
still bounds time and memory from outside; these guards make the common hostile inputs cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import sympy
from antlr4.error.ErrorListener import ErrorListener
from latex2sympy2_extended.latex2sympy2 import ConversionConfig, _Latex2Sympy
from sympy.core.sympify import SympifyError

from rlvr.verifiers.math.extract import braced_end
from rlvr.verifiers.math.fastparse import NotInSubset, TooLarge, fast_parse
from rlvr.verifiers.math.values import UnparsableAnswer

MAX_EXPR_CHARS = 400
MAX_NESTING = 24
MAX_EXPONENT = 1_000  # integer exponents above this are refused (x^{100000} cannot be expanded)
MAX_FACTORIAL = 500
MAX_DIGITS = 300

_INT = r"\d+"
_DEC = r"(?:\d+\.\d*|\.\d+)"
_NUM = re.compile(rf"^([-+]?)({_DEC}|{_INT})$")
_SCI = re.compile(rf"^([-+]?)({_DEC}|{_INT})\s*(?:[eE]|(?:\\times|\\cdot|\*|x)\s*10\s*\^)\s*"
                  r"\{?\s*([-+]?\d{1,3})\s*\}?$")
_FRAC = re.compile(r"^([-+]?)\\frac\s*\{\s*([-+]?)(\d+)\s*\}\s*\{\s*(\d+)\s*\}$")
_SLASH = re.compile(r"^([-+]?)(\d+)\s*/\s*(\d+)$")
_MIXED = re.compile(r"^([-+]?)(\d+)\s*(?:\\frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}|\s(\d+)/(\d+))$")
_REPEAT = re.compile(r"^([-+]?)(\d*)\.(\d*)\\overline\s*\{?\s*(\d+)\s*\}?$")
_SHORT_ARG = [
    (re.compile(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\s*(\{[^{}]*\})\s*([0-9a-zA-Z])"), r"\\frac\1{\2}"),
    (re.compile(r"\\frac\s*([0-9a-zA-Z])\s*\{"), r"\\frac{\1}{"),
    (re.compile(r"\\sqrt\s*([0-9a-zA-Z])"), r"\\sqrt{\1}"),
]
_DECIMALS = re.compile(r"\d*\.(\d+)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_CONFIG = ConversionConfig(interpret_as_mixed_fractions=True, interpret_simple_eq_as_assignment=False,
                           interpret_contains_as_eq=False, lowercase_symbols=False)


def decimals_written(text: str) -> int:
    """The most decimal places of any decimal literal in `text` (0 if none)."""
    return max((len(d) for d in _DECIMALS.findall(text)), default=0)


def _signed(sign: str, value: Fraction) -> Fraction:
    return -value if sign == "-" else value


ROUNDED_PLACES = 3  # `1.732` may be a rounding of sqrt(3); `2.5` and `0.25` are exact values
ROUNDED_MANTISSA_PLACES = 2  # `6.02 \\times 10^{23}` (3 significant digits) may be a rounding


@dataclass(frozen=True)
class Number:
    """A plain number: its exact value, whether a decimal was written, the decimal place of its
    last written digit (`2.50`: 2, `6.02e23`: -21) and whether it may be a rounding."""

    value: sympy.Rational
    approx: bool = False
    decimals: int = 0
    rounded: bool = False


def _decimal(sign: str, digits: str) -> Number:
    places = decimals_written(digits)
    return Number(sympy.Rational(_signed(sign, Fraction(digits))), "." in digits, places,
                  places >= ROUNDED_PLACES)


def parse_number(text: str) -> Number | None:
    """The `Number` a plain number spells (`42`, `-3.5`, `2e5`, `\\frac{3}{4}`, ...), else None."""
    s = text.strip()
    if m := _NUM.match(s):
        return _decimal(m.group(1), m.group(2))
    if m := _FRAC.match(s):
        sign = "-" if (m.group(1) == "-") != (m.group(2) == "-") else ""
        if int(m.group(4)) == 0:
            return None
        return Number(sympy.Rational(_signed(sign, Fraction(int(m.group(3)), int(m.group(4))))))
    if m := _SLASH.match(s):
        if int(m.group(3)) == 0:
            return None
        return Number(sympy.Rational(_signed(m.group(1), Fraction(int(m.group(2)), int(m.group(3))))))
    if m := _MIXED.match(s):
        num, den = (m.group(3), m.group(4)) if m.group(3) else (m.group(5), m.group(6))
        if int(den) == 0 or int(num) >= int(den):
            return None
        value = int(m.group(2)) + Fraction(int(num), int(den))
        return Number(sympy.Rational(_signed(m.group(1), value)))
    if m := _SCI.match(s):
        exponent, mantissa_places = int(m.group(3)), decimals_written(m.group(2))
        value = Fraction(m.group(2)) * Fraction(10) ** exponent
        # the last written digit of `6.02e23` is in the 10^21 place: precision is relative
        return Number(sympy.Rational(_signed(m.group(1), value)), "." in m.group(2),
                      mantissa_places - exponent, mantissa_places >= ROUNDED_MANTISSA_PLACES)
    if m := _REPEAT.match(s):
        whole, fixed, rep = m.group(2) or "0", m.group(3), m.group(4)
        value = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed))
        value += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
        return Number(sympy.Rational(_signed(m.group(1), value)))
    return None


def _exponents(text: str):
    """Yield the text of every exponent (`^{...}` or `^x`) in `text`."""
    for m in re.finditer(r"\^\s*", text):
        rest = m.end()
        if rest < len(text) and text[rest] == "{":
            end = braced_end(text, rest)
            yield text[rest + 1:(end - 1) if end else len(text)]
        else:
            token = re.match(r"\d+|\\?[A-Za-z]+|.", text[rest:])
            yield token.group(0) if token else ""


def check_size(text: str) -> None:
    """Raise `UnparsableAnswer` for inputs whose parsing or evaluation could blow up."""
    if len(text) > MAX_EXPR_CHARS:
        raise UnparsableAnswer(f"expression longer than {MAX_EXPR_CHARS} characters")
    depth = deepest = 0
    for ch in text:
        depth += ch in "{(["
        depth -= ch in "})]"
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise UnparsableAnswer(f"nested deeper than {MAX_NESTING}")
    plain = text.replace("\\{", "").replace("\\}", "")
    if plain.count("{") != plain.count("}") or depth != 0:  # the grammar would fail, slowly
        raise UnparsableAnswer("unbalanced brackets")
    if re.search(r"\\(?:underbrace|overbrace|underset|overset|stackrel)", text):
        raise UnparsableAnswer("braces above/below an expression")
    if re.search(rf"\d{{{MAX_DIGITS + 1},}}", text):
        raise UnparsableAnswer(f"a number with more than {MAX_DIGITS} digits")
    for exponent in _exponents(text):
        if "^" in exponent and not re.search(r"[a-zA-Z]", exponent.replace("\\frac", "")):
            raise UnparsableAnswer("a numeric tower of exponents")
        if any("^" in inner for inner in _exponents(exponent)):
            raise UnparsableAnswer("a tower of three or more exponents")
        if any(int(n) > MAX_EXPONENT for n in re.findall(r"\d{1,400}", exponent)):
            raise UnparsableAnswer(f"an exponent above {MAX_EXPONENT}")
    for n in re.findall(r"(\d+)\s*!", text) + re.findall(r"\\binom\s*\{\s*(\d+)", text):
        if int(n) > MAX_FACTORIAL:
            raise UnparsableAnswer(f"a factorial or binomial above {MAX_FACTORIAL}")


class _SyntaxErrorListener(ErrorListener):
    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802 (ANTLR)
        raise UnparsableAnswer(f"LaTeX syntax error at column {column}: {msg}")


class _Converter(_Latex2Sympy):
    """The grammar's converter with syntax errors raised as `UnparsableAnswer`, and numbers read
    without `sympy.Number(str)` (which would hand the digits to `sympify`, i.e. to `eval`)."""

    def parse_number(self, text):
        digits = text.replace(",", "")
        if not _PLAIN_NUMBER.fullmatch(digits):
            raise UnparsableAnswer(f"not a number: {text[:40]!r}")
        return sympy.Rational(digits)  # exact, through fractions.Fraction

    def create_parser(self, latex_str):
        parser = super().create_parser(latex_str)
        parser.removeErrorListeners()
        parser.addErrorListener(_SyntaxErrorListener())
        lexer = parser.getTokenStream().tokenSource
        lexer.removeErrorListeners()
        lexer.addErrorListener(_SyntaxErrorListener())
        return parser


_PARSE_ERRORS = (UnparsableAnswer, ValueError, TypeError, AttributeError, IndexError, KeyError,
                 NotImplementedError, ArithmeticError, SympifyError, RecursionError)


_I = sympy.Symbol("i")


def _exact(expr: sympy.Basic) -> sympy.Basic:
    """Every float in `expr` as the exact rational its digits spell, and `i` as the imaginary unit."""
    replace = {f: sympy.Rational(str(f)) for f in expr.atoms(sympy.Float)}
    if _I in expr.free_symbols:
        replace[_I] = sympy.I
    return expr.xreplace(replace) if replace else expr


def parse_expression(text: str) -> sympy.Basic:
    """A sympy expression for one LaTeX/plain expression, or `UnparsableAnswer`."""
    check_size(text)
    s = text
    for pattern, repl in _SHORT_ARG:
        s = pattern.sub(repl, s)
    s = s.replace("**", "^")
    if "," in s:  # lists are split before this point; a comma here would reach the grammar's
        raise UnparsableAnswer("a comma inside an expression")  # number-with-commas path
    try:
        return _exact(fast_parse(s))
    except NotInSubset:
        pass
    except TooLarge as exc:
        raise UnparsableAnswer(str(exc)) from None
    except (ArithmeticError, ValueError, TypeError) as exc:  # 1/0, 0^{-1}: no value
        raise UnparsableAnswer(f"cannot evaluate {text[:80]!r}: {type(exc).__name__}") from None
    try:
        expr = _Converter(config=_CONFIG).parse(s)
    except _PARSE_ERRORS as exc:
        raise UnparsableAnswer(f"cannot parse {text[:80]!r}: {type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 - the grammar's converter raises plain Exception
        # for constructs it does not support; model text must end as "unparsable", never as an
        # infrastructure error. Only this third-party call is inside the try.
        raise UnparsableAnswer(f"cannot parse {text[:80]!r}: {exc!s:.80}") from None
    if not isinstance(expr, (sympy.Expr, sympy.core.relational.Relational)):
        raise UnparsableAnswer(f"{text[:80]!r} is not an expression")
    try:
        return _exact(expr)
    except (TypeError, ValueError) as exc:  # `i \le y` once i is the imaginary unit
        raise UnparsableAnswer(f"{text[:80]!r}: {exc}") from None
