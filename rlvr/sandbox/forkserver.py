"""The sandbox container's PID 1: serve runs over stdin/stdout, start programs from a fork server.

Shipped as source into each pooled container (standard library only, with `harness.py`), where it
runs as PID 1 and answers one length-prefixed JSON request at a time on fd 0 / fd 1 (`serve`).

Starting a new `python3` costs about 15 ms; forking a running interpreter about 1 ms. So at start,
before it has read any request, PID 1 forks a *zygote*: a clean interpreter that never sees a
request's data (program, input, output). For each run, PID 1 writes the run directory and hands
the zygote three pipe ends over a socket pair; the zygote forks, and the child becomes the program
(own session, rlimits, default signals, scrubbed environment, a fresh `__main__` executing
`main.py`, atexit handlers and exit status as `python3 main.py` would have them). The zygote
reports the child's pid and, later, its exit status. No memory of one run ever reaches another:
PID 1 holds request data but is never forked after the zygote exists. Where the kernel has
Landlock, each program is confined before it runs (`harness.confine`): it can create, change or
delete files only beneath its own run directory (`/dev/shm`, `/dev/mqueue` and the rest of
`/sandbox` included), and from Landlock ABI 6 on it cannot signal or trace PID 1, the zygote or
anything else outside its domain; the hello message reports the ABI (`landlock`, 0: none).

After every run PID 1 kills every process except itself and the zygote, and checks what could
reach the next run: leftover processes, files in the work dir, `/dev/shm`, `/dev/mqueue`, System V
IPC objects, and a zygote that is gone, stopped, or whose scheduling, CPU affinity or rlimits were
changed (a program runs as the same uid and could try). Any of it is reported as `dirt`, and the
host then discards the container. PID 1 and the zygote are undumpable (no ptrace, no /proc/PID/mem
for their same-uid children), and PID 1 of a namespace cannot be killed from inside it.

Without `socket.send_fds` / `os.pidfd_open` (Python < 3.9), or when asked (`DockerSandbox(
fork_server=False)`), it starts a new `python3` per run instead.
"""

from __future__ import annotations

import builtins
import json
import os
import selectors
import signal
import socket
import sys
import time
import types

try:
    import rlvr_harness as harness  # inside a container: loaded from source by the boot line
except ImportError:
    from rlvr.sandbox import harness

BOOT = ("import sys, types\n"
        "for name, i in (('rlvr_harness', 1), ('rlvr_forkserver', 2)):\n"
        "    m = sys.modules[name] = types.ModuleType(name)\n"
        "    exec(compile(sys.argv[i], name + '.py', 'exec'), m.__dict__)\n"
        "sys.exit(sys.modules['rlvr_forkserver'].main(sys.argv[3:]))\n")
_DEFAULT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTSTP",
                    "SIGTTIN", "SIGTTOU")  # ignored by PID 1 and the zygote, default in programs


