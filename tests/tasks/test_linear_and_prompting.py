"""Linear equations, prompt styles, the reasoning-gym adapter and the task registry."""

from __future__ import annotations

import re

import pytest

from rlvr.errors import ConfigError, PluginError
from rlvr.tasks.base import available_tasks, make_task
from rlvr.tasks.linear import LinearEquationTask
from rlvr.tasks.prompting import PromptStyle


def _solve(text: str) -> int:
    """Solve the rendered equation `ax + b = cx + d` by reading its coefficients back."""
    eq = re.search(r"Solve for x: (.*)\n", text).group(1)
    left, right = eq.split(" = ")

    def coefs(side: str) -> tuple[int, int]:
        side = side.replace(" - ", " + -").replace(" ", "")
        a = b = 0
        for term in side.split("+"):
            if term.endswith("x"):
                a += int(term[:-1]) if term[:-1] not in ("", "-") else (1 if term == "x" else -1)
            elif term:
                b += int(term)
        return a, b

    (a, b), (c, d) = coefs(left), coefs(right)
    assert (d - b) % (a - c) == 0
    return (d - b) // (a - c)


@pytest.mark.parametrize("level", [1, 2])
def test_linear_equations_have_the_referenced_integer_solution(level):
    task = LinearEquationTask(level=level, test_size=40, train_size=200, seed=5)
    for p in list(task.problems("test")) + list(task.problems("train"))[:50]:
        assert _solve(p.prompt[-1]["content"]) == int(p.reference["answer"]), p.prompt
        assert p.verifier == "integer"


def test_linear_splits_are_seeded_and_disjoint():
    a, b = make_task("linear", {"level": [1, 2], "train_size": 300}), LinearEquationTask(level=[1, 2], train_size=300)
    assert a.problems("test") == b.problems("test")
    assert not {p.id for p in a.problems("test")} & {p.id for p in a.problems("train")}
    assert {p.id.split("-")[0] for p in a.problems("train")} == {"linear1", "linear2"}
    with pytest.raises(ConfigError, match="could only draw"):
        LinearEquationTask(max_solution=1, max_coef=2, test_size=10, train_size=10_000)
    with pytest.raises(ConfigError, match="level"):
        LinearEquationTask(level=3)


def test_prompt_style_chat_with_system_prompt_and_few_shot():
    style = PromptStyle.from_options({"system_prompt": "Be brief.", "answer_format": "tags",
                                      "few_shot": [{"question": "1+1?", "answer": "<answer>2</answer>"}]})
    msgs = style.render("2+2?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"].startswith("1+1?\n\n") and "<answer>" in msgs[3]["content"]
    assert msgs[2]["content"] == "<answer>2</answer>"


def test_prompt_style_plain_and_custom_instruction():
    style = PromptStyle.from_options({"chat": False, "instruction": "Answer with a number.",
                                      "few_shot": [{"question": "1+1?", "answer": "2"}]})
    assert style.render("2+2?") == ("Question: 1+1?\n\nAnswer with a number.\nAnswer: 2\n\n"
                                    "Question: 2+2?\n\nAnswer with a number.\nAnswer:")
    assert PromptStyle(answer_format="none").render("hi") == ({"role": "user", "content": "hi"},)


@pytest.mark.parametrize("opts,match", [({"answer_format": "json"}, "answer_format"),
                                        ({"few_shot": ["2"]}, "few_shot"),
                                        ({"chat": "yes"}, "chat"), ({"sytem_prompt": "x"}, "sytem_prompt")])
def test_prompt_style_errors_name_the_option(opts, match):
    with pytest.raises(ConfigError, match=match):
        PromptStyle.from_options(opts)


def test_tasks_are_registered():
    names = available_tasks()
    for name in ("arithmetic", "countdown", "linear", "gsm8k", "math", "mbpp", "file", "reasoning_gym"):
        assert name in names
    with pytest.raises(PluginError, match="choose one of"):
        make_task("no-such-task")


def test_reasoning_gym_adapter_uses_rlvr_verifiers_and_disjoint_splits():
    pytest.importorskip("reasoning_gym")
    task = make_task("reasoning_gym", {"dataset": "basic_arithmetic", "test_size": 20,
                                       "train_size": 200, "verifier": "integer"})
    test, train = task.problems("test"), task.problems("train")
    assert len(test) == 20 and 150 <= len(train) <= 200
    assert not {p.prompt[-1]["content"] for p in test} & {p.prompt[-1]["content"] for p in train}
    assert all(p.verifier == "integer" and "answer" in p.reference for p in test)
    assert "<answer>" in test[0].prompt[-1]["content"]
    with pytest.raises(ConfigError, match="unknown dataset"):
        make_task("reasoning_gym", {"dataset": "nope"})


def test_reasoning_gym_missing_gives_the_install_hint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # makes `import reasoning_gym` fail
    with pytest.raises(PluginError, match="pip install reasoning-gym"):
        make_task("reasoning_gym", {"dataset": "basic_arithmetic"})
