"""What one verifier result counts for: the one reading that the trainer and `rlvr eval` share.

A pool returns, per (problem, completion), a `Verdict` (the model's answer was judged), an
`InfraError` (the infrastructure failed: masked out and counted toward the abort rate), or a
`BadReferenceError` (the problem's reference is unreadable: a dataset bug, masked out and counted
on its own, never charged to the model or to the infrastructure). `outcome` turns each into the
same plain record; nothing else in rlvr tells them apart.

It does not decide advantages or metrics: `rlvr.grpo` and `rlvr.eval` do, from these records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from rlvr.errors import BadReferenceError, InfraError
from rlvr.types import Verdict

Result = Union[Verdict, InfraError, BadReferenceError]
ANSWER_KEYS = ("normalized", "extracted", "answer")  # Verdict.info keys that name the answer given
INFRA, BAD_REFERENCE = "infra_error", "bad_reference"


@dataclass(frozen=True)
class Outcome:
    reward: float  # 0.0 where not scored (it never enters a mean: `scored` is False)
    passed: bool
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
        return Outcome(float(result.reward), bool(result.passed), result.status, True,
                       answer=answer_of(result))
    status = BAD_REFERENCE if isinstance(result, BadReferenceError) else INFRA
    if not isinstance(result, (InfraError, BadReferenceError)):
        raise TypeError(f"a verifier pool returned {type(result).__name__}, not a Verdict or error")
    return Outcome(0.0, False, status, False, error=f"{type(result).__name__}: {result}"[:2000])
