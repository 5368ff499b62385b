"""Adapter for the procedural generators of `reasoning-gym` (about 100 of them).

    task: {name: reasoning_gym, options: {dataset: basic_arithmetic, config: {max_terms: 4}}}

Questions and reference answers come from `reasoning_gym.create_dataset(dataset, seed=..., size=...,
**config)`: the test split from one seed, the train split from another, and train entries whose
question also appears in test are dropped (disjoint). The answer is judged by one of rlvr's own
verifiers (`math` by default, `integer` for integer answers), never by reasoning-gym's
`score_answer`: several of those call `eval` on the model's text, and the model's text is never
run in the trainer's process. Generators whose answers are not math (grids, free text, programs)
need a verifier of your own (plug-in), since reasoning-gym's scorers are not used.

`reasoning-gym` is an optional dependency: `pip install reasoning-gym`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rlvr.errors import ConfigError, PluginError
from rlvr.tasks.base import check_split
from rlvr.tasks.prompting import PromptStyle
from rlvr.tasks.splits import check_sizes
from rlvr.types import Problem

INSTALL_HINT = "pip install reasoning-gym"


def _reasoning_gym() -> Any:
    try:
        import reasoning_gym
    except ImportError as exc:
        raise PluginError(f"the reasoning_gym task needs the package 'reasoning-gym', which is not "
                          f"installed; run: {INSTALL_HINT}") from exc
    return reasoning_gym


class ReasoningGymTask:
    """One reasoning-gym generator as a task with seeded, disjoint splits."""

    name = "reasoning_gym"

    def __init__(self, dataset: str, config: Mapping[str, Any] | None = None, test_size: int = 100,
                 train_size: int = 5000, seed: int = 0, verifier: str = "math",
                 prompt: Mapping[str, Any] | None = None):
        check_sizes(self.name, test_size, train_size)
        rg = _reasoning_gym()
        known = sorted(rg.factory.DATASETS)
        if dataset not in known:
            raise ConfigError(f"reasoning_gym: unknown dataset {dataset!r}; choose one of: "
                              f"{', '.join(known)}")
        self.dataset, self.verifier = dataset, verifier
        self.style = PromptStyle.from_options(prompt, answer_format="tags", task=self.name)
        self._splits: dict[str, list[Problem]] = {}
        test_questions: set[str] = set()
        for split, size, split_seed in (("test", test_size, 2 * seed + 1), ("train", train_size, 2 * seed)):
            entries = self._entries(rg, dict(config or {}), size, split_seed) if size else []
            if split == "test":
                test_questions = {e["question"] for e in entries}
            else:
                entries = [e for e in entries if e["question"] not in test_questions]
            self._splits[split] = [self._problem(split, i, e) for i, e in enumerate(entries)]

    def _entries(self, rg: Any, config: dict, size: int, seed: int) -> list[dict]:
        try:
            return list(rg.create_dataset(self.dataset, seed=seed, size=size, **config))
        except (TypeError, ValueError, AssertionError) as exc:  # its config checks use assert
            raise ConfigError(f"reasoning_gym: dataset {self.dataset!r} rejected config "
                              f"{config}: {exc}") from exc

    def _problem(self, split: str, index: int, entry: Mapping[str, Any]) -> Problem:
        return Problem(id=f"rg-{self.dataset}-{split}-{index}",
                       prompt=self.style.render(str(entry["question"])), verifier=self.verifier,
                       reference={"answer": str(entry["answer"])})

    def problems(self, split: str) -> Sequence[Problem]:
        check_split(split)
        return self._splits[split]
