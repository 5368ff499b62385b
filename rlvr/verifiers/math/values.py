"""The values an answer parses into: plain frozen dataclasses around sympy expressions.

`Scalar` is one number or expression (with its unit, percent and degree marks and whether it was
written as a decimal), `Items` a set / tuple / list / union, `IntervalValue` an interval with
open or closed ends, `Relation` an equation or inequality, `MatrixValue` a matrix, `Clock` a time
of day (`9:30`, `3:45 pm`), `Choice` a multiple-choice letter and `Text` a word answer. They are
immutable so parsed references can be cached. Nothing here parses or compares; see `parse` and `equivalence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import sympy

from rlvr.verifiers.math.units import Unit


class UnparsableAnswer(ValueError):
    """Internal signal: an answer cannot be parsed (or is too large to parse safely).

    The verifier turns it into `Verdict(0, status="unparsable")`; it never leaves the package.
    """


@dataclass(frozen=True)
class Scalar:
    """One number or expression. `approx`: a decimal was written; `decimals`: the decimal place
    of its last written digit (`2.50`: 2; `6.02 \\times 10^{23}`: -21); `rounded`: written with
    enough digits to be a rounding of another value (`1.732`, `6.02 \\times 10^{23}`), unlike
    `2.5`, which is taken as exact."""

    expr: sympy.Basic
    approx: bool = False
    decimals: int = 0
    percent: bool = False
    degrees: bool = False
    unit: Unit | None = None
    rounded: bool = False


@dataclass(frozen=True)
class Items:
    """`kind` is `set`, `list` (bare commas: unordered), `tuple`, `pair` (`(a, b)`, `[a, b)`: a
    point or an interval, decided against the other answer) or `union` (of intervals/sets)."""

    kind: str
    items: tuple["Value", ...]
    brackets: str = ""  # opening and closing bracket, e.g. "(]"


@dataclass(frozen=True)
class IntervalValue:
    lo: Scalar
    hi: Scalar
    lo_closed: bool
    hi_closed: bool


@dataclass(frozen=True)
class Relation:
    """`lhs op rhs` with op one of `=`, `<`, `<=`, `>`, `>=`, `!=`, `in`."""

    op: str
    lhs: "Value"
    rhs: "Value"


@dataclass(frozen=True)
class MatrixValue:
    rows: tuple[tuple["Value", ...], ...]


@dataclass(frozen=True)
class Clock:
    """A time of day: the hours it may mean on a 24-hour clock (`1:00` may be 1 or 13; `1:00 pm`
    is 13), minutes and seconds."""

    hours: frozenset
    minutes: int
    seconds: int = 0


@dataclass(frozen=True)
class Choice:
    letter: str


@dataclass(frozen=True)
class Text:
    text: str


Value = Union[Scalar, Items, IntervalValue, Relation, MatrixValue, Clock, Choice, Text]
