"""`rlvr eval`: sample n completions per problem, verify them, report pass@k / maj@k / reward.

    rlvr eval --task arithmetic --model smollm2-135m -n 16 -k 1,4,16
    rlvr eval --task arithmetic --model base=smollm2-135m --model trained=runs/default/final
    rlvr eval --run runs/default -n 8 -k 1,8        # base model, every checkpoint, final model

Sampling uses the rollout engine of training; answers are scored as in training (the verifier
pool, and a reward model for problems that name no verifier: `--reward-model`, or the run's
`reward:` section with --run). A reward model has no notion of correct: its samples count in the
mean reward, not in pass@k. Every
sample is appended to `OUT/samples/<label>.jsonl` as soon as its chunk is verified, and a rerun
with the same settings only samples what is missing: an interrupted eval resumes (`--fresh`
starts over). Writes `OUT/results.json`, `OUT/summary.md`, `OUT/pass_at_k.png` and, for the
checkpoints of a run, `OUT/pass_at_k_steps.png`.

With `--run`, sampling follows the run's held-out evaluation (its `rollout.max_new_tokens`,
`eval.temperature`, `rollout.top_p`, `rollout.top_k` and sampling dtype), so the base model's
pass@1 matches the run's own step-0 eval; a flag overrides each. The settings used, and where
each came from, are printed first. Every input (task, -k against -n, each model still to sample,
the output directory) is checked before the first sample is drawn: a bad one fails in a second.

This command does not train and does not download: models are local directories or the embedded
default model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from rlvr.errors import ConfigError

DEFAULT_MODEL = "smollm2-135m"
SAMPLING_DEFAULTS = {"max_new_tokens": 256, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "dtype": "auto"}
# where a run's config keeps each sampling setting of its held-out evaluation
RUN_SAMPLING = {"max_new_tokens": ("rollout", "max_new_tokens"), "temperature": ("eval", "temperature"),
                "top_p": ("rollout", "top_p"), "top_k": ("rollout", "top_k")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--task", help="task name (built-in, entry point or module:Object); default: the run's "
        "task with --run, else arithmetic")
    add("--task-options", default=None, metavar="YAML",
        help="task options as a YAML/JSON mapping, e.g. '{level: 1}' (default: the run's, or none)")
    add("--split", default="test", choices=["test", "train"], help="which split to evaluate")
    add("--limit", type=int, default=0, help="evaluate only the first N problems (0 = all)")
    add("--model", action="append", default=[], metavar="[LABEL=]MODEL",
        help=f"model to evaluate (repeatable): '{DEFAULT_MODEL}' (embedded) or a local model "
        "directory; a label names it in the report (a label or directory named step-N or stepN "
        "puts it on the across-training plot)")
    add("--run", help="a training run directory: evaluate its base model, every checkpoint left "
        "in it and its final model (and take its task unless --task is given)")
    add("-n", type=int, default=16, help="samples per problem")
    add("-k", default="1,4,16", help="comma-separated k for pass@k and maj@k (each k <= n)")
    add("--greedy", action="store_true", help="greedy decoding: n = 1, temperature 0, k = 1")
    add("--temperature", type=float, default=None,
        help=f"default: the run's eval.temperature with --run, else {SAMPLING_DEFAULTS['temperature']}")
    add("--top-p", type=float, default=None,
        help=f"default: the run's rollout.top_p with --run, else {SAMPLING_DEFAULTS['top_p']}")
    add("--top-k", type=int, default=None,
        help=f"0 = off; default: the run's rollout.top_k with --run, else {SAMPLING_DEFAULTS['top_k']}")
    add("--max-new-tokens", type=int, default=None,
        help=f"default: the run's rollout.max_new_tokens with --run, else {SAMPLING_DEFAULTS['max_new_tokens']}")
    add("--seed", type=int, default=0)
    add("--verifier", default="", help="override the verifier the task's problems name")
    add("--verifier-options", default=None, metavar="YAML", help="options of the verifier(s)")
    add("--reward-model", default=None, metavar="DIR",
        help="reward model (rlvr rm train output) for problems that name no verifier; default: "
        "the run's reward.model with --run, else none")
    add("--reward-options", default=None, metavar="YAML",
        help="the reward: keys besides model, e.g. '{scores: all, clip: [-3, 3]}' (default: the run's)")
    add("--workers", type=int, default=2, help="verifier worker processes (0 = in-process)")
    add("--timeout-s", type=float, default=10.0, help="per-answer verification time limit")
    add("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add("--dtype", default=None, choices=["auto", "float32", "bfloat16"],
        help="sampling dtype; auto: bfloat16 where the hardware has fast bf16 (as training samples); "
        "default: the run's sampling dtype with --run, else auto")
    add("--engine", default=None, help="rollout engine (hf, vllm, an entry point or module:Object); "
        "default: the run's rollout.engine with --run, else hf")
    add("--engine-options", default=None, metavar="YAML", help="engine options, e.g. '{batch_size: 32}' "
        "(default: the run's rollout.options when the engine is the run's, else none)")
    add("--batch-size", type=int, default=None, help="sequences per generate call (hf engine option)")
    add("--memory-mb", type=int, default=2048, help="address-space cap of each verifier worker")
    add("--out", help="output directory (default: evals/<task>)")
    add("--fresh", action="store_true", help="discard saved samples and start over")
    add("--no-plot", action="store_true", help="skip the PNG plots")
    add("--no-progress", action="store_true", help="no progress bar")


def _yaml_mapping(text: str | None, what: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: not valid YAML: {exc}") from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a mapping like '{{key: value}}', got {text!r}")
    return value


def _ks(args: argparse.Namespace) -> list[int]:
    try:
        ks = sorted({int(x) for x in str(args.k).split(",") if x.strip()})
    except ValueError as exc:
        raise ConfigError(f"-k: expected comma-separated integers, got {args.k!r}") from exc
    if not ks or ks[0] < 1 or ks[-1] > args.n:
        raise ConfigError(f"-k: every k must be in 1..n (n = {args.n}); got {args.k!r}. pass@k "
                          "is only defined for k <= n: raise -n or lower -k")
    return ks


def _step_of(text: str) -> int | None:
    m = re.search(r"step[-_]?(\d+)", text)
    return int(m.group(1)) if m else None


def _models(args: argparse.Namespace, run: dict[str, Any] | None) -> list[dict[str, Any]]:
    """[{label, model, step}] from --model and --run."""
    out = []
    for spec in args.model:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = (Path(spec).name or spec), spec
        out.append({"label": label, "model": path, "step": _step_of(label) or _step_of(Path(path).name)})
    if args.run:
        run_dir = Path(args.run)
        base = run.get("model", {}).get("name", DEFAULT_MODEL)
        out.append({"label": "base (step 0)", "model": base, "step": 0})
        for ckpt in sorted((run_dir / "checkpoints").glob("step-*"), key=lambda p: _step_of(p.name)):
            out.append({"label": f"step {_step_of(ckpt.name)}", "model": str(ckpt),
                        "step": _step_of(ckpt.name)})
        if (run_dir / "final").is_dir():
            out.append({"label": f"final (step {run.get('steps')})", "model": str(run_dir / "final"),
                        "step": run.get("steps")})
    out = out or [{"label": DEFAULT_MODEL, "model": DEFAULT_MODEL, "step": None}]
    labels = [m["label"] for m in out]
    for i, m in enumerate(out):  # each label has its own samples file: make them unique
        if labels.count(m["label"]) > 1:
            m["label"] = f"{m['label']} #{labels[:i + 1].count(m['label'])}"
    return out


def _load_run(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.run:
        return None
    path = Path(args.run) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--run {args.run}: no config.yaml there; is it a training run directory?")
    return yaml.safe_load(path.read_text()) or {}


def _run_dtype(run: dict[str, Any]) -> str | None:
    """The dtype a run sampled in, as an --dtype value (None when its config does not say)."""
    model = run.get("model") or {}
    rollout = model.get("rollout_dtype")
    if rollout == "same" or (rollout == "auto" and (model.get("lora") or {}).get("enabled")):
        return model.get("dtype")
    return rollout if rollout in ("auto", "float32", "bfloat16") else None


def _sampling_sources(args: argparse.Namespace, run: dict[str, Any] | None) -> dict[str, str]:
    """Fill unset sampling flags from the run (with --run), else the defaults; returns where each
    setting came from ("--flag", "the run", "default")."""
    sources = {}
    for key, default in SAMPLING_DEFAULTS.items():
        if getattr(args, key) is not None:
            sources[key] = "--" + key.replace("_", "-")
            continue
        value = None
        if run is not None:
            if key == "dtype":
                value = _run_dtype(run)
            else:
                section, name = RUN_SAMPLING[key]
                value = (run.get(section) or {}).get(name)
        setattr(args, key, default if value is None else value)
        sources[key] = "default" if value is None else "the run"
    return sources


def _settings(args: argparse.Namespace, run: dict[str, Any] | None) -> dict[str, Any]:
    """Everything that decides what a sample is; saved samples are reused only if it matches."""
    task = (run or {}).get("task", {})
    sources = _sampling_sources(args, run)
    if args.greedy:
        args.n, args.k, args.temperature = 1, "1", 0.0
        sources["temperature"] = "--greedy"
    if args.n < 1 or args.max_new_tokens < 1 or args.limit < 0:
        raise ConfigError("-n and --max-new-tokens must be >= 1, --limit >= 0")
    if not args.greedy and args.temperature <= 0:
        raise ConfigError("--temperature must be > 0 (use --greedy for greedy decoding)")
    options = _yaml_mapping(args.task_options, "--task-options") if args.task_options is not None \
        else dict(task.get("options") or {})
    sampling = {"n": args.n, "temperature": args.temperature, "top_p": args.top_p,
                "top_k": args.top_k, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                "dtype": _device_and_dtype(args)[1]}
    shown = [f"{k}={sampling[k]} ({sources[k]}{', ' + args.dtype if k == 'dtype' and args.dtype == 'auto' else ''})"
             for k in SAMPLING_DEFAULTS]
    print(f"rlvr eval: sampling n={args.n}, " + ", ".join(shown), file=sys.stderr)
    return {"task": args.task or task.get("name") or "arithmetic", "task_options": options,
            "split": args.split, "limit": args.limit,
            "verifier": args.verifier or task.get("verifier", ""),
            "verifier_options": _yaml_mapping(args.verifier_options, "--verifier-options")
            if args.verifier_options is not None else dict(task.get("verifier_options") or {}),
            "sampling": sampling, **_reward_settings(args, run)}


def _reward_settings(args: argparse.Namespace, run: dict[str, Any] | None) -> dict[str, Any]:
    """{"reward": the checked reward: section} when a reward model scores, else {} (so the
    settings of an evaluation without one are what they always were)."""
    from rlvr.config import RewardConfig, check_reward, from_dict, to_dict

    data = dict((run or {}).get("reward") or {})
    data.update(_yaml_mapping(args.reward_options, "--reward-options"))
    if args.reward_model is not None:
        data["model"] = args.reward_model
    data.pop("allow_zero_beta", None)  # a training setting
    reward = check_reward(from_dict(RewardConfig, data, prefix="reward."))
    return {"reward": to_dict(reward)} if reward.model else {}


def _problems(settings: dict[str, Any]) -> list:
    from rlvr.components import task_problems

    problems = task_problems(settings["task"], settings["task_options"], settings["split"],
                             verifier=settings["verifier"], limit=settings["limit"])
    if not problems:
        raise ConfigError(f"task {settings['task']!r} has no {settings['split']} problems")
    return problems


def _scorer(settings: dict[str, Any], problems: list, args: argparse.Namespace):
    """The scorer of training: the verifier pool, with the reward model where one is set."""
    from rlvr.components import build_scorer, resolve_device
    from rlvr.config import RewardConfig, VerifyConfig, from_dict

    limits = VerifyConfig(workers=args.workers, timeout_s=args.timeout_s, memory_mb=args.memory_mb)
    reward = from_dict(RewardConfig, settings.get("reward", {}), prefix="reward.")
    return build_scorer(problems, settings["verifier_options"], limits, reward, resolve_device(args.device))


def _engine_spec(args: argparse.Namespace, run: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """(engine name, engine options): the flags, else the run's, else the HF engine's defaults."""
    rollout = (run or {}).get("rollout") or {}
    name = args.engine or rollout.get("engine") or "hf"
    if args.engine_options is not None:
        options = _yaml_mapping(args.engine_options, "--engine-options")
    else:
        options = dict(rollout.get("options") or {}) if name == (rollout.get("engine") or "hf") else {}
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    return name, options


def _samples_file(out: Path, entry: dict[str, Any], settings: dict[str, Any]) -> tuple[Path, dict]:
    """The samples file of one model and the settings it must have been drawn with."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", entry["label"]).strip("_") or "model"
    wanted = {k: v for k, v in settings.items() if k != "limit"}
    wanted["model"] = entry["model"]
    wanted["sampling"] = {k: v for k, v in settings["sampling"].items() if k != "n"}
    return out / "samples" / f"{safe}.jsonl", wanted


