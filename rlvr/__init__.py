"""rlvr: reinforcement learning from verifiable rewards.

A GRPO trainer with a small readable core (`rlvr.grpo` for the math, `rlvr.train` for the loop),
verifiers that are correct and bounded (`rlvr.verifiers`), a sandbox for model-written code
(`rlvr.sandbox`) and task suites (`rlvr.tasks`). Layers depend one way:
sandbox <- verifiers <- tasks <- trainer / CLI.
"""

__version__ = "0.1.0"
