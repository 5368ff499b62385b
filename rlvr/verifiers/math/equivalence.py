"""Decide whether a predicted `Value` means the same as the reference `Value`.

The rules a careful grader applies, and no more:
- exact numbers compare exactly; a tolerance (`rel_tol`) applies only when a decimal was written.
  A reference written as a rounded decimal (`0.33`) accepts an exact value that rounds to it
  (`1/3`) and a decimal given to at least two more places; `0.34` stays wrong;
- closed expressions (`\\sqrt{2}/2` vs `1/\\sqrt{2}`): exact equality, else 30-digit `evalf`;
- expressions with variables: structural equality, then values at random points, positive and
  negative, computed by walking the tree in double precision (no `lambdify`, which generates and
  `exec`s code); an identity that holds for positive values only counts only when a logarithm
  or a fractional power explains the difference (`\\log(xy)`, not `|x|` vs `x`);
- sets and bare lists are unordered, tuples ordered; `(a, b)` is a point or an open interval and
  matches either reading with the same brackets; intervals compare both ends and their closure;
- `x = 3` matches `3` (and `\\{3\\}`); `x > 3` matches `(3, \\infty)`; equations match when one is
  a nonzero multiple of the other; matrices compare element by element;
- `50\\%` matches `50` and `0.5`; `30^\\circ` matches `30` and `\\pi/6`; units convert within a
  dimension (`3 hours` = `180 minutes`) and different dimensions or units never match.

It does not simplify symbolically beyond what probing decides, and has no notion of the question.
"""

from __future__ import annotations

import cmath
import random
from dataclasses import dataclass

import sympy
from sympy.core.function import AppliedUndef

from rlvr.verifiers.math.values import (Choice, IntervalValue, Items, MatrixValue, Relation, Scalar,
                                        Text, Value)

PROBE_DIGITS = 30
EXACT_REL_TOL = 1e-20  # two closed exact values agreeing to 20 digits (of 30 computed) are equal
PROBE_REL_TOL = 1e-12  # expressions with variables, probed in double precision
MIN_ROUNDED_DECIMALS = 3  # `3.14` does not accept pi, `1.732` accepts sqrt(3)


@dataclass(frozen=True)
class Tolerance:
    rel_tol: float = 1e-6
    probe_points: int = 6
    seed: int = 1234


def _numeric(expr: sympy.Basic) -> complex | None:
    """A high-precision value of a closed expression, or None if it has none (nan, zoo)."""
    try:
        value = sympy.N(expr, PROBE_DIGITS)
    except (TypeError, ValueError, ArithmeticError, RecursionError, AttributeError):
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


def _rounds_to(gold: Scalar, pred_value: complex, pred: Scalar) -> bool:
    """A rounded decimal reference accepts a more precise prediction that rounds to it."""
    if not gold.approx or gold.decimals < MIN_ROUNDED_DECIMALS or abs(pred_value.imag) > 0:
        return False
    if pred.approx and pred.decimals < gold.decimals + 2:
        return False
    g = _numeric(gold.expr)
    if g is None:
        return False
    half_ulp = 0.5 * 10 ** (-gold.decimals)
    return abs(pred_value.real - g.real) <= half_ulp * (1 + 1e-9)


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
    va, vb = _numeric(a), _numeric(b)
    if va is None or vb is None:
        return False
    return _close(va, vb, tol.rel_tol if approx else EXACT_REL_TOL)


def _evaluated(expr: sympy.Basic) -> sympy.Basic:
    """`2^{100}`, `5!` as exact integers (their size is bounded by the parser's guards)."""
    try:
        return expr.doit() if expr.has(sympy.Pow, sympy.factorial, sympy.binomial) else expr
    except (TypeError, ValueError, ArithmeticError, RecursionError, AttributeError):
        return expr


_FLOAT_FUNCTIONS = {sympy.sin: cmath.sin, sympy.cos: cmath.cos, sympy.tan: cmath.tan,
                    sympy.exp: cmath.exp, sympy.log: cmath.log, sympy.asin: cmath.asin,
                    sympy.acos: cmath.acos, sympy.atan: cmath.atan, sympy.sinh: cmath.sinh,
                    sympy.cosh: cmath.cosh, sympy.tanh: cmath.tanh, sympy.Abs: abs,
                    sympy.cot: lambda z: 1 / cmath.tan(z), sympy.sec: lambda z: 1 / cmath.cos(z),
                    sympy.csc: lambda z: 1 / cmath.sin(z)}


