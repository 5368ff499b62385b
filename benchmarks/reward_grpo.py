"""GRPO on an open-ended toy task scored only by a learned reward model; prints JSON.

    python benchmarks/reward_grpo.py --reward-model runs/rm-add/final [--policy smollm2-135m]
        [--steps 16] [--with-penalty] [--out runs/reward_grpo]

The task: two-digit addition questions asked plainly ("What is 37 + 45?", no answer format, no
reference), written to OUT/prompts-{train,test}.jsonl and loaded by the `file` task with
`verifier: reward_model`, so the reward model is the only scorer (`task.verifier=reward_model`).
Prompts are chat messages, as `rlvr rm synth` pairs are encoded by `rlvr rm train`.

It runs `rlvr train` with KL to the initial model (grpo.beta, default 0.04) and reports, from the
run's metrics.jsonl: the held-out reward-model score (`eval/mean_reward`) before training and at
the end; per step the training reward, mean completion length and the length guard (length per
reward quartile `guard/len_mean/q1..q4`, length/reward correlation, the rising-reward/exploding-
length warnings). `--with-penalty` runs the same again with the length penalty on
(`grpo.length_penalty_coef`, `grpo.length_penalty_target`) and reports both side by side.

A reward model for it: `rlvr rm synth --out data/rm-add --kind sum` then
`rlvr rm train --data.train_file=data/rm-add/train.jsonl --data.eval_file=data/rm-add/eval.jsonl
--output_dir=runs/rm-add` (docs/reward-model.md); or `--kind concise` for a reward model that
prefers short answers. This script trains no reward model itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path


def write_prompts(out: Path, train: int, test: int, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    pairs = set()
    while len(pairs) < train + test:
        pairs.add((rng.randint(10, 99), rng.randint(10, 99)))
    pairs = sorted(pairs)
    rng.shuffle(pairs)
    files = {}
    for split, chunk in (("train", pairs[:train]), ("test", pairs[train:])):
        path = out / f"prompts-{split}.jsonl"
        path.write_text("".join(json.dumps({"id": f"{split}-{a}+{b}", "prompt": f"What is {a} + {b}?"}) + "\n"
                                for a, b in chunk))
        files[split] = str(path)
    return files


def train(args: argparse.Namespace, files: dict[str, str], run_dir: Path, penalty: bool) -> dict:
    task_options = {"data_files": files, "columns": {"prompt": "prompt", "id": "id"},
                    "verifier": "reward_model", "prompt": {"answer_format": "none"}}
    cmd = [sys.executable, "-m", "rlvr.cli", "train", f"--output_dir={run_dir}", "--overwrite",
           f"--model.name={args.policy}", "--task.name=file", f"--task.options={json.dumps(task_options)}",
           f"--reward.model={args.reward_model}", f"--grpo.beta={args.beta}", f"--steps={args.steps}",
           f"--rollout.prompts_per_step={args.prompts}", f"--rollout.group_size={args.group}",
           f"--rollout.max_new_tokens={args.max_new_tokens}", f"--optim.lr={args.lr}",
           f"--eval.every={args.eval_every}", f"--eval.n={args.eval_n}", "--checkpoint.every=0",
           "--log.progress=false", "--verify.workers=1", f"--seed={args.seed}"]
    if penalty:
        cmd += [f"--grpo.length_penalty_coef={args.penalty_coef}",
                f"--grpo.length_penalty_target={args.penalty_target}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"rlvr train failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return summarise(run_dir, time.perf_counter() - t0)


def summarise(run_dir: Path, wall_s: float) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["step"], r["eval/mean_reward"]) for r in rows if "eval/mean_reward" in r]
    steps = [r for r in rows if r["step"] >= 1 and "reward/mean" in r]
    keys = ("reward/mean", "completion/len_mean", "completion/truncated_frac", "guard/len_reward_corr",
            *(f"guard/len_mean/q{i}" for i in range(1, 5)), "kl/ref", "guard/length_warning")
    per_step = [{"step": r["step"], **{k: round(r[k], 4) for k in keys if k in r}} for r in steps]
    first, last = steps[:3], steps[-3:]
    mean = lambda rs, k: round(sum(r[k] for r in rs) / len(rs), 3)  # noqa: E731
    return {
        "wall_s": round(wall_s, 1),
        "heldout_rm_score": {"start": evals[0][1] if evals else None, "end": evals[-1][1] if evals else None,
                             "curve": evals},
        "train_reward": {"first3": mean(first, "reward/mean"), "last3": mean(last, "reward/mean")},
        "length": {"first3": mean(first, "completion/len_mean"), "last3": mean(last, "completion/len_mean"),
                   "warnings": int(sum(r.get("guard/length_warning", 0) for r in steps))},
        "per_step": per_step,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reward-model", required=True, help="a reward model directory (rlvr rm train's final/)")
    p.add_argument("--policy", default="smollm2-135m")
    p.add_argument("--out", default="runs/reward_grpo")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--group", type=int, default=6, help="completions per prompt (G)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--lr", type=float, default=2e-6)
    p.add_argument("--beta", type=float, default=0.04)
    p.add_argument("--eval-every", type=int, default=4)
    p.add_argument("--eval-n", type=int, default=2)
    p.add_argument("--test-prompts", type=int, default=24)
    p.add_argument("--with-penalty", action="store_true", help="also run with the length penalty on")
    p.add_argument("--penalty-coef", type=float, default=0.5, help="reward units (std of the normalised reward)")
    p.add_argument("--penalty-target", type=int, default=24, help="tokens before the penalty starts")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.with_penalty and not 0 <= args.penalty_target < args.max_new_tokens:
        raise SystemExit("--penalty-target must be in [0, --max-new-tokens)")
    if not (Path(args.reward_model) / "reward_stats.json").is_file():
        raise SystemExit(f"{args.reward_model} is not a reward model (no reward_stats.json); see --help")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = write_prompts(out, train=400, test=args.test_prompts, seed=args.seed)
    result = {"reward_model": args.reward_model, "policy": args.policy, "steps": args.steps,
              "threads": os.environ.get("OMP_NUM_THREADS", "all"),
              "no_penalty": train(args, files, out / "no_penalty", penalty=False)}
    if args.with_penalty:
        result["penalty"] = train(args, files, out / "penalty", penalty=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
