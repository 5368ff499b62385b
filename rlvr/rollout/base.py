"""The rollout engine protocol: sample completions for prompts.

`RolloutEngine.generate(prompts, params)` returns, for each prompt, `params.n` completions with
their token ids, per-token sampling log-probs and finish reason. Engines: `hf` (transformers
`generate`, everywhere) and `vllm` (when installed). The engine applies the chat template to chat
prompts; plain-text prompts are tokenized as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from rlvr.types import Completion, Prompt


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # completions per prompt (the group size G in training)
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    seed: int | None = None  # None: continue the engine's random stream


@runtime_checkable
class RolloutEngine(Protocol):
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """`len(prompts)` lists of `params.n` completions each, in prompt order."""
        ...
