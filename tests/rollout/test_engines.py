"""The rollout engine seam: building engines by name, options, the HF engine's sampling copy."""

import pytest
import torch

from rlvr.components import build_engine, sampling_dtype
from rlvr.errors import ConfigError, PluginError
from rlvr.models import load_model, load_tokenizer
from rlvr.rollout.base import SamplingParams, available_engines, encode_prompt, make_engine
from rlvr.rollout import hf
from rlvr.rollout.hf import HFRolloutEngine, sampling_copy
from rlvr.update import collate, sequence_logprobs


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    return load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))


def test_engines_are_plug_ins_with_named_choices_and_checked_options(policy):
    model, tok = policy
    assert "hf" in available_engines()
    with pytest.raises(PluginError, match="choose one of: hf"):
        make_engine("nope", model, tok)
    with pytest.raises(ConfigError, match="batch_sise.*accepts: dtype, batch_size, loop, static_cache"):
        make_engine("hf", model, tok, {"batch_sise": 4})
    engine = make_engine("hf", model, tok, {"batch_size": 3})
    assert isinstance(engine, HFRolloutEngine) and engine.batch_size == 3 and engine.model is model


def test_the_bf16_sampling_copy_keeps_buffers_in_full_precision(policy):
    model, _ = policy
    copy = sampling_copy(model, "bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in copy.parameters())
    buffers = dict(model.named_buffers())
    floating = [(n, b) for n, b in copy.named_buffers() if b.is_floating_point()]
    assert floating  # RoPE inv_freq at least
    for name, buf in floating:  # .to(bfloat16) alone leaves inv_freq in bf16: a phase error
        assert buf.dtype == torch.float32 and torch.equal(buf, buffers[name]), name


def test_update_weights_makes_the_copy_sample_from_the_new_policy(policy, tiny_model_dir):
    model, tok = policy
    trained = load_model(str(tiny_model_dir))
    engine = build_engine("hf", trained, tok, dtype="bfloat16")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05)
    before = next(engine.model.parameters()).float().clone()
    engine.update_weights(trained)
    after = next(engine.model.parameters()).float()
    assert torch.allclose(after, next(trained.parameters()).to(torch.bfloat16).float())
    assert not torch.allclose(before, after)


def test_the_copy_is_dropped_between_sampling_and_update_and_samples_as_if_kept(policy, tiny_model_dir):
    """After sampling, the bf16 copy's parameters are dropped (the update runs without them);
    `update_weights` or the next sampling makes them again, and sampling is what it would be
    from a copy kept all along."""
    model, tok = policy
    trained = load_model(str(tiny_model_dir))
    engine = build_engine("hf", trained, tok, dtype="bfloat16")
    params = SamplingParams(n=2, max_new_tokens=8, seed=3)
    engine.generate(["What is 2 + 3?"], params)
    assert engine.released and all(p.numel() == 0 for p in engine.model.parameters())
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05)
    engine.update_weights(trained)
    assert not engine.released
    kept = build_engine("hf", trained, tok, dtype="bfloat16")  # made from the new weights, never dropped
    for a, b in zip(engine.model.parameters(), kept.model.parameters()):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b)
    again = engine.generate(["What is 7 + 1?"], params)
    assert again == kept.generate(["What is 7 + 1?"], params)
    assert engine.generate(["What is 7 + 1?"], params) == again  # sampled again with no update between


needs_packing = pytest.mark.skipif(not hf.packable(torch.nn.Linear(4, 4).to(torch.bfloat16)),
                                   reason="no oneDNN bf16 kernels on this CPU")


@needs_packing
def test_a_bf16_copy_samples_through_packed_weights_exactly_as_through_plain_ones(policy, tiny_model_dir,
                                                                                     monkeypatch):
    """The copy's linear layers run on weights reordered once for oneDNN (the decode loop's matrix
    products), give the same tokens and log-probs as `F.linear`, and leave no patched forward."""
    _, tok = policy
    trained = load_model(str(tiny_model_dir))
    prompts, params = ["What is 2 + 3?", "Name a colour."], SamplingParams(n=3, max_new_tokens=12, seed=4)
    engine = build_engine("hf", trained, tok, dtype="bfloat16")
    with torch.profiler.profile() as prof:
        packed = engine.generate(prompts, params)
    calls = sum(e.count for e in prof.key_averages() if e.key == "mkldnn::_linear_pointwise")
    layers = len([m for m in trained.modules() if type(m) is torch.nn.Linear])
    assert calls >= layers * params.max_new_tokens // 2  # every linear layer, at every decode step
    assert not any("forward" in vars(m) for m in engine.model.modules())
    monkeypatch.setattr(hf, "packable", lambda model, free=True: [])
    plain = build_engine("hf", trained, tok, dtype="bfloat16").generate(prompts, params)
    assert packed == plain  # tokens and log-probs, bit for bit


@needs_packing
def test_packing_drops_only_the_plain_weights_nothing_else_shares(policy):
    """With `free`, each packed layer's plain weight is dropped, except the head's, which the tied
    input embedding still reads; without it nothing is dropped."""
    model, _ = policy
    copy = sampling_copy(model, "bfloat16")
    head, embedding = copy.get_output_embeddings(), copy.get_input_embeddings()
    assert head.weight is embedding.weight  # the tiny model ties them, as SmolLM2 does
    others = [m for m in hf.packable(copy) if m is not head]
    assert others
    with hf._packed_linears(copy, free=False):
        assert all(m.weight.numel() > 0 for m in others)
    with hf._packed_linears(copy, free=True):
        assert all(m.weight.numel() == 0 for m in others) and embedding.weight.numel() > 0
        ids = torch.tensor([[1, 2, 3]])
        assert copy(input_ids=ids).logits.shape == (1, 3, embedding.weight.shape[0])


needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


@needs_onednn
def test_an_fp32_policy_sampled_in_place_runs_through_packed_weights(policy, tiny_model_dir):
    """Where sampling stays in fp32 (CPUs without fast bf16), the trained policy's linear layers
    run on weights reordered for oneDNN while it samples: every layer at every decode step, with
    products within 1e-5 of `F.linear`'s, and nothing patched or dropped afterwards."""
    _, tok = policy
    trained = load_model(str(tiny_model_dir))
    engine = build_engine("hf", trained, tok, dtype="same")
    params = SamplingParams(n=3, max_new_tokens=12, seed=4)
    with torch.profiler.profile() as prof:
        engine.generate(["What is 2 + 3?", "Name a colour."], params)
    calls = sum(e.count for e in prof.key_averages() if e.key == "mkldnn::_linear_pointwise")
    layers = [m for m in trained.modules() if type(m) is torch.nn.Linear]
    assert calls >= len(layers) * params.max_new_tokens // 2
    assert not any("forward" in vars(m) for m in trained.modules())
    assert all(m.weight.numel() > 0 and m.weight.requires_grad for m in layers)
    ids = torch.tensor([[5, 9, 2, 7, 1, 3]])
    with torch.no_grad():
        plain = trained(input_ids=ids).logits
        with hf._packed_linears(trained, free=False):
            packed = trained(input_ids=ids).logits
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_frozen_model_sampled_in_place_is_not_packed(policy):
    """Without `free` the packed copy would add to memory unless it stands in for gradients that
    sampling does not hold: frozen weights (LoRA's base, a reference) keep their plain forward."""
    model, _ = policy
    frozen = sampling_copy(model, "float32")  # requires_grad off
    assert hf.packable(frozen, free=False) == []
    assert len(hf.packable(frozen, free=True)) == len([m for m in frozen.modules() if type(m) is torch.nn.Linear])
    assert hf.packable(model, free=False)


def test_a_copy_made_again_in_the_policys_own_dtype_has_its_own_storage(policy, tiny_model_dir):
    model, tok = policy
    trained = load_model(str(tiny_model_dir))
    engine = HFRolloutEngine(trained, tok, dtype="float32")  # a copy, though in the policy's dtype
    engine.generate(["What is 2 + 3?"], SamplingParams(n=1, max_new_tokens=4, seed=0))
    engine.update_weights(trained)
    ours = {p.untyped_storage().data_ptr() for p in engine.model.parameters()}
    assert not ours & {p.untyped_storage().data_ptr() for p in trained.parameters()}


def test_sampling_log_probs_agree_with_the_trainers_within_bf16_tolerance(policy):
    model, tok = policy
    engine = build_engine("hf", model, tok, dtype="bfloat16")
    groups = engine.generate(["What is 2 + 3?"], SamplingParams(n=4, max_new_tokens=24, seed=1))
    completions = groups[0]
    batch = collate(completions, tok.pad_token_id)
    logp, _ = sequence_logprobs(model, batch, temperature=1.0, autocast=False)
    diff = (logp - batch.sampler_logp).abs()[batch.mask.bool()]
    assert diff.mean() < 0.05 and diff.max() < 0.5


def test_one_prompt_encoder_for_text_and_chat(policy):
    _, tok = policy
    chat = [{"role": "user", "content": "hi"}]
    assert encode_prompt(tok, "hi") == tok("hi")["input_ids"]
    assert encode_prompt(tok, chat)[-3:] != encode_prompt(tok, "hi")[-3:]  # the template adds a turn


def test_sampling_dtype_resolution():
    cpu = torch.device("cpu")
    assert sampling_dtype("float32", "float32", cpu) == "same"
    assert sampling_dtype("bfloat16", "float32", cpu) == "bfloat16"
    assert sampling_dtype("auto", "float32", cpu, lora=True) == "same"
    with pytest.raises(ConfigError, match="LoRA"):
        sampling_dtype("bfloat16", "float32", cpu, lora=True)
    assert sampling_dtype("bfloat16", "float32", cpu, lora=True, engine="vllm") == "bfloat16"  # merged


def test_a_seeded_sample_does_not_depend_on_the_batch_it_is_drawn_in(policy):
    model, tok = policy
    prompts = ["What is 2 + 3?", "Name a colour.", "Count to three."]
    params = SamplingParams(n=2, max_new_tokens=12, seed=7)
    together = HFRolloutEngine(model, tok, batch_size=6).generate(prompts, params)
    small_batches = HFRolloutEngine(model, tok, batch_size=1).generate(prompts, params)
    alone = HFRolloutEngine(model, tok).generate(prompts[2:], SamplingParams(n=2, max_new_tokens=12, seed=7,
                                                                              first_index=2))
    ids = lambda groups: [[c.completion_ids for c in g] for g in groups]  # noqa: E731
    assert ids(together) == ids(small_batches)
    assert ids(alone) == ids(together)[2:]
    assert ids(together)[0][0] != ids(together)[0][1]  # the samples of a group still differ
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    HFRolloutEngine(model, tok).generate(prompts, params)
    assert torch.equal(torch.rand(1), expected)  # the global random stream is left alone
