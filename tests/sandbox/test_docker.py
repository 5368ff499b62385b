"""DockerSandbox: the container policy, the warm pool, isolation between runs, cleanup, errors."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from rlvr.errors import ConfigError, SandboxError
from rlvr.sandbox import engine, make_sandbox
from rlvr.sandbox.base import Limits, Program
from rlvr.sandbox.docker import DockerSandbox
from sandbox_helpers import OTHER_PROCESSES

LIMITS = Limits(timeout_s=5, memory_mb=256, pids=32, disk_mb=16)


@pytest.mark.docker
def test_policy_inside_the_container(docker_sandbox):
    source = textwrap.dedent("""
        import os
        status = dict(line.split(':', 1) for line in open('/proc/self/status'))
        print(os.getuid(), status['CapEff'].strip(), status['NoNewPrivs'].strip())
        print(sorted(os.listdir('/sys/class/net')), sorted(os.environ))
        print(os.getcwd().startswith('/sandbox/run-'))
    """)
    result = docker_sandbox.run(Program(source), LIMITS)
    ids, net_env, cwd = result.stdout.splitlines()
    assert ids == "65534 0000000000000000 1"
    assert net_env == "['lo'] ['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', " \
                      "'PYTHONIOENCODING', 'TMPDIR']"
    assert cwd == "True"


@pytest.mark.docker
def test_pool_reuses_one_container_for_many_runs(docker_ready):
    with DockerSandbox(pool_size=1) as sandbox:
        outputs = [sandbox.run(Program(f"print({i} * 2)"), LIMITS).stdout for i in range(5)]
        assert outputs == [f"{i * 2}\n" for i in range(5)] and sandbox.started == 1


@pytest.mark.docker
def test_runs_do_not_see_each_others_files_or_processes(docker_ready):
    with DockerSandbox(pool_size=1) as sandbox:
        sandbox.run(Program("open('left.txt', 'w').write('x')\nopen('../up.txt', 'w').write('x')"), LIMITS)
        seen = sandbox.run(Program("import os\nprint(os.listdir('.'), os.listdir('..'))"), LIMITS)
        assert seen.stdout.startswith("['main.py'] ['run-")
        assert sandbox.run(Program(OTHER_PROCESSES), LIMITS).stdout.strip() == "[]"


@pytest.mark.docker
def test_a_dirty_container_is_replaced_not_reused(docker_ready):
    # a System V shared-memory segment outlives its creator (files outside the run dir cannot be
    # written at all: the program's Landlock domain forbids it)
    plant = "import ctypes\nprint(ctypes.CDLL(None).shmget(0, 4096, 0o1600))"
    with DockerSandbox(pool_size=1) as sandbox:
        assert sandbox.run(Program(plant), LIMITS).stdout.strip().isdigit()
        seen = sandbox.run(Program("print(open('/proc/sysvipc/shm').read().count(chr(10)))"), LIMITS)
        assert seen.stdout.strip() == "1" and sandbox.started == 2  # the header line alone


@pytest.mark.docker
def test_limits_shape_gets_its_own_container(docker_ready):
    with DockerSandbox(pool_size=1) as sandbox:
        small = Limits(timeout_s=5, memory_mb=96)
        result = sandbox.run(Program("x = bytearray(200 << 20)"), small)
        assert result.oom_killed and result.exit_code is None
        assert sandbox.run(Program("x = bytearray(200 << 20)\nprint('ok')"), LIMITS).stdout == "ok\n"


@pytest.mark.docker
def test_stdin_files_and_collected_files(docker_sandbox):
    program = Program("data = open('in.txt').read()\nopen('out.txt', 'w').write(data + input())",
                      stdin="tail", files={"in.txt": "head-"}, collect=("out.txt", "missing.txt"))
    assert docker_sandbox.run(program, LIMITS).files == {"out.txt": "head-tail"}


@pytest.mark.docker
def test_fresh_container_mode_starts_one_per_run(docker_ready):
    with DockerSandbox(pooled=False) as sandbox:
        for _ in range(2):
            assert sandbox.run(Program("print('x')"), LIMITS).stdout == "x\n"
        assert sandbox.started == 2
        assert sandbox.leftovers() == []  # each removed after its run


@pytest.fixture()
def sigint_raises_keyboard_interrupt():
    """Python turns SIGINT into KeyboardInterrupt only when SIGINT was not ignored at start-up; a
    process started in the background of a non-interactive shell (CI scripts, `nohup`, `cmd &`)
    inherits SIGINT ignored, and the signal then does nothing. Install Python's handler for the
    test, whatever this process inherited, and put back what was there."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.docker
