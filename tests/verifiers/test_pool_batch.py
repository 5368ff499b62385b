"""The pool's batch path: a verifier with `verify_batch` and `batch_size` > 1 gets its items in
chunks across worker processes, each result stays the item's own, and every per-item rule still
holds for batched items (a crash found item by item, timeouts, budgets, outage notices,
`on_done`, the inline path). The fakes log every call to a file, so the tests see what each
worker process was asked."""

import os
import time

import pytest

from judges.judge_server import JudgeServer
from rlvr.errors import VerifierError
from rlvr.sandbox import outage
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier, as_verifier
from rlvr.verifiers.pool import VerifierPool
from rlvr.verifiers.rubric import RubricVerifier


def _log(path, *words):
    with open(path, "a") as fh:
        fh.write(" ".join(str(w) for w in (os.getpid(), time.time(), *words)) + "\n")


def _score(text):
    if text == "crash":
        os._exit(3)
    if text == "hang":
        time.sleep(120)
    if text.startswith("engine:"):
        wait_s = float(text.split(":")[1])
        outage.notify(outage.Notice("waiting", "fake", 0.0, 30.0))
        time.sleep(wait_s)
        outage.notify(outage.Notice("resumed", "fake", wait_s, 30.0))
    return Verdict(len(text) / 10, True, "scored", {"text": text})


class LoggingBatchVerifier(BaseVerifier):
    """Reward = len(text) / 10. Logs `batch N` per verify_batch call and `single` per verify.
    "crash" kills the worker, "hang" sleeps, "bug" in a batch raises out of verify_batch,
    "engine:S" waits S seconds on an announced engine outage. `budget_s` None: no own bound."""

    def __init__(self, log, batch_size=4, budget_s=None, batch_budget_s=None):
        self.log, self.batch_size = str(log), batch_size
        self.budget, self.batch_budget = budget_s, batch_budget_s

    def budget_s(self, problem):
        return self.budget

    def batch_budget_s(self, problems):
        return self.batch_budget

    def verify(self, problem, completion):
        _log(self.log, "single", completion.text)
        if completion.text == "bug":
            raise ZeroDivisionError("verifier bug")
        return _score(completion.text)

    def verify_batch(self, problems, completions):
        _log(self.log, "batch", len(completions), *(c.text for c in completions))
        if any(c.text == "bug" for c in completions):
            raise ZeroDivisionError("verifier bug in a batch")
        return [_score(c.text) for c in completions]


class PlugInBatch:
    """A plug-in that does not subclass BaseVerifier: verify_batch and batch_size of its own."""

    batch_size = 8

    def __init__(self, log):
        self.log = str(log)

    def verify(self, problem, completion):
        _log(self.log, "single", completion.text)
        return Verdict(1.0, True, "ok")

    def verify_batch(self, problems, completions):
        _log(self.log, "batch", len(completions))
        return [Verdict(1.0, True, "ok") for _ in completions]


def calls(log):
    """[(pid, time, kind, n or text, texts...)] from the log file."""
    rows = []
    for line in log.read_text().splitlines():
        pid, t, kind, *rest = line.split(" ")
        rows.append((int(pid), float(t), kind, *rest))
    return rows


P = Problem(id="p", prompt="q", verifier="batch")


def verify(pool, texts, problems=None, on_done=None):
    return pool.verify(problems or [P] * len(texts), [Completion(t) for t in texts], on_done=on_done)


def test_items_go_to_verify_batch_in_chunks_across_workers_with_per_item_results(tmp_path):
    log = tmp_path / "log"
    texts = [f"item{i}" + "x" * (i % 5) for i in range(10)]
    done = []
    with VerifierPool({"batch": LoggingBatchVerifier(log, batch_size=4)}, workers=2) as pool:
        pool.start(wait=True)
        results = verify(pool, texts, on_done=done.append)
        pids = set(pool.pids())
    assert [r.info["text"] for r in results] == texts  # every result is its own item's, in order
    assert [r.reward for r in results] == [len(t) / 10 for t in texts]
    assert sorted(done) == list(range(10))  # on_done once per item
    rows = calls(log)
    assert {r[2] for r in rows} == {"batch"}  # no item went through verify alone
    sizes = sorted(int(r[3]) for r in rows)
    assert sizes == [2, 4, 4]  # chunks of at most batch_size, every item once
    assert sorted(t for r in rows for t in r[4:]) == sorted(texts)
    assert {r[0] for r in rows} == pids  # both workers took chunks


