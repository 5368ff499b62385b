"""Rollout throughput and reward statistics: the HF engine (fp32, bf16; its own loop, or
`generate` with the `-generate` labels) and the vLLM engine side by side.

The same prompts for every engine: the first `--prompts` problems of the default task's train
split, `--n` samples each, at most `--max-new-tokens` tokens, temperature 1, seeded. For each
engine it prints, as JSON: the engine's start time (building it: for vLLM the engine process,
the weight snapshot and the KV cache), the first call (warm-up, not counted), and the steady state
over `--rounds` further calls (completion tokens per second); then the reward statistics of every
sample it drew (mean, standard error, pass rate) as judged by the task's verifier, so that the
engines can be compared within sampling noise. `vllm_over_hf_bf16` is the steady-state ratio.

    python benchmarks/rollout.py                                 # hf-fp32, hf-bf16, vllm
    python benchmarks/rollout.py --engines vllm --model smollm2-135m --rounds 3

vLLM runs its engine in a spawned process: this script (like every entry point) keeps its work
under `if __name__ == "__main__"`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

ENGINES = {"hf-fp32": ("hf", "same", {}), "hf-bf16": ("hf", "bfloat16", {}),  # the HF engine's default loop
           "hf-fp32-generate": ("hf", "same", {"loop": "generate"}),
           "hf-bf16-generate": ("hf", "bfloat16", {"loop": "generate"}), "vllm": ("vllm", "bfloat16", {})}


def run_engine(label, model, tokenizer, problems, pool, args):
    from rlvr.components import build_engine
    from rlvr.rollout.base import SamplingParams
    from rlvr.scoring import outcome

    name, dtype, options = ENGINES[label]
    options = {**options, "kv_cache_gb": args.kv_cache_gb} if name == "vllm" else options
    t0 = time.perf_counter()
    engine = build_engine(name, model, tokenizer, dtype=dtype, options=options)
    start_s = time.perf_counter() - t0
    prompts = [p.prompt for p in problems]
    try:
        params = SamplingParams(n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=args.seed)
        t0 = time.perf_counter()
        groups = [engine.generate(prompts, params)]
        first_s = time.perf_counter() - t0
        tokens, seconds = 0, 0.0
        for r in range(args.rounds):
            t0 = time.perf_counter()
            groups.append(engine.generate(prompts, SamplingParams(
                n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=args.seed + 1 + r)))
            seconds += time.perf_counter() - t0
            tokens += sum(len(c.completion_ids) for g in groups[-1] for c in g)
    finally:
        engine.close()
    completions = [c for call in groups for g in call for c in g]
    outcomes = [outcome(x) for x in pool.verify([p for _ in groups for p in problems for _ in range(args.n)],
                                                completions)]
    rewards = [o.reward for o in outcomes if o.scored]
    mean = sum(rewards) / len(rewards)
    var = sum((r - mean) ** 2 for r in rewards) / max(len(rewards) - 1, 1)
    return {
        "engine": name, "dtype": dtype, "start_s": round(start_s, 1), "first_call_s": round(first_s, 1),
        "steady_tokens": tokens, "steady_s": round(seconds, 2),
        "steady_tokens_per_s": round(tokens / seconds, 1),
        "samples": len(completions), "reward_mean": round(mean, 4),
        "reward_stderr": round(math.sqrt(var / len(rewards)), 4),
        "pass_rate": round(sum(bool(o.passed) for o in outcomes if o.scored) / len(rewards), 4),
        "completion_len_mean": round(sum(len(c.completion_ids) for c in completions) / len(completions), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="hf-fp32,hf-bf16,vllm", help=f"comma-separated, of {list(ENGINES)}")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="timed calls after the warm-up call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kv-cache-gb", type=float, default=2.0)
    args = parser.parse_args()

    import torch

    from rlvr.components import build_pool, task_problems
    from rlvr.config import Config
    from rlvr.models import load_model, load_tokenizer

    cfg = Config()
    problems = task_problems(cfg.task.name, cfg.task.options, "train", limit=args.prompts)
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    results = {"model": args.model, "task": cfg.task.name, "prompts": len(problems), "n": args.n,
               "max_new_tokens": args.max_new_tokens, "rounds": args.rounds,
               "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "engines": {}}
    with build_pool(problems, cfg.task.verifier_options, cfg.verify).start() as pool:
        for label in args.engines.split(","):
            results["engines"][label] = run_engine(label, model, tokenizer, problems, pool, args)
            print(json.dumps({label: results["engines"][label]}), flush=True)
    e = results["engines"]
    if "vllm" in e and "hf-bf16" in e:
        results["vllm_over_hf_bf16"] = round(e["vllm"]["steady_tokens_per_s"] / e["hf-bf16"]["steady_tokens_per_s"], 2)
    if "vllm" in e and "hf-fp32" in e:
        results["vllm_over_hf_fp32"] = round(e["vllm"]["steady_tokens_per_s"] / e["hf-fp32"]["steady_tokens_per_s"], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
