"""The task protocol and the task registry.

A task is a named, seeded source of `Problem`s with disjoint splits: `problems(split)` returns the
same list for the same options every time, and no problem of "test" appears in "train". Tasks never
know how they are trained on; the problem names its verifier (and the trainer may override it).
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from rlvr import plugins
from rlvr.errors import ConfigError
from rlvr.types import Problem

__all__ = ["Problem", "Task", "BUILTIN_TASKS", "make_task", "available_tasks", "SPLITS"]

ENTRY_POINT_GROUP = "rlvr.tasks"
SPLITS = ("train", "test")

BUILTIN_TASKS: dict[str, str] = {
    "arithmetic": "rlvr.tasks.arithmetic:ArithmeticTask",
    "countdown": "rlvr.tasks.countdown:CountdownTask",
    "linear": "rlvr.tasks.linear:LinearEquationTask",
    "gsm8k": "rlvr.tasks.loaders:Gsm8kTask",
    "math": "rlvr.tasks.loaders:MathTask",
    "mbpp": "rlvr.tasks.loaders:MbppTask",
    "file": "rlvr.tasks.loaders:ColumnsTask",
    "reasoning_gym": "rlvr.tasks.reasoning_gym:ReasoningGymTask",
    "humaneval": "rlvr.tasks.humaneval:HumanEvalTask",
    "rubric": "rlvr.tasks.rubric:RubricTask",
}


@runtime_checkable
class Task(Protocol):
    name: str

    def problems(self, split: str) -> Sequence[Problem]: ...


def available_tasks() -> list[str]:
    return plugins.available(ENTRY_POINT_GROUP, BUILTIN_TASKS)


def make_task(name: str, options: Mapping[str, Any] | None = None) -> Task:
    """Build the task registered as `name` (built-in, entry point, or `module:Object`)."""
    factory = plugins.load(ENTRY_POINT_GROUP, name, BUILTIN_TASKS)
    return plugins.construct(factory, f"task {name!r}", **dict(options or {}))


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
