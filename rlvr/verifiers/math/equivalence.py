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

import sympy
from sympy.core.function import AppliedUndef

from rlvr.verifiers.math.numeric import (COMPUTE_ERRORS, Tolerance, closed_equal, expressions_equal,
                                         numeric_value, symbolic_equal)

from rlvr.verifiers.math.values import (Choice, Clock, IntervalValue, Items, MatrixValue, Relation,
                                        Scalar, Text, Value)

__all__ = ["COMPUTE_ERRORS", "Tolerance", "equivalent", "scalars_equal", "intervals_equal"]

def scalars_equal(gold: Scalar, pred: Scalar, tol: Tolerance) -> bool:
    """Numbers and expressions, with units, percent and degree signs taken into account."""
    if (gold.unit is None) != (pred.unit is None) or gold.unit is None:
        g_scale, p_scale = sympy.Integer(1), sympy.Integer(1)
    elif gold.unit.dimension != pred.unit.dimension:
        return False
    else:
        g_scale, p_scale = sympy.Rational(gold.unit.factor), sympy.Rational(pred.unit.factor)
    candidates = [(g_scale, p_scale)]
    if gold.percent != pred.percent:
        candidates.append((g_scale / 100 if gold.percent else g_scale,
                           p_scale / 100 if pred.percent else p_scale))
    if gold.degrees != pred.degrees:  # the one in degrees, in radians
        radians = sympy.pi / 180
        candidates.append((g_scale * radians if gold.degrees else g_scale,
                           p_scale * radians if pred.degrees else p_scale))
    return any(_scaled_equal(gold, pred, gs, ps, tol) for gs, ps in candidates)


def _ulp(value: Scalar, scale: sympy.Basic) -> sympy.Basic:
    """The unit in the place of the last digit written (`2.50`: 0.01), times `scale`."""
    return sympy.Rational(1, 10) ** value.decimals * scale


def _scaled_equal(gold: Scalar, pred: Scalar, g_scale: sympy.Basic, p_scale: sympy.Basic,
                  tol: Tolerance) -> bool:
    """The precision rule. A decimal reference is read at the precision it is written with: a
    short one (`2.5`) is exact and accepts equal values only; one that may be a rounding
    (`1.732`, three places or more) accepts an exact value that rounds to it and a decimal
    that does and is written to at least two more places. An exact reference (`0`, `1/3`,
    `\\sqrt{2}`) accepts a decimal within `rel_tol` only when it has no exact decimal
    expansion at the places the prediction wrote: `0` never accepts `3e-8`, `5/2` never
    accepts `2.5000004`, `1/3` accepts `0.3333333`."""
    a, b = gold.expr * g_scale, pred.expr * p_scale
    approx = gold.approx or pred.approx
    if not approx or a.free_symbols or b.free_symbols:
        return expressions_equal(a, b, approx, tol)
    if closed_equal(a, b, False, tol):
        return True
    va, vb = numeric_value(a), numeric_value(b)
    if va is None or vb is None:
        return False
    if gold.approx:
        g_ulp = _ulp(gold, g_scale)
        if not gold.rounded or pred.approx and bool(_ulp(pred, p_scale) * 100 > g_ulp):
            return False
        return abs(vb - va) <= float(g_ulp) / 2 * (1 + 1e-9)
    places = a / _ulp(pred, p_scale)  # the exact reference in units of the prediction's last digit
    if places.is_Rational and places.is_Integer:
        return False  # the prediction could have been written exactly and was not
    return abs(vb - va) <= tol.rel_tol * max(abs(va), abs(vb))


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


_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}


def _linear(expr: sympy.Basic) -> tuple[sympy.Symbol, sympy.Basic, sympy.Basic] | None:
    """`(x, k, c)` when `expr` is `k*x + c` with one variable and real numbers k != 0 and c."""
    if len(expr.free_symbols) != 1 or expr.has(sympy.Abs):
        return None
    (symbol,) = expr.free_symbols
    try:
        poly = expr.as_poly(symbol)
    except COMPUTE_ERRORS:
        return None
    if poly is None or poly.degree() != 1:
        return None
    k, c = poly.all_coeffs()
    if not (k.is_number and c.is_number and k.is_extended_real and c.is_extended_real) or k == 0:
        return None
    return symbol, k, c


