"""The code verifier without Docker: extraction, marking the cases of assert scripts, plain data,
bad references, the lifecycle and budget, and every test format end to end through the subprocess
backend (the Docker backend: test_code_forging.py and test_code_humaneval.py)."""

import pickle

import pytest

from rlvr.errors import BadReferenceError, SandboxError
from rlvr.sandbox.base import ExecutionResult
from rlvr.types import Completion, Problem
from rlvr.verifiers.base import make_verifier
from rlvr.verifiers.code import CodeVerifier, asserts, values
from rlvr.verifiers.code.extract import last_code_block, with_prelude

HUMANEVAL_STYLE = """
METADATA = {}


def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(-1, 1) == 0
    assert abs(candidate(0.1, 0.2) - 0.3) < 1e-9
    assert candidate(2, 2) != 5
"""


def block(code: str) -> str:
    return f"Here you go:\n```python\n{code}\n```\nDone."


def problem(tests, fmt="assert", entry_point="add", **extra) -> Problem:
    return Problem("p1", "", "code", {"tests": tests, "test_format": fmt, "entry_point": entry_point,
                                      **extra})


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    return CodeVerifier(sandbox="subprocess", timeout_s=5)


# ---- extraction -------------------------------------------------------------------------------

def test_last_closed_block_wins():
    text = "```python\nx = 1\n```\nthen\n```\ny = 2\n```\n```python\nunclosed"
    assert last_code_block(text) == "y = 2\n"


def test_no_block_is_none_unless_unfenced_allowed():
    assert last_code_block("print(1)") is None
    assert last_code_block("print(1)", allow_unfenced=True) == "print(1)"


def test_indented_block_continues_the_prelude():
    prelude = 'def f(x):\n    """doc"""\n'
    assert with_prelude("    return x\n", prelude) == prelude + "    return x\n"
    assert with_prelude("def f(x):\n    return x\n", prelude).startswith(prelude.rstrip("\n") + "\n\n")


# ---- marking cases ------------------------------------------------------------------------------

def test_humaneval_asserts_become_cases_inside_check():
    plan = asserts.plan(HUMANEVAL_STYLE, "add")
    assert plan.lines == (6, 7, 8, 9) and plan.cases == 4
    assert plan.script.rstrip().endswith("check(__rlvr_candidate__)")
    assert plan.script.count("__rlvr_case__(") == 8  # one for the pass, one for the failure


def test_mbpp_asserts_are_cases_at_module_level():
    plan = asserts.plan("import math\nassert add(1, 2) == 3\nassert not add(0, 0)\n", "add")
    assert plan.lines == (2, 3) and "check(" not in plan.script


def test_a_loop_of_asserts_is_one_case():
    script = "def check(candidate):\n    for x in range(3):\n        assert candidate(x, x) == 2 * x\n"
    assert asserts.plan(script, "add").lines == (2,)


def test_a_script_that_calls_its_own_checking_function_needs_no_entry_point():
    plan = asserts.plan("def check(f):\n    assert f(2) == 4\n\ncheck(square)\n", None)
    assert plan.lines == (4,) and "__rlvr_candidate__" not in plan.script


def test_unusable_test_scripts_are_script_errors():
    for script, entry_point in (("assert (", "add"), ("x = 1\n", "add"), ("\0", "add"),
                                ("def check(candidate):\n    assert candidate(1)\n", None),
                                ("def helper():\n    assert add(1) == 2\n", "add")):
        with pytest.raises(asserts.ScriptError):
            asserts.plan(script, entry_point)


# ---- values -------------------------------------------------------------------------------------

def test_decode_builds_only_builtin_values():
    wire = {"tuple": [1, {"set": ["a"]}, {"dict": [["k", {"list": [1.5, None]}]]}, {"bytes": "ff"}]}
    assert values.decode(wire) == (1, {"a"}, {"k": [1.5, None]}, b"\xff")
    with pytest.raises(values.ValueFormatError):
        values.decode({"object": []})
    with pytest.raises(values.ValueFormatError):
        values.decode({"set": [{"list": [1]}]})  # unhashable


def test_strict_equal_is_type_strict():
    assert values.strict_equal((1, [2]), [1, [2]])
    assert not values.strict_equal(True, 1) and not values.strict_equal(1, 1.0)
    assert values.strict_equal(1, 1.0, float_tolerance=1e-9)
    assert values.strict_equal(0.1 + 0.2, 0.3, float_tolerance=1e-9)


def test_output_comparison_normalises_whitespace():
    assert values.same_output("1  2\r\n3\n\n", "1 2\n3")
    assert not values.same_output("1 2 3", "1 2\n3")
    assert values.same_output("0.3333333", "0.33333333", float_tolerance=1e-6)


