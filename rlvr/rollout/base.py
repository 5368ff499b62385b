"""The rollout engine seam: sample completions for prompts, follow the trainer's weights.

An engine is one method plus a lifecycle (the shape of an HTTP transport: `handle` + `close`):

- `generate(prompts, params)` returns, for each prompt, `params.n` completions with their token
  ids, per-token sampling log-probs (under the distribution actually sampled from: after
  temperature, top-k and top-p) and finish reason;
- `update_weights(model)` makes the engine sample from `model`'s current parameters (called by
  the trainer after every optimiser step; the trainer never copies parameters itself);
- `close()` releases what the engine holds (a sampling copy, an engine process, GPU memory).

Engines are plug-ins: `hf` (transformers `generate`, everywhere) and `vllm` (when installed),
entry points of the group `rlvr.rollout_engines`, or `package.module:Object`. Every engine
encodes prompts with `encode_prompt`, so all of them see the same prompt token ids.

This module does not load models: `rlvr.components` builds engines for `rlvr train` and `rlvr eval`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from rlvr import plugins
from rlvr.types import Completion, Prompt

ENTRY_POINT_GROUP = "rlvr.rollout_engines"
BUILTIN_ENGINES: dict[str, str] = {
    "hf": "rlvr.rollout.hf:HFRolloutEngine",
    "vllm": "rlvr.rollout.vllm:VLLMEngine",
}


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # completions per prompt (the group size G in training)
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    seed: int | None = None  # None: continue the engine's random stream
    first_index: int = 0  # index of prompts[0] among all the caller's prompts (per-sample seeds)


@runtime_checkable
class RolloutEngine(Protocol):
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """`len(prompts)` lists of `params.n` completions each, in prompt order."""
        ...

    def update_weights(self, model: Any) -> None:
        """Sample from `model`'s current parameters from now on."""
        ...

    def close(self) -> None:
        """Release the engine's resources; it is not used afterwards."""
        ...


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Prompt token ids: the chat template (with the generation prompt) for message lists, plain
    tokenization for text. The one encoder of every engine."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    ids = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def row_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of sample `sample_index` of prompt `prompt_index`: the same rule in every engine."""
    return zlib.crc32(f"{seed}|{prompt_index}|{sample_index}".encode()) & 0x7FFFFFFF


def eos_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    """Token ids that end a completion: the model's generation config and the tokenizer's EOS."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return tuple(ids)


def available_engines() -> list[str]:
    return plugins.available(ENTRY_POINT_GROUP, BUILTIN_ENGINES)


def make_engine(name: str, model: Any, tokenizer: Any, options: Mapping[str, Any] | None = None) -> RolloutEngine:
    """The engine registered as `name`, sampling from `model` with engine-only `options`."""
    factory = plugins.load(ENTRY_POINT_GROUP, name, BUILTIN_ENGINES)
    return plugins.construct(factory, f"rollout engine {name!r}", model, tokenizer, **dict(options or {}))
