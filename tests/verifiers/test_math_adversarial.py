"""Hostile answers end in bounded time through the worker pool, and the pool survives a worker
that is killed in the middle of an item. One property per test."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.math import MathVerifier
from rlvr.verifiers.pool import VerifierPool

TIMEOUT_S = 5.0

ADVERSARIAL = {
    "power_tower": r"10^{10^{10^{10}}}",
    "huge_exponent": r"2^{123456789}",
    "expand_bomb": r"(x+1)^{100000}",
    "factorial": r"100000!",
    "binomial": r"\binom{100000}{50000}",
    "long_answer": "1+" * 50_000 + "1",
    "deep_nesting": "{" * 5_000 + "1" + "}" * 5_000,
    "deep_parens": "(" * 3_000 + "x" + ")" * 3_000,
    "deep_fracs": r"\frac{1}{" * 200 + "2" + "}" * 200,
    "underbrace_tower": r"\underbrace{" * 50 + "x" + r"}_{n}" * 50,
    "many_digits": "9" * 20_000,
    "many_items": ", ".join(str(i) for i in range(20_000)),
    "nested_sets": r"\{" * 500 + "1" + r"\}" * 500,
    "power_of_powers": r"((10^{999})^{999})^{999}",
    "letter_tower": r"x^{x^{x^{x^{x}}}}",
    "e_tower": r"e^{e^{e^{e^{10}}}}",
    "big_binomial_power": r"(x+1)^{999}",
    "beyond_float_range": r"(10^{100})^{100}",  # once compared as inf == anything
    "short_deep_parens": "(" * 150 + "x" + ")" * 150,
    "short_deep_braces": "{" * 100 + "1" + "}" * 100,
    "small_underbrace": r"\underbrace{\underbrace{x}_{a}}_{b}",
}


class SlowMathVerifier:
    """The real math verifier, but an item whose reference has `pid_file` first writes the
    worker's pid there and sleeps `sleep_s`: a handle for killing a worker mid-item."""

    def __init__(self):
        self.inner = MathVerifier()

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        if "pid_file" in problem.reference:
            Path(problem.reference["pid_file"]).write_text(str(os.getpid()))
            time.sleep(problem.reference["sleep_s"])
        return self.inner.verify(problem, completion)


@pytest.fixture(scope="module")
def pool():
    with VerifierPool({"math": SlowMathVerifier()}, workers=2, timeout_s=TIMEOUT_S,
                      memory_mb=2048) as p:
        p.start(wait=True)  # time items, not the workers' start-up
        yield p


def _problem(i: int, answer: str = "x+2", **extra) -> Problem:
    return Problem(f"p{i}", "", "math", {"answer": answer, **extra})


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_answer_is_bounded(pool, name):
    completion = Completion("Let me think. \\boxed{" + ADVERSARIAL[name] + "}")
    start = time.monotonic()
    [verdict] = pool.verify([_problem(0)], [completion])
    elapsed_s = time.monotonic() - start
    assert isinstance(verdict, Verdict), verdict
    assert verdict.reward == 0.0 and not verdict.passed
    assert verdict.status in ("unparsable", "timeout", "no_answer", "wrong", "resource_limit")
    assert elapsed_s < TIMEOUT_S + 3.0


def test_adversarial_reference_equal_to_answer_is_still_correct(pool):
    tower = ADVERSARIAL["power_tower"]
    [verdict] = pool.verify([_problem(0, tower)], [Completion("\\boxed{" + tower + "}")])
    assert verdict.passed  # the string fast path: nothing is evaluated


def test_item_over_the_time_limit_is_a_timeout_verdict_and_pool_recovers(pool, tmp_path):
    slow = _problem(1, "3", pid_file=str(tmp_path / "pid"), sleep_s=TIMEOUT_S + 5)
    verdicts = pool.verify([slow, _problem(2, "3")], [Completion(r"\boxed{3}")] * 2)
    assert verdicts[0].status == "timeout" and verdicts[0].reward == 0.0
    assert verdicts[1].passed
    [after] = pool.verify([_problem(3, "4")], [Completion(r"\boxed{4}")])
    assert after.passed


def test_pool_survives_a_worker_killed_mid_item(pool, tmp_path):
    pid_file = tmp_path / "pid"
    killed: list[int] = []

    def kill_when_busy():
        deadline = time.monotonic() + TIMEOUT_S
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = int(pid_file.read_text())
        pid_file.unlink()  # the retried item writes it again, on a fresh worker
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    restarts = pool.restarts
    problems = [_problem(10, "7", pid_file=str(pid_file), sleep_s=1.5)] + \
               [_problem(11 + i, str(i)) for i in range(6)]
    completions = [Completion(r"\boxed{7}")] + [Completion(f"\\boxed{{{i}}}") for i in range(6)]
    verdicts = pool.verify(problems, completions)
    killer.join()
    assert killed and killed[0] not in pool.pids()
    assert pool.restarts > restarts
    assert all(isinstance(v, Verdict) and v.passed for v in verdicts), verdicts
    [after] = pool.verify([_problem(20, r"\frac{1}{2}")], [Completion(r"\boxed{0.5}")])
    assert after.passed
