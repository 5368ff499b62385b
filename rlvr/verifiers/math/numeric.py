"""Compare sympy expressions by value: exactly, at 30 digits, or at random points.

Closed expressions (`\\sqrt{2}/2` vs `1/\\sqrt{2}`) compare exactly, else by a 30-digit
`evalf`. Expressions with variables compare by structure, then by their values at random points,
positive and negative, computed by walking the expression tree in double precision (no
`lambdify`, which generates and `exec`s code). Only the node types the walker knows are entered
(sums, products and the elementary functions); anything else is left to sympy's `evalf` at the
point, so a variable bound inside an integral or a limit is never mistaken for a free one. The
variables that bound a sum or a product (`n` in `\\sum_{k=1}^{n}`) are probed at positive integers.

This module knows nothing of answers, units or decimals as written; `equivalence` does.
"""

from __future__ import annotations

import cmath
import random
from dataclasses import dataclass

import sympy
from sympy.core.sympify import SympifyError
from sympy.polys.polyerrors import BasePolynomialError

# What sympy raises when it refuses an operation on what the model wrote (not a bug of ours).
COMPUTE_ERRORS = (TypeError, ValueError, ArithmeticError, NotImplementedError, AttributeError,
                  IndexError, SympifyError, BasePolynomialError)
PROBE_DIGITS = 30
EXACT_REL_TOL = 1e-20  # two closed exact values agreeing to 20 digits (of 30 computed) are equal
PROBE_REL_TOL = 1e-12  # expressions with variables, probed in double precision


@dataclass(frozen=True)
class Tolerance:
    rel_tol: float = 1e-6
    probe_points: int = 6
    seed: int = 1234


# Calculus left unevaluated in an answer. sympy's own evaluation of these (symbolic integration,
# limits, infinite series) can run for minutes on a few characters: only the tree walker below
# evaluates them, which covers sums and products with integer bounds and nothing else.
UNEVALUATED = (sympy.Integral, sympy.Limit, sympy.Derivative, sympy.Sum, sympy.Product)


