"""Rubric verification throughput against a judge that answers in `--delay-s` (default 200 ms).

A chat-completions server on loopback (the scripted keyword judge of the tests) answers every
request after the delay. `--completions` (256) rubric completions of `--items` (5) judge items
each are verified through three paths, each with a cold answer cache:

- `verify_batch`: one call in this process; every completion's judge call in flight at once
  (thread pool of `judge_threads`, bounded by the judge's `max_concurrency`);
- `pool_verify`: `VerifierPool` with `--workers` processes, the way `rlvr train` verifies: the
  rubric verifier's items go to the workers in chunks (`batch_size`, default 64, spread evenly),
  each chunk through `verify_batch`;
- `pool_verify_per_item`: the same pool with `batch_size: 1`, one item per worker at a time (the
  pool before its batch path): each worker waits for one judge round trip per completion;
- `processes_verify_batch`: `--workers` spawned processes, each given an equal share through
  `verify_batch` directly (no pool: the bound the pool's batch path should come near).

Each pool is started and warmed up before the clock starts.

Printed as JSON: seconds, requests sent, the most requests in flight, and the mean reward (the
same in every path). This is a script, not a test: it does not assert the goal.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's rlvr, the test judge

from judges.judge_server import JudgeServer  # noqa: E402

from rlvr.types import Completion, Problem  # noqa: E402
from rlvr.verifiers.pool import VerifierPool  # noqa: E402
from rlvr.verifiers.rubric import RubricVerifier  # noqa: E402


def cases(n: int, items: int) -> tuple[list[Problem], list[Completion]]:
    rubric = [{"text": f"Mentions 'w{k}'", "weight": 1} for k in range(items)]
    problems = [Problem(f"p{i // 8}", f"Question {i // 8}", "rubric", {"rubric": rubric})
                for i in range(n)]
    return problems, [Completion(f"answer {i}: w0 w{i % items}") for i in range(n)]


def _share(args):
    options, problems, completions = args
    verifier = RubricVerifier(**options)
    try:
        return [r.reward for r in verifier.verify_batch(problems, completions)]
    finally:
        verifier.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--completions", type=int, default=256)
    ap.add_argument("--items", type=int, default=5)
    ap.add_argument("--delay-s", type=float, default=0.2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-per-item", action="store_true", help="leave out the slow per-item pool")
    args = ap.parse_args()
    problems, completions = cases(args.completions, args.items)
    out = {"completions": args.completions, "judge_items": args.items, "delay_s": args.delay_s,
           "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    with JudgeServer(delay_s=args.delay_s) as server:
        options = {"judge": {"type": "openai", "base_url": server.url, "max_concurrency": 64}}

        def run(name, fn):
            server.requests.clear()
            server.max_in_flight = 0
            t0 = time.perf_counter()
            rewards = fn()
            out[name] = {"seconds": round(time.perf_counter() - t0, 2),
                         "requests": len(server.requests), "max_in_flight": server.max_in_flight,
                         "reward_mean": round(sum(rewards) / len(rewards), 4)}

        verifier = RubricVerifier(**options)
        run("verify_batch", lambda: [r.reward for r in verifier.verify_batch(problems, completions)])
        verifier.close()
        for name, extra in (("pool_verify", {}), ("pool_verify_per_item", {"batch_size": 1})):
            if extra and args.skip_per_item:
                continue
            with VerifierPool({"rubric": RubricVerifier(**options, **extra)}, workers=args.workers,
                              timeout_s=60) as pool:
                pool.start(wait=True)
                run(name, lambda: [r.reward for r in pool.verify(problems, completions)])
        k = args.workers
        shares = [(options, problems[i::k], completions[i::k]) for i in range(k)]
        with mp.get_context("spawn").Pool(k) as procs:
            procs.map(_share, [(options, problems[:1], completions[:1])] * k)  # start-up, not timed
            run("processes_verify_batch", lambda: [r for part in procs.map(_share, shares) for r in part])
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
