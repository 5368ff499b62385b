"""`CodeVerifier` (name `code`): run the completion's program in the sandbox, judge from outside.

It reads `problem.reference`:

- `tests`, and `test_format`:
  - `"io"`: a list of `{"input": str, "output": str}`; the program runs once per case with the
    input on stdin; its stdout is compared by the verifier, whitespace-normalised (and numbers
    within `float_tolerance`, when set);
  - `"function"`: a list of `{"input": [args...] | {"args": [...], "kwargs": {...}},
    "output": value}`; `entry_point` names the function; each result comes back as strictly
    serialised plain data and is compared type-strictly by the verifier, here;
  - `"assert"` (default): a Python script of asserts (HumanEval's `check(candidate)`, MBPP's
    module-level lines, or a script that defines and calls its own checking function). It runs
    in the sandbox's *test process*, apart from the candidate's process, which it calls through
    proxies that pass only plain data (see `rlvr.verifiers.code.runner`, which argues the
    design and says what it does not protect against); each statement that asserts is a case
    (`rlvr.verifiers.code.asserts`).
- `entry_point` (function and assert formats), `prelude` (code given in the prompt: placed
  before the candidate's code, where a completion whose block starts indented continues it, and
  run on its own in the test process, so the tests see the prompt's helpers, never the
  candidate's redefinitions of them).

The program is the last fenced code block of the completion (`rlvr.verifiers.code.extract`).
Reward: the fraction of cases passed with `partial_credit`, else 1 only when all pass. A program
that fails, crashes or times out gets a `Verdict` with reward 0 (status `failed_tests`,
`timeout`, `memory_limit`, `no_code`); a sandbox failure raises `SandboxError`, and a reference
the verifier cannot read (unknown format, no tests, a test script that is not Python or has no
asserts) raises `BadReferenceError` -- never a 0. Model text is never evaluated in this process:
results cross as tagged JSON and are compared here.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import importlib.util
import json
import marshal
import os
import secrets
import zlib
from typing import Any, Mapping, Sequence

from rlvr.errors import BadReferenceError, SandboxError
from rlvr.sandbox.base import ExecutionResult, Limits, Program, Sandbox, make_sandbox
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier
from rlvr.verifiers.code import asserts, values
from rlvr.verifiers.code.extract import last_code_block, with_prelude

__all__ = ["CodeVerifier"]

FORMATS = ("io", "function", "assert")
_CACHE_ENTRIES = 512


def _runner_source() -> str:
    with open(os.path.join(os.path.dirname(__file__), "runner.py"), encoding="utf-8") as fh:
        return fh.read()


def _runner_program(source: str) -> str:
    """The sandbox program that runs `source`: its bytecode, compiled here once, where the
    sandbox's Python has this interpreter's bytecode format (compiling the runner would cost
    each run several milliseconds), else the source itself, compiled there. Both are shipped
    compressed (about 25 KB in all)."""
    def packed(data: bytes) -> str:
        return base64.b64encode(zlib.compress(data, 9)).decode("ascii")

    magic = importlib.util.MAGIC_NUMBER.hex()
    blob = packed(marshal.dumps(compile(source, "runner.py", "exec")))
    return ("import sys, zlib, binascii\n"
            "_loader = sys.modules.get('_frozen_importlib_external')\n"
            f"if getattr(_loader, 'MAGIC_NUMBER', b'').hex() == {magic!r}:\n"
            "    import marshal\n"
            f"    _code = marshal.loads(zlib.decompress(binascii.a2b_base64({blob!r})))\n"
            "else:\n"
            f"    _code = compile(zlib.decompress(binascii.a2b_base64({packed(source.encode())!r}))"
            ".decode(), 'runner.py', 'exec')\n"
            "del _loader\n"
            "exec(_code)\n")


RUNNER_SOURCE = _runner_source()
RUNNER_PROGRAM = _runner_program(RUNNER_SOURCE)


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


class CodeVerifier(BaseVerifier):
    """Judges code completions against tests (see the module docstring).

    Options: `sandbox` (backend name, default "docker"), `sandbox_options` (passed to it),
    `partial_credit` (reward = fraction of cases passed; default all-or-nothing), `timeout_s`,
    `memory_mb`, `pids`, `cpus`, `output_bytes`, `disk_mb` (limits of each sandbox run),
    `float_tolerance` (io tokens and function results), `allow_unfenced` (take a completion
    without a code fence whole), `startup_grace_s` (what `budget_s` allows for the sandbox to
    start or replace a container). The sandbox is created on first use (or by `warmup()`), so
    the verifier pickles.
    """

    name = "code"

    def __init__(self, sandbox: str | Sandbox = "docker", sandbox_options: Mapping[str, Any] | None = None,
                 partial_credit: bool = False, timeout_s: float = 5.0, memory_mb: int = 512,
                 pids: int = 64, cpus: float = 1.0, output_bytes: int = 1 << 20, disk_mb: int = 64,
                 float_tolerance: float | None = None, allow_unfenced: bool = False,
                 startup_grace_s: float = 5.0):
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, pids=pids, cpus=cpus,
                             output_bytes=output_bytes, disk_mb=disk_mb)
        self.sandbox_name = sandbox if isinstance(sandbox, str) else None
        self.sandbox_options = dict(sandbox_options or {})
        self.partial_credit, self.float_tolerance = partial_credit, float_tolerance
        self.allow_unfenced, self.startup_grace_s = allow_unfenced, startup_grace_s
        self._sandbox: Sandbox | None = None if isinstance(sandbox, str) else sandbox
        self._plans: collections.OrderedDict[str, asserts.Plan] = collections.OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.sandbox_name is not None:
            state["_sandbox"] = None
        state["_plans"] = collections.OrderedDict()
        return state

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = make_sandbox(self.sandbox_name or "docker", self.sandbox_options)
        return self._sandbox

    # ---- lifecycle and budget -------------------------------------------------------------

    def warmup(self) -> None:
        """Connect to the sandbox engine and start its warm containers for this verifier's
        limits, so that no verification pays the start-up. `SandboxError` when it cannot."""
        warm = getattr(self.sandbox, "warm", None)  # a plug-in backend may have nothing to warm
        if warm is not None:
            warm(self.limits)

    def close(self) -> None:
        """Release the sandbox this verifier created (a sandbox passed in is its owner's)."""
        if self.sandbox_name is not None and self._sandbox is not None:
            close = getattr(self._sandbox, "close", None)
            self._sandbox = None
            if close is not None:
                close()

    def budget_s(self, problem: Problem) -> float:
        """The most wall-clock time `verify` may take on `problem`: each sandbox run's limit
        plus the host's grace for it, times the number of runs, plus start-up grace."""
        reference = problem.reference
        runs = 1
        if reference.get("test_format", "assert") == "io" and isinstance(reference.get("tests"), list):
            runs = max(1, len(reference["tests"]))
        grace_s = getattr(self._sandbox, "grace_s", None) if self.sandbox_name is None else None
        grace_s = float(self.sandbox_options.get("grace_s", 3.0) if grace_s is None else grace_s)
        return runs * (self.limits.timeout_s + grace_s) + self.startup_grace_s

    # ---- the protocol ---------------------------------------------------------------------

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        reference = problem.reference
        test_format = reference.get("test_format", "assert")
        if test_format not in FORMATS:
            raise _bad(problem.id, f"test_format {test_format!r} is not one of {', '.join(FORMATS)}")
        if "tests" not in reference:
            raise _bad(problem.id, "no 'tests' in its reference")
        code = last_code_block(completion.text, self.allow_unfenced)
        if code is None:
            return Verdict(0.0, False, "no_code", {"error": "no fenced code block"})
        prelude = reference.get("prelude") or ""
        if not isinstance(prelude, str):
            raise _bad(problem.id, "'prelude' must be a string of code")
        code = with_prelude(code, prelude)
        tests, entry_point = reference["tests"], reference.get("entry_point")
        if test_format == "io":
            outcome = self._io(code, tests, problem.id)
        elif test_format == "function":
            outcome = self._function(code, tests, entry_point, problem.id)
        else:
            outcome = self._asserts(code, tests, entry_point, prelude, problem.id)
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
            raise _bad(problem_id, "function tests need an entry_point name")
        calls = []
        for k, case in enumerate(cases):
            given = case["input"]
            args, kwargs = (given.get("args", []), given.get("kwargs", {})) \
                if isinstance(given, dict) else (given, {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise _bad(problem_id, f"case {k} input must be a list of arguments or "
                                       "{args, kwargs}")
            calls.append({"id": k, "args": args, "kwargs": kwargs})
        records, result, outcome = self._run_runner({"mode": "function", "solution": code,
                                                      "entry_point": entry_point, "cases": calls},
                                                     problem_id)
        for k, case in enumerate(cases):
            actual, error = _value_of(records, k)
            ok = error is None and values.strict_equal(actual, case["output"], self.float_tolerance)
            outcome.add(ok, case=k, error=error, got=None if error else repr(actual)[:200])
        return outcome

    def _run_runner(self, config: dict[str, Any], problem_id: str
                    ) -> tuple[list[dict], ExecutionResult, _Outcome]:
        """One run of the two-process runner. Its records count only when the test process
        finished (`done`) and the run stayed within every limit; otherwise there are none."""
        nonce = secrets.token_hex(16)
        outcome = _Outcome()
        result = self._run(Program(RUNNER_PROGRAM, stdin=json.dumps({"nonce": nonce, **config})),
                           outcome)
        records = values.parse_result_lines(result.stdout, nonce)
        for record in records:
            if "infra_error" in record:
                raise SandboxError(f"code verifier's test process: {record['infra_error']}")
            if "reference_error" in record:
                raise _bad(problem_id, str(record["reference_error"]))
        if not result.ok or not any(r.get("done") is True for r in records):
            return [], result, outcome  # a run past a limit, or cut short, counts for nothing
        return records, result, outcome

    # ---- assert scripts -------------------------------------------------------------------

    def _asserts(self, code: str, tests: Any, entry_point: Any, prelude: str,
                 problem_id: str) -> _Outcome:
        if not isinstance(tests, str):
            raise _bad(problem_id, "assert tests must be a Python script")
        plan = self._plan(tests, entry_point if isinstance(entry_point, str) else None, problem_id)
        records, result, outcome = self._run_runner({
            "mode": "script", "solution": code, "prelude": prelude, "script": plan.script,
            "names": plan.names, "entry_point": entry_point,
            "stop_on_failure": not self.partial_credit}, problem_id)
        loaded = not any("load_error" in r for r in records)
        for number, line in enumerate(plan.lines):
            record = _record_of(records, number)
            ok = loaded and record is not None and record.get("ok") is True
            outcome.add(ok, line=line, error=record.get("error") if record else _missing(records))
        return outcome

    def _plan(self, tests: str, entry_point: str | None, problem_id: str) -> asserts.Plan:
        key = hashlib.sha256(f"{entry_point}\0{tests}".encode("utf-8")).hexdigest()
        if key not in self._plans:
            try:
                self._plans[key] = asserts.plan(tests, entry_point)
            except asserts.ScriptError as exc:
                raise _bad(problem_id, str(exc)) from exc
            while len(self._plans) > _CACHE_ENTRIES:
                self._plans.popitem(last=False)
        return self._plans[key]


def _bad(problem_id: str, message: str) -> BadReferenceError:
    return BadReferenceError(f"problem {problem_id}: {message}", problem_id=problem_id,
                             verifier="code")


def _record_of(records: Sequence[dict], case_id: int) -> dict | None:
    return next((r for r in records if r.get("case") == case_id), None)


def _missing(records: Sequence[dict]) -> str:
    """Why a case has no record: the candidate's code did not load, the script stopped, or the
    run was cut short (time, memory or output limit, or the test process was killed)."""
    for key in ("load_error", "script_error"):
        found = next((r[key] for r in records if key in r), None)
        if found is not None:
            return f"{key.replace('_', ' ')}: {str(found)[:300]}"
    if records:
        return "not run (an earlier case failed)"
    return "no result (the run was cut short or its test process did not finish)"


def _value_of(records: Sequence[dict], case_id: int) -> tuple[Any, str | None]:
    """(decoded value, None) of the record for `case_id`, or (None, why it has none)."""
    record = _record_of(records, case_id)
    if record is None:
        return None, _missing(records)
    if "error" in record:
        return None, str(record["error"])[:300]
    try:
        return values.decode(record.get("value")), None
    except values.ValueFormatError as exc:
        return None, f"malformed result: {exc}"


def _check_list(tests: Any, problem_id: str, keys: Sequence[str]) -> list[dict]:
    if not isinstance(tests, list) or not tests or not all(
            isinstance(t, dict) and all(k in t for k in keys) for t in tests):
        raise _bad(problem_id, f"tests must be a non-empty list of objects with {' and '.join(keys)}")
    return tests