# ---- end to end through the subprocess backend -----------------------------------------------

def test_correct_assert_solution_passes(verifier):
    verdict = verifier.verify(problem(HUMANEVAL_STYLE), Completion(block("def add(a, b):\n    return a + b")))
    assert verdict.passed and verdict.reward == 1.0 and verdict.info["cases"] == 4


def test_wrong_solution_fails_with_partial_credit_when_asked():
    completion = Completion(block("def add(a, b):\n    return 3"))
    assert verifier_of(partial_credit=False).verify(problem(HUMANEVAL_STYLE), completion).reward == 0
    verdict = verifier_of(partial_credit=True).verify(problem(HUMANEVAL_STYLE), completion)
    assert verdict.reward == 0.5 and verdict.status == "failed_tests"


def verifier_of(**options) -> CodeVerifier:
    return CodeVerifier(sandbox="subprocess", **options)


def test_rigged_eq_object_cannot_cross(verifier):
    code = "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n" \
           "def add(a, b):\n    return A()"
    verdict = verifier.verify(problem(HUMANEVAL_STYLE), Completion(block(code)))
    assert verdict.reward == 0 and "not plain data" in verdict.info["failures"][0]["error"]


def test_non_literal_expected_side_is_evaluated_apart(verifier):
    tests = "import math\nassert add(1, 2) == math.floor(3.5)\nassert add(2, 2) == sorted([4])[0]\n"
    good = verifier.verify(problem(tests), Completion(block("def add(a, b):\n    return a + b")))
    bad = verifier.verify(problem(tests), Completion(block("def add(a, b):\n    return 0")))
    assert good.passed and not bad.passed


def test_function_format_is_type_strict(verifier):
    tests = [{"input": [1, 2], "output": 3}, {"input": {"args": [2], "kwargs": {"b": 5}}, "output": 7}]
    good = verifier.verify(problem(tests, "function"), Completion(block("def add(a, b):\n    return a + b")))
    floaty = verifier.verify(problem(tests, "function"),
                             Completion(block("def add(a, b):\n    return float(a + b)")))
    assert good.passed and not floaty.passed


