"""The test runner inside the sandbox: a test process and a candidate process, so that no verdict
depends on anything the candidate's code can reach (standard library only: this file is shipped
as the sandbox program's main file).

Two processes, one boundary between them:

- the **test process** (this program) makes itself undumpable, forks the candidate process, and
  only then reads its instructions from stdin: the nonce, the prompt's code, the test script and
  the candidate's source. It runs the prompt's code and the test script with the real builtins,
  and sends its result lines to the host on its own stdout, each prefixed by the nonce;
- the **candidate process** is forked before any of that was read, so its memory holds none of
  it. It keeps no descriptor of the test process but its two call pipes (stdout and stderr go to
  a third pipe the test process drains and caps), puts itself in a nested Landlock domain where
  the kernel has one (it can then neither signal nor trace the test process), loads the
  candidate's code, and answers calls: a function name and arguments in, a value or an exception
  out.

In the test process the entry point, and every name the test script reads that neither the
script, the prompt's code nor the builtins define, is a proxy of the candidate's function of that
name: it sends the call's arguments as tagged plain data and decodes the reply, which may hold
only None, bool, int, float, str, bytes, complex, list, tuple, dict, set and frozenset of exactly
those types, nested at most `MAX_DEPTH` deep, at most `MAX_MESSAGE_BYTES` long, parsed as JSON
(no pickle, no eval). An exception of the candidate's becomes one of a few builtin exception types
(by name) or `CandidateError`; a candidate process that exits or answers garbage fails that call
and every later one. The host reads results only from the test process's stdout:

    <nonce> {"case": 3, "ok": true}                    a case of the test script ran through
    <nonce> {"case": 3, "error": "AssertionError: "}   ... or raised
    <nonce> {"case": 3, "value": <tagged plain data>}   a function-call case's result
    <nonce> {"load_error": "..."}                      the candidate's code raised on load
    <nonce> {"script_error": "..."}                    the test script stopped early
    <nonce> {"reference_error": "..."}                 the prompt's own code raised
    <nonce> {"infra_error": "..."}                     the test process cannot protect itself
    <nonce> {"done": true}                             written last, after every case

Why the candidate cannot forge this. Everything it can reach is its own: its memory (a copy of
the test process from before any test, expected value or nonce was read), its frames (the caller
of its functions is `_serve`, which holds only the call's arguments), its builtins and modules
(the tests' are the test process's), the run directory (only this file: the instructions came on
stdin), and the reply pipe (through which it can only send what a function could return). The
verdict channel is the test process's stdout, which the candidate process never inherits; the
kernel refuses it the test process's memory and descriptors (`/proc/PID/mem`, `/proc/PID/fd`,
`ptrace`, `process_vm_readv`, `pidfd_getfd`: the test process is not dumpable, and Landlock
forbids tracing outside the domain) and, from Landlock ABI 6 on, its signals. Killing or
stopping the test process, where it can, only ends the run without `done`: a fail, never a pass.

What this does not protect against: a candidate that computes the right answers (or hard-codes
the examples in the prompt) passes; objects that are not plain data (instances of the
candidate's classes, generators, callables) cannot cross, so tests that need them fail; a test
that checks an argument the candidate mutates in place sees the unmutated argument; integers over
Python's 4300-digit conversion limit do not cross; a kernel vulnerability (both processes share
the uid) defeats the kernel's protections above, as it would defeat the container.
"""

import builtins
import json
import os
import select
import signal
import struct
import sys
import types

HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 8 << 20
MAX_DEPTH = 100
KEEP_OUTPUT_BYTES = 16 << 10
CASE_HOOK = "__rlvr_case__"
CANDIDATE = "__rlvr_candidate__"
_TAGS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
_KINDS = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}
# Exceptions of the candidate that keep their type in the test process; never StopIteration or
# the like, whose meaning to the caller (end of an iteration) a candidate could abuse.
_RAISABLE = {e.__name__: e for e in (
    ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, ArithmeticError,
    OverflowError, LookupError, RecursionError, RuntimeError, NotImplementedError,
    AssertionError, UnicodeError, NameError)}


class CandidateError(Exception):
    """The candidate's call raised an exception of another type, or its process is gone."""


# ---- plain data ---------------------------------------------------------------------------

def encode(value, depth=0):
    """Tagged JSON of `value`, which must be builtin plain data of exact types; TypeError else."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in _TAGS:
        return {_TAGS[kind]: [encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    raise TypeError("a %s is not plain data" % kind.__name__)


def decode(obj, depth=0):
    """The builtin value of tagged JSON, and nothing else; ValueError when malformed."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is not dict or len(obj) != 1:
        raise ValueError("untagged %s" % type(obj).__name__)
    (tag, body), = obj.items()
    try:
        if tag == "bytes" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "complex" and type(body) is list and len(body) == 2 \
                and all(type(x) in (int, float) for x in body):
            return complex(float(body[0]), float(body[1]))
        if type(body) is not list:
            raise ValueError("%s without a list" % tag)
        if tag == "dict":
            if not all(type(kv) is list and len(kv) == 2 for kv in body):
                raise ValueError("dict items must be pairs")
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in body}
        if tag not in _KINDS:
            raise ValueError("unknown tag %r" % tag)
        return _KINDS[tag](decode(v, depth + 1) for v in body)
    except TypeError as exc:  # unhashable keys or members
        raise ValueError("malformed %s: %s" % (tag, exc)) from None


