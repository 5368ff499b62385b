"""Split an assert-style test script (HumanEval / MBPP) into cases judged outside the candidate.

`plan(test_source, entry_point)` reads the script with `ast` (never executes it) and turns every
top-level assert of a recognised shape into a `Case`: the candidate's side (an expression over the
candidate's names and builtins only) is evaluated next to the candidate's code and serialised as
plain data; the expected side (literals, builtins and the script's module-level names only) is
evaluated apart from the candidate (a literal is parsed here with `ast.literal_eval`; anything
else by a separate sandbox run of the script's module-level code); the verifier compares.
Recognised shapes, with C the candidate side and E the expected side:

    assert C == E          assert E == C          assert C != E
    assert C is None|True|False                   assert C is not None|True|False
    assert C               assert not C
    assert abs(C - E) < T  assert abs(E - C) <= T  (T a literal)

and an optional message after a comma. Every other statement (loops, helper variables, asserts of
other shapes) stays in `Plan.inside`: the script minus the split asserts, which runs beside the
candidate and counts as one case, passed only when the run prints its nonce after it. Its `==`
and `!=` inside asserts become a strict comparison of plain-data copies (see `STRICT_EQ`).

HumanEval scripts define `check(candidate)`; its body is split and `inside` ends with
`check(<entry_point>)`. Scripts without `check` are split at module level (MBPP).
"""

from __future__ import annotations

import ast
import builtins
import copy
from dataclasses import dataclass
from typing import Any

from rlvr.errors import DataError

_BUILTINS = frozenset(dir(builtins))
_SINGLETONS = (None, True, False)
NO_LITERAL = object()  # `Case.expected_value` when the expected side is not a literal


@dataclass(frozen=True)
class Case:
    id: int
    line: int
    actual: str  # expression evaluated beside the candidate
    op: str  # "==", "!=", "is", "is not", "truthy", "falsy", "<", "<="
    expected: str | None = None  # expression evaluated apart from the candidate
    expected_value: Any = NO_LITERAL  # its value, when it is a literal
    tolerance: float | None = None  # for abs(C - E) < T


@dataclass(frozen=True)
class Plan:
    cases: tuple[Case, ...]
    inside: str | None  # what runs beside the candidate, guarded by the nonce; None when nothing
    prelude: str  # the script's module-level code, for evaluating non-literal expected sides

    @property
    def needs_expected_run(self) -> bool:
        return any(c.expected is not None and c.expected_value is NO_LITERAL for c in self.cases)


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the script binds anywhere (assignments, loops, imports, defs, parameters)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _module_level_names(tree: ast.Module) -> set[str]:
    top: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top.add(stmt.name)
        elif not isinstance(stmt, ast.Assert):
            top |= _bound_names(stmt) - {a.arg for a in ast.walk(stmt) if isinstance(a, ast.arg)}
    return top


class _Splitter:
    def __init__(self, candidate_names: set[str], test_names: set[str], module_names: set[str]):
        self.candidate_names = candidate_names
        self.test_names = test_names  # names the script binds: never on the candidate's side
        self.module_names = module_names  # names the expected side may use

    def is_actual(self, node: ast.expr) -> bool:
        names = _names(node)
        return bool(names & self.candidate_names) and not (names & self.test_names)

    def is_expected(self, node: ast.expr) -> bool:
        names = _names(node)
        return not any(isinstance(n, (ast.Lambda, ast.NamedExpr)) for n in ast.walk(node)) and \
            names <= (self.module_names | _BUILTINS) and not (names & self.candidate_names)

    def split(self, stmt: ast.Assert, case_id: int) -> Case | None:
        test, line = stmt.test, stmt.lineno
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and self.is_actual(test.operand):
            return Case(case_id, line, ast.unparse(test.operand), "falsy")
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            return self._compare(test, case_id, line)
        if self.is_actual(test) and not isinstance(test, (ast.BoolOp, ast.Compare)):
            return Case(case_id, line, ast.unparse(test), "truthy")
        return None

    def _compare(self, test: ast.Compare, case_id: int, line: int) -> Case | None:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        symbol = {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not",
                  ast.Lt: "<", ast.LtE: "<="}.get(type(op))
        if symbol in ("<", "<="):
            return self._tolerance(left, symbol, right, case_id, line)
        if symbol is None:
            return None
        if not self.is_actual(left):
            left, right = right, left
        if not (self.is_actual(left) and self.is_expected(right)):
            return None
        value = _literal(right)
        if symbol in ("is", "is not") and not any(value is s for s in _SINGLETONS):
            return None
        return Case(case_id, line, ast.unparse(left), symbol, ast.unparse(right), value)

    def _tolerance(self, left, symbol, right, case_id, line) -> Case | None:
        """abs(C - E) < T, either order inside the abs."""
        if not (isinstance(left, ast.Call) and isinstance(left.func, ast.Name)
                and left.func.id == "abs" and len(left.args) == 1 and not left.keywords
                and isinstance(left.args[0], ast.BinOp) and isinstance(left.args[0].op, ast.Sub)):
            return None
        tolerance = _literal(right)
        if type(tolerance) not in (int, float):
            return None
        a, b = left.args[0].left, left.args[0].right
        if not self.is_actual(a):
            a, b = b, a
        if not (self.is_actual(a) and self.is_expected(b)):
            return None
        return Case(case_id, line, ast.unparse(a), symbol, ast.unparse(b), _literal(b),
                    float(tolerance))


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NO_LITERAL


