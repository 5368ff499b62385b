"""Run verifiers in parallel worker processes, each item under a wall-clock and memory limit.

The limits are imposed from outside the verifier: a worker has `RLIMIT_AS` set before it touches
any input, and the parent kills a worker whose item runs past `timeout_s` and starts a fresh one.
No `signal.alarm` (it only works on the main thread), no threads that cannot be stopped. A worker
is given items only once it has loaded its verifiers and run their optional `warmup()`, so the
cost of importing sympy or a parser grammar never counts against an item's time limit.

What each item becomes:
- the verifier's `Verdict`, when it returns one;
- `Verdict(0, status="timeout")` when it ran past the limit, and `status="resource_limit"` on
  `MemoryError`/`RecursionError`: hostile model text is the model's failure;
- a `VerifierError` (returned, not raised) when the verifier raised, or its worker died twice
  on the same item: infrastructure failure, which the trainer masks out and counts.
A `SandboxError`/other `InfraError` from inside the verifier keeps its type.

This module does not decide rewards and does not retry an item that returned an error.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import pickle
import resource
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Callable, Mapping, Sequence

from rlvr.errors import ConfigError, InfraError, VerifierError
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import Verifier

Result = "Verdict | InfraError"
_MAX_ATTEMPTS = 2  # an item whose worker dies is retried once on a fresh worker
STARTUP_TIMEOUT_S = 300.0  # importing a verifier's libraries is not counted in any item's time


def _worker_main(conn: Connection, verifiers_blob: bytes, memory_mb: int) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    verifiers: Mapping[str, Verifier] = pickle.loads(verifiers_blob)
    for verifier in verifiers.values():  # import and compile what the first item would need
        warmup = getattr(verifier, "warmup", None)
        if callable(warmup):
            warmup()
    try:
        conn.send(("ready", None))
        while (msg := conn.recv()) is not None:
            conn.send(_verify_one(verifiers, *msg))
    except (EOFError, OSError):  # the parent went away: nothing left to answer
        return


def _verify_one(verifiers: Mapping[str, Verifier], name: str, problem: Problem,
                completion: Completion) -> tuple[str, object]:
    try:
        return ("ok", verifiers[name].verify(problem, completion))
    except (MemoryError, RecursionError) as exc:
        return ("ok", Verdict(0.0, False, "resource_limit", {"error": type(exc).__name__}))
    except InfraError as exc:
        return ("infra", exc)
    except Exception:  # noqa: BLE001 - a crashing verifier is reported as infra, never a 0
        return ("crash", traceback.format_exc(limit=8))


class _Worker:
    def __init__(self, ctx, blob: bytes, memory_mb: int):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, blob, memory_mb), daemon=True)
        self.proc.start()
        child.close()
        self.item: int | None = None
        self.deadline = 0.0
        self.ready = False
        self.started = time.monotonic()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class VerifierPool:
    """Worker processes that verify (problem, completion) pairs with per-item limits.

    `verifiers` maps the names that problems use (`problem.verifier`) to verifier objects; they are
    pickled once per worker. `workers=0` verifies in this process with no limits (debugging only).
    """

    def __init__(self, verifiers: Mapping[str, Verifier], workers: int = 2, timeout_s: float = 10.0,
                 memory_mb: int = 2048, start_method: str = "spawn"):
        if workers < 0 or timeout_s <= 0:
            raise ConfigError("verify.workers must be >= 0 and verify.timeout_s > 0")
        self.verifiers = dict(verifiers)
        self.workers, self.timeout_s, self.memory_mb = workers, timeout_s, memory_mb
        self._blob = pickle.dumps(self.verifiers)
        self._ctx = mp.get_context(start_method)
        self._pool: list[_Worker] = []
        self.restarts = 0
        self._deaths_in_a_row = 0

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._pool:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            w.proc.join(timeout=1)
            w.kill()
        self._pool = []

    def start(self, wait: bool = False) -> "VerifierPool":
        """Start the workers now (they load in the background); `wait` blocks until all are ready."""
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())
        if wait:
            for w in self._pool:
                self._poll_ready(w, max(0.0, w.started + STARTUP_TIMEOUT_S - time.monotonic()))
        return self

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self._blob, self.memory_mb)

    def verify(self, problems: Sequence[Problem], completions: Sequence[Completion],
               on_done: Callable[[int], None] | None = None) -> list[Verdict | InfraError]:
        """One result per pair, in order. Never raises for a single item's failure; raises
        `VerifierError` when the workers cannot run at all (they die before any answer)."""
        if len(problems) != len(completions):
            raise ValueError("problems and completions differ in length")
        for p in problems:
            if p.verifier not in self.verifiers:
                raise ConfigError(f"problem {p.id} names verifier {p.verifier!r}, which this run "
                                  f"has not configured ({', '.join(self.verifiers)})")
        if self.workers == 0:
            return [self._verify_inline(p, c) for p, c in zip(problems, completions)]
        self.start()
        results: list[Verdict | InfraError | None] = [None] * len(problems)
        attempts = collections.Counter()
        todo = collections.deque(range(len(problems)))

        def finish(i: int, result: Verdict | InfraError) -> None:
            results[i] = result
            if on_done:
                on_done(i)

        while todo or any(w.item is not None for w in self._pool):
            for w in self._pool:  # hand out work
                if w.ready and w.item is None and todo:
                    i = todo.popleft()
                    attempts[i] += 1
                    try:
                        w.conn.send((problems[i].verifier, problems[i], completions[i]))
                    except (BrokenPipeError, OSError):
                        todo.appendleft(i)
                        attempts[i] -= 1
                        self._replace(w)
                        continue
                    w.item, w.deadline = i, time.monotonic() + self.timeout_s
            self._await_ready()
            busy = [w for w in self._pool if w.item is not None]
            if not busy:
                continue
            wait_s = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=wait_s)
            now = time.monotonic()
            for w in busy:
                i = w.item
                if w.conn in ready:
                    try:
                        kind, payload = w.conn.recv()
                    except (EOFError, OSError):  # the worker died under this item
                        self._replace(w, died=True)
                        if attempts[i] < _MAX_ATTEMPTS:
                            todo.appendleft(i)
                        else:
                            finish(i, VerifierError(f"verifier worker died twice on {problems[i].id}"))
                        continue
                    w.item = None
                    self._deaths_in_a_row = 0
                    if kind == "ok":
                        finish(i, payload)
                    elif kind == "infra":
                        finish(i, payload)
                    else:
                        finish(i, VerifierError(f"verifier {problems[i].verifier!r} crashed on "
                                                f"{problems[i].id}:\n{payload}"))
                elif now >= w.deadline:
                    self._replace(w)
                    finish(i, Verdict(0.0, False, "timeout", {"timeout_s": self.timeout_s}))
        return results  # type: ignore[return-value]

    def _await_ready(self) -> None:
        """Wait for starting workers when no worker is ready (start-up is not an item's time)."""
        starting = [w for w in self._pool if not w.ready]
        if not starting or any(w.ready for w in self._pool):
            for w in starting:  # collect any that finished starting, without waiting
                self._poll_ready(w, 0)
            return
        for w in starting:
            self._poll_ready(w, max(0.0, w.started + STARTUP_TIMEOUT_S - time.monotonic()))
        if not any(w.ready for w in self._pool):
            raise VerifierError(f"no verifier worker started within {STARTUP_TIMEOUT_S:.0f} s")

    def _poll_ready(self, w: _Worker, timeout: float) -> None:
        if w.ready or not w.conn.poll(timeout):
            return
        try:
            w.conn.recv()  # ("ready", None)
            w.ready = True
        except (EOFError, OSError):  # died while starting: unpickling or warm-up failed
            self._replace(w, died=True)

    def _replace(self, w: _Worker, died: bool = False) -> None:
        """Kill `w` and start a fresh worker in its place; give up when workers keep dying."""
        w.kill()
        if died:
            self._deaths_in_a_row += 1
            if self._deaths_in_a_row > 2 * self.workers + 2:
                raise VerifierError(f"verifier workers keep dying (last exit code {w.proc.exitcode});"
                                    " is the verifier importable and picklable?")
        self.restarts += 1
        self._pool[self._pool.index(w)] = self._spawn()

    def _verify_inline(self, problem: Problem, completion: Completion) -> Verdict | InfraError:
        try:
            return self.verifiers[problem.verifier].verify(problem, completion)
        except InfraError as exc:
            return exc
        except Exception:  # noqa: BLE001 - same contract as the workers
            return VerifierError(f"verifier {problem.verifier!r} crashed on {problem.id}:\n"
                                 f"{traceback.format_exc(limit=8)}")

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.proc.pid for w in self._pool if w.proc.pid is not None and w.proc.is_alive()]

