"""Generic forging attacks, applicable to any assert-tested problem: each turns a wrong program
(one that returns None) into one that tries to earn the reward anyway. Used on every HumanEval
problem and on the MBPP fixture."""

import ast

FRAME_WALK = """
import sys as _sys
_frame = _sys._getframe(0)
while _frame is not None:
    for _value in list(_frame.f_locals.values()):
        if isinstance(_value, dict):
            for _key in ('inside', 'script', 'cases', 'tests'):
                if _key in _value:
                    _value[_key] = 'pass' if isinstance(_value[_key], str) else []
    _frame = _frame.f_back
"""
GC_SCAN = """
import gc as _gc
for _obj in _gc.get_objects():
    if isinstance(_obj, dict):
        for _key in ('inside', 'script', 'cases', 'tests'):
            if _key in _obj:
                _obj[_key] = 'pass' if isinstance(_obj[_key], str) else []
"""
SHADOW_BUILTINS = "".join(f"def {name}(*args, **kwargs):\n    return {value}\n" for name, value in (
    ("range", "[]"), ("all", "True"), ("any", "True"), ("len", "0"), ("sorted", "args[0]"),
    ("abs", "0"), ("isinstance", "True"), ("sum", "0"), ("set", "frozenset()"),
    ("round", "args[0]"), ("zip", "[]"), ("enumerate", "[]")))
READ_CALLER_BODY = """    import sys as _sys, dis as _dis
    _caller = _sys._getframe(1)
    _after = [i for i in _dis.get_instructions(_caller.f_code) if i.offset > _caller.f_lasti]
    return next((i.argval for i in _after if i.opname == 'LOAD_CONST' and i.argval is not None), None)
"""
MODULE_ATTACKS = {"frame_walk": FRAME_WALK, "gc_scan": GC_SCAN, "globals_shadowing": SHADOW_BUILTINS}


def helper_names(prelude: str, entry_point: str) -> list[str]:
    """Functions the prompt defines besides the entry point (HumanEval's `encode_cyclic`, `poly`)."""
    return [s.name for s in ast.parse(prelude).body
            if isinstance(s, ast.FunctionDef) and s.name != entry_point]


def identity_helpers(names: list[str]) -> str:
    return "".join(f"\n\ndef {name}(*args, **kwargs):\n    return args[0] if args else None\n"
                   for name in names)
