"""`rlvr sandbox doctor`: check that the Docker sandbox works and that its limits really hold.

Each check is one line of the report: the engine answers, the image exists, which runtime is used
(gVisor `runsc` or the default), what an engine restart does (`live-restore`: whether containers
survive it) and the sandbox's outage budget (how long runs wait for an engine that stopped
answering; both informational), and then probes run through a real `DockerSandbox`: the program
runs as an unprivileged user with no capabilities and `no-new-privileges`, has no network, cannot
write the root filesystem, is killed at its time limit, is stopped by the memory, pids, disk and
output limits, and a warm run costs tens of milliseconds. A check that cannot run is reported as
failed with the reason; nothing is fixed or changed. This module does not build images.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

from rlvr.errors import ConfigError, SandboxError
from rlvr.sandbox import engine
from rlvr.sandbox.base import ExecutionResult, Limits, Program


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


_PRIVILEGES = """
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
import os
print(os.getuid(), status['CapEff'].strip(), status['NoNewPrivs'].strip(), status['Seccomp'].strip())
"""
_NETWORK = """
import os, socket
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2)
    print('connected')
except OSError as exc:
    print('blocked', sorted(os.listdir('/sys/class/net')))
"""
_ROOT_FS = """
try:
    open('/etc/rlvr-probe', 'w')
    print('writable')
except OSError:
    print('read-only')
"""
_FORK = """
import os, time
n = 0
try:
    for _ in range(1000):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        n += 1
except OSError:
    pass
print(n)
"""
_DISK = """
n = 0
try:
    with open('fill', 'wb') as fh:
        for _ in range(1000):
            fh.write(b'x' * (1 << 20)); fh.flush(); n += 1
except OSError:
    pass
print(n)
"""

Probe = tuple[str, str, Limits, Callable[[ExecutionResult], tuple[bool, str]]]


def _probes(limits: Limits) -> list[Probe]:
    small = Limits(timeout_s=5, memory_mb=128, pids=16, disk_mb=8, output_bytes=1000)
    return [
        ("user, capabilities, no-new-privileges, seccomp", _PRIVILEGES, limits,
         lambda r: (r.stdout.split()[:3] == ["65534", "0000000000000000", "1"],
                    "uid, CapEff, NoNewPrivs, Seccomp = " + r.stdout.strip())),
        ("no network", _NETWORK, limits,
         lambda r: (r.stdout.startswith("blocked"), r.stdout.strip())),
        ("read-only root filesystem", _ROOT_FS, limits,
         lambda r: (r.stdout.strip() == "read-only", r.stdout.strip())),
        ("wall-clock limit", "import time\ntime.sleep(30)", Limits(timeout_s=1),
         lambda r: (r.timed_out and r.wall_s < 3, f"killed after {r.wall_s:.2f} s")),
        ("memory limit (swap off)", "x = bytearray(400 << 20)\nprint('allocated')", small,
         lambda r: (r.oom_killed and "allocated" not in r.stdout, f"oom_killed={r.oom_killed}")),
        ("pids limit", _FORK, small,
         lambda r: (r.stdout.strip().isdigit() and int(r.stdout) < small.pids,
                    f"{r.stdout.strip()} forks allowed under pids={small.pids}")),
        ("disk limit", _DISK, small,
         lambda r: (r.stdout.strip().isdigit() and int(r.stdout) <= small.disk_mb,
                    f"{r.stdout.strip()} MB written under disk_mb={small.disk_mb}")),
        ("output cap", "print('x' * 100000)", small,
         lambda r: (r.stdout_truncated and len(r.stdout) <= 1000, f"{len(r.stdout)} bytes kept")),
    ]


def run_checks(image: str = engine.DEFAULT_IMAGE, runtime: str = "auto",
               base_url: str | None = None, outage_budget_s: float | None = None) -> list[Check]:
    """Every check, in order; stops after the first one that makes the rest meaningless."""
    from rlvr.sandbox.docker import DEFAULT_OUTAGE_BUDGET_S, DockerSandbox
    from rlvr.sandbox.image import image_exists

    checks: list[Check] = []
    try:
        api = engine.connect(base_url)
        version = api.version()
        checks.append(Check("engine", True, f"Docker {version.get('Version')}, "
                                            f"API {version.get('ApiVersion')}"))
    except SandboxError as exc:
        return [Check("engine", False, str(exc))]
    if not image_exists(api, image):
        checks.append(Check("image", False, f"{image!r} missing: run 'rlvr sandbox build-image'"))
        return checks
    checks.append(Check("image", True, image))
    try:
        chosen = engine.pick_runtime(api, runtime)
    except ConfigError as exc:
        return checks + [Check("runtime", False, str(exc))]
    checks.append(Check("runtime", True, chosen or "default (runc; gVisor runsc not installed)"))
    budget_s = DEFAULT_OUTAGE_BUDGET_S if outage_budget_s is None else outage_budget_s
    checks += _outage_checks(api, budget_s)
    limits = Limits(timeout_s=10)
    with DockerSandbox(image=image, runtime=runtime, base_url=base_url, pool_size=1,
                       outage_budget_s=budget_s) as sandbox:
        for name, source, probe_limits, judge in _probes(limits):
            try:
                ok, detail = judge(sandbox.run(Program(source), probe_limits))
            except SandboxError as exc:
                ok, detail = False, str(exc)
            checks.append(Check(name, ok, detail))
        checks.append(_landlock(sandbox.harness_info(limits)))
        checks.append(_overhead(sandbox, limits))
    leftovers = engine.our_containers(api, mine_only=True)
    checks.append(Check("nothing left behind", not leftovers, f"{len(leftovers)} containers left"))
    return checks


def _outage_checks(api, budget_s: float) -> list[Check]:
    """What an engine restart does to running sandboxes, and how long runs wait for the engine."""
    live = bool(api.info().get("LiveRestoreEnabled"))
    restore = ("on: containers keep running while the engine restarts" if live else
               "off: an engine restart kills running containers (their items become "
               "SandboxError, masked and counted; the warm pool is rebuilt)")
    budget = (f"{budget_s:g} s (sandbox option outage_budget_s): runs wait this long for an engine "
              "that stopped answering, then fail fast")
    return [Check("engine restarts (live-restore)", True, restore), Check("outage budget", True, budget)]


def _landlock(hello: dict) -> Check:
    """Programs write only in their run directory (and, from ABI 6, signal only their own
    processes) through Landlock; without it, /dev/shm and the rest of the tmpfs are writable."""
    abi = int(hello.get("landlock") or 0)
    if abi < 1:
        return Check("landlock", False, "the kernel has no Landlock: a program could write outside "
                     "its run dir (e.g. /dev/shm) and leave files for the next one; use Linux >= 5.13")
    scoped = "signals scoped to the program" if abi >= 6 else "signals not scoped (ABI < 6)"
    return Check("landlock", True, f"ABI {abi}: writes only in the run dir; {scoped}")


def _overhead(sandbox, limits: Limits, runs: int = 10) -> Check:
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        sandbox.run(Program("pass"), limits)
        times.append(time.perf_counter() - start)
    p50_ms = statistics.median(times[1:]) * 1000
    return Check("warm run overhead", p50_ms < 200, f"p50 {p50_ms:.0f} ms per trivial program")
