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


class ConfigError(RlvrError):
    """A configuration value, key or file is invalid. The message names the key."""


class PluginError(RlvrError):
    """A named plug-in (verifier, task, sandbox backend) cannot be found or loaded."""


class ModelLoadError(RlvrError):
    """A model or tokenizer cannot be loaded."""


class DataError(RlvrError):
    """A data file or one of its rows is malformed. The message names the file and line."""


class BadReferenceError(DataError):
    """A problem's reference cannot be read by its verifier: a dataset bug, not the model's failure
    and not an infrastructure failure. The trainer masks the sample out, counts it separately
    (`verify/bad_references`) and reports each problem once. Carries `problem_id` and `verifier`.
    """

    def __init__(self, message: str, *, problem_id: str = "", verifier: str = ""):
        super().__init__(message)
        self.problem_id, self.verifier = problem_id, verifier

    def __reduce__(self):  # crosses from verifier workers to the trainer with its context
        return (_bad_reference, (str(self), self.problem_id, self.verifier))


def _bad_reference(message: str, problem_id: str, verifier: str) -> "BadReferenceError":
    return BadReferenceError(message, problem_id=problem_id, verifier=verifier)


class CheckpointError(RlvrError):
    """A run directory cannot be resumed from."""


class InfraError(RlvrError):
    """Infrastructure failed. Never a reward: the sample is masked out and counted."""


class VerifierError(InfraError):
    """A verifier crashed, hung beyond recovery, or its worker process died."""


class SandboxError(InfraError):
    """The sandbox itself failed (engine unreachable, image missing, container lost)."""


class JudgeError(InfraError):
    """An LLM judge gave no usable answer: timeout, HTTP error, connection refused, malformed or
    empty reply, refusal. Never a "no" and never a reward of 0. Carries `judge` (which judge) and
    `reason` (a short word: "timeout", "http_status", "connection", "malformed", "empty",
    "refusal", "truncated")."""

    def __init__(self, message: str, *, judge: str = "", reason: str = ""):
        super().__init__(message)
        self.judge, self.reason = judge, reason

    def __reduce__(self):  # crosses from verifier workers to the trainer with its context
        return (_judge_error, (str(self), self.judge, self.reason))


def _judge_error(message: str, judge: str, reason: str) -> "JudgeError":
    return JudgeError(message, judge=judge, reason=reason)
