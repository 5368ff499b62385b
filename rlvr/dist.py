"""Data parallelism on torch.distributed: who this process is, and the few reductions the loop needs.

Under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK in the environment) `init` joins the process group
(`gloo` on CPU, `nccl` on CUDA) and picks `cuda:LOCAL_RANK`; a single process has world size 1,
joins nothing, and every helper returns its input unchanged: one process pays nothing for this.

Gradients are summed with one plain all-reduce per optimiser step (`all_reduce_grads`) rather
than through `DistributedDataParallel`: the loss of every rank is divided by the *global* sequence
and token counts, so the sum of the ranks' gradients is exactly the single-process gradient, and
ranks may run different numbers of micro-batches (even none) without any hook waiting for a
backward pass that never comes. The cost is no overlap of communication with the backward pass,
which is small next to rollout time at the model sizes this trainer targets.

Sharded models (FSDP2, `model.fsdp`) reduce their gradients inside backward instead: see
`rlvr.sharding`. This module does not launch processes: `torchrun` does.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


_world = World()


def world() -> World:
    return _world


def is_main() -> bool:
    return _world.main


def init(device: str = "auto", timeout_s: float = 1800.0) -> World:
    """Join the process group when launched by torchrun; returns this process's place in it."""
    global _world
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        _world = World()
        return _world
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and not device.startswith("cpu")
    if cuda:
        torch.cuda.set_device(local)
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    _world = World(rank, size, local)
    return _world


def device_for(name: str) -> str:
    """The device of this rank: `auto`/`cuda` become `cuda:LOCAL_RANK` under torchrun."""
    if _world.size > 1 and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{_world.local_rank}"
    return name


def shutdown() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def block(n: int) -> tuple[int, int]:
    """[lo, hi): this rank's contiguous share of n items (sizes differ by at most one)."""
    return _world.rank * n // _world.size, (_world.rank + 1) * n // _world.size


def shard(items: Sequence[Any]) -> list[Any]:
    """This rank's share of `items`: every size-th one, starting at the rank."""
    return list(items[_world.rank::_world.size])


def all_sum(values: Iterable[float]) -> list[float]:
    """Element-wise sum over ranks (float64)."""
    values = list(values)
    if _world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    tdist.all_reduce(t)
    return t.tolist()


def all_max(values: Iterable[float]) -> list[float]:
    """Element-wise maximum over ranks (float64)."""
    values = list(values)
    if _world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return t.tolist()


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (picklable objects)."""
    if _world.size == 1:
        return [obj]
    out: list[Any] = [None] * _world.size
    tdist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any: for decisions that must be the same everywhere."""
    return all_sum([float(flag)])[0] > 0


def all_reduce_grads(params: Sequence[torch.Tensor]) -> None:
    """Sum gradients over ranks in one flat buffer; a parameter without a gradient counts as 0."""
    if _world.size == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not any_rank(any(p.grad is not None for p in params)):
        return  # no rank has a gradient: leave them all None, as one process would
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    tdist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def barrier() -> None:
    if _world.size > 1:
        tdist.barrier()


def _device() -> torch.device:
    return torch.device(f"cuda:{_world.local_rank}") if tdist.get_backend() == "nccl" else torch.device("cpu")
