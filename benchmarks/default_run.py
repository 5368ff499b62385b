"""Reproduce the before/after numbers of the default `rlvr train` run, and time it.

Runs `rlvr train` (the defaults, or --config / overrides given after `--`) in a fresh run
directory, then reads its `metrics.jsonl` and prints JSON: wall time of the whole command, the
held-out pass@1 of the base model (step 0) and of the last step, the curve (step, seconds since
start, pass@1), and when pass@1 first reached the target. With --reeval N it also re-evaluates the
base and the final model on the held-out split with N samples per problem, with `rlvr eval`
(report in RUN_DIR/reeval/), for a tighter estimate than the in-run evaluation.

    python benchmarks/default_run.py                     # the default run
    python benchmarks/default_run.py --reeval 16 -- --steps=20 --optim.lr=3e-5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def reevaluate(run_dir: Path, n: int) -> dict[str, float]:
    """Base vs. final model through `rlvr eval` itself (one report, same sampling settings)."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    out = run_dir / "reeval"
    cmd = [sys.executable, "-m", "rlvr.cli", "eval", "--task", cfg["task"]["name"],
           "--task-options", json.dumps(cfg["task"]["options"]), "-n", str(n), "-k", "1",
           "--max-new-tokens", str(cfg["rollout"]["max_new_tokens"]), "--out", str(out),
           "--model", f"base={cfg['model']['name']}", "--model", f"final={run_dir / 'final'}"]
    subprocess.run(cmd, check=True)
    models = json.loads((out / "results.json").read_text())["models"]
    result = {f"{m['label']}_pass@1": m["report"]["pass@1"] for m in models}
    result["samples_per_model"] = models[0]["report"]["num_samples"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--reeval", type=int, default=0, metavar="N", help="re-evaluate with N samples")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("train_args", nargs="*", help="arguments for rlvr train (after --)")
    args = parser.parse_args()
    run_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="rlvr-default-run-"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", f"--output_dir={run_dir}",
                           "--log.progress=false", *args.train_args])
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(json.dumps({"error": f"rlvr train exited {proc.returncode}"}))
        return 1
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], round(r["time/elapsed_s"], 1), r["eval/pass@1"]) for r in rows if "eval/pass@1" in r]
    reached = next(((s, t) for s, t, p in curve if p >= args.target), None)
    result = {
        "run_dir": str(run_dir), "wall_s": round(wall, 1), "steps": rows[-1]["step"],
        "base_pass@1": curve[0][2] if curve else None, "final_pass@1": curve[-1][2] if curve else None,
        "curve": curve, "target": args.target,
        "first_step_at_target": reached[0] if reached else None,
        "seconds_to_target": reached[1] if reached else None,
        "mean_step_s": round(sum(r.get("time/step_s", 0) for r in rows) / max(len(rows) - 1, 1), 1),
    }
    if args.reeval:
        result["reeval"] = reevaluate(run_dir, args.reeval)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
