"""The synthetic addition preference set: right sums chosen, held-out questions unseen, seeded."""

import json
import re

import pytest

from rlvr.cli import main
from rlvr.errors import ConfigError
from rlvr.reward.synthetic import make_split


def stated_sum(text: str) -> int:
    return int(re.findall(r"\d+", text)[-1])


def addends(prompt: str) -> tuple[int, int]:
    a, b = map(int, re.findall(r"\d+", prompt))
    return a, b


def test_sum_kind_chooses_the_right_sum_and_rejects_a_wrong_one():
    train, held = make_split(200, 50, kind="sum", pairs_per_prompt=3, seed=0)
    assert len(train) == 600 and len(held) == 150
    for row in train + held:
        a, b = addends(row["prompt"])
        assert 10 <= a <= 99 and 10 <= b <= 99
        assert stated_sum(row["chosen"]) == a + b
        assert stated_sum(row["rejected"]) != a + b and abs(stated_sum(row["rejected"]) - (a + b)) <= 10
        # only the number differs: the same sentence shape
        assert re.sub(r"\d+$", "", row["chosen"].rstrip(".")) == re.sub(r"\d+$", "", row["rejected"].rstrip("."))
    by_prompt = {}
    for row in train:
        by_prompt.setdefault(row["prompt"], set()).add(row["rejected"])
    assert all(len(v) == 3 for v in by_prompt.values())  # different wrong sums per question


def test_held_out_questions_are_not_trained_on_and_the_set_is_seeded():
    train, held = make_split(300, 60, seed=5)
    assert not {addends(r["prompt"]) for r in train} & {addends(r["prompt"]) for r in held}
    assert make_split(300, 60, seed=5) == (train, held)
    assert make_split(300, 60, seed=6) != (train, held)


def test_concise_kind_pads_the_rejected_answer():
    train, _ = make_split(20, 0, kind="concise", seed=0)
    for row in train:
        assert len(row["rejected"]) > len(row["chosen"]) + 20
        assert row["chosen"].rstrip(".") in row["rejected"]


def test_impossible_requests_are_config_errors():
    with pytest.raises(ConfigError, match="distinct 1-digit questions"):
        make_split(90, 20, digits=1)
    with pytest.raises(ConfigError, match="at most 10 wrong sums"):
        make_split(5, 1, pairs_per_prompt=11)


def test_command_writes_both_files(tmp_path, capsys):
    assert main(["rm", "synth", "--out", str(tmp_path / "d"), "--train-prompts", "12",
                 "--eval-prompts", "3", "--seed", "1"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and set(rows[0]) == {"prompt", "chosen", "rejected"}
    assert len((tmp_path / "d" / "eval.jsonl").read_text().splitlines()) == 6
    assert "wrote 24 training pairs" in capsys.readouterr().out
