"""`rlvr train` scored by a (tiny, random) reward model only: the learned reward flows through the
scoring seam, pass rates are left empty instead of 0, and the length guard buckets by quartiles."""

import json
import sys
from pathlib import Path

import pytest

from test_train import common, rlvr

sys.path.insert(0, str(Path(__file__).parent / "reward"))
from tests_reward_helpers import make_tiny_reward_model  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir, tmp_path_factory):
    return make_tiny_reward_model(tiny_model_dir, tmp_path_factory.mktemp("rm") / "rm", mean=0.0, std=10.0)


def test_a_run_scored_by_a_reward_model_alone(tiny_model_dir, reward_model, tmp_path):
    out = tmp_path / "run"
    args = [a for a in common(tiny_model_dir, out, steps=2) if not a.startswith("--task.verifier")]
    proc = rlvr("train", *args, "--task.verifier=reward_model", f"--reward.model={reward_model}",
                "--reward.clip=[-2, 2]", "--grpo.beta=0.04", "--eval.every=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["step"] >= 1 and "reward/mean" in r]
    assert len(steps) == 2
    for r in steps:
        assert r["pass_rate"] is None and r["verify/unjudged"] == 8.0  # NaN, written null: none judged
        assert -2.0 <= r["reward/mean"] <= 2.0 and r["reward/std"] > 0
        assert sum(r[f"guard/count/q{i}"] for i in range(1, 5)) == 8 and "guard/count/full" not in r
        assert r["reward_model/scored"] >= 8 and r["verify/infra_errors"] == 0
    evals = [r for r in rows if "eval/mean_reward" in r]
    assert evals and all(r["eval/pass@1"] is None and r["eval/unjudged_problems"] == 3 for r in evals)
    assert (out / "final").is_dir()


def test_a_learned_reward_with_beta_zero_is_refused(tiny_model_dir, reward_model, tmp_path):
    args = [a for a in common(tiny_model_dir, tmp_path / "run", steps=1) if not a.startswith("--task.verifier")]
    proc = rlvr("train", *args, "--task.verifier=reward_model", f"--reward.model={reward_model}")
    assert proc.returncode == 2 and "grpo.beta" in proc.stderr and "allow_zero_beta" in proc.stderr