def describe(exc):
    try:
        return ("%s: %s" % (type(exc).__name__, exc))[:500]
    except Exception:  # a str() that raises
        return type(exc).__name__


# ---- framing ------------------------------------------------------------------------------

def _frame(obj):
    body = json.dumps(obj).encode("utf-8")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError("message of %d bytes is over the limit" % len(body))
    return HEADER.pack(len(body)) + body


def _read_exact(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, min(n - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return data


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ---- the candidate process ----------------------------------------------------------------

def _scope_signals():
    """A nested Landlock domain that may not signal, trace or reach abstract sockets of any
    process outside it (the test process). False where the kernel has no such scoping."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(444, None, 0, 1) < 6:  # landlock_create_ruleset(VERSION): the ABI
            return False
        attr = struct.pack("=QQQ", 0, 0, 3)  # handled fs, handled net, scoped: unix | signal
        ruleset = libc.syscall(444, attr, len(attr), 0)
        if ruleset < 0:
            return False
        try:
            return libc.syscall(446, ruleset, 0) == 0  # landlock_restrict_self
        finally:
            os.close(ruleset)
    except (ImportError, OSError, AttributeError):
        return False


def _candidate(call_fd, reply_fd, out_fd):
    """The candidate process: redirect, confine, then load and call on request. Never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        low = 3
        for fd in sorted((call_fd, reply_fd)):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 65536)
        _scope_signals()
        _serve(call_fd, reply_fd)
    finally:
        os._exit(0)


def _serve(call_fd, reply_fd):
    module = None
    while True:
        head = _read_exact(call_fd, HEADER.size)
        if head is None:
            return
        request = json.loads(_read_exact(call_fd, HEADER.unpack(head)[0]).decode("utf-8"))
        if request.get("op") == "load":
            module, reply = _load(request["source"])
        else:
            reply = _call(module, request["name"], request["args"], request["kwargs"])
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        try:
            message = _frame(reply)
        except (TypeError, ValueError, RecursionError) as exc:
            message = _frame({"error": {"type": "CandidateError", "message": describe(exc)}})
        _write_all(reply_fd, message)


def _load(source):
    module = types.ModuleType("__main__")
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    try:
        exec(compile(source, "solution.py", "exec"), module.__dict__)
    except BaseException as exc:  # the candidate's code failed to load (SystemExit included)
        import traceback

        traceback.print_exc()
        return module, {"load_error": describe(exc)}
    return module, {"loaded": True}


def _call(module, name, args, kwargs):
    try:
        function = module.__dict__.get(name) if module is not None else None
        if function is None:
            raise NameError("name %r is not defined" % name)
        args, kwargs = decode(args), decode(kwargs)
        return {"value": encode(function(*args, **kwargs))}
    except BaseException as exc:  # the candidate's failure is this call's result
        return {"error": {"type": type(exc).__name__, "message": describe(exc)}}


# ---- the test process ---------------------------------------------------------------------

class Candidate:
    """The test process's end of the candidate process: requests out, replies and output in."""

    def __init__(self):
        call_r, self.call_fd = os.pipe()
        self.reply_fd, reply_w = os.pipe()
        self.out_fd, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            for fd in (self.call_fd, self.reply_fd, self.out_fd):
                os.close(fd)
            _candidate(call_r, reply_w, out_w)
        for fd in (call_r, reply_w, out_w):
            os.close(fd)
        os.set_blocking(self.call_fd, False)
        self.pending, self.output, self.output_bytes = bytearray(), bytearray(), 0
        self.gone = self.load_error = None
        self.loading = False

    def load(self, source):
        """Ask the candidate process to load `source`; its reply is read before the first call's
        (`loaded`), so loading overlaps with the test process's own start."""
        self.send({"op": "load", "source": source})
        self.loading = True

    def loaded(self):
        """Whether the candidate's code loaded; `load_error` says why not."""
        if self.loading:
            self.loading = False
            reply = self.receive()
            if reply.get("loaded") is not True:
                self.load_error = str(reply.get("load_error", "malformed reply"))[:500]
        return self.load_error is None

    def send(self, request):
        """Write one request, draining the candidate's output meanwhile."""
        if self.gone:
            raise CandidateError(self.gone)
        data = memoryview(_frame(request))
        while data:
            writable = self._wait(True)
            if writable:
                try:
                    data = data[os.write(self.call_fd, data):]
                except BlockingIOError:
                    continue
                except OSError:
                    self._lose("the program exited")

    def receive(self):
        while True:
            if len(self.pending) >= HEADER.size:
                size = HEADER.unpack(self.pending[:HEADER.size])[0]
                if size > MAX_MESSAGE_BYTES:
                    self._lose("the program's reply is over %d bytes" % MAX_MESSAGE_BYTES)
                if len(self.pending) >= HEADER.size + size:
                    body = bytes(self.pending[HEADER.size:HEADER.size + size])
                    del self.pending[:HEADER.size + size]
                    try:
                        reply = json.loads(body.decode("utf-8"))
                    except (ValueError, RecursionError):
                        reply = None
                    if type(reply) is not dict:
                        self._lose("the program sent a malformed reply")
                    return reply
            self._wait(False)

    def _wait(self, writing):
        """Drain output until the call pipe is writable (writing) or a reply chunk has come."""
        reads = [self.reply_fd] + ([self.out_fd] if self.out_fd is not None else [])
        readable, writable, _ = select.select(reads, [self.call_fd] if writing else [], [])
        if self.out_fd in readable:
            chunk = os.read(self.out_fd, 1 << 20)
            if not chunk:
                os.close(self.out_fd)
                self.out_fd = None
            self.output_bytes += len(chunk)
            self.output += chunk[:max(0, KEEP_OUTPUT_BYTES - len(self.output))]
        if self.reply_fd in readable:
            chunk = os.read(self.reply_fd, 1 << 20)
            if not chunk:
                self._lose("the program exited")
            self.pending += chunk
        return bool(writable)

    def _lose(self, why):
        self.gone = why
        self.stop()
        raise CandidateError(why)

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def proxy(self, name):
        def proxy(*args, **kwargs):
            self.send({"op": "call", "name": name, "args": encode(list(args)),
                       "kwargs": encode(kwargs)})
            self.loaded()  # the load's reply comes first
            reply = self.receive()
            if "value" in reply:
                try:
                    return decode(reply["value"])
                except (ValueError, RecursionError) as exc:
                    raise CandidateError("malformed result: %s" % exc) from None
            error = reply.get("error")
            kind = error.get("type") if type(error) is dict else None
            message = error.get("message") if type(error) is dict else None
            raise _RAISABLE.get(kind, CandidateError)(
                message if type(message) is str else "the program's call failed")

        proxy.__name__ = proxy.__qualname__ = name
        return proxy


def _undumpable():
    """No ptrace, no /proc/PID/mem or fd access by the same-uid candidate process. A fork of the
    sandbox's zygote already is (the kernel then gives its /proc entries to root)."""
    try:
        if os.getuid() != 0 and os.stat("/proc/self/mem").st_uid == 0:
            return True
    except OSError:
        pass
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except (ImportError, OSError, AttributeError):
        return False


class _Stop(BaseException):
    """A case failed and the verdict is all or nothing: the rest need not run."""


def run_script(candidate, config, report):
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(config.get("prelude") or "", "prompt.py", "exec"), namespace)
    except BaseException as exc:  # the prompt's own code: a reference that cannot be read
        report({"reference_error": "the prompt's code raised " + describe(exc)})
        return
    entry = config.get("entry_point")
    for name in config.get("names", []):  # what the script uses and neither it nor the prompt defines
        if name not in namespace and not hasattr(builtins, name):
            namespace[name] = candidate.proxy(name)
    if entry:
        namespace[entry] = namespace[CANDIDATE] = candidate.proxy(entry)
    stop = config.get("stop_on_failure", True)

    def case(number, error):
        if error is None:
            report({"case": number, "ok": True})
            return
        report({"case": number, "error": describe(error)})
        if stop:
            raise _Stop()

    namespace[CASE_HOOK] = case
    try:
        exec(compile(config["script"], "tests.py", "exec"), namespace)
    except _Stop:
        pass
    except BaseException as exc:  # the script stopped: its remaining cases did not run
        report({"script_error": describe(exc)})


