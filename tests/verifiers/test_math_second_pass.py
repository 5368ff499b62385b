"""Regression table of the math verifier's second pass: one class per fixed bug or gap.

`math_cases_second_pass.jsonl` holds (class, gold, completion, expected) rows; `expected` is
true, false, or "bad_reference" when the reference cannot be read unambiguously (the verifier
raises `BadReferenceError`, a dataset bug, never a reward). Every class has at least ten cases,
positives and negatives. Classes: calculus (sums with a bound index once crashed), clock_time,
numeric_lhs, decimal_comma, several_boxes, labelled, final_phrase, relations, separators,
reference_spellings, precision.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from rlvr.errors import BadReferenceError
from rlvr.types import Completion, Problem
from rlvr.verifiers.math import MathVerifier

CASES_PATH = Path(__file__).with_name("math_cases_second_pass.jsonl")
CASES = [json.loads(line) for line in CASES_PATH.read_text().splitlines() if line.strip()]
VERIFIER = MathVerifier()


def test_every_class_has_ten_cases_with_positives_and_negatives():
    by_class = collections.defaultdict(list)
    for case in CASES:
        by_class[case["class"]].append(case["expected"])
    assert len(by_class) == 11
    for name, expected in by_class.items():
        assert len(expected) >= 10, name
        assert True in expected and (False in expected or "bad_reference" in expected), name


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['class']}" for i, c in enumerate(CASES)])
def test_second_pass_table(case):
    problem = Problem("t", "", "math", {"answer": case["gold"]})
    if case["expected"] == "bad_reference":
        with pytest.raises(BadReferenceError) as info:
            VERIFIER.verify(problem, Completion(case["completion"]))
        assert info.value.problem_id == "t" and info.value.verifier == "math"
        return
    verdict = VERIFIER.verify(problem, Completion(case["completion"]))
    assert verdict.passed is case["expected"], verdict
    assert verdict.status in ("correct", "wrong", "unparsable", "no_answer"), verdict
