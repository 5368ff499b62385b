"""The adversarial battery: hostile candidates against the code verifier on the Docker sandbox.

One property per test. Each candidate answers `add(a, b)` (tested HumanEval-style); each test
checks the verdict, and where the attack aims past the run, a follow-up program in the same warm
pool checks that nothing of it survived. The last test checks that no container and no sandbox
process is left on the host.
"""

import os
import time

import pytest

from rlvr.sandbox.base import Limits, Program
from rlvr.types import Completion, Problem
from rlvr.verifiers.code import CodeVerifier
from sandbox_helpers import OTHER_PROCESSES, leftover_containers, sandbox_processes_on_host

pytestmark = pytest.mark.docker

TESTS = """
def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(-1, 1) == 0
    assert candidate(10, 5) == 15
"""
LOOPED_TESTS = """
def check(candidate):
    for a in range(3):
        assert sorted([candidate(a, 1), 0]) == [0, a + 1]
"""
IO_TESTS = [{"input": "1 2\n", "output": "3\n"}]
CORRECT = "def add(a, b):\n    return a + b\n"
TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def verifier(docker_sandbox) -> CodeVerifier:
    return CodeVerifier(sandbox=docker_sandbox, timeout_s=TIMEOUT_S, memory_mb=256, pids=32,
                        disk_mb=16, output_bytes=64 << 10)


def judge(verifier, code: str, tests=TESTS, fmt="assert"):
    problem = Problem("add", "", "code", {"tests": tests, "test_format": fmt, "entry_point": "add"})
    return verifier.verify(problem, Completion(f"```python\n{code}\n```"))


def fails_split_and_unsplit(verifier, code: str) -> bool:
    """Reward 0 both with plain asserts and with asserts in a loop over the test's own values."""
    return judge(verifier, code).reward == 0 and judge(verifier, code, tests=LOOPED_TESTS).reward == 0


def probe(sandbox, source: str) -> str:
    result = sandbox.run(Program(source), Limits(timeout_s=5, memory_mb=256, pids=32, disk_mb=16,
                                                 output_bytes=64 << 10))
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_control_correct_solution_passes(verifier):
    assert judge(verifier, CORRECT).passed


def test_infinite_loop_is_killed_at_the_time_limit(verifier):
    start = time.monotonic()
    verdict = judge(verifier, "def add(a, b):\n    while True:\n        pass\n")
    assert verdict.status == "timeout" and verdict.reward == 0
    assert time.monotonic() - start < TIMEOUT_S + 3


def test_memory_bomb_is_killed(verifier):
    verdict = judge(verifier, "blob = []\nwhile True:\n    blob.append(bytearray(16 << 20))\n" + CORRECT)
    assert verdict.status == "memory_limit" and verdict.reward == 0


def test_fork_bomb_is_contained_and_cleared(verifier, docker_sandbox):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    verdict = judge(verifier, code + CORRECT)
    assert verdict.reward == 0
    assert probe(docker_sandbox, OTHER_PROCESSES) == "[]"


def test_disk_fill_is_capped_and_wiped(verifier, docker_sandbox):
    code = ("written = 0\ntry:\n    with open('fill', 'wb') as fh:\n        while True:\n"
            "            fh.write(b'x' * (1 << 20)); fh.flush(); written += 1\n"
            "except OSError:\n    pass\nassert written <= 16\n" + CORRECT)
    assert judge(verifier, code).passed  # the program survives the full disk, and is still judged
    free_mb = probe(docker_sandbox, "import os\ns = os.statvfs('.')\nprint(s.f_bavail * s.f_frsize >> 20)")
    assert int(free_mb) >= 15
    assert probe(docker_sandbox, "import os\nprint(os.listdir('..'))").count("run-") == 1


