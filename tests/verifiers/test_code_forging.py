"""The forging battery: wrong programs that try to earn the reward of an assert script without
computing the answer, one attack per test, on the real Docker sandbox and through `rlvr verify`.

Each attack is a wrong `add` (or `decode`) plus a trick aimed at the test code: walking the
caller's frames, scanning `gc`, shadowing builtins or the prompt's helpers, monkeypatching
modules the tests use, printing result markers, a fake report and `os._exit(0)`, reading the
caller's bytecode, signal handlers and signals to every other process, a `StopIteration` that
would end the test's own loop early. The test scripts keep
their asserts in loops (as HumanEval/32, /38 and /50 do), so none of it can be judged without
running the test code itself. Each must get reward 0, and the same trick wrapped around a
correct program must not cost it its pass. Then writes outside the work dir, leftovers for the
next program, and output floods.
"""

import json
import subprocess
import sys

import forging_helpers
import pytest

from rlvr.types import Completion, Problem
from rlvr.verifiers.code import CodeVerifier

pytestmark = pytest.mark.docker

ADD_TESTS = """
def check(candidate):
    for a, b in [(1, 2), (-1, 1), (10, 5)]:
        assert candidate(a, b) == a + b
"""
RANGE_TESTS = "def check(candidate):\n    for a in range(3):\n        assert candidate(a, 1) == a + 1\n"
ISCLOSE_TESTS = ("import math\n\ndef check(candidate):\n    for a in range(3):\n"
                 "        assert math.isclose(candidate(a, 0.5), a + 0.5)\n")
CONSTANT_TESTS = ("def check(candidate):\n    for _ in range(1):\n        assert candidate(2, 3) == 5\n"
                  "        assert candidate(10, 20) == 30\n        assert candidate(-4, 4) == 0\n")
HELPER_PRELUDE = ('def encode(s: str) -> str:\n    """Reverse s."""\n    return s[::-1]\n\n\n'
                  'def decode(s: str) -> str:\n    """Undo encode."""\n')
HELPER_TESTS = ("def check(candidate):\n    for s in ['abc', 'hello', 'xyz']:\n"
                "        assert candidate(encode(s)) == s\n")
MAP_TESTS = ("def check(candidate):\n"
             "    assert all(map(lambda ab: candidate(*ab) == sum(ab), [(1, 2), (3, 4), (5, 6)]))\n")
RIGHT_ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return 0\n"

# Each attack: (test script, prelude, entry point, trick, wrong solution, right solution).
FRAME_WALK = """
import sys
frame = sys._getframe(0)
while frame is not None:
    for value in list(frame.f_locals.values()):
        if isinstance(value, dict):
            for key in ('inside', 'script'):
                if key in value:
                    value[key] = 'pass'
    frame = frame.f_back
"""
GC_SCAN = """
import gc
for obj in gc.get_objects():
    if isinstance(obj, dict):
        for key in ('inside', 'script'):
            if key in obj and isinstance(obj[key], str):
                obj[key] = 'pass'
    elif callable(obj) and getattr(obj, '__name__', '') in ('report', 'case'):
        try:
            obj({'inside': 'ok'})
        except Exception:
            pass
"""
SHADOW_BUILTINS = "def range(*args):\n    return []\ndef all(*args):\n    return True\n"
IDENTITY_HELPERS = "def encode(s):\n    return s\n"
MONKEYPATCH = "import math\nmath.isclose = lambda *args, **kwargs: True\n"
FIND_NONCES = """
import gc, os, sys
def _nonces():
    found, frame = set(), sys._getframe(0)
    while frame is not None:
        found.update(v for v in frame.f_locals.values() if isinstance(v, str) and len(v) == 32)
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, dict) and isinstance(obj.get('nonce'), str):
            found.add(obj['nonce'])
    return found or {'0' * 32}
def _fake_report():
    lines = ''.join(n + ' ' + json.dumps(r) + '\\n' for n in _nonces() for r in
                    [{'inside': 'ok'}, {'done': True}] + [{'case': i, 'ok': True} for i in range(9)])
    print(lines + 'PASSED')
    for fd in range(1, 20):
        try:
            os.write(fd, lines.encode())
        except OSError:
            pass
import json
"""
PRINT_MARKERS = FIND_NONCES + "_fake_report()\n"
EXIT_AFTER_FAKE_REPORT = FIND_NONCES + """
def add(a, b):
    _fake_report()
    os._exit(0)
"""
READ_CALLER = """
import dis, inspect
def add(a, b):
    caller = inspect.currentframe().f_back
    after = [i for i in dis.get_instructions(caller.f_code) if i.offset > caller.f_lasti]
    return next((i.argval for i in after if i.opname == 'LOAD_CONST' and type(i.argval) is int), 0)
"""
SIGNALS = FIND_NONCES + """
import signal
def _handler(signum, frame):
    while frame is not None:
        for name in ('report', 'case'):
            if callable(frame.f_locals.get(name)):
                frame.f_locals[name]({'inside': 'ok'})
        frame = frame.f_back
    _fake_report()
    os._exit(0)
signal.signal(signal.SIGUSR1, _handler)
def _signal_everyone(self_too):
    for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()] + [os.getppid()]:
        if pid != os.getpid():
            for sig in (signal.SIGSTOP, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
    if self_too:
        os.kill(os.getpid(), signal.SIGUSR1)
"""

