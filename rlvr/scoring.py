"""The scoring seam: what scores a completion, and what one score counts for.

    Scorer.score(problems, completions) -> list[Result]     # one Result per pair, in order

`Result` is a `Verdict` (the completion was scored), an `InfraError` (the infrastructure failed:
masked out and counted toward the abort rate) or a `BadReferenceError` (the problem's reference is
unreadable: a dataset bug, masked out and counted on its own, never charged to the model or to the
infrastructure). A scorer returns errors, it does not raise them. Besides `score`, a scorer has a
lifecycle: `take_stats()` (counters since the last call, for the run log) and `close()`.

Implementations:
- `PoolScorer`: the verifier pool (verifiers in spawned worker processes, limits from outside),
  adapted to the seam; `VerifierPool.verify` itself is unchanged.
- `rlvr.reward.scorer.RewardModelScorer`: a learned reward model, batched, in the trainer's
  process and device. Its verdicts have `passed=None`: a learned reward has no notion of correct.
- `MixedScorer`: each problem to the verifier it names, or to the reward model where it names
  none (`verifier` empty or "reward_model"): the fallback for open-ended tasks.

`outcome` turns each Result into the same plain record for the trainer and `rlvr eval`;
nothing else in rlvr tells them apart. `Outcome.passed` is None where the scorer has no notion of
correct: such samples still carry a reward (advantages, mean reward) but are left out of every
pass rate and of pass@k / maj@k.

It does not decide advantages or metrics (`rlvr.grpo` and `rlvr.eval` do), and does not build
scorers from a config (`rlvr.components.build_scorer` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, Union, runtime_checkable

from rlvr.errors import BadReferenceError, InfraError
from rlvr.types import Completion, Problem, Verdict

__all__ = ["Result", "Scorer", "BaseScorer", "PoolScorer", "MixedScorer", "as_scorer",
           "names_reward_model", "REWARD_MODEL", "Outcome", "outcome", "answer_of"]

Result = Union[Verdict, InfraError, BadReferenceError]
ANSWER_KEYS = ("normalized", "extracted", "answer")  # Verdict.info keys that name the answer given
INFRA, BAD_REFERENCE = "infra_error", "bad_reference"
REWARD_MODEL = "reward_model"  # the verifier name of problems the reward model scores


# ---------------------------------------------------------------------------- the seam


@runtime_checkable
class Scorer(Protocol):
    """Scores completions of problems; errors are returned in place, never raised."""

    def score(self, problems: Sequence[Problem], completions: Sequence[Completion]) -> list[Result]:
        """One Result per (problem, completion) pair, in order."""
        ...

    def take_stats(self) -> dict[str, float]:
        """Counters since the last call (e.g. `verify/engine_outages`), for the run log."""
        ...

    def close(self) -> None:
        """Release workers, models or connections; safe to call twice."""
        ...


class BaseScorer:
    """The lifecycle defaults of a scorer: no counters, nothing to close, a context manager."""

    def score(self, problems: Sequence[Problem], completions: Sequence[Completion]) -> list[Result]:
        raise NotImplementedError

    def take_stats(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PoolScorer(BaseScorer):
    """The verifier pool as a scorer (`VerifierPool.verify` under the seam's name)."""

    def __init__(self, pool):
        self.pool = pool

    def score(self, problems: Sequence[Problem], completions: Sequence[Completion]) -> list[Result]:
        return list(self.pool.verify(problems, completions)) if problems else []

    def take_stats(self) -> dict[str, float]:
        return self.pool.take_stats()

    def close(self) -> None:
        self.pool.close()


def as_scorer(obj) -> Scorer:
    """`obj` itself when it is a scorer; a verifier pool (anything with `verify`) adapted."""
    if isinstance(obj, Scorer):
        return obj
    if callable(getattr(obj, "verify", None)):
        return PoolScorer(obj)
    raise TypeError(f"{type(obj).__name__} is neither a Scorer nor a verifier pool")


def names_reward_model(problem: Problem) -> bool:
    """True where a problem names no verifier of its own (empty, or "reward_model")."""
    return problem.verifier in ("", REWARD_MODEL)


class MixedScorer(BaseScorer):
    """Each problem to `verifiers` or to `reward`, as `learned(problem)` says; results in order.

    With the default rule a problem's own verifier scores it where it names one, the reward
    model where it names none. A side with nothing to score is not called.
    """

    def __init__(self, verifiers: Scorer, reward: Scorer,
                 learned: Callable[[Problem], bool] = names_reward_model):
        self.verifiers, self.reward, self.learned = verifiers, reward, learned

    def score(self, problems: Sequence[Problem], completions: Sequence[Completion]) -> list[Result]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        to_reward = [self.learned(p) for p in problems]
        out: list[Result | None] = [None] * len(problems)
        for side, wanted in ((self.verifiers, False), (self.reward, True)):
            idx = [i for i, r in enumerate(to_reward) if r == wanted]
            if idx:
                results = side.score([problems[i] for i in idx], [completions[i] for i in idx])
                for i, res in zip(idx, results, strict=True):
                    out[i] = res
        return out  # type: ignore[return-value]  # every index was filled by one side

    def take_stats(self) -> dict[str, float]:
        return {**self.verifiers.take_stats(), **self.reward.take_stats()}

    def close(self) -> None:
        try:
            self.verifiers.close()
        finally:
            self.reward.close()


# ---------------------------------------------------------------------------- what a result counts for


@dataclass(frozen=True)
class Outcome:
    reward: float  # 0.0 where not scored (it never enters a mean: `scored` is False)
    passed: bool | None  # None: the scorer has no notion of correct (a reward model)
    status: str  # the verdict's status, or "infra_error" / "bad_reference"
    scored: bool  # False: masked out of groups, means and pass@k
    error: str = ""  # "Type: message" of an error, for logs
    answer: str | None = None  # the answer the verdict says was given (majority voting)


def answer_of(verdict: Verdict) -> str | None:
    """The answer a verdict says the completion gave (the key majority voting groups by)."""
    for key in ANSWER_KEYS:
        value = verdict.info.get(key)
        if value is not None:
            return str(value)
    return None


def outcome(result: Result) -> Outcome:
    if isinstance(result, Verdict):
        passed = None if result.passed is None else bool(result.passed)
        return Outcome(float(result.reward), passed, result.status, True, answer=answer_of(result))
    status = BAD_REFERENCE if isinstance(result, BadReferenceError) else INFRA
    if not isinstance(result, (InfraError, BadReferenceError)):
        raise TypeError(f"a scorer returned {type(result).__name__}, not a Verdict or error")
    return Outcome(0.0, False, status, False, error=f"{type(result).__name__}: {result}"[:2000])
