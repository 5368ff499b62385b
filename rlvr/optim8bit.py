"""AdamW with 8-bit moments: 2 bytes of optimizer state per parameter instead of AdamW's 8.

Each moment of a tensor is kept in blocks of 256 values: one fp32 scale per block (its largest
magnitude) and, per value, 8 bits of the square root of its magnitude over that scale: the first
moment signed (127 levels each side), the second moment's own square root (255 levels, so the
moment itself at its fourth root). The square root spends the levels where the values are: a
relative rounding error of at most 1/(127 sqrt f) for the first moment and 1/(255 sqrt f) for the
root of the second, at a fraction f of the block's largest (0.8% and 0.4% at the largest, 2.5% and
1.2% at a tenth of it). A first moment under 1.6e-5 of its block's largest rounds to zero, a root
under 3.8e-6 (a second moment under 1.5e-11).

An element whose root rounds to zero while its first moment does not would divide by `eps`; it
takes no step instead. Tensors under 4,096 elements (norm gains, biases) keep fp32 moments and
take AdamW's own update. The update runs in fp32, `chunk` values at a time, so the step's
temporaries stay a few MB whatever the tensor's size.

On the 135M-parameter default model the state is 0.27 GB instead of 1.08 GB; see README.md
(memory) for what it does to the run's peak and `tests/test_optim8bit.py` for how far its updates
stray from AdamW's."""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch

BLOCK = 256
MIN_8BIT = 4096  # smaller tensors keep fp32 moments
MIN_SCALE = 1e-30  # a block's scale at least: levels^2 / scale stays finite (0 * inf would be NaN, cast to 8 bits)
_PACKED = ("exp_avg", "exp_avg_scale", "exp_avg_root", "exp_avg_root_scale")


class AdamW8bit(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, chunk: int = 1 << 20):
        if chunk < BLOCK or chunk % BLOCK:
            raise ValueError(f"chunk must be a positive multiple of {BLOCK}, got {chunk}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.chunk_rows = chunk // BLOCK

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW8bit does not take sparse gradients")
                state = self.state[p]
                if not state:
                    self._init_state(p, state)
                state["step"] += 1
                if "exp_avg_sq" in state:
                    self._fp32_update(p, state, group)
                else:
                    self._8bit_update(p, state, group)
        return loss

    @staticmethod
    def _init_state(p: torch.Tensor, state: dict) -> None:
        state["step"] = torch.tensor(0.0)
        if p.numel() < MIN_8BIT:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format, dtype=torch.float32)
            state["exp_avg_sq"] = torch.zeros_like(state["exp_avg"])
            return
        rows = -(-p.numel() // BLOCK)
        for key, dtype in (("exp_avg", torch.int8), ("exp_avg_root", torch.uint8)):
            state[key] = torch.zeros(rows, BLOCK, dtype=dtype, device=p.device)
            state[key + "_scale"] = torch.zeros(rows, 1, dtype=torch.float32, device=p.device)

    @staticmethod
    def _fp32_update(p: torch.Tensor, state: dict, group: dict) -> None:
        """AdamW's own arithmetic (torch.optim.AdamW, single-tensor path)."""
        lr, (b1, b2), eps, step = group["lr"], group["betas"], group["eps"], state["step"].item()
        m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad.float()
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / math.sqrt(1 - b2 ** step)).add_(eps)
        w = p.float()
        w.mul_(1 - lr * group["weight_decay"]).addcdiv_(m, denom, value=-lr / (1 - b1 ** step))
        if p.dtype != torch.float32:  # `w` is a copy, not `p` itself
            p.copy_(w)

    def _8bit_update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        lr, (b1, b2), eps, step = group["lr"], group["betas"], group["eps"], state["step"].item()
        if not p.is_contiguous():
            raise RuntimeError("AdamW8bit needs contiguous parameters")
        flat, grad, n = p.view(-1), p.grad.reshape(-1), p.numel()
        root2, decay, step_size = math.sqrt(1 - b2 ** step), 1 - lr * group["weight_decay"], lr / (1 - b1 ** step)
        m8, ms, u8, us = (state[k] for k in _PACKED)
        for r0 in range(0, m8.shape[0], self.chunk_rows):
            r1 = min(r0 + self.chunk_rows, m8.shape[0])
            lo, hi = r0 * BLOCK, min(r1 * BLOCK, n)
            g = _padded(grad[lo:hi].float(), (r1 - r0) * BLOCK).view(-1, BLOCK)
            m = _unpack(m8[r0:r1], ms[r0:r1], 127)
            v = _unpack(u8[r0:r1], us[r0:r1], 255).square_()
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            u = v.sqrt_()
            upd = m / (u / root2).add_(eps)
            upd.masked_fill_(u == 0, 0.0)
            w = flat[lo:hi].float()
            w.mul_(decay).sub_(upd.view(-1)[: hi - lo], alpha=step_size)
            if p.dtype != torch.float32:  # `w` is a copy, not the slice itself
                flat[lo:hi].copy_(w)
            _pack(m, m8[r0:r1], ms[r0:r1], 127)
            _pack(u, u8[r0:r1], us[r0:r1], 255)

    def load_state_dict(self, state_dict: dict) -> None:
        """Like torch's, which casts every state tensor to its parameter's dtype: the 8-bit
        moments and their fp32 scales are set aside and put back as they were saved."""
        packed, rest = {}, {}
        for i, s in state_dict["state"].items():
            packed[i] = {k: v for k, v in s.items() if k in _PACKED and "exp_avg_root" in s}
            rest[i] = {k: v for k, v in s.items() if k not in packed[i]}
        super().load_state_dict({**state_dict, "state": rest})
        saved = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = dict(zip(saved, (p for group in self.param_groups for p in group["params"])))
        for i, tensors in packed.items():
            self.state[params[i]].update({k: v.to(params[i].device) for k, v in tensors.items()})


def _padded(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.numel() == size else torch.nn.functional.pad(x, (0, size - x.numel()))


def _pack(x: torch.Tensor, out: torch.Tensor, scale: torch.Tensor, levels: int) -> None:
    """Store the (rows, 256) fp32 `x` as `levels` * sqrt(|x| / scale), rounded, with its sign, in
    the 8-bit `out` (unsigned: `x` >= 0, and `x` is overwritten); `scale` gets each row's largest |x|."""
    signed = out.dtype.is_signed
    magnitude = x.abs() if signed else x
    torch.amax(magnitude, dim=1, keepdim=True, out=scale)
    scale.clamp_(min=MIN_SCALE)
    magnitude.mul_(levels * levels / scale).sqrt_().round_()
    out.copy_(magnitude.copysign_(x) if signed else magnitude)


def _unpack(q: torch.Tensor, scale: torch.Tensor, levels: int) -> torch.Tensor:
    """The fp32 values `_pack` stored (a new tensor)."""
    y = q.float()
    y = y.mul_(y.abs()) if q.dtype.is_signed else y.square_()
    return y.mul_(scale / (levels * levels))
