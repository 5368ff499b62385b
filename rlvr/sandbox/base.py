"""The sandbox protocol: run an untrusted program under limits, report what happened.

`Sandbox.run(program, limits) -> ExecutionResult` is the one method every backend implements.
A program that fails, times out or runs out of memory is a normal `ExecutionResult`; only a
failure of the sandbox itself (engine down, image missing) raises `rlvr.errors.SandboxError`.

Backends are plug-ins of the entry-point group `rlvr.sandboxes`; the built-ins are `docker` (the
default, a security boundary) and `subprocess` (rlimits only, NOT a security boundary, used only
when asked for by name). `make_sandbox(name, options)` builds one. This module does not run
anything itself and does not judge outputs (verifiers do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

from rlvr import plugins
from rlvr.errors import ConfigError

ENTRY_POINT_GROUP = "rlvr.sandboxes"

BUILTIN_SANDBOXES: dict[str, str] = {
    "docker": "rlvr.sandbox.docker:DockerSandbox",
    "subprocess": "rlvr.sandbox.subprocess:SubprocessSandbox",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run."""

    timeout_s: float = 10.0  # wall clock, enforced from the host
    memory_mb: int = 512  # address space / cgroup memory, swap off
    pids: int = 64
    cpus: float = 1.0
    output_bytes: int = 1 << 20  # stdout and stderr are each capped to this
    disk_mb: int = 64  # size of the writable work dir

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "pids", "cpus", "output_bytes", "disk_mb"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"sandbox limit {name} must be > 0, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class Program:
    """What to run: a Python source file plus optional stdin and extra files in the work dir."""

    source: str
    stdin: str = ""
    files: Mapping[str, str] = field(default_factory=dict)  # name -> content, written to work dir
    collect: tuple[str, ...] = ()  # names of files to read back from the work dir afterwards


@dataclass(frozen=True)
class ExecutionResult:
    """What happened to one program. `exit_code` is None when it was killed (timeout, output cap,
    signal, out of memory); `signal` then says which signal ended it, when known."""

    exit_code: int | None  # None when killed before exiting
    stdout: str
    stderr: str
    timed_out: bool = False
    oom_killed: bool = False
    wall_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files: Mapping[str, str] = field(default_factory=dict)
    signal: int | None = None

    @property
    def ok(self) -> bool:
        """Exited by itself with status 0, within every limit."""
        return (self.exit_code == 0 and not self.timed_out and not self.oom_killed
                and not self.stdout_truncated and not self.stderr_truncated)


@runtime_checkable
class Sandbox(Protocol):
    """Runs one untrusted program under limits. Raises `SandboxError` only for its own failures."""

    def run(self, program: Program, limits: Limits) -> ExecutionResult: ...


def available_sandboxes() -> list[str]:
    return plugins.available(ENTRY_POINT_GROUP, BUILTIN_SANDBOXES)


def make_sandbox(name: str = "docker", options: Mapping[str, Any] | None = None) -> Sandbox:
    """Build the sandbox backend registered as `name` (built-in, entry point, or `module:Object`)."""
    factory = plugins.load(ENTRY_POINT_GROUP, name, BUILTIN_SANDBOXES)
    try:
        return factory(**dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f"sandbox {name!r} rejected its options {dict(options or {})}: {exc}") from exc


def result_of(reply: Mapping[str, Any]) -> ExecutionResult:
    """The `ExecutionResult` of a harness reply (see `rlvr.sandbox.harness.run_program`)."""
    return ExecutionResult(
        exit_code=reply["exit_code"], stdout=reply["stdout"], stderr=reply["stderr"],
        timed_out=bool(reply["timed_out"]), oom_killed=bool(reply["oom_killed"]),
        wall_s=float(reply["wall_s"]), stdout_truncated=bool(reply["stdout_truncated"]),
        stderr_truncated=bool(reply["stderr_truncated"]), files=dict(reply.get("files", {})),
        signal=reply.get("signal"))
