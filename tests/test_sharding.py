"""FSDP2 on gloo (CPU): the sharded update is the single-process update; sharded checkpoints
resume at another world size, sharded or not."""

import os

import pytest
import torch
import torch.multiprocessing as mp

from rlvr import dist, sharding
from rlvr.config import build_config
from rlvr.models import load_model
from rlvr.update import LogProbModel, UpdateSettings, collate, update_policy
from test_dist import ADV, ROWS, dp_args, final_weights, free_port, max_diff, one_update, torchrun
from test_update import PAD, completions


def sharded_update(model_dir, agg, beta, rows):
    """`test_dist.one_update` with policy and reference sharded over the process group."""
    cfg = build_config(overrides=[f"--grpo.loss_agg={agg}", f"--grpo.beta={beta}", "--optim.micro_batch_size=2",
                                  "--optim.max_grad_norm=1.0", "--model.train_autocast=false"])
    torch.manual_seed(0)
    lm = load_model(str(model_dir), dtype="float64")
    before = {k: v.detach().clone() for k, v in lm.named_parameters()}
    policy = sharding.shard(LogProbModel(lm), lm)
    reference = None
    if beta:
        ref_lm = load_model(str(model_dir), dtype="float64")
        with torch.no_grad():
            for p in ref_lm.parameters():
                p.add_(0.01)
        reference = sharding.shard(LogProbModel(ref_lm), ref_lm)
    assert sharding.is_sharded(policy)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    batch = collate(completions(seed=1), PAD)
    batch = batch.rows(rows) if len(rows) else None
    stats = update_policy(UpdateSettings.of(cfg, torch.device("cpu")), policy, reference, opt, sched,
                          batch, ADV[rows], ROWS[rows])
    after = sharding.full_state_dict(lm)
    return [after[k] - before[k] for k in before], stats


def _worker(rank, world, port, model_dir, agg, beta, split, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init("cpu")
    try:
        deltas, stats = sharded_update(model_dir, agg, beta, torch.tensor(split[rank], dtype=torch.long))
        torch.save((deltas, stats), f"{out}.{rank}")
    finally:
        dist.shutdown()


@pytest.mark.parametrize("agg,beta,split", [
    ("token-mean", 0.0, [[0, 2, 4], [1, 3, 5]]),
    ("seq-mean-token-mean", 0.1, [[0, 2, 4], [1, 3, 5]]),
    ("seq-mean-token-sum-norm", 0.1, [[0, 1, 2, 3, 4], [5]]),  # ranks run 3 and 1 micro-batches
    ("token-mean", 0.1, [[0, 1, 2, 3, 4, 5], []]),  # a rank without rows runs dummies
])
def test_the_sharded_update_equals_the_single_process_update(tiny_model_dir, tmp_path, agg, beta, split):
    single, stats1 = one_update(tiny_model_dir, agg, beta)
    out = str(tmp_path / "result")
    mp.spawn(_worker, args=(2, free_port(), str(tiny_model_dir), agg, beta, split, out), nprocs=2)
    for rank in range(2):
        deltas, stats = torch.load(f"{out}.{rank}")
        for a, b in zip(single, deltas):  # float64: only the order of additions differs
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-8), (a - b).abs().max()
        assert stats["update/sequences"] == stats1["update/sequences"]
        assert stats["loss"] == pytest.approx(stats1["loss"], abs=1e-12)
        assert stats["grad_norm"] == pytest.approx(stats1["grad_norm"], rel=1e-9)
    assert any(d.abs().max() > 0 for d in single)


def test_fsdp_refuses_lora_and_other_engines():
    from rlvr.config import validate
    from rlvr.errors import ConfigError

    for bad in (["--model.fsdp=true", "--model.lora.enabled=true"], ["--model.fsdp=true", "--rollout.engine=vllm"]):
        with pytest.raises(ConfigError, match="model.fsdp"):
            validate(build_config(overrides=bad))


def test_torchrun_fsdp_trains_like_one_process_and_resumes_at_other_world_sizes(tiny_model_dir, tmp_path):
    """Two ranks with FSDP train as one plain process does (same samples, same rewards, final
    weights within float32 reduction noise); its step-2 checkpoint (dcp/ shards) resumes at world
    size 1 unsharded and at world size 2 sharded, to the uninterrupted run's final weights."""
    import json
    import shutil

    from test_train import rlvr, steps_logged

    one, two = tmp_path / "one", tmp_path / "two"
    fsdp = ["--model.fsdp=true", "--grpo.beta=0.05"]
    assert (proc := rlvr("train", *dp_args(tiny_model_dir, one), "--grpo.beta=0.05")).returncode == 0, proc.stderr[-3000:]
    assert (proc := torchrun(2, *dp_args(tiny_model_dir, two), *fsdp)).returncode == 0, proc.stderr[-3000:]
    assert steps_logged(two) == [0, 1, 2, 3, 4]
    ckpt = two / "checkpoints" / "step-000002"
    assert (ckpt / "dcp").is_dir() and not (ckpt / "optimizer.pt").exists()
    assert (ckpt / "model" / "model.safetensors").is_file()  # the gathered full weights: loadable alone
    rows1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    rows2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(rows1[1:], rows2[1:]):
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], abs=1e-6)
    # measured 1e-7-scale differences (float32 sums in another order); a wrong gradient moves
    # parameters by about lr = 1e-3 per step
    assert max_diff(final_weights(one), final_weights(two)) <= 1e-4
    for nproc, extra, name in ((1, ["--model.fsdp=false"], "to_one_plain"), (2, ["--model.fsdp=true"], "to_two_sharded")):
        copy = tmp_path / name
        shutil.copytree(two, copy)
        shutil.rmtree(copy / "final")
        args = ["--resume", str(copy), *extra]
        proc = rlvr("train", *args) if nproc == 1 else torchrun(2, *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "resuming" in proc.stderr and steps_logged(copy) == [0, 1, 2, 3, 4]
        assert max_diff(final_weights(two), final_weights(copy)) <= 1e-4
