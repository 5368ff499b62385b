"""The HF engine's own sampling loop: the same samples as `generate`, rows independent of the
batch they finish in."""

import pytest
import torch

from rlvr.models import load_model, load_tokenizer
from rlvr.rollout import decode
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.hf import HFRolloutEngine, draw, warp


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    return load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))


PROMPTS = ["What is 2 + 3?", "Name a colour.", [{"role": "user", "content": "Count to three, slowly."}]]


def ids_and_logps(groups):
    return ([[c.completion_ids for c in g] for g in groups], [[c.logprobs for c in g] for g in groups],
            [[c.finish_reason for c in g] for g in groups])


@pytest.mark.parametrize("params", [SamplingParams(n=3, max_new_tokens=20, seed=5),
                                    SamplingParams(n=2, max_new_tokens=16, seed=2, temperature=0.7, top_k=20,
                                                   top_p=0.9),
                                    SamplingParams(n=2, max_new_tokens=12, temperature=0),
                                    SamplingParams(n=2, max_new_tokens=75, seed=9)])  # the cache grows 3 times
def test_the_own_loop_samples_what_generate_samples(policy, params):
    model, tok = policy
    own = HFRolloutEngine(model, tok, loop="own", batch_size=4).generate(PROMPTS, params)
    gen = HFRolloutEngine(model, tok, loop="generate", batch_size=4).generate(PROMPTS, params)
    own_ids, own_lp, own_finish = ids_and_logps(own)
    gen_ids, gen_lp, gen_finish = ids_and_logps(gen)
    assert own_ids == gen_ids and own_finish == gen_finish
    for a, b in zip(sum(own_lp, []), sum(gen_lp, [])):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4)
    assert len({c for g in own_ids for c in g}) > 1  # not one degenerate completion everywhere


def test_rows_that_finish_early_leave_the_others_unchanged(policy):
    """Stopping on a third of the vocabulary makes rows end at different steps, so the batch is
    compacted several times; each row must come out as it does when sampled alone."""
    model, tok = policy
    model.eval()
    stops = list(range(0, tok.vocab_size if hasattr(tok, "vocab_size") else 1000, 3))
    prompts = [tok("What is 2 + 3?")["input_ids"], tok("Name a colour, any colour.")["input_ids"]]

    def chooser(seeds):
        generators = [torch.Generator().manual_seed(s) for s in seeds]

        def choose(scores, rows):
            lp = torch.log_softmax(warp(scores, 1.0, 0, 1.0), -1)
            t = draw(lp, [generators[r] for r in rows.tolist()])
            return t, lp.gather(-1, t[:, None]).squeeze(-1)
        return choose

    seeds = list(range(10, 18))
    together = decode.sample_rows(model, prompts, [5, 3], 24, chooser(seeds), stops, tok.pad_token_id)
    lengths = [len(t) for t in together[0]]
    assert len(set(lengths)) > 2 and min(lengths) < 24  # rows did finish at different steps
    for r, seed in enumerate(seeds):
        alone = decode.sample_rows(model, [prompts[0 if r < 5 else 1]], [1], 24, chooser([seed]), stops,
                                   tok.pad_token_id)
        assert together[0][r] == alone[0][0]
        assert torch.allclose(torch.tensor(together[1][r]), torch.tensor(alone[1][0]), atol=1e-5)
        assert together[0][r][-1] in stops or len(together[0][r]) == 24


def test_inverse_cdf_draws_follow_the_distribution():
    logprobs = torch.log(torch.tensor([[0.0, 0.5, 0.2, 0.3]])).expand(20000, 4)
    tokens = draw(logprobs, None)
    freq = torch.bincount(tokens, minlength=4).float() / len(tokens)
    assert freq[0] == 0  # a token with no mass is never drawn
    assert torch.allclose(freq, torch.tensor([0.0, 0.5, 0.2, 0.3]), atol=0.015)


def test_loop_option_is_checked(policy):
    model, tok = policy
    assert HFRolloutEngine(model, tok).loop == "own"  # CPU, a Llama
    with pytest.raises(Exception, match="loop must be"):
        HFRolloutEngine(model, tok, loop="fast")


def test_the_prefill_multiplies_the_head_once(tiny_model_dir):
    """The prompts' last states sliced as (P, 1, H) are not contiguous, and a bf16 head on CPU then
    multiplies them by P expanded copies of itself (0.45 GB for SmolLM2's head and 8 prompts)."""
    model = load_model(str(tiny_model_dir), dtype="bfloat16").eval().requires_grad_(False)  # as sampling copies are
    tok, head = load_tokenizer(str(tiny_model_dir)), model.get_output_embeddings().weight
    prompts = [tok(text)["input_ids"] for text in ("What is 2 + 3?", "Name a colour.", "Count to three.", "Hi.")]

    def greedy(scores, rows):
        lp = torch.log_softmax(scores, -1)
        return lp.argmax(-1), lp.max(-1).values

    with torch.profiler.profile(profile_memory=True) as prof:
        decode.sample_rows(model, prompts, [2] * len(prompts), 3, greedy, [], tok.pad_token_id)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < 2 * head.numel() * head.element_size(), (largest, head.numel() * head.element_size())


def test_the_cache_layer_grows_a_chunk_at_a_time_and_keeps_what_was_written():
    layer = decode.GrowingLayer(capacity=70)
    prompt = torch.randn(2, 3, 5, 4)
    keys, _ = layer.update(prompt, prompt + 1)
    assert layer.room == decode.GROW and torch.equal(keys, prompt)
    written = [prompt]
    for end in range(6, 71):
        layer.reserve(end)
        token = torch.randn(2, 3, 1, 4)
        keys, values = layer.update(token, token + 1)
        written.append(token)
        assert keys.shape[2] == layer.room == min(70, -(-end // decode.GROW) * decode.GROW)
        assert torch.equal(keys[:, :, :end], torch.cat(written, 2))
        assert torch.equal(values[:, :, :end], torch.cat(written, 2) + 1) and not keys[:, :, end:].any()
    with pytest.raises(RuntimeError, match="capacity 70 exceeded"):
        layer.reserve(71)