def _half_line(rel: Relation) -> IntervalValue | None:
    """`x > 3`, `3 < x`, `-x > -1`, `2x + 1 \\le 7`, `|x| < 2` as an interval of their variable."""
    lhs, rhs, op = rel.lhs, rel.rhs, rel.op
    if not isinstance(rhs, Scalar) or op not in ("<", "<=", ">", ">="):
        return None
    if not lhs.expr.free_symbols and rhs.expr.free_symbols:
        lhs, rhs, op = rhs, lhs, _FLIPPED[op]
    if rhs.expr.free_symbols:
        return None
    if isinstance(lhs.expr, sympy.Abs) and lhs.expr.args[0].is_Symbol and op[0] == "<":
        return IntervalValue(Scalar(-rhs.expr), rhs, op == "<=", op == "<=")  # |x| < c
    linear = _linear(lhs.expr - rhs.expr)
    if linear is None:
        return None
    _, k, c = linear
    bound = rhs if lhs.expr.is_Symbol else Scalar(-c / k)  # keeps how a bare `x > 2.5` wrote it
    if k.is_negative:
        op = _FLIPPED[op]
    if op[0] == ">":
        return IntervalValue(bound, Scalar(sympy.oo), op == ">=", False)
    return IntervalValue(Scalar(-sympy.oo), bound, False, op == "<=")


def intervals_equal(g: IntervalValue, p: IntervalValue, tol: Tolerance) -> bool:
    return (g.lo_closed == p.lo_closed and g.hi_closed == p.hi_closed
            and scalars_equal(g.lo, p.lo, tol) and scalars_equal(g.hi, p.hi, tol))


def _solution_value(value: Value) -> Value:
    """`x = 3` / `3 = x` -> `3`, `x \\in S` -> `S`, and `6/2 = 3` (a worked value) -> `3`.

    The side given a name is a label: a variable, `f(x)`, `|AB|`, `AB`, a ratio `V_1:V_2` or a
    tuple of labels `(p, q)`. A number is never a label: `7 = 11a + c` is an equation."""
    if not isinstance(value, Relation) or value.op not in ("=", "in"):
        return value
    lhs, rhs = value.lhs, value.rhs
    if _is_label(lhs):
        return rhs
    if value.op == "=" and _is_label(rhs):
        return lhs
    if value.op == "=" and _is_closed(lhs) and _is_closed(rhs):
        return rhs
    return value


def _is_closed(value: Value) -> bool:
    return isinstance(value, Scalar) and not value.expr.free_symbols


def _is_membership(value: Value) -> bool:
    return isinstance(value, Relation) and value.op == "in" and _solution_value(value) is not value


def _is_label(value: Value) -> bool:
    """A name an answer is given for: `x`, `f(x)`, `AB`, `|AB|`, `V_1:V_2`, `(p, q)`."""
    if isinstance(value, Items):
        return value.kind in ("tuple", "pair") and all(_is_label(v) for v in value.items)
    return (isinstance(value, Scalar) and value.unit is None and not value.percent
            and _is_name(value.expr))


def _is_name(expr: sympy.Basic) -> bool:
    if expr.is_Symbol:
        return True
    if isinstance(expr, AppliedUndef):
        return all(a.is_Symbol for a in expr.args)
    if isinstance(expr, sympy.Abs):
        return _is_name(expr.args[0])
    if expr.is_Mul:
        return all(_is_name(a) for a in expr.args)
    if expr.is_Pow:  # the denominator of a ratio
        return expr.exp == -1 and _is_name(expr.base)
    return False


def _labelled_values(value: Value) -> tuple | None:
    """`p = 3, q = 2` -> `(3, 2)`: a list whose items all give a labelled value."""
    if not isinstance(value, Items) or value.kind != "list":
        return None
    if not all(isinstance(v, Relation) and v.op == "=" and _is_label(v.lhs) for v in value.items):
        return None
    return tuple(v.rhs for v in value.items)


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
    flipped = Relation(_FLIPPED.get(p.op, p.op), p.rhs, p.lhs)
    return any(q.op == g.op and equivalent(g.lhs, q.lhs, tol) and equivalent(g.rhs, q.rhs, tol)
               for q in (p, flipped))


def _var(rel: Relation) -> sympy.Basic | None:
    """The variable a relation constrains: `x` in `x > 3`, `3 < x`, `|x| \\le 3`, `-x > -1`."""
    for side in (rel.lhs, rel.rhs):
        if isinstance(side, Scalar):
            expr = side.expr.args[0] if isinstance(side.expr, sympy.Abs) else side.expr
            if expr.is_Symbol:
                return expr
    if isinstance(rel.lhs, Scalar) and isinstance(rel.rhs, Scalar):
        linear = _linear(rel.lhs.expr - rel.rhs.expr)
        return linear[0] if linear else None
    return None


def _items_equal(g: Items, p: Value, tol: Tolerance) -> bool:
    for ordered, labelled in ((g, p), (p, g)):  # `(3, 2)` and `p = 3, q = 2`
        values = _labelled_values(labelled)
        if values is not None and isinstance(ordered, Items) and ordered.kind in ("tuple", "pair"):
            return _ordered(ordered.items, values, tol) if ordered is g else \
                _ordered(values, ordered.items, tol)
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
    if isinstance(g, Clock) or isinstance(p, Clock):  # `12:00` is a time, not 12/0
        return (isinstance(g, Clock) and isinstance(p, Clock) and bool(g.hours & p.hours)
                and (g.minutes, g.seconds) == (p.minutes, p.seconds))
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
