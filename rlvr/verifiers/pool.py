"""Run verifiers in parallel worker processes, each item under a wall-clock and memory limit.

The limits are imposed from outside the verifier: a worker has `RLIMIT_AS` set before it touches
any input, and the parent kills a worker whose item runs past its deadline and starts a fresh one.
No `signal.alarm` (it only works on the main thread), no threads that cannot be stopped. A worker
calls every verifier's `warmup()` before it is given items, so imports, parser grammars and warm
sandbox containers never count against an item's time, and `close()` before it exits.

An item's deadline comes from its verifier's declared budget (`budget_s(problem)`, plus
`slack_s` for the worker's own overhead), or, for a verifier that declares none, from the pool's
`timeout_s`. A worker can stop an item's clock: while its sandbox waits for an engine that stopped
answering, it says so on its pipe (`rlvr.sandbox.outage` notices), and the pool adds the waiting
time to the deadline and to its outage statistics (`take_stats`) instead.

What each item becomes:
- the verifier's `Verdict`, when it returns one;
- for a verifier without a declared budget, `Verdict(0, status="timeout")` when it ran past
  `timeout_s` (hostile model text hung the verifier: the model's failure), and
  `status="resource_limit"` on `MemoryError`/`RecursionError`;
- `Verdict(0, status="verifier_crash")` when the item killed two fresh workers (a segfault or an
  out-of-memory kill) while another completion of the same problem in the same call was judged:
  the verifier, its reference and the worker survive that problem, so this completion's text is
  what kills it (the model's failure). When no completion of the problem was judged the cause
  cannot be told apart from a broken verifier or reference, and it stays a `VerifierError`;
- a `VerifierError` (returned, not raised) when the verifier raised, its worker died twice on the
  same item (see above), or it ran past the budget it declared itself: such a verifier bounds the model's
  time on its own (a code verifier through its sandbox), so outliving the budget is
  infrastructure (a slow engine, a stuck harness), never the model's timeout;
- a `SandboxError` or other `InfraError` raised inside the verifier, as itself;
- a `BadReferenceError` raised inside the verifier, as itself (a dataset bug: not an
  `InfraError`; the trainer counts it separately).

**Batches.** A verifier with `batch_size` > 1 (it implements `verify_batch`, see
`rlvr.verifiers.base`) gets its items in chunks of up to `batch_size`, spread evenly over the
workers, and each result is the item's own. A chunk's deadline is the verifier's
`batch_budget_s(chunk)` plus `slack_s`, or, when it declares none, the items' limits one after
another. A chunk that dies with its worker, outlives its deadline, or whose `verify_batch`
raises, says nothing about which item is at fault: its items go back to the queue one by one
(first in line), each under its own limit, so every rule above applies per item unchanged (a
completion that kills workers is found and becomes `verifier_crash`; a hang becomes that item's
`timeout`). Only a chunk that waited past its engine's outage budget fails as a whole: every item
gets that `VerifierError`. `on_done` is called once per item, whichever path it took. With
`workers=0` (inline, no limits) a batching verifier gets its items in one `verify_batch` call
per `batch_size`, item by item when that call fails as a whole.

What runs inside a worker is `rlvr.verifiers.worker`. This module does not decide rewards and does not retry an item that returned an error.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing as mp
import pickle
import sys
import time
from multiprocessing.connection import wait
from typing import Callable, Mapping, Sequence

from rlvr.errors import BadReferenceError, ConfigError, InfraError, VerifierError
from rlvr.sandbox import outage
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier, Result, Verifier, as_verifier
from rlvr.verifiers.worker import verify_chunk, verify_one, worker_main

Job = tuple[int, ...]  # indices of the items one worker verifies in one call (one: `verify`)
_MAX_ATTEMPTS = 2  # an item whose worker dies is retried once on a fresh worker
STARTUP_TIMEOUT_S = 300.0  # importing a verifier's libraries is not counted in any item's time
CLOSE_TIMEOUT_S = 10.0  # workers get this long to close their verifiers (remove containers)


class _Worker:
    def __init__(self, ctx, blob: bytes, memory_mb: int):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, blob, memory_mb), daemon=True)
        self.proc.start()
        child.close()
        self.job: Job | None = None  # the items it works on now
        self.budget: float | None = None  # a single item's declared budget (None: the pool's timeout)
        self.deadline = 0.0
        self.paused_left: float | None = None  # time the item had left when an engine wait began
        self.ready = False
        self.started = time.monotonic()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


def _tell(message: str) -> None:
    print(f"rlvr: {message}", file=sys.stderr, flush=True)


class _OutageClock:
    """How long some worker waited on an engine: outages counted once however many workers
    wait at the same time, and the seconds during which at least one was waiting."""

    def __init__(self) -> None:
        self.waiting: set[int] = set()
        self.since: float | None = None
        self.started = 0.0  # when the current outage began (for the message at its end)
        self.outages, self.seconds = 0, 0.0

    def begin(self, who: int, now: float, notice: outage.Notice | None = None) -> None:
        if not self.waiting:
            self.outages += 1
            self.since = self.started = now
            if notice is not None:  # the one line a user sees of an outage's start
                _tell(f"the {notice.engine} engine stopped answering; verification waits for it "
                      f"(up to {notice.budget_s:.0f} s), and the wait is not charged to any item")
        self.waiting.add(who)

    def end(self, who: int, now: float) -> None:
        if who not in self.waiting:
            return
        self.waiting.discard(who)
        if not self.waiting and self.since is not None:
            self.seconds += now - self.since
            self.since = None
            _tell(f"the engine answers again after {now - self.started:.1f} s; verification goes on")

    def take(self, now: float) -> dict[str, float]:
        seconds = self.seconds + (now - self.since if self.since is not None else 0.0)
        if self.since is not None:
            self.since = now  # an outage still going on: later seconds go to the next take
        stats = {"verify/engine_outages": float(self.outages), "verify/outage_s": seconds}
        self.outages, self.seconds = 0, 0.0
        return stats


@dataclasses.dataclass
class _Call:
    """What one `VerifierPool.verify` call still has to do."""

    problems: Sequence[Problem]
    completions: Sequence[Completion]
    finish: Callable[[int, Result], None]
    budgets: dict[int, float | None] = dataclasses.field(default_factory=dict)  # items to verify
    todo: collections.deque[tuple[Job, float]] = dataclasses.field(default_factory=collections.deque)
    attempts: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    died: set[int] = dataclasses.field(default_factory=set)  # items that killed two workers


def _outcome(kind: str, payload: object, problem: Problem) -> Result:
    """One item's answer from a worker (`rlvr.verifiers.worker.verify_one`) as its result."""
    if kind in ("ok", "error"):
        return payload  # type: ignore[return-value]
    return VerifierError(f"verifier {problem.verifier!r} crashed on {problem.id}:\n{payload}")


