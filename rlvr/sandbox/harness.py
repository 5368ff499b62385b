"""The run harness: start one untrusted program under limits, capture capped output, clean up.

This file is self-contained (standard library only, Python >= 3.8) because it is also shipped as
source into sandbox containers, where `rlvr.sandbox.forkserver` (the container's PID 1) uses it;
the subprocess backend calls `run_program` directly on the host.

One run: a fresh private directory holding the program's files and `main.py`, a child process in
its own session with rlimits and `oom_score_adj` 1000 (the kernel's OOM killer takes it first),
confined by Landlock where the kernel has it (`confine`: it may write only beneath its run dir,
and may not signal or trace processes outside its domain),
stdin fed and stdout / stderr read without threads, the wall-clock limit enforced by killing,
output capped, then every leftover process killed by the caller's `sweep` and the directory
removed. How the child is started is the caller's `spawn`: `PopenChild` starts a new `python3`;
the fork server forks a pre-started interpreter instead (much faster).

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
import time

try:
    import ctypes  # Landlock, for confining programs; imported here so forks find it loaded
except ImportError:  # a Python built without ctypes: programs run unconfined by Landlock
    ctypes = None

HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 256 << 20
MAIN = "main.py"
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


def limit_child(limits: dict) -> None:
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


# ---- Landlock: writes only beneath the run dir -----------------------------------------------

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_FS_WRITE_FILE = 1 << 1
_FS_WRITES = (_FS_WRITE_FILE | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10
              | 1 << 11 | 1 << 12)  # write, remove dir/file, make char/dir/reg/sock/fifo/block/sym
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
_SCOPE_ABSTRACT_UNIX_AND_SIGNAL = 3  # ABI 6


_LIBC: list = []  # the C library's handle, opened once (before any fork that uses it)


def _libc():
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL(None, use_errno=True) if ctypes is not None else None)
        except OSError:
            _LIBC.append(None)
    return _LIBC[0]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where it has none (or seccomp forbids it)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "syscall"):
        return 0
    return max(0, libc.syscall(_SYS_CREATE_RULESET, None, 0, 1))  # LANDLOCK_CREATE_RULESET_VERSION


def confine(run_dir: str) -> int:
    """Put the calling process (a program about to run) in a Landlock domain where it may create,
    change or delete files only beneath `run_dir` (and write `/dev/null`), and, from ABI 6 on,
    may not signal, trace or reach abstract sockets of processes outside the domain (PID 1, the
    zygote, the rlvr host process). Reading is not restricted. Returns the ABI used; 0 where the
    kernel has no Landlock, and then only the container's read-only root stands."""
    abi = landlock_abi()
    libc = _libc()
    if abi < 1 or libc is None:
        return 0
    writes = _FS_WRITES | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    if abi >= 6:
        attr = struct.pack("=QQQ", writes, 0, _SCOPE_ABSTRACT_UNIX_AND_SIGNAL)
    else:
        attr = struct.pack("=Q", writes)
    ruleset = libc.syscall(_SYS_CREATE_RULESET, attr, len(attr), 0)
    if ruleset < 0:
        return 0
    try:
        rules = ((run_dir, writes), (os.devnull, _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)))
        for path, access in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = struct.pack("=Qi", access, fd)  # landlock_path_beneath_attr, packed
                if libc.syscall(_SYS_ADD_RULE, ruleset, 1, rule, 0) != 0:
                    return 0
            finally:
                os.close(fd)
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, which restrict_self requires
        return abi if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) == 0 else 0
    except OSError:  # the run dir or /dev/null cannot be opened: no confinement, as without Landlock
        return 0
    finally:
        os.close(ruleset)


class _Output:
    def __init__(self, cap_bytes: int):
        self.cap, self.data, self.truncated = cap_bytes, bytearray(), False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        self.data += chunk[:max(room, 0)]
        self.truncated = self.truncated or len(chunk) > room

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")


def _limit_and_confine(limits: dict, run_dir: str) -> None:
    limit_child(limits)
    confine(run_dir)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits; None where the kernel has none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class PopenChild:
    """A new `python3 -E -s main.py` process with its own pipes, session and rlimits."""

    def __init__(self, python: str, run_dir: str, env: dict, limits: dict):
        _libc()  # opened here: the child between fork and exec only calls it
        in_r, self.stdin = os.pipe()
        self.stdout, out_w = os.pipe()
        self.stderr, err_w = os.pipe()
        try:
            self.proc = subprocess.Popen([python, "-E", "-s", MAIN], cwd=run_dir, env=env,
                                         stdin=in_r, stdout=out_w, stderr=err_w, close_fds=True,
                                         start_new_session=True,
                                         preexec_fn=lambda: _limit_and_confine(limits, run_dir))
        except BaseException:
            for fd in (self.stdin, self.stdout, self.stderr):
                os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.pid = self.proc.pid
        self.exit_fd = _pidfd(self.pid)

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def kill(self) -> None:
        self.proc.kill()

    def wait(self) -> int:
        """Exit status, negative for a signal. Closes the exit descriptor."""
        code = self.proc.wait()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        return code


