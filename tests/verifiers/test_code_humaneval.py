"""HumanEval end to end on the Docker sandbox: all 164 canonical solutions pass, and the same
problems with every solution replaced by `return None` pass none."""

import time

import pytest

from rlvr.sandbox import engine
from rlvr.types import Completion
from rlvr.verifiers.code import CodeVerifier

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def verifier():
    reason = engine.unavailable_reason()
    if reason:
        pytest.skip(f"Docker sandbox unavailable: {reason}")
    verifier = CodeVerifier(timeout_s=10)
    yield verifier
    verifier.sandbox.close()


@pytest.fixture(scope="module")
def problems():
    from rlvr.tasks.humaneval import HumanEvalTask

    return HumanEvalTask().problems("test")


def solved(problem, body: str) -> Completion:
    return Completion("```python\n" + problem.reference["prelude"] + body + "\n```")


def test_all_canonical_solutions_pass(verifier, problems):
    start = time.monotonic()
    failed = [p.id for p in problems
              if not verifier.verify(p, solved(p, p.reference["canonical_solution"])).passed]
    print(f"\n164 canonical solutions verified in {time.monotonic() - start:.1f} s")
    assert failed == []


def test_return_none_passes_none(verifier, problems):
    start = time.monotonic()
    passed = [p.id for p in problems if verifier.verify(p, solved(p, "    return None\n")).passed]
    print(f"\n164 'return None' solutions verified in {time.monotonic() - start:.1f} s")
    assert passed == []


def test_body_only_completion_continues_the_prompt(verifier, problems):
    problem = problems[0]
    completion = Completion("```python\n" + problem.reference["canonical_solution"] + "```")
    assert verifier.verify(problem, completion).passed
