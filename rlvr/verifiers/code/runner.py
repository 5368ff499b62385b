"""The test runner that executes inside the sandbox, beside the candidate's code (standard library
only: it is shipped as the sandbox program's main file, `solution.py` holds the candidate's code).

It reads its whole configuration from stdin before the candidate's code runs, so nothing of it is
in a file the candidate could open, then moves fd 1 aside: the candidate's prints go to stderr,
and only this runner's result lines go to the original stdout, each prefixed by the run's nonce:

    <nonce> {"case": 3, "value": <tagged plain data>}   an evaluated candidate-side expression
    <nonce> {"case": 3, "error": "ZeroDivisionError: ..."}
    <nonce> {"inside": "ok"}                             every unsplittable assert ran
    <nonce> {"load_error": "..."}                        the candidate's code raised on import

Values are serialised strictly: only None, bool, int, float, str, bytes, complex, list, tuple,
dict, set and frozenset of exactly those types cross; anything else (a subclass, an object with a
rigged `__eq__`) is an error for that case. This runner decides nothing: the verifier compares.
"""

import builtins
import json
import os
import sys

MAX_DEPTH = 100
_TAGS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}


def encode(value, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in _TAGS:
        return {_TAGS[kind]: [encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    raise TypeError("a %s is not plain data" % kind.__name__)


def plain(value, depth=0):
    """A copy of `value` made of builtin plain types only; TypeError for anything else."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str, bytes, complex):
        return value
    if kind in _TAGS:
        return kind(plain(v, depth + 1) for v in value)
    if kind is dict:
        return {plain(k, depth + 1): plain(v, depth + 1) for k, v in value.items()}
    raise TypeError("a %s is not plain data" % kind.__name__)


def strict_eq(left, right):
    return plain(left) == plain(right)


def main():
    config = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    nonce, write, dumps = config["nonce"], os.write, json.dumps
    results_fd = os.dup(1)
    os.dup2(2, 1)  # the candidate's prints go to stderr from here on
    clean_builtins = dict(vars(builtins))

    def report(obj):
        write(results_fd, (nonce + " " + dumps(obj) + "\n").encode("utf-8"))

    namespace = {"__name__": "__main__", "__builtins__": builtins}
    for name in ("prelude", "solution"):
        source = config.get(name)
        if source is None:
            continue
        try:
            exec(compile(source, name + ".py", "exec"), namespace)
        except Exception as exc:  # the candidate's code (or the test's prelude) failed to load
            import traceback

            traceback.print_exc()
            report({"load_error": "%s: %s" % (type(exc).__name__, exc)})
            return 1
    entry = config.get("entry_point")
    if entry:
        namespace["candidate"] = namespace.get(entry)
    for case in config.get("cases", []):
        try:
            if "expr" in case:
                value = eval(compile(case["expr"], "case", "eval"), namespace)
            else:
                value = namespace[entry](*case.get("args", []), **case.get("kwargs", {}))
            report({"case": case["id"], "value": encode(value)})
        except Exception as exc:  # the candidate's error is this case's result
            report({"case": case["id"], "error": "%s: %s" % (type(exc).__name__, exc)[:500]})
    inside = config.get("inside")
    if inside:
        tests = {"__name__": "__test__", "__builtins__": clean_builtins}
        tests.update((k, v) for k, v in namespace.items() if not k.startswith("__"))
        tests["__rlvr_strict_eq__"] = strict_eq
        exec(compile(inside, "tests.py", "exec"), tests)
        report({"inside": "ok"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
