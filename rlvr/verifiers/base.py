"""The verifier protocol, its lifecycle, and the verifier registry.

A verifier judges one completion: `verify(problem, completion) -> Verdict`. It is callable on its
own (tests, notebooks, `rlvr verify`). Batching, parallelism and time limits live outside it, in
`rlvr.verifiers.pool`. The model's failure is a `Verdict` with reward 0; a failure of the verifier
itself raises `VerifierError` (or lets `SandboxError` through), which the trainer masks out of the
update and counts; a problem whose reference the verifier cannot read raises `BadReferenceError`
(a dataset bug: masked, counted separately, never a 0 and never an infrastructure error).

Around `verify`, the protocol has a lifecycle and a time budget, which the pool calls directly:

- `warmup()`: import, compile, connect and start whatever the first item would otherwise pay for
  (a worker takes items only after it); `close()`: release it (a worker calls it before exiting);
- `budget_s(problem) -> float | None`: the wall-clock time the verifier itself needs at most for
  this problem, its own infrastructure included (a code verifier: each sandbox run's limit plus
  the sandbox's grace and start-up). A verifier that declares a budget bounds the model's time
  itself, so the pool treats a worker that outlives it as an infrastructure failure; None means
  "no bound of my own": the pool's `timeout_s` applies, and running past it is the model's
  `timeout` (a math parser hung by hostile text).

Batching is optional. A verifier that gains from seeing many items at once (an LLM judge: all
requests in flight together) implements `verify_batch(problems, completions) -> list[Result]`
and sets `batch_size` above 1:

- `verify_batch` returns one result per pair, in order: the `Verdict`, or that pair's
  `InfraError` / `BadReferenceError` *as a value* (one pair's failure never fails the others).
  An exception raised out of it, or a list of the wrong length, says nothing about which item
  failed: the pool then verifies those items one by one through `verify`;
- `batch_size`: the most items the pool hands one `verify_batch` call (default 1: the pool calls
  `verify` per item, and the default `verify_batch` is a loop over `verify`);
- `batch_budget_s(problems) -> float | None`: the most wall-clock time `verify_batch` needs for
  these items together (a judge verifier asks them concurrently: about one judge budget per
  wave of concurrent calls, not one per item). None (the default): the pool allows the items'
  own limits one after another.
A batch that outlives its budget or kills its worker is retried item by item, each under its
own budget, so every per-item rule of the pool (timeouts, `verifier_crash`) applies unchanged.

`BaseVerifier` gives the lifecycle's no-op defaults; built-in verifiers subclass it. A plug-in
that implements only `verify` (or part of the lifecycle) gets the defaults through
`as_verifier`, which the pool applies once to every verifier it is given. A verifier must be picklable (it is
sent to worker processes once) and must never `eval`/`exec` model text in its own process: code
runs only inside `rlvr.sandbox`. This module does not run verifiers in parallel or time them.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, Union, runtime_checkable

from rlvr import plugins
from rlvr.errors import BadReferenceError, InfraError
from rlvr.types import Completion, Problem, Verdict

__all__ = ["Verifier", "BaseVerifier", "Verdict", "Result", "BUILTIN_VERIFIERS", "as_verifier",
           "make_verifier", "available_verifiers"]

Result = Union[Verdict, InfraError, BadReferenceError]  # one pair's outcome, errors as values

ENTRY_POINT_GROUP = "rlvr.verifiers"

BUILTIN_VERIFIERS: dict[str, str] = {
    "integer": "rlvr.verifiers.integer:IntegerVerifier",
    "countdown": "rlvr.verifiers.countdown:CountdownVerifier",
    "math": "rlvr.verifiers.math:MathVerifier",
    "code": "rlvr.verifiers.code:CodeVerifier",
    "rubric": "rlvr.verifiers.rubric:RubricVerifier",
}


@runtime_checkable
class Verifier(Protocol):
    """Judges one completion of one problem. The one method a plug-in must have."""

    def verify(self, problem: Problem, completion: Completion) -> Verdict: ...


class BaseVerifier:
    """A verifier with the whole lifecycle: `verify` to implement, no-op defaults for the rest."""

    batch_size: int = 1  # items per `verify_batch` call; > 1 makes the pool hand out chunks

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        raise NotImplementedError

    def warmup(self) -> None:
        """Prepare everything the first item would otherwise pay for (default: nothing)."""

    def close(self) -> None:
        """Release what `warmup` or `verify` acquired (default: nothing). Safe to call twice."""

    def budget_s(self, problem: Problem) -> float | None:
        """The most wall-clock time `verify(problem, ...)` needs, including this verifier's own
        infrastructure; None (the default): no bound of its own, the pool's limit applies."""
        return None

    def verify_batch(self, problems: Sequence[Problem],
                     completions: Sequence[Completion]) -> list[Result]:
        """One result per pair, in order, errors as values (default: `verify` per pair)."""
        results: list[Result] = []
        for problem, completion in zip(problems, completions, strict=True):
            try:
                results.append(self.verify(problem, completion))
            except (InfraError, BadReferenceError) as exc:
                results.append(exc)
        return results

    def batch_budget_s(self, problems: Sequence[Problem]) -> float | None:
        """The most wall-clock time `verify_batch(problems, ...)` needs; None (the default): no
        bound for the batch as a whole, the pool allows the items' limits one after another."""
        return None


