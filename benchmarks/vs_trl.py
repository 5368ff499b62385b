"""rlvr's GRPO step against TRL's `GRPOTrainer`, on the same workload, machine and threads.

The workload (issue 13): SmolLM2-135M-Instruct as rlvr loads it (the embedded default model,
dequantised), 8 prompts x G = 8 completions per step, at most 128 new tokens, temperature 1,
top-p 1, top-k off, beta = 0.04 (a frozen reference), learning rate 1e-6, one inner iteration,
token-mean loss (TRL's `loss_type="dapo"`: the sum over tokens divided by the active tokens of the
whole accumulated batch), micro-batches of 8 sequences on both sides (TRL's default). The prompt is "What is
A + B? Put the final answer in \\boxed{}." with A, B uniform in [10, 999] from `--seed`; reward 1
for the right integer in the last `\\boxed{}`, else 0 (rlvr's `integer` verifier, strict mode, and
the same reader in TRL's reward function). Both trainers walk the same 8 x `--steps` problems, each
in its own order.

Each trainer runs `--steps` steps in its own subprocess, one after the other, with the same thread
count: rlvr through `rlvr train` (its CLI entry point, in-process in the child, with a YAML config),
TRL with `use_vllm=False` and its defaults otherwise (gradient checkpointing on unless
`--trl-gradient-checkpointing off`; `both` runs TRL twice). The rlvr child starts with the
allocator the `rlvr` command preloads and the kernel-cache bounds it sets (`rlvr.allocator`:
tcmalloc where the system has it); TRL's with glibc's malloc and the libraries' cache sizes,
unless `--trl-allocator rlvr` gives it the same (like for like). TRL computes in bf16 (its default
`bf16=True`) unless `--trl-bf16 off`: on a CPU without bf16 kernels (AVX2 only) its default runs
emulated bf16 while rlvr's `auto` stays in fp32, and `off` compares the two in fp32. rlvr runs with its defaults (no
activation checkpointing) unless `--rlvr-gradient-checkpointing on` (or `both`), and with fp32 AdamW
unless `--rlvr-optim adamw_8bit` (or `both`: 8-bit moments, `optim.name`; TRL keeps its default fp32
AdamW). TRL 1.16 is installed into its own
virtual environment over the same torch and transformers (`venv --system-site-packages`, then
`pip install --no-deps`), never into rlvr's dependencies; `--wheels DIR` installs it, and any other
wheel in DIR, offline.

Output: one JSON line per trainer run (median seconds per step after the first, completion tokens
per second of generation, peak memory: VmHWM of the child on CPU, `max_memory_allocated` on CUDA,
and the median time split per phase), then one line of rlvr/TRL ratios. Where the time split comes
from:
- rlvr: its own metrics: `time/generate_s`, `time/verify_s`, and inside `time/update_s` the
  phases `time/ref_logprobs_s`, `time/policy_forward_s`, `time/backward_s`, `time/optimizer_s` and
  `time/sync_weights_s` (the sampling copy's weight sync).
- TRL: its profiling contexts (`transformers.generate`, `_get_per_token_logps_and_entropies`
  outside `compute_loss` = reference log-probs, `_calculate_rewards`, `_prepare_inputs`,
  `compute_loss` = policy forward and loss), its logged `step_time` (the sum of its
  `training_step` calls: backward = step_time - _prepare_inputs - compute_loss) and the Trainer's
  `on_pre_optimizer_step` / `on_optimizer_step` callbacks (optimizer). On CUDA the boundaries are
  synchronised, so asynchronous kernels are charged to the phase that launched them.

    python benchmarks/vs_trl.py                                   # the workload on this CPU
    python benchmarks/vs_trl.py --device cuda --random-weights --trl-gradient-checkpointing both
    python benchmarks/vs_trl.py --tiny --prompts 2 --group-size 2 --max-new-tokens 8 --steps 2
    python benchmarks/vs_trl.py -- --rollout.engine=vllm          # rlvr with more overrides

`--random-weights` builds the SmolLM2-135M architecture with seeded random weights (for machines
without the 98 MB weights; the tokenizer comes from rlvr's default model or `--tokenizer DIR`);
completions then rarely stop early. `--tiny` shrinks that model to two small layers (a smoke test).
This script does not check that the two trainers compute the same update: the tests of `rlvr.grpo`
hold rlvr's loss to its reference implementation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose rlvr is measured
TRL_VERSION = "1.16.0"
PROMPT = "What is {a} + {b}? Put the final answer in \\boxed{{}}."
MICRO_BATCH = 8  # sequences per forward/backward on both sides: TRL's default per_device_train_batch_size
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                    rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=1,
                    eos_token_id=2, pad_token_id=2)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16)
RLVR_UPDATE_HOLDS = ["ref_logprobs", "policy_forward", "backward", "optimizer"]  # inside time/update_s
RLVR_NOT_PHASES = ("time/step_s", "time/rollout_s", "time/elapsed_s", "time/eval_s")  # totals, not phases


class BenchError(Exception):
    """Set-up failed (TRL not installable, a trainer exited non-zero): printed as one line."""


# ------------------------------------------------------------------------- the workload


def write_problems(path: Path, count: int, seed: int) -> None:
    """`count` JSON lines {"prompt", "answer"} with A, B uniform in [10, 999]."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(count):
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            f.write(json.dumps({"prompt": PROMPT.format(a=a, b=b), "answer": str(a + b)}) + "\n")


