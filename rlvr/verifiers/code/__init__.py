"""`CodeVerifier` (name `code`): run the completion's program in the sandbox, judge from outside.

It reads `problem.reference`:

- `tests`, and `test_format`:
  - `"io"`: a list of `{"input": str, "output": str}`; the program runs once per case with the
    input on stdin; its stdout is compared by the verifier, whitespace-normalised (and numbers
    within `float_tolerance`, when set);
  - `"function"`: a list of `{"input": [args...] | {"args": [...], "kwargs": {...}},
    "output": value}`; `entry_point` names the function; each result comes back as strictly
    serialised plain data and is compared type-strictly by the verifier;
  - `"assert"` (default): a Python script of asserts (HumanEval's `check(candidate)` or MBPP's
    module-level lines). Asserts are split by `rlvr.verifiers.code.asserts`: the candidate's side
    runs beside the candidate's code, the expected side apart from it, the comparison here; the
    rest of the script runs beside the candidate as one more case, passed only when the run
    prints a per-run random nonce after all of it.
- `entry_point` (function and assert formats), `prelude` (code given in the prompt, placed before
  the candidate's code; a completion whose block starts indented continues it).

The program is the last fenced code block of the completion (`rlvr.verifiers.code.extract`).
Reward: the fraction of cases passed with `partial_credit`, else 1 only when all pass. A program
that fails, crashes or times out gets a `Verdict` with reward 0 (status `failed_tests`,
`timeout`, `memory_limit`, `no_code`); a sandbox failure raises `SandboxError`, never a 0. Model
text is never evaluated in this process: values cross as JSON and are compared here.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import secrets
from typing import Any, Mapping, Sequence

from rlvr.errors import VerifierError
from rlvr.sandbox.base import ExecutionResult, Limits, Program, Sandbox, make_sandbox
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.code import asserts, values
from rlvr.verifiers.code.extract import last_code_block, with_prelude

__all__ = ["CodeVerifier"]

FORMATS = ("io", "function", "assert")
_CACHE_ENTRIES = 512


def _runner_source() -> str:
    with open(os.path.join(os.path.dirname(__file__), "runner.py"), encoding="utf-8") as fh:
        return fh.read()


RUNNER_SOURCE = _runner_source()


class _Outcome:
    """Per-case results of one verification, and what the sandbox reported."""

    def __init__(self) -> None:
        self.passed: list[bool] = []
        self.failures: list[dict[str, Any]] = []
        self.runs: list[ExecutionResult] = []

    def add(self, ok: bool, **why: Any) -> None:
        self.passed.append(ok)
        if not ok and len(self.failures) < 5:
            self.failures.append(why)


class CodeVerifier:
    """Judges code completions against tests (see the module docstring).

    Options: `sandbox` (backend name, default "docker"), `sandbox_options` (passed to it),
    `partial_credit` (reward = fraction of cases passed; default all-or-nothing), `timeout_s`,
    `memory_mb`, `pids`, `cpus`, `output_bytes`, `disk_mb` (limits of each sandbox run),
    `float_tolerance` (io tokens and function results), `allow_unfenced` (take a completion
    without a code fence whole). The sandbox is created on first use, so the verifier pickles.
    """

    name = "code"

    def __init__(self, sandbox: str | Sandbox = "docker", sandbox_options: Mapping[str, Any] | None = None,
                 partial_credit: bool = False, timeout_s: float = 5.0, memory_mb: int = 512,
                 pids: int = 64, cpus: float = 1.0, output_bytes: int = 1 << 20, disk_mb: int = 64,
                 float_tolerance: float | None = None, allow_unfenced: bool = False):
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, pids=pids, cpus=cpus,
                             output_bytes=output_bytes, disk_mb=disk_mb)
        self.sandbox_name = sandbox if isinstance(sandbox, str) else None
        self.sandbox_options = dict(sandbox_options or {})
        self.partial_credit, self.float_tolerance = partial_credit, float_tolerance
        self.allow_unfenced = allow_unfenced
        self._sandbox: Sandbox | None = None if isinstance(sandbox, str) else sandbox
        self._expected_cache: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._plans: collections.OrderedDict[str, asserts.Plan] = collections.OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.sandbox_name is not None:
            state["_sandbox"] = None
        state["_expected_cache"] = collections.OrderedDict()
        state["_plans"] = collections.OrderedDict()
        return state

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = make_sandbox(self.sandbox_name or "docker", self.sandbox_options)
        return self._sandbox

    # ---- the protocol ---------------------------------------------------------------------

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        reference = problem.reference
        test_format = reference.get("test_format", "assert")
        if test_format not in FORMATS:
            raise VerifierError(f"problem {problem.id}: test_format {test_format!r} is not one of "
                                f"{', '.join(FORMATS)}")
        if "tests" not in reference:
            raise VerifierError(f"problem {problem.id} has no 'tests' in its reference")
        code = last_code_block(completion.text, self.allow_unfenced)
        if code is None:
            return Verdict(0.0, False, "no_code", {"error": "no fenced code block"})
        code = with_prelude(code, reference.get("prelude") or "")
        tests, entry_point = reference["tests"], reference.get("entry_point")
        if test_format == "io":
            outcome = self._io(code, tests, problem.id)
        elif test_format == "function":
            outcome = self._function(code, tests, entry_point, problem.id)
        else:
            outcome = self._asserts(code, tests, entry_point, problem.id)
        return self._verdict(outcome)

    def _verdict(self, outcome: _Outcome) -> Verdict:
        total, good = len(outcome.passed), sum(outcome.passed)
        all_passed = total > 0 and good == total
        reward = good / total if self.partial_credit and total else float(all_passed)
        status = "passed"
        if not all_passed:
            status = "failed_tests"
            if any(r.timed_out for r in outcome.runs):
                status = "timeout"
            elif any(r.oom_killed for r in outcome.runs):
                status = "memory_limit"
        last = outcome.runs[-1] if outcome.runs else None
        info: dict[str, Any] = {"cases": total, "passed_cases": good, "failures": outcome.failures}
        if last is not None and not all_passed:
            info.update(exit_code=last.exit_code, timed_out=last.timed_out,
                        oom_killed=last.oom_killed, stderr_tail=last.stderr[-1000:])
        return Verdict(reward, all_passed, status, info)

    def _run(self, program: Program, outcome: _Outcome | None = None) -> ExecutionResult:
        result = self.sandbox.run(program, self.limits)  # SandboxError goes up: never a 0
        if outcome is not None:
            outcome.runs.append(result)
        return result

    # ---- stdin/stdout ---------------------------------------------------------------------

    def _io(self, code: str, tests: Any, problem_id: str) -> _Outcome:
        cases = _check_list(tests, problem_id, ("input", "output"))
        outcome = _Outcome()
        for k, case in enumerate(cases):
            result = self._run(Program(code, stdin=str(case["input"])), outcome)
            ok = result.ok and values.same_output(result.stdout, str(case["output"]),
                                                  self.float_tolerance)
            outcome.add(ok, case=k, stdout_head=result.stdout[:200])
            if not ok and not self.partial_credit:
                outcome.passed += [False] * (len(cases) - k - 1)
                break
        return outcome

    # ---- function calls -------------------------------------------------------------------

    def _function(self, code: str, tests: Any, entry_point: Any, problem_id: str) -> _Outcome:
        cases = _check_list(tests, problem_id, ("input", "output"))
        if not isinstance(entry_point, str) or not entry_point.isidentifier():
            raise VerifierError(f"problem {problem_id}: function tests need an entry_point name")
        calls = []
        for k, case in enumerate(cases):
            given = case["input"]
            args, kwargs = (given.get("args", []), given.get("kwargs", {})) \
                if isinstance(given, dict) else (given, {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise VerifierError(f"problem {problem_id}: case {k} input must be a list of "
                                    "arguments or {args, kwargs}")
            calls.append({"id": k, "args": args, "kwargs": kwargs})
        records, result, outcome = self._run_runner({"solution": code, "entry_point": entry_point,
                                                      "cases": calls})
        for k, case in enumerate(cases):
            actual, error = _value_of(records, k)
            ok = error is None and values.strict_equal(actual, case["output"], self.float_tolerance)
            outcome.add(ok, case=k, error=error)
        return outcome

    def _run_runner(self, config: dict[str, Any]) -> tuple[list[dict], ExecutionResult, _Outcome]:
        nonce = secrets.token_hex(16)
        outcome = _Outcome()
        result = self._run(Program(RUNNER_SOURCE, stdin=json.dumps({"nonce": nonce, **config})),
                           outcome)
        if result.timed_out or result.oom_killed or result.stdout_truncated or result.stderr_truncated:
            return [], result, outcome  # a run past a limit counts for nothing, printed or not
        return values.parse_result_lines(result.stdout, nonce), result, outcome

    # ---- assert scripts -------------------------------------------------------------------

    def _asserts(self, code: str, tests: Any, entry_point: Any, problem_id: str) -> _Outcome:
        if not isinstance(tests, str):
            raise VerifierError(f"problem {problem_id}: assert tests must be a Python script")
        plan = self._plan(tests, entry_point if isinstance(entry_point, str) else None)
        if not plan.cases and plan.inside is None:
            raise VerifierError(f"problem {problem_id}: the test script has no asserts")
        expected = self._expected_values(plan, tests, problem_id)
        records, result, outcome = self._run_runner({
            "solution": code, "entry_point": entry_point,
            "cases": [{"id": c.id, "expr": c.actual} for c in plan.cases], "inside": plan.inside})
        for case in plan.cases:
            actual, error = _value_of(records, case.id)
            ok = error is None and values.compare(actual, case.op, expected.get(case.id),
                                                  case.tolerance)
            outcome.add(ok, line=case.line, error=error)
        if plan.inside is not None:
            outcome.add(any(r.get("inside") == "ok" for r in records), line="unsplit asserts")
        return outcome

    def _plan(self, tests: str, entry_point: str | None) -> asserts.Plan:
        key = hashlib.sha256(f"{entry_point}\0{tests}".encode("utf-8")).hexdigest()
        if key not in self._plans:
            self._plans[key] = asserts.plan(tests, entry_point)
            while len(self._plans) > _CACHE_ENTRIES:
                self._plans.popitem(last=False)
        return self._plans[key]

    def _expected_values(self, plan: asserts.Plan, tests: str, problem_id: str) -> dict[int, Any]:
        """Expected sides: literals parsed here, the rest from one sandbox run without the
        candidate (cached per test script)."""
        known = {c.id: c.expected_value for c in plan.cases if c.expected_value is not asserts.NO_LITERAL}
        if not plan.needs_expected_run:
            return known
        key = hashlib.sha256(tests.encode("utf-8")).hexdigest()
        if key not in self._expected_cache:
            todo = [c for c in plan.cases if c.expected is not None and c.id not in known]
            records, result, _ = self._run_runner({"prelude": plan.prelude, "cases": [
                {"id": c.id, "expr": c.expected} for c in todo]})
            computed = {}
            for case in todo:
                value, error = _value_of(records, case.id)
                if error is not None:
                    raise VerifierError(f"problem {problem_id}: the expected side of the assert on "
                                        f"line {case.line} cannot be evaluated ({error}); "
                                        f"stderr: {result.stderr[-500:]}")
                computed[case.id] = value
            self._expected_cache[key] = computed
            while len(self._expected_cache) > _CACHE_ENTRIES:
                self._expected_cache.popitem(last=False)
        return {**known, **self._expected_cache[key]}


def _value_of(records: Sequence[dict], case_id: int) -> tuple[Any, str | None]:
    """(decoded value, None) of the first record for `case_id`, or (None, why it has none)."""
    for record in records:
        if record.get("case") != case_id:
            continue
        if "error" in record:
            return None, str(record["error"])[:300]
        try:
            return values.decode(record.get("value")), None
        except values.ValueFormatError as exc:
            return None, f"malformed result: {exc}"
    return None, "no result (the program exited, crashed or timed out before this case)"


def _check_list(tests: Any, problem_id: str, keys: Sequence[str]) -> list[dict]:
    if not isinstance(tests, list) or not tests or not all(
            isinstance(t, dict) and all(k in t for k in keys) for t in tests):
        raise VerifierError(f"problem {problem_id}: tests must be a non-empty list of objects "
                            f"with {' and '.join(keys)}")
    return tests
