"""AdamW with 8-bit moments (`optim.name=adamw_8bit`) against torch's AdamW."""
from __future__ import annotations

import io

import pytest
import torch

from rlvr.config import build_config
from rlvr.errors import ConfigError
from rlvr.optim8bit import AdamW8bit, _pack, _unpack

HYPER = dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01)


def _pair(shape, seed=0):
    torch.manual_seed(seed)
    a = torch.nn.Parameter(torch.randn(shape) * 0.02)
    b = torch.nn.Parameter(a.detach().clone())
    return a, b


def _step(params, optimizers, grad):
    for p, opt in zip(params, optimizers):
        p.grad = grad.clone()
        opt.step()


def test_tensors_under_4096_elements_take_adamws_own_update():
    a, b = _pair((63, 64))
    ref, low = torch.optim.AdamW([a], **HYPER), AdamW8bit([b], **HYPER)
    for i in range(5):
        _step((a, b), (ref, low), torch.randn(63, 64) * 10.0 ** -i)
    assert torch.equal(a, b)
    assert low.state[b]["exp_avg_sq"].dtype == torch.float32


def test_the_state_is_2_bytes_a_parameter_against_adamws_8():
    a, b = _pair((1000, 1024))
    ref, low = torch.optim.AdamW([a], **HYPER), AdamW8bit([b], **HYPER)
    _step((a, b), (ref, low), torch.randn(1000, 1024))

    def nbytes(opt, p):
        return sum(t.numel() * t.element_size() for t in opt.state[p].values() if t.dim() > 0)

    assert nbytes(ref, a) == 8 * a.numel()
    assert nbytes(low, b) <= 2.04 * b.numel()  # two 8-bit moments and one fp32 scale per 256 values


def _adam_part(p, before, opt):
    """What the step moved `p` by, less the decoupled weight decay (exact in both optimizers)."""
    group = opt.param_groups[0]
    return (p.detach() - before * (1 - group["lr"] * group["weight_decay"])).flatten()


def test_each_element_of_a_step_is_within_one_rounding_of_each_moment_of_adamws():
    """The first step uses the fp32 moments it has just made; the second reads them back from 8 bits.
    With a zero second gradient its moments are the first's, decayed: one rounding each."""
    a, b = _pair((70, 4096 + 100))  # a partial last block
    ref, low = torch.optim.AdamW([a], **HYPER), AdamW8bit([b], **HYPER, chunk=4096)
    torch.manual_seed(1)
    grad = torch.randn(a.shape) * torch.logspace(-3, 0, a.shape[1])
    before = a.detach().clone()
    _step((a, b), (ref, low), grad)
    torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-6, atol=1e-9)
    before = a.detach().clone()
    b.data.copy_(before)
    _step((a, b), (ref, low), torch.zeros(a.shape))
    exact, got = _adam_part(a, before, ref), _adam_part(b, before, low)
    blocks = torch.nn.functional.pad(grad.flatten().abs(), (0, -grad.numel() % 256)).view(-1, 256)
    f = (blocks / blocks.amax(1, keepdim=True)).flatten()[: grad.numel()]  # each moment's fraction of its block's largest
    e_m, e_u = (1 + 0.5 / (127 * f.sqrt())) ** 2 - 1, (1 + 0.5 / (255 * f.sqrt())) ** 2 - 1
    bound = (e_m + e_u) / (1 - e_u.clamp(max=0.5)) * 1.001 + 1e-5
    err = (got - exact).abs() / exact.abs()
    near = f >= 0.01
    assert near.float().mean() > 0.9
    assert (err[near] <= bound[near]).all(), (err[near] / bound[near]).max()
    assert (got[f < 1e-5] == 0).all()  # a first moment under 1.6e-5 of its block's largest rounds to 0


def test_ten_steps_stay_within_two_percent_of_adamws():
    a, b = _pair((64, 4096))
    ref, low = torch.optim.AdamW([a], **HYPER), AdamW8bit([b], **HYPER)
    torch.manual_seed(2)
    scales = torch.logspace(-3, 0, 4096)
    before = a.detach().clone()
    for _ in range(10):
        _step((a, b), (ref, low), torch.randn(a.shape) * scales)
    drift = ((a - b).norm() / (a.detach() - before).norm()).item()
    assert drift < 0.02, drift


