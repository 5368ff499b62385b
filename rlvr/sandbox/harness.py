"""The run harness: start one untrusted program under limits, capture capped output, clean up.

This file is self-contained (standard library only, Python >= 3.8) because it is also shipped as
source into sandbox containers, where it runs as the container's long-lived PID 1 and serves
one request at a time over length-prefixed JSON on stdin/stdout (`serve`). The subprocess backend
imports `run_program` from here and calls it directly on the host.

One run: a fresh private directory, the program's files, a child `python3` in its own session with
rlimits and `oom_score_adj` 1000 (the kernel kills it before the harness), stdin fed and stdout /
stderr read without threads, the wall-clock limit enforced by killing, output capped. Afterwards
every other process is killed (in a container: `kill(-1)` from PID 1, which the kernel never
delivers to PID 1 itself; on the host: the child's process group) and the directory removed. The
harness then reports whether the container is still clean (no leftover process, shared-memory
file, message queue or System V IPC object); a dirty container is recycled by the host.

It deliberately does not judge outputs, and it is not the security boundary: the container is.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import time

HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 256 << 20
_MAIN = "main.py"
_OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


# ---- framing --------------------------------------------------------------------------------

def read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> dict | None:
    """One length-prefixed JSON object from `fd`; None at end of file."""
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {size} bytes is over the limit")
    body = read_exact(fd, size)
    return None if body is None else json.loads(body.decode("utf-8"))


def encode_message(obj: dict) -> bytes:
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return HEADER.pack(len(body)) + body


def write_message(fd: int, obj: dict) -> None:
    data = memoryview(encode_message(obj))
    while data:
        data = data[os.write(fd, data):]


# ---- one run --------------------------------------------------------------------------------

def _safe_name(name: str) -> str:
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"file name {name!r} must be a relative path inside the work dir")
    return os.path.join(*parts)


def _write_files(run_dir: str, files: dict) -> None:
    for name, content in files.items():
        path = os.path.join(run_dir, _safe_name(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(content)


def _read_collected(run_dir: str, names: list, cap_bytes: int) -> dict:
    """Regular files only, not following links, at most `cap_bytes` each."""
    out = {}
    for name in names:
        try:
            fd = os.open(os.path.join(run_dir, _safe_name(name)),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (OSError, ValueError):
            continue
        try:
            if not (os.fstat(fd).st_mode & 0o170000 == 0o100000):
                continue
            out[name] = os.read(fd, cap_bytes).decode("utf-8", "replace")
        except OSError:
            continue
        finally:
            os.close(fd)
    return out


def _oom_kills() -> int:
    for path in _OOM_FILES:
        try:
            with open(path) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return -1


def _limit_child(limits: dict) -> None:
    """Runs in the child between fork and exec: rlimits and OOM priority."""
    def cap(which: int, value: int) -> None:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, 256)
    if limits.get("file_mb"):
        cap(resource.RLIMIT_FSIZE, int(limits["file_mb"]) << 20)
    if limits.get("address_space_mb"):
        cap(resource.RLIMIT_AS, int(limits["address_space_mb"]) << 20)
    if limits.get("nproc"):
        cap(resource.RLIMIT_NPROC, int(limits["nproc"]))
    if limits.get("cpu_s"):
        cap(resource.RLIMIT_CPU, int(limits["cpu_s"]))
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass


class _Output:
    def __init__(self, cap_bytes: int):
        self.cap, self.data, self.truncated = cap_bytes, bytearray(), False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        self.data += chunk[:max(room, 0)]
        self.truncated = self.truncated or len(chunk) > room

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")


def _pump(proc: subprocess.Popen, stdin_data: bytes, deadline: float, cap_bytes: int):
    """Feed stdin and read stdout/stderr until the child exits, the deadline passes, or output
    overflows. Returns (stdout, stderr, why) with why in {"exit", "timeout", "output"}."""
    out, err = _Output(cap_bytes), _Output(cap_bytes)
    sel = selectors.DefaultSelector()
    pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ, "exit")
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    pending = memoryview(stdin_data)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
    else:
        proc.stdin.close()
    why = None
    try:
        while why is None:
            left = deadline - time.monotonic()
            if left <= 0:
                why = "timeout"
                break
            for key, _ in sel.select(timeout=min(left, 0.05 if pidfd is None else left)):
                if key.data == "exit":
                    why = "exit"
                elif key.data == "stdin":
                    try:
                        pending = pending[os.write(key.fd, pending):]
                    except (BrokenPipeError, OSError):
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                else:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    else:
                        key.data.add(chunk)
                        if key.data.truncated:
                            why = "output"
            if why is None and pidfd is None and proc.poll() is not None:
                why = "exit"
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
    return out, err, why


def _drain(stream, output: _Output) -> None:
    """Read what is left in a pipe whose writers are all dead."""
    os.set_blocking(stream.fileno(), False)
    try:
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return
            output.add(chunk)
    except (BlockingIOError, OSError):
        return
    finally:
        stream.close()


def kill_namespace() -> None:
    """As PID 1 of a PID namespace: kill and reap every other process, until none is left."""
    for _ in range(50):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not other_processes():
            return
        time.sleep(0.002)


def other_processes() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def run_program(request: dict, work_root: str, run_id: str, in_namespace: bool) -> dict:
    """Run one request (see `serve`) and return the result dict. `in_namespace` selects how
    leftovers are killed: `kill(-1)` as PID 1 of a container, else the child's process group."""
    limits = request.get("limits", {})
    cap_bytes = int(limits.get("output_bytes", 1 << 20))
    run_dir = os.path.join(work_root, run_id)
    os.mkdir(run_dir, 0o700)
    oom_before = _oom_kills()
    try:
        _write_files(run_dir, dict(request.get("files", {})))
        with open(os.path.join(run_dir, _MAIN), "w", encoding="utf-8") as fh:
            fh.write(request["source"])
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": run_dir, "TMPDIR": run_dir,
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        start = time.monotonic()
        proc = subprocess.Popen([request.get("python", sys.executable), "-E", "-s", _MAIN],
                                cwd=run_dir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True, start_new_session=True,
                                preexec_fn=lambda: _limit_child(limits))
        out, err, why = _pump(proc, request.get("stdin", "").encode("utf-8"),
                              start + float(limits.get("timeout_s", 10.0)), cap_bytes)
        if why != "exit":
            proc.kill()
        exit_code = proc.wait()  # before the sweep below, which would reap it blindly
        if in_namespace:
            kill_namespace()
        else:
            _kill_group(proc.pid)
        wall_s = time.monotonic() - start
        _drain(proc.stdout, out)
        _drain(proc.stderr, err)
        files = _read_collected(run_dir, list(request.get("collect", [])), cap_bytes)
    finally:
        _remove_tree(run_dir)
    oom = oom_before >= 0 and _oom_kills() > oom_before
    return {"exit_code": None if why != "exit" or exit_code < 0 else exit_code,
            "signal": -exit_code if exit_code < 0 else None,
            "stdout": out.text(), "stderr": err.text(), "timed_out": why == "timeout",
            "oom_killed": oom, "wall_s": round(wall_s, 6), "stdout_truncated": out.truncated,
            "stderr_truncated": err.truncated, "files": files}


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_tree(path: str) -> None:
    def make_writable_and_retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable_and_retry)


