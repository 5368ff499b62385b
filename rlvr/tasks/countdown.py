"""Countdown: combine the given numbers with + - * / and parentheses to reach a target.

Each puzzle is made by drawing `num_numbers` numbers from 1..`max_number` and combining all of them
in a random order with random operators (division only where it is exact), keeping the result when
it is an integer in 1..`max_target`. So every puzzle has at least one solution that uses each
number exactly once. Puzzles are distinct by (sorted numbers, target); the first `test_size` drawn
with the seed are "test", the next `train_size` "train", so the splits never overlap.

The answer is an expression such as `(25 - 3) * 4 + 8`, checked by the `countdown` verifier, which
parses it without `eval`. The default answer format is `tags` (`<answer>...</answer>`).
This task does not guarantee a unique solution and does not rate difficulty.
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from rlvr.errors import ConfigError
from rlvr.tasks.base import check_split
from rlvr.tasks.prompting import PromptStyle
from rlvr.tasks.splits import check_sizes, cut, draw_distinct
from rlvr.types import Problem

Puzzle = tuple[tuple[int, ...], int]  # (numbers in the order shown, target)


def _combine(rng: random.Random, numbers: list[int]) -> int | None:
    """A random expression over all `numbers` (left to right, random ops), or None if not integral."""
    order = numbers[:]
    rng.shuffle(order)
    value = order[0]
    for x in order[1:]:
        ops = ["+", "*"] + (["-"] if value > x else ["-r"] if x > value else [])
        if x != 0 and value % x == 0:
            ops.append("/")
        op = rng.choice(ops)
        value = {"+": value + x, "*": value * x, "-": value - x, "-r": x - value,
                 "/": value // x if x else 0}[op]
    return value


class CountdownTask:
    """Countdown puzzles with `num_numbers` numbers (an int, or [lo, hi] for a range)."""

    name = "countdown"

    def __init__(self, num_numbers: int | list[int] = (3, 4), max_number: int = 99,
                 max_target: int = 100, test_size: int = 100, train_size: int = 10_000,
                 seed: int = 0, verifier: str = "countdown", prompt: Mapping[str, Any] | None = None):
        lo, hi = (num_numbers, num_numbers) if isinstance(num_numbers, int) else tuple(num_numbers)
        if not 2 <= lo <= hi <= 6:
            raise ConfigError(f"countdown: num_numbers must be in 2..6 (or a range in it), "
                              f"not {num_numbers!r}")
        if max_number < 2 or max_target < 1:
            raise ConfigError("countdown: max_number must be >= 2 and max_target >= 1")
        check_sizes(self.name, test_size, train_size)
        self.verifier = verifier
        self.style = PromptStyle.from_options(prompt, answer_format="tags", task=self.name)

        def draw(rng: random.Random) -> Puzzle:
            while True:
                numbers = [rng.randint(1, max_number) for _ in range(rng.randint(lo, hi))]
                target = _combine(rng, numbers)
                if target is not None and 1 <= target <= max_target:
                    return tuple(numbers), target

        puzzles = draw_distinct(self.name, draw, lambda p: (tuple(sorted(p[0])), p[1]),
                                test_size + train_size, seed)
        self._splits = {k: [self._problem(p) for p in v] for k, v in cut(puzzles, test_size).items()}

    def _problem(self, puzzle: Puzzle) -> Problem:
        numbers, target = puzzle
        listed = ", ".join(map(str, numbers))
        question = (f"Using the numbers {listed}, create an expression that equals {target}. "
                    "Use each number exactly once, with + - * / and parentheses.")
        return Problem(id=f"countdown-{'-'.join(map(str, numbers))}={target}",
                       prompt=self.style.render(question), verifier=self.verifier,
                       reference={"numbers": list(numbers), "target": target})

    def problems(self, split: str) -> Sequence[Problem]:
        check_split(split)
        return self._splits[split]
