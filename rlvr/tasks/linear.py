"""Linear equations in one unknown with an integer solution.

Level 1: `a*x + b = c` (e.g. `7x - 12 = 23`). Level 2: `a*x + b = c*x + d` with a != c. The solution
x is drawn from -`max_solution`..`max_solution`, the coefficients from small ranges, and the right
side is computed from them, so every equation has exactly one integer solution. Equations are
distinct by their coefficients; the first `test_size` drawn with the seed are "test", the next
`train_size` "train" (disjoint). The answer is the integer x, checked by the `integer` verifier by
default (`verifier: math` works too). The default answer format is `boxed`.

This task does not generate systems of equations, fractions or non-integer solutions.
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from rlvr.errors import ConfigError
from rlvr.tasks.base import check_split
from rlvr.tasks.prompting import PromptStyle
from rlvr.tasks.splits import check_sizes, cut, draw_distinct
from rlvr.types import Problem

Equation = tuple[int, int, int, int, int]  # (level, a, b, c, d); level 1 has c = 0, d = right side


def _side(coef: int, const: int, var: str) -> str:
    """`3x - 4`, `-x + 2`, `x`, `5`: a readable linear expression."""
    terms = []
    if coef:
        terms.append(f"{'-' if coef < 0 else ''}{abs(coef) if abs(coef) != 1 else ''}{var}")
    if const or not terms:
        sign = " - " if const < 0 and terms else " + " if terms else ("-" if const < 0 else "")
        terms.append(f"{sign}{abs(const)}")
    return "".join(terms)


class LinearEquationTask:
    """One-unknown linear equations (`level` 1 or 2, or a list of both)."""

    name = "linear"

    def __init__(self, level: int | list[int] = 1, max_solution: int = 20, max_coef: int = 12,
                 test_size: int = 100, train_size: int = 10_000, seed: int = 0, variable: str = "x",
                 verifier: str = "integer", prompt: Mapping[str, Any] | None = None):
        levels = [level] if isinstance(level, int) else list(level)
        if not levels or any(x not in (1, 2) for x in levels):
            raise ConfigError(f"linear: level must be 1, 2 or a list of them, not {level!r}")
        if max_solution < 1 or max_coef < 2:
            raise ConfigError("linear: max_solution must be >= 1 and max_coef >= 2")
        check_sizes(self.name, test_size, train_size)
        self.variable, self.verifier = variable, verifier
        self.style = PromptStyle.from_options(prompt, answer_format="boxed", task=self.name)
        coefs = [c for c in range(-max_coef, max_coef + 1) if c not in (0,)]

        def draw(rng: random.Random) -> tuple[Equation, int]:
            lvl, x = rng.choice(levels), rng.randint(-max_solution, max_solution)
            a, b = rng.choice(coefs), rng.randint(-50, 50)
            if lvl == 1:
                return (1, a, b, 0, a * x + b), x
            c = rng.choice([k for k in coefs if k != a])
            d = (a - c) * x + b  # a x + b = c x + d  <=>  (a - c) x = d - b
            return (2, a, b, c, d), x

        drawn = draw_distinct(self.name, draw, lambda e: e[0], test_size + train_size, seed)
        self._splits = {k: [self._problem(*e) for e in v] for k, v in cut(drawn, test_size).items()}

    def _problem(self, eq: Equation, solution: int) -> Problem:
        level, a, b, c, d = eq
        v = self.variable
        left, right = _side(a, b, v), (_side(c, d, v) if level == 2 else str(d))
        question = f"Solve for {v}: {left} = {right}"
        return Problem(id=f"linear{level}-{a}_{b}_{c}_{d}", prompt=self.style.render(question),
                       verifier=self.verifier, reference={"answer": str(solution)})

    def problems(self, split: str) -> Sequence[Problem]:
        check_split(split)
        return self._splits[split]
