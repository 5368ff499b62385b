"""`RewardModelScorer`: a learned reward model behind the scoring seam (`rlvr.scoring.Scorer`).

It scores (prompt, completion) pairs in batches, in the trainer's process and on the trainer's
device: a reward model is one forward pass per batch, so worker processes would only add copies
of the weights and pickling. It refuses to be pickled, so it can never be shipped into a
verifier worker by mistake.

What a score becomes:
- reward = clip((raw - mean) / std, low, high) with the mean/std saved beside the model
  (`reward_stats.json`, written by `rlvr rm train`); without `normalize`, clip(raw, low, high).
  Bounding the reward keeps one outlier from dominating a group, and a reward on a known scale
  makes the length penalty (`grpo.length_penalty_coef`, in reward units) mean the same for every
  reward model.
- `Verdict(reward, passed=None, status="scored", info={"raw": raw})`: a learned reward has no
  notion of correct, so these samples are left out of pass rates and pass@k.
- a raw score that is not finite (a broken model, NaN weights) is an `InfraError` for that sample:
  masked and counted, never a reward.

It does not train reward models or define their format (`rlvr.reward.model` does), and does not
decide which problems it scores (`rlvr.scoring.MixedScorer` and `rlvr.components` do).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from rlvr.errors import InfraError
from rlvr.scoring import BaseScorer, Result
from rlvr.types import Completion, Problem, Prompt, Verdict

__all__ = ["RewardModelScorer", "normalise"]


def normalise(raw: float, mean: float, std: float, clip: tuple[float, float] | None,
              normalize: bool = True) -> float:
    """clip((raw - mean) / std) when `normalize`, else clip(raw); `clip` None: no clipping."""
    value = (raw - mean) / std if normalize else raw
    if clip is not None:
        value = min(max(value, clip[0]), clip[1])
    return float(value)


class RewardModelScorer(BaseScorer):
    """Scores completions with a reward model (see the module docstring).

    `model`, `tokenizer`: as `rlvr.reward.model.load_reward_model` returns them; `stats`: a
    mapping with `mean` and `std` of the model's rewards; `score_fn(model, tokenizer, prompts,
    responses, batch_size)` -> raw scores (default `rlvr.reward.model.score_texts`).
    """

    def __init__(self, model: Any, tokenizer: Any, stats: Mapping[str, float], *,
                 normalize: bool = True, clip: tuple[float, float] | None = (-5.0, 5.0),
                 batch_size: int = 16, score_fn: Callable[..., Sequence[float]] | None = None):
        mean, std = float(stats.get("mean", 0.0)), float(stats.get("std", 1.0))
        if normalize and not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"reward stats need a finite mean and std > 0 to normalise, got {dict(stats)}")
        if clip is not None and not clip[0] < clip[1]:
            raise ValueError(f"clip must be (low, high) with low < high, got {clip}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model, self.tokenizer = model, tokenizer
        self.mean, self.std, self.normalize = mean, std, normalize
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
        self.batch_size = batch_size
        self._score_fn = score_fn
        self._stats = {"reward_model/scored": 0.0, "reward_model/clipped": 0.0, "reward_model/time_s": 0.0}

    @classmethod
    def from_path(cls, path: str, *, device: str = "cpu", dtype: str = "float32",
                  **options: Any) -> "RewardModelScorer":
        """Load a saved reward model (`rlvr rm train` output) and score with it."""
        from rlvr.reward.model import load_reward_model

        model, tokenizer, stats = load_reward_model(path, device, dtype)
        return cls(model, tokenizer, stats, **options)

    def __reduce__(self):
        raise TypeError("RewardModelScorer runs in the trainer's process and is never pickled "
                        "(into verifier workers or otherwise)")

    def raw_scores(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> list[float]:
        """The model's raw scores, one per (prompt, response), encoded as in training."""
        import torch

        score_fn = self._score_fn
        if score_fn is None:
            from rlvr.reward.model import score_texts as score_fn
        with torch.inference_mode():
            return [float(x) for x in score_fn(self.model, self.tokenizer, list(prompts),
                                               list(responses), self.batch_size)]

    def score(self, problems: Sequence[Problem], completions: Sequence[Completion]) -> list[Result]:
        import time

        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        if not problems:
            return []
        t0 = time.perf_counter()
        raw = self.raw_scores([p.prompt for p in problems], [c.text for c in completions])
        out: list[Result] = []
        for problem, r in zip(problems, raw, strict=True):
            if not math.isfinite(r):
                out.append(InfraError(f"reward model gave a non-finite score ({r}) on problem {problem.id}"))
                continue
            reward = normalise(r, self.mean, self.std, self.clip, self.normalize)
            unclipped = normalise(r, self.mean, self.std, None, self.normalize)
            self._stats["reward_model/clipped"] += float(reward != unclipped)
            out.append(Verdict(reward=reward, passed=None, status="scored", info={"raw": r}))
        self._stats["reward_model/scored"] += len(out)
        self._stats["reward_model/time_s"] += time.perf_counter() - t0
        return out

    def take_stats(self) -> dict[str, float]:
        stats, self._stats = self._stats, dict.fromkeys(self._stats, 0.0)
        return stats

    def close(self) -> None:
        self.model = None  # frees the weights once the caller drops its reference

