"""Pieces of a supervised training loop, shared by the trainers that learn from fixed data.

`rlvr sft` (and any trainer of the same shape, e.g. a reward model on preference pairs) walks a
fixed data set for some epochs; these are the parts of that loop that do not depend on what the
data or the loss is:

- `BatchCursor`: the items in seeded, length-bucketed batches, epoch after epoch; its position
  (`epoch`, `index`) goes into each checkpoint, so a resumed run takes the same batches.
- `optimizer_step`: one optimiser step accumulated over micro-batches, each of which returns its
  share of the batch loss (divided by the *whole* batch's denominator, as in `rlvr.grpo.aggregate`),
  so the gradient equals the one of the whole batch at once.
- `restore`: weights, optimiser, scheduler and RNG from the run's latest checkpoint, with the log
  cut back to that step.
- `progress_bar`: the tqdm bar of the loop.
- `config_layers`: the command side: `--resume RUN` / `--overwrite` / overrides turned into the
  (saved config, overrides) that a `build_*_config(file, overrides, base=...)` takes.

Why length bucketing and not packing: packing several sequences into one row needs an attention
mask that keeps them apart (block-diagonal, or variable-length flash attention), which not every
model and attention implementation of transformers honours; without it the packed loss is not the
loss of the sequences one by one. Bucketing pads each batch only to its own longest sequence and
sorts sequences of similar length together (within windows of a seeded shuffle, so batches stay
random), which removes most padding and gives exactly the per-sequence loss on any model.

It does not build models, read data or define a loss.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

if TYPE_CHECKING:  # torch is imported where it is used: `--help` of a command stays instant
    import torch

WINDOW_BATCHES = 32  # batches whose items are sorted by length together


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int | str,
                     window_batches: int = WINDOW_BATCHES) -> list[list[int]]:
    """Indices of `lengths` in batches of `batch_size` (the last may be smaller): shuffled with
    `seed`, sorted by length within windows of `window_batches` batches, batches shuffled again."""
    rng = random.Random(str(seed))
    order = rng.sample(range(len(lengths)), len(lengths))
    window = max(batch_size * window_batches, 1)
    batches = []
    for s in range(0, len(order), window):
        chunk = sorted(order[s:s + window], key=lambda i: lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class BatchCursor:
    """Length-bucketed batches of the items, epoch after epoch (a new seeded plan each epoch)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, epoch: int = 0, index: int = 0):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.epoch, self.index = epoch, index
        self._plan = self._batches(epoch)

    def _batches(self, epoch: int) -> list[list[int]]:
        return bucketed_batches(self.lengths, self.batch_size, f"{self.seed}/{epoch}")

    @property
    def batches_per_epoch(self) -> int:
        return len(self._plan)

    def take(self) -> list[int]:
        if self.index >= len(self._plan):
            self.epoch, self.index = self.epoch + 1, 0
            self._plan = self._batches(self.epoch)
        batch = self._plan[self.index]
        self.index += 1
        return batch

    def position(self) -> float:
        """Epochs done, fractional (1.5 = half-way through the second epoch)."""
        return self.epoch + self.index / max(len(self._plan), 1)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}


def optimizer_step(params: Sequence[torch.nn.Parameter], optimizer: Any, scheduler: Any,
                   micro_batches: Iterable[Any], loss_share: Callable[[Any], torch.Tensor],
                   max_grad_norm: float) -> tuple[float, float]:
    """Zero the gradients, backward each micro-batch's `loss_share` (its part of the batch loss),
    clip, step optimiser and scheduler. Returns (batch loss, gradient norm before clipping; 0 when
    clipping is off)."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for mb in micro_batches:
        loss = loss_share(mb)
        loss.backward()
        total += float(loss.detach())
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm)) if max_grad_norm > 0 else 0.0
    optimizer.step()
    scheduler.step()
    return total, grad_norm


def restore(checkpoint: Path | None, model: Any, optimizer: Any, scheduler: Any, log: Any) -> dict[str, Any]:
    """Resume from `checkpoint` (its state.json is returned; the log drops rows after its step), or
    start fresh ({"step": 0}; the log is emptied)."""
    from rlvr.checkpoint import load_model_weights, load_training_state

    if checkpoint is None:
        log.truncate_after(-1)
        return {"step": 0}
    load_model_weights(checkpoint, model)
    state = load_training_state(checkpoint, optimizer, scheduler)
    log.truncate_after(state["step"])
    return state


def progress_bar(total: int, start: int, desc: str, enabled: bool,
                 fields: Callable[[dict[str, float]], dict[str, str]]) -> Callable[[int, dict[str, float]], None]:
    """`update(step, metrics)`: advance a tqdm bar on stderr showing `fields(metrics)`."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)

    def update(step: int, metrics: dict[str, float]) -> None:
        bar.set_postfix(fields(metrics))
        bar.update(1)
        if step == total:
            bar.close()

    return update


def config_layers(resume: str | None, overwrite: bool, overrides: Sequence[str]) -> tuple[dict | None, list[str]]:
    """(base config, overrides) of a command with `--resume RUN_DIR` and `--overwrite`: a resumed
    run starts from its saved `config.yaml` and keeps its directory; the overrides apply on top."""
    from rlvr.config import load_yaml
    from rlvr.errors import CheckpointError, ConfigError

    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite deletes it: choose one")
    if not resume:
        return None, list(overrides)
    saved = Path(resume) / "config.yaml"
    if not saved.is_file():
        raise CheckpointError(f"{resume} is not a run directory (no config.yaml)")
    return load_yaml(saved), [*overrides, f"--output_dir={resume}"]
