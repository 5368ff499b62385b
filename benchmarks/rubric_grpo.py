"""A short GRPO run on the built-in rubric task, its judge asked over HTTP: does the held-out
rubric score rise, what did length do, how many judge calls and failures.

The judge is the scripted **keyword judge** of rlvr's tests (`tests/judges/judge_server.py`), a
chat-completions server on loopback: a criterion that quotes a word is met when the response
contains that word. It is a stand-in for an LLM judge (the embedded 135M model says YES to
everything), not an LLM. What is real: the rubric verifier asks it through the
OpenAI-compatible client (`rlvr.judges.openai`: HTTP, retries, deadlines, strict parsing), in
the verifier pool's worker processes, through the pool's batch path.

1. start the judge (`--delay-s` per answer, 0.2 s by default);
2. `rlvr train --config benchmarks/rubric_grpo.yaml`, the judge's URL filled in (written to
   `OUT/run_config.yaml`; other arguments go to `rlvr train`), killed past `--max-minutes`;
3. with `--items`: `rlvr eval --run` of the base and final models on the held-out split, and
   every sample re-verified here for the share of each rubric item met (deterministic items
   and the judge item apart) and the deterministic-only score.

Prints JSON (also `OUT/summary.json`): the held-out rubric score (`eval/mean_reward`,
`eval/pass@1`) at step 0 and at the end, per step the training reward, length and the length
guard's `guard/*` metrics, judge requests and their HTTP statuses, infra errors, wall times and
the load average. This is a script, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's rlvr, the test judge

from judges.judge_server import JudgeServer  # noqa: E402

STEP_KEYS = ("reward/mean", "pass_rate", "completion/len_mean", "completion/truncated_frac",
             "verify/infra_errors", "time/verify_s", "time/step_s")


def run_config(template: Path, url: str, out: Path, steps: int | None) -> Path:
    cfg = yaml.safe_load(template.read_text())
    cfg["task"]["verifier_options"]["judge"]["base_url"] = url
    cfg["output_dir"] = str(out / "run")
    if steps is not None:
        cfg["steps"] = steps
    path = out / "run_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def rlvr(args: list[str], limit_s: float, log: Path) -> tuple[int, float]:
    """Run `python -m rlvr ARGS`, output to `log`; (exit code, seconds); killed past limit_s."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-m", "rlvr", *args], stdout=fh,
                                stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    return code, round(time.perf_counter() - t0, 1)


def summarise_metrics(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    evals = [r for r in rows if "eval/mean_reward" in r]
    steps = [r for r in rows if "reward/mean" in r]
    pick = ("eval/mean_reward", "eval/pass@1", "eval/infra_errors", "time/eval_s")
    return {
        "held_out": {f"step {r['step']}": {k: round(r[k], 4) for k in pick if k in r} for r in evals},
        "steps": [{"step": r["step"], **{k: round(r[k], 4) for k in STEP_KEYS if k in r},
                   "guard": {k[6:]: round(v, 3) for k, v in r.items() if k.startswith("guard/")}}
                  for r in steps],
        "infra_errors_total": sum(r.get("verify/infra_errors", 0) + r.get("eval/infra_errors", 0)
                                  for r in rows),
    }


def item_rates(eval_dir: Path, options: dict) -> dict:
    """Per model: the share of held-out samples meeting each rubric item, the full rubric score
    and the deterministic-only score, re-verified here from `rlvr eval`'s samples."""
    from rlvr.tasks.rubric import RubricTask
    from rlvr.types import Completion
    from rlvr.verifiers.rubric import RubricVerifier

    cfg = yaml.safe_load((eval_dir.parent / "run" / "config.yaml").read_text())  # as resolved
    problems = {p.id: p for p in RubricTask(**cfg["task"]["options"]).problems("test")}
    full, det = RubricVerifier(**options), RubricVerifier(**options, deterministic_only=True)
    out = {}
    for path in sorted((eval_dir / "samples").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        ps, cs = [problems[r["problem_id"]] for r in rows], [Completion(r["text"]) for r in rows]
        verdicts = [v for v in full.verify_batch(ps, cs) if not isinstance(v, Exception)]
        met: dict[str, list[bool]] = defaultdict(list)
        for v in verdicts:
            for item in v.info["items"]:
                if item["met"] is not None:
                    met[item["id"]].append(item["met"])
        dets = [v.reward for v in det.verify_batch(ps, cs) if not isinstance(v, Exception)]
        out[path.stem] = {"samples": len(rows), "scored": len(verdicts),
                          "rubric_score": round(sum(v.reward for v in verdicts) / len(verdicts), 4),
                          "deterministic_only_score": round(sum(dets) / len(dets), 4),
                          "met": {k: round(sum(m) / len(m), 3) for k, m in met.items()},
                          "mean_tokens": round(sum(r.get("num_tokens", 0) for r in rows) / len(rows), 1)}
    full.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "benchmarks" / "rubric_grpo.yaml"))
    ap.add_argument("--out", default="runs/rubric_grpo_bench")
    ap.add_argument("--steps", type=int, default=None, help="override the config's steps")
    ap.add_argument("--delay-s", type=float, default=0.2, help="the judge's time per answer")
    ap.add_argument("--max-minutes", type=float, default=15.0, help="kill the training run after")
    ap.add_argument("--items", action="store_true", help="also rlvr eval --run and item rates")
    args, overrides = ap.parse_known_args()  # the rest goes to rlvr train: --model.name=DIR ...
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"judge": "scripted keyword judge over HTTP (a stand-in, not an LLM)",
                     "judge_delay_s": args.delay_s, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                     "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    with JudgeServer(delay_s=args.delay_s) as server:
        config = run_config(Path(args.config), server.url, out, args.steps)
        code, seconds = rlvr(["train", "--config", str(config), *overrides], args.max_minutes * 60,
                             out / "train.log")
        summary["train"] = {"exit_code": code, "wall_s": seconds,
                            "judge_requests": len(server.requests),
                            "judge_http_statuses": {str(k): v for k, v in server.statuses.items()},
                            "judge_max_in_flight": server.max_in_flight,
                            **summarise_metrics(out / "run" / "metrics.jsonl")}
        summary["load_average_after_train"] = [round(x, 2) for x in os.getloadavg()]
        if args.items and code == 0:
            options = yaml.safe_load(config.read_text())["task"]["verifier_options"]
            code, seconds = rlvr(["eval", "--run", str(out / "run"), "--out", str(out / "eval"),
                                  "--verifier-options", json.dumps(options), "-n", "4", "-k", "1,4", "--no-plot",
                                  "--no-progress", "--fresh"], 20 * 60, out / "eval.log")
            summary["eval_after"] = {"exit_code": code, "wall_s": seconds}
            if code == 0:
                summary["eval_after"]["models"] = item_rates(out / "eval", options)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
