"""Offline verification of a JSONL file: one case per line in, the same line plus a verdict out.

Each input line is a JSON object with a `verifier` name, a `completion` text and whatever that
verifier reads from `problem.reference` (every other key except `id`), for example

    {"verifier": "math", "answer": "\\\\frac{1}{2}", "completion": "... \\\\boxed{0.5}"}

The output has one line per input line, in order, with `reward`, `passed`, `status` and `info`
added (other keys are kept). Every verifier runs through `VerifierPool`, so each case has a time
and memory limit. A line that is not a JSON object, lacks a key or names an unknown verifier gets
`status: "malformed"` or `"unknown_verifier"`; a reference its verifier cannot read gets
`status: "bad_reference"`; a verifier's own failure gets `status: "error"`. The run never stops
half way and never drops a line. The summary counts engine outages the run waited through
(`engine_outages`, `outage_s`: see `rlvr.sandbox.outage`).

This module does not sample completions or compute pass@k (see `rlvr.eval`).
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from rlvr.errors import BadReferenceError, ConfigError, DataError, InfraError, PluginError, VerifierError
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import Verifier, make_verifier
from rlvr.verifiers.pool import VerifierPool

CHUNK_LINES = 512  # lines verified per pool call; output is written after each chunk
_NOT_REFERENCE = ("verifier", "completion", "id")


@dataclass
class Summary:
    """Counts of one run: lines, statuses, passed, mean reward, time."""

    lines: int = 0
    passed: int = 0
    reward_sum: float = 0.0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    elapsed_s: float = 0.0
    engine_outages: int = 0
    outage_s: float = 0.0

    def add(self, status: str, reward: float, passed: bool) -> None:
        self.lines += 1
        self.statuses[status] += 1
        self.reward_sum += reward
        self.passed += bool(passed)

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "passed": self.passed,
                "reward_mean": round(self.reward_sum / self.lines, 6) if self.lines else 0.0,
                "statuses": dict(self.statuses.most_common()), "elapsed_s": round(self.elapsed_s, 3),
                "lines_per_s": round(self.lines / self.elapsed_s, 1) if self.elapsed_s else 0.0,
                "engine_outages": self.engine_outages, "outage_s": round(self.outage_s, 3)}


def case_of(record: Any, line_no: int) -> tuple[Problem, Completion]:
    """The `Problem` and `Completion` one input line describes; `DataError` if it is malformed."""
    if not isinstance(record, dict):
        raise DataError(f"line {line_no}: not a JSON object")
    for key in ("verifier", "completion"):
        if not isinstance(record.get(key), str):
            raise DataError(f"line {line_no}: missing or non-string {key!r}")
    reference = {k: v for k, v in record.items() if k not in _NOT_REFERENCE}
    problem = Problem(id=str(record.get("id", f"line-{line_no}")), prompt=str(record.get("prompt", "")),
                      verifier=record["verifier"], reference=reference)
    return problem, Completion(text=record["completion"])


def _read(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line.rstrip("\n")


def _load_verifiers(path: Path, options: Mapping[str, Mapping[str, Any]]) -> tuple[dict, dict]:
    """Build every verifier the file names; those that cannot be built are reported per line."""
    names = set()
    for _, line in _read(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("verifier"), str):
            names.add(record["verifier"])
    verifiers: dict[str, Verifier] = {}
    failures: dict[str, str] = {}
    for name in sorted(names):
        try:
            verifiers[name] = make_verifier(name, options.get(name))
        except (PluginError, ConfigError) as exc:
            failures[name] = str(exc)
    return verifiers, failures


def _verdict_fields(result: Verdict | InfraError | BadReferenceError) -> dict[str, Any]:
    if isinstance(result, Verdict):
        return {"reward": result.reward, "passed": result.passed, "status": result.status,
                "info": dict(result.info)}
    status = "bad_reference" if isinstance(result, BadReferenceError) else "error"
    return {"reward": 0.0, "passed": False, "status": status,
            "info": {"error": type(result).__name__, "message": str(result)[-2000:]}}


def _failed(status: str, message: str) -> dict[str, Any]:
    return {"reward": 0.0, "passed": False, "status": status, "info": {"error": message}}


def _verify_chunk(pool: VerifierPool | None, chunk: list[tuple[int, str]],
                  failures: Mapping[str, str], on_done) -> list[dict[str, Any]]:
    """Output records for one chunk of input lines, in order."""
    out: list[dict[str, Any] | None] = [None] * len(chunk)
    todo: list[tuple[int, Problem, Completion]] = []
    for k, (line_no, line) in enumerate(chunk):
        try:
            record = json.loads(line)
            problem, completion = case_of(record, line_no)
        except json.JSONDecodeError as exc:
            message = f"line {line_no}: invalid JSON: {exc}"
            out[k] = {"line": line_no, "raw": line, **_failed("malformed", message)}
            on_done()
            continue
        except DataError as exc:
            kept = record if isinstance(record, dict) else {"line": line_no, "raw": line}
            out[k] = {**kept, **_failed("malformed", str(exc))}
            on_done()
            continue
        if problem.verifier in failures or pool is None:
            out[k] = {**record, **_failed("unknown_verifier", failures.get(problem.verifier, "none"))}
            on_done()
            continue
        out[k] = record
        todo.append((k, problem, completion))
    if todo:
        try:
            results = pool.verify([p for _, p, _ in todo], [c for _, _, c in todo],
                                  on_done=lambda _i: on_done())
        except VerifierError as exc:  # workers cannot run at all: every case of the chunk fails
            results = [exc] * len(todo)
            for _ in todo:
                on_done()
        for (k, _, _), result in zip(todo, results):
            out[k] = {**out[k], **_verdict_fields(result)}
    return out  # type: ignore[return-value]


def verify_file(input_path: str | Path, output_path: str | Path, *, workers: int = 2,
                timeout_s: float = 10.0, memory_mb: int = 2048,
                options: Mapping[str, Mapping[str, Any]] | None = None,
                progress: bool = True) -> Summary:
    """Verify every line of `input_path` into `output_path`; returns the run's `Summary`."""
    src, dst = Path(input_path), Path(output_path)
    if not src.is_file():
        raise ConfigError(f"input file {src} does not exist")
    total = sum(1 for _ in _read(src))
    verifiers, failures = _load_verifiers(src, options or {})
    summary, start = Summary(), time.monotonic()
    bar = _progress_bar(total, progress)
    pool = VerifierPool(verifiers, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb) \
        if verifiers else None
    try:
        with dst.open("w", encoding="utf-8") as out:
            chunk: list[tuple[int, str]] = []
            for item in _read(src):
                chunk.append(item)
                if len(chunk) == CHUNK_LINES:
                    _write(out, _verify_chunk(pool, chunk, failures, bar.update), summary)
                    chunk = []
            _write(out, _verify_chunk(pool, chunk, failures, bar.update), summary)
    finally:
        if pool is not None:
            stats = pool.take_stats()
            summary.engine_outages = int(stats["verify/engine_outages"])
            summary.outage_s = stats["verify/outage_s"]
            pool.close()
        bar.close()
    summary.elapsed_s = time.monotonic() - start
    return summary


def _write(out, records: list[dict[str, Any]], summary: Summary) -> None:
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        summary.add(record["status"], float(record["reward"]), bool(record["passed"]))
    out.flush()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="case", desc="verify", dynamic_ncols=True)
