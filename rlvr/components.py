"""The parts a run is built from, built one way for `rlvr train` and `rlvr eval`.

Problems of a task split (with the verifier override), the scorer that judges them (the verifier
pool, a reward model, or both: `build_scorer`), the device, the sampling dtype and the rollout
engine. Both commands call these functions, so a
setting means the same thing in both (a verifier's memory cap, the bf16 sampling copy, an
engine option).

It builds; it does not train, evaluate or write anything.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import torch

from rlvr.config import RewardConfig, VerifyConfig
from rlvr.errors import ConfigError
from rlvr.rollout.base import RolloutEngine, make_engine
from rlvr.scoring import MixedScorer, PoolScorer, Scorer, names_reward_model
from rlvr.types import Problem


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA where available, else the CPU; naming CUDA without it is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available")
    return torch.device(name)


def sampling_dtype(requested: str, model_dtype: str, device: torch.device, lora: bool = False,
                   engine: str = "hf") -> str:
    """The rollout engine's dtype: "same" (sample from the model in place) or a dtype name.

    `auto` samples in bf16 where bf16 matmuls are fast (CUDA, CPUs with AVX512-BF16 or AMX) and
    the weights are fp32; elsewhere in place. The HF engine samples LoRA adapters in place (so
    "same"); an engine that samples merged weights (vllm) takes bf16 with LoRA too.
    """
    from rlvr.models import fast_bf16

    in_place_lora = lora and engine == "hf"
    if requested == "auto":
        fast = model_dtype == "float32" and not in_place_lora and fast_bf16(str(device))
        return "bfloat16" if fast else "same"
    if requested == model_dtype:
        return "same"
    if in_place_lora and requested != "same":
        raise ConfigError("model.rollout_dtype must be 'same' with LoRA (the adapters sample in place)")
    return requested


def task_problems(name: str, options: Mapping[str, Any], split: str, *, verifier: str = "",
                  limit: int = 0) -> list[Problem]:
    """The problems of one split (the first `limit` when > 0), judged by `verifier` when given."""
    from rlvr.tasks.base import make_task

    problems = list(make_task(name, options).problems(split))
    if limit:
        problems = problems[:limit]
    if verifier:
        problems = [replace(p, verifier=verifier) for p in problems]
    return problems


def build_pool(problems: Sequence[Problem], verifier_options: Mapping[str, Any], verify: VerifyConfig):
    """A verifier pool with every verifier the problems name, under `verify`'s limits. Verifier n
    gets `verify.options[n]` when given, else `verifier_options` (the task's)."""
    from rlvr.verifiers.base import make_verifier
    from rlvr.verifiers.pool import VerifierPool

    names = sorted({p.verifier for p in problems})
    verifiers = {n: make_verifier(n, verify.options.get(n, verifier_options)) for n in names}
    return VerifierPool(verifiers, workers=verify.workers, timeout_s=verify.timeout_s,
                        memory_mb=verify.memory_mb)


def build_engine(name: str, model: Any, tokenizer: Any, *, dtype: str = "same",
                 options: Mapping[str, Any] | None = None) -> RolloutEngine:
    """The rollout engine `name` over `model`, sampling in `dtype` ("same" = in place)."""
    return make_engine(name, model, tokenizer, {"dtype": dtype, **dict(options or {})})


def learned_rule(reward: RewardConfig):
    """Which problems the reward model scores: every one (`reward.scores: all`), else those
    that name no verifier of their own (`rlvr.scoring.names_reward_model`)."""
    if reward.model and reward.scores == "all":
        return lambda problem: True
    return names_reward_model


def build_scorer(problems: Sequence[Problem], verifier_options: Mapping[str, Any], verify: VerifyConfig,
                 reward: RewardConfig | None = None, device: torch.device | str = "cpu") -> Scorer:
    """The scorer of `problems`: the verifier pool (started: its workers load in the background),
    a reward model (loaded now, on `device`), or a `MixedScorer` of both when the problems need
    both. Problems that name no verifier without a `reward.model` are a ConfigError that names
    one of them."""
    reward = reward or RewardConfig()
    learned = learned_rule(reward)
    to_rm = [p for p in problems if learned(p)]
    to_pool = [p for p in problems if not learned(p)]
    if to_rm and not reward.model:
        raise ConfigError(f"problem {to_rm[0].id!r} names no verifier (verifier "
                          f"{to_rm[0].verifier!r}) and reward.model is not set: set reward.model to a "
                          "reward model directory, or task.verifier to a verifier")
    pool = PoolScorer(build_pool(to_pool, verifier_options, verify).start()) if to_pool or not to_rm else None
    if not to_rm:
        return pool
    try:
        rm = build_reward_scorer(reward, device)
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    return rm if pool is None else MixedScorer(pool, rm, learned)


def build_reward_scorer(reward: RewardConfig, device: torch.device | str = "cpu") -> Scorer:
    """A `RewardModelScorer` for `reward.model` on `device`, normalised and clipped as configured."""
    from pathlib import Path

    from rlvr.reward.scorer import RewardModelScorer

    if not Path(reward.model).is_dir():
        raise ConfigError(f"reward.model {reward.model!r} is not a directory (a reward model saved "
                          "by rlvr rm train)")
    return RewardModelScorer.from_path(reward.model, device=str(device), dtype=reward.dtype,
                                       normalize=reward.normalize, clip=tuple(reward.clip),
                                       batch_size=reward.batch_size)
