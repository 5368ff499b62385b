"""Engine outages: a bounded wait for a sandbox engine that stopped answering, and notices about it.

When the engine behind a sandbox (the Docker daemon) stops answering, a sandbox does not fail
every item at once: it waits for the engine with bounded back-off, up to an outage budget, and
only then fails fast. The time spent waiting is the engine's, not any item's: whoever runs the
sandbox (the verifier pool, in another process) must not count it against the item's time limit.
So the sandbox announces the wait through `notify`, and a listener installed with `listen` (the
pool's worker forwards notices to the pool over its pipe) hears:

    Notice("waiting", ...)   the engine stopped answering; an item is waiting for it
    Notice("resumed", ...)   the engine answers again (after `waited_s`); work goes on
    Notice("gave_up", ...)   the budget is spent; waiting items now fail fast

`Outage` holds the state of one engine's outage and the back-off schedule; the sandbox calls
`wait(probe)`. This module does not know Docker, does not decide what an item's result is, and
keeps no statistics (the pool does: `VerifierPool.take_stats`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from rlvr.errors import SandboxError

T = TypeVar("T")
_listeners: list[Callable[["Notice"], None]] = []


@dataclass(frozen=True)
class Notice:
    """One change of an engine's outage state, as heard by listeners."""

    event: str  # "waiting" | "resumed" | "gave_up"
    engine: str  # what is down, e.g. "docker"
    waited_s: float  # how long this wait has lasted so far (0 at "waiting")
    budget_s: float  # the outage budget: the wait ends by then at the latest


def listen(listener: Callable[[Notice], None]) -> Callable[[], None]:
    """Call `listener` on every notice of this process; returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def notify(notice: Notice) -> None:
    for listener in list(_listeners):
        listener(notice)


class Outage:
    """The outage state of one engine and its bounded wait.

    `begin()` marks the engine as down (idempotent: the first call sets `since`). `wait(probe)`
    calls `probe()` with exponential back-off (`first_delay_s` doubling up to `max_delay_s`) until
    it returns (the engine is back: the state is cleared and its result returned) or the budget,
    counted from `since`, is spent: then it raises `SandboxError` naming how long the engine has
    been down. Once the budget is spent, later calls probe at most once every `max_delay_s` and
    otherwise fail at once, so waiting items fail fast while a returning engine is still noticed.
    One thread waits at a time; others queue behind it and find the engine back or the budget spent.
    """

    def __init__(self, engine: str, budget_s: float, first_delay_s: float = 0.2,
                 max_delay_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.engine, self.budget_s = engine, budget_s
        self.first_delay_s, self.max_delay_s = first_delay_s, max_delay_s
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self.since: float | None = None
        self._last_probe = float("-inf")

    @property
    def down(self) -> bool:
        return self.since is not None

    def begin(self) -> None:
        if self.since is None:
            self.since, self._last_probe = self._clock(), float("-inf")

    def down_for_s(self) -> float:
        return 0.0 if self.since is None else self._clock() - self.since

    def wait(self, probe: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T | None:
        """Wait for `probe()` to succeed (it raises one of `errors` while the engine is down).
        Returns its result, or None when the engine was not down (nothing to wait for)."""
        with self._lock:
            if self.since is None:
                return None
            if self.down_for_s() >= self.budget_s:
                return self._retry_after_budget(probe, errors)
            start = self._clock()
            notify(Notice("waiting", self.engine, 0.0, self.budget_s))
            delay, last_error = self.first_delay_s, None
            while True:
                try:
                    result = probe()
                except errors as exc:
                    last_error = exc
                else:
                    self.since = None
                    notify(Notice("resumed", self.engine, self._clock() - start, self.budget_s))
                    return result
                left = self.budget_s - self.down_for_s()
                if left <= 0:
                    notify(Notice("gave_up", self.engine, self._clock() - start, self.budget_s))
                    self._last_probe = self._clock()
                    raise self._spent(last_error)
                self._sleep(min(delay, left))
                delay = min(2 * delay, self.max_delay_s)

    def _retry_after_budget(self, probe: Callable[[], T], errors) -> T:
        if self._clock() - self._last_probe < self.max_delay_s:
            raise self._spent(None)
        self._last_probe = self._clock()
        try:
            result = probe()
        except errors as exc:
            raise self._spent(exc) from exc
        self.since = None
        return result

    def _spent(self, last_error: BaseException | None) -> SandboxError:
        why = f" (last error: {last_error})" if last_error is not None else ""
        return SandboxError(f"the {self.engine} engine is down: it has not answered for "
                            f"{self.down_for_s():.0f} s, past the outage budget of "
                            f"{self.budget_s:.0f} s{why}")
