"""The exception hierarchy of rlvr.

The model's own failures (a wrong answer, failing tests, a program that times out) are never
exceptions: they are a `Verdict` with reward 0. Exceptions are for failures of rlvr, its
configuration or its infrastructure, and the trainer treats them differently: an infrastructure
error masks the affected sample out of the update and is counted, never turned into a reward.

    RlvrError
     +-- ConfigError          bad config file, unknown key, wrong type, bad value
     +-- PluginError          a verifier / task / sandbox name that cannot be loaded
     +-- ModelLoadError       a model or tokenizer that cannot be loaded
     +-- DataError            a malformed data file or row (names the file and line)
     |    +-- BadReferenceError   a problem's reference its verifier cannot read (a dataset bug)
     +-- CheckpointError      a run directory that cannot be resumed
     +-- InfraError           infrastructure failed; the sample is masked and counted
          +-- VerifierError   a verifier crashed or its worker died
          +-- SandboxError    the sandbox could not run the program (engine down, no image)
          +-- JudgeError      an LLM judge failed (timeout, HTTP error, malformed reply, refusal)
"""

from __future__ import annotations


class RlvrError(Exception):
    """Base class of every error rlvr raises on purpose."""


class _WithContext(Exception):
    """Errors that carry keyword context (`problem_id`, `verifier`, `judge`, ...) as attributes,
    kept when they cross from verifier workers to the trainer (pickling)."""

    context: tuple[str, ...] = ()

    def __init__(self, message: str = "", **context: str):
        super().__init__(message)
        unknown = set(context) - set(self.context)
        if unknown:
            raise TypeError(f"{type(self).__name__} takes no context {sorted(unknown)}")
        for name in self.context:
            setattr(self, name, context.get(name, ""))

    def __reduce__(self):
        return (_rebuild, (type(self), str(self), {n: getattr(self, n) for n in self.context}))


def _rebuild(cls: type, message: str, context: dict[str, str]) -> Exception:
    return cls(message, **context)


class ConfigError(RlvrError):
    """A configuration value, key or file is invalid. The message names the key."""


class PluginError(RlvrError):
    """A named plug-in (verifier, task, sandbox backend) cannot be found or loaded."""


class ModelLoadError(RlvrError):
    """A model or tokenizer cannot be loaded."""


class DataError(RlvrError):
    """A data file or one of its rows is malformed. The message names the file and line."""


class BadReferenceError(_WithContext, DataError):
    """A problem's reference cannot be read by its verifier: a dataset bug, not the model's failure
    and not an infrastructure failure. The trainer masks the sample out, counts it separately
    (`verify/bad_references`) and reports each problem once. Carries `problem_id` and `verifier`.
    """

    context = ("problem_id", "verifier")


class CheckpointError(RlvrError):
    """A run directory cannot be resumed from."""


class InfraError(RlvrError):
    """Infrastructure failed. Never a reward: the sample is masked out and counted."""


class VerifierError(InfraError):
    """A verifier crashed, hung beyond recovery, or its worker process died."""


class SandboxError(InfraError):
    """The sandbox itself failed (engine unreachable, image missing, container lost)."""


class JudgeError(_WithContext, InfraError):
    """An LLM judge gave no usable answer: timeout, HTTP error, connection refused, malformed or
    empty reply, refusal. Never a "no" and never a reward of 0. Carries `judge` (which judge) and
    `reason` (a short word: "timeout", "http_status", "connection", "malformed", "empty",
    "refusal", "truncated")."""

    context = ("judge", "reason")
