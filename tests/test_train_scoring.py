"""The loop's side of the scoring seam: rollouts scored by any Scorer, pass rates that skip samples
without a notion of correct (a reward model), quantile length buckets for a learned reward, and the
held-out evaluation through the same scorer."""

from __future__ import annotations

import math

import pytest

from rlvr.config import build_config
from rlvr.rollout.base import SamplingParams
from rlvr.scoring import BaseScorer
from rlvr.train import DataCursor, held_out_eval, rollout_step, step_metrics
from rlvr.types import Completion, Problem, Verdict


class TextEngine:
    """Completion j of every prompt is `texts[j]` (token ids: one per character)."""

    def __init__(self, texts):
        self.texts = texts

    def generate(self, prompts, params: SamplingParams):
        return [[Completion(self.texts[j % len(self.texts)], completion_ids=tuple(range(len(self.texts[j % len(self.texts)]))))
                 for j in range(params.n)] for _ in prompts]


class HalfJudged(BaseScorer):
    """Problems named "rm*" get reward = length / 10 with passed None; others 1/0 on "right"."""

    def score(self, problems, completions):
        out = []
        for p, c in zip(problems, completions):
            if p.id.startswith("rm"):
                out.append(Verdict(len(c.text) / 10, None, "scored"))
            else:
                out.append(Verdict(float(c.text == "right"), c.text == "right", "correct"))
        return out


def _cfg(**over):
    args = ["--rollout.group_size=4", "--rollout.prompts_per_step=2", "--eval.n=4"]
    return build_config(overrides=args + [f"--{k}={v}" for k, v in over.items()])


def test_pass_rate_counts_only_judged_samples_and_unjudged_are_counted():
    problems = [Problem("v0", "q", "x"), Problem("rm1", "q", "")]
    cfg = _cfg()
    ro = rollout_step(cfg, 1, DataCursor(2, 0), problems, TextEngine(["right", "wrong", "right", "no"]),
                      HalfJudged())
    assert ro.judged.tolist().count([True] * 4) == 1 and ro.judged.sum() == 4
    m = step_metrics(ro, ro.rewards, {}, 0.0, 0.0, 0.0)
    assert m["pass_rate"] == 0.5  # 2 of the 4 judged samples; the 4 reward-model ones are left out
    assert m["verify/unjudged"] == 4.0
    assert m["reward/mean"] == pytest.approx((1 + 0 + 1 + 0 + 0.5 + 0.5 + 0.5 + 0.2) / 8)


def test_pass_rate_is_nan_when_nothing_is_judged_and_buckets_follow_the_reward_kind():
    problems = [Problem("rm0", "q", ""), Problem("rm1", "q", "")]
    ro = rollout_step(_cfg(), 1, DataCursor(2, 0), problems, TextEngine(["a", "bb", "cccc", "dddddddd"]),
                      HalfJudged())
    m = step_metrics(ro, ro.rewards, {}, 0.0, 0.0, 0.0, continuous=True)
    assert math.isnan(m["pass_rate"]) and m["verify/unjudged"] == 8
    assert m["guard/len_mean/q1"] == 1.0 and m["guard/len_mean/q4"] == 8.0
    assert "guard/count/full" not in m


def test_held_out_eval_reports_mean_reward_and_leaves_reward_model_problems_out_of_pass_at_1():
    test_set = [Problem("v0", "q", "x"), Problem("rm1", "q", "")]
    out = held_out_eval(_cfg(), 0, TextEngine(["right", "wrong"]), test_set, HalfJudged())
    assert out["eval/pass@1"] == 0.5 and out["eval/unjudged_problems"] == 1
    assert out["eval/dropped_problems"] == 0
    assert out["eval/mean_reward"] == pytest.approx((0.5 + 0.5 + 0.5 + 0.5 + 0.5 + 0.5 + 0.5 + 0.5) / 8)
    only_rm = held_out_eval(_cfg(), 0, TextEngine(["abc"]), test_set[1:], HalfJudged())
    assert math.isnan(only_rm["eval/pass@1"]) and only_rm["eval/mean_reward"] == pytest.approx(0.3)
