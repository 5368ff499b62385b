"""Tasks from local data files: GSM8K, MATH, MBPP, and any JSONL/Parquet file with a column mapping.

Every loader takes `data_files`: one path (shuffled with `seed` and cut into `test_size` test rows
and the rest for train), or `{"train": path, "test": path}` (either may be left out; asking for a
split without a file is a `ConfigError`). Rows of "train" whose prompt also appears in "test" are
dropped, so the splits are disjoint. Malformed rows follow `on_error` (see `rlvr.tasks.files`):
skipped with a warning naming file and line (default), or raised.

| task    | row fields                                  | reference                       | verifier |
|---------|---------------------------------------------|---------------------------------|----------|
| gsm8k   | `question`, `answer` ending `#### 42`       | `answer`: text after `####`     | math     |
| math    | `problem`, `solution` with `\\boxed{}`      | `answer`: the last boxed        | math     |
| mbpp    | `text`, `test_list` (+ `test_setup_code`)   | `tests` (assert script), ...    | code     |
| file    | any, named by `columns`                     | from `columns` / `reference`    | any      |

Nothing is downloaded: the files must be on disk (the Hugging Face datasets' own JSONL/Parquet
exports work as they are). This module does not judge answers; the verifier does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from rlvr.errors import ConfigError, DataError
from rlvr.tasks.base import check_split
from rlvr.tasks.files import field, load_file
from rlvr.tasks.prompting import PromptStyle
from rlvr.tasks.splits import shuffle_and_cut
from rlvr.types import Problem


def _line_of(where: str) -> str:
    return where.rsplit(":", 1)[-1].replace("row ", "r")


class FileTask:
    """A task backed by local files; subclasses say how a row becomes (question, reference)."""

    name = "file"
    default_verifier = "math"
    answer_format = "boxed"

    def __init__(self, data_files: str | Mapping[str, str], test_size: int = 100, seed: int = 0,
                 verifier: str | None = None, prompt: Mapping[str, Any] | None = None,
                 on_error: str = "skip", max_bad_fraction: float = 0.1):
        self.verifier = verifier or self.default_verifier
        self.style = PromptStyle.from_options(prompt, answer_format=self.answer_format, task=self.name)
        self.skipped: list[DataError] = []
        opts = {"on_error": on_error, "max_bad_fraction": max_bad_fraction, "skipped": self.skipped}
        if isinstance(data_files, (str, Path)):
            rows = load_file(data_files, self._problem_of, **opts)
            self._splits = shuffle_and_cut(self.name, rows, test_size, seed)
        elif isinstance(data_files, Mapping) and set(data_files) <= {"train", "test"} and data_files:
            self._splits = {s: load_file(p, self._problem_of, **opts) for s, p in data_files.items()}
        else:
            raise ConfigError(f"{self.name}: data_files must be a path or a mapping with 'train' "
                              f"and/or 'test', not {data_files!r}")
        if "train" in self._splits and "test" in self._splits:
            test_prompts = {repr(p.prompt) for p in self._splits["test"]}
            self._splits["train"] = [p for p in self._splits["train"]
                                     if repr(p.prompt) not in test_prompts]

    def _problem_of(self, row: dict[str, Any], where: str) -> Problem:
        question, reference, row_id = self.convert(row, where)
        stem = Path(where.rsplit(":", 1)[0]).name.split(".")[0]
        pid = f"{self.name}-{row_id}" if row_id is not None else f"{self.name}-{stem}-{_line_of(where)}"
        return Problem(id=pid, prompt=self.style.render(question), verifier=self.verifier,
                       reference=reference)

    def convert(self, row: dict[str, Any], where: str) -> tuple[str, dict[str, Any], Any]:
        """(question, reference, id or None) of one row; `DataError` naming `where` if malformed."""
        raise NotImplementedError

    def problems(self, split: str) -> Sequence[Problem]:
        check_split(split)
        if split not in self._splits:
            raise ConfigError(f"{self.name}: no {split!r} file was given in data_files")
        return self._splits[split]


class Gsm8kTask(FileTask):
    """GSM8K: `question`, and `answer` whose worked solution ends in `#### <number>`."""

    name = "gsm8k"

    def convert(self, row, where):
        question, answer = field(row, "question", where), field(row, "answer", where)
        if "####" not in answer:
            raise DataError(f"{where}: field 'answer' has no '#### <final answer>' line")
        final = answer.rsplit("####", 1)[1].strip().replace(",", "")
        if not final:
            raise DataError(f"{where}: nothing after '####' in field 'answer'")
        return question, {"answer": final}, None


class MathTask(FileTask):
    """MATH (Hendrycks et al.): `problem`, and `solution` whose final answer is in `\\boxed{}`: every
    box of it (`\\boxed{1}` and `\\boxed{-2}` are one answer of two parts); boxes separated by text
    that cannot form one answer make the row a bad row, never a silent choice of the last."""

    name = "math"

    def convert(self, row, where):
        from rlvr.verifiers.math.extract import AmbiguousAnswer, extract_reference, last_boxed

        problem, solution = field(row, "problem", where), field(row, "solution", where)
        if not (last_boxed(solution) or "").strip():
            raise DataError(f"{where}: field 'solution' has no \\boxed{{...}} final answer")
        try:
            answer = extract_reference(solution)
        except AmbiguousAnswer as exc:
            raise DataError(f"{where}: field 'solution': {exc}") from exc
        return problem, {"answer": answer.strip()}, row.get("unique_id")


class MbppTask(FileTask):
    """MBPP: `text`, `test_list` (asserts), optional `test_setup_code`; `show_tests` of the asserts
    are shown in the prompt (1 by default: it names the function and its signature)."""

    name = "mbpp"
    default_verifier = "code"
    answer_format = "code"

    def __init__(self, data_files, show_tests: int = 1, **options):
        if not isinstance(show_tests, int) or show_tests < 0:
            raise ConfigError(f"mbpp: show_tests must be a non-negative integer, not {show_tests!r}")
        self.show_tests = show_tests
        super().__init__(data_files, **options)

    def convert(self, row, where):
        text, tests = field(row, "text", where), field(row, "test_list", where, (list, tuple))
        if not tests or not all(isinstance(t, str) and t.strip() for t in tests):
            raise DataError(f"{where}: field 'test_list' must be a non-empty list of assert lines")
        setup = row.get("test_setup_code") or ""
        if not isinstance(setup, str):
            raise DataError(f"{where}: field 'test_setup_code' should be str")
        name = re.match(r"\s*assert\s+(?:not\s+)?\(?\s*(?:set\()?\s*([A-Za-z_]\w*)\s*\(", tests[0])
        shown = "\n".join(tests[:self.show_tests])
        question = f"{text.strip()}\nYour code should pass these tests:\n{shown}" if shown else text
        reference = {"tests": "\n".join([setup, *tests]).strip() + "\n", "test_format": "assert"}
        if name:
            reference["entry_point"] = name.group(1)
        return question, reference, row.get("task_id")


class ColumnsTask(FileTask):
    """Any JSONL/Parquet file: `columns` maps `prompt` (required), `answer`, `id` and `verifier`
    to column names; `reference` maps further reference keys to columns, `reference_values` adds
    constant ones (e.g. `{test_format: io}`)."""

    name = "file"

    def __init__(self, data_files, columns: Mapping[str, str] | None = None,
                 reference: Mapping[str, str] | None = None,
                 reference_values: Mapping[str, Any] | None = None,
                 answer_format: str = "boxed", **options):
        self.columns = dict(columns or {"prompt": "prompt", "answer": "answer"})
        unknown = sorted(set(self.columns) - {"prompt", "answer", "id", "verifier"})
        if "prompt" not in self.columns or unknown:
            raise ConfigError("file: columns must map 'prompt' (and optionally 'answer', 'id', "
                              f"'verifier') to column names; got {self.columns}")
        self.reference_columns, self.reference_values = dict(reference or {}), dict(reference_values or {})
        self.answer_format = answer_format
        super().__init__(data_files, **options)

    def convert(self, row, where):
        question = field(row, self.columns["prompt"], where)
        ref: dict[str, Any] = dict(self.reference_values)
        if "answer" in self.columns:
            ref["answer"] = str(field(row, self.columns["answer"], where, (str, int, float)))
        for key, column in self.reference_columns.items():
            if column not in row:
                raise DataError(f"{where}: missing field {column!r} (reference key {key!r})")
            ref[key] = row[column]
        row_id = row.get(self.columns["id"]) if "id" in self.columns else None
        return question, ref, row_id

    def _problem_of(self, row, where):
        problem = super()._problem_of(row, where)
        if "verifier" in self.columns:
            name = field(row, self.columns["verifier"], where)
            problem = Problem(problem.id, problem.prompt, name, problem.reference)
        return problem
