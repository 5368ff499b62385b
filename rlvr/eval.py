"""Evaluation: sample n completions per problem, score them, summarise pass@k, maj@k, reward.

- `pass_at_k(n, c, k)`: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), in
  its numerically stable product form 1 - prod_{i=n-c+1..n} (1 - k/i). Defined for k <= n only.
  (The naive 1 - (1 - c/n)^k is biased and is not used anywhere.)
- `maj_at_k(votes, k)`: the expected accuracy of a majority vote over k of the n samples, drawn
  uniformly without replacement; ties are broken uniformly at random (so a tie scores the fraction
  of tied answers that are right). Exact by enumeration when C(n, k) is small, else a seeded
  Monte-Carlo estimate. Samples without an extracted answer do not vote.
- `evaluate(...)`: the one function both `rlvr eval` and the periodic held-out evaluation of
  `rlvr train` call. With `samples_path` every verified sample is appended to a JSONL file as soon
  as its chunk is done, and a later call with the same file only samples what is missing: an
  interrupted evaluation resumes where it stopped.

Completions are scored through the scoring seam (`rlvr.scoring.Scorer`: the verifier pool, a
reward model, or both; a bare verifier pool is adapted). A sample whose scorer has no notion of
correct (`passed` None: a reward model) counts in the mean reward but not in pass@k or maj@k: a
problem's pass@k is over its *judged* samples (`judged` in its row), a problem with none has no
pass@k, and pass@k over problems none of which is judged is None, never 0.

Samples whose verification hit an infrastructure error, or whose problem has a reference its
verifier cannot read, are not scored: they are left out of their problem's n, counted in
`infra_errors` / `bad_references`, and retried by a resumed evaluation. A problem with fewer than
k scored samples is left out of pass@k and maj@k and counted in `pass@k_dropped`. This module does not
load models or write reports (see `rlvr.report`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import statistics
import time
import warnings
import zlib
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rlvr.rollout.base import RolloutEngine, SamplingParams
from rlvr.scoring import INFRA, Scorer, answer_of, as_scorer, outcome
from rlvr.types import Problem

__all__ = ["pass_at_k", "maj_at_k", "answer_of", "evaluate", "summarise", "load_samples", "append_jsonl"]

MAJ_EXACT_LIMIT = 2000  # enumerate all k-subsets up to this many, else sample this many


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (requires k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def _vote(subset: Iterable[tuple[str | None, bool]]) -> float:
    counts: Counter[str] = Counter()
    right: dict[str, bool] = {}
    for answer, passed in subset:
        if answer is not None:
            counts[answer] += 1
            right[answer] = right.get(answer, False) or passed
    if not counts:
        return 0.0
    top = max(counts.values())
    tied = [a for a, c in counts.items() if c == top]
    return sum(right[a] for a in tied) / len(tied)


def maj_at_k(votes: Sequence[tuple[str | None, bool]], k: int, seed: int = 0) -> float | None:
    """Expected majority-vote accuracy over k of the samples; `votes` are (answer, passed) pairs.

    None when no sample has an answer (e.g. code tasks): majority voting is undefined there.
    """
    n = len(votes)
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs 1 <= k <= n, got n={n} k={k}")
    if all(a is None for a, _ in votes):
        return None
    if math.comb(n, k) <= MAJ_EXACT_LIMIT:
        subsets: Iterable[Sequence[int]] = itertools.combinations(range(n), k)
        total = math.comb(n, k)
    else:
        rng = random.Random(seed)
        subsets = (rng.sample(range(n), k) for _ in range(MAJ_EXACT_LIMIT))
        total = MAJ_EXACT_LIMIT
    return sum(_vote(votes[i] for i in s) for s in subsets) / total


# ---------------------------------------------------------------- samples on disk


def load_samples(path: str | Path, problem_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Saved, successfully verified samples of `path` for the given problems (others are ignored;
    a torn last line from an interrupted write is skipped; infra-error samples are dropped, so
    they are sampled again)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    path = Path(path)
    if not path.is_file():
        return out
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{lineno}: unreadable sample line skipped (it is sampled again)")
                continue
            if isinstance(rec, dict) and rec.get("problem_id") in problem_ids \
                    and "reward" in rec:
                out[rec["problem_id"]].append(rec)
    return out


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Append records as JSON lines and fsync; a torn last line (an interrupted write) is ended
    first, so it cannot swallow the next record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as f:  # a write cut off mid-line must not swallow the next record
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with path.open("a", encoding="utf-8") as f:
        if torn:
            f.write("\n")
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _chunk_seed(params: SamplingParams, first_id: str, done: int) -> int | None:
    """A distinct, reproducible seed per chunk, so a resumed run does not redraw the same samples."""
    if params.seed is None:
        return None
    return zlib.crc32(f"{params.seed}|{first_id}|{done}".encode()) & 0x7FFFFFFF


def _sample_and_score(engine: RolloutEngine, scorer: Scorer, chunk: list[tuple[Problem, int]],
                      params: SamplingParams) -> list[dict[str, Any]]:
    """Sample the missing completions of each (problem, already done) pair, score, make records.

    Each record carries its share of the chunk's sampling and verification time, so that totals
    over a resumed evaluation add up."""
    sp = replace(params, n=params.n - chunk[0][1], seed=_chunk_seed(params, chunk[0][0].id, chunk[0][1]))
    t0 = time.perf_counter()
    groups = engine.generate([p.prompt for p, _ in chunk], sp)
    t1 = time.perf_counter()
    flat = [(p, done + j, c) for (p, done), g in zip(chunk, groups) for j, c in enumerate(g)]
    verdicts = scorer.score([p for p, _, _ in flat], [c for _, _, c in flat])
    share = 1.0 / max(1, len(flat))
    gen_s, verify_s = (t1 - t0) * share, (time.perf_counter() - t1) * share
    records = []
    for (p, index, c), v in zip(flat, verdicts):
        rec: dict[str, Any] = {"problem_id": p.id, "index": index, "text": c.text,
                               "finish_reason": c.finish_reason, "num_tokens": len(c.completion_ids),
                               "generate_s": round(gen_s, 4), "verify_s": round(verify_s, 4)}
        o = outcome(v)
        if o.scored:
            rec.update(reward=o.reward, passed=o.passed, status=o.status, answer=o.answer)
        else:
            rec["infra_error" if o.status == INFRA else "bad_reference"] = o.error
        records.append(rec)
    return records


def evaluate(engine: RolloutEngine, problems: Sequence[Problem], scorer: Any, *, n: int,
             params: SamplingParams, ks: Sequence[int] = (1,), samples_path: str | Path | None = None,
             chunk_problems: int = 0, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Sample `n` completions per problem, score them with `scorer` (a `Scorer`, or a verifier
    pool, which is adapted), and summarise.

    `samples_path`: append every sample there and resume from it. `chunk_problems`: problems per
    generate call (0: enough for about 64 sequences). `progress(k)` is called after every chunk
    with the number of problems it finished. Returns `summarise(...)` with this call's
    `infra_errors` and `bad_references`.
    """
    params, scorer = replace(params, n=n), as_scorer(scorer)
    ids = {p.id for p in problems}
    saved = load_samples(samples_path, ids) if samples_path else defaultdict(list)
    todo = [(p, len(saved[p.id])) for p in problems if len(saved[p.id]) < n]
    if progress and len(todo) < len(problems):
        progress(len(problems) - len(todo))
    size = chunk_problems or max(1, 64 // n)
    unscored: Counter[str] = Counter()
    todo.sort(key=lambda item: item[1])  # chunks share one "already done" count, hence one n
    for done, group in itertools.groupby(todo, key=lambda item: item[1]):
        group = list(group)
        for start in range(0, len(group), size):
            chunk = group[start:start + size]
            records = _sample_and_score(engine, scorer, chunk, params)
            if samples_path:
                append_jsonl(Path(samples_path), records)
            for rec in records:
                if "reward" in rec:
                    saved[rec["problem_id"]].append(rec)
                else:
                    unscored["infra_error" in rec] += 1
            if progress:
                progress(len(chunk))
    report = summarise(problems, saved, n=n, ks=ks)
    report["infra_errors"], report["bad_references"] = unscored[True], unscored[False]
    return report


def summarise(problems: Sequence[Problem], samples: dict[str, list[dict[str, Any]]], *, n: int,
              ks: Sequence[int]) -> dict[str, Any]:
    """Metrics over problems from their verified sample records (first `n` of each problem).

    pass@k and maj@k average over the problems with at least k judged samples (scored, with a
    notion of correct: `passed` not None); `*_stderr` is the standard error of that mean across
    problems. With no judged sample at all (everything scored by a reward model) pass@k is None,
    not 0. Returns the top-level metrics, `unjudged_samples` and `problems`.
    """
    rows, rewards, statuses, truncated, totals = [], [], Counter(), 0, Counter()
    for p in problems:
        recs = sorted(samples.get(p.id, []), key=lambda r: r["index"])[:n]
        votes = [(r.get("answer"), bool(r["passed"])) for r in recs if r.get("passed") is not None]
        row: dict[str, Any] = {"id": p.id, "n": len(recs), "judged": len(votes),
                               "correct": sum(v for _, v in votes),
                               "mean_reward": statistics.fmean([r["reward"] for r in recs]) if recs else None,
                               "statuses": dict(Counter(r["status"] for r in recs))}
        for k in ks:
            row[f"pass@{k}"] = pass_at_k(len(votes), row["correct"], k) if len(votes) >= k else None
            row[f"maj@{k}"] = maj_at_k(votes, k) if len(votes) >= k else None
        row["example"] = next((r["text"] for r in recs if r["passed"]), recs[0]["text"] if recs else None)
        rewards += [r["reward"] for r in recs]
        statuses.update(row["statuses"])
        truncated += sum(r["finish_reason"] == "length" for r in recs)
        for key in ("generate_s", "verify_s", "num_tokens"):
            totals[key] += sum(r.get(key, 0) for r in recs)
        totals["timed"] += sum("generate_s" in r for r in recs)
        rows.append(row)
    judged = sum(r["judged"] for r in rows)
    report: dict[str, Any] = {"n": n, "ks": list(ks), "num_problems": len(problems),
                              "num_samples": len(rewards), "unjudged_samples": len(rewards) - judged,
                              "infra_errors": 0, "bad_references": 0,
                              "mean_reward": statistics.fmean(rewards) if rewards else 0.0,
                              "truncated_frac": truncated / len(rewards) if rewards else 0.0,
                              "statuses": dict(statuses.most_common()),
                              "time/generate_s": round(totals["generate_s"], 2),
                              "time/verify_s": round(totals["verify_s"], 2),
                              "new_tokens": totals["num_tokens"], "timed_samples": totals["timed"]}
    for k in ks:
        for metric in ("pass", "maj"):
            vals = [r[f"{metric}@{k}"] for r in rows if r[f"{metric}@{k}"] is not None]
            empty = 0.0 if metric == "pass" and judged else None  # undefined without answers / judged samples
            report[f"{metric}@{k}"] = statistics.fmean(vals) if vals else empty
            report[f"{metric}@{k}_stderr"] = (statistics.stdev(vals) / math.sqrt(len(vals))
                                             if len(vals) > 1 else None)
        report[f"pass@{k}_dropped"] = sum(r["judged"] < k for r in rows)  # too few judged samples
    report["problems"] = rows
    return report
