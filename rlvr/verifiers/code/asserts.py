"""Prepare an assert-style test script (HumanEval / MBPP) for the sandbox's test process.

`plan(test_source, entry_point)` reads the script with `ast` (never executes it here) and marks
its *cases*: each statement that contains an assert, or calls a function of the script that
does, becomes

    try:
        <statement>
    except Exception as __rlvr_error__:
        __rlvr_case__(<n>, __rlvr_error__)
    else:
        __rlvr_case__(<n>, None)

so the test process (`rlvr.verifiers.code.runner`) can report each case as it passes or fails.
Scripts that define `check(candidate)` without calling it (HumanEval) get their cases inside
`check`, and end with `check(__rlvr_candidate__)`; other scripts (MBPP's module-level asserts,
or a script that defines its own checking function and calls it) get their cases at module level.
Everything else in the script runs as written, in the test process, beside the prompt's code and
never beside the candidate's.

`Plan.names` lists the names the script reads that are not builtins: in the test process, each of
them that the prompt's code does not define becomes a proxy of the candidate's function of that
name, which the script's own definitions (and imports, `from m import *` included) then replace
as they run. It does not judge anything.
"""

from __future__ import annotations

import ast
import builtins
import copy
from dataclasses import dataclass

from rlvr.verifiers.code.runner import CANDIDATE, CASE_HOOK

_BUILTINS = frozenset(dir(builtins))
_ERROR = "__rlvr_error__"
_NOT_CASES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


class ScriptError(ValueError):
    """The test script cannot be used: not valid Python, or nothing in it asserts."""


@dataclass(frozen=True)
class Plan:
    script: str  # the script with its cases wrapped, as run by the test process
    lines: tuple[int, ...]  # the line of each case in the original script
    names: tuple[str, ...]  # names the script reads, not builtins: proxies where nothing else binds them

    @property
    def cases(self) -> int:
        return len(self.lines)


def _asserting_functions(tree: ast.Module) -> set[str]:
    """Names of the functions anywhere in the script whose bodies contain an assert."""
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any(isinstance(n, ast.Assert) for s in node.body for n in ast.walk(s))}


def _is_case(stmt: ast.stmt, asserting: set[str]) -> bool:
    if isinstance(stmt, _NOT_CASES):
        return False
    return any(isinstance(n, ast.Assert) or (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                                             and n.func.id in asserting)
               for n in ast.walk(stmt))


def _hook(number: int, error: ast.expr) -> ast.stmt:
    return ast.Expr(ast.Call(ast.Name(CASE_HOOK, ast.Load()), [ast.Constant(number), error], []))


def _wrap(stmt: ast.stmt, number: int) -> ast.stmt:
    handler = ast.ExceptHandler(ast.Name("Exception", ast.Load()), _ERROR,
                                [_hook(number, ast.Name(_ERROR, ast.Load()))])
    return ast.copy_location(ast.Try([stmt], [handler], [_hook(number, ast.Constant(None))], []), stmt)


def _mark(body: list[ast.stmt], asserting: set[str], lines: list[int]) -> list[ast.stmt]:
    marked = []
    for stmt in body:
        if _is_case(stmt, asserting):
            marked.append(_wrap(stmt, len(lines)))
            lines.append(stmt.lineno)
        else:
            marked.append(stmt)
    return marked


def _calls(tree: ast.Module, name: str) -> bool:
    """Whether module-level code (outside definitions) calls `name`."""
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
               for stmt in tree.body if not isinstance(stmt, _NOT_CASES) for n in ast.walk(stmt))


def plan(test_source: str, entry_point: str | None) -> Plan:
    """The marked script; `ScriptError` when it is not valid Python or has no case to run."""
    try:
        tree = ast.parse(test_source)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
        raise ScriptError(f"the test script is not valid Python: {exc}") from exc
    if not any(isinstance(n, ast.Assert) for n in ast.walk(tree)):
        raise ScriptError("the test script has no asserts")
    asserting = _asserting_functions(tree)
    check = next((s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"
                  and s.args.args), None)
    lines: list[int] = []
    if check is not None and not _calls(tree, "check"):
        if not entry_point:
            raise ScriptError("a test script with check(candidate) needs an entry_point")
        call = ast.Expr(ast.Call(ast.Name("check", ast.Load()), [ast.Name(CANDIDATE, ast.Load())], []))
        new_check = copy.copy(check)
        new_check.body = _mark(check.body, asserting, lines)
        body = [new_check if s is check else s for s in tree.body]
        body.append(ast.copy_location(call, check) if lines else _wrap(ast.copy_location(call, check), 0))
        if not lines:
            lines.append(check.lineno)
    else:
        body = _mark(tree.body, asserting, lines)
    if not lines:
        raise ScriptError("no statement of the test script runs an assert")
    module = ast.fix_missing_locations(ast.Module(body, type_ignores=[]))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return Plan(ast.unparse(module), tuple(lines), tuple(sorted(names - _BUILTINS)))
