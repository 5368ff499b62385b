"""Verifiers: judge a completion, return a `Verdict`. See `rlvr.verifiers.base`."""

from rlvr.types import Verdict
from rlvr.verifiers.base import Verifier, available_verifiers, make_verifier

__all__ = ["Verdict", "Verifier", "available_verifiers", "make_verifier"]
