"""Data parallelism on gloo (CPU): the update at world size 2 is the single-process update."""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rlvr import dist
from rlvr.config import build_config
from rlvr.models import load_model
from rlvr.update import UpdateSettings, collate, update_policy
from test_update import PAD, completions

ADV = torch.tensor([1.0, -0.5, 0.0, 2.0, -1.0, 0.3])
ROWS = torch.tensor([True, True, True, True, False, True])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_update(model_dir, agg, beta, rows=None):
    """The parameter change of one SGD step on `rows` of the fixed batch (all rows: None)."""
    cfg = build_config(overrides=[f"--grpo.loss_agg={agg}", f"--grpo.beta={beta}", "--optim.micro_batch_size=2",
                                  "--optim.max_grad_norm=1.0", "--model.train_autocast=false"])
    torch.manual_seed(0)
    model = load_model(str(model_dir), dtype="float64")
    ref = load_model(str(model_dir), dtype="float64") if beta else None
    if ref is not None:
        with torch.no_grad():
            for p in ref.parameters():
                p.add_(0.01)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    batch = collate(completions(seed=1), PAD)
    idx = torch.arange(len(ADV)) if rows is None else rows
    batch = batch.rows(idx) if len(idx) else None
    stats = update_policy(UpdateSettings.of(cfg, torch.device("cpu")), model, ref, opt, sched, batch, ADV[idx], ROWS[idx])
    return [p.detach() - b for p, b in zip(model.parameters(), before)], stats


def _worker(rank, world, port, model_dir, agg, beta, split, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init("cpu")
    try:
        deltas, stats = one_update(model_dir, agg, beta, rows=torch.tensor(split[rank], dtype=torch.long))
        torch.save((deltas, stats), f"{out}.{rank}")
    finally:
        dist.shutdown()


def spawn(tmp_path, model_dir, agg, beta, split):
    out = str(tmp_path / "result")
    mp.spawn(_worker, args=(len(split), free_port(), str(model_dir), agg, beta, split, out), nprocs=len(split))
    return [torch.load(f"{out}.{r}") for r in range(len(split))]


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_the_update_at_world_size_two_equals_the_single_process_update(tiny_model_dir, tmp_path, agg, beta):
    single, stats1 = one_update(tiny_model_dir, agg, beta)
    ranks = spawn(tmp_path, tiny_model_dir, agg, beta, split=[[0, 2, 4], [1, 3, 5]])
    for deltas, stats in ranks:  # every rank takes the same step as the single process
        for a, b in zip(single, deltas):
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-8), (a - b).abs().max()
        assert stats["update/sequences"] == stats1["update/sequences"]
        assert stats["loss"] == pytest.approx(stats1["loss"], abs=1e-12)
    assert any(d.abs().max() > 0 for d in single)


def test_a_rank_without_rows_still_takes_the_same_step(tiny_model_dir, tmp_path):
    single, _ = one_update(tiny_model_dir, "token-mean", 0.0)
    ranks = spawn(tmp_path, tiny_model_dir, "token-mean", 0.0, split=[[0, 1, 2, 3, 4, 5], []])
    for deltas, _ in ranks:
        for a, b in zip(single, deltas):
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-8)


# ---------------------------------------------------------------- torchrun, end to end


def torchrun(nproc, *args):
    import subprocess
    import sys

    from test_train import rlvr_env

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "rlvr", "train", *args]
    return subprocess.run(cmd, env=dict(rlvr_env(), OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=900)


def dp_args(model_dir, out, steps=4):
    # fp32 training: bf16 autocast ("auto" turns it on where the CPU has bf16 units) rounds each
    # micro-batch's activations, and the ranks' micro-batches are not one process's (3.6e-3 apart)
    return [f"--model.name={model_dir}", f"--output_dir={out}", f"--steps={steps}",
            "--task.verifier=fakes:VowelFractionVerifier", "--rollout.prompts_per_step=4",
            "--rollout.group_size=4", "--rollout.max_new_tokens=12", "--eval.every=2",
            "--eval.max_problems=4", "--eval.n=2", "--checkpoint.every=2", "--log.progress=false",
            "--verify.workers=0", "--optim.lr=1e-3", "--model.rollout_dtype=same", "--log.tensorboard=false",
            "--model.train_autocast=false"]


def final_weights(run_dir):
    from safetensors.torch import load_file

    return load_file(run_dir / "final" / "model.safetensors")


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_torchrun_two_ranks_train_like_one_process_and_resume_at_another_world_size(tiny_model_dir, tmp_path):
    import json
    import shutil

    from test_train import rlvr, steps_logged

    one, two = tmp_path / "one", tmp_path / "two"
    proc = rlvr("train", *dp_args(tiny_model_dir, one))
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = torchrun(2, *dp_args(tiny_model_dir, two))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one metrics file, one checkpoint set, written by rank 0 alone
    assert steps_logged(two) == steps_logged(one) == [0, 1, 2, 3, 4]
    assert proc.stderr.count("held-out pass@1") == 3  # rank 0 speaks for both
    assert sorted(p.name for p in (two / "checkpoints").glob("step-*")) == ["step-000002"]
    rows1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    rows2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(rows1[1:], rows2[1:]):  # the same samples, hence the same rewards
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], abs=1e-6)
        assert a["verify/samples"] == b["verify/samples"] == 16
    # Same seed, same samples (per-sample seeds), same global loss: the parameters differ only by
    # the order of float32 additions in the gradient all-reduce (measured: 2e-7). A wrong
    # denominator or a lost gradient moves many parameters by about lr = 1e-3 per step.
    from safetensors.torch import load_file

    w1, w2 = final_weights(one), final_weights(two)
    assert max_diff(w1, w2) <= 1e-4
    start = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert max_diff({k: w1[k] for k in start if k in w1}, start) > 1e-3  # it trained
    # resume the world-size-2 run's step-2 checkpoint at world size 1, and the other way round
    for src, nproc, name in ((two, 1, "two_to_one"), (one, 2, "one_to_two")):
        copy = tmp_path / name
        shutil.copytree(src, copy)
        shutil.rmtree(copy / "final")
        proc = rlvr("train", "--resume", str(copy)) if nproc == 1 else torchrun(2, "--resume", str(copy))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "resuming" in proc.stderr and steps_logged(copy) == [0, 1, 2, 3, 4]
        assert max_diff(final_weights(src), final_weights(copy)) <= 1e-4


def test_kill_minus_nine_of_one_rank_ends_every_rank_and_the_run_resumes(tiny_model_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from test_train import rlvr, rlvr_env, steps_logged

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "rlvr", "train", *dp_args(tiny_model_dir, out, steps=6)]
    proc = subprocess.Popen(cmd, env=dict(rlvr_env(), OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    workers: list[int] = []
    while time.monotonic() < deadline and not workers:
        if (out / "metrics.jsonl").is_file() and 3 in steps_logged(out):
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
            workers = [int(p) for p in children.stdout.split()]
        time.sleep(0.05)
    assert len(workers) == 2, "the run did not reach step 3 with two ranks"
    os.kill(workers[-1], signal.SIGKILL)
    proc.communicate(timeout=300)
    assert proc.returncode != 0  # the launcher saw a rank die, ended the other one, and failed
    for pid in workers:  # every rank exited
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not (out / "final").exists()
    resumed = rlvr("train", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr and steps_logged(out)[-1] == 6
