"""The configuration: one tree of frozen dataclasses, a YAML file, then `--section.key=value`.

Defaults live in code; each field's comment is its documentation (`rlvr train --help-config`
prints them). A YAML file overrides the defaults, command-line overrides override the file.
Unknown keys and values of the wrong type are `ConfigError`s that name the key. The resolved
config is written into every run directory (`config.yaml`) and is what `--resume` reads back.

The defaults are the embedded default run: SmolLM2-135M-Instruct on level-1 arithmetic.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, Union

import yaml

from rlvr.errors import ConfigError


@dataclass(frozen=True)
class LoraConfig:
    enabled: bool = False  # train LoRA adapters instead of all weights (peft)
    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator (scale = alpha / r)
    dropout: float = 0.0  # adapter dropout
    target_modules: str = "all-linear"  # peft target_modules: "all-linear" or comma-separated names


@dataclass(frozen=True)
class ModelConfig:
    name: str = "smollm2-135m"  # "smollm2-135m" (embedded), a local HF model dir, or a hub id
    dtype: Literal["float32", "bfloat16"] = "float32"  # trainable weights and update math
    rollout_dtype: Literal["auto", "same", "bfloat16", "float32"] = "auto"  # sampling copy; auto: bf16 where the hardware has fast bf16
    train_autocast: Union[bool, Literal["auto"]] = "auto"  # bf16 autocast of the trainer's forward/backward over fp32 weights
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    gradient_checkpointing: bool = False  # keep each decoder layer's input only, run it again in backward (rlvr.recompute)
    fsdp: bool = False  # under torchrun: shard policy, reference, gradients and AdamW state over ranks (FSDP2; full fine-tuning, HF engine)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass(frozen=True)
class TaskConfig:
    name: str = "arithmetic"  # a built-in task, an entry point of group rlvr.tasks, or module:Object
    options: dict = field(default_factory=dict)  # passed to the task's constructor, e.g. {level: 2}
    verifier: str = ""  # override the verifier that the task's problems name ("" = keep theirs)
    verifier_options: dict = field(default_factory=dict)  # passed to the verifier, e.g. {mode: strict}


@dataclass(frozen=True)
class RolloutConfig:
    engine: str = "hf"  # hf (transformers generate), an entry point of group rlvr.rollout_engines, or module:Object
    options: dict = field(default_factory=dict)  # engine-only settings, e.g. hf: {batch_size: 64, static_cache: true}
    prompts_per_step: int = 8  # problems per GRPO step
    group_size: int = 8  # G: completions sampled per problem
    max_new_tokens: int = 96  # completion length cap (longer ones are truncated, finish_reason "length")
    temperature: float = 1.0  # sampling temperature (also used for the trainer's log-probs)
    top_p: float = 1.0  # nucleus sampling
    top_k: int = 0  # 0 = off


@dataclass(frozen=True)
class GRPOConfig:
    advantage_std: Literal["group", "batch", "none"] = "group"  # "none" = Dr. GRPO
    clip_low: float = 0.2  # eps_low of the clipped ratio
    clip_high: float = 0.28  # eps_high (DAPO clip-higher; 0.2 = symmetric PPO clip)
    beta: float = 0.0  # KL(k3) coefficient to the frozen reference; 0 = no reference at all
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"  # see rlvr.grpo.aggregate
    loss_norm_tokens: int = 0  # constant normaliser of seq-mean-token-sum-norm (0 = max_new_tokens)
    inner_steps: int = 1  # mu: optimiser passes over each batch (1 = no stored old log-probs)
    dynamic_sampling: bool = False  # DAPO: draw more prompts until the batch has informative groups
    max_sampling_rounds: int = 3  # upper bound on rollout rounds per step with dynamic sampling
    overlong: Literal["none", "filter", "soft"] = "none"  # truncated completions: keep, mask out, or penalise
    overlong_cache_tokens: int = 32  # soft penalty ramps from 0 to -1 over the last this-many tokens
    tis_cap: float = 0.0  # truncated importance sampling cap for rollout/trainer mismatch (0 = off)
    length_penalty_coef: float = 0.0  # reward-hacking guard: subtract up to this much for length past length_penalty_target (0 = off)
    length_penalty_target: int = 0  # tokens a completion may use before the length penalty starts


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["adamw", "adamw_8bit"] = "adamw"  # adamw_8bit: moments in 8 bits, a quarter of the state (rlvr/optim8bit.py)
    lr: float = 3e-5  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    betas: tuple = (0.9, 0.99)  # AdamW betas
    warmup_steps: int = 1  # linear warm-up (optimizer steps)
    schedule: Literal["constant", "cosine", "linear"] = "constant"  # after warm-up
    max_grad_norm: float = 1.0  # 0 = no clipping
    micro_batch_size: int = 16  # sequences per forward/backward; gradients accumulate to the batch
    share_prompts: bool = True  # forward each distinct prompt once per update, not once per sample (exact; off under FSDP)


@dataclass(frozen=True)
class VerifyConfig:
    workers: int = 2  # verifier worker processes (0 = in-process, no limits: debugging only)
    timeout_s: float = 10.0  # per item, for verifiers that declare no budget of their own (math, integer); enforced by killing the worker
    memory_mb: int = 2048  # address-space cap of each worker
    max_infra_error_rate: float = 0.25  # abort the run when a step loses more samples than this
    options: dict = field(default_factory=dict)  # options per verifier name, e.g. {rubric: {judge: ...}, code: {timeout_s: 5}}; a verifier without an entry gets task.verifier_options


@dataclass(frozen=True)
class RewardConfig:
    model: str = ""  # a learned reward model directory (rlvr rm train output); "" = none: verifiers score everything
    scores: Literal["fallback", "all"] = "fallback"  # which problems the reward model scores: fallback = those naming no verifier ("" or "reward_model"); all = every problem
    normalize: bool = True  # reward = (raw - mean) / std with the model's saved reward_stats.json
    clip: tuple = (-5.0, 5.0)  # [low, high]: the reward (after normalising) is clipped to this range
    batch_size: int = 16  # sequences per reward-model forward pass
    dtype: Literal["float32", "bfloat16"] = "float32"  # the reward model's weights
    allow_zero_beta: bool = False  # train on a learned reward with grpo.beta = 0 (no KL leash); refused unless set


@dataclass(frozen=True)
class EvalConfig:
    every: int = 6  # held-out evaluation every this many steps (0 = never); also before step 1 and at the end
    n: int = 4  # samples per held-out problem (pass@1 is their mean)
    temperature: float = 1.0  # sampling temperature of the evaluation
    max_problems: int = 0  # 0 = the whole test split
    at_start: bool = True  # evaluate the base model before training


@dataclass(frozen=True)
class LogConfig:
    sample_every: int = 5  # write sample completions every this many steps (0 = never)
    num_samples: int = 4  # completions written each time
    tensorboard: bool = True  # when tensorboard is installed
    progress: bool = True  # progress bar on stderr
    report_to: str = ""  # experiment trackers, comma-separated: wandb, trackio, mlflow (optional installs; "" = none)
    project: str = "rlvr"  # the trackers' project (W&B project, trackio project, MLflow experiment)


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 10  # steps between checkpoints (0 = only the final model)
    keep: int = 2  # newest checkpoints kept


@dataclass(frozen=True)
class Config:
    output_dir: str = "runs/default"  # run directory: config, metrics, samples, checkpoints, final model
    seed: int = 0  # seeds data order, sampling and initialisation
    steps: int = 12  # GRPO steps
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


# ---------------------------------------------------------------- building from plain data


def _check_value(key: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of options, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check_value(key, arg, value)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not one of: {', '.join(_type_names(tp))}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is tuple and isinstance(value, list):
        return tuple(value)
    if tp in (bool, int, float, str, dict, tuple, list):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")  # a bug in this file, not in input


def _type_names(tp: Any) -> list[str]:
    if typing.get_origin(tp) is Literal:
        return [repr(a) for a in typing.get_args(tp)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [n for arg in typing.get_args(tp) for n in _type_names(arg)]
    return ["null" if tp is type(None) else getattr(tp, "__name__", str(tp))]


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from nested plain data, checking keys and types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]}; valid keys of "
                          f"{prefix.rstrip('.') or 'the config'}: {', '.join(sorted(names))}")
    values = {k: _check_value(prefix + k, hints[k], v) for k, v in data.items()}
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(config)


def _set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--{dotted}: {p} is not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """`["--grpo.beta=0.04", "--steps", "3"]` -> {"grpo": {"beta": 0.04}, "steps": 3}.

    Values are read as YAML scalars/lists (`3` int, `0.04` float, `true`, `[1, 2]`).
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"expected an override like --section.key=value, got {arg!r}")
        key, eq, raw = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"--{key} needs a value")
            raw, i = args[i + 1], i + 1
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_path(out, key.replace("-", "_"), value)
        i += 1
    return out