def run_calls(candidate, config, report):
    function = candidate.proxy(config["entry_point"])
    for case in config["cases"]:
        try:
            value = encode(function(*case["args"], **case["kwargs"]))
            report({"case": case["id"], "value": value})
        except Exception as exc:  # the candidate's error is this case's result
            report({"case": case["id"], "error": describe(exc)})


def main():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # an interrupt ends the run, never the tests
    undumpable = _undumpable()
    candidate = Candidate()  # before anything secret is in this process
    config = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    results_fd, nonce = os.dup(1), config["nonce"]
    os.dup2(2, 1)  # prints of the tests go to stderr

    def report(record):
        _write_all(results_fd, (nonce + " " + json.dumps(record) + "\n").encode("utf-8"))

    try:
        if not undumpable and sys.platform.startswith("linux"):
            report({"infra_error": "the test process cannot make itself undumpable"})
            return 1
        candidate.load(config["solution"])
        (run_calls if config.get("mode") == "function" else run_script)(candidate, config, report)
        if not candidate.loaded():
            report({"load_error": candidate.load_error})
    except CandidateError as exc:
        report({"script_error": describe(exc)})
    finally:
        candidate.stop()
        if candidate.output:
            more = candidate.output_bytes - len(candidate.output)
            tail = "\n[%d more bytes of output not kept]\n" % more if more > 0 else ""
            _write_all(2, bytes(candidate.output) + tail.encode())
    report({"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
