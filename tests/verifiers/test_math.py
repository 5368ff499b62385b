"""The math verifier on its own: the labelled regression table, extraction, normalisation,
options, and that model text never reaches `eval`."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from rlvr.errors import BadReferenceError, ConfigError, DataError
from rlvr.types import Completion, Problem
from rlvr.verifiers.base import make_verifier
from rlvr.verifiers.math import MathVerifier
from rlvr.verifiers.math.extract import extract_answer, extract_reference, last_boxed
from rlvr.verifiers.math.normalize import normalize
from rlvr.verifiers.math.parse import parse_answer

CASES_PATH = Path(__file__).with_name("math_cases.jsonl")
CASES = [json.loads(line) for line in CASES_PATH.read_text().splitlines() if line.strip()]
VERIFIER = MathVerifier()


def judge(gold: str, completion: str, verifier: MathVerifier = VERIFIER):
    return verifier.verify(Problem("t", "", "math", {"answer": gold}), Completion(completion))


def test_table_is_large_and_covers_every_family_with_negatives():
    families = {c["family"] for c in CASES}
    assert len(CASES) >= 300
    assert {"extraction", "units", "percent", "matrix", "choice", "text", "equation",
            "interval_inequality", "sets_tuples", "expression", "near_miss"} <= families
    negatives = sum(not c["expected"] for c in CASES)
    assert negatives >= len(CASES) // 3
    for family in families:
        assert any(not c["expected"] for c in CASES if c["family"] == family) or family == "assorted"


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['family']}" for i, c in enumerate(CASES)])
def test_regression_table(case):
    verdict = judge(case["gold"], case["completion"])
    assert verdict.passed is case["expected"], verdict
    assert verdict.reward == (1.0 if case["expected"] else 0.0)


def test_registered_under_math_and_json_info():
    verifier = make_verifier("math", {"rel_tol": 1e-3})
    verdict = verifier.verify(Problem("t", "", "math", {"answer": "1/3"}), Completion(r"\boxed{0.3334}"))
    assert verdict.passed and verdict.status == "correct"
    json.dumps(dict(verdict.info))  # info must be JSON-serialisable


@pytest.mark.parametrize("text, expected", [
    (r"so \boxed{\frac{a}{b^{2}}} done", r"\frac{a}{b^{2}}"),
    (r"\boxed{1} then \fbox{2}", "2"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),
    (r"\boxed{unclosed", None),
])
def test_last_boxed_matches_nested_braces(text, expected):
    assert last_boxed(text) == expected


def test_extraction_order_and_fallback():
    assert extract_answer("<answer>7</answer> and \\boxed{5}").text == "7"
    assert extract_answer("blah\n#### 1,200").text == "1,200"
    assert extract_answer("The final answer is $\\frac{1}{2}$. Done.").text == "$\\frac{1}{2}$"
    assert extract_answer("I got 3 and then 4") is None
    assert extract_answer("I got 3 and then 4", last_number=True).text == "4"
    assert extract_reference("42") == "42"
    assert extract_reference("Add them: 2+2=4.\n#### 4") == "4"


def test_last_number_fallback_is_opt_in():
    text = "Adding the apples gives 12 apples in total."
    assert judge("12", text).status == "no_answer"
    assert judge("12", text, MathVerifier(last_number_fallback=True)).passed


@pytest.mark.parametrize("raw, expected", [
    (r"\$1,234.50", r"1234.50 \text{ dollars}"), (r"\left( 1, 2 \right]", "(1, 2]"),
    (r"\dfrac{1}{2}.", r"\frac{1}{2}"), (r"1{,}000", "1000"), (r"x \leq 3", r"x \le 3"),
    (r"30^{\circ}", "30°"), (r"50\%", "50%"), ("(1,234)", "(1,234)"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_rel_tol_applies_only_to_decimal_approximations_of_exact_values():
    loose = MathVerifier(rel_tol=1e-2)
    assert judge(r"\sqrt{2}", r"\boxed{1.41}", loose).passed  # a decimal for an irrational value
    assert judge(r"\frac{1}{3}", r"\boxed{0.334}", loose).passed
    assert not judge(r"\sqrt{2}", r"\boxed{1.41}").passed  # default: 1e-6
    assert not judge("100", r"\boxed{\frac{201}{2}}", loose).passed  # exact numbers: exact
    assert not judge("100", r"\boxed{100.5}", loose).passed  # 100 is exact at one place
    assert not judge("9.8", r"\boxed{9.81}", loose).passed  # a decimal reference: its own precision


def test_bad_options_and_missing_reference_are_errors():
    with pytest.raises(ConfigError):
        MathVerifier(rel_tol=-1)
    for reference in ({}, {"answer": "  "}):
        with pytest.raises(BadReferenceError) as info:
            VERIFIER.verify(Problem("p7", "", "math", reference), Completion(r"\boxed{1}"))
        assert isinstance(info.value, DataError)
        assert (info.value.problem_id, info.value.verifier) == ("p7", "math")


class BuggyMathVerifier(MathVerifier):
    """The real verifier with a bug planted where model text is judged."""

    def __init__(self, error: BaseException):
        super().__init__()
        self.error = error

    def _judge(self, gold_text, gold, text):
        if "trigger" in text:
            raise self.error
        return super()._judge(gold_text, gold, text)


def test_a_bug_hit_while_judging_model_text_is_a_counted_verdict_not_a_crash():
    verifier = BuggyMathVerifier(KeyError("k"))
    verdict = judge("2", r"\boxed{2} trigger", verifier)
    assert (verdict.reward, verdict.passed, verdict.status) == (0.0, False, "verifier_error")
    assert verdict.info["error"] == "KeyError: 'k'" and "_judge" in verdict.info["where"]
    assert judge("2", r"\boxed{2}", verifier).passed  # the same reference judges other answers
    with pytest.raises(BadReferenceError):  # a bad reference is still the dataset's error
        judge("", r"\boxed{2} trigger", verifier)
    with pytest.raises(MemoryError):  # resource limits stay the pool's
        judge("2", r"\boxed{2} trigger", BuggyMathVerifier(MemoryError()))


def test_statuses():
    assert judge("2", "no idea").status == "no_answer"
    assert judge("2", r"\boxed{(((}").status == "unparsable"
    assert judge("2", "\\boxed{" + "1+" * 20_000 + "1}").status == "unparsable"
    assert judge("2", "\\boxed{" + "1+" * 60_000 + "1}").status == "no_answer"  # box before the tail
    with pytest.raises(BadReferenceError):  # a dataset bug, not the model's failure
        judge(r"\frac{", r"\boxed{2}")
    tower = r"10^{10^{10^{10}}}"  # refused by the size guards: only its own spelling is judged
    assert judge(tower, "\\boxed{" + tower + "}").passed
    with pytest.raises(BadReferenceError):
        judge(tower, r"\boxed{10^{10^{10^{11}}}}")


HOSTILE = [r"\boxed{__import__('os').system('echo pwned')}", r"\boxed{eval('1+1')}",
           r"\boxed{x.__class__}", r"\boxed{lambda: 0}", r"\boxed{\text{exec('import os')}}",
           r"\boxed{Symbol('x')}", r"\boxed{f(x)}", r"\boxed{\frac{1}{2}x^2+\sin x}",
           r"\boxed{f(3) + 2.5}", r"\boxed{\log_{2}(8) + g(1) \cdot 10\%}", r"\boxed{x_{1} = 3.0}"]


class EvalCalled(BaseException):
    """Raised by the stand-ins for eval/exec/parse_expr; no `except Exception` can hide it."""


@pytest.mark.parametrize("completion", HOSTILE)
def test_model_text_never_reaches_eval(completion, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise EvalCalled("eval/exec/parse_expr called while verifying model text")

    judge("2", completion)  # first, unguarded: lets lazy imports (which exec module code) happen
    parse_answer.cache_clear()
    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    import sympy.parsing.sympy_parser as sympy_parser

    monkeypatch.setattr(sympy_parser, "parse_expr", refuse)
    verdict = judge("2", completion)
    assert verdict.reward == 0.0 and verdict.status in ("wrong", "unparsable")