class _NoFloatValue(ValueError):
    """The expression holds a node that the double-precision evaluator does not know."""


def _float_value(expr: sympy.Basic, point: dict) -> complex:
    """`expr` at `point` in double precision, walking the tree (no code is generated)."""
    if expr.is_Symbol:
        return point[expr]
    if expr.is_Number or expr.is_NumberSymbol or expr is sympy.I:
        return complex(expr)
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
    function = _FLOAT_FUNCTIONS.get(expr.func)
    if function is None or len(args) != 1:
        raise _NoFloatValue(str(expr.func))
    return complex(function(args[0]))


def _probe_value(expr: sympy.Basic, point: dict) -> complex | None:
    try:
        value = _float_value(expr, {s: complex(v) for s, v in point.items()})
    except _NoFloatValue:
        try:
            return _numeric(expr.xreplace(point))
        except (TypeError, ValueError, ArithmeticError):  # `\\int` over a number, ...
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
    for _ in range(tol.probe_points * 2):
        point = {s: sympy.Rational(sign * rng.randint(31, 270), 100) for s in symbols}
        va, vb = _probe_value(a, point), _probe_value(b, point)
        if va is None or vb is None:
            continue
        if not _close(va, vb, tol.rel_tol if approx else PROBE_REL_TOL):
            return False
        agreeing += 1
        if agreeing >= tol.probe_points:
            return True
    return agreeing >= min(3, tol.probe_points) or sign < 0 and agreeing == 0


def expressions_equal(a: sympy.Basic, b: sympy.Basic, approx: bool, tol: Tolerance) -> bool:
    if a.free_symbols or b.free_symbols:
        return symbolic_equal(a, b, approx, tol)
    return closed_equal(a, b, approx, tol)


def _scaled(s: Scalar) -> sympy.Basic:
    return s.expr * sympy.Rational(s.unit.factor) if s.unit is not None else s.expr


def scalars_equal(gold: Scalar, pred: Scalar, tol: Tolerance) -> bool:
    """Numbers and expressions, with units, percent and degree signs taken into account."""
    if gold.unit is not None and pred.unit is not None:
        if gold.unit.dimension != pred.unit.dimension:
            return False
        g, p = _scaled(gold), _scaled(pred)
    else:
        g, p = gold.expr, pred.expr
    approx = gold.approx or pred.approx
    candidates = [(g, p)]
    if gold.percent != pred.percent:
        candidates.append((g / 100 if gold.percent else g, p / 100 if pred.percent else p))
    if gold.degrees != pred.degrees:  # the one in degrees, in radians
        radians = sympy.pi / 180
        candidates.append((g * radians if gold.degrees else g, p * radians if pred.degrees else p))
    for a, b in candidates:
        if expressions_equal(a, b, approx, tol):
            return True
        if gold.approx and not (a.free_symbols or b.free_symbols):
            vb = _numeric(b)
            if vb is not None and _rounds_to(Scalar(a, True, gold.decimals), vb, pred):
                return True
    return False


def _unordered(gold: tuple, pred: tuple, tol: Tolerance) -> bool:
    if len(gold) != len(pred):
        return False
    left = list(pred)
    for g in gold:
        match = next((i for i, p in enumerate(left) if equivalent(g, p, tol)), None)
        if match is None:
            return False
        left.pop(match)
    return True


def _distinct(items: tuple, tol: Tolerance) -> tuple:
    kept: list = []
    for item in items:
        if not any(equivalent(k, item, tol) for k in kept):
            kept.append(item)
    return tuple(kept)


def _ordered(gold: tuple, pred: tuple, tol: Tolerance) -> bool:
    return len(gold) == len(pred) and all(equivalent(g, p, tol) for g, p in zip(gold, pred))


def _as_interval(value: Value) -> IntervalValue | None:
    """`(a, b]` read as an interval, or `x > 3` / `1 < x < 2` turned into one."""
    if isinstance(value, IntervalValue):
        return value
    if isinstance(value, Items) and value.kind == "pair" and len(value.items) == 2:
        lo, hi = value.items
        if isinstance(lo, Scalar) and isinstance(hi, Scalar):
            return IntervalValue(lo, hi, value.brackets[0] == "[", value.brackets[-1] == "]")
    if isinstance(value, Relation) and isinstance(value.lhs, Scalar):
        if value.op == "chain":
            return value.rhs if isinstance(value.rhs, IntervalValue) else None
        return _half_line(value)
    return None


