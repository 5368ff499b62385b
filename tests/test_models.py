"""Loading models: clear errors for names that are not models, the default model's cache
(`architectures`, permissions), checks that fail fast, and `python -m rlvr`."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from rlvr.errors import ModelLoadError
from rlvr.models import (DEFAULT_MODEL, cache_dir, check_model, load_model, load_tokenizer,
                         materialize_default_model)


@pytest.mark.parametrize("name", ["/nonexistent", "./no/such/model", "runs/none/final"])
def test_a_path_without_a_model_says_so_and_lists_what_is_accepted(name):
    for load in (load_model, load_tokenizer, check_model):
        with pytest.raises(ModelLoadError) as err:
            load(name)
        message = str(err.value)
        assert "no model exists at that path" in message, message
        assert DEFAULT_MODEL in message and "checkpoints/step-N" in message and "hub id" in message
        assert "Repo id" not in message


def test_a_directory_without_a_model_and_a_run_directory_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="holds no model"):
        load_model(str(tmp_path))
    (tmp_path / "config.yaml").write_text("steps: 1\n")
    with pytest.raises(ModelLoadError, match="looks like a training run: use .*final"):
        load_tokenizer(str(tmp_path))


def test_a_directory_that_holds_a_tokenizer_alone_gives_it_but_no_model(tiny_model_dir, tmp_path):
    load_tokenizer(str(tiny_model_dir)).save_pretrained(tmp_path)
    tok = load_tokenizer(str(tmp_path))
    assert tok("What is 2 + 3?")["input_ids"] == load_tokenizer(str(tiny_model_dir))("What is 2 + 3?")["input_ids"]
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    with pytest.raises(ModelLoadError, match="holds no model"):
        load_model(str(tmp_path))


def test_check_model_finds_truncated_weights_in_a_second(tiny_model_dir, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    t0 = time.perf_counter()
    check_model(str(model))  # a good model passes
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match="truncated"):
        check_model(str(model))
    assert time.perf_counter() - t0 < 5


def test_an_old_default_model_cache_gains_architectures(tmp_path, monkeypatch, tiny_model_dir):
    materialize_default_model()  # the real cache, for its files
    old = tmp_path / "models" / "SmolLM2-135M-Instruct"
    old.mkdir(parents=True)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config.pop("architectures", None)
    (old / "config.json").write_text(json.dumps(config))
    (old / "model.safetensors").symlink_to(tiny_model_dir / "model.safetensors")
    monkeypatch.setenv("RLVR_CACHE_DIR", str(tmp_path))
    assert materialize_default_model() == old
    assert json.loads((old / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


@pytest.mark.slow
def test_dequantised_cache_has_architectures_and_umask_permissions(tmp_path, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE_DIR", str(tmp_path / "cache"))
    old = os.umask(0o022)
    try:
        target = materialize_default_model()
    finally:
        os.umask(old)
    assert target.parent.parent == cache_dir()
    config = json.loads((target / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]  # what TRL's factory and vLLM read
    assert "quantization_config" not in config
    for p in [target, *target.iterdir()]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o755 if p.is_dir() else 0o644), (p.name, oct(mode))
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(target).architectures == ["LlamaForCausalLM"]


def test_python_dash_m_rlvr_is_the_rlvr_command():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    top = subprocess.run([sys.executable, "-m", "rlvr", "--help"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert top.returncode == 0 and "train" in top.stdout and "eval" in top.stdout, top.stderr
    bad = subprocess.run([sys.executable, "-m", "rlvr", "eval", "-n", "2", "-k", "4"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "k <= n" in bad.stderr and "Traceback" not in bad.stderr
