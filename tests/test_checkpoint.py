"""Run directories and checkpoints: refusal to clobber a run, retention, fsync before rename,
damaged files as `CheckpointError`, umask permissions, checkpoints that load on their own."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from rlvr.checkpoint import (LATEST, latest_checkpoint, load_model_weights, load_training_state,
                             prepare_run_dir, save_checkpoint, save_final)
from rlvr.errors import CheckpointError
from rlvr.models import load_model, load_tokenizer


@pytest.fixture()
def policy(tiny_model_dir):
    model = load_model(str(tiny_model_dir))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    return model, optimizer, scheduler


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _save(run, step, policy, keep=2, tokenizer=None):
    model, optimizer, scheduler = policy
    return save_checkpoint(run, step, model, optimizer, scheduler, {"cursor": {"epoch": 0, "index": step}},
                           keep=keep, tokenizer=tokenizer)


# ---------------------------------------------------------------- the run directory


def test_a_non_empty_run_dir_is_refused_unless_resumed_or_overwritten(tmp_path):
    run = tmp_path / "run"
    prepare_run_dir(run)  # does not exist yet: fine
    run.mkdir()
    prepare_run_dir(run)  # empty: fine
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "checkpoints" / "step-000010").mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="--resume") as err:
        prepare_run_dir(run)
    assert "--overwrite" in str(err.value) and "metrics.jsonl" in str(err.value)
    prepare_run_dir(run, resume=True)
    assert (run / "metrics.jsonl").is_file()  # resuming keeps everything
    prepare_run_dir(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # only what rlvr did not write stays
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        prepare_run_dir(tmp_path / "file", overwrite=True)


# ---------------------------------------------------------------- retention


def test_retention_never_deletes_the_checkpoint_just_written(tmp_path, policy):
    run = tmp_path / "run"
    for step in (10, 20):  # an earlier run's checkpoints, at higher steps
        _save(run, step, policy)
    newest = _save(run, 5, policy)
    names = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert newest.is_dir() and (run / "checkpoints" / LATEST).read_text() == "step-000005"
    assert names == ["step-000005", "step-000010", "step-000020"]  # higher steps are not "older"
    assert latest_checkpoint(run) == newest
    _save(run, 6, policy)
    _save(run, 7, policy)
    names = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert names == ["step-000006", "step-000007", "step-000010", "step-000020"]


def test_checkpoint_files_are_fsynced_before_the_rename(tmp_path, policy, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        events.append(("replace", f"{src} -> {dst}"))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    final = _save(tmp_path / "run", 3, policy)
    rename = next(i for i, (kind, what) in enumerate(events)
                  if kind == "replace" and what.endswith(f"-> {final}"))
    synced = {Path(what).relative_to(final.with_name(".tmp-step-000003"))
              for kind, what in events[:rename] if kind == "fsync" and ".tmp-step" in what}
    files = {p.relative_to(final) for p in final.rglob("*") if p.is_file()}
    assert files and files <= synced, sorted(map(str, files - synced))
    assert any(kind == "fsync" and what == str(final.parent) for kind, what in events[rename:])


# ---------------------------------------------------------------- damaged files


@pytest.mark.parametrize("name,keep_bytes", [("optimizer.pt", 0.5), ("rng.pt", 0), ("scheduler.pt", 0.9)])
def test_a_truncated_pt_file_is_a_checkpoint_error_that_names_it(tmp_path, policy, name, keep_bytes):
    path = _save(tmp_path / "run", 2, policy)
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[:int(len(data) * keep_bytes)])
    _, optimizer, scheduler = policy
    with pytest.raises(CheckpointError, match=f"{name} is damaged or truncated"):
        load_training_state(path, optimizer, scheduler)


def test_truncated_weights_are_a_checkpoint_error(tmp_path, policy):
    path = _save(tmp_path / "run", 2, policy)
    weights = path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors is damaged or truncated"):
        load_model_weights(path, policy[0])


# ---------------------------------------------------------------- permissions, loading on its own


def test_checkpoints_and_final_model_get_umask_permissions(tmp_path, policy, umask_022, tiny_model_dir):
    ckpt = _save(tmp_path / "run", 2, policy)
    final = tmp_path / "run" / "final"
    save_final(policy[0], load_tokenizer(str(tiny_model_dir)), final)
    for root in (ckpt, final):
        for p in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))
    assert (final / "tokenizer.json").is_file() and not list(final.parent.glob(".tmp-*"))


def test_a_checkpoint_with_its_tokenizer_loads_on_its_own(tmp_path, policy, tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    ckpt = _save(tmp_path / "elsewhere", 4, policy, tokenizer=tokenizer)  # no run config beside it
    assert load_tokenizer(str(ckpt)).encode("1 + 2") == tokenizer.encode("1 + 2")
    loaded = load_model(str(ckpt))
    a, b = loaded.state_dict(), policy[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    state = load_training_state(ckpt, policy[1], policy[2])
    assert state == {"step": 4, "cursor": {"epoch": 0, "index": 4}}


def test_a_lora_checkpoint_loads_as_the_merged_model(tmp_path, tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    base = load_model(str(tiny_model_dir))
    peft = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.fill_(0.05)  # a non-zero adapter, so merging changes the weights
    optimizer = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    ckpt = save_checkpoint(tmp_path / "run", 1, peft, optimizer, scheduler, {}, keep=1,
                           tokenizer=load_tokenizer(str(tiny_model_dir)))
    assert (ckpt / "model" / "adapter_config.json").is_file()
    merged = load_model(str(ckpt))
    want = peft.merge_and_unload().state_dict()
    key = next(k for k in want if "q_proj" in k)
    assert torch.allclose(merged.state_dict()[key], want[key], atol=1e-6)
    assert not torch.allclose(want[key], load_model(str(tiny_model_dir)).state_dict()[key])
    assert json.loads((ckpt / "state.json").read_text())["step"] == 1