ATTACKS = {
    "frame_walk": (ADD_TESTS, "", "add", FRAME_WALK, WRONG_ADD, RIGHT_ADD),
    "gc_scan": (ADD_TESTS, "", "add", GC_SCAN, WRONG_ADD, RIGHT_ADD),
    "globals_shadowing_builtins": (RANGE_TESTS, "", "add", SHADOW_BUILTINS, WRONG_ADD, RIGHT_ADD),
    "identity_prompt_helpers": (HELPER_TESTS, HELPER_PRELUDE, "decode", IDENTITY_HELPERS,
                                "def decode(s):\n    return s\n", "def decode(s):\n    return s[::-1]\n"),
    "monkeypatched_module": (ISCLOSE_TESTS, "", "add", MONKEYPATCH, WRONG_ADD, RIGHT_ADD),
    "printed_markers": (ADD_TESTS, "", "add", PRINT_MARKERS, WRONG_ADD, None),
    "os_exit_after_fake_report": (ADD_TESTS, "", "add", "", EXIT_AFTER_FAKE_REPORT, None),
    "caller_bytecode": (CONSTANT_TESTS, "", "add", "", READ_CALLER, None),
    "stop_iteration_ends_the_tests_loop": (MAP_TESTS, "", "add", "",
                                           "def add(a, b):\n    raise StopIteration\n", RIGHT_ADD),
    "signals_and_handlers": (ADD_TESTS, "", "add", SIGNALS,
                             "def add(a, b):\n    _signal_everyone(True)\n    return 0\n",
                             "def add(a, b):\n    _signal_everyone(False)\n    return a + b\n"),
}


def problem_of(tests: str, prelude: str, entry_point: str) -> Problem:
    return Problem("forge", "", "code", {"tests": tests, "test_format": "assert",
                                         "entry_point": entry_point, "prelude": prelude})


def fenced(code: str) -> Completion:
    return Completion(f"```python\n{code}\n```")


@pytest.fixture(scope="module")
def verifier(docker_ready):
    from rlvr.sandbox.docker import DockerSandbox

    with DockerSandbox(pool_size=1) as sandbox:
        yield CodeVerifier(sandbox=sandbox, timeout_s=5, memory_mb=256, pids=32, disk_mb=16,
                           output_bytes=64 << 10)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_earns_nothing_and_costs_an_honest_program_nothing(verifier, name):
    tests, prelude, entry_point, trick, wrong, right = ATTACKS[name]
    problem = problem_of(tests, prelude, entry_point)
    forged = verifier.verify(problem, fenced(trick + wrong))
    assert forged.reward == 0 and forged.status in ("failed_tests", "timeout"), forged
    if right is not None:
        honest = verifier.verify(problem, fenced(trick + right))
        assert honest.passed, honest


