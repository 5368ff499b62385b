"""The scoring seam: outcome() of every result kind, the pool adapter, the mixed scorer's routing,
and build_scorer's choice (and its errors)."""

from __future__ import annotations

import pytest

from rlvr.components import build_scorer
from rlvr.config import RewardConfig, VerifyConfig
from rlvr.errors import BadReferenceError, ConfigError, SandboxError
from rlvr.scoring import BaseScorer, MixedScorer, PoolScorer, Scorer, as_scorer, outcome
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.integer import IntegerVerifier
from rlvr.verifiers.pool import VerifierPool


def test_outcome_of_each_result_kind():
    assert outcome(Verdict(1.0, True, "correct")).passed is True
    assert outcome(Verdict(0.0, False, "wrong")).passed is False
    unjudged = outcome(Verdict(-0.7, None, "scored"))  # a reward model: no notion of correct
    assert unjudged.passed is None and unjudged.scored and unjudged.reward == -0.7
    infra = outcome(SandboxError("engine down"))
    assert not infra.scored and infra.status == "infra_error" and "engine down" in infra.error
    assert outcome(BadReferenceError("no answer")).status == "bad_reference"
    with pytest.raises(TypeError):
        outcome("not a result")


class RecordingScorer(BaseScorer):
    """Scores every completion `reward` (passed None) and records the problem ids it was given."""

    def __init__(self, reward: float):
        self.reward, self.calls, self.closed = reward, [], False

    def score(self, problems, completions):
        self.calls.append([p.id for p in problems])
        return [Verdict(self.reward, None, "scored") for _ in problems]

    def take_stats(self):
        return {"reward_model/scored": float(sum(map(len, self.calls)))}

    def close(self):
        self.closed = True


def _problem(i: int, verifier: str) -> Problem:
    return Problem(id=f"p{i}", prompt=f"{i}+0=?", verifier=verifier, reference={"answer": str(i)})


def test_mixed_scorer_sends_each_problem_to_its_verifier_or_to_the_reward_model_in_order():
    problems = [_problem(0, "integer"), _problem(1, ""), _problem(2, "reward_model"), _problem(3, "integer")]
    completions = [Completion("\\boxed{0}"), Completion("x"), Completion("y"), Completion("\\boxed{9}")]
    rm = RecordingScorer(0.25)
    with VerifierPool({"integer": IntegerVerifier()}, workers=0) as pool:
        mixed = MixedScorer(PoolScorer(pool), rm)
        assert isinstance(mixed, Scorer)
        results = mixed.score(problems, completions)
        only_verified = mixed.score(problems[:1], completions[:1])
    assert [(r.reward, r.passed) for r in results] == [(1.0, True), (0.25, None), (0.25, None), (0.0, False)]
    assert rm.calls == [["p1", "p2"]]  # once, with the unverified problems only; not for problems[:1]
    assert only_verified[0].passed is True
    assert mixed.take_stats()["reward_model/scored"] == 2
    mixed.close()
    assert rm.closed


class Flaky:
    def verify(self, problem, completion):
        if completion.text == "boom":
            raise SandboxError("engine down")
        return Verdict(1.0, True, "correct")


def test_a_bare_verifier_pool_is_adapted_and_errors_stay_in_place():
    with VerifierPool({"x": Flaky()}, workers=0) as pool:
        scorer = as_scorer(pool)
        assert isinstance(scorer, PoolScorer) and as_scorer(scorer) is scorer
        out = scorer.score([_problem(0, "x")] * 2, [Completion("ok"), Completion("boom")])
    assert isinstance(out[0], Verdict) and isinstance(out[1], SandboxError)
    with pytest.raises(TypeError):
        as_scorer(object())


def test_build_scorer_uses_the_pool_alone_without_unverified_problems():
    with build_scorer([_problem(0, "integer")], {}, VerifyConfig(workers=0)) as scorer:
        assert isinstance(scorer, PoolScorer)
        assert scorer.score([_problem(0, "integer")], [Completion("\\boxed{0}")])[0].passed


def test_unverified_problems_without_a_reward_model_are_a_config_error_naming_one():
    with pytest.raises(ConfigError, match=r"problem 'p1'.*reward\.model"):
        build_scorer([_problem(0, "integer"), _problem(1, "")], {}, VerifyConfig(workers=0))


def test_a_reward_model_path_that_is_not_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="reward.model"):
        build_scorer([_problem(1, "reward_model")], {}, VerifyConfig(workers=0),
                     RewardConfig(model=str(tmp_path / "missing")))