def test_chunks_are_spread_evenly_over_the_workers(tmp_path):
    log = tmp_path / "log"
    with VerifierPool({"batch": LoggingBatchVerifier(log, batch_size=64)}, workers=2) as pool:
        pool.start(wait=True)
        assert all(r.passed for r in verify(pool, ["a"] * 12))
    assert sorted(int(r[3]) for r in calls(log)) == [6, 6]


def test_a_completion_that_kills_its_chunk_is_found_item_by_item(tmp_path):
    log = tmp_path / "log"
    texts = ["ok1", "crash", "ok22", "ok333"]
    with VerifierPool({"batch": LoggingBatchVerifier(log, batch_size=4)}, workers=1) as pool:
        pool.start(wait=True)
        results = verify(pool, texts)
        assert results[1] == Verdict(0.0, False, "verifier_crash", {"why": "killed two verifier workers"})
        assert [r.reward for i, r in enumerate(results) if i != 1] == [0.3, 0.4, 0.5]
        # the same crash where no sibling of the problem is judged: the cause is unknown, infra
        others = [Problem(id=f"q{i}", prompt="q", verifier="batch") for i in range(2)]
        alone = verify(pool, ["crash", "fine"], problems=others)
        assert isinstance(alone[0], VerifierError) and "died twice" in str(alone[0])
        assert alone[1].passed
    rows = calls(log)
    assert rows[0][2:] == ("batch", "4", *texts)  # the chunk was tried first
    singles = [r[3] for r in rows if r[2] == "single"]
    assert singles.count("crash") == 4  # in each call, two fresh workers alone on it
    assert sorted(t for t in singles if t != "crash") == ["fine", "ok1", "ok22", "ok333"]


def test_a_verify_batch_that_raises_is_retried_item_by_item(tmp_path):
    log = tmp_path / "log"
    for workers in (1, 0):
        with VerifierPool({"batch": LoggingBatchVerifier(log, batch_size=4)}, workers=workers) as pool:
            results = verify(pool, ["a", "bug", "abc"])
        assert isinstance(results[1], VerifierError) and "ZeroDivisionError" in str(results[1])
        assert [results[0].reward, results[2].reward] == [0.1, 0.3]
        assert pool.restarts == 0
        rows = calls(log)
        assert [r[2] for r in rows] == ["batch", "single", "single", "single"], (workers, rows)
        log.unlink()


def test_a_hang_in_a_chunk_is_that_items_timeout(tmp_path):
    log = tmp_path / "log"
    with VerifierPool({"batch": LoggingBatchVerifier(log, batch_size=3)}, workers=1,
                      timeout_s=1.0) as pool:
        pool.start(wait=True)
        t0 = time.monotonic()
        results = verify(pool, ["ab", "hang", "abcd"])
        assert time.monotonic() - t0 < 30
    # no batch budget: the chunk may take its items' limits one after another, then one by one
    assert results[1] == Verdict(0.0, False, "timeout", {"timeout_s": 1.0})
    assert [results[0].reward, results[2].reward] == [0.2, 0.4]


def test_a_chunks_deadline_is_its_batch_budget_and_each_retry_keeps_its_own(tmp_path):
    log = tmp_path / "log"
    verifier = LoggingBatchVerifier(log, batch_size=4, budget_s=0.5, batch_budget_s=1.0)
    texts = ["hang", "a", "b", "c", "d", "e", "f", "g"]
    with VerifierPool({"batch": verifier}, workers=2, timeout_s=60, slack_s=0.5) as pool:
        pool.start(wait=True)
        results = verify(pool, texts)
    hung = results[0]
    assert isinstance(hung, VerifierError) and "its own budget of 0.5 s" in str(hung)
    assert all(r.passed for r in results[1:])
    rows = calls(log)
    started = next(r[1] for r in rows if r[2] == "batch" and "hang" in r[4:])
    retried = min(r[1] for r in rows if r[2] == "single")
    # killed at batch_budget_s + slack = 1.5 s (the items' budgets one after another: 4 x 1 s);
    # the other worker, idle, takes the first retry at once
    assert 1.3 < retried - started < 3.9, retried - started


