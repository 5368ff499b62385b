"""SubprocessSandbox and the harness it shares with the containers (no Docker needed)."""

import os
import time

import pytest

from rlvr.errors import ConfigError, PluginError
from rlvr.sandbox import available_sandboxes, make_sandbox
from rlvr.sandbox.base import Limits, Program, Sandbox
from rlvr.sandbox.harness import encode_message, read_message
from rlvr.sandbox.subprocess import SubprocessSandbox


@pytest.fixture(scope="module")
def sandbox() -> SubprocessSandbox:
    return SubprocessSandbox()


def test_registry_has_both_backends_and_names_choices():
    assert available_sandboxes()[:2] == ["docker", "subprocess"]
    assert isinstance(make_sandbox("subprocess"), Sandbox)
    with pytest.raises(PluginError, match="docker, subprocess"):
        make_sandbox("podman")
    with pytest.raises(ConfigError):
        make_sandbox("subprocess", {"no_such_option": 1})


def test_limits_must_be_positive():
    with pytest.raises(ConfigError, match="timeout_s"):
        Limits(timeout_s=0)


def test_message_framing_round_trips():
    r, w = os.pipe()
    os.write(w, encode_message({"source": "é" * 3}) + encode_message({"op": "ping"}))
    os.close(w)
    assert read_message(r) == {"source": "ééé"} and read_message(r) == {"op": "ping"}
    assert read_message(r) is None
    os.close(r)


def test_stdin_and_exit_code(sandbox):
    result = sandbox.run(Program("import sys\nprint(input()[::-1])\nsys.exit(3)", stdin="abc"), Limits())
    assert result.stdout == "cba\n" and result.exit_code == 3 and not result.ok


def test_timeout_kills_the_whole_process_group(sandbox, tmp_path):
    marker = tmp_path / "alive"
    source = (f"import os, time\nif os.fork() == 0:\n    time.sleep(2)\n"
              f"    open({str(marker)!r}, 'w').write('x')\n    os._exit(0)\ntime.sleep(30)\n")
    start = time.monotonic()
    result = sandbox.run(Program(source), Limits(timeout_s=0.5))
    assert result.timed_out and result.exit_code is None and time.monotonic() - start < 2
    time.sleep(2.2)
    assert not marker.exists()


def test_output_is_capped(sandbox):
    result = sandbox.run(Program("while True:\n    print('x' * 1000)"), Limits(output_bytes=5000))
    assert result.stdout_truncated and len(result.stdout) == 5000 and not result.timed_out


def test_address_space_rlimit(sandbox):
    result = sandbox.run(Program("x = bytearray(600 << 20)"), Limits(memory_mb=200))
    assert result.exit_code == 1 and "MemoryError" in result.stderr


def test_file_names_cannot_leave_the_work_dir(sandbox, tmp_path):
    from rlvr.errors import SandboxError

    with pytest.raises(SandboxError, match="relative path"):
        sandbox.run(Program("pass", files={"../escape.txt": "x"}), Limits())


def test_collected_files_do_not_follow_links(sandbox):
    source = "import os\nos.symlink('/etc/passwd', 'link')\nopen('real', 'w').write('ok')"
    result = sandbox.run(Program(source, collect=("link", "real")), Limits())
    assert result.files == {"real": "ok"}


def test_environment_is_scrubbed(sandbox, monkeypatch):
    monkeypatch.setenv("RLVR_TEST_SECRET", "s3cret")
    result = sandbox.run(Program("import os\nprint(sorted(os.environ))"), Limits())
    assert "RLVR_TEST_SECRET" not in result.stdout and "'HOME'" in result.stdout


def test_docstring_says_it_is_not_a_security_boundary():
    import rlvr.sandbox.subprocess as module

    assert "NOT a security boundary" in module.__doc__


def test_fork_server_refuses_to_run_outside_a_container():
    from rlvr.sandbox import forkserver

    assert forkserver.main(["/nonexistent", "1"]) == 2


def test_writes_outside_the_work_dir_and_signals_to_rlvr_fail_where_the_kernel_has_landlock(sandbox, tmp_path):
    from rlvr.sandbox.harness import landlock_abi

    if landlock_abi() < 6:
        pytest.skip("the kernel has no Landlock with signal scoping (ABI 6)")
    target = tmp_path / "planted"
    source = (f"import os, signal\nopen('mine', 'w').write('ok')\nfor path in ({str(target)!r}, '../x'):\n"
              "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
              "    except OSError:\n        pass\ntry:\n    os.kill(os.getppid(), signal.SIGCONT)\n"
              "    print('signalled rlvr')\nexcept OSError:\n    pass\n")
    result = sandbox.run(Program(source, collect=("mine",)), Limits())
    assert result.ok and result.stdout == "" and result.files == {"mine": "ok"}
    assert not target.exists()
