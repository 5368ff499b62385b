"""`rlvr eval` with a reward model: problems that name no verifier are scored by it, pass@k is left
empty (never 0), the mean reward is reported, and the reward settings key the saved samples."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rlvr.cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "reward"))
from tests_reward_helpers import make_tiny_reward_model  # noqa: E402

pytestmark = pytest.mark.slow
BASE = ["--task", "arithmetic", "--limit", "3", "-n", "2", "-k", "1,2", "--max-new-tokens", "4",
        "--workers", "0", "--no-progress", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir, tmp_path_factory):
    return make_tiny_reward_model(tiny_model_dir, tmp_path_factory.mktemp("rm") / "rm")


def test_eval_scored_by_a_reward_model(tiny_model_dir, reward_model, tmp_path, capsys):
    out = tmp_path / "out"
    args = [*BASE, "--model", f"tiny={tiny_model_dir}", "--out", str(out), "--verifier", "reward_model",
            "--reward-model", str(reward_model), "--reward-options", "{clip: [-1, 1]}"]
    assert main(["eval", *args]) == 0
    report = json.loads((out / "results.json").read_text())["models"][0]["report"]
    assert report["pass@1"] is None and report["pass@2"] is None and report["unjudged_samples"] == 6
    assert -1.0 <= report["mean_reward"] <= 1.0 and report["num_samples"] == 6
    assert all(r["passed"] is None for r in map(json.loads, (out / "samples" / "tiny.jsonl").read_text().splitlines()))
    assert "| tiny | – | – |" in capsys.readouterr().out
    # the same samples scored by another reward setting are not reused silently
    other = [a if a != "{clip: [-1, 1]}" else "{clip: [-2, 2]}" for a in args]
    assert main(["eval", *other]) == 2
    assert "other settings" in capsys.readouterr().err


def test_problems_without_a_verifier_need_a_reward_model(tiny_model_dir, tmp_path, capsys):
    code = main(["eval", *BASE, "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                 "--verifier", "reward_model"])
    assert code == 2 and "reward.model" in capsys.readouterr().err
