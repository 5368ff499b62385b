"""Sandboxes for model-written code. See `rlvr.sandbox.base` for the protocol."""

from rlvr.sandbox.base import ExecutionResult, Limits, Program, Sandbox

__all__ = ["ExecutionResult", "Limits", "Program", "Sandbox"]
