"""Procedural arithmetic: the embedded default task.

Level L asks for the sum of two L-digit numbers (level 1: single digits, 0-9). Several levels can be
mixed (`level: [1, 2]`). The whole problem space of each level is enumerated (or sampled, past a
million pairs) with a fixed seed; the first `test_size` go to "test", the rest to "train", so the
splits never overlap. The prompt asks for the answer in `\\boxed{}`; the `integer` verifier checks
it (lenient by default: see `rlvr.verifiers.integer` for why).
"""

from __future__ import annotations

import random
from typing import Sequence

from rlvr.errors import ConfigError
from rlvr.tasks.base import check_split
from rlvr.types import Problem

INSTRUCTION = "Put your final answer within \\boxed{}."
_ENUMERATE_LIMIT = 1_000_000


def _pairs(level: int, rng: random.Random, count: int) -> list[tuple[int, int]]:
    lo, hi = (0, 9) if level == 1 else (10 ** (level - 1), 10**level - 1)
    space = (hi - lo + 1) ** 2
    if space <= _ENUMERATE_LIMIT:
        pairs = [(a, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1)]
        rng.shuffle(pairs)
        return pairs[:count]
    seen: dict[tuple[int, int], None] = {}
    while len(seen) < count:
        seen[(rng.randint(lo, hi), rng.randint(lo, hi))] = None
    return list(seen)


class ArithmeticTask:
    """Sums of two L-digit numbers with a `\\boxed{}` instruction."""

    name = "arithmetic"

    def __init__(self, level: int | list[int] = 1, test_size: int = 30, train_size: int = 100_000,
                 seed: int = 0, verifier: str = "integer", system_prompt: str | None = None):
        levels = [level] if isinstance(level, int) else list(level)
        if not levels or any(not isinstance(x, int) or not 1 <= x <= 9 for x in levels):
            raise ConfigError(f"arithmetic: level must be an integer 1-9 or a list of them, not {level!r}")
        if test_size < 1 or train_size < 1:
            raise ConfigError("arithmetic: test_size and train_size must be positive")
        self.levels, self.verifier, self.system_prompt = levels, verifier, system_prompt
        self._splits: dict[str, list[Problem]] = {"train": [], "test": []}
        for level in levels:
            pairs = _pairs(level, random.Random(f"{seed}-{level}"), test_size + train_size)
            if len(pairs) <= test_size:
                raise ConfigError(f"arithmetic level {level} has only {len(pairs)} problems; "
                                  f"test_size {test_size} leaves none to train on")
            self._splits["test"] += [self._problem(level, a, b) for a, b in pairs[:test_size]]
            self._splits["train"] += [self._problem(level, a, b) for a, b in pairs[test_size:]]

    def _problem(self, level: int, a: int, b: int) -> Problem:
        question = f"What is {a} + {b}? {INSTRUCTION}"
        prompt: list[dict[str, str]] = []
        if self.system_prompt:
            prompt.append({"role": "system", "content": self.system_prompt})
        prompt.append({"role": "user", "content": question})
        return Problem(id=f"add{level}-{a}+{b}", prompt=tuple(prompt), verifier=self.verifier,
                       reference={"answer": str(a + b)})

    def problems(self, split: str) -> Sequence[Problem]:
        check_split(split)
        return self._splits[split]