def _pump(child, stdin_data: bytes, deadline: float, cap_bytes: int):
    """Feed stdin and read stdout/stderr until the child exits, the deadline passes, or output
    overflows. Returns (stdout, stderr, why) with why in {"exit", "timeout", "output"}."""
    out, err = _Output(cap_bytes), _Output(cap_bytes)
    sel = selectors.DefaultSelector()
    if child.exit_fd is not None:
        sel.register(child.exit_fd, selectors.EVENT_READ, "exit")
    sel.register(child.stdout, selectors.EVENT_READ, out)
    sel.register(child.stderr, selectors.EVENT_READ, err)
    pending = memoryview(stdin_data)
    if pending:
        os.set_blocking(child.stdin, False)
        sel.register(child.stdin, selectors.EVENT_WRITE, "stdin")
    else:
        os.close(child.stdin)
    why = None
    try:
        while why is None:
            left = deadline - time.monotonic()
            if left <= 0:
                why = "timeout"
                break
            for key, _ in sel.select(timeout=min(left, 0.05 if child.exit_fd is None else left)):
                if key.data == "exit":
                    if child.exited():
                        why = "exit"
                elif key.data == "stdin":
                    try:
                        pending = pending[os.write(key.fd, pending):]
                    except OSError:  # the program closed its stdin
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(key.fd)
                        os.close(key.fd)
                else:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                    else:
                        key.data.add(chunk)
                        if key.data.truncated:
                            why = "output"
            if why is None and child.exit_fd is None and child.exited():
                why = "exit"
    finally:
        if pending:
            os.close(child.stdin)
        sel.close()
    return out, err, why


def _drain(fd: int, output: _Output) -> None:
    """Read what is left in a pipe whose writers are all dead, then close it."""
    os.set_blocking(fd, False)
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            output.add(chunk)
    except OSError:  # BlockingIOError: a writer we could not kill still holds it
        return
    finally:
        os.close(fd)


def scrubbed_env(run_dir: str) -> dict:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": run_dir, "TMPDIR": run_dir,
            "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}


def run_program(request: dict, work_root: str, run_id: str, spawn, sweep) -> dict:
    """Run one request and return the result dict. `spawn(run_dir, env, limits)` starts the child
    (`PopenChild` or the fork server's); `sweep(child)` kills whatever the run left running."""
    limits = request.get("limits", {})
    cap_bytes = int(limits.get("output_bytes", 1 << 20))
    run_dir = os.path.join(work_root, run_id)
    os.mkdir(run_dir, 0o700)
    oom_before = _oom_kills()
    try:
        _write_files(run_dir, dict(request.get("files", {})))
        with open(os.path.join(run_dir, MAIN), "w", encoding="utf-8") as fh:
            fh.write(request["source"])
        start = time.monotonic()
        child = spawn(run_dir, scrubbed_env(run_dir), limits)
        out, err, why = _pump(child, request.get("stdin", "").encode("utf-8"),
                              start + float(limits.get("timeout_s", 10.0)), cap_bytes)
        if why != "exit":
            child.kill()
        exit_code = child.wait()  # before the sweep, which may reap blindly
        sweep(child)
        wall_s = time.monotonic() - start
        _drain(child.stdout, out)
        _drain(child.stderr, err)
        files = _read_collected(run_dir, list(request.get("collect", [])), cap_bytes)
    finally:
        _remove_tree(run_dir)
    oom = oom_before >= 0 and _oom_kills() > oom_before
    return {"exit_code": None if why != "exit" or exit_code < 0 else exit_code,
            "signal": -exit_code if exit_code < 0 else None,
            "stdout": out.text(), "stderr": err.text(), "timed_out": why == "timeout",
            "oom_killed": oom, "wall_s": round(wall_s, 6), "stdout_truncated": out.truncated,
            "stderr_truncated": err.truncated, "files": files}


def kill_group(child) -> None:
    """The subprocess backend's sweep: the child's process group (escapable with setsid)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
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
