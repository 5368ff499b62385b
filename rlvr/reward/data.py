"""Preference pairs for reward model training: reading them, holding prompts out, batching them.

A pair is one row `{"prompt": ..., "chosen": "...", "rejected": "..."}` (plus an optional number
`margin`) of a JSON Lines or Parquet file (`rlvr.tasks.files`): `prompt` is text or a list of chat
messages `{"role", "content"}`; `chosen` and `rejected` are non-empty and differ. A malformed row
is a `DataError` naming the file and line (row of a Parquet file) and what is wrong with it.

Pairs of one prompt stay together: the held-out split takes whole prompts (so held-out accuracy is
measured on prompts never trained on), and a batch holds whole prompts (InstructGPT's remedy for
overfitting to a prompt seen in several steps). `PairBatches` walks the batches in a seeded order,
epoch after epoch, and resumes from its (epoch, index).

This module does not tokenize or train: `rlvr.reward.train` does.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

from rlvr.errors import DataError
from rlvr.tasks.files import field, load_file
from rlvr.types import Prompt


@dataclass(frozen=True)
class Pair:
    prompt: Prompt
    chosen: str
    rejected: str
    margin: float = 0.0  # how much better chosen is said to be (0 = no margin)
    where: str = ""  # file:line, for messages

    @property
    def key(self) -> str:
        """Identifies the prompt (pairs with equal keys share a prompt)."""
        return self.prompt if isinstance(self.prompt, str) else json.dumps(list(self.prompt), sort_keys=True)


def prompt_of(row: dict[str, Any], where: str) -> Prompt:
    value = row.get("prompt")
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        if not value:
            raise DataError(f"{where}: field 'prompt' is an empty list of messages")
        for i, m in enumerate(value):
            ok = (isinstance(m, dict) and isinstance(m.get("role"), str)
                  and isinstance(m.get("content"), str))
            if not ok:
                raise DataError(f"{where}: prompt message {i} should be {{\"role\": str, \"content\": str}}, got {m!r:.80}")
        return tuple({"role": m["role"], "content": m["content"]} for m in value)
    return field(row, "prompt", where)


def to_pair(row: dict[str, Any], where: str) -> Pair:
    """One row as a `Pair`, or a `DataError` that names `where` and the problem."""
    prompt = prompt_of(row, where)
    chosen, rejected = field(row, "chosen", where), field(row, "rejected", where)
    if chosen == rejected:
        raise DataError(f"{where}: 'chosen' and 'rejected' are the same text: no preference to learn")
    margin = row.get("margin")
    if margin is None:
        margin = 0.0
    elif isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
        raise DataError(f"{where}: field 'margin' should be a finite number, got {margin!r:.40}")
    return Pair(prompt, chosen, rejected, float(margin), where)


def load_pairs(path: str, on_error: str = "raise") -> list[Pair]:
    """Every pair of a JSONL/Parquet file. `on_error="skip"` leaves out malformed rows with a
    warning (a `DataError` if more than 10% are malformed); `"raise"` stops at the first."""
    return load_file(path, to_pair, on_error=on_error)


def split_by_prompt(pairs: Sequence[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): a seeded `fraction` of the distinct prompts (at least one when
    fraction > 0 and there are two or more prompts) with all their pairs goes to held out."""
    keys = sorted({p.key for p in pairs})
    n_out = min(max(math.ceil(fraction * len(keys)), 1), len(keys) - 1) if fraction > 0 and len(keys) > 1 else 0
    held = set(random.Random(f"rm-split/{seed}").sample(keys, n_out))
    return [p for p in pairs if p.key not in held], [p for p in pairs if p.key in held]


def group_by_prompt(pairs: Sequence[Pair]) -> list[list[int]]:
    """Indices of `pairs`, one list per prompt, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.key, []).append(i)
    return list(groups.values())


class PairBatches:
    """Batches of pair indices: each epoch shuffles the prompts (seeded by seed and epoch) and
    packs whole prompts into batches of at most `batch_pairs` pairs (a prompt with more pairs than
    that is a batch of its own). Resumable from `state()`."""

    def __init__(self, groups: Sequence[Sequence[int]], batch_pairs: int, seed: int,
                 epoch: int = 0, index: int = 0):
        self.groups, self.batch_pairs, self.seed = [list(g) for g in groups], batch_pairs, seed
        self.seek(epoch, index)

    def plan(self, epoch: int) -> list[list[int]]:
        order = random.Random(f"rm-batches/{self.seed}/{epoch}").sample(self.groups, len(self.groups))
        batches: list[list[int]] = []
        current: list[int] = []
        for group in order:
            if current and len(current) + len(group) > self.batch_pairs:
                batches.append(current)
                current = []
            current = current + group
        if current:
            batches.append(current)
        return batches

    def seek(self, epoch: int, index: int) -> None:
        """Continue from a `state()`: the next batch is batch `index` of epoch `epoch`."""
        self.epoch, self.index = epoch, index
        self._batches = self.plan(epoch)

    def __len__(self) -> int:
        """Batches in the current epoch (epochs may differ by a batch: whole prompts are packed)."""
        return len(self._batches)

    def next(self) -> list[int]:
        if self.index >= len(self._batches):
            self.seek(self.epoch + 1, 0)
        batch = self._batches[self.index]
        self.index += 1
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}
