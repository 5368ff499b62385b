"""HFJudge with a tiny random-weight model: answers come from the model or raise, never a guess."""

import pickle

import pytest

from rlvr.errors import ConfigError, JudgeError
from rlvr.judges.base import JudgeQuestion
from rlvr.judges.hf import HFJudge

Q = JudgeQuestion("Name a city.", "Paris.", ("Names a city.", "Is rude.", "Is in French."))


def test_a_model_that_does_not_answer_yes_or_no_is_a_judge_error(tiny_model_dir):
    judge = HFJudge(model=str(tiny_model_dir), min_answer_mass=0.2)
    with pytest.raises(JudgeError) as info:
        judge.judge(Q)
    assert info.value.reason == "malformed" and "probability" in str(info.value)


def test_logprob_answers_are_one_per_criterion_and_deterministic(tiny_model_dir):
    judge = HFJudge(model=str(tiny_model_dir), min_answer_mass=0.0)
    first = judge.judge(Q)
    assert len(first) == 3 and all(isinstance(a, bool) for a in first)
    assert judge.judge(Q) == first
    one = judge.judge(JudgeQuestion(Q.prompt, Q.completion, Q.criteria[1:2]))
    assert one == first[1:2]  # each criterion is asked on its own: batching does not change it


def test_generate_mode_reads_the_reply_strictly(tiny_model_dir):
    judge = HFJudge(model=str(tiny_model_dir), mode="generate", max_new_tokens=8)
    with pytest.raises(JudgeError) as info:  # random weights write no `1: YES` lines
        judge.judge(Q)
    assert info.value.reason in ("refusal", "empty", "malformed")


def test_too_long_prompt_is_an_error_not_a_cut(tiny_model_dir):
    judge = HFJudge(model=str(tiny_model_dir), max_prompt_tokens=64, min_answer_mass=0.0)
    with pytest.raises(JudgeError) as info:
        judge.judge(Q)
    assert info.value.reason == "too_long"


def test_pickles_without_its_model_and_checks_options(tiny_model_dir):
    judge = HFJudge(model=str(tiny_model_dir), min_answer_mass=0.0)
    judge.warmup()
    clone = pickle.loads(pickle.dumps(judge))
    assert clone._model is None and len(clone.judge(Q)) == 3
    judge.close()
    with pytest.raises(ConfigError):
        HFJudge(mode="vibes")
