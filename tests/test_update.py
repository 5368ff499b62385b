"""The update on a real tiny model: masks, and invariance to micro-batch splits."""

import pytest
import torch

from rlvr.config import build_config
from rlvr.models import load_model
from rlvr.types import Completion
from rlvr.update import UpdateSettings, collate, sequence_logprobs, update_policy

EOS, PAD = 2, 2


def completions(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        prompt = torch.randint(10, 400, (3 + i % 3,), generator=g).tolist()
        body = torch.randint(10, 400, (2 + (i * 2) % 5,), generator=g).tolist()
        ids = body + [EOS] if i % 2 == 0 else body  # odd ones were truncated (no EOS)
        out.append(Completion(text="x", finish_reason="stop" if i % 2 == 0 else "length",
                              prompt_ids=tuple(prompt), completion_ids=tuple(ids),
                              logprobs=tuple([-1.0] * len(ids))))
    return out


def test_collate_masks_prompt_and_padding_but_keeps_eos():
    cs = completions()
    b = collate(cs, PAD)
    W = b.prompt_width
    for i, c in enumerate(cs):
        n = len(c.completion_ids)
        assert b.mask[i].tolist() == [1] * n + [0] * (b.mask.shape[1] - n)
        assert b.input_ids[i, W:W + n].tolist() == list(c.completion_ids)
        assert b.attention_mask[i, :W - len(c.prompt_ids)].sum() == 0  # left padding
    assert b.input_ids[0, W + len(cs[0].completion_ids) - 1] == EOS and b.mask[0].sum() == len(cs[0].completion_ids)


def test_sequence_logprobs_match_a_plain_forward(tiny_model_dir):
    model = load_model(str(tiny_model_dir))
    cs = completions()
    b = collate(cs, PAD)
    logp, _ = sequence_logprobs(model, b, temperature=1.0, autocast=False)
    for i, c in enumerate(cs):  # each sequence alone, unpadded
        ids = torch.tensor([list(c.prompt_ids) + list(c.completion_ids)])
        logits = model(ids).logits[0, len(c.prompt_ids) - 1:-1]
        ref = torch.log_softmax(logits.float(), -1).gather(-1, ids[0, len(c.prompt_ids):, None]).squeeze(-1)
        assert torch.allclose(logp[i, :len(c.completion_ids)], ref, atol=1e-5)
        assert (logp[i, len(c.completion_ids):] == 0).all()


def sgd_update(model_dir, cfg, batch, adv, rows, with_reference, recompute=False, dtype="float64", device="cpu"):
    """One update of a tiny model (in float64 only the arithmetic's order can differ) by SGD at lr 1:
    its statistics and each parameter's change (on the CPU). The reference, if any, differs from
    the policy, so that the KL term matters. `recompute`: rlvr's activation checkpointing on the policy."""
    model = load_model(str(model_dir), dtype=dtype, device=device)
    if recompute:
        from rlvr import recompute as rc

        rc.enable(model)
    ref = load_model(str(model_dir), dtype=dtype, device=device) if with_reference else None
    if ref is not None:
        with torch.no_grad():
            for p in ref.parameters():
                p.add_(0.01)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    stats = update_policy(UpdateSettings.of(cfg, torch.device(device)), model, ref, opt, sched, batch, adv, rows)
    return stats, [(p.detach() - b).cpu() for p, b in zip(model.parameters(), before)]


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_gradient_accumulation_equals_one_big_batch(tiny_model_dir, agg, beta):
    cs = completions(seed=1)
    batch = collate(cs, PAD)
    adv = torch.tensor([1.0, -0.5, 0.0, 2.0, -1.0, 0.3])
    rows = torch.tensor([True, True, True, True, False, True])
    deltas = []
    for micro in (6, 1, 4):
        cfg = build_config(overrides=[f"--grpo.loss_agg={agg}", f"--grpo.beta={beta}",
                                      f"--optim.micro_batch_size={micro}", "--optim.max_grad_norm=0",
                                      "--model.train_autocast=false"])
        torch.manual_seed(0)
        stats, delta = sgd_update(tiny_model_dir, cfg, batch, adv, rows, with_reference=bool(beta))
        deltas.append(delta)
        assert stats["update/sequences"] == (5 if beta else 4)  # zero advantage is skipped when beta = 0
    for other in deltas[1:]:
        for a, b in zip(deltas[0], other):
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-8), (a - b).abs().max()
    assert any(d.abs().max() > 0 for d in deltas[0])


def test_the_update_reports_where_its_time_went(tiny_model_dir):
    """time/*_s per phase (issue 13's split): every phase present, none negative, together no more
    than the call's own wall time."""
    import time

    cfg = build_config(overrides=["--grpo.beta=0.1", "--optim.micro_batch_size=2", "--model.train_autocast=false"])
    model, ref = load_model(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    batch = collate(completions(seed=2), PAD)
    t0 = time.perf_counter()
    stats = update_policy(UpdateSettings.of(cfg, torch.device("cpu")), model, ref, opt, sched, batch,
                          torch.tensor([1.0, -1.0, 0.5, -0.5, 1.0, -1.0]), torch.ones(6, dtype=torch.bool))
    wall = time.perf_counter() - t0
    phases = {k: v for k, v in stats.items() if k.startswith("time/")}
    assert set(phases) == {"time/ref_logprobs_s", "time/policy_forward_s", "time/backward_s", "time/optimizer_s"}
    assert all(v >= 0 for v in phases.values()) and sum(phases.values()) <= wall
    assert phases["time/backward_s"] > 0 and phases["time/ref_logprobs_s"] > 0


def test_the_update_leaves_no_gradients_behind(tiny_model_dir):
    """Past the optimiser's step the gradients are dead weight (the policy's size in fp32): the
    update frees them, so the rollout that follows has their memory."""
    cfg = build_config(overrides=["--grpo.beta=0.1", "--optim.micro_batch_size=2"])
    model = load_model(str(tiny_model_dir))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    update_policy(UpdateSettings.of(cfg, torch.device("cpu")), model, load_model(str(tiny_model_dir)), opt,
                  torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), collate(completions(seed=2), PAD),
                  torch.tensor([1.0, -1.0, 0.5, -0.5, 1.0, -1.0]), torch.ones(6, dtype=torch.bool))
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))  # it did step
    assert all(p.grad is None for p in model.parameters())


