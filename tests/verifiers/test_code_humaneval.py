"""HumanEval end to end on the Docker sandbox: all 164 canonical solutions pass; the same
problems with every solution replaced by `return None` pass none, and so do wrong solutions
armed with each generic forging attack (frame walking, `gc` scans, builtins shadowed by module
globals, the caller's bytecode read, the prompt's helpers replaced by identities)."""

import time

import forging_helpers
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


# ---- generic forging attacks on every problem (see forging_helpers) ---------------------------

def wrong(problem, trick: str = "", body: str = "    return None\n") -> Completion:
    return Completion("```python\n" + problem.reference["prelude"] + body + "\n" + trick + "\n```")


@pytest.mark.parametrize("attack", sorted(forging_helpers.MODULE_ATTACKS))
def test_module_level_forging_attack_passes_none(verifier, problems, attack):
    trick = forging_helpers.MODULE_ATTACKS[attack]
    passed = [p.id for p in problems if verifier.verify(p, wrong(p, trick)).reward > 0]
    print(f"\n{attack}: {len(passed)}/{len(problems)} forged")
    assert passed == []


def test_reading_the_callers_bytecode_passes_none(verifier, problems):
    passed = [p.id for p in problems
              if verifier.verify(p, wrong(p, body=forging_helpers.READ_CALLER_BODY)).reward > 0]
    print(f"\ncaller bytecode: {len(passed)}/{len(problems)} forged")
    assert passed == []


def test_identity_prompt_helpers_pass_none(verifier, problems):
    with_helpers = [(p, forging_helpers.helper_names(p.reference["prelude"], p.reference["entry_point"]))
                    for p in problems]
    with_helpers = [(p, names) for p, names in with_helpers if names]
    passed = [p.id for p, names in with_helpers
              if verifier.verify(p, wrong(p, forging_helpers.identity_helpers(names),
                                          "    return next(iter(locals().values()), None)\n")).reward > 0]
    print(f"\nidentity helpers: {len(passed)}/{len(with_helpers)} forged")
    assert len(with_helpers) >= 4 and passed == []  # HumanEval/10, /32, /38, /50