def _meta(path: Path) -> Path:
    return path.with_name(path.name.replace(".jsonl", ".settings.json"))


def _prepare(models: list[dict[str, Any]], problems: list, settings: dict[str, Any], out: Path,
             args: argparse.Namespace) -> list[Path]:
    """Check every input before the first sample is drawn, then claim the samples files: the
    output directory must be writable, saved samples must have been drawn with these settings,
    and every model that still has samples to draw must exist and load."""
    from rlvr.errors import ModelLoadError
    from rlvr.eval import load_samples
    from rlvr.models import check_model, check_weights, locate_model

    try:
        (out / "samples").mkdir(parents=True, exist_ok=True)
        probe = out / "samples" / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from exc
    files, needed, ids, n = [], [], {p.id for p in problems}, settings["sampling"]["n"]
    for entry in models:
        path, wanted = _samples_file(out, entry, settings)
        meta = _meta(path)
        if not args.fresh and meta.is_file() and path.is_file() and json.loads(meta.read_text()) != wanted:
            raise ConfigError(f"{path} holds samples drawn with other settings ({meta}); use --fresh "
                              "to start over or --out for a new directory")
        saved = {} if args.fresh else load_samples(path, ids)
        if not all(len(saved.get(i, [])) >= n for i in ids):
            needed.append(entry)
        files.append((path, wanted))
    for check in (locate_model, check_weights, check_model):  # cheapest check of all models first
        for entry in needed:
            try:
                check(entry["model"])
            except ModelLoadError as exc:
                raise ModelLoadError(f"model {entry['label']!r}: {exc}") from exc
    for path, wanted in files:
        if args.fresh:
            path.unlink(missing_ok=True)
        _meta(path).write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    return [path for path, _ in files]