def boxed_sum_reward(completions: list, answer: list[str], **_) -> list[float]:
    """TRL reward function: 1.0 when the last `\\boxed{}` holds the right integer (rlvr's reader)."""
    from rlvr.verifiers.integer import boxed_integer

    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(boxed_integer(t) == int(a)) for t, a in zip(texts, answer)]


def prepare_model(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """(rlvr's model.name, the directory TRL loads): rlvr's default model as rlvr resolves it
    (dequantised into its cache on first use), or a seeded random SmolLM2-135M (`--random-weights`)."""
    from rlvr.models import DEFAULT_MODEL, load_tokenizer, resolve_model_path

    if not (args.random_weights or args.tiny):
        return DEFAULT_MODEL, resolve_model_path(DEFAULT_MODEL)
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target = work / ("model-tiny" if args.tiny else "model-random") / f"seed-{args.seed}"
    if not (target / "model.safetensors").is_file():
        tokenizer = (AutoTokenizer.from_pretrained(args.tokenizer) if args.tokenizer
                     else load_tokenizer(DEFAULT_MODEL))
        torch.manual_seed(args.seed)
        model = LlamaForCausalLM(LlamaConfig(**{**SMOLLM2_135M, **(TINY if args.tiny else {})}))
        model.generation_config.eos_token_id = SMOLLM2_135M["eos_token_id"]
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    return str(target), str(target)


# ------------------------------------------------------------------------- the rlvr child


def rlvr_config(spec: dict) -> dict:
    """The run's config: the workload, nothing evaluated, logged or checkpointed along the way."""
    return {
        "output_dir": str(Path(spec["work"]) / "rlvr-run"), "seed": spec["seed"], "steps": spec["steps"],
        "model": {"name": spec["rlvr_model"], "device": spec["device"]},
        "task": {"name": "file", "verifier_options": {"mode": "strict"},
                 "options": {"data_files": {"train": spec["train"], "test": spec["test"]},
                             "verifier": "integer", "prompt": {"answer_format": "none"}}},
        "rollout": {"prompts_per_step": spec["prompts"], "group_size": spec["group_size"],
                    "max_new_tokens": spec["max_new_tokens"], "temperature": 1.0, "top_p": 1.0, "top_k": 0},
        "grpo": {"beta": 0.04, "loss_agg": "token-mean", "inner_steps": 1},
        "optim": {"lr": 1e-6, "micro_batch_size": spec["micro_batch"]},
        "eval": {"every": 0, "at_start": False},
        "log": {"sample_every": 0, "tensorboard": False, "progress": False},
        "checkpoint": {"every": 0},
    }


def run_rlvr(spec: dict) -> dict:
    import yaml

    from rlvr.cli import main as rlvr_main

    config = rlvr_config(spec)
    path = Path(spec["work"]) / "rlvr.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if rlvr_main(["train", "--config", str(path), "--overwrite", *spec["rlvr_args"]]) != 0:
        raise BenchError("rlvr train failed (its error is above)")
    metrics = Path(config["output_dir"]) / "metrics.jsonl"
    rows = [r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("step", 0) >= 1]
    steps = []
    for r in rows:  # every time/*_s key of the step: finer keys inside the update appear when rlvr logs them
        phases = {k[5:-2]: v for k, v in r.items() if k.startswith("time/") and k not in RLVR_NOT_PHASES}
        steps.append({"step": r["time/step_s"], **phases,
                      "other": r["time/step_s"] - r["time/rollout_s"] - r["time/update_s"],
                      "tokens": r["completion/len_mean"] * r["verify/samples"]})
    missing = [p for p in RLVR_UPDATE_HOLDS if p not in steps[0]]
    return {"steps": steps, "split_missing": missing,
            "split_note": f"update = {' + '.join(RLVR_UPDATE_HOLDS)} + the copy into the sampling model"
                          + (f"; rlvr does not log {', '.join(missing)}" if missing else "")}


# ------------------------------------------------------------------------- the TRL child


def trl_phases(cuda: bool):
    """A TrainerCallback that records, per optimizer step, the step's wall time, the optimizer
    step, TRL's logged step_time and completion length, and (through `record`) the durations of
    TRL's profiling contexts."""
    import torch
    from transformers import TrainerCallback

    class Phases(TrainerCallback):
        def __init__(self):
            self.steps: list[dict] = []
            self.stack: list[str] = []  # profiling contexts now open, outermost first
            self._t_step = self._t_opt = 0.0

        def now(self) -> float:
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        def record(self, name: str, duration: float) -> None:
            if name == "_get_per_token_logps_and_entropies":
                name = "policy_logprobs" if "compute_loss" in self.stack else "ref_logprobs"
            if self.steps:
                self.steps[-1][name] = self.steps[-1].get(name, 0.0) + duration

        def on_step_begin(self, args, state, control, **kw):
            self.steps.append({})
            self._t_step = self.now()

        def on_pre_optimizer_step(self, args, state, control, **kw):
            self._t_opt = self.now()

        def on_optimizer_step(self, args, state, control, **kw):
            self.steps[-1]["optimizer"] = self.now() - self._t_opt

        def on_step_end(self, args, state, control, **kw):
            self.steps[-1]["step"] = self.now() - self._t_step

        def on_log(self, args, state, control, logs=None, **kw):
            if self.steps and logs and "step_time" in logs:
                self.steps[-1]["trl_step_time"] = logs["step_time"]
                self.steps[-1]["completion_len"] = logs.get("completions/mean_length", 0.0)

    return Phases()


def record_profiling(phases) -> None:
    """Route TRL's profiling contexts (which report only to W&B, MLflow or Trackio) to `phases`."""
    from trl.extras import profiling

    base = profiling.ProfilingContext

    class Recorded(base):
        def __enter__(self):
            phases.stack.append(self.name.split(".", 1)[-1])  # "GRPOTrainer.compute_loss" -> "compute_loss"
            phases.now()
            return super().__enter__()

        def __exit__(self, *exc):
            phases.now()
            return super().__exit__(*exc)

        def _log_metrics(self, duration: float) -> None:
            phases.record(phases.stack.pop(), duration)

    profiling.ProfilingContext = Recorded  # profiling_context() looks the class up at each call


def run_trl(spec: dict) -> dict:
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    phases = trl_phases(spec["device"] == "cuda")
    record_profiling(phases)
    rows = [json.loads(line) for line in Path(spec["train"]).read_text().splitlines()]
    data = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                        "answer": r["answer"]} for r in rows])
    batch = spec["prompts"] * spec["group_size"]
    config = GRPOConfig(
        output_dir=str(Path(spec["work"]) / f"trl-run-{spec['variant']}"), seed=spec["seed"],
        max_steps=spec["steps"], per_device_train_batch_size=spec["micro_batch"],
        gradient_accumulation_steps=batch // spec["micro_batch"], num_generations=spec["group_size"],
        max_completion_length=spec["max_new_tokens"], temperature=1.0, top_p=1.0, top_k=0, beta=0.04,
        learning_rate=1e-6, num_iterations=1, loss_type="dapo", use_vllm=False,
        gradient_checkpointing=spec["gradient_checkpointing"], use_cpu=spec["device"] == "cpu",
        logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True,
        **({"bf16": False} if spec.get("trl_bf16") == "off" else {}))
    trainer = GRPOTrainer(model=spec["trl_model"], reward_funcs=boxed_sum_reward, args=config,
                          train_dataset=data, callbacks=[phases])
    trainer.train()
    steps = []
    for s in phases.steps:
        prepare, loss = s.get("_prepare_inputs", 0.0), s.get("compute_loss", 0.0)
        known = ("transformers.generate", "ref_logprobs", "_calculate_rewards")
        steps.append({"step": s["step"], "generate": s.get("transformers.generate", 0.0),
                      "ref_logprobs": s.get("ref_logprobs", 0.0), "reward": s.get("_calculate_rewards", 0.0),
                      "prepare_other": prepare - sum(s.get(k, 0.0) for k in known),
                      "policy_forward": loss, "backward": s.get("trl_step_time", 0.0) - prepare - loss,
                      "optimizer": s.get("optimizer", 0.0),
                      "other": s["step"] - s.get("trl_step_time", 0.0) - s.get("optimizer", 0.0),
                      "tokens": s.get("completion_len", 0.0) * batch})
    return {"steps": steps, "split_missing": [],
            "split_note": "backward = TRL's step_time - _prepare_inputs - compute_loss; policy_forward = "
                          "compute_loss; other = gradient clipping, zero_grad, the schedule"}