def test_a_small_network_trains_as_far_as_with_adamw():
    def train(make):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
        x = torch.randn(2048, 64)
        y = x @ (torch.randn(64, 64) / 8)
        opt, gen = make(net.parameters()), torch.Generator().manual_seed(1)
        for _ in range(200):
            i = torch.randint(0, 2048, (32,), generator=gen)
            opt.zero_grad()
            ((net(x[i]) - y[i]) ** 2).mean().backward()
            opt.step()
        return ((net(x) - y) ** 2).mean().item(), torch.cat([p.detach().flatten() for p in net.parameters()])

    (loss_ref, w_ref), (loss_low, w_low) = (train(lambda ps: torch.optim.AdamW(ps, **HYPER)),
                                            train(lambda ps: AdamW8bit(ps, **HYPER)))
    assert abs(loss_low - loss_ref) <= 0.005 * loss_ref, (loss_low, loss_ref)
    assert ((w_low - w_ref).norm() / w_ref.norm()).item() < 0.015  # float8 (e4m3) moments: 0.05


def test_an_element_whose_root_rounds_to_zero_takes_no_step():
    """Two steps leave a block's small elements with a first moment that survives 8 bits (the big
    element's alternating gradient keeps the block's largest first moment small) and a root that
    does not; a third, zero gradient would divide that first moment by eps."""
    p = torch.nn.Parameter(torch.zeros(4096))
    opt = AdamW8bit([p], lr=1e-3, betas=(0.9, 0.99))
    for sign in (1.0, -1.0):
        g = torch.full((4096,), 3e-6)
        g[0] = sign
        p.grad = g
        opt.step()
    assert (opt.state[p]["exp_avg_root"][0, 1:] == 0).all()
    assert (opt.state[p]["exp_avg"][0, 1:] != 0).all()
    before = p.detach().clone()
    g = torch.zeros(4096)
    g[0] = 1.0
    p.grad = g
    opt.step()
    moved = (p.detach() - before).abs()
    assert moved[1:256].max().item() == 0.0  # dividing by eps: a step of about 50 lr
    assert moved[256:].min().item() > 0.5e-3  # the other blocks' (all 3e-6) step as AdamW's would


def test_a_saved_state_loads_as_8_bits_and_continues_exactly():
    a, b = _pair((128, 512))
    first = AdamW8bit([a], **HYPER)
    for _ in range(3):
        _step((a,), (first,), torch.randn(128, 512))
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    b.data.copy_(a.detach())
    second = AdamW8bit([b], **HYPER)
    second.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert second.state[b]["exp_avg"].dtype == torch.int8
    assert second.state[b]["exp_avg_root"].dtype == torch.uint8
    assert second.state[b]["exp_avg_scale"].dtype == torch.float32
    grad = torch.randn(128, 512)
    _step((a, b), (first, second), grad)
    assert torch.equal(a, b)


def test_the_steps_temporaries_are_one_chunk_not_the_tensor():
    p = torch.nn.Parameter(torch.randn(1 << 20))
    opt = AdamW8bit([p], lr=1e-3, chunk=1 << 14)
    p.grad = torch.randn(1 << 20)
    opt.step()  # the first step allocates the state
    with torch.profiler.profile(profile_memory=True) as prof:
        opt.step()
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest <= (1 << 14) * 4, largest  # the tensor's fp32 copy would be 4 MB


@pytest.mark.parametrize("args,needle", [
    (["--optim.name=adam8"], r"optim\.name.*'adamw', 'adamw_8bit'"),
    (["--optim.name=adamw_8bit", "--model.fsdp=true"], r"adamw_8bit does not take FSDP"),
])
def test_bad_optimizer_settings_are_config_errors(args, needle):
    with pytest.raises(ConfigError, match=needle):
        build_config(overrides=args)


def test_an_all_zero_block_packs_without_nan():
    """A block of zeros (a first moment that never saw a gradient) scales by levels^2 / its scale:
    with the scale clamped to float32's smallest normal that is inf, and 0 * inf is NaN, which the
    cast to 8 bits turns into whatever the platform makes of it."""
    for dtype, levels in ((torch.int8, 127), (torch.uint8, 255)):
        x = torch.zeros(2, 256)
        x[1] = torch.rand(256)
        out, scale = torch.empty(2, 256, dtype=dtype), torch.empty(2, 1)
        _pack(x, out, scale, levels)
        assert torch.isfinite(levels * levels / scale).all() and (out[0] == 0).all()
        assert torch.equal(_unpack(out, scale, levels)[0], torch.zeros(256))