# ---- the container's PID 1 ------------------------------------------------------------------

def dirt(work_root: str) -> list[str]:
    """What a finished run left behind that could reach the next one (empty when clean)."""
    found = [f"process {pid}" for pid in other_processes()]
    for where in (work_root, "/dev/shm", "/dev/mqueue"):
        try:
            found += [os.path.join(where, n) for n in os.listdir(where)]
        except OSError:
            continue
    for table in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{table}") as fh:
                if len(fh.read().strip().splitlines()) > 1:
                    found.append(f"System V {table}")
        except OSError:
            continue
    return found


def _make_undumpable() -> bool:
    """Forbid ptrace and /proc/1/mem access to the harness by its same-uid children."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except (ImportError, OSError, AttributeError):
        return False


def serve(work_root: str, idle_exit_s: float) -> int:
    """Answer requests on fd 0 with results on fd 1 until end of input or `idle_exit_s` idle.

    A request is {"source", "stdin", "files", "collect", "limits": {"timeout_s", "output_bytes",
    "file_mb", ...}}; {"op": "ping"} answers {"ok": true}. Each result carries "dirt": what the
    run left behind that the harness could not remove (the host then recycles the container).
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGQUIT, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)
    write_message(1, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                      "undumpable": _make_undumpable(), "python": sys.version.split()[0],
                      "oom_counter": _oom_kills() >= 0})
    count = 0
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    while sel.select(timeout=idle_exit_s):
        request = read_message(0)
        if request is None:
            return 0
        if request.get("op") == "ping":
            write_message(1, {"ok": True})
            continue
        count += 1
        try:
            result = run_program(request, work_root, f"run-{count}", in_namespace=os.getpid() == 1)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            kill_namespace()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["dirt"] = dirt(work_root)
        write_message(1, result)
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1] if len(sys.argv) > 1 else "/sandbox",
                   float(sys.argv[2]) if len(sys.argv) > 2 else 3600.0))
