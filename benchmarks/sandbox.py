"""Sandbox overhead and verification throughput for trivial programs; prints JSON.

Side by side in one run:
- `docker_pooled`: DockerSandbox with its warm pool (the default);
- `docker_fresh`: DockerSandbox with `pooled=False`, a new container per run;
- `subprocess`: SubprocessSandbox (no isolation), the floor of what starting Python costs.

For each: per-run overhead (host wall time of `run()` on `pass`, p50/p99 in ms, and the part
spent inside the program), and verifications of a trivial HumanEval-style problem through
`CodeVerifier` (which runs the test process and the candidate process of
`rlvr.verifiers.code.runner` in one sandbox run): p50/p99 ms per verification and verifications
per second, sequentially and through `VerifierPool` with `--workers` processes.

    python benchmarks/sandbox.py [--runs 200] [--fresh-runs 20] [--verifications 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rlvr.sandbox.base import Limits, Program  # noqa: E402
from rlvr.types import Completion, Problem  # noqa: E402
from rlvr.verifiers.code import CodeVerifier  # noqa: E402
from rlvr.verifiers.pool import VerifierPool  # noqa: E402

LIMITS = Limits(timeout_s=10)
PROBLEM = Problem("add", "", "code", {"tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
                                      "test_format": "assert", "entry_point": "add"})
COMPLETION = Completion("```python\ndef add(a, b):\n    return a + b\n```")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def overhead(sandbox, runs: int) -> dict:
    sandbox.run(Program("pass"), LIMITS)  # warm up (starts the pooled container)
    walls, inside = [], []
    start = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        result = sandbox.run(Program("pass"), LIMITS)
        walls.append(time.perf_counter() - t0)
        inside.append(result.wall_s)
    total = time.perf_counter() - start
    return {"runs": runs, "p50_ms": round(statistics.median(walls) * 1e3, 1),
            "p99_ms": round(percentile(walls, 0.99) * 1e3, 1),
            "program_p50_ms": round(statistics.median(inside) * 1e3, 1),
            "runs_per_s": round(runs / total, 1)}


def verifications(backend: str, options: dict, count: int, workers: int) -> dict:
    verifier = CodeVerifier(sandbox=backend, sandbox_options=options)
    verifier.verify(PROBLEM, COMPLETION)  # warm up
    start, walls, passed = time.perf_counter(), [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        passed += verifier.verify(PROBLEM, COMPLETION).passed
        walls.append(time.perf_counter() - t0)
    sequential = count / (time.perf_counter() - start)
    close = getattr(verifier.sandbox, "close", None)
    if close:
        close()
    with VerifierPool({"code": CodeVerifier(sandbox=backend, sandbox_options=options)},
                      workers=workers, timeout_s=60) as pool:
        pool.verify([PROBLEM] * workers, [COMPLETION] * workers)  # start workers and containers
        start = time.perf_counter()
        results = pool.verify([PROBLEM] * count, [COMPLETION] * count)
        parallel = count / (time.perf_counter() - start)
    passed += sum(getattr(r, "passed", False) for r in results)
    return {"verifications": count, "all_passed": passed == 2 * count,
            "verify_p50_ms": round(statistics.median(walls) * 1e3, 1),
            "verify_p99_ms": round(percentile(walls, 0.99) * 1e3, 1),
            "sequential_per_s": round(sequential, 1), f"pool_{workers}_workers_per_s": round(parallel, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--fresh-runs", type=int, default=20)
    parser.add_argument("--verifications", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from rlvr.sandbox.docker import DockerSandbox
    from rlvr.sandbox.subprocess import SubprocessSandbox

    report: dict = {"cpus": len(os.sched_getaffinity(0))}
    with DockerSandbox(pool_size=1) as pooled:
        report["runtime"] = pooled.runtime_in_use
        report["docker_pooled"] = overhead(pooled, args.runs)
    with DockerSandbox(pooled=False) as fresh:
        report["docker_fresh"] = overhead(fresh, args.fresh_runs)
    report["subprocess"] = overhead(SubprocessSandbox(), args.runs)
    report["docker_pooled"].update(verifications("docker", {"pool_size": 1}, args.verifications,
                                                 args.workers))
    report["docker_fresh"].update(verifications("docker", {"pooled": False},
                                                max(args.fresh_runs, args.workers), args.workers))
    report["subprocess"].update(verifications("subprocess", {}, args.verifications, args.workers))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
