"""Sandboxes for model-written code. See `rlvr.sandbox.base` for the protocol and the registry."""

from rlvr.sandbox.base import (ExecutionResult, Limits, Program, Sandbox, available_sandboxes,
                               make_sandbox)

__all__ = ["ExecutionResult", "Limits", "Program", "Sandbox", "available_sandboxes", "make_sandbox"]