def _merge(base: dict, extra: Mapping) -> dict:
    out = dict(base)
    for k, v in extra.items():
        both_maps = isinstance(v, Mapping) and isinstance(out.get(k), dict)
        out[k] = _merge(out[k], v) if both_maps else v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def layered(cls: type, file: str | Path | None = None, overrides: Sequence[str] = (),
            base: Mapping[str, Any] | None = None) -> Any:
    """A `cls` config tree from its defaults <- `base` (e.g. a resumed run's config) <- YAML `file`
    <- `overrides`; types checked, no cross-field checks. Every command's config is built this way."""
    data: dict[str, Any] = dict(base or {})
    if file is not None:
        data = _merge(data, load_yaml(file))
    return from_dict(cls, _merge(data, parse_overrides(overrides)))


def build_config(file: str | Path | None = None, overrides: Sequence[str] = (),
                 base: Mapping[str, Any] | None = None) -> Config:
    """The GRPO trainer's config: `layered(Config, ...)`, then `validate`."""
    config = layered(Config, file, overrides, base)
    validate(config)
    return config


def validate(c: Config) -> None:
    """Cross-field and range checks (types are checked while building)."""
    checks = [
        (c.steps >= 1, "steps must be >= 1"),
        (c.rollout.group_size >= 2, "rollout.group_size must be >= 2 (advantages are relative within a group)"),
        (c.rollout.prompts_per_step >= 1, "rollout.prompts_per_step must be >= 1"),
        (c.rollout.max_new_tokens >= 1, "rollout.max_new_tokens must be >= 1"),
        (c.rollout.temperature > 0, "rollout.temperature must be > 0 for GRPO sampling"),
        (0 < c.rollout.top_p <= 1, "rollout.top_p must be in (0, 1]"),
        (0 <= c.grpo.clip_low < 1 and c.grpo.clip_high >= 0, "grpo.clip_low must be in [0, 1), grpo.clip_high >= 0"),
        (c.grpo.beta >= 0, "grpo.beta must be >= 0"),
        (c.grpo.inner_steps >= 1, "grpo.inner_steps must be >= 1"),
        (c.grpo.max_sampling_rounds >= 1, "grpo.max_sampling_rounds must be >= 1"),
        (0 < c.grpo.overlong_cache_tokens < c.rollout.max_new_tokens or c.grpo.overlong != "soft",
         "grpo.overlong_cache_tokens must be in (0, rollout.max_new_tokens)"),
        (c.grpo.length_penalty_coef >= 0 and 0 <= c.grpo.length_penalty_target < c.rollout.max_new_tokens,
         "grpo.length_penalty_coef must be >= 0 and grpo.length_penalty_target in [0, rollout.max_new_tokens)"),
        (c.optim.lr > 0, "optim.lr must be > 0"),
        (c.optim.micro_batch_size >= 1, "optim.micro_batch_size must be >= 1"),
        (c.eval.n >= 1, "eval.n must be >= 1"),
        (0 <= c.verify.max_infra_error_rate <= 1, "verify.max_infra_error_rate must be in [0, 1]"),
        (not (c.model.fsdp and c.model.lora.enabled), "model.fsdp shards full fine-tuning; with LoRA the "
         "trainable state is small: use plain data parallelism (model.fsdp=false)"),
        (not c.model.fsdp or c.rollout.engine == "hf", "model.fsdp works with the hf rollout engine only"),
        (not (c.model.fsdp and c.optim.name == "adamw_8bit"), "optim.name=adamw_8bit does not take FSDP's sharded "
         "parameters: use optim.name=adamw with model.fsdp (it already keeps 1/world of the state per rank)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    validate_reward(c)


def check_reward(r: RewardConfig) -> RewardConfig:
    """Range checks of the `reward:` section on its own (also what `rlvr eval` builds)."""
    clip = r.clip
    if len(clip) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in clip) \
            or not clip[0] < clip[1]:
        raise ConfigError(f"reward.clip must be [low, high] with low < high, got {list(clip)!r}")
    if r.batch_size < 1:
        raise ConfigError("reward.batch_size must be >= 1")
    if r.scores == "all" and not r.model:
        raise ConfigError("reward.scores=all needs reward.model (a reward model directory)")
    return r


def validate_reward(c: Config) -> None:
    """The `reward:` section. A learned reward without a KL leash is refused (see docs/scoring.md):
    a policy optimised against a fixed learned reward drifts to text the reward model was never
    trained on and overrates (length, repetition); `grpo.beta > 0` keeps it near the initial
    (SFT) model. `reward.allow_zero_beta: true` opts out, e.g. for an ablation."""
    r = check_reward(c.reward)
    if c.task.verifier == "reward_model" and not r.model:
        raise ConfigError("task.verifier=reward_model needs reward.model (a reward model directory)")
    if r.model and c.grpo.beta == 0 and not r.allow_zero_beta:
        raise ConfigError(
            "reward.model is set (a learned reward) but grpo.beta = 0: the policy would have no KL "
            "leash to its initial (SFT) model and can drift to text the reward model overrates. "
            "Set grpo.beta > 0 (e.g. --grpo.beta=0.04), or reward.allow_zero_beta=true to opt out")


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def describe(cls: type = Config, prefix: str = "") -> list[str]:
    """One line per key with its default, for `rlvr train --help-config`."""
    import inspect

    src = inspect.getsource(cls).splitlines()
    comments = {}
    for line in src:
        name, _, rest = line.strip().partition(":")
        if "#" in rest:
            comments[name] = rest.split("#", 1)[1].strip()
    lines = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            lines += describe(hints[f.name], prefix + f.name + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  --{prefix}{f.name}={default!r}  {comments.get(f.name, '')}".rstrip())
    return lines