def test_writes_outside_the_work_dir_fail(verifier):
    code = ("import os\ndef add(a, b):\n    for path in ('/dev/shm/x', '/dev/mqueue/x', '/sandbox/x', "
            "'../x', '/tmp/x', '/x'):\n        try:\n            open(path, 'w').write('x')\n"
            "            return None\n        except OSError:\n            pass\n"
            "    open('inside-the-work-dir', 'w').write('x')\n    return a + b\n")
    assert verifier.verify(problem_of(ADD_TESTS, "", "add"), fenced(code)).passed


def test_nothing_of_one_program_is_visible_to_the_next(verifier):
    leave = ("import os, time\ndef add(a, b):\n    if not os.path.exists('left'):\n"
             "        open('left', 'w').write('x')\n        if os.fork() == 0:\n            os.setsid()\n"
             "            while True:\n                time.sleep(0.05)\n"
             "    for path in ('/dev/shm/left', '/sandbox/left', '../left'):\n        try:\n"
             "            open(path, 'w').write('x')\n            return None\n"
             "        except OSError:\n            pass\n    return a + b\n")
    look = ("import os\ndef add(a, b):\n    seen = [p for p in ('/dev/shm', '/dev/mqueue') if os.listdir(p)]\n"
            "    seen += [n for n in os.listdir('..') if n != os.path.basename(os.getcwd())]\n"
            "    seen += [n for n in os.listdir('.') if n != 'main.py']  # the test runner\n"
            "    # PID 1, the fork server's zygote, the test process and this one: nothing else\n"
            "    seen += [p for p in os.listdir('/proc') if p.isdigit()][4:]\n"
            "    return a + b if not seen else None\n")
    problem = problem_of(ADD_TESTS, "", "add")
    assert verifier.verify(problem, fenced(leave)).passed
    assert verifier.verify(problem, fenced(look)).passed


def test_output_flood_is_drained_and_the_answer_judged(verifier):
    flood = "import sys\nsys.stdout.write('x' * (50 << 20))\nsys.stderr.write('y' * (1 << 20))\n"
    problem = problem_of(ADD_TESTS, "", "add")
    right = verifier.verify(problem, fenced(flood + RIGHT_ADD))
    wrong = verifier.verify(problem, fenced(flood + WRONG_ADD))
    assert right.passed and wrong.reward == 0 and wrong.status == "failed_tests"
    endless = verifier.verify(problem, fenced("def add(a, b):\n    while True:\n        print('x' * 4096)\n"))
    assert endless.reward == 0 and endless.status == "timeout"


def test_attacks_through_rlvr_verify(docker_ready, tmp_path):
    lines = []
    for name, (tests, prelude, entry_point, trick, wrong, right) in sorted(ATTACKS.items()):
        case = {"verifier": "code", "test_format": "assert", "tests": tests, "prelude": prelude,
                "entry_point": entry_point}
        lines.append({**case, "id": f"{name}/wrong", "completion": f"```python\n{trick + wrong}\n```"})
        if right is not None:
            lines.append({**case, "id": f"{name}/right", "completion": f"```python\n{trick + right}\n```"})
    source, out = tmp_path / "attacks.jsonl", tmp_path / "verdicts.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "verify", str(source), "--output", str(out),
                           "--workers", "1", "--timeout-s", "20", "--no-progress",
                           "--options", json.dumps({"code": {"timeout_s": 5}})],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    verdicts = {v["id"]: v for v in map(json.loads, out.read_text().splitlines())}
    assert len(verdicts) == len(lines)
    forged = [k for k, v in verdicts.items() if k.endswith("/wrong") and v["reward"] != 0]
    lost = [k for k, v in verdicts.items() if k.endswith("/right") and not v["passed"]]
    assert forged == [] and lost == [], (forged, lost, proc.stderr[-2000:])


