"""The verifier pool: limits imposed from outside, failures typed, workers replaced; the verifier
lifecycle (warm-up before items, close on exit), declared budgets, bad references, and the time a
worker waits on an engine outage."""

import os
import signal
import threading
import time

import pytest
from fakes import SlowVerifier

from rlvr.errors import BadReferenceError, InfraError, PluginError, VerifierError
from rlvr.sandbox import outage
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier, as_verifier
from rlvr.verifiers.pool import VerifierPool

P = Problem(id="p", prompt="q", verifier="slow")


def run(pool, *texts):
    return pool.verify([P] * len(texts), [Completion(t) for t in texts])


@pytest.fixture
def pool():
    with VerifierPool({"slow": SlowVerifier()}, workers=2, timeout_s=1.0, memory_mb=1024) as p:
        p.start(wait=True)  # time items, not start-up
        yield p


def test_a_hanging_item_times_out_as_a_verdict_and_the_pool_goes_on(pool):
    t0 = time.monotonic()
    results = run(pool, "ok", "hang", "ok")
    assert time.monotonic() - t0 < 5
    assert results[1] == Verdict(0.0, False, "timeout", {"timeout_s": 1.0})
    assert results[0].passed and results[2].passed
    assert run(pool, "ok")[0].passed


def test_a_verifier_bug_is_an_infra_error_not_a_zero_reward(pool):
    result = run(pool, "bug")[0]
    assert isinstance(result, VerifierError) and "ZeroDivisionError" in str(result)


def test_a_worker_that_dies_on_an_item_is_replaced_and_the_item_reported(pool):
    results = run(pool, "crash", "crash")  # no completion of the problem was judged: who is at fault?
    assert all(isinstance(r, VerifierError) and "died" in str(r) for r in results)
    assert len(pool.pids()) == 2


def test_a_completion_that_kills_workers_where_its_siblings_are_judged_is_the_models_failure(pool):
    results = run(pool, "crash", "ok")
    assert results[0] == Verdict(0.0, False, "verifier_crash", {"why": "killed two verifier workers"})
    assert results[1].passed
    other = Problem(id="q", prompt="q", verifier="slow")  # a sibling of another problem does not count
    mixed = pool.verify([P, other], [Completion("crash"), Completion("ok")])
    assert isinstance(mixed[0], VerifierError)


def test_memory_is_capped_from_outside(pool):
    result = run(pool, "oom")[0]
    assert result.status == "resource_limit" and result.reward == 0.0


def test_pool_survives_workers_killed_mid_item(tmp_path):
    pids = tmp_path / "pids"
    killed = []

    def killer():  # kill whichever worker holds the item, on both attempts
        deadline = time.monotonic() + 120
        while len(killed) < 2 and time.monotonic() < deadline:
            lines = pids.read_text().split() if pids.exists() else []
            for pid in lines[len(killed):]:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
            time.sleep(0.02)

    with VerifierPool({"slow": SlowVerifier()}, workers=1, timeout_s=60.0) as pool:
        pool.start(wait=True)
        thread = threading.Thread(target=killer)
        thread.start()
        result = run(pool, f"hang:{pids}")[0]
        thread.join()
        assert len(killed) == 2 and killed[0] != killed[1]
        assert isinstance(result, VerifierError) and "died twice" in str(result)
        assert not set(killed) & set(pool.pids())
        assert run(pool, "ok")[0].passed  # a fresh worker took over


def test_an_item_retried_after_one_kill_succeeds_if_the_retry_is_fine(pool, tmp_path):
    pids = tmp_path / "pids"

    def kill_first():
        while not pids.exists():
            time.sleep(0.02)
        os.kill(int(pids.read_text().split()[0]), signal.SIGKILL)

    thread = threading.Thread(target=kill_first)
    thread.start()
    # the item hangs on the first attempt; after the kill it is retried on a fresh worker, where
    # it hangs again until the 1 s limit: a timeout verdict, not an infrastructure error
    result = run(pool, f"hang:{pids}")[0]
    thread.join()
    assert isinstance(result, Verdict) and result.status == "timeout"


def test_unknown_verifier_name_is_a_config_error(pool):
    from rlvr.errors import ConfigError

    with pytest.raises(ConfigError, match="nope"):
        pool.verify([Problem(id="x", prompt="q", verifier="nope")], [Completion("a")])


def test_inline_mode_has_the_same_contract():
    pool = VerifierPool({"slow": SlowVerifier()}, workers=0)
    assert run(pool, "ok")[0].passed
    assert isinstance(run(pool, "bug")[0], VerifierError)


# ---- the lifecycle, budgets, bad references and engine outages -------------------------------