def _half_line(rel: Relation) -> IntervalValue | None:
    lhs, rhs, op = rel.lhs, rel.rhs, rel.op
    if not isinstance(rhs, Scalar) or op not in ("<", "<=", ">", ">="):
        return None
    if not lhs.expr.is_Symbol and rhs.expr.is_Symbol:
        lhs, rhs, op = rhs, lhs, {"<": ">", ">": "<", "<=": ">=", ">=": "<="}[op]
    if rhs.expr.free_symbols:
        return None
    if isinstance(lhs.expr, sympy.Abs) and lhs.expr.args[0].is_Symbol and op[0] == "<":
        return IntervalValue(Scalar(-rhs.expr), rhs, op == "<=", op == "<=")  # |x| < c
    if not lhs.expr.is_Symbol:
        return None
    inf = Scalar(sympy.oo)
    if op[0] == ">":
        return IntervalValue(rhs, inf, op == ">=", False)
    return IntervalValue(Scalar(-sympy.oo), rhs, False, op == "<=")


def intervals_equal(g: IntervalValue, p: IntervalValue, tol: Tolerance) -> bool:
    return (g.lo_closed == p.lo_closed and g.hi_closed == p.hi_closed
            and scalars_equal(g.lo, p.lo, tol) and scalars_equal(g.hi, p.hi, tol))


def _solution_value(value: Value) -> Value:
    """`x = 3` / `3 = x` -> `3`, `x \\in S` -> `S`, and `6/2 = 3` (a worked value) -> `3`."""
    if not isinstance(value, Relation) or value.op not in ("=", "in"):
        return value
    lhs, rhs = value.lhs, value.rhs
    if isinstance(lhs, Scalar) and _is_variable(lhs.expr):
        return rhs
    if value.op == "=" and isinstance(rhs, Scalar) and _is_variable(rhs.expr):
        return lhs
    if value.op == "=" and isinstance(lhs, Scalar) and not lhs.expr.free_symbols:
        return rhs
    return value


def _is_membership(value: Value) -> bool:
    return isinstance(value, Relation) and value.op == "in" and _solution_value(value) is not value


def _is_variable(expr: sympy.Basic) -> bool:
    """`x`, or `f(x)` / `g(x, y)`: a name the answer is given for."""
    return expr.is_Symbol or isinstance(expr, AppliedUndef) and all(a.is_Symbol for a in expr.args)


def _flat(value: Value) -> tuple | None:
    if isinstance(value, MatrixValue) and (len(value.rows) == 1 or len(value.rows[0]) == 1):
        return tuple(v for row in value.rows for v in row)
    if isinstance(value, Items) and value.kind in ("tuple", "pair"):
        return value.items
    return None


def _equations_equal(g: Relation, p: Relation, tol: Tolerance) -> bool:
    """`lhs = rhs` forms: the same lone variable on the left, or one a nonzero multiple of the other."""
    if not all(isinstance(v, Scalar) for v in (g.lhs, g.rhs, p.lhs, p.rhs)):
        return False
    if g.lhs.expr.is_Symbol and p.lhs.expr.is_Symbol:
        return g.lhs.expr == p.lhs.expr and equivalent(g.rhs, p.rhs, tol)
    dg, dp = g.lhs.expr - g.rhs.expr, p.lhs.expr - p.rhs.expr
    if not (dg.free_symbols and dp.free_symbols) or dg.free_symbols != dp.free_symbols:
        return False
    ratio = sympy.cancel(dg / dp)
    if ratio.free_symbols:
        return symbolic_equal(dg, dp, False, tol) or symbolic_equal(dg, -dp, False, tol)
    return ratio != 0 and ratio.is_finite is not False


