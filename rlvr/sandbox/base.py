"""The sandbox protocol: run an untrusted program under limits, report what happened.

`Sandbox.run(program, limits) -> ExecutionResult` is the one method every backend implements.
A program that fails, times out or runs out of memory is a normal `ExecutionResult`; only a
failure of the sandbox itself (engine down, image missing) raises `rlvr.errors.SandboxError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, runtime_checkable


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run."""

    timeout_s: float = 10.0  # wall clock, enforced from the host
    memory_mb: int = 512  # address space / cgroup memory, swap off
    pids: int = 64
    cpus: float = 1.0
    output_bytes: int = 1 << 20  # stdout and stderr are each capped to this
    disk_mb: int = 64  # size of the writable work dir


@dataclass(frozen=True)
class Program:
    """What to run: a Python source file plus optional stdin and extra files in the work dir."""

    source: str
    stdin: str = ""
    files: Mapping[str, str] = field(default_factory=dict)  # name -> content, written to work dir
    collect: tuple[str, ...] = ()  # names of files to read back from the work dir afterwards


@dataclass(frozen=True)
class ExecutionResult:
    exit_code: int | None  # None when killed before exiting
    stdout: str
    stderr: str
    timed_out: bool = False
    oom_killed: bool = False
    wall_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Sandbox(Protocol):
    def run(self, program: Program, limits: Limits) -> ExecutionResult: ...