def numeric_value(expr: sympy.Basic) -> complex | None:
    """A high-precision value of a closed expression, or None if it has none (nan, zoo)."""
    if expr.has(*UNEVALUATED):
        return _probe_value(expr, {})
    try:
        value = sympy.N(expr, PROBE_DIGITS)
    except COMPUTE_ERRORS + (RecursionError,):
        return None
    if not value.is_number or value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return None
    try:
        result = complex(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return result if cmath.isfinite(result) else None  # beyond float range: no value to compare


def _close(a: complex, b: complex, rel_tol: float) -> bool:
    scale = max(abs(a), abs(b), 1e-300)
    return abs(a - b) <= rel_tol * scale or abs(a - b) <= rel_tol * 1e-3


def closed_equal(a: sympy.Basic, b: sympy.Basic, approx: bool, tol: Tolerance) -> bool:
    """Equality of two expressions without free symbols."""
    if a == b:
        return True
    a, b = _evaluated(a), _evaluated(b)
    if a == b:
        return True
    if a.is_Rational and b.is_Rational and not approx:
        return False
    if a.is_infinite or b.is_infinite:
        return False
    va, vb = numeric_value(a), numeric_value(b)
    if va is None or vb is None:
        return False
    return _close(va, vb, tol.rel_tol if approx else EXACT_REL_TOL)


def _evaluated(expr: sympy.Basic) -> sympy.Basic:
    """`2^{100}`, `5!` as exact integers (their size is bounded by the parser's guards)."""
    if not expr.has(sympy.Pow, sympy.factorial, sympy.binomial) or expr.has(*UNEVALUATED):
        return expr
    try:
        return expr.doit()
    except COMPUTE_ERRORS + (RecursionError,):
        return expr


_FLOAT_FUNCTIONS = {sympy.sin: cmath.sin, sympy.cos: cmath.cos, sympy.tan: cmath.tan,
                    sympy.exp: cmath.exp, sympy.log: cmath.log, sympy.asin: cmath.asin,
                    sympy.acos: cmath.acos, sympy.atan: cmath.atan, sympy.sinh: cmath.sinh,
                    sympy.cosh: cmath.cosh, sympy.tanh: cmath.tanh, sympy.Abs: abs,
                    sympy.cot: lambda z: 1 / cmath.tan(z), sympy.sec: lambda z: 1 / cmath.cos(z),
                    sympy.csc: lambda z: 1 / cmath.sin(z)}


class _NoFloatValue(ValueError):
    """The expression holds a node that the double-precision evaluator does not know."""


MAX_SUM_TERMS = 2_000  # a sum or product over more terms is left to sympy (or has no value)


def _float_value(expr: sympy.Basic, point: dict) -> complex:
    """`expr` at `point` in double precision, walking the tree (no code is generated).

    Only the node types below are entered; anything else raises `_NoFloatValue` before its
    arguments are looked at, so a variable bound inside an unknown node (the `k` of an integral,
    a limit's `x`) is never looked up as if it were free. Sums and products with integer bounds
    are evaluated term by term, their index bound in `point` for the terms only.
    """
    if expr.is_Symbol:
        if expr not in point:
            raise _NoFloatValue(f"unbound symbol {expr}")
        return point[expr]
    if expr.is_Number or expr.is_NumberSymbol or expr is sympy.I:
        return complex(expr)
    if isinstance(expr, (sympy.Sum, sympy.Product)):
        return _float_series(expr, point)
    function = None
    if not (expr.is_Add or expr.is_Mul or expr.is_Pow):
        function = _FLOAT_FUNCTIONS.get(expr.func)
        if function is None or len(expr.args) != 1:
            raise _NoFloatValue(str(expr.func))
    args = [_float_value(a, point) for a in expr.args]
    if expr.is_Add:
        return sum(args)
    if expr.is_Mul:
        value = 1 + 0j
        for a in args:
            value *= a
        return value
    if expr.is_Pow:
        base, exponent = args
        if exponent.imag == 0 and exponent.real == int(exponent.real):
            return base ** int(exponent.real)
        return base ** exponent
    return complex(function(args[0]))


def _float_series(expr: sympy.Basic, point: dict) -> complex:
    """A `Sum`/`Product` with one index whose bounds are integers at `point`, term by term."""
    if len(expr.limits) != 1 or len(expr.limits[0]) != 3:
        raise _NoFloatValue("a sum or product over several indices")
    index, lo, hi = expr.limits[0]
    bounds = [_float_value(b, point) for b in (lo, hi)]
    if any(not cmath.isfinite(b) or b.imag or b.real != round(b.real) for b in bounds):
        raise _NoFloatValue("non-integer bounds")
    first, last = (int(round(b.real)) for b in bounds)
    if last - first + 1 > MAX_SUM_TERMS:
        raise _NoFloatValue("too many terms")
    is_sum = isinstance(expr, sympy.Sum)
    value = 0j if is_sum else 1 + 0j
    inner = dict(point)
    for k in range(first, last + 1):
        inner[index] = complex(k)
        term = _float_value(expr.function, inner)
        value = value + term if is_sum else value * term
    return value


def _probe_value(expr: sympy.Basic, point: dict) -> complex | None:
    try:
        value = _float_value(expr, {s: complex(v) for s, v in point.items()})
    except _NoFloatValue:
        if expr.has(*UNEVALUATED):
            return None
        try:
            return numeric_value(expr.xreplace(point))
        except COMPUTE_ERRORS:
            return None
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return None
    return value if cmath.isfinite(value) else None


def symbolic_equal(a: sympy.Basic, b: sympy.Basic, approx: bool, tol: Tolerance) -> bool:
    """Equality of expressions with variables, by probing at random points."""
    if a == b:
        return True
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        return closed_equal(a, b, approx, tol)
    if not (a.free_symbols <= b.free_symbols or b.free_symbols <= a.free_symbols):
        return False  # `x + 1` and `y + 1`; `x - x + 1` and `1` are left to probing
    rng = random.Random(tol.seed)
    if not _agree_at_points(a, b, symbols, rng, 1, approx, tol):
        return False
    if _agree_at_points(a, b, symbols, rng, -1, approx, tol):
        return True
    # They agree for positive values only: `log(xy)` vs `log x + log y` is accepted (identities
    # that hold on the natural domain), `|x|` vs `x` is not.
    return (a.has(sympy.log) or b.has(sympy.log) or any(
        p.exp.is_Rational and not p.exp.is_Integer for p in (a.atoms(sympy.Pow) | b.atoms(sympy.Pow))))


def _agree_at_points(a: sympy.Basic, b: sympy.Basic, symbols: list, rng: random.Random, sign: int,
                     approx: bool, tol: Tolerance) -> bool:
    """Whether `a` and `b` agree at random points whose coordinates have the given sign."""
    agreeing = 0
    counts = _counting_symbols(a) | _counting_symbols(b)
    for _ in range(tol.probe_points * 2):
        point = {s: sympy.Integer(rng.randint(1, 12)) if s in counts
                 else sympy.Rational(sign * rng.randint(31, 270), 100) for s in symbols}
        va, vb = _probe_value(a, point), _probe_value(b, point)
        if va is None or vb is None:
            continue
        if not _close(va, vb, tol.rel_tol if approx else PROBE_REL_TOL):
            return False
        agreeing += 1
        if agreeing >= tol.probe_points:
            return True
    return agreeing >= min(3, tol.probe_points) or sign < 0 and agreeing == 0


def _counting_symbols(expr: sympy.Basic) -> set:
    """Free symbols in the bounds of a sum or product (`n` in `\\sum_{k=1}^{n}`): they count
    terms, so they are probed at positive integers."""
    found: set = set()
    for node in expr.atoms(sympy.Sum, sympy.Product):
        for limit in node.limits:
            for bound in limit[1:]:
                found |= bound.free_symbols
    return found


def expressions_equal(a: sympy.Basic, b: sympy.Basic, approx: bool, tol: Tolerance) -> bool:
    if a.free_symbols or b.free_symbols:
        return symbolic_equal(a, b, approx, tol)
    return closed_equal(a, b, approx, tol)