def _device_and_dtype(args: argparse.Namespace) -> tuple[str, str]:
    """(device, sampling dtype name): the model loads in float32 and samples in this dtype, as in
    training (the engine's own bf16 copy keeps buffers such as RoPE frequencies in float32)."""
    from rlvr.components import resolve_device, sampling_dtype

    device = resolve_device(args.device)
    dtype = sampling_dtype(args.dtype, "float32", device)
    return str(device), "float32" if dtype == "same" else dtype


def _engine(model_name: str, args: argparse.Namespace):
    from rlvr.components import build_engine
    from rlvr.models import load_model, load_tokenizer

    device, dtype = _device_and_dtype(args)
    tokenizer = load_tokenizer(model_name)
    model = load_model(model_name, dtype="float32", device=device).eval()
    return build_engine(args.engine_name, model, tokenizer, dtype="same" if dtype == "float32" else dtype,
                        options=args.engine_opts)


def _evaluate_model(entry: dict[str, Any], problems: list, scorer, settings: dict[str, Any],
                    ks: list[int], path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from rlvr.eval import evaluate, load_samples
    from rlvr.rollout.base import SamplingParams

    s = settings["sampling"]
    params = SamplingParams(n=s["n"], temperature=s["temperature"], top_p=s["top_p"],
                            top_k=s["top_k"], max_new_tokens=s["max_new_tokens"], seed=s["seed"])
    saved = load_samples(path, {p.id for p in problems})
    complete = all(len(saved.get(p.id, [])) >= s["n"] for p in problems)
    engine = _LazyEngine(entry["model"], args) if not complete else None
    try:
        with tqdm(total=len(problems), unit="problem", desc=entry["label"], file=sys.stderr,
                  disable=args.no_progress) as bar:
            return evaluate(engine, problems, scorer, n=s["n"], params=params, ks=ks,
                            samples_path=path, progress=bar.update)
    finally:
        if engine is not None:
            engine.close()  # frees this model before the next one loads


class _LazyEngine:
    """Loads the model on the first generate call, so a finished eval reruns without loading it."""

    def __init__(self, model_name: str, args: argparse.Namespace):
        self.model_name, self.args, self.engine = model_name, args, None

    def generate(self, prompts, params):
        if self.engine is None:
            self.engine = _engine(self.model_name, self.args)
        return self.engine.generate(prompts, params)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def _judged(results: dict[str, Any]) -> bool:
    """True when some model has a pass@k (False when a reward model scored every sample)."""
    return any(m["report"].get(f"pass@{k}") is not None for m in results["models"] for k in results["ks"])


def run(args: argparse.Namespace) -> int:
    from rlvr.report import summary_table, write_report

    run_config = _load_run(args)
    args.engine_name, args.engine_opts = _engine_spec(args, run_config)
    from rlvr import plugins
    from rlvr.rollout.base import BUILTIN_ENGINES, ENTRY_POINT_GROUP

    plugins.load(ENTRY_POINT_GROUP, args.engine_name, BUILTIN_ENGINES)  # an unknown engine fails now
    settings = _settings(args, run_config)
    ks = _ks(args)
    problems = _problems(settings)
    models = _models(args, run_config)
    out = Path(args.out or f"evals/{settings['task'].replace(':', '_')}")
    paths = _prepare(models, problems, settings, out, args)
    results: dict[str, Any] = {"task": settings["task"], "task_options": settings["task_options"],
                               "split": settings["split"], "ks": ks, "sampling": settings["sampling"],
                               "models": []}
    with _scorer(settings, problems, args) as scorer:
        for entry, path in zip(models, paths):
            report = _evaluate_model(entry, problems, scorer, settings, ks, path, args)
            results["models"].append({**entry, "report": report})
            plot = not args.no_plot and _judged(results)
            notes = write_report(results, out, plot=plot)
            if not args.no_plot and not plot:
                notes = ["no pass@k to plot: no sample has a notion of correct (a reward model scored them all)"]
    print("\n".join(summary_table(results)))
    for note in notes:
        print(f"rlvr eval: {note}", file=sys.stderr)
    print(f"rlvr eval: wrote {out}/results.json, {out}/summary.md"
          + ("" if args.no_plot or notes else f", {out}/pass_at_k.png"))
    return 0
