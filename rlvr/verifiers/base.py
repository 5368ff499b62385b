"""The verifier protocol and the verifier registry.

A verifier is one method: `verify(problem, completion) -> Verdict`. It judges one completion and
is callable on its own (tests, notebooks, `rlvr verify`). Batching, parallelism and time limits
live outside it, in `rlvr.verifiers.pool`. The model's failure is a `Verdict` with reward 0; a
failure of the verifier itself raises `VerifierError` (or lets `SandboxError` through), which the
trainer masks out of the update and counts.

A verifier must be picklable (it is sent to worker processes once) and must never `eval`/`exec`
model text in its own process: code runs only inside `rlvr.sandbox`.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

from rlvr import plugins
from rlvr.types import Completion, Problem, Verdict

__all__ = ["Verifier", "Verdict", "BUILTIN_VERIFIERS", "make_verifier", "available_verifiers"]

ENTRY_POINT_GROUP = "rlvr.verifiers"

BUILTIN_VERIFIERS: dict[str, str] = {
    "integer": "rlvr.verifiers.integer:IntegerVerifier",
    "countdown": "rlvr.verifiers.countdown:CountdownVerifier",
    "math": "rlvr.verifiers.math:MathVerifier",
    "code": "rlvr.verifiers.code:CodeVerifier",
}


@runtime_checkable
class Verifier(Protocol):
    """Judges one completion of one problem."""

    def verify(self, problem: Problem, completion: Completion) -> Verdict: ...


def available_verifiers() -> list[str]:
    return plugins.available(ENTRY_POINT_GROUP, BUILTIN_VERIFIERS)


def make_verifier(name: str, options: Mapping[str, Any] | None = None) -> Verifier:
    """Build the verifier registered as `name` (built-in, entry point, or `module:Object`)."""
    factory = plugins.load(ENTRY_POINT_GROUP, name, BUILTIN_VERIFIERS)
    try:
        return factory(**dict(options or {}))
    except TypeError as exc:
        from rlvr.errors import ConfigError

        raise ConfigError(f"verifier {name!r} rejected its options {dict(options or {})}: {exc}") from exc
