"""The trainer's device paths, each run on the CPU and, opt-in (`pytest -m gpu`), on CUDA: the HF
engine (on CUDA `generate` with its static cache, a bf16 sampling copy), one update (the shared
prompts, the chunked head and its backward, autocast) against the same update in float64 on the
CPU, and `rlvr train` end to end. On a GPU machine without the default model's package, point
RLVR_TEST_TOKENIZER at a tokenizer directory (`benchmarks/vs_trl_gpu.sh pack` writes one)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from rlvr.config import build_config
from rlvr.models import load_model, load_tokenizer
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.update import collate, sequence_logprobs
from test_train import common, rlvr_env
from test_update import PAD, grouped_completions, sgd_update


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> str:
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return request.param


def test_the_engine_samples_on_the_device_seeded_with_the_log_probs_it_drew(tiny_model_dir, device):
    model = load_model(str(tiny_model_dir), device=device)
    tok = load_tokenizer(str(tiny_model_dir))
    engine = HFRolloutEngine(model, tok, dtype="bfloat16", loop="generate")  # CUDA's loop, and its dtype
    params = SamplingParams(n=4, max_new_tokens=24, seed=5)
    prompts = ["What is 2 + 3?", "Name a colour that is not red."]
    groups = engine.generate(prompts, params)
    again = engine.generate(prompts, params)  # a second call reuses the static cache's shapes
    assert [len(g) for g in groups] == [4, 4]
    ids = lambda gs: [c.completion_ids for g in gs for c in g]  # noqa: E731
    assert ids(groups) == ids(again)
    assert len(set(ids(groups))) > 1
    batch = collate([c for g in groups for c in g], tok.pad_token_id)
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, batch, temperature=1.0, autocast=False)
    diff = (logp.cpu() - batch.sampler_logp).abs()[batch.mask.bool()]
    assert diff.mean() < 0.05 and diff.max() < 0.5, (diff.mean(), diff.max())


def _sgd_update(model_dir, device: str, dtype: str, autocast: bool, share: bool):
    """`test_update.sgd_update` of a grouped batch, with a reference, on `device`."""
    cfg = build_config(overrides=[f"--optim.share_prompts={str(share).lower()}", "--grpo.beta=0.1",
                                  "--optim.micro_batch_size=4", "--optim.max_grad_norm=0",
                                  f"--model.train_autocast={str(autocast).lower()}"])
    batch = collate(grouped_completions(), PAD)
    adv = torch.linspace(-1.0, 1.0, len(batch.mask))
    rows = torch.ones(len(adv), dtype=torch.bool)
    stats, deltas = sgd_update(model_dir, cfg, batch, adv, rows, with_reference=True, dtype=dtype, device=device)
    return stats, [d.double() for d in deltas]


@pytest.mark.parametrize("share", [False, True])
def test_an_update_on_the_device_moves_the_weights_as_on_the_cpu(tiny_model_dir, device, share):
    """In float64 the device's kernels only reorder the arithmetic; under bf16 autocast the step
    still points the same way."""
    want, want_delta = _sgd_update(tiny_model_dir, "cpu", "float64", autocast=False, share=share)
    got, delta = _sgd_update(tiny_model_dir, device, "float64", autocast=False, share=share)
    for a, b in zip(want_delta, delta):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * a.abs().max()), (a - b).abs().max()
    for key in ("loss", "kl/ref", "entropy"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-12), key
    bf16, bf16_delta = _sgd_update(tiny_model_dir, device, "float32", autocast=True, share=share)
    flat = lambda ds: torch.cat([d.flatten() for d in ds])  # noqa: E731
    cosine = torch.nn.functional.cosine_similarity(flat(bf16_delta), flat(want_delta), dim=0)
    assert cosine > 0.99, cosine
    assert bf16["loss"] == pytest.approx(want["loss"], rel=0.05, abs=1e-3)


def test_rlvr_train_runs_on_the_device(tiny_model_dir, tmp_path, device):
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", *common(tiny_model_dir, out, steps=2),
                          f"--model.device={device}", "--eval.every=0", "--checkpoint.every=0"],
                         env=rlvr_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["update/sequences"] > 0 for r in rows), rows
    assert load_model(str(out / "final"), device="cpu") is not None
