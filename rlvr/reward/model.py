"""The reward model format, loading it, and scoring (prompt, response) texts with it.

A reward model is a directory (what `rlvr rm train` writes to `OUTPUT/final`):

    config.json, model.safetensors   `AutoModelForSequenceClassification.save_pretrained` with
                                     `num_labels=1`: the causal LM's body and a linear `score` head
                                     (no bias); `config.pad_token_id` is the tokenizer's pad id
    tokenizer files                  the tokenizer it was trained with; its `model_max_length` is
                                     the training `max_length`; it has a chat template exactly when
                                     the texts were encoded with one (`chat_template` below)
    reward_stats.json                {"format": 1, "mean": float, "std": float,
                                      "chat_template": bool, "max_length": int,
                                      "base_model": str, "pairs": int, ...}: `mean`/`std` are the
                                     statistics of the raw rewards of the training pairs (chosen
                                     and rejected together), the normalisation of the scorer
    adapter/                         LoRA runs only: the adapter before it was merged in

How a (prompt, response) becomes tokens (`encode`; training and scoring use this one function):
- with a chat template: the prompt as chat messages (a string is one user message) followed by
  `{"role": "assistant", "content": response}`, rendered by `apply_chat_template`, then tokenized
  without adding special tokens;
- without one: the prompt text followed directly by the response (how a rollout engine sees a
  plain prompt and its completion), tokenized with the tokenizer's special tokens;
- longer than `max_length`: cut from the left, so the end, where the reward is read, is kept.

The reward is the head's output at the last real token: transformers reads it at the rightmost
token that is not `pad_token_id`. That position is the same for left padding, right padding and
no padding, and `rewards` numbers positions from each text's first real token, so a batch scores
as its texts one by one. (A text whose encoding ends in the
pad token itself is read at the token before it; the chat template of the default model ends in a
newline after `<|im_end|>`, so it never does.)

Raw rewards are on an arbitrary scale. Normalising them by the saved `mean`/`std` and clipping
them is the scorer's job (`rlvr.reward.scorer`), not this module's; nor does it train anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from rlvr.errors import ConfigError, ModelLoadError
from rlvr.types import Prompt

STATS_FILE = "reward_stats.json"
FORMAT = 1
_UNBOUNDED = 1_000_000  # tokenizers without a length limit report about 1e30


def load_reward_model(path: str | Path, device: str = "cpu", dtype: str = "float32"
                      ) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode on `device`, tokenizer set up as in training, reward statistics) from a
    reward model directory. A directory that is not one is a `ModelLoadError` that says why."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path).expanduser()
    stats = read_stats(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=getattr(torch, dtype))
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the reward model in {path}: {exc}") from exc
    if model.config.num_labels != 1:
        raise ModelLoadError(f"{path} is a classifier with {model.config.num_labels} labels, not a "
                             "reward model (num_labels=1)")
    prepare_tokenizer(tokenizer, chat_template=stats["chat_template"], max_length=stats["max_length"])
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer, stats


def read_stats(path: Path) -> dict[str, Any]:
    """`reward_stats.json` of a reward model directory, checked."""
    file = path / STATS_FILE
    if not path.is_dir():
        raise ModelLoadError(f"cannot load a reward model from {path}: no such directory")
    if not file.is_file():
        hint = (" It is a training run: its reward model is in final/." if (path / "final").is_dir()
                else " A reward model is the final/ directory that `rlvr rm train` writes; one "
                "without this file is incomplete (the run did not finish).")
        raise ModelLoadError(f"{path} is not a reward model: it has no {STATS_FILE}.{hint}")
    try:
        stats = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{file} is unreadable: {exc}") from exc
    if not isinstance(stats, dict) or stats.get("format") != FORMAT:
        raise ModelLoadError(f"{file}: unknown reward model format {stats.get('format') if isinstance(stats, dict) else stats!r} "
                             f"(this rlvr reads format {FORMAT})")
    for key in ("mean", "std"):
        if not isinstance(stats.get(key), (int, float)) or not math.isfinite(stats[key]):
            raise ModelLoadError(f"{file}: {key!r} must be a finite number, got {stats.get(key)!r}")
    if stats["std"] <= 0:
        raise ModelLoadError(f"{file}: 'std' must be > 0, got {stats['std']}")
    stats.setdefault("chat_template", False)
    stats.setdefault("max_length", 0)
    return stats


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    from rlvr.durable import atomic_write_text

    atomic_write_text(path / STATS_FILE, json.dumps({"format": FORMAT, **stats}, indent=2) + "\n")


def prepare_tokenizer(tokenizer: Any, chat_template: bool, max_length: int) -> Any:
    """Make the tokenizer encode as a reward model of this format does: a pad token (EOS when it
    has none), left padding and truncation, its chat template only when `chat_template`, and
    `max_length` (0 = none) as its `model_max_length`. Returns it (changed in place)."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if not chat_template:
        tokenizer.chat_template = None
    elif not tokenizer.chat_template:
        raise ConfigError("chat_template is on, but the tokenizer has no chat template")
    if max_length:
        tokenizer.model_max_length = max_length
    return tokenizer


