import pytest

from rlvr.errors import ConfigError
from rlvr.tasks import make_task
from rlvr.types import Completion
from rlvr.verifiers.integer import IntegerVerifier


def test_level_one_covers_all_single_digit_sums_with_disjoint_splits():
    task = make_task("arithmetic", {"level": 1, "test_size": 30})
    train, test = task.problems("train"), task.problems("test")
    assert len(train) == 70 and len(test) == 30
    assert not {p.id for p in train} & {p.id for p in test}
    assert all(r"\boxed{}" in p.prompt[-1]["content"] for p in test)


def test_problems_are_seeded_and_answers_are_right():
    a = make_task("arithmetic", {"level": 2, "seed": 3, "train_size": 50})
    b = make_task("arithmetic", {"level": 2, "seed": 3, "train_size": 50})
    assert [p.id for p in a.problems("test")] == [p.id for p in b.problems("test")]
    for p in a.problems("train"):
        x, y = p.id.split("-")[1].split("+")
        assert 10 <= int(x) <= 99 and int(p.reference["answer"]) == int(x) + int(y)
        assert IntegerVerifier().verify(p, Completion(rf"\boxed{{{int(x) + int(y)}}}")).passed


def test_mixed_levels_and_large_levels_keep_splits_disjoint():
    task = make_task("arithmetic", {"level": [1, 5], "test_size": 20, "train_size": 200})
    ids = [p.id for p in task.problems("train")]
    assert len(ids) == len(set(ids)) == 80 + 200
    assert not set(ids) & {p.id for p in task.problems("test")}


@pytest.mark.parametrize("options", [{"level": 0}, {"level": "one"}, {"test_size": 100}, {"colour": 1}])
def test_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        make_task("arithmetic", options)


def test_unknown_split_is_an_error():
    with pytest.raises(ConfigError, match="split"):
        make_task("arithmetic").problems("validation")