def test_io_format_compares_stdout(verifier):
    tests = [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5", "output": "10"}]
    good = verifier.verify(problem(tests, "io"), Completion(block("a, b = map(int, input().split())\nprint(a + b)")))
    bad = verifier.verify(problem(tests, "io"), Completion(block("print(3)")))
    assert good.passed and not bad.passed and bad.info["passed_cases"] == 1


def test_missing_code_block_is_the_models_failure(verifier):
    verdict = verifier.verify(problem(HUMANEVAL_STYLE), Completion("def add(a, b): return a + b"))
    assert verdict.status == "no_code" and verdict.reward == 0


def test_bad_problem_data_is_a_bad_reference_with_its_context(verifier):
    for bad in (problem(HUMANEVAL_STYLE, fmt="yaml"), problem("x = 1\n"), problem("assert (\n"),
                problem([1, 2], fmt="io"), problem([{"input": [1], "output": 1}], "function", None),
                Problem("p1", "", "code", {"test_format": "assert"})):
        with pytest.raises(BadReferenceError) as caught:
            verifier.verify(bad, Completion(block("pass")))
        assert caught.value.problem_id == "p1" and caught.value.verifier == "code"


def test_prompt_code_that_raises_is_a_bad_reference(verifier):
    with pytest.raises(BadReferenceError, match="prompt"):
        verifier.verify(problem(HUMANEVAL_STYLE, prelude="raise ValueError('broken prompt')\n"),
                        Completion(block("def add(a, b):\n    return a + b")))


def test_own_checking_function_judges_a_correct_solution(verifier):
    tests = "def check(f):\n    assert f(2) == 4\n    assert f(-3) == 9\n\ncheck(square)\n"
    right = verifier.verify(problem(tests, entry_point="square"), Completion(block("def square(x):\n    return x * x")))
    wrong = verifier.verify(problem(tests, entry_point="square"), Completion(block("def square(x):\n    return 4")))
    assert right.passed and right.status == "passed" and not wrong.passed


def test_lifecycle_and_budget():
    verifier = CodeVerifier(sandbox="subprocess", timeout_s=2, startup_grace_s=1)
    verifier.warmup()
    assert verifier.budget_s(problem(HUMANEVAL_STYLE)) == 2 + 3 + 1
    io = problem([{"input": "", "output": ""}] * 3, "io")
    assert verifier.budget_s(io) == 3 * (2 + 3) + 1
    assert verifier.verify(problem(HUMANEVAL_STYLE), Completion(block("def add(a, b):\n    return a + b"))).passed
    verifier.close()
    assert verifier._sandbox is None
    verifier.close()  # twice is fine
    given = BrokenSandbox()
    given.grace_s = 0.5  # a sandbox object passed in: its own host grace counts
    assert CodeVerifier(sandbox=given, timeout_s=2, startup_grace_s=1).budget_s(problem(HUMANEVAL_STYLE)) == 3.5


class BrokenSandbox:
    def run(self, program, limits) -> ExecutionResult:
        raise SandboxError("engine down")


def test_sandbox_failure_raises_never_scores_zero():
    with pytest.raises(SandboxError):
        CodeVerifier(sandbox=BrokenSandbox()).verify(problem(HUMANEVAL_STYLE), Completion(block("pass")))


def test_registered_and_picklable():
    verifier = make_verifier("code", {"sandbox": "subprocess", "partial_credit": True})
    clone = pickle.loads(pickle.dumps(verifier))
    assert isinstance(clone, CodeVerifier) and clone.partial_credit and clone._sandbox is None


def test_offline_jsonl_lines_of_every_format(tmp_path):
    import json

    from rlvr.verifiers.offline import verify_file

    add = "```python\ndef add(a, b):\n    return a + b\n```"
    lines = [
        {"verifier": "code", "test_format": "io", "tests": [{"input": "1 2", "output": "3"}],
         "completion": "```python\nprint(sum(map(int, input().split())))\n```"},
        {"verifier": "code", "test_format": "function", "entry_point": "add", "completion": add,
         "tests": [{"input": [1, 2], "output": 3}]},
        {"verifier": "code", "test_format": "assert", "entry_point": "add", "completion": add,
         "tests": "assert add(1, 2) == 3\n"},
        {"verifier": "code", "test_format": "assert", "entry_point": "add", "completion": "no code",
         "tests": "assert add(1, 2) == 3\n"},
    ]
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = verify_file(str(source), str(out), workers=1, timeout_s=30, memory_mb=2048,
                          options={"code": {"sandbox": "subprocess"}}, progress=False)
    statuses = [json.loads(line)["status"] for line in out.read_text().splitlines()]
    assert statuses == ["passed", "passed", "passed", "no_code"] and summary.passed == 3


def test_mbpp_fixture_reference_solutions_pass_and_stubs_fail(verifier):
    import json
    import warnings
    from pathlib import Path

    from rlvr.tasks.base import make_task

    path = Path(__file__).parent.parent / "fixtures" / "mbpp" / "mbpp.jsonl"
    code = {f"mbpp-{row['task_id']}": row["code"] for row in map(json.loads, path.read_text().splitlines())
            if isinstance(row.get("code"), str)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture has malformed rows on purpose
        problems = make_task("mbpp", {"data_files": {"test": str(path)}}).problems("test")
    assert len(problems) >= 5
    for p in problems:
        stub = f"def {p.reference['entry_point']}(*args):\n    return None"
        assert verifier.verify(p, Completion(block(code[p.id]))).passed, p.id
        assert not verifier.verify(p, Completion(block(stub))).passed, p.id


def test_runner_falls_back_to_its_source_where_the_bytecode_format_differs():
    import importlib.util
    import json

    from rlvr.sandbox.base import Limits, Program
    from rlvr.sandbox.subprocess import SubprocessSandbox
    from rlvr.verifiers import code

    program = code._runner_program(code.RUNNER_SOURCE)
    foreign = program.replace(repr(importlib.util.MAGIC_NUMBER.hex()), repr("00000000"))
    assert foreign != program
    config = {"nonce": "n" * 32, "mode": "function", "solution": "def add(a, b):\n    return a + b\n",
              "entry_point": "add", "cases": [{"id": 0, "args": [1, 2], "kwargs": {}}]}
    for source in (program, foreign):
        result = SubprocessSandbox().run(Program(source, stdin=json.dumps(config)), Limits())
        assert values.parse_result_lines(result.stdout, "n" * 32) == [
            {"case": 0, "value": 3}, {"done": True}], result.stderr


def test_results_cross_only_as_bounded_plain_data(verifier):
    tests = [{"input": [1, 2], "output": 3}]
    for body, why in (("return ['x' * 1000] * 9000", "over"), ("x = []\n    for _ in range(200):\n        x = [x]\n"
                                                          "    return x", "deeply"),
                      ("return iter([3])", "not plain data"), ("return 10 ** 5000", "")):
        verdict = verifier.verify(problem(tests, "function"), Completion(block(f"def add(a, b):\n    {body}")))
        assert verdict.reward == 0 and why in str(verdict.info["failures"]), (body, verdict.info)

