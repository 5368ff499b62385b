"""RewardModelScorer: normalisation and clipping by the saved statistics, passed=None, non-finite
scores masked, batching that does not change a score, and no pickling into verifier workers."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from rlvr.errors import InfraError
from rlvr.reward.scorer import RewardModelScorer, normalise
from rlvr.scoring import outcome
from rlvr.types import Completion, Problem, Verdict


def _length_score(model, tokenizer, prompts, responses, batch_size):
    """A stand-in reward model: raw score = number of characters of the response."""
    return [float("nan") if r == "nan" else float(len(r)) for r in responses]


def _pairs(texts):
    return ([Problem(id=f"p{i}", prompt="say something", verifier="reward_model") for i in range(len(texts))],
            [Completion(text=t) for t in texts])


def test_normalise_by_saved_statistics_then_clip():
    # raw 14, mean 10, std 2 -> 2.0; raw 30 -> 10 -> clipped to 5; raw 0 -> -5 (edge, kept)
    assert normalise(14.0, 10.0, 2.0, (-5.0, 5.0)) == 2.0
    assert normalise(30.0, 10.0, 2.0, (-5.0, 5.0)) == 5.0
    assert normalise(0.0, 10.0, 2.0, (-5.0, 5.0)) == -5.0
    assert normalise(-100.0, 10.0, 2.0, None) == -55.0
    assert normalise(7.0, 10.0, 2.0, (-1.0, 6.0), normalize=False) == 6.0


def test_scores_are_normalised_clipped_and_have_no_notion_of_correct():
    scorer = RewardModelScorer(None, None, {"mean": 10.0, "std": 2.0}, clip=(-3.0, 3.0),
                               score_fn=_length_score)
    results = scorer.score(*_pairs(["x" * 14, "x" * 40, "", "x" * 10]))
    assert [r.reward for r in results] == [2.0, 3.0, -3.0, 0.0]
    assert all(isinstance(r, Verdict) and r.passed is None for r in results)
    assert [r.info["raw"] for r in results] == [14.0, 40.0, 0.0, 10.0]
    o = outcome(results[0])
    assert o.passed is None and o.scored and o.reward == 2.0
    stats = scorer.take_stats()
    assert stats["reward_model/scored"] == 4 and stats["reward_model/clipped"] == 2
    assert scorer.take_stats()["reward_model/scored"] == 0  # counters since the last call


def test_without_normalise_only_the_clip_applies():
    scorer = RewardModelScorer(None, None, {"mean": 10.0, "std": 2.0}, normalize=False, clip=(0.0, 5.0),
                               score_fn=_length_score)
    assert [r.reward for r in scorer.score(*_pairs(["abc", "x" * 9]))] == [3.0, 5.0]


def test_a_non_finite_score_is_an_infra_error_never_a_reward():
    scorer = RewardModelScorer(None, None, {"mean": 0.0, "std": 1.0}, score_fn=_length_score)
    results = scorer.score(*_pairs(["ok", "nan"]))
    assert isinstance(results[0], Verdict) and isinstance(results[1], InfraError)
    assert not outcome(results[1]).scored


@pytest.mark.parametrize("stats", [{"mean": 0.0, "std": 0.0}, {"mean": float("nan"), "std": 1.0}])
def test_unusable_statistics_are_refused_when_normalising(stats):
    with pytest.raises(ValueError, match="std"):
        RewardModelScorer(None, None, stats, score_fn=_length_score)


def test_it_is_never_pickled():
    scorer = RewardModelScorer(None, None, {"mean": 0.0, "std": 1.0}, score_fn=_length_score)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(scorer)


# ---------------------------------------------------------------- a real (tiny, random) reward model


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory, tiny_model_dir):
    from tests_reward_helpers import make_tiny_reward_model

    return make_tiny_reward_model(tiny_model_dir, tmp_path_factory.mktemp("rm") / "rm",
                                  mean=0.25, std=0.5)


def test_a_saved_reward_model_scores_as_score_texts_normalised(tiny_reward_model):
    from rlvr.reward.model import load_reward_model, score_texts

    texts = ["The answer is 4.", "I do not know", "four " * 30, ""]
    problems, completions = _pairs(texts)
    # a clip wider than the random model's scores: normalisation is what is checked here (the
    # clip has its own tests above), and clipping every score to one bound would hide it
    scorer = RewardModelScorer.from_path(str(tiny_reward_model), clip=(-1e3, 1e3), batch_size=3)
    got = [r.reward for r in scorer.score(problems, completions)]
    model, tokenizer, stats = load_reward_model(tiny_reward_model)
    raw = score_texts(model, tokenizer, [p.prompt for p in problems], texts, batch_size=1)
    want = [(float(r) - 0.25) / 0.5 for r in raw]
    assert got == pytest.approx(want, abs=1e-5)
    assert len(set(round(g, 6) for g in got)) > 1  # the random model does tell texts apart
    one_by_one = RewardModelScorer.from_path(str(tiny_reward_model), clip=(-1e3, 1e3), batch_size=1)
    assert [r.reward for r in one_by_one.score(problems, completions)] == pytest.approx(got, abs=1e-5)
    assert all(math.isfinite(g) for g in got) and torch.is_grad_enabled()  # grad mode left as it was
