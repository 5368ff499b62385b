"""`DockerSandbox`: run untrusted programs in locked-down containers, with a warm pool.

A pooled container runs `rlvr.sandbox.forkserver` as its PID 1 and serves one program at a time
over its attached stdin/stdout; programs are forked from a clean pre-started interpreter (a
zygote that never sees any run's data), so a short program costs a fork inside a running
container rather than a container start (milliseconds instead of about half a second). The policy
of every container is in `rlvr.sandbox.engine`. Between runs:

- every process of the run is killed by PID 1, which no process inside can signal or trace (the
  kernel protects a namespace's init, and PID 1 and the zygote make themselves undumpable);
- the run's private directory is deleted; each run gets a fresh one;
- the harness checks for anything else a run could leave for the next (processes, files in the
  work dir, `/dev/shm`, POSIX message queues, System V IPC objects, a tampered zygote): a
  container with any of it is discarded and replaced, never reused.

The wall-clock limit is enforced twice: by the harness (kills the program at `timeout_s`) and from
the host (a harness that has not answered `grace_s` later gets its container removed).
A harness that has not answered by then is an infrastructure failure (`SandboxError`), never the
program's timeout: the harness itself kills the program at `timeout_s`.

Engine outages: a container whose connection breaks mid-run (engine restarted, container killed)
raises `SandboxError` for that run (the sample is masked, never scored 0). When the engine itself
stops answering, the sandbox takes no new work: the next run waits for it with bounded back-off
(`rlvr.sandbox.outage`) for up to `outage_budget_s` from the moment the outage was noticed,
announcing the wait so that the verifier pool does not count it against the item's time;
once the engine answers, the warm pool is rebuilt and the waiting run goes on. Once the budget is
spent, runs fail fast with a `SandboxError` that says how long the engine has been down (the
engine is still probed every few seconds, so a late return is noticed). The first connection of
a process is not waited for: an engine that was never there is a set-up error, reported at once.

Containers are removed on `close()`, at interpreter exit, when rlvr's connection closes (stdin
closes, the harness exits, the engine auto-removes), and `remove_stale` deletes leftovers of dead
rlvr processes at start-up. A removal returns only once the engine no longer lists the container.

This module does not judge outputs (verifiers do) and does not build images (`rlvr.sandbox.image`).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import struct
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from rlvr.errors import ConfigError, SandboxError
from rlvr.sandbox import engine, forkserver, harness, outage
from rlvr.sandbox.base import ExecutionResult, Limits, Program, result_of

_FRAME = struct.Struct(">BxxxI")  # Docker's multiplexed stream: stream id, 3 pad bytes, size
_MAX_DIAG_BYTES = 64 << 10


class _Lost(Exception):
    """The connection to a container broke (it died, or the engine went away)."""


class _HostTimeout(Exception):
    """The harness did not answer in time."""


DEFAULT_OUTAGE_BUDGET_S = 60.0
_ENGINE_DOWN = (SandboxError, _Lost, _HostTimeout)  # what an outage probe raises while still down


@dataclass(frozen=True)
class _Shape:
    """The container-level limits; containers are pooled per shape."""

    memory_mb: int
    pids: int
    cpus: float
    disk_mb: int

    @classmethod
    def of(cls, limits: Limits) -> "_Shape":
        return cls(limits.memory_mb, limits.pids, limits.cpus, limits.disk_mb)


class _Container:
    """One started container with its harness, and the attached socket that talks to it."""

    def __init__(self, api, cid: str, sock, shape: _Shape):
        self.api, self.id, self.shape = api, cid, shape
        self._sock = getattr(sock, "_sock", sock)
        self._keep = sock  # the wrapper owns the socket; keep it alive
        self._stdout = bytearray()
        self.diagnostics = bytearray()
        self.hello: dict[str, Any] = {}
        self.runs = 0

    @classmethod
    def start(cls, api, image: str, shape: _Shape, runtime: str | None, idle_exit_s: float,
              startup_timeout_s: float, instance: str, fork_server: bool) -> "_Container":
        config = engine.host_config(api, shape.memory_mb, shape.pids, shape.cpus, shape.disk_mb,
                                    runtime)
        command = ["python3", "-I", "-c", forkserver.BOOT, *_SOURCES, engine.WORK_DIR,
                   str(idle_exit_s), "fork" if fork_server else "exec"]
        cid = engine.create_container(api, image, command, config, {engine.INSTANCE_LABEL: instance})
        try:
            sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1,
                                                  "stream": 1})
            container = cls(api, cid, sock, shape)
            api.start(cid)
            container.hello = container.receive(time.monotonic() + startup_timeout_s)
        except BaseException:
            _remove(api, cid)
            raise
        if not container.hello.get("ready"):
            _remove(api, cid)
            raise SandboxError(f"sandbox harness did not start: {container.hello}")
        return container

    def alive(self) -> bool:
        """False when the engine already closed the connection (container gone)."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        try:
            self._read_frame(time.monotonic() + 0.5)
        except (_Lost, _HostTimeout):
            return False
        return True

    def request(self, message: dict, timeout_s: float) -> dict:
        try:
            self._sock.sendall(harness.encode_message(message))
        except OSError as exc:
            raise _Lost(f"sending to the container failed: {exc}") from exc
        return self.receive(time.monotonic() + timeout_s)

    def receive(self, deadline: float) -> dict:
        size = harness.HEADER.size
        while len(self._stdout) < size:
            self._read_frame(deadline)
        (length,) = harness.HEADER.unpack(self._stdout[:size])
        while len(self._stdout) < size + length:
            self._read_frame(deadline)

        body = bytes(self._stdout[size:size + length])
        del self._stdout[:size + length]
        return json.loads(body.decode("utf-8"))

    def _read_frame(self, deadline: float) -> None:
        stream, size = _FRAME.unpack(self._read_exact(_FRAME.size, deadline))
        payload = self._read_exact(size, deadline)
        if stream == 1:
            self._stdout += payload
        else:
            self.diagnostics = (self.diagnostics + payload)[-_MAX_DIAG_BYTES:]

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _HostTimeout()
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(n - got)
            except socket.timeout:
                raise _HostTimeout() from None
            except OSError as exc:
                raise _Lost(f"connection to the container broke: {exc}") from exc
            if not chunk:
                raise _Lost("the container closed its connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
        _remove(self.api, self.id)


def _remove(api, cid: str) -> None:
    try:
        api.remove_container(cid, force=True)
    except engine.engine_errors():
        pass  # already gone (auto-removed), or the engine is down and took it with it


def _source_of(module) -> str:
    with open(module.__file__, encoding="utf-8") as fh:
        return fh.read()


_SOURCES = (_source_of(harness), _source_of(forkserver))  # what the container's PID 1 runs


def _close_at_exit(ref: "weakref.ref[DockerSandbox]") -> None:
    sandbox = ref()
    if sandbox is not None:
        sandbox.close()


class DockerSandbox:
    """Runs programs in pooled, locked-down containers (see the module docstring).

    Options: `image` (any image with `python3`; default built by `rlvr sandbox build-image`),
    `runtime` ("auto": gVisor `runsc` when installed; "default"; or a runtime name), `pool_size`
    (idle containers kept per limits shape), `pooled` (False: a fresh container per run),
    `base_url` (Docker host; default from the environment), `grace_s` (host-side slack past the
    program's own timeout), `startup_timeout_s`, `idle_exit_s` (a pooled container exits after
    this long unused), `fork_server` (False: a new `python3` per program, about 15 ms slower),
    `outage_budget_s` (how long runs wait for an engine that stopped answering before they fail
    fast). The Docker client is created lazily, so the object pickles cheaply.
    """

    _OPTIONS = ("image", "runtime", "pool_size", "pooled", "base_url", "grace_s",
                "startup_timeout_s", "idle_exit_s", "fork_server", "outage_budget_s")
    PROBE_TIMEOUT_S = 5.0  # an engine that does not answer a ping within this is not answering

    def __init__(self, image: str = engine.DEFAULT_IMAGE, runtime: str = "auto",
                 pool_size: int = 2, pooled: bool = True, base_url: str | None = None,
                 grace_s: float = 3.0, startup_timeout_s: float = 30.0,
                 idle_exit_s: float = 3600.0, fork_server: bool = True,
                 outage_budget_s: float = DEFAULT_OUTAGE_BUDGET_S):
        if outage_budget_s < 0:
            raise ConfigError(f"sandbox outage_budget_s must be >= 0, not {outage_budget_s}")
        self.image, self.runtime, self.pool_size, self.pooled = image, runtime, pool_size, pooled
        self.base_url, self.grace_s = base_url, grace_s
        self.startup_timeout_s, self.idle_exit_s = startup_timeout_s, idle_exit_s
        self.fork_server, self.outage_budget_s = fork_server, outage_budget_s
        self._reset_state()

    def _reset_state(self) -> None:
        self._api = None
        self._runtime: str | None = None
        self._idle: dict[_Shape, list[_Container]] = {}
        self._busy: set[_Container] = set()
        self._shapes: set[_Shape] = set()  # every shape run so far: rebuilt after an outage
        self._lock = threading.Lock()
        self._outage = outage.Outage("Docker", self.outage_budget_s)
        self._pid = os.getpid()
        self._instance = uuid.uuid4().hex
        self.started = 0  # containers started by this object (for tests and benchmarks)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k in self._OPTIONS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"outage_budget_s": DEFAULT_OUTAGE_BUDGET_S, **state})
        self._reset_state()

    # ---- engine ---------------------------------------------------------------------------

    def _engine(self):
        if self._pid != os.getpid():  # a forked child must not share the parent's containers
            self._reset_state()
        if self._outage.down:  # no new work while the engine is down: wait for it (bounded)
            self._outage.wait(self._reconnect, _ENGINE_DOWN + engine.engine_errors())
        if self._api is None:  # the first connection is not waited for: no engine is a set-up error
            api = engine.connect(self.base_url)
            engine.check_image(api, self.image)
            self._runtime = engine.pick_runtime(api, self.runtime)
            engine.remove_stale(api)
            self._api = api
            atexit.register(_close_at_exit, weakref.ref(self))
        return self._api

    def _probe(self):
        """A fresh connection with a short timeout (`SandboxError` when the engine does not answer)."""
        version = self._api.api_version if self._api is not None else None
        return engine.connect(self.base_url, timeout_s=self.PROBE_TIMEOUT_S, version=version)

    def _answering(self) -> bool:
        """Whether the engine answers a ping now."""
        try:
            self._probe()
        except SandboxError:
            return False
        return True

    def _reconnect(self) -> None:
        """The outage probe: connect, check the image, rebuild the warm pool. Raises while the
        engine is still down (`SandboxError`, engine errors, a container that cannot start)."""
        self._probe()  # answers quickly: now connect with the usual timeout for API calls
        api = engine.connect(self.base_url, version=self._api.api_version if self._api else None)
        engine.check_image(api, self.image)
        with self._lock:
            stale = [c for idle in self._idle.values() for c in idle]
            self._idle = {}
        for container in stale:  # dead with the old engine, or orphaned: remove, never reuse
            container.api = api
            container.close()
        self._api = api
        if self.pooled:
            for shape in list(self._shapes):
                self._fill(shape)

    @property
    def runtime_in_use(self) -> str:
        self._engine()
        return self._runtime or "default"

    def _acquire(self, shape: _Shape) -> _Container:
        """An idle container of `shape`, else a new one. When starting one fails because the
        engine stopped answering, wait for it (the outage budget) and try again."""
        self._shapes.add(shape)
        for attempt in range(3):
            api = self._engine()
            container = self._take_idle(shape)
            if container is not None:
                return container
            try:
                return self._start(api, shape)
            except (_Lost, _HostTimeout) + engine.engine_errors() as exc:
                state = self._engine_state()
                if attempt < 2 and self._outage.down:
                    continue  # wait for the engine (the outage budget), then try again
                raise SandboxError(f"Docker engine failed to start a sandbox container: {exc}; "
                                   f"{state}") from exc
        raise AssertionError("unreachable")

    def _start(self, api, shape: _Shape) -> _Container:
        container = _Container.start(api, self.image, shape, self._runtime, self.idle_exit_s,
                                     self.startup_timeout_s, self._instance, self.fork_server)
        with self._lock:
            self.started += 1
            self._busy.add(container)
        return container

    def _take_idle(self, shape: _Shape) -> _Container | None:
        """A live idle container of `shape`, marked busy (tracked before it leaves the idle list,
        so an interrupt at any point cannot lose it from `close()`)."""
        with self._lock:
            idle = self._idle.get(shape, [])
            while idle:
                container = idle[-1]
                self._busy.add(container)
                idle.pop()
                if container.alive():
                    return container
                self._busy.discard(container)
                container.close()
        return None

    def _fill(self, shape: _Shape) -> None:
        """Start idle containers of `shape` up to `pool_size` (engine errors propagate)."""
        while len(self._idle.get(shape, [])) < self.pool_size:
            self._release(self._start(self._api, shape), reuse=True)

    def _release(self, container: _Container, reuse: bool) -> None:
        with self._lock:
            idle = self._idle.setdefault(container.shape, [])
            if reuse and self.pooled and len(idle) < self.pool_size:
                idle.append(container)  # listed idle before it stops being busy: never untracked
                self._busy.discard(container)
                return
        container.close()
        with self._lock:
            self._busy.discard(container)

    # ---- the protocol ---------------------------------------------------------------------

    def run(self, program: Program, limits: Limits) -> ExecutionResult:
        container = self._acquire(_Shape.of(limits))
        request = {"source": program.source, "stdin": program.stdin, "files": dict(program.files),
                   "collect": list(program.collect), "python": "python3",
                   "limits": {"timeout_s": limits.timeout_s, "output_bytes": limits.output_bytes,
                              "file_mb": limits.disk_mb}}
        try:
            reply = container.request(request, limits.timeout_s + self.grace_s)
        except (_HostTimeout, _Lost) as exc:
            self._release(container, reuse=False)
            what = ("did not answer within the run's limit plus grace "
                    f"({limits.timeout_s + self.grace_s:.1f} s)" if isinstance(exc, _HostTimeout)
                    else f"was lost mid-run ({exc})")
            raise SandboxError(f"sandbox container {container.id[:12]} {what}; "
                               f"{self._engine_state()}") from exc
        except BaseException:  # interrupted: the container's state is unknown, never reuse it
            self._release(container, reuse=False)
            raise
        container.runs += 1
        if "error" in reply:
            self._release(container, reuse=False)
            raise SandboxError(f"sandbox harness failed: {reply['error']}")
        self._release(container, reuse=not reply.get("dirt"))
        return result_of(reply)

    def _engine_state(self) -> str:
        """Whether the engine answers, for an error message; an engine that does not answer
        starts an outage, so the next runs wait for it instead of failing."""
        if not self._outage.down and self._answering():
            return "the Docker engine is up; the container died"
        self._outage.begin()
        return f"the Docker engine is not answering (for {self._outage.down_for_s():.0f} s)"

    def warm(self, limits: Limits, count: int | None = None) -> None:
        """Start idle containers for `limits` ahead of the first run (up to `pool_size`)."""
        shape = _Shape.of(limits)
        started = [self._acquire(shape) for _ in range(min(count or self.pool_size, self.pool_size))]
        for container in started:
            self._release(container, reuse=True)

    def harness_info(self, limits: Limits) -> dict[str, Any]:
        """What the harness of a warm container for `limits` reported when it started (its
        Python, the Landlock ABI it confines programs with: `landlock`, 0 = none)."""
        container = self._acquire(_Shape.of(limits))
        try:
            return dict(container.hello)
        finally:
            self._release(container, reuse=True)

    def close(self) -> None:
        """Remove every container this object started. Safe to call more than once."""
        if self._pid != os.getpid():
            return
        with self._lock:
            containers = {c for idle in self._idle.values() for c in idle} | self._busy
            self._idle, self._busy = {}, set()
        for container in containers:
            container.close()

    def leftovers(self) -> list[dict]:
        """Containers of this object that the engine still has (empty after `close()`)."""
        if self._api is None:
            return []
        label = f"{engine.INSTANCE_LABEL}={self._instance}"
        return self._api.containers(all=True, filters={"label": label})

    def __enter__(self) -> "DockerSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