class BudgetVerifier(BaseVerifier):
    """Declares a budget (it bounds the model's time itself, as the code verifier does through
    its sandbox). "hang" outlives it; "engine:S" waits S seconds on an engine outage, announced
    as the Docker sandbox announces it, then answers."""

    def __init__(self, budget_s: float = 0.5):
        self.budget = budget_s

    def budget_s(self, problem):
        return self.budget

    def verify(self, problem, completion):
        if completion.text == "hang":
            time.sleep(60)
        if completion.text.startswith("engine:"):
            wait_s = float(completion.text.split(":")[1])
            outage.notify(outage.Notice("waiting", "fake", 0.0, 30.0))
            time.sleep(wait_s)
            outage.notify(outage.Notice("resumed", "fake", wait_s, 30.0))
        return Verdict(1.0, True, "correct")


class LifecycleVerifier:
    """A plug-in that does not subclass BaseVerifier but has its own warmup and close."""

    def __init__(self, marks: str):
        self.marks = marks

    def warmup(self):
        with open(self.marks, "a") as fh:
            fh.write(f"warm {os.getpid()}\n")

    def close(self):
        with open(self.marks, "a") as fh:
            fh.write(f"closed {os.getpid()}\n")

    def verify(self, problem, completion):
        with open(self.marks) as fh:  # an item only ever runs after its worker's warm-up
            assert f"warm {os.getpid()}" in fh.read()
        return Verdict(1.0, True, "correct")


class BrokenWarmup(BaseVerifier):
    def warmup(self):
        raise ImportError("no module named 'grammar'")


B = Problem(id="b", prompt="q", verifier="budget")


def test_past_a_declared_budget_is_an_infra_error_not_the_models_timeout():
    with VerifierPool({"budget": BudgetVerifier(0.5)}, workers=1, timeout_s=30, slack_s=0.5) as pool:
        pool.start(wait=True)
        t0 = time.monotonic()
        hung, fine = pool.verify([B, B], [Completion("hang"), Completion("ok")])
        assert time.monotonic() - t0 < 10  # the budget + slack, not the pool's 30 s timeout
        assert isinstance(hung, VerifierError) and "its own budget of 0.5 s" in str(hung)
        assert fine.passed


def test_waiting_on_an_engine_stops_the_items_clock_and_is_counted(tmp_path):
    with VerifierPool({"budget": BudgetVerifier(0.5)}, workers=2, timeout_s=30, slack_s=0.5) as pool:
        pool.start(wait=True)
        results = pool.verify([B, B, B], [Completion("engine:2"), Completion("engine:2"),
                                          Completion("ok")])
        assert all(isinstance(r, Verdict) and r.passed for r in results), results
        stats = pool.take_stats()
        assert stats["verify/engine_outages"] == 1  # two workers waiting at once: one outage
        assert 1.5 < stats["verify/outage_s"] < 4
        assert pool.take_stats() == {"verify/engine_outages": 0.0, "verify/outage_s": 0.0}
        assert pool.restarts == 0


def test_a_bad_reference_crosses_the_pool_as_itself():
    from rlvr.verifiers.integer import IntegerVerifier

    bad = Problem(id="p7", prompt="q", verifier="integer", reference={"answer": "seven"})
    good = Problem(id="p8", prompt="q", verifier="integer", reference={"answer": "8"})
    for workers in (1, 0):
        with VerifierPool({"integer": IntegerVerifier()}, workers=workers) as pool:
            first, second = pool.verify([bad, good], [Completion("7"), Completion("8")])
        assert isinstance(first, BadReferenceError) and not isinstance(first, InfraError)
        assert (first.problem_id, first.verifier) == ("p7", "integer")
        assert second.passed


def test_workers_warm_up_before_items_and_close_on_exit(tmp_path):
    marks = tmp_path / "marks"
    marks.touch()
    with VerifierPool({"life": LifecycleVerifier(str(marks))}, workers=2) as pool:
        results = pool.verify([Problem(id="l", prompt="q", verifier="life")] * 4,
                              [Completion("x")] * 4)
        assert all(r.passed for r in results), results
        pids = pool.pids()
    lines = marks.read_text().split("\n")
    assert sorted(f"{m} {p}" for m in ("closed", "warm") for p in pids) == sorted(filter(None, lines))


def test_a_plug_in_with_only_verify_gets_the_default_lifecycle():
    adapted = as_verifier(SlowVerifier())
    adapted.warmup()
    adapted.close()
    assert adapted.budget_s(P) is None and adapted.verify(P, Completion("ok")).passed
    assert as_verifier(adapted) is adapted
    with pytest.raises(PluginError, match="no verify"):
        as_verifier(object())


def test_a_warmup_that_fails_with_a_bug_is_reported_with_its_traceback():
    with VerifierPool({"broken": BrokenWarmup()}, workers=1) as pool:
        with pytest.raises(VerifierError, match="(?s)warmup.*no module named 'grammar'"):
            pool.start(wait=True)