def encode(tokenizer: Any, prompt: Prompt, response: str) -> list[int]:
    """Token ids of (prompt, response) as described in the module docstring."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        text = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}],
                                             tokenize=False)
        special = False
    elif isinstance(prompt, str):
        text, special = prompt + response, True
    else:
        raise ConfigError("a chat prompt (messages) needs a tokenizer with a chat template; this "
                          "reward model was trained on plain text")
    limit = tokenizer.model_max_length
    truncate = 0 < limit < _UNBOUNDED
    ids = tokenizer(text, add_special_tokens=special, truncation=truncate,
                    max_length=limit if truncate else None)["input_ids"]
    return list(ids)


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), each (B, T), left-padded to the longest sequence."""
    T = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), T), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s:
            ids[i, T - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[i, T - len(s):] = 1
    return ids, mask


def rewards(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Raw rewards (B,) of a padded batch, in float32 (or the model's wider dtype); gradients
    flow when enabled."""
    device = next(model.parameters()).device
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # 0 at each text's first token, however padded
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                   position_ids=positions.to(device)).logits
    return logits[:, 0].to(torch.promote_types(logits.dtype, torch.float32))


def score_texts(model: Any, tokenizer: Any, prompts: Sequence[Prompt], responses: Sequence[str],
                batch_size: int = 16) -> torch.Tensor:
    """Raw rewards (N,) on the CPU of N (prompt, response) pairs: batched, without gradients,
    encoded as in training by the tokenizer `load_reward_model` returned. Normalise them with the
    saved statistics: (r - stats["mean"]) / stats["std"]."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    seqs = [encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    return score_encoded(model, seqs, tokenizer.pad_token_id, batch_size)


def score_encoded(model: Any, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int = 16) -> torch.Tensor:
    """Raw rewards (N,) on the CPU of N token sequences, without gradients, in batches of
    `batch_size` sequences of similar length (which does not change any score)."""
    out = torch.zeros(len(seqs))
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    step = max(batch_size, 1)
    with torch.no_grad():
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            ids, mask = pad([seqs[i] for i in idx], pad_id)
            out[idx] = rewards(model, ids, mask).cpu()
    return out


def build_reward_model(name: str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer): a causal LM (`rlvr.models` names: the embedded default, a local
    directory, a run's final/) with a new scalar `score` head, ready to train."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from rlvr.models import load_tokenizer, resolve_model_path

    path = resolve_model_path(name)
    if (Path(path) / "adapter_config.json").is_file():
        raise ModelLoadError(f"{name!r} is a LoRA adapter; start a reward model from a full model "
                             "(a run's final/ directory holds the merged one)")
    tokenizer = load_tokenizer(name)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight is newly initialized": it is meant to be
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=getattr(torch, dtype), pad_token_id=tokenizer.pad_token_id)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load {name!r} as a reward model: {exc}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.to(device), tokenizer