# ---- the generic attacks on MBPP-format fixtures, read as `rlvr eval` reads them -----------------

MBPP_FIXTURES = ("mbpp.jsonl", "mbpp_loops.jsonl")  # the second keeps its asserts in loops


def mbpp_problems():
    """(problem, reference solution, function name) of every well-formed fixture row."""
    import re
    import warnings
    from pathlib import Path

    from rlvr.tasks.base import make_task

    found = []
    for name in MBPP_FIXTURES:
        path = Path(__file__).parent.parent / "fixtures" / "mbpp" / name
        rows = {f"mbpp-{row['task_id']}": row for row in map(json.loads, path.read_text().splitlines())}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the first fixture has malformed rows on purpose
            problems = make_task("mbpp", {"data_files": {"test": str(path)}}).problems("test")
        for p in problems:
            code = rows[p.id]["code"]
            found.append((p, code, re.search(r"def (\w+)", code).group(1)))
    return found


@pytest.mark.parametrize("attack", ["none"] + sorted(forging_helpers.MODULE_ATTACKS) + ["caller_bytecode"])
def test_generic_attacks_on_mbpp_fixtures_pass_none(verifier, attack):
    problems, forged = mbpp_problems(), []
    for p, reference_code, name in problems:
        head = f"def {name}(*args):\n"
        if attack == "caller_bytecode":
            code = head + forging_helpers.READ_CALLER_BODY
        else:
            code = forging_helpers.MODULE_ATTACKS.get(attack, "") + head + "    return None\n"
        if verifier.verify(p, fenced(code)).reward > 0:
            forged.append(p.id)
        if attack == "none":
            assert verifier.verify(p, fenced(reference_code)).passed, p.id
    print(f"\nMBPP fixtures, {attack}: {len(forged)}/{len(problems)} forged")
    assert len(problems) >= 15 and forged == []


class AttackEngine:
    """A rollout engine that 'samples', for each MBPP prompt, the reference solution and then one
    wrong solution per generic attack: what `rlvr eval` would score if a policy found them."""

    def __init__(self, completions_by_prompt: dict):
        self.completions_by_prompt = completions_by_prompt

    def generate(self, prompts, params):
        return [[Completion(f"```python\n{code}\n```") for code in self.completions_by_prompt[repr(p)]]
                for p in prompts]


def test_generic_attacks_through_rlvr_eval_on_mbpp_fixtures(verifier):
    from rlvr.eval import evaluate
    from rlvr.rollout.base import SamplingParams
    from rlvr.verifiers.pool import VerifierPool

    attacks = [forging_helpers.MODULE_ATTACKS[a] for a in sorted(forging_helpers.MODULE_ATTACKS)]
    found, completions = mbpp_problems(), {}
    for p, reference_code, name in found:
        wrong = [trick + f"def {name}(*args):\n    return None\n" for trick in attacks]
        wrong.append(f"def {name}(*args):\n" + forging_helpers.READ_CALLER_BODY)
        completions[repr(p.prompt)] = [reference_code] + wrong
    n = len(attacks) + 2
    code_verifier = CodeVerifier(timeout_s=5, memory_mb=256, pids=32, disk_mb=16, output_bytes=64 << 10)
    with VerifierPool({"code": code_verifier}, workers=1, timeout_s=60) as pool:
        report = evaluate(AttackEngine(completions), [p for p, _, _ in found], pool, n=n,
                          params=SamplingParams(), ks=(1,))
    correct = {row["id"]: row["correct"] for row in report["problems"]}
    assert correct == {p.id: 1 for p, _, _ in found}  # the reference passes, no attack does
    assert report["infra_errors"] == 0 and report.get("bad_references", 0) == 0
