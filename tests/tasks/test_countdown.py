"""The countdown task and its eval-free expression verifier."""

from __future__ import annotations

from fractions import Fraction

import pytest

from rlvr.errors import ConfigError
from rlvr.tasks.base import make_task
from rlvr.tasks.countdown import CountdownTask
from rlvr.types import Completion, Problem
from rlvr.verifiers.base import make_verifier
from rlvr.verifiers.countdown import CountdownVerifier, ParseError, evaluate_expression

PROBLEM = Problem(id="c", prompt="", verifier="countdown", reference={"numbers": [25, 3, 4, 8], "target": 96})


def _verify(text: str, **opts):
    return CountdownVerifier(**opts).verify(PROBLEM, Completion(text=text))


@pytest.mark.parametrize("expr,value,used", [
    ("(25 - 3) * 4 + 8", 96, [25, 3, 4, 8]),
    ("25*4 - 8 / 2", 96, [25, 4, 8, 2]),
    ("((7))", 7, [7]),
    ("1 - 2 - 3", -4, [1, 2, 3]),  # left-associative
    ("8 / 3 * 3", 8, [8, 3, 3]),  # exact fractions, no float rounding
    ("(25 - 3) \\times 4 + 8 = 96", 96, [25, 3, 4, 8]),
    ("$(25-3) × 4 + 8$", 96, [25, 3, 4, 8]),
])
def test_evaluate_expression(expr, value, used):
    assert evaluate_expression(expr) == (Fraction(value), used)


@pytest.mark.parametrize("expr", [
    "__import__('os').system('echo pwned')", "2 ** 10", "-3 + 5", "(1 + 2", "1 + 2)", "3 4",
    "1e9", "3.5 + 1", "1234567 + 1", "(" * 40 + "1" + ")" * 40, "1+" * 200 + "1", "",
])
def test_evaluate_expression_rejects_what_the_grammar_does_not_allow(expr):
    with pytest.raises(ParseError):
        evaluate_expression(expr)


def test_verdicts():
    assert _verify("so <answer>(25 - 3) * 4 + 8</answer>").status == "correct"
    assert _verify("\\boxed{(25 - 3) \\times 4 + 8}").passed
    wrong = _verify("<answer>25 + 3 + 4 + 8</answer>")
    assert (wrong.status, wrong.reward, wrong.info["value"]) == ("wrong", 0.0, "40")
    assert _verify("<answer>25 * 4 - 4</answer>").status == "wrong_numbers"  # 4 twice, no 3/8
    assert _verify("<answer>(25 - 3) * 4 + 8 + 0</answer>").status == "wrong_numbers"
    assert _verify("<answer>25 / (4 - 4) + 3 + 8</answer>").status == "division_by_zero"
    assert _verify("<answer>print(1)</answer>").status == "unparsable"
    assert _verify("I give up").status == "no_answer"
    assert _verify("<answer>25 + 3 + 4 + 8</answer>", format_weight=0.1).reward == 0.1
    assert _verify("<answer>(25 - 3) * 4</answer>", use_all=False).status == "wrong"
    assert _verify("<answer>25*4 - 3 - 8 + 3</answer>", use_all=False).status == "wrong_numbers"


def test_lenient_mode_reads_the_last_expression_line_strict_does_not():
    text = "Let me try.\n(25 - 3) * 4 + 8 = 96"
    assert _verify(text).status == "no_answer"
    assert _verify(text, mode="lenient").status == "correct"


def test_registered_and_picklable():
    import pickle

    v = make_verifier("countdown", {"format_weight": 0.1})
    assert pickle.loads(pickle.dumps(v)).verify(PROBLEM, Completion("<answer>(25-3)*4+8</answer>")).passed


def test_task_is_seeded_solvable_and_disjoint():
    task = make_task("countdown", {"test_size": 50, "train_size": 500, "seed": 3})
    again = CountdownTask(test_size=50, train_size=500, seed=3)
    assert task.problems("test") == again.problems("test")
    assert task.problems("test") != CountdownTask(test_size=50, train_size=500, seed=4).problems("test")
    test, train = task.problems("test"), task.problems("train")
    assert (len(test), len(train)) == (50, 500)
    key = lambda p: (tuple(sorted(p.reference["numbers"])), p.reference["target"])  # noqa: E731
    assert not {key(p) for p in test} & {key(p) for p in train}
    assert len({key(p) for p in train}) == 500
    for p in test:
        assert 3 <= len(p.reference["numbers"]) <= 4 and 1 <= p.reference["target"] <= 100
        assert "<answer>" in p.prompt[-1]["content"] and p.verifier == "countdown"


def test_every_generated_puzzle_has_the_solution_it_was_built_from():
    # brute force over all expressions would be slow; check small puzzles exhaustively instead
    import itertools

    def reachable(nums):
        if len(nums) == 1:
            return {Fraction(nums[0])}
        out = set()
        for i, j in itertools.permutations(range(len(nums)), 2):
            rest = [nums[k] for k in range(len(nums)) if k not in (i, j)]
            a, b = Fraction(nums[i]), Fraction(nums[j])
            for v in {a + b, a - b, a * b} | ({a / b} if b else set()):
                out |= reachable(rest + [v])
        return out

    task = CountdownTask(num_numbers=3, test_size=30, train_size=0, seed=1)
    for p in task.problems("test"):
        assert Fraction(p.reference["target"]) in reachable(p.reference["numbers"]), p.id


@pytest.mark.parametrize("opts", [{"num_numbers": 1}, {"num_numbers": [4, 3]}, {"test_size": 0},
                                  {"max_target": 0}, {"prompt": {"format": "boxed"}}])
def test_bad_options_are_config_errors(opts):
    with pytest.raises(ConfigError):
        CountdownTask(train_size=10, **opts)
