"""OpenAIJudge against a real chat-completions server on loopback: answers, retries, failures."""

import pickle
import socket
import time

import pytest

from judges.judge_server import JudgeServer
from rlvr.errors import ConfigError, InfraError, JudgeError
from rlvr.judges.base import JudgeQuestion, make_judge
from rlvr.judges.openai import OpenAIJudge, _retry_after_s

Q = JudgeQuestion("Name a city in France.", "Paris is lovely.", ("Mentions 'Paris'", "Mentions 'Lyon'"))


def judge_for(server, **kw):
    opts = dict(base_url=server.url, model="scripted", backoff_s=0.01, timeout_s=1.0,
                deadline_s=10.0, max_retries=3)
    opts.update(kw)
    return OpenAIJudge(**opts)


@pytest.fixture
def server():
    with JudgeServer() as s:
        yield s


def test_answers_every_criterion_in_one_request(server):
    judge = judge_for(server)
    assert judge.judge(Q) == (True, False)
    assert len(server.requests) == 1
    body = server.requests[0]
    assert body["model"] == "scripted" and body["temperature"] == 0.0
    assert "Paris is lovely." in body["messages"][1]["content"]


@pytest.mark.parametrize("fault", ["429", "429-date", "500", "503", "hang", "drop"])
def test_transient_faults_are_retried_to_the_right_answer(server, fault):
    server.faults = [fault]
    judge = judge_for(server)
    t0 = time.monotonic()
    assert judge.judge(Q) == (True, False)
    assert len(server.requests) == 2
    assert sum(v for k, v in judge.stats.items() if k.startswith("retry_")) == 1
    if fault.startswith("429"):  # Retry-After: 1 is honoured, not the 10 ms back-off
        assert time.monotonic() - t0 >= 0.9


@pytest.mark.parametrize("fault,reason", [
    ("malformed", "malformed"), ("not-json", "malformed"), ("empty", "empty"),
    ("refusal", "refusal"), ("truncated", "truncated"), ("missing", "malformed"),
    ("extra", "malformed"), ("conflict", "malformed"), ("prose", "refusal")])
def test_unusable_replies_are_judge_errors_not_answers(server, fault, reason):
    server.faults = [fault]
    judge = judge_for(server)
    with pytest.raises(JudgeError) as info:
        judge.judge(Q)
    assert isinstance(info.value, InfraError)
    assert info.value.reason == reason and info.value.judge == judge.identity
    assert len(server.requests) == 1  # a reply that cannot be read is not asked again


def test_persistent_5xx_gives_up_after_max_retries(server):
    server.faults = ["500"] * 10
    with pytest.raises(JudgeError) as info:
        judge_for(server, max_retries=2).judge(Q)
    assert info.value.reason == "http_status" and len(server.requests) == 3


def test_client_errors_are_not_retried(server):
    server.fail_if = None
    server.faults = []
    judge = judge_for(server, base_url=server.url + "/nothing-here")
    with pytest.raises(JudgeError) as info:
        judge.judge(Q)
    assert info.value.reason == "http_status" and "404" in str(info.value)


def test_timeouts_end_as_a_timeout_error(server):
    server.faults = ["hang"] * 10
    with pytest.raises(JudgeError) as info:
        judge_for(server, timeout_s=0.3, max_retries=1).judge(Q)
    assert info.value.reason == "timeout"


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(server):
    server.faults = ["429"] * 3
    t0 = time.monotonic()
    with pytest.raises(JudgeError) as info:
        judge_for(server, deadline_s=0.5).judge(Q)
    assert time.monotonic() - t0 < 0.5 and "deadline" in str(info.value)


def test_connection_refused_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    judge = OpenAIJudge(base_url=f"http://127.0.0.1:{port}/v1", backoff_s=0.01, max_retries=2)
    with pytest.raises(JudgeError) as info:
        judge.judge(Q)
    assert info.value.reason == "connection" and judge.stats["retry_connection"] == 3


def test_concurrency_limit_holds_under_many_threads():
    import concurrent.futures

    with JudgeServer(delay_s=0.1) as server:
        judge = judge_for(server, max_concurrency=4)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: judge.judge(Q), range(16)))
    assert answers == [(True, False)] * 16 and server.max_in_flight <= 4


def test_api_key_comes_from_the_environment(server, monkeypatch):
    seen = {}
    original = server.answer

    def spy(handler, body, fault):
        seen["auth"] = handler.headers.get("Authorization")
        return original(handler, body, fault)

    server.answer = spy
    monkeypatch.setenv("RLVR_TEST_JUDGE_KEY", "sk-test")
    judge = judge_for(server, api_key_env="RLVR_TEST_JUDGE_KEY")
    judge.judge(Q)
    assert seen["auth"] == "Bearer sk-test"
    assert "sk-test" not in repr(pickle.dumps(judge))


def test_pickles_without_its_client_and_works_after(server):
    judge = judge_for(server)
    judge.judge(Q)
    clone = pickle.loads(pickle.dumps(judge))
    assert clone._client is None and clone.judge(Q) == (True, False)
    judge.close()


def test_retry_after_parsing():
    assert _retry_after_s("3") == 3.0 and _retry_after_s(None) is None
    assert _retry_after_s("soon") is None
    import email.utils

    assert 8 <= _retry_after_s(email.utils.formatdate(time.time() + 10, usegmt=True)) <= 10


def test_make_judge_checks_options():
    assert isinstance(make_judge({"type": "openai", "model": "m"}), OpenAIJudge)
    with pytest.raises(ConfigError, match="rejected its options"):
        make_judge({"type": "openai", "no_such_option": 1})
    with pytest.raises(ConfigError):
        make_judge({"model": "m"})
