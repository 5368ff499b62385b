"""rlvr's activation checkpointing (`rlvr.recompute`): the same update, with shared prompts and
rlvr's attention, for a fraction of the saved activations."""

import torch

from rlvr import recompute
from rlvr.config import build_config
from rlvr.models import load_model
from rlvr.update import _shared_prompts, UpdateSettings, collate, logprob_model, sequence_logprobs
from tests.test_update import PAD, grouped_completions, sgd_update


def test_checkpointed_layers_give_the_update_of_the_whole_forward(tiny_model_dir):
    """Shared prompts under checkpointing: each layer's replay appends to the prompt's keys (not
    to its own) and attends as its first run did, so the weights move as without checkpointing."""
    batch = collate(grouped_completions(), PAD)
    adv = torch.linspace(-1.0, 1.0, len(batch.mask))
    rows = torch.ones(len(adv), dtype=torch.bool)
    cfg = build_config(overrides=["--grpo.beta=0.1", "--optim.micro_batch_size=5", "--optim.max_grad_norm=0",
                                  "--model.train_autocast=false"])
    plain_stats, plain = sgd_update(tiny_model_dir, cfg, batch, adv, rows, with_reference=True)
    stats, delta = sgd_update(tiny_model_dir, cfg, batch, adv, rows, with_reference=True, recompute=True)
    for a, b in zip(plain, delta):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * a.abs().max()), (a - b).abs().max()
    assert any(d.abs().max() > 0 for d in delta)
    for key in ("loss", "kl/ref", "entropy"):
        assert stats[key] == plain_stats[key] or abs(stats[key] - plain_stats[key]) < 1e-12, key


def test_checkpointing_keeps_prompt_sharing(tiny_model_dir):
    model = load_model(str(tiny_model_dir))
    recompute.enable(model)
    recompute.enable(model)  # idempotent: one wrapper per layer
    u = UpdateSettings.of(build_config(overrides=[]), torch.device("cpu"))
    assert _shared_prompts(u, model, collate(grouped_completions(), PAD), False, torch.device("cpu")) is not None


def saved_bytes(model, batch):
    """Bytes of activations (not weights) autograd saves for backward in one forward with grad
    (log-probs of `batch`)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    total = 0

    def pack(t):
        nonlocal total
        if t.untyped_storage().data_ptr() not in weights:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, _ = sequence_logprobs(model, batch, temperature=1.0, autocast=False)
    logp.sum().backward()
    return total


def test_checkpointing_saves_a_fraction_of_the_activations_and_the_same_gradients(tiny_model_dir):
    batch = collate(grouped_completions(), PAD)
    plain = load_model(str(tiny_model_dir), dtype="float64").train()
    checked = load_model(str(tiny_model_dir), dtype="float64").train()
    recompute.enable(checked)
    full, kept = saved_bytes(plain, batch), saved_bytes(checked, batch)
    assert kept < full / 2, (kept, full)
    for p, q in zip(plain.parameters(), checked.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=1e-14)


def test_without_grad_layers_run_as_they_are(tiny_model_dir):
    model = load_model(str(tiny_model_dir)).train()
    recompute.enable(model)
    batch = collate(grouped_completions(), PAD)
    with torch.no_grad():
        a, _ = sequence_logprobs(model, batch, temperature=1.0, autocast=False)
    b, _ = sequence_logprobs(logprob_model(load_model(str(tiny_model_dir))), batch, temperature=1.0, autocast=False)
    assert torch.equal(a, b.detach())


def test_the_shared_prompts_forward_is_checkpointed_too(tiny_model_dir):
    """The prompts' graph lives until every micro-batch has run: it is checkpointed like the rest."""
    from rlvr import prefix

    batch = collate(grouped_completions(), PAD)
    ids, attention, _ = prefix.distinct_prompts(batch.input_ids, batch.attention_mask, batch.prompt_width)
    sizes = []
    for checkpointed in (False, True):
        model = load_model(str(tiny_model_dir), dtype="float64")
        if checkpointed:
            recompute.enable(model)
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        total = 0

        def pack(t):
            nonlocal total
            total += 0 if t.untyped_storage().data_ptr() in weights else t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            prefix.prompt_states(model, ids, attention, autocast=False)
        sizes.append(total)
    assert sizes[1] < sizes[0] / 2, sizes


def test_the_replay_leaves_no_keys_of_its_own_in_the_cache(tiny_model_dir):
    """A replay appends its own keys and values to the restored cache layer; left there, they would
    keep the replay's graph (every tensor it saved) alive until the whole backward ends. The first
    run's stay for a caller that reads the cache after the forward."""
    from transformers.cache_utils import Cache, DynamicLayer

    from rlvr.attention import cache_keyword

    model = load_model(str(tiny_model_dir), dtype="float64")
    recompute.enable(model)
    decoder = model.get_decoder()
    prompt, completion = torch.randint(3, 60, (2, 5)), torch.randint(3, 60, (2, 4))
    cache = Cache(layers=[DynamicLayer() for _ in recompute.decoder_layers(model)])
    with torch.no_grad():
        decoder(input_ids=prompt, use_cache=True, **{cache_keyword(decoder): cache})
    prompt_kv = [(layer.keys, layer.values) for layer in cache.layers]
    hidden = decoder(input_ids=completion, use_cache=True, **{cache_keyword(decoder): cache},
                     position_ids=torch.arange(5, 9).expand(2, -1)).last_hidden_state
    assert all(layer.keys.shape[2] == 9 for layer in cache.layers)  # the first run's
    hidden.pow(2).sum().backward()
    assert all(layer.keys is k and layer.values is v for layer, (k, v) in zip(cache.layers, prompt_kv))


def test_a_checkpointed_continuation_keeps_no_keys_past_its_forward(tiny_model_dir, monkeypatch):
    """The prompt + completion keys and values of a micro-batch's forward are not needed in backward
    (each layer's replay makes its own), but the cache that holds them lives until backward: the
    forward drops them."""
    import weakref

    from transformers.cache_utils import DynamicLayer

    from rlvr import prefix

    made = []
    update = DynamicLayer.update

    def recording(self, *args, **kwargs):
        keys, values = update(self, *args, **kwargs)
        made.extend((weakref.ref(keys), weakref.ref(values)))
        return keys, values

    batch = collate(grouped_completions(), PAD)
    ids, attention, index = prefix.distinct_prompts(batch.input_ids, batch.attention_mask, batch.prompt_width)
    model = load_model(str(tiny_model_dir), dtype="float64")
    recompute.enable(model)
    states = prefix.prompt_states(model, ids, attention, autocast=False)
    monkeypatch.setattr(DynamicLayer, "update", recording)
    W = batch.prompt_width
    logp, _ = prefix.completion_logprobs(model, states, index, batch.input_ids[:, W:], batch.mask, 1.0, False)
    assert made and all(ref() is None for ref in made)
    logp.sum().backward()  # the replays still find the prompt's keys
    assert states.leaves[0].grad is not None and states.leaves[0].grad.abs().sum() > 0
