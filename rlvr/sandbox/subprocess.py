"""`SubprocessSandbox`: run a program as a child process of the host. NOT a security boundary.

For machines without a Docker engine (a laptop, a CI runner without privileges), and only when
the config asks for it by name (`sandbox: subprocess`); rlvr never falls back to it silently.
The child gets its own session and process group, a private temporary directory as its working
and home directory, a scrubbed environment, rlimits (address space, file size, CPU seconds,
processes, no core files), a wall-clock kill of its whole process group, and capped output.
Where the kernel has Landlock, the child may write only beneath its temporary directory and
(from Landlock ABI 6 on) may not signal or trace processes outside it, rlvr included.

What it does NOT protect against: the program runs as your user, on your filesystem and network.
It can read every file you can (your home directory, SSH keys, the checkpoint) and, on a kernel
without Landlock, write them too; it can open network connections, escape its process group with
`setsid` and outlive the run, and exhaust resources that rlimits do not cover. Use it for trusted code or throwaway machines only; use
the Docker backend for model-written code.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile

from rlvr.errors import SandboxError
from rlvr.sandbox.base import ExecutionResult, Limits, Program, result_of
from rlvr.sandbox.harness import PopenChild, kill_group, run_program


class SubprocessSandbox:
    """A child process with rlimits; see the module docstring for what it does not protect."""

    def __init__(self, python: str | None = None, work_root: str | None = None):
        self.python = python or sys.executable
        self.work_root = work_root
        self._counter = itertools.count(1)

    def run(self, program: Program, limits: Limits) -> ExecutionResult:
        request = {"source": program.source, "stdin": program.stdin, "files": dict(program.files),
                   "collect": list(program.collect),
                   "limits": {"timeout_s": limits.timeout_s, "output_bytes": limits.output_bytes,
                              "file_mb": limits.disk_mb, "address_space_mb": limits.memory_mb,
                              "cpu_s": int(limits.timeout_s) + 1, "nproc": _nproc(limits.pids)}}
        root = tempfile.mkdtemp(prefix="rlvr-run-", dir=self.work_root)
        try:
            reply = run_program(request, root, f"run-{next(self._counter)}",
                                lambda run_dir, env, lim: PopenChild(self.python, run_dir, env, lim),
                                kill_group)
        except (OSError, ValueError) as exc:
            raise SandboxError(f"subprocess sandbox could not run the program: {exc}") from exc
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return result_of(reply)

    def close(self) -> None:
        """Nothing is kept between runs."""


def _nproc(pids: int) -> int | None:
    """RLIMIT_NPROC counts every process of the user, so it is only set as an addition to what
    already runs; for root it is not enforced at all."""
    if os.getuid() == 0:
        return None
    try:
        running = sum(1 for p in os.listdir("/proc") if p.isdigit())
    except OSError:
        return None
    return running + pids
