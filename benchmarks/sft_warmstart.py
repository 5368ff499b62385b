"""The SFT warm start, measured: worked demonstrations -> `rlvr sft` -> `rlvr eval` of base and SFT model.

1. writes `--demos` worked column-addition demonstrations of 2-digit train problems
   (`rlvr.tasks.demos`, never a held-out problem) into RUN_DIR/demos.jsonl;
2. runs `rlvr sft --config benchmarks/sft_add2.yaml` on them (RUN_DIR/sft);
3. evaluates the base model and RUN_DIR/sft/final with `rlvr eval` on the same held-out 2-digit
   problems, same sampling settings (strict integer verifier: only a boxed integer counts), and
   re-scores the same samples with the lenient check (the last boxed, else the last integer);

then prints JSON: per model the strict boxed-format rate (samples with a boxed integer), strict
and lenient pass@1, mean completion length; the SFT run's wall time, eval-loss curve and steps;
and the machine's load average before and after.

    python benchmarks/sft_warmstart.py --output-dir runs/sft-warmstart
    python benchmarks/sft_warmstart.py --demos 200 -- --epochs=3 --optim.lr=1e-4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASK_OPTIONS = {"level": 2, "test_size": 50}


def rescore_lenient(samples: Path, answers: dict[str, str]) -> float:
    """pass@1 of the saved samples under the lenient integer check (mean over samples)."""
    from rlvr.types import Completion, Problem
    from rlvr.verifiers.integer import IntegerVerifier

    lenient = IntegerVerifier(mode="lenient")
    rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    hits = [lenient.verify(Problem(id=r["problem_id"], prompt="", verifier="integer",
                                   reference={"answer": answers[r["problem_id"]]}), Completion(r["text"])).passed
            for r in rows]
    return sum(hits) / max(len(hits), 1)


def evaluate(run_dir: Path, final: Path, n: int, max_new_tokens: int) -> dict[str, dict[str, float]]:
    from rlvr.tasks.arithmetic import ArithmeticTask

    out = run_dir / "eval"
    cmd = [sys.executable, "-m", "rlvr.cli", "eval", "--task", "arithmetic", "--task-options",
           json.dumps(TASK_OPTIONS), "--verifier-options", "{mode: strict}", "-n", str(n), "-k", "1",
           "--temperature", "1.0", "--max-new-tokens", str(max_new_tokens), "--seed", "0", "--out", str(out),
           "--no-plot", "--no-progress", "--model", "base=smollm2-135m", "--model", f"sft={final}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    answers = {p.id: p.reference["answer"] for p in ArithmeticTask(**TASK_OPTIONS).problems("test")}
    result = {}
    for m in json.loads((out / "results.json").read_text())["models"]:
        r = m["report"]
        result[m["label"]] = {
            "strict_boxed_rate": round(1 - r["statuses"].get("no_answer", 0) / r["num_samples"], 4),
            "strict_pass@1": round(r["pass@1"], 4), "strict_pass@1_stderr": r["pass@1_stderr"],
            "lenient_pass@1": round(rescore_lenient(out / "samples" / f"{m['label']}.jsonl", answers), 4),
            "mean_new_tokens": round(r["new_tokens"] / r["num_samples"], 1),
            "truncated_frac": round(r["truncated_frac"], 3), "samples": r["num_samples"]}
    result["eval_wall_s"] = round(wall, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--demos", type=int, default=400, help="worked demonstrations to generate")
    parser.add_argument("-n", type=int, default=4, help="samples per held-out problem in the eval")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("sft_args", nargs="*", help="overrides for rlvr sft (after --)")
    args = parser.parse_args()
    run_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="rlvr-sft-warmstart-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    from rlvr.tasks.demos import demonstrations, write_jsonl

    demos = write_jsonl(demonstrations(level=2, n=args.demos, seed=0, test_size=TASK_OPTIONS["test_size"]),
                        run_dir / "demos.jsonl")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "sft", "--config", str(HERE / "sft_add2.yaml"),
                           f"--data.train_file={demos}", f"--output_dir={run_dir / 'sft'}", "--overwrite",
                           "--log.progress=false", *args.sft_args])
    sft_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(json.dumps({"error": f"rlvr sft exited {proc.returncode}"}))
        return 1
    load_after_sft = os.getloadavg()
    rows = [json.loads(line) for line in (run_dir / "sft" / "metrics.jsonl").read_text().splitlines()]
    result = {
        "run_dir": str(run_dir), "demos": args.demos, "task_options": TASK_OPTIONS,
        "sft": {"wall_s": round(sft_wall, 1), "steps": rows[-1]["step"],
                "eval_loss": [(r["step"], round(r["eval/loss"], 4)) for r in rows if "eval/loss" in r],
                "mean_step_s": round(sum(r.get("time/step_s", 0) for r in rows) / max(len(rows) - 1, 1), 2)},
        "eval": evaluate(run_dir, run_dir / "sft" / "final", args.n, args.max_new_tokens),
        "eval_settings": {"n": args.n, "temperature": 1.0, "max_new_tokens": args.max_new_tokens,
                          "verifier": "integer, strict", "problems": TASK_OPTIONS["test_size"]},
        "load_average": {"before": load_before, "after_sft": load_after_sft, "after_eval": os.getloadavg()},
        "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