def _ignore_signals() -> None:
    for name in _DEFAULT_SIGNALS + ("SIGINT", "SIGPIPE"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


# ---- the program, in a child of the zygote -------------------------------------------------

def _become_program(request: dict, fds: list[int]) -> None:
    """Turn this fresh fork of the zygote into `python3 main.py` in the run dir. Never returns."""
    status = 1
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, 65536)
        harness.limit_child(request["limits"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for name in _DEFAULT_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.chdir(request["run_dir"])
        harness.confine(request["run_dir"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path.insert(0, request["run_dir"])
        status = _run_main(os.path.join(request["run_dir"], harness.MAIN))
    finally:
        os._exit(status)


def _run_main(path: str) -> int:
    main = types.ModuleType("__main__")
    main.__file__, main.__builtins__ = path, builtins
    sys.modules["__main__"], sys.argv[:] = main, [path]
    try:
        with open(path, "rb") as fh:
            code = compile(fh.read(), path, "exec")
        exec(code, main.__dict__)
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:  # what the interpreter does with an uncaught exception
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # from main.py on
        status = 1
    return _shut_down(status)


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _shut_down(status: int) -> int:
    """Wait for non-daemon threads, run atexit handlers, flush: the interpreter's exit steps."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120
    return status


# ---- the zygote ----------------------------------------------------------------------------

def _zygote(sock: socket.socket) -> None:
    """Fork one child per request from PID 1; report its pid and exit status. Never returns."""
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    while True:
        for key, _ in sel.select():
            if key.data is not None:  # a child exited
                sel.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(key.data, 0)
                sock.send(json.dumps({"exit": key.data,
                                      "code": os.waitstatus_to_exitcode(status)}).encode())
                continue
            try:
                message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
            except OSError:
                os._exit(0)
            if not message:
                os._exit(0)  # PID 1 is gone
            pid = os.fork()
            if pid == 0:
                sel.close()
                _become_program(json.loads(message), fds)
            for fd in fds:
                os.close(fd)
            sel.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
            sock.send(json.dumps({"pid": pid}).encode())


class ForkChild:
    """PID 1's view of one program started by the zygote (the interface of `PopenChild`)."""

    def __init__(self, server: "ForkServer", run_dir: str, env: dict, limits: dict):
        self.server = server
        in_r, self.stdin = os.pipe()
        self.stdout, out_w = os.pipe()
        self.stderr, err_w = os.pipe()
        request = {"run_dir": run_dir, "env": env, "limits": limits}
        try:
            socket.send_fds(server.sock, [json.dumps(request).encode()], [in_r, out_w, err_w])
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.pid = self._next(10.0)["pid"]
        self.exit_fd = server.sock.fileno()
        self.code: int | None = None

    def _next(self, timeout_s: float | None = None) -> dict:
        self.server.sock.settimeout(timeout_s)
        data = self.server.sock.recv(1 << 16)
        if not data:
            raise OSError("the zygote is gone")
        return json.loads(data)

    def exited(self) -> bool:
        """Read the zygote's next report. A zygote that is gone or silent (a program may stop
        or kill it) counts as the program killed; `ForkServer.tampered` then recycles."""
        try:
            message = self._next(2.0)
        except OSError:
            self.server.broken = True
            self.kill()
            self.code = -signal.SIGKILL
            return True
        if message.get("exit") == self.pid:
            self.code = message["code"]
        return self.code is not None

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        while self.code is None:
            self.exited()
        return self.code


class ForkServer:
    """PID 1's handle on its zygote, and the zygote's fingerprint to notice tampering."""

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                _zygote(theirs)
            finally:  # nothing may unwind into PID 1's code in this process
                os._exit(0)
        theirs.close()
        self.broken = False
        self.fingerprint = self._fingerprint()

    def spawn(self, run_dir: str, env: dict, limits: dict) -> ForkChild:
        return ForkChild(self, run_dir, env, limits)

    def _fingerprint(self) -> tuple:
        """Scheduling policy and nice value, CPU affinity and rlimits of the zygote."""
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{self.pid}/limits") as fh:
            limits = fh.read()
        return fields[16], fields[38], tuple(sorted(os.sched_getaffinity(self.pid))), limits

    def tampered(self) -> str | None:
        if self.broken:
            return "zygote unresponsive"
        try:
            with open(f"/proc/{self.pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            if state not in ("S", "R"):
                return f"zygote in state {state}"
            if self._fingerprint() != self.fingerprint:
                return "zygote scheduling, affinity or limits changed"
        except OSError:
            return "zygote gone"
        return None


# ---- PID 1 ---------------------------------------------------------------------------------

def other_processes(keep: tuple[int, ...] = ()) -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc")
            if p.isdigit() and int(p) != me and int(p) not in keep]


def sweep_namespace(keep: tuple[int, ...] = (), timeout_s: float = 2.0) -> None:
    """As PID 1: kill and reap every other process but `keep`, until none is left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        victims = other_processes(keep)
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        _reap_orphans(keep)
        time.sleep(0.001)


def _reap_orphans(keep: tuple[int, ...]) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0 or pid in keep:
            return


def dirt(work_root: str, server: ForkServer | None) -> list[str]:
    """What a finished run left behind that could reach the next one (empty when clean)."""
    keep = (server.pid,) if server else ()
    found = [f"process {pid}" for pid in other_processes(keep)]
    problem = server.tampered() if server is not None else None
    if problem:
        found.append(problem)
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
    """Forbid ptrace and /proc/PID/mem access by same-uid processes (inherited by the zygote)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except (ImportError, OSError, AttributeError):
        return False


def _can_fork_serve() -> bool:
    """The fork server needs fd passing and pidfds (Python >= 3.9; some runtimes lack pidfds)."""
    if not (hasattr(socket, "send_fds") and hasattr(os, "pidfd_open")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def serve(work_root: str, idle_exit_s: float, fork: bool = True) -> int:
    """Answer requests on fd 0 with results on fd 1 until end of input or `idle_exit_s` idle.

    A request is {"source", "stdin", "files", "collect", "python", "limits": {"timeout_s",
    "output_bytes", "file_mb"}}; {"op": "ping"} answers {"ok": true}. Each result carries "dirt"
    (see `dirt`); a result with "error" means the harness itself failed.
    """
    _ignore_signals()
    os.chdir("/")
    undumpable = _make_undumpable()
    landlock = harness.landlock_abi()  # before the zygote forks: it inherits the C library handle
    server = ForkServer() if fork and _can_fork_serve() else None
    write_message = harness.write_message
    write_message(1, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                      "undumpable": undumpable, "fork_server": server is not None,
                      "landlock": landlock,
                      "python": sys.version.split()[0], "oom_counter": harness._oom_kills() >= 0})
    keep = (server.pid,) if server else ()
    count = 0
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    while sel.select(timeout=idle_exit_s):
        request = harness.read_message(0)
        if request is None:
            return 0
        if request.get("op") == "ping":
            write_message(1, {"ok": True})
            continue
        count += 1
        python = request.get("python", "python3")
        spawn = server.spawn if server else (lambda d, e, lim: harness.PopenChild(python, d, e, lim))
        try:
            result = harness.run_program(request, work_root, f"run-{count}", spawn,
                                         lambda child: sweep_namespace(keep))
        except (OSError, ValueError) as exc:
            sweep_namespace(keep)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["dirt"] = dirt(work_root, server)
        write_message(1, result)
    return 0


def main(argv: list[str]) -> int:
    if os.getpid() != 1:  # the sweep kills every other process it can: only inside a container
        print("rlvr fork server: refusing to run except as PID 1 of a sandbox container",
              file=sys.stderr)
        return 2
    return serve(argv[0] if argv else "/sandbox", float(argv[1]) if len(argv) > 1 else 3600.0,
                 fork=(argv[2] if len(argv) > 2 else "fork") == "fork")
