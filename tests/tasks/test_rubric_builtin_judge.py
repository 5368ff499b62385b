"""The built-in rubric task's judge item quotes the word that names its topic, so the scripted
keyword judge (a stand-in for an LLM in tests and benchmarks) decides it, over real HTTP, and
both the deterministic items and the judge item move the reward."""

import pytest

from judges.judge_server import JudgeServer, keyword_answers
from rlvr.tasks.rubric import TOPIC_KEYWORDS, TOPICS, RubricTask
from rlvr.types import Completion
from rlvr.verifiers.rubric import RubricVerifier


def test_every_topic_has_a_keyword_that_names_it():
    assert set(TOPIC_KEYWORDS) == set(TOPICS) and len(TOPICS) == 24
    for topic, keyword in TOPIC_KEYWORDS.items():
        assert keyword in topic, (topic, keyword)
    for p in RubricTask(test_size=30).problems("test"):
        criterion = p.reference["rubric"]["items"][-1]["text"]
        topic = p.id.split("-")[1].replace("_", " ")
        assert criterion == f"The sentence is about {topic} (it mentions '{TOPIC_KEYWORDS[topic]}')"
        assert keyword_answers(f"I like {topic} a lot.", [criterion]) == [True]
        assert keyword_answers("Nothing to see.", [criterion]) == [False]


@pytest.fixture
def problem():
    return next(p for p in RubricTask(test_size=30).problems("train") if "the_ocean" in p.id)


def test_deterministic_items_and_the_judge_item_both_count(problem):
    word = problem.id.rsplit("-", 1)[1]
    with JudgeServer() as server:
        v = RubricVerifier(judge={"type": "openai", "base_url": server.url, "max_retries": 0})
        # Essential 5 + Important 3 (one sentence) + Important 3 (3-25 words) + Important 3 (judge)
        all_met = v.verify(problem, Completion(f"The {word} ocean waves roll in at dawn."))
        no_judge = v.verify(problem, Completion(f"The {word} waves roll in at dawn."))
        no_word = v.verify(problem, Completion("The ocean waves roll in at dawn."))
        v.close()
    assert all_met.reward == 1.0 and all_met.passed
    assert no_judge.reward == 11 / 14 and no_judge.passed
    judged = {i["id"]: i["by"] for i in no_judge.info["items"]}
    assert judged["on_topic"] == "judge" and judged["word"] == "check"
    assert no_word.reward == 9 / 14 and not no_word.passed
    assert len(server.requests) == 3