# ------------------------------------------------------------------------- child process entry


def peak_memory(device: str) -> dict:
    """Peak RSS of this process (VmHWM) and of its largest finished child; CUDA's peak allocation."""
    import resource

    import torch

    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    hwm_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")),
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    out = {"peak_rss_gib": hwm_kb / 2**20,
           "children_peak_rss_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20}
    if device == "cuda":
        out["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def worker(trainer: str, spec_path: str) -> int:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    try:
        result = (run_rlvr if trainer == "rlvr" else run_trl)(spec)
    except BenchError as exc:
        print(f"vs_trl: {exc}", file=sys.stderr)
        return 1
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    if trainer == "trl":
        import trl

        versions["trl"] = trl.__version__
    result.update(peak_memory(spec["device"]), torch_threads=torch.get_num_threads(), versions=versions)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------- the parent


def parent_site_line() -> str:
    """A .pth line that adds this interpreter's site directories (and their own .pth files)."""
    import site

    dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    return f"import site; list(map(site.addsitedir, {[d for d in dirs if os.path.isdir(d)]!r}))\n"


def make_venv(venv: Path) -> Path:
    """A venv over this interpreter's packages (made on first use); its interpreter.

    `venv --system-site-packages` reaches the base interpreter's packages only, so where this one
    is itself a venv (a GPU image's torch often lives in one) the new venv would see no torch: a
    .pth file adds this interpreter's site directories after the new venv's own."""
    python = venv / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise BenchError(f"cannot make a virtual environment for TRL in {venv}: "
                             f"{made.stderr.strip()[-1000:]} (Debian/Ubuntu: apt install python3-venv)")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "rlvr-parent-site.pth").write_text(parent_site_line())
    return python


def same_packages(python: Path, names: tuple[str, ...] = ("torch", "transformers")) -> None:
    """Raise unless `python` imports `names` from the same files as this interpreter."""
    import importlib.util

    ours = {name: importlib.util.find_spec(name).origin for name in names}
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps({n: importlib.util.find_spec(n).origin for n in sys.argv[1:]}))")
    seen = subprocess.run([str(python), "-c", probe, *names], capture_output=True, text=True)
    theirs = json.loads(seen.stdout) if seen.returncode == 0 else {}
    for name in names:
        if theirs.get(name) != ours[name]:
            raise BenchError(f"{python} imports {name} from {theirs.get(name) or 'nowhere'} "
                             f"({seen.stderr.strip()[-300:] or 'not found'}), not from {ours[name]} as "
                             f"this interpreter does: the two trainers would not run on the same packages")


