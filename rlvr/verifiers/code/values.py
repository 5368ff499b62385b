"""Plain data from the sandbox, and the comparisons the code verifier makes with it.

`decode` turns the runner's tagged JSON (see `rlvr.verifiers.code.runner`) back into builtin
Python values, and nothing else: no object of the candidate's ever exists in the verifier's
process, so comparing with `==` here runs only the builtins' own comparison. `strict_equal` is
the type-strict equality of function-call tests (bool is not int, int is not float unless a
float tolerance is set, tuples count as JSON lists); `same_output` compares stdin/stdout results
token by token per line.

This module never evaluates text: it only decodes JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rlvr.verifiers.code import runner


class ValueFormatError(ValueError):
    """The sandbox's output is not well-formed tagged plain data."""


def decode(obj: Any) -> Any:
    """The builtin value of the runner's tagged JSON (one implementation, the runner's)."""
    try:
        return runner.decode(obj)
    except (ValueError, RecursionError) as exc:
        raise ValueFormatError(str(exc)) from exc


def _number(x: Any) -> bool:
    return type(x) in (int, float)


def strict_equal(actual: Any, expected: Any, float_tolerance: float | None = None) -> bool:
    """Type-strict equality of JSON-like values; tuples are compared as lists."""
    if type(actual) is tuple:
        actual = list(actual)
    if float_tolerance is not None and _number(actual) and _number(expected) \
            and (type(actual) is float or type(expected) is float):
        return math.isclose(actual, expected, rel_tol=float_tolerance, abs_tol=float_tolerance)
    if type(actual) is not type(expected):
        return False
    if type(actual) is list:
        return len(actual) == len(expected) and all(
            strict_equal(a, e, float_tolerance) for a, e in zip(actual, expected))
    if type(actual) is dict:
        return actual.keys() == expected.keys() and all(
            strict_equal(actual[k], expected[k], float_tolerance) for k in actual)
    return bool(actual == expected)


def _token_equal(a: str, e: str, float_tolerance: float | None) -> bool:
    if a == e:
        return True
    if float_tolerance is None:
        return False
    try:
        return math.isclose(float(a), float(e), rel_tol=float_tolerance, abs_tol=float_tolerance)
    except ValueError:
        return False


def normalise_output(text: str) -> list[list[str]]:
    lines = [line.split() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def same_output(actual: str, expected: str, float_tolerance: float | None = None) -> bool:
    """Whitespace-normalised comparison: same lines (trailing empty ones ignored), same tokens."""
    a, e = normalise_output(actual), normalise_output(expected)
    return len(a) == len(e) and all(
        len(x) == len(y) and all(_token_equal(s, t, float_tolerance) for s, t in zip(x, y))
        for x, y in zip(a, e))


def parse_result_lines(stdout: str, nonce: str) -> list[dict]:
    """The runner's result records: lines that start with the nonce, JSON objects only."""
    records = []
    prefix = nonce + " "
    for line in stdout.splitlines():
        if not line.startswith(prefix):
            continue
        try:
            record = json.loads(line[len(prefix):])
        except (ValueError, RecursionError):  # JSONDecodeError, or an int over the digit limit
            continue
        if type(record) is dict:
            records.append(record)
    return records