def _jobs(verifiers: Mapping[str, BaseVerifier], problems: Sequence[Problem], items: Sequence[int],
          workers: int) -> list[Job]:
    """`items` as jobs: a batching verifier's items in chunks of up to its `batch_size`, as even
    as `workers` allow (256 items, 2 workers, batch_size 64: four chunks of 64); other items alone."""
    groups: dict[str, list[int]] = {}
    for i in items:
        groups.setdefault(problems[i].verifier, []).append(i)
    jobs: list[Job] = []
    for name, group in groups.items():
        size = max(1, min(verifiers[name].batch_size, -(-len(group) // max(workers, 1))))
        jobs += [tuple(group[k:k + size]) for k in range(0, len(group), size)]
    return jobs


def _item_budget(verifiers: Mapping[str, BaseVerifier], problem: Problem) -> float | None:
    """The budget the problem's verifier declares for it (None: the pool's timeout)."""
    try:
        budget = verifiers[problem.verifier].budget_s(problem)
    except (InfraError, BadReferenceError):
        raise
    except Exception as exc:  # noqa: BLE001 - a bug of the verifier, like a crash in verify
        raise VerifierError(f"verifier {problem.verifier!r} crashed computing the budget of "
                            f"{problem.id}: {exc!r}") from exc
    if budget is not None and not budget > 0:
        raise VerifierError(f"verifier {problem.verifier!r} declared a budget of {budget!r} s "
                            f"for {problem.id}; a budget must be > 0 or None")
    return budget


def _job_limit(verifiers: Mapping[str, BaseVerifier], call: "_Call", job: Job, timeout_s: float,
               slack_s: float) -> float:
    """Seconds a worker may spend on `job`: an item's budget + slack, or the pool's timeout;
    a chunk's `batch_budget_s` + slack, or its items' limits one after another."""
    def one(i: int) -> float:
        budget = call.budgets[i]
        return timeout_s if budget is None else budget + slack_s

    if len(job) == 1:
        return one(job[0])
    name = call.problems[job[0]].verifier
    try:
        budget = verifiers[name].batch_budget_s([call.problems[i] for i in job])
    except Exception as exc:  # noqa: BLE001 - a bug: the sequential bound is still safe
        _tell(f"verifier {name!r} crashed computing a batch budget ({exc!r}); its items "
              "get their limits one after another")
        budget = None
    if isinstance(budget, (int, float)) and budget > 0:
        return float(budget) + slack_s
    return sum(one(i) for i in job)


class VerifierPool:
    """Worker processes that verify (problem, completion) pairs with per-item limits.

    `verifiers` maps the names that problems use (`problem.verifier`) to verifier objects; they are
    pickled once per worker. `timeout_s` limits items whose verifier declares no budget;
    `slack_s` is added to a declared budget. `workers=0` verifies in this process with no limits
    (debugging only).
    """

    def __init__(self, verifiers: Mapping[str, Verifier], workers: int = 2, timeout_s: float = 10.0,
                 memory_mb: int = 2048, start_method: str = "spawn", slack_s: float = 5.0):
        if workers < 0 or timeout_s <= 0 or slack_s < 0:
            raise ConfigError("verify.workers must be >= 0, verify.timeout_s > 0 and slack_s >= 0")
        self.verifiers: dict[str, BaseVerifier] = {n: as_verifier(v) for n, v in verifiers.items()}
        for name, verifier in self.verifiers.items():
            if not isinstance(verifier.batch_size, int) or verifier.batch_size < 1:
                raise ConfigError(f"verifier {name!r}: batch_size must be an integer >= 1, "
                                  f"not {verifier.batch_size!r}")
        self.workers, self.timeout_s, self.memory_mb = workers, timeout_s, memory_mb
        self.slack_s = slack_s
        self._blob = pickle.dumps(self.verifiers)
        self._ctx = mp.get_context(start_method)
        self._pool: list[_Worker] = []
        self.restarts = 0
        self._deaths_in_a_row = 0
        self._outages = _OutageClock()
        self._inline_warm = False

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (each closes its verifiers first; one still warming up is killed at
        once: it listens to nobody); inline verifiers are closed here."""
        for w in self._pool:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        for w in self._pool:
            if w.ready:
                w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            w.kill()
        self._pool = []
        if self._inline_warm:
            for verifier in self.verifiers.values():
                verifier.close()
            self._inline_warm = False

    def start(self, wait: bool = False) -> "VerifierPool":
        """Start the workers now (they warm up in the background); `wait` blocks until all are
        ready. Raises `VerifierError` when a verifier's `warmup()` fails with a bug."""
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())
        if wait:
            for w in list(self._pool):
                self._poll_ready(w, max(0.0, w.started + STARTUP_TIMEOUT_S - time.monotonic()))
        return self

    def take_stats(self) -> dict[str, float]:
        """Outage statistics since the last call: `verify/engine_outages` (outages that began;
        workers waiting at the same time count once) and `verify/outage_s` (seconds during which
        some worker waited for its engine). Call once per step."""
        return self._outages.take(time.monotonic())

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self._blob, self.memory_mb)

    def verify(self, problems: Sequence[Problem], completions: Sequence[Completion],
               on_done: Callable[[int], None] | None = None) -> list[Result]:
        """One result per pair, in order. Never raises for a single item's failure; raises
        `VerifierError` when the workers cannot run at all (they die before any answer)."""
        if len(problems) != len(completions):
            raise ValueError("problems and completions differ in length")
        for p in problems:
            if p.verifier not in self.verifiers:
                raise ConfigError(f"problem {p.id} names verifier {p.verifier!r}, which this run "
                                  f"has not configured ({', '.join(self.verifiers)})")
        if self.workers == 0:
            return self._verify_all_inline(problems, completions, on_done)
        self.start()
        results: list[Result | None] = [None] * len(problems)

        def finish(i: int, result: Result) -> None:
            results[i] = result
            if on_done:
                on_done(i)

        call = _Call(problems, completions, finish)
        for i, problem in enumerate(problems):
            try:
                call.budgets[i] = _item_budget(self.verifiers, problem)
            except (InfraError, BadReferenceError) as exc:
                finish(i, exc)
        for job in _jobs(self.verifiers, problems, list(call.budgets), self.workers):
            call.todo.append((job, self._limit(call, job)))
        self._run(call)
        judged = {problems[i].id for i, r in enumerate(results) if isinstance(r, Verdict)}
        for i in call.died:
            if problems[i].id in judged:  # the same problem was judged: this completion kills workers
                results[i] = Verdict(0.0, False, "verifier_crash", {"why": "killed two verifier workers"})
        return results  # type: ignore[return-value]

    def _limit(self, call: "_Call", job: Job) -> float:
        return _job_limit(self.verifiers, call, job, self.timeout_s, self.slack_s)

    def _run(self, call: "_Call") -> None:
        while call.todo or any(w.job is not None for w in self._pool):
            for w in self._pool:  # hand out work
                if w.ready and w.job is None and call.todo:
                    self._hand(w, call)
            self._await_ready()
            busy = [w for w in self._pool if w.job is not None]
            if not busy:
                continue
            wait_s = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=wait_s)
            for w in busy:
                if w.conn in ready:
                    self._receive(w, call)
                elif time.monotonic() >= w.deadline:
                    self._overdue(w, call)

    def _hand(self, w: _Worker, call: "_Call") -> None:
        job, limit = call.todo.popleft()
        first = call.problems[job[0]]
        try:
            w.conn.send((first.verifier, [call.problems[i] for i in job],
                         [call.completions[i] for i in job]))
        except (BrokenPipeError, OSError):
            call.todo.appendleft((job, limit))
            self._replace(w)
            return
        if len(job) == 1:
            call.attempts[job[0]] += 1
        w.job, w.budget, w.paused_left = job, call.budgets[job[0]], None
        w.deadline = time.monotonic() + limit

    def _receive(self, w: _Worker, call: "_Call") -> None:
        job = w.job
        assert job is not None
        try:
            kind, payload = w.conn.recv()
        except (EOFError, OSError):  # the worker died under this job
            self._replace(w, died=True)
            if len(job) > 1:
                self._one_by_one(call, job)
            elif call.attempts[job[0]] < _MAX_ATTEMPTS:
                call.todo.appendleft((job, self._limit(call, job)))
            else:
                call.died.add(job[0])
                call.finish(job[0], VerifierError(
                    f"verifier worker died twice on {call.problems[job[0]].id}"))
            return
        if kind == "notice":
            self._on_notice(w, payload)
            return
        w.job = None
        self._deaths_in_a_row = 0
        if kind == "batch":
            for i, result in zip(job, payload):
                call.finish(i, result)
        elif len(job) > 1:  # verify_batch raised: which item is at fault is unknown
            self._one_by_one(call, job)
        else:
            call.finish(job[0], _outcome(kind, payload, call.problems[job[0]]))

    def _one_by_one(self, call: "_Call", job: Job) -> None:
        """A chunk failed as a whole: its items go first in line, each on its own."""
        for i in reversed(job):
            call.todo.appendleft(((i,), self._limit(call, (i,))))

    def _overdue(self, w: _Worker, call: "_Call") -> None:
        """A job ran past its deadline: kill the worker; say what its items become."""
        job = w.job
        assert job is not None
        problem = call.problems[job[0]]
        if w.paused_left is not None:  # the engine's outage budget, spent: no item is at fault
            for i in job:
                call.finish(i, VerifierError(
                    f"verifier {problem.verifier!r} waited on its engine for "
                    f"{call.problems[i].id} past the engine's outage budget; worker killed"))
        elif len(job) > 1:
            self._one_by_one(call, job)
        elif w.budget is None:
            call.finish(job[0], Verdict(0.0, False, "timeout", {"timeout_s": self.timeout_s}))
        else:
            call.finish(job[0], VerifierError(
                f"verifier {problem.verifier!r} did not answer on {problem.id} within its own "
                f"budget of {w.budget:.1f} s (+{self.slack_s:.0f} s slack): infrastructure (a "
                "slow engine or a stuck sandbox), not the model's time; worker killed"))
        self._replace(w)

    def _on_notice(self, w: _Worker | None, notice: outage.Notice) -> None:
        """A worker's sandbox waits for (or stopped waiting for) its engine: stop or restart the
        item's clock, and keep the outage statistics."""
        now = time.monotonic()
        if notice.event == "waiting":
            if w is not None and w.job is not None and w.paused_left is None:
                w.paused_left = max(0.0, w.deadline - now)
                w.deadline = now + notice.budget_s + w.paused_left + self.slack_s
            self._outages.begin(id(w), now, notice)
            return
        if w is not None and w.paused_left is not None:
            w.deadline, w.paused_left = now + w.paused_left, None
        self._outages.end(id(w), now)

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
        deadline = time.monotonic() + timeout
        while not w.ready and w.conn.poll(max(0.0, deadline - time.monotonic())):
            try:
                kind, payload = w.conn.recv()
            except (EOFError, OSError):  # died while starting: unpickling failed, or killed
                self._replace(w, died=True)
                return
            if kind == "notice":  # its warm-up waits for an engine
                self._on_notice(w, payload)
            elif kind == "failed":
                self._pool.remove(w)
                w.kill()
                raise VerifierError(f"a verifier's warmup() failed:\n{payload}")
            else:  # ("ready", None | why warm-up could not finish)
                w.ready = True

    def _replace(self, w: _Worker, died: bool = False) -> None:
        """Kill `w` and start a fresh worker in its place; give up when workers keep dying."""
        w.kill()
        self._outages.end(id(w), time.monotonic())
        if died:
            self._deaths_in_a_row += 1
            if self._deaths_in_a_row > 2 * self.workers + 2:
                raise VerifierError(f"verifier workers keep dying (last exit code {w.proc.exitcode});"
                                    " is the verifier importable and picklable?")
        self.restarts += 1
        self._pool[self._pool.index(w)] = self._spawn()

    def _verify_all_inline(self, problems: Sequence[Problem], completions: Sequence[Completion],
                           on_done: Callable[[int], None] | None) -> list[Result]:
        stop = outage.listen(lambda notice: self._on_notice(None, notice))
        try:
            if not self._inline_warm:
                self._inline_warm = True
                for verifier in self.verifiers.values():
                    verifier.warmup()
            results: list[Result | None] = [None] * len(problems)
            for job in _jobs(self.verifiers, problems, range(len(problems)), 1):
                answers = None
                if len(job) > 1:  # one verify_batch call; if it fails as a whole, item by item
                    kind, payload = verify_chunk(self.verifiers[problems[job[0]].verifier],
                                                  [problems[i] for i in job],
                                                  [completions[i] for i in job])
                    answers = payload if kind == "batch" else None
                for k, i in enumerate(job):
                    results[i] = answers[k] if answers is not None else \
                        self._verify_inline(problems[i], completions[i])
                    if on_done:
                        on_done(i)
            return results  # type: ignore[return-value]
        finally:
            stop()

    def _verify_inline(self, problem: Problem, completion: Completion) -> Result:
        return _outcome(*verify_one(self.verifiers, problem.verifier, problem, completion), problem)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.proc.pid for w in self._pool if w.proc.pid is not None and w.proc.is_alive()]