def test_an_engine_outage_inside_a_chunk_stops_the_chunks_clock(tmp_path):
    log = tmp_path / "log"
    verifier = LoggingBatchVerifier(log, batch_size=4, budget_s=0.5, batch_budget_s=0.5)
    with VerifierPool({"batch": verifier}, workers=1, timeout_s=60, slack_s=0.5) as pool:
        pool.start(wait=True)
        results = verify(pool, ["engine:2", "ab", "abc"])
        assert [r.reward for r in results] == [0.8, 0.2, 0.3]
        stats = pool.take_stats()
        assert stats["verify/engine_outages"] == 1 and 1.5 < stats["verify/outage_s"] < 5
        assert pool.restarts == 0  # 2 s of waiting against a 1 s deadline: the clock stopped
    assert [r[2] for r in calls(log)] == ["batch"]


def test_a_plug_in_with_its_own_verify_batch_is_batched(tmp_path):
    log = tmp_path / "log"
    adapted = as_verifier(PlugInBatch(log))
    assert adapted.batch_size == 8 and adapted.batch_budget_s([P]) is None
    with VerifierPool({"batch": PlugInBatch(log)}, workers=1) as pool:
        assert all(r.passed for r in verify(pool, ["x"] * 10))
    assert [r[2:] for r in calls(log)] == [("batch", "8"), ("batch", "2")]


def test_inline_mode_batches_too(tmp_path):
    log = tmp_path / "log"
    done = []
    with VerifierPool({"batch": LoggingBatchVerifier(log, batch_size=4)}, workers=0) as pool:
        results = verify(pool, ["a", "bb", "ccc", "dddd", "eeeee"], on_done=done.append)
    assert [r.reward for r in results] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert [r[2:4] for r in calls(log)] == [("batch", "4"), ("single", "eeeee")]  # one left: verify


def test_a_bad_batch_size_is_a_config_error(tmp_path):
    from rlvr.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        VerifierPool({"batch": LoggingBatchVerifier(tmp_path / "log", batch_size=0)})


# ---- the rubric verifier through the pool ---------------------------------------------------

RUBRIC = [{"text": f"Mentions 'w{k}'", "weight": 1} for k in range(3)]


def test_rubric_items_reach_the_judge_concurrently_through_the_pool():
    problems = [Problem(f"r{i // 4}", "Say words.", "rubric", {"rubric": RUBRIC}) for i in range(24)]
    completions = [Completion(f"w0 w{i % 3} #{i}") for i in range(24)]
    with JudgeServer(delay_s=0.2) as server:
        options = {"judge": {"type": "openai", "base_url": server.url, "max_retries": 0}}
        expected = [r.reward for r in RubricVerifier(**options).verify_batch(problems, completions)]
        server.requests.clear()
        server.max_in_flight = 0
        with VerifierPool({"rubric": RubricVerifier(**options)}, workers=1, timeout_s=60) as pool:
            pool.start(wait=True)
            results = pool.verify(problems, completions)
    assert [r.reward for r in results] == expected == [2 / 3 if i % 3 else 1 / 3 for i in range(24)]
    assert len(server.requests) == 24  # one call per completion (3 criteria per call)
    assert server.max_in_flight > 8  # one worker, many judge calls in flight: the batch path


def test_the_same_question_twice_in_a_batch_is_asked_once():
    problems = [Problem("r", "Say words.", "rubric", {"rubric": RUBRIC})] * 12
    completions = [Completion(f"w0 w{i % 3}") for i in range(12)]
    with JudgeServer(delay_s=0.1) as server:
        verifier = RubricVerifier(judge={"type": "openai", "base_url": server.url, "max_retries": 0})
        results = verifier.verify_batch(problems, completions)
        verifier.close()
    assert [r.reward for r in results] == [1 / 3, 2 / 3, 2 / 3] * 4
    assert len(server.requests) == 3  # three distinct completions: three calls, not twelve


def test_rubric_batch_budget_counts_waves_of_judge_calls():
    judged = {"rubric": RUBRIC}
    text_only = {"rubric": [{"text": "short", "weight": 1, "check": {"max_words": 5}}]}
    verifier = RubricVerifier(judge={"type": "openai"}, judge_threads=4, judge_budget_s=10,
                              items_per_call=2)
    problem = Problem("r", "q", "rubric", judged)
    assert verifier.batch_size == 4  # judge_threads by default
    assert verifier.budget_s(problem) == 10
    assert verifier.batch_budget_s([problem] * 4) == 2 * 10  # 2 calls each, 8 calls, 4 at a time
    assert verifier.batch_budget_s([problem]) == 10
    assert verifier.batch_budget_s([Problem("t", "q", "rubric", text_only)] * 3) is None
