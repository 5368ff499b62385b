"""Worked demonstrations of the arithmetic task: right carries, right boxes, never a test problem."""

import json
import re

import pytest

from rlvr.errors import ConfigError
from rlvr.tasks import make_task
from rlvr.tasks.demos import PLACES, demonstrations, main, operands, worked_addition
from rlvr.types import Completion, Problem
from rlvr.verifiers.integer import IntegerVerifier, boxed_integer

_COLUMN = re.compile(r"^(\w[\w-]*): (\d) \+ (\d)(?: \+ (\d))? = (\d+), write (\d)(?:, carry (\d))?\.$")
_FINAL_CARRY = re.compile(r"^(\w[\w-]*): the carry (\d), write (\d)\.$")


def check_columns(a: int, b: int, text: str) -> None:
    """Re-do the column addition from the text alone and compare every line with it."""
    lines = text.splitlines()
    xs, ys = str(a)[::-1], str(b)[::-1]
    width = max(len(xs), len(ys))
    carry, written = 0, []
    for i in range(width):
        m = _COLUMN.match(lines[i])
        assert m, lines[i]
        place, x, y, c, total, digit, out_carry = m.groups()
        assert place == PLACES[i].capitalize()
        assert int(x) == (int(xs[i]) if i < len(xs) else 0) and int(y) == (int(ys[i]) if i < len(ys) else 0)
        assert int(c or 0) == carry, f"column {i} of {a} + {b} must add the incoming carry {carry}"
        assert int(total) == int(x) + int(y) + carry and int(digit) == int(total) % 10
        carry = int(total) // 10
        assert int(out_carry or 0) == carry and (out_carry is None) == (carry == 0)
        written.append(digit)
    rest = lines[width:]
    if carry:
        m = _FINAL_CARRY.match(rest[0])
        assert m and m.group(1) == PLACES[width].capitalize() and int(m.group(2)) == int(m.group(3)) == carry
        written.append(m.group(3))
        rest = rest[1:]
    assert int("".join(reversed(written))) == a + b
    assert rest == [f"So {a} + {b} = {a + b}.", f"\\boxed{{{a + b}}}"]


@pytest.mark.parametrize("a,b", [(0, 0), (7, 5), (47, 85), (99, 99), (10, 90), (123, 9), (5, 995), (50, 50)])
def test_worked_addition_carries_and_box_are_right(a, b):
    text = worked_addition(a, b)
    check_columns(a, b, text)
    assert boxed_integer(text) == a + b


def test_hand_written_example():
    assert worked_addition(47, 85) == ("Ones: 7 + 5 = 12, write 2, carry 1.\n"
                                       "Tens: 4 + 8 + 1 = 13, write 3, carry 1.\n"
                                       "Hundreds: the carry 1, write 1.\n"
                                       "So 47 + 85 = 132.\n"
                                       "\\boxed{132}")


def test_every_generated_demonstration_is_right_under_the_strict_verifier():
    rows = demonstrations(level=2, n=400, seed=1, test_size=50)
    strict = IntegerVerifier(mode="strict")
    for row in rows:
        a, b = map(int, row["id"].split("-")[1].split("+"))
        check_columns(a, b, row["response"])
        problem = Problem(id=row["id"], prompt=tuple(row["prompt"]), verifier="integer",
                          reference={"answer": str(a + b)})
        verdict = strict.verify(problem, Completion(row["response"]))
        assert verdict.passed and verdict.info["boxed"]
    assert len({r["id"] for r in rows}) == 400


def test_prompts_are_the_tasks_own_prompts():
    rows = demonstrations(level=2, n=20, test_size=50)
    by_id = {p.id: p for p in make_task("arithmetic", {"level": 2, "test_size": 50}).problems("train")}
    for row in rows:
        assert tuple(row["prompt"]) == by_id[row["id"]].prompt


@pytest.mark.parametrize("level,test_size", [(1, 30), (2, 50), (2, 30), (4, 30)])
def test_no_demonstration_is_a_test_problem(level, test_size):
    n = 60 if level == 1 else 500
    rows = demonstrations(level=level, n=n, test_size=test_size, train_size=5000)
    test = make_task("arithmetic", {"level": level, "test_size": test_size, "train_size": 5000}).problems("test")
    test_ids = {p.id for p in test}
    test_prompts = {json.dumps(list(p.prompt)) for p in test}
    assert not {r["id"] for r in rows} & test_ids
    assert not {json.dumps(r["prompt"]) for r in rows} & test_prompts


def test_seeded():
    a = demonstrations(level=2, n=50, seed=3)
    assert a == demonstrations(level=2, n=50, seed=3)
    assert [r["id"] for r in a] != [r["id"] for r in demonstrations(level=2, n=50, seed=4)]


def test_bad_requests():
    with pytest.raises(ConfigError, match="n must be in 1..40"):
        demonstrations(level=1, n=41, test_size=60)
    with pytest.raises(ConfigError, match="not an arithmetic problem"):
        operands(make_task("countdown", {"test_size": 1, "train_size": 1}).problems("test")[0])
    with pytest.raises(ValueError):
        worked_addition(-1, 3)


def test_command_writes_jsonl(tmp_path):
    out = tmp_path / "d" / "demos.jsonl"
    assert main(["--level", "2", "-n", "7", "--test-size", "50", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == demonstrations(level=2, n=7, test_size=50)
    assert main(["--level", "1", "-n", "1000", "--out", str(out)]) == 2
