"""Train a reward model on the synthetic addition preference set, and time it.

Writes the set with `rlvr rm synth` (right sum chosen, a wrong one rejected; held-out questions
never trained on), runs `rlvr rm train` on it from the embedded model, then reads the run's
`metrics.jsonl` and prints JSON: the held-out pairwise accuracy at each eval (step, seconds since
the start of the command, accuracy, loss), the wall time of the whole command (model loading and
the final statistics included), training pairs per second, and the machine's load average before
and after (the CPU may be shared).

    python benchmarks/reward_model.py                              # the defaults below
    python benchmarks/reward_model.py --kind concise -- --steps=40 --optim.lr=1e-5

Arguments after `--` go to `rlvr rm train` and override the settings below.
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

# the run's settings: the command's defaults except where a short CPU run needs otherwise
# (LoRA: on a CPU the full AdamW step over 135M weights costs as much as the forward pass)
TRAIN_ARGS = ["--model.lora.enabled=true", "--optim.lr=2e-4", "--batch_pairs=8", "--optim.micro_batch_size=16",
              "--optim.warmup_steps=2", "--eval.every=8", "--eval.at_start=false", "--checkpoint.every=0",
              "--data.max_length=128", "--log.tensorboard=false", "--stats_max_pairs=200"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-prompts", type=int, default=300)
    parser.add_argument("--eval-prompts", type=int, default=20)
    parser.add_argument("--pairs-per-prompt", type=int, default=2)
    parser.add_argument("--kind", default="sum", choices=("sum", "concise"))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("train_args", nargs="*", help="arguments for rlvr rm train (after --)")
    args = parser.parse_args()
    root = Path(args.output_dir or tempfile.mkdtemp(prefix="rlvr-rm-bench-"))
    data, run_dir = root / "data", root / "run"
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rlvr.cli", "rm", "synth", "--out", str(data), "--kind", args.kind,
                    "--train-prompts", str(args.train_prompts), "--eval-prompts", str(args.eval_prompts),
                    "--pairs-per-prompt", str(args.pairs_per_prompt), "--seed", str(args.seed)], check=True)
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "rm", "train", f"--output_dir={run_dir}",
                           f"--data.train_file={data / 'train.jsonl'}", f"--data.eval_file={data / 'eval.jsonl'}",
                           f"--steps={args.steps}", f"--seed={args.seed}", "--log.progress=false",
                           *TRAIN_ARGS, *args.train_args])
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(json.dumps({"error": f"rlvr rm train exited {proc.returncode}"}))
        return 1
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [{"step": r["step"], "elapsed_s": round(r["time/elapsed_s"], 1),
              "accuracy": round(r["eval/accuracy"], 4), "loss": round(r["eval/loss"], 4)}
             for r in rows if "eval/accuracy" in r]
    trained = [r for r in rows if "train/pairs" in r]
    pairs, step_s = sum(r["train/pairs"] for r in trained), sum(r["time/step_s"] for r in trained)
    reached = next((c for c in curve if c["accuracy"] >= args.target), None)
    stats = json.loads((run_dir / "final" / "reward_stats.json").read_text())
    print(json.dumps({
        "kind": args.kind, "train_pairs": stats["pairs"], "eval_pairs": next((r["eval/pairs"] for r in reversed(rows) if "eval/pairs" in r), 0),
        "steps": len(trained), "final_accuracy": curve[-1]["accuracy"] if curve else None,
        "target": args.target, "reached_target_at": reached, "wall_s": round(wall, 1),
        "train_pairs_per_s": round(pairs / max(step_s, 1e-9), 2), "curve": curve,
        "reward_mean": stats["mean"], "reward_std": stats["std"],
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""), "run_dir": str(run_dir),
        "train_args": TRAIN_ARGS + args.train_args,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
