"""Rollout engines: sample G completions per prompt with their log-probs."""

from rlvr.rollout.base import RolloutEngine, SamplingParams

__all__ = ["RolloutEngine", "SamplingParams"]