def test_keyboard_interrupt_mid_run_removes_the_container(docker_ready,
                                                           sigint_raises_keyboard_interrupt):
    sandbox = DockerSandbox(pool_size=1)
    sandbox.run(Program("pass"), LIMITS)  # warm
    timer = threading.Timer(0.5, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        sandbox.run(Program("import time\ntime.sleep(30)"), LIMITS)
    assert sandbox.leftovers() == []
    assert sandbox.run(Program("print(1)"), LIMITS).stdout == "1\n"
    sandbox.close()


@pytest.mark.docker
def test_killed_host_process_leaves_no_container(docker_ready, tmp_path):
    script = tmp_path / "victim.py"
    script.write_text("import os, sys\nfrom rlvr.sandbox.docker import DockerSandbox\n"
                      "from rlvr.sandbox.base import Program, Limits\n"
                      "s = DockerSandbox()\ns.run(Program('pass'), Limits())\n"
                      "print('warm', flush=True)\nos.kill(os.getpid(), 9)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.read() == "warm\n" and proc.wait() == -9
    label = f"{engine.OWNER_LABEL}={engine.socket.gethostname()}:{proc.pid}"
    api = engine.connect()
    deadline = time.monotonic() + 10
    while api.containers(all=True, filters={"label": label}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert api.containers(all=True, filters={"label": label}) == []


@pytest.mark.docker
def test_pickles_without_its_engine_state(docker_sandbox):
    clone = pickle.loads(pickle.dumps(docker_sandbox))
    assert clone._api is None and clone.image == docker_sandbox.image
    assert clone.run(Program("print(2)"), LIMITS).stdout == "2\n"
    clone.close()


@pytest.mark.docker
def test_missing_image_names_the_fix(docker_ready):
    with pytest.raises(SandboxError, match="build or load"):
        DockerSandbox(image="rlvr-no-such-image:0").run(Program("pass"), LIMITS)


def test_missing_engine_fails_loudly_with_the_fix(tmp_path):
    sandbox = make_sandbox("docker", {"base_url": f"unix://{tmp_path}/no-engine.sock"})
    with pytest.raises(SandboxError, match="subprocess.*NOT a security boundary"):
        sandbox.run(Program("pass"), LIMITS)


class FakeEngine:
    def __init__(self, runtimes):
        self.runtimes = runtimes

    def info(self):
        return {"Runtimes": {name: {} for name in self.runtimes}}


def test_runtime_choice_prefers_gvisor_when_installed():
    assert engine.pick_runtime(FakeEngine(["runc", "runsc"]), "auto") == "runsc"
    assert engine.pick_runtime(FakeEngine(["runc"]), "auto") is None
    assert engine.pick_runtime(FakeEngine(["runc", "runsc"]), "default") is None
    with pytest.raises(ConfigError, match="runsc"):
        engine.pick_runtime(FakeEngine(["runc"]), "runsc")


@pytest.mark.docker
def test_without_the_fork_server_runs_are_isolated_too(docker_ready):
    with DockerSandbox(pool_size=1, fork_server=False) as sandbox:
        orphan = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('parent')"
        assert sandbox.run(Program(orphan), LIMITS).stdout == "parent\n"
        assert sandbox.run(Program(OTHER_PROCESSES), LIMITS).stdout.strip() == "[]"
        quick = Limits(timeout_s=0.5, memory_mb=256, pids=32, disk_mb=16)
        assert sandbox.run(Program("import time\ntime.sleep(9)"), quick).timed_out
        assert sandbox.started == 1


@pytest.mark.parametrize("required", ["", "1"])
def test_ci_turns_a_missing_engine_into_a_failure_not_a_skip(tmp_path, required):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
           "RLVR_REQUIRE_DOCKER": required}
    test = f"{__file__}::test_pool_reuses_one_container_for_many_runs"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                          env=env, capture_output=True, text=True, timeout=120)
    if required:
        assert proc.returncode == 1 and "1 error" in proc.stdout  # fails in its set-up
        assert "RLVR_REQUIRE_DOCKER is set" in proc.stdout
        assert "no Docker engine reachable" in proc.stdout
    else:
        assert proc.returncode == 0 and "1 skipped" in proc.stdout