def plan(test_source: str, entry_point: str | None) -> Plan:
    """The split of one test script; `DataError` when it is not valid Python."""
    try:
        tree = ast.parse(test_source)
    except SyntaxError as exc:
        raise DataError(f"test script is not valid Python: {exc}") from exc
    check = next((s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"),
                 None)
    candidate_names = {entry_point} if entry_point else set()
    if check is not None and check.args.args:
        candidate_names.add(check.args.args[0].arg)
        body = check.body
    else:
        check, body = None, tree.body
    test_names = _bound_names(tree) - candidate_names
    module_names = _module_level_names(tree) - candidate_names - {"check"}
    splitter = _Splitter(candidate_names, test_names, module_names)
    cases: list[Case] = []
    kept: list[ast.stmt] = []
    for stmt in body:
        case = splitter.split(stmt, len(cases)) if isinstance(stmt, ast.Assert) else None
        if case is None:
            kept.append(stmt)
        else:
            cases.append(case)
    prelude_tree = ast.Module([s for s in tree.body if s is not check and not isinstance(s, ast.Assert)],
                              type_ignores=[])
    return Plan(tuple(cases), _inside(tree, check, body, kept, entry_point), ast.unparse(prelude_tree))


STRICT_EQ = "__rlvr_strict_eq__"


class _StrictEquality(ast.NodeTransformer):
    """`a == b` -> `STRICT_EQ(a, b)` (and `!=` -> `not ...`) in the tests of asserts, so that an
    object with a rigged `__eq__` cannot pass an assert that runs beside the candidate."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        node.test = self._rewrite(node.test)
        return node

    def _rewrite(self, node: ast.expr) -> ast.expr:
        for child in ast.walk(node):
            for name, value in ast.iter_fields(child):
                if isinstance(value, ast.expr):
                    setattr(child, name, self._one(value))
                elif isinstance(value, list):
                    setattr(child, name, [self._one(v) if isinstance(v, ast.expr) else v for v in value])
        return self._one(node)

    @staticmethod
    def _one(node: ast.expr) -> ast.expr:
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1
                and isinstance(node.ops[0], (ast.Eq, ast.NotEq))):
            return node
        call = ast.Call(ast.Name(STRICT_EQ, ast.Load()), [node.left, node.comparators[0]], [])
        return call if isinstance(node.ops[0], ast.Eq) else ast.UnaryOp(ast.Not(), call)


def _inside(tree: ast.Module, check: ast.FunctionDef | None, body: list[ast.stmt],
            kept: list[ast.stmt], entry_point: str | None) -> str | None:
    """The script minus the split asserts, or None when no assert is left in it."""
    if not any(isinstance(n, ast.Assert) for s in kept for n in ast.walk(s)):
        return None
    kept = [_StrictEquality().visit(copy.deepcopy(s)) for s in kept]
    if check is None:
        return ast.unparse(ast.Module(kept, type_ignores=[]))
    if not entry_point:
        raise DataError("a test script with check(candidate) needs an entry_point")
    new_check = copy.copy(check)
    new_check.body = kept or [ast.Pass()]
    module = [new_check if s is check else _StrictEquality().visit(copy.deepcopy(s))
              for s in tree.body]
    return ast.unparse(ast.fix_missing_locations(ast.Module(module, type_ignores=[]))) + \
        f"\n\ncheck({entry_point})\n"
