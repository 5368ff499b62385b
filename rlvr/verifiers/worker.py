"""What runs inside a verifier worker process: warm up, answer items and chunks, close.

The parent (`rlvr.verifiers.pool`) imposes every limit from outside; this side only applies the
memory cap it is given before it touches any input, and turns each outcome into a message:

- `("ok", Verdict)`, `("error", InfraError | BadReferenceError)`, `("crash", traceback)` for one
  item (`verify`); `MemoryError`/`RecursionError` are the model's `resource_limit`;
- `("batch", [result, ...])` for a chunk (`verify_batch`), one result per item under the same
  contract, or `("crash", why)` when the call failed as a whole (the parent then asks item by
  item);
- `("notice", outage.Notice)` while a sandbox waits for its engine; `("ready", why | None)` after
  warm-up, `("failed", traceback)` when a warm-up fails with a bug.

This module does not time anything and does not retry.
"""

from __future__ import annotations

import pickle
import resource
import traceback
from multiprocessing.connection import Connection
from typing import Mapping, Sequence

from rlvr.errors import BadReferenceError, InfraError, VerifierError
from rlvr.sandbox import outage
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier, Result, Verifier

__all__ = ["worker_main", "verify_one", "verify_chunk"]


def worker_main(conn: Connection, verifiers_blob: bytes, memory_mb: int) -> None:
    """A worker's life: cap memory, unpickle and warm up the verifiers, answer messages
    `(verifier name, problems, completions)` until `None`, close the verifiers."""
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    verifiers: Mapping[str, BaseVerifier] = pickle.loads(verifiers_blob)
    outage.listen(lambda notice: _send(conn, ("notice", notice)))
    ready: tuple[str, object] = ("ready", None)
    try:
        for verifier in verifiers.values():
            verifier.warmup()
    except InfraError as exc:  # e.g. no engine yet: items will raise their own, counted, errors
        ready = ("ready", f"warm-up failed: {exc}")
    except Exception:  # noqa: BLE001 - a verifier that cannot warm up is reported, not retried
        _send(conn, ("failed", traceback.format_exc(limit=8)))
        return
    try:
        conn.send(ready)
        while (msg := conn.recv()) is not None:
            name, problems, completions = msg
            if len(problems) == 1:
                conn.send(verify_one(verifiers, name, problems[0], completions[0]))
            else:
                conn.send(verify_chunk(verifiers[name], problems, completions))
    except (EOFError, OSError):  # the parent went away: nothing left to answer
        return
    finally:
        for verifier in verifiers.values():
            try:
                verifier.close()
            except Exception:  # noqa: BLE001 - exiting anyway; the engine auto-removes the rest
                pass


def _send(conn: Connection, message: tuple) -> None:
    try:
        conn.send(message)
    except (OSError, ValueError):  # the parent is gone
        pass


def verify_one(verifiers: Mapping[str, Verifier], name: str, problem: Problem,
                completion: Completion) -> tuple[str, object]:
    try:
        return ("ok", verifiers[name].verify(problem, completion))
    except (MemoryError, RecursionError) as exc:
        return ("ok", Verdict(0.0, False, "resource_limit", {"error": type(exc).__name__}))
    except (InfraError, BadReferenceError) as exc:
        return ("error", exc)
    except Exception:  # noqa: BLE001 - a crashing verifier is reported as infra, never a 0
        return ("crash", traceback.format_exc(limit=8))


def verify_chunk(verifier: BaseVerifier, problems: Sequence[Problem],
                  completions: Sequence[Completion]) -> tuple[str, object]:
    """("batch", one result per item) or ("crash", why): then the pool retries item by item."""
    try:
        results = list(verifier.verify_batch(problems, completions))
    except Exception:  # noqa: BLE001 - which item failed is unknown: the pool asks one by one
        return ("crash", traceback.format_exc(limit=8))
    if len(results) != len(problems):
        return ("crash", f"verify_batch gave {len(results)} results for {len(problems)} items")
    return ("batch", [as_result(r, p) for r, p in zip(results, problems)])


def as_result(value: object, problem: Problem) -> Result:
    """One item of `verify_batch`'s answer under the contract of `verify` (errors as values)."""
    if isinstance(value, (Verdict, InfraError, BadReferenceError)):
        return value
    if isinstance(value, (MemoryError, RecursionError)):
        return Verdict(0.0, False, "resource_limit", {"error": type(value).__name__})
    return VerifierError(f"verifier {problem.verifier!r} gave {value!r} for {problem.id} in a "
                         "batch: neither a Verdict nor an error")