def test_huge_output_is_capped(verifier):
    start = time.monotonic()
    verdict = judge(verifier, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n" + CORRECT)
    assert verdict.reward == 0 and time.monotonic() - start < TIMEOUT_S + 3


def test_network_is_unreachable(verifier):
    code = ("import socket\ndef add(a, b):\n    try:\n"
            "        socket.create_connection(('1.1.1.1', 53), timeout=1)\n        return a + b\n"
            "    except OSError:\n        return None\n")
    assert judge(verifier, code).reward == 0


def test_host_files_are_invisible(verifier, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    code = (f"def add(a, b):\n    try:\n        open({str(secret)!r}).read()\n        return a + b\n"
            "    except OSError:\n        return None\n")
    assert judge(verifier, code).reward == 0


def test_writes_outside_the_run_dir_fail_or_do_not_survive(verifier, docker_sandbox):
    code = ("import os\nfor path in ('/etc/x', '/tmp/x', '/usr/x', '../planted', '/dev/shm/planted'):\n"
            "    try:\n        open(path, 'w').write('hello')\n    except OSError:\n        pass\n" + CORRECT)
    assert judge(verifier, code).passed
    seen = probe(docker_sandbox, "import os\nprint([p for p in ('/etc/x', '/tmp/x', '/usr/x', "
                                 "'../planted', '/dev/shm/planted') if os.path.exists(p)])")
    assert seen == "[]"


def test_sys_exit_before_the_tests_fails(verifier):
    assert judge(verifier, "import sys\nsys.exit(0)\n" + CORRECT).reward == 0


def test_os_exit_before_the_tests_fails(verifier):
    assert judge(verifier, "import os\nos._exit(0)\n" + CORRECT).reward == 0


def test_printed_fake_success_marker_fails(verifier):
    code = ("import os, sys\nfake = '0' * 32 + ' {\"inside\": \"ok\"}'\nprint(fake)\nprint('PASSED')\n"
            "for fd in (1, 3, 4):\n    try:\n        os.write(fd, (fake + '\\n').encode())\n"
            "    except OSError:\n        pass\nsys.exit(0)\n")
    assert fails_split_and_unsplit(verifier, code)


def test_rebinding_builtins_does_not_fool_the_asserts(verifier):
    # In plain in-process testing this passes: the rebound sorted() answers what the test expects.
    code = ("import builtins\nseen = [0]\nbuiltins.sorted = lambda *a, **k: [0, seen[0] + 1]\n"
            "builtins.AssertionError = type('Nope', (Exception,), {})\n"
            "def add(a, b):\n    seen[0] = a\n    return 1\n")
    assert fails_split_and_unsplit(verifier, code)


def test_always_true_eq_fails_split_and_unsplit_asserts(verifier):
    code = ("class Yes(int):\n    def __eq__(self, other): return True\n    __hash__ = int.__hash__\n"
            "def add(a, b):\n    return Yes(0)\n")
    assert fails_split_and_unsplit(verifier, code)


def test_test_source_is_not_in_the_candidates_process_or_files(verifier):
    code = ("import gc, os, sys\n"
            "def add(a, b):\n"
            "    frame, texts = sys._getframe(1), []\n"
            "    while frame:\n"
            "        texts += [repr(frame.f_locals), repr(frame.f_globals)]\n"
            "        frame = frame.f_back\n"
            "    texts += [o for o in gc.get_objects() if isinstance(o, str)]\n"
            "    for name in os.listdir('.'):\n"
            "        texts.append(open(name).read())\n"
            "    marks = ('=' + '= 15', 'def ' + 'check')  # not spelled out in this source\n"
            "    leaked = any(m in t for t in texts for m in marks)\n"
            "    return None if leaked else a + b\n")
    assert judge(verifier, code).passed  # it found nothing, so it answered honestly


def test_orphan_process_does_not_survive_the_run(verifier, docker_sandbox):
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        while True:\n            time.sleep(0.05)\n    os._exit(0)\n" + CORRECT)
    assert judge(verifier, code).passed
    assert probe(docker_sandbox, OTHER_PROCESSES) == "[]"


def test_sleeping_past_the_limit_after_printing_fails(verifier):
    io_code = "import time\nprint(3, flush=True)\ntime.sleep(60)\n"
    verdict = judge(verifier, io_code, tests=IO_TESTS, fmt="io")
    assert verdict.status == "timeout" and verdict.reward == 0
    # The verdict of an assert script is the test process's; the candidate's process is killed
    # once it is given, so the candidate's exit handlers never run and cannot delay it.
    assert_code = "import atexit, time\natexit.register(time.sleep, 60)\n" + CORRECT
    assert judge(verifier, assert_code).status == "passed"


SCAN_OWN_MEMORY = """
import ctypes, re
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again, so /proc/self/mem opens
# The secret's two halves, never joined in this process: a match is a copy from elsewhere.
pattern = re.compile(re.escape({first!r}.encode()) + b'(?=' + re.escape({second!r}.encode()) + b')')
found = False
with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
    for line in maps:
        start, end = (int(x, 16) for x in line.split()[0].split('-'))
        if 'r' not in line.split()[1] or end - start > 1 << 30:
            continue
        try:
            mem.seek(start)
            found = found or pattern.search(mem.read(end - start)) is not None
        except (OSError, ValueError, OverflowError):
            continue
print(found)
"""


def test_no_memory_of_earlier_runs(docker_sandbox):
    secret = os.urandom(16).hex()
    scan = SCAN_OWN_MEMORY.format(first=secret[:16], second=secret[16:])
    probe(docker_sandbox, f"print('earlier run', {secret!r})")
    assert probe(docker_sandbox, scan) == "False"
    assert probe(docker_sandbox, f"x = {secret!r}\n" + scan) == "True"  # the scan does work


@pytest.mark.parametrize("attack", [
    "os.kill(os.getppid(), signal.SIGSTOP)",
    "os.kill(os.getppid(), signal.SIGKILL)",
    "os.setpriority(os.PRIO_PROCESS, os.getppid(), 19)",
    "os.sched_setaffinity(os.getppid(), {0})",
    "resource.prlimit(os.getppid(), resource.RLIMIT_AS, (50 << 20, 50 << 20))",
])
def test_tampering_with_the_fork_server_does_not_reach_the_next_run(verifier, attack):
    code = f"import os, resource, signal\ntry:\n    {attack}\nexcept OSError:\n    pass\n" + CORRECT
    verdict = judge(verifier, code)  # judged (a stopped fork server times the run out), not masked
    assert verdict.status in ("passed", "failed_tests", "timeout")
    assert judge(verifier, "x = bytearray(100 << 20)\n" + CORRECT).passed


def test_harness_and_fork_server_memory_is_off_limits(docker_sandbox):
    source = ("import ctypes, os\nctypes.CDLL(None).prctl(4, 1, 0, 0, 0)\nopened = []\n"
              "for pid in (1, os.getppid()):\n    for name in ('mem', 'environ', 'fd'):\n"
              "        try:\n            os.listdir(f'/proc/{pid}/fd') if name == 'fd' else "
              "open(f'/proc/{pid}/{name}', 'rb').read(1)\n            opened.append((pid, name))\n"
              "        except OSError:\n            pass\nprint(opened)")
    assert probe(docker_sandbox, source) == "[]"


def test_nothing_is_left_behind(docker_sandbox):
    docker_sandbox.close()
    deadline = time.monotonic() + 10
    while (leftover_containers() or sandbox_processes_on_host()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftover_containers() == [] and sandbox_processes_on_host() == []
    assert os.getpid()  # the host process itself is unharmed
