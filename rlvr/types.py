"""The plain data that flows through one GRPO step: `Problem`, `Completion`, `Verdict`.

These live below every layer (sandbox <- verifiers <- tasks <- trainer) so that a verifier can be
handed a problem without depending on the task that made it. They are frozen and picklable: they
cross process boundaries to verifier workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

Message = Mapping[str, str]  # {"role": "user" | "system" | "assistant", "content": "..."}
Prompt = Union[str, Sequence[Message]]  # plain text, or chat messages for the chat template


@dataclass(frozen=True)
class Problem:
    """One prompt and what its verifier needs to judge an answer to it.

    `reference` holds the verifier's inputs: `{"answer": "42"}` for math, `{"tests": ...,
    "test_format": "io"}` for code, `{"rubric": [...]}` for rubrics. Tasks never know how they are
    trained on; verifiers never know which task made the problem.
    """

    id: str
    prompt: Prompt
    verifier: str
    reference: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """One sampled answer. Token fields are empty where only the text is known (offline verify)."""

    text: str
    finish_reason: str = "stop"  # "stop" (EOS or stop string) | "length" (hit max_new_tokens)
    prompt_ids: tuple[int, ...] = ()
    completion_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()  # per completion token, under the sampling distribution


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement. The model's failure is a Verdict with reward 0, never an exception.

    `status` is a short machine-readable word: "correct", "wrong", "no_answer", "unparsable",
    "timeout", "failed_tests", ... `info` carries details for logs (extracted answer, per-test
    results) and must be JSON-serialisable. `passed` is None where the scorer has no notion of
    correct (a learned reward model): pass@k, maj@k and pass rates leave such samples out.
    """

    reward: float
    passed: bool | None
    status: str
    info: Mapping[str, Any] = field(default_factory=dict)