def _relations_equal(g: Relation, p: Relation, tol: Tolerance) -> bool:
    if g.op == "=" and p.op == "=":
        return _equations_equal(g, p, tol)
    gi, pi = _as_interval(g), _as_interval(p)
    if gi is not None and pi is not None:
        same_var = g.lhs == p.lhs or not (isinstance(g.lhs, Scalar) and isinstance(p.lhs, Scalar))
        return intervals_equal(gi, pi, tol) and (same_var or _var(g) == _var(p))
    flipped = Relation({"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(p.op, p.op), p.rhs, p.lhs)
    return any(q.op == g.op and equivalent(g.lhs, q.lhs, tol) and equivalent(g.rhs, q.rhs, tol)
               for q in (p, flipped))


def _var(rel: Relation) -> sympy.Basic | None:
    """The variable a relation constrains: `x` in `x > 3`, `3 < x`, `|x| \\le 3`."""
    for side in (rel.lhs, rel.rhs):
        if isinstance(side, Scalar):
            expr = side.expr.args[0] if isinstance(side.expr, sympy.Abs) else side.expr
            if expr.is_Symbol:
                return expr
    return None


def _items_equal(g: Items, p: Value, tol: Tolerance) -> bool:
    if not isinstance(p, Items):
        if len(g.items) == 1 and g.kind in ("set", "list"):
            return equivalent(g.items[0], p, tol)  # {3} vs 3
        gi = _as_interval(g)
        pi = _as_interval(p)
        if gi is not None and pi is not None:
            return intervals_equal(gi, pi, tol)
        flat = _flat(p)
        return flat is not None and g.kind in ("tuple", "pair") and _ordered(g.items, flat, tol)
    if g.kind == "pair" and p.kind == "pair":
        return g.brackets == p.brackets and _ordered(g.items, p.items, tol)
    if g.kind in ("tuple", "pair") or p.kind in ("tuple", "pair"):
        same = g.kind == p.kind or {g.kind, p.kind} == {"tuple", "pair"}
        return same and g.brackets == p.brackets and _ordered(g.items, p.items, tol)
    if g.kind == "union" or p.kind == "union":  # a union, or a list of intervals/inequalities
        return "set" not in (g.kind, p.kind) and _unordered(g.items, p.items, tol)
    if g.kind == "set" and p.kind == "set":  # {1, 2, 2} is {1, 2}
        return _unordered(_distinct(g.items, tol), _distinct(p.items, tol), tol)
    return _unordered(g.items, p.items, tol)  # bare lists of solutions: a repeated root counts


def _matrices_equal(g: Value, p: Value, tol: Tolerance) -> bool:
    if isinstance(g, MatrixValue) and isinstance(p, MatrixValue):
        return (len(g.rows) == len(p.rows) and len(g.rows[0]) == len(p.rows[0])
                and all(_ordered(a, b, tol) for a, b in zip(g.rows, p.rows)))
    fg, fp = _flat(g), _flat(p)
    return fg is not None and fp is not None and _ordered(fg, fp, tol)


def equivalent(gold: Value, pred: Value, tol: Tolerance) -> bool:
    """True when `pred` is a correct answer to a question whose answer is `gold`."""
    if gold == pred:
        return True
    if isinstance(gold, (Choice, Text)) or isinstance(pred, (Choice, Text)):
        return False  # equal ones were caught above; letters and words match only themselves
    if _is_membership(gold) or _is_membership(pred):  # `x \\in [1, 2]` is the set it names
        return equivalent(_solution_value(gold), _solution_value(pred), tol)
    if isinstance(gold, Relation) and isinstance(pred, Relation):
        return _relations_equal(gold, pred, tol)
    g, p = _solution_value(gold), _solution_value(pred)
    if g is not gold or p is not pred:
        if isinstance(g, Relation) or isinstance(p, Relation):
            gi, pi = _as_interval(g), _as_interval(p)
            return gi is not None and pi is not None and intervals_equal(gi, pi, tol)
        return equivalent(g, p, tol)
    if isinstance(g, Relation) or isinstance(p, Relation):
        gi, pi = _as_interval(g), _as_interval(p)
        return gi is not None and pi is not None and intervals_equal(gi, pi, tol)
    if isinstance(g, MatrixValue) or isinstance(p, MatrixValue):
        return _matrices_equal(g, p, tol)
    if isinstance(g, Items):
        return _items_equal(g, p, tol)
    if isinstance(p, Items):
        return len(p.items) == 1 and p.kind in ("set", "list") and equivalent(g, p.items[0], tol)
    if isinstance(g, IntervalValue) or isinstance(p, IntervalValue):
        both = isinstance(g, IntervalValue) and isinstance(p, IntervalValue)
        return both and intervals_equal(g, p, tol)
    if isinstance(g, Scalar) and isinstance(p, Scalar):
        return scalars_equal(g, p, tol)
    return False