def trl_python(work: Path, wheels: str | None) -> str:
    """The interpreter of a venv over this one's packages with TRL added (made on first use)."""
    venv = work / "trl-venv"
    python = make_venv(venv)
    same_packages(python)
    probe = [str(python), "-c", "import trl, datasets; from trl import GRPOTrainer; print(trl.__version__)"]
    found = subprocess.run(probe, capture_output=True, text=True)
    if found.returncode == 0 and found.stdout.strip() == TRL_VERSION:
        return str(python)
    install = [str(python), "-m", "pip", "install", "--no-deps", f"trl=={TRL_VERSION}"]
    if wheels:  # offline: TRL and every other wheel found there (pip picks the one for this Python)
        names = sorted({w.name.split("-")[0] for w in Path(wheels).glob("*.whl")} - {"trl"})
        install += ["--no-index", "--find-links", wheels, *names]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"cannot install TRL {TRL_VERSION} into {venv} ({' '.join(install[3:])}):\n"
                         f"{done.stderr.strip()[-2000:]}\nWithout PyPI, pass --wheels DIR holding "
                         f"trl-{TRL_VERSION}-py3-none-any.whl (pip download --no-deps trl=={TRL_VERSION}).")
    found = subprocess.run(probe, capture_output=True, text=True)
    if found.returncode != 0:
        raise BenchError(f"TRL {TRL_VERSION} is installed in {venv} but does not import:\n"
                         f"{found.stderr.strip()[-1500:]}\nInstall the missing pure-Python package "
                         f"there with `{python} -m pip install --no-deps NAME` (or put its wheel in --wheels).")
    return str(python)