def test_a_micro_batch_drops_the_columns_that_all_its_rows_pad(tiny_model_dir):
    """`TokenBatch.rows` keeps only the widest prompt and the longest completion of its rows, and
    the log-probs of those rows are the same as at the full batch's width."""
    cs = completions(seed=3)
    batch = collate(cs, PAD)
    short = torch.tensor([i for i, c in enumerate(cs) if len(c.completion_ids) <= 3 and len(c.prompt_ids) <= 4])
    sub = batch.rows(short)
    assert sub.prompt_width == max(len(cs[i].prompt_ids) for i in short.tolist()) < batch.prompt_width
    assert sub.mask.shape[1] == max(len(cs[i].completion_ids) for i in short.tolist()) < batch.mask.shape[1]
    assert sub.input_ids.shape[1] == sub.prompt_width + sub.mask.shape[1]
    model = load_model(str(tiny_model_dir), dtype="float64")
    full, _ = sequence_logprobs(model, batch, temperature=1.0, autocast=False)
    trimmed, _ = sequence_logprobs(model, sub, temperature=1.0, autocast=False)
    width = sub.mask.shape[1]
    assert torch.allclose(trimmed, full[short, :width], atol=1e-10)
    assert (full[short, width:] == 0).all()


def grouped_completions(seed=2, prompts=3, group=3):
    """`group` completions of each of `prompts` prompts of different lengths (a GRPO batch)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for p in range(prompts):
        prompt = torch.randint(10, 400, (3 + 2 * p,), generator=g).tolist()
        for j in range(group):
            body = torch.randint(10, 400, (2 + (p + 2 * j) % 5,), generator=g).tolist()
            out.append(Completion(text="x", finish_reason="stop", prompt_ids=tuple(prompt),
                                  completion_ids=tuple(body + [EOS]), logprobs=tuple([-1.0] * (len(body) + 1))))
    return out


@pytest.mark.parametrize("inner", [1, 2])
@pytest.mark.parametrize("micro", [2, 9])
def test_shared_prompts_give_the_update_of_whole_rows(tiny_model_dir, inner, micro):
    """Each distinct prompt forwarded once (its keys and values reused by its samples, gradients
    sent back through it once) moves the weights as the row-by-row forward does. In float64, but
    transformers' RMSNorm computes in float32, and the shared path sums a prompt's gradient over
    its samples before that norm's backward rather than after: float32 rounding, 1e-7 relative."""
    batch = collate(grouped_completions(), PAD)
    adv = torch.linspace(-1.0, 1.0, len(batch.mask))
    rows = torch.ones(len(adv), dtype=torch.bool)
    deltas, stats = [], []
    for share in (False, True):
        cfg = build_config(overrides=[f"--optim.share_prompts={str(share).lower()}", "--grpo.beta=0.1",
                                      f"--grpo.inner_steps={inner}", f"--optim.micro_batch_size={micro}",
                                      "--optim.max_grad_norm=0", "--model.train_autocast=false"])
        stat, delta = sgd_update(tiny_model_dir, cfg, batch, adv, rows, with_reference=True)
        stats.append(stat)
        deltas.append(delta)
    for a, b in zip(*deltas):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * a.abs().max()), (a - b).abs().max()
    assert any(d.abs().max() > 0 for d in deltas[1])
    for key in ("loss", "kl/ref", "entropy"):
        assert stats[0][key] == pytest.approx(stats[1][key], rel=1e-6, abs=1e-12), key


def test_a_reference_with_bf16_linears_scores_as_its_fp32_weights_under_autocast(tiny_model_dir):
    """`bf16_linears` halves the reference's linear layers; under bf16 autocast (where rlvr uses
    it) the log-probs are bitwise those of the fp32 reference."""
    from rlvr.policy import bf16_linears

    reference = load_model(str(tiny_model_dir)).eval().requires_grad_(False)
    halved = load_model(str(tiny_model_dir)).eval().requires_grad_(False)
    bf16_linears(halved)
    linears = [m for m in halved.modules() if isinstance(m, torch.nn.Linear)]
    assert any(m.weight.dtype == torch.bfloat16 for m in linears)
    assert halved.get_input_embeddings().weight.dtype == torch.float32  # the embedding (and a tied head) stay
    batch = collate(grouped_completions(), PAD)
    with torch.no_grad():
        expected, _ = sequence_logprobs(reference, batch, temperature=1.0, autocast=True)
        got, _ = sequence_logprobs(halved, batch, temperature=1.0, autocast=True)
        fp32, _ = sequence_logprobs(reference, batch, temperature=1.0, autocast=False)
    assert torch.equal(got, expected)
    assert not torch.equal(fp32, expected)  # autocast does change the numbers: the test can tell
