"""Helpers of the sandbox tests: what a run could have left on the host."""

import os
import socket
import time

from rlvr.sandbox import engine

# Processes other than PID 1, this program and its parent (the fork server's zygote).
OTHER_PROCESSES = ("import os\nprint([p for p in os.listdir('/proc') if p.isdigit() and int(p) not in "
                   "(1, os.getpid(), os.getppid())])")


def leftover_containers() -> list:
    return engine.our_containers(engine.connect(), mine_only=True)


def containers_of(pids, wait_s: float = 10.0) -> list:
    """rlvr containers owned by any of `pids` (on this host), after up to `wait_s` for the engine
    to finish removing them."""
    api = engine.connect()
    owners = {f"{socket.gethostname()}:{pid}" for pid in pids}
    deadline = time.monotonic() + wait_s
    while True:
        left = [c for c in engine.our_containers(api)
                if (c.get("Labels") or {}).get(engine.OWNER_LABEL) in owners]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def sandbox_processes_on_host() -> list[int]:
    """Host processes running as the sandbox user (uid 65534) under python3: our programs."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as fh:
                uid = next(line.split()[1] for line in fh if line.startswith("Uid:"))
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")[0]
        except (OSError, StopIteration):
            continue
        if uid == "65534" and cmd.endswith(b"python3"):
            found.append(int(pid))
    return found