def run_child(python: str, trainer: str, spec: dict) -> dict:
    """Run one trainer in its own process; its logs go to stderr, its result comes back as JSON."""
    work = Path(spec["work"])
    spec = {**spec, "result": str(work / f"result-{spec['variant']}.json")}
    spec_path = work / f"spec-{spec['variant']}.json"
    spec_path.write_text(json.dumps(spec))
    Path(spec["result"]).unlink(missing_ok=True)
    threads = str(spec["threads"])
    env = {**{k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if spec["allocator"] == "rlvr":  # as the `rlvr` command starts itself
        from rlvr.allocator import bound_shape_caches, preload_environment

        bound_shape_caches(env)
        env = preload_environment(env) or env
    t0 = time.perf_counter()
    code = subprocess.run([python, str(Path(__file__).resolve()), "--worker", trainer, "--spec", str(spec_path)],
                          env=env, stdout=sys.stderr).returncode
    if code != 0 or not Path(spec["result"]).is_file():
        raise BenchError(f"{spec['variant']}: the {trainer} child exited {code} (its output is above)")
    result = json.loads(Path(spec["result"]).read_text())
    result["process_wall_s"] = time.perf_counter() - t0
    result["allocator"] = env.get("LD_PRELOAD") or "glibc"
    return result


def summarize(variant: str, spec: dict, result: dict) -> dict:
    """Medians over the steps after the first (all steps when only one ran)."""
    timed = result["steps"][1:] or result["steps"]
    phases = [k for k in timed[0] if k not in ("step", "tokens")]
    generate = sum(s["generate"] for s in timed)
    memory = {k: round(v, 3) for k, v in result.items() if k.endswith("_gib")}
    return {
        "trainer": variant, **({"rlvr_args": spec["rlvr_args"]} if variant.startswith("rlvr") else {}),
        "device": spec["device"], "threads": result["torch_threads"],
        "steps": len(result["steps"]), "step_s": [round(s["step"], 2) for s in result["steps"]],
        "median_step_s": round(statistics.median(s["step"] for s in timed), 3),
        "gen_tokens_per_s": round(sum(s["tokens"] for s in timed) / generate, 1) if generate else None,
        "completion_len_mean": round(sum(s["tokens"] for s in timed) / len(timed) / spec["batch"], 1),
        **memory, "split_s": {k: round(statistics.median(s.get(k, 0.0) for s in timed), 3) for k in phases},
        "split_missing": result["split_missing"], "split_note": result["split_note"],
        "process_wall_s": round(result["process_wall_s"], 1), "allocator": result["allocator"],
        "versions": result["versions"],
    }


def ratios(rows: list[dict], device: str) -> dict:
    """Each rlvr run over each TRL run: step time, peak memory (RSS on CPU, CUDA allocation on GPU),
    tokens/s."""
    memory = "cuda_max_allocated_gib" if device == "cuda" else "peak_rss_gib"
    out = {}
    pairs = [(o, t) for o in rows if o["trainer"].startswith("rlvr") for t in rows if t["trainer"].startswith("trl")]
    for ours, theirs in pairs:
        out[f"{ours['trainer']}/{theirs['trainer']}"] = {
            "median_step_s": round(ours["median_step_s"] / theirs["median_step_s"], 3),
            memory: round(ours[memory] / theirs[memory], 3),
            "gen_tokens_per_s": round(ours["gen_tokens_per_s"] / theirs["gen_tokens_per_s"], 3)
            if ours["gen_tokens_per_s"] and theirs["gen_tokens_per_s"] else None}
    return {"ratios": out, "memory": memory}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=3, help="steps per trainer (the first is not timed)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of each trainer (default: this process's)")
    parser.add_argument("--trl-gradient-checkpointing", choices=["on", "off", "both"], default="on")
    parser.add_argument("--rlvr-gradient-checkpointing", choices=["on", "off", "both"], default="off",
                        help="rlvr's model.gradient_checkpointing (its default: off)")
    parser.add_argument("--rlvr-optim", choices=["adamw", "adamw_8bit", "both"], default="adamw",
                        help="rlvr's optim.name (its default: adamw; TRL's default is fp32 AdamW)")
    parser.add_argument("--trl-allocator", choices=["system", "rlvr"], default="system",
                        help="TRL's malloc and kernel caches: glibc's and the libraries' (default), or the rlvr command's")
    parser.add_argument("--trl-bf16", choices=["default", "off"], default="default",
                        help="TRL's bf16: its default (True unless fp16), or off: fp32, as rlvr computes on a "
                             "CPU without fast bf16, where TRL's default emulates it")
    parser.add_argument("--rlvr-only", action="store_true", help="measure rlvr alone (no TRL, no ratios)")
    parser.add_argument("--random-weights", action="store_true", help="SmolLM2-135M config, seeded random weights")
    parser.add_argument("--tiny", action="store_true", help="random weights, two small layers: a smoke test")
    parser.add_argument("--tokenizer", metavar="DIR",
                        help="tokenizer for --random-weights (default: rlvr's default model's)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "rlvr-vs-trl"),
                        help="scratch: TRL's venv, models, run directories (kept between runs)")
    parser.add_argument("--wheels", metavar="DIR", help="install TRL (and the other wheels here) offline")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON lines here")
    parser.add_argument("rlvr_args", nargs="*", help="more overrides for rlvr train, after --, "
                        "e.g. -- --rollout.engine=vllm")
    parser.add_argument("--worker", choices=["rlvr", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(ROOT))  # measure this checkout's rlvr, whichever one is installed
    if args.worker:
        return worker(args.worker, args.spec)
    import torch

    batch = args.prompts * args.group_size
    micro = min(MICRO_BATCH, batch)
    if batch % micro or args.steps < 1:
        print(f"vs_trl: prompts x group size ({batch}) must be a multiple of {micro}, steps >= 1", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("vs_trl: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    from rlvr.models import fast_bf16

    if args.device == "cpu" and args.trl_bf16 == "default" and not args.rlvr_only and not fast_bf16("cpu"):
        print("vs_trl: this CPU has no bf16 kernels: TRL's default bf16 is emulated here, many times slower "
              "(38 minutes a step on a 2-core AVX2 CPU), while rlvr computes in fp32; --trl-bf16 off compares "
              "the two in fp32", file=sys.stderr)
    work = Path(args.work_dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    try:
        trl = None if args.rlvr_only else trl_python(work, args.wheels)
        rlvr_model, trl_model = prepare_model(args, work)
    except BenchError as exc:
        print(f"vs_trl: {exc}", file=sys.stderr)
        return 1
    write_problems(work / "train.jsonl", args.prompts * args.steps, args.seed)
    write_problems(work / "test.jsonl", 1, args.seed + 1)  # rlvr wants a test split; never evaluated
    spec = {"work": str(work), "device": args.device, "threads": args.threads or torch.get_num_threads(),
            "steps": args.steps, "seed": args.seed, "prompts": args.prompts, "group_size": args.group_size,
            "batch": batch, "micro_batch": micro, "max_new_tokens": args.max_new_tokens,
            "rlvr_model": rlvr_model, "trl_model": trl_model, "rlvr_args": args.rlvr_args,
            "train": str(work / "train.jsonl"), "test": str(work / "test.jsonl")}
    runs = [("rlvr", "rlvr" + "-gc-on" * (gc == "on") + "-8bit" * (opt == "adamw_8bit"), sys.executable,
             {"rlvr_args": args.rlvr_args + ["--model.gradient_checkpointing=true"] * (gc == "on")
              + [f"--optim.name={opt}"] * (opt != "adamw"), "allocator": "rlvr"})
            for gc in (["off", "on"] if args.rlvr_gradient_checkpointing == "both" else [args.rlvr_gradient_checkpointing])
            for opt in (["adamw", "adamw_8bit"] if args.rlvr_optim == "both" else [args.rlvr_optim])]
    for gc in ([] if args.rlvr_only else ["on", "off"] if args.trl_gradient_checkpointing == "both"
               else [args.trl_gradient_checkpointing]):
        runs.append(("trl", f"trl-gc-{gc}" + "-fp32" * (args.trl_bf16 == "off"), trl,
                     {"gradient_checkpointing": gc == "on", "allocator": args.trl_allocator,
                      "trl_bf16": args.trl_bf16}))
    lines = []
    for trainer, variant, python, extra in runs:
        try:
            result = run_child(python, trainer, {**spec, **extra, "variant": variant})
        except BenchError as exc:
            print(f"vs_trl: {exc}", file=sys.stderr)
            return 1
        lines.append(summarize(variant, {**spec, **extra}, result))
        print(json.dumps(lines[-1]), flush=True)
    if not args.rlvr_only:
        lines.append(ratios(lines, args.device))
        print(json.dumps(lines[-1]), flush=True)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
