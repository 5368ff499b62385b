"""RubricTask: the built-in set and the JSONL format, scored end to end by the rubric verifier."""

import json

import pytest

from rlvr.errors import ConfigError, DataError
from rlvr.tasks.rubric import RubricTask
from rlvr.types import Completion
from rlvr.verifiers.rubric import RubricVerifier


def test_builtin_splits_are_disjoint_seeded_and_scored():
    task = RubricTask(test_size=20)
    train, test = task.problems("train"), task.problems("test")
    assert len(test) == 20 and len(train) == 24 * 24 - 20
    assert not {p.id for p in train} & {p.id for p in test}
    assert [p.id for p in RubricTask(test_size=20).problems("test")] == [p.id for p in test]
    assert [p.id for p in RubricTask(test_size=20, seed=1).problems("test")] != [p.id for p in test]
    p = RubricTask(test_size=20, judge_items=False).problems("test")[0]
    word = p.reference["rubric"]["items"][0]["text"].split("'")[1]
    v = RubricVerifier()
    good = v.verify(p, Completion(f"The {word} light falls over everything here."))
    assert good.reward == 1.0 and good.passed  # Essential 5 + Important 3 + Important 3 of 11
    two = v.verify(p, Completion(f"It is {word}. It is nice."))
    assert two.reward == 8 / 11 and not two.passed
    refusal = v.verify(p, Completion(f"As an AI, I find it {word}."))
    assert refusal.reward == 8 / 11
    assert v.verify(p, Completion("Nothing.")).reward == 3 / 11  # one sentence, too short
    assert v.verify(p, Completion("no")).reward == 0.0


def test_builtin_with_judge_item_names_the_topic():
    p = RubricTask(test_size=5).problems("test")[0]
    items = p.reference["rubric"]["items"]
    assert items[-1]["id"] == "on_topic" and "check" not in items[-1]
    assert p.prompt[-1]["content"].startswith("Write one sentence about ")


def test_jsonl_rows_with_inline_and_file_rubrics(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps([{"text": "says hi", "weight": 1,
                                                  "check": {"contains": "hi"}}]))
    rows = [{"id": "a", "prompt": "Greet me.", "rubric": "r.json"},
            {"id": "b", "prompt": [{"role": "user", "content": "Count."}], "answer": "3",
             "rubric": {"items": [{"text": "is 3", "weight": 2, "check": {"math_equal": True}}]}},
            {"id": "c", "prompt": "Broken.", "rubric": [{"text": "no weight"}]},
            {"prompt": "Missing rubric."}]
    path = tmp_path / "rubrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match="rubrics.jsonl:3"):
        RubricTask(data_files={"train": str(path)}, on_error="raise")
    task = RubricTask(data_files={"train": str(path)}, max_bad_fraction=0.5)
    problems = {p.id: p for p in task.problems("train")}
    assert set(problems) == {"a", "b"} and len(task.skipped) == 2
    v = RubricVerifier()
    assert v.verify(problems["a"], Completion("oh hi")).reward == 1.0
    assert problems["b"].prompt == ({"role": "user", "content": "Count."},)
    assert v.verify(problems["b"], Completion("\\boxed{3}")).reward == 1.0
    with pytest.raises(ConfigError):
        task.problems("test")