class _Adapted(BaseVerifier):
    """A plug-in seen through the full protocol: its own methods where it has them."""

    def __init__(self, inner: Verifier):
        self.inner = inner
        kind = type(inner)
        self._warmup = getattr(kind, "warmup", None)  # looked up once, here, for all calls
        self._close = getattr(kind, "close", None)
        self._budget = getattr(kind, "budget_s", None)
        self._batch = getattr(kind, "verify_batch", None)
        self._batch_budget = getattr(kind, "batch_budget_s", None)
        self.batch_size = getattr(inner, "batch_size", 1) if self._batch is not None else 1

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        return self.inner.verify(problem, completion)

    def warmup(self) -> None:
        if self._warmup is not None:
            self._warmup(self.inner)

    def close(self) -> None:
        if self._close is not None:
            self._close(self.inner)

    def budget_s(self, problem: Problem) -> float | None:
        return None if self._budget is None else self._budget(self.inner, problem)

    def verify_batch(self, problems: Sequence[Problem],
                     completions: Sequence[Completion]) -> list[Result]:
        if self._batch is None:
            return super().verify_batch(problems, completions)
        return list(self._batch(self.inner, problems, completions))

    def batch_budget_s(self, problems: Sequence[Problem]) -> float | None:
        return None if self._batch_budget is None else self._batch_budget(self.inner, problems)

    def __repr__(self) -> str:
        return f"{self.inner!r}"


def as_verifier(verifier: Verifier) -> BaseVerifier:
    """`verifier` itself when it subclasses `BaseVerifier`, else an adapter that gives it the
    lifecycle's defaults (keeping any of `warmup`, `close`, `budget_s`, `verify_batch`,
    `batch_size`, `batch_budget_s` it does define)."""
    if isinstance(verifier, BaseVerifier):
        return verifier
    if not callable(getattr(verifier, "verify", None)):
        from rlvr.errors import PluginError

        raise PluginError(f"{verifier!r} is not a verifier: it has no verify(problem, completion)")
    return _Adapted(verifier)


def available_verifiers() -> list[str]:
    return plugins.available(ENTRY_POINT_GROUP, BUILTIN_VERIFIERS)


def make_verifier(name: str, options: Mapping[str, Any] | None = None) -> Verifier:
    """Build the verifier registered as `name` (built-in, entry point, or `module:Object`), as the
    plug-in made it (the pool gives it the lifecycle's defaults through `as_verifier`)."""
    factory = plugins.load(ENTRY_POINT_GROUP, name, BUILTIN_VERIFIERS)
    return plugins.construct(factory, f"verifier {name!r}", **dict(options or {}))
