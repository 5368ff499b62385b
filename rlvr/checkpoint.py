"""Run directories, atomic checkpoints of a training run, and resuming from them.

A checkpoint is a directory `checkpoints/step-NNNNNN/` holding the policy in `model/`
(`save_pretrained`: the full model, or the LoRA adapter, with the tokenizer beside it, so the
directory loads on its own), `optimizer.pt`, `scheduler.pt`, `rng.pt` (Python, NumPy and torch
generator states) and `state.json` (step, data position). It is written under a temporary name,
every file fsync'd, given the usual umask permissions and renamed into place; then
`checkpoints/latest` is replaced atomically. A crash at any moment (kill -9, power loss) leaves the
previous checkpoint intact and `latest` pointing at a complete one. Retention deletes only
checkpoints older than the one just written, beyond the `keep` newest. A damaged checkpoint file
(truncated `.pt` or `.safetensors`) is a `CheckpointError` that names it.

`prepare_run_dir` refuses to start a new run in a directory that already holds one, unless the
run is resumed or the user asked to overwrite it.

A sharded run (FSDP2) also writes `dcp/`: model and optimizer state in `torch.distributed.checkpoint`'s
format, each rank its shards, re-sharded on load for any world size; `model/` then holds the
gathered full weights, so the directory still loads on its own.

This module does not decide when to checkpoint, and does not upload.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlvr import dist, sharding
from rlvr.durable import atomic_write_text, publish_dir
from rlvr.errors import CheckpointError

LATEST = "latest"
# what a training run writes into its directory (and what --overwrite deletes; nothing else)
RUN_ENTRIES = ("config.yaml", "metrics.jsonl", "samples.jsonl", "checkpoints", "final", "tensorboard",
               "curves.png", "wandb", "mlruns", "mlflow.db", "trackers.json")
_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError)


def prepare_run_dir(run_dir: str | os.PathLike, resume: bool = False, overwrite: bool = False,
                    command: str = "train") -> None:
    """Refuse to start a new run where one already is. With `resume` anything goes (the loop
    resumes from `latest`); with `overwrite` the entries of the old run (`RUN_ENTRIES`) are
    deleted, and files rlvr did not write are left alone. `command` (`train`, `sft`, `rm train`)
    is the one the message tells the user to resume with."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a file, not a run directory; choose another output_dir")
    if resume or not run_dir.is_dir():
        return
    entries = sorted(p.name for p in run_dir.iterdir())
    if not entries:
        return
    if not overwrite:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise CheckpointError(
            f"{run_dir} is not empty ({shown}): continue that run with `rlvr {command} --resume "
            f"{run_dir}`, start it over with --overwrite (deletes its metrics, samples, checkpoints "
            "and final model), or choose another --output_dir")
    for name in entries:
        if name in RUN_ENTRIES:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], keep: int = 2, tokenizer: Any = None, sharded: Any = None) -> Path:
    """Write checkpoint `step` (with `tokenizer` in `model/` so it loads on its own), point
    `latest` at it, and delete checkpoints older than it beyond the `keep` newest.

    `sharded`: the FSDP root module of `model` (`rlvr.sharding`): then every rank calls this, model
    and optimizer state go to `dcp/` (each rank its shards), the full weights to `model/`, and
    rank 0 writes the rest. Otherwise only the caller (rank 0) does."""
    root = run_dir / "checkpoints"
    final, tmp = root / f"step-{step:06d}", root / f".tmp-step-{step:06d}"
    if dist.is_main():
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    weights = None
    if sharded is not None:
        dist.barrier()
        sharding.save_state(tmp / "dcp", sharded, optimizer)
        weights = sharding.full_state_dict(model)
    if dist.is_main():
        model.save_pretrained(tmp / "model", safe_serialization=True, state_dict=weights)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / "model")
        if sharded is None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}))
        publish_dir(tmp, final)
        atomic_write_text(root / LATEST, final.name)
        for old in stale_checkpoints(root, step, keep):
            shutil.rmtree(old, ignore_errors=True)
    if sharded is not None:
        dist.barrier()
    return final


def checkpoint_step(path: Path) -> int | None:
    m = re.fullmatch(r"step-(\d+)", path.name)
    return int(m.group(1)) if m else None


def stale_checkpoints(root: Path, newest: int, keep: int) -> list[Path]:
    """Checkpoints retention deletes after `newest` was written: only older ones, beyond the
    `keep` newest (counting `newest`). Checkpoints of higher steps (an abandoned earlier run in
    the same directory) are never deleted here."""
    if keep <= 0:
        return []
    older = sorted((checkpoint_step(p), p) for p in root.glob("step-*")
                   if p.is_dir() and checkpoint_step(p) is not None and checkpoint_step(p) < newest)
    return [p for _, p in older[:max(len(older) - (keep - 1), 0)]]


def save_final(policy: Any, tokenizer: Any, path: Path, weights: dict[str, torch.Tensor] | None = None) -> None:
    """`save_pretrained` of the final policy (or of `weights`, its gathered full state when
    sharded) with its tokenizer, written aside and renamed into place with umask permissions; LoRA
    adapters are merged (and kept in `adapter/`)."""
    tmp = path.with_name(f".tmp-{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(policy, "merge_and_unload"):
        policy.save_pretrained(tmp / "adapter")
        policy = policy.merge_and_unload()
    policy.save_pretrained(tmp, safe_serialization=True, state_dict=weights)
    tokenizer.save_pretrained(tmp)
    publish_dir(tmp, path)


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not (path / "state.json").is_file():
        raise CheckpointError(f"{pointer} names {path.name}, which is incomplete or missing")
    return path


def _damaged(path: Path, file: Path, exc: BaseException) -> CheckpointError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(
        f"cannot resume from {path}: {file.name} is damaged or truncated ({first}). Delete "
        f"{path.name} and write the name of an earlier checkpoint into {path.parent / LATEST}, or "
        "start over with --overwrite")


def load_training_state(path: Path, optimizer: Any, scheduler: Any, root: Any = None) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG from checkpoint `path`; return its state.json.

    A checkpoint of a sharded run holds model and optimizer state in `dcp/`: it loads into `root`
    (the run's `LogProbModel`, sharded or not) at any world size. A run that shards cannot take a
    checkpoint written without sharding (its optimizer state is not keyed by parameter name)."""
    file = path / "state.json"
    try:
        state = json.loads(file.read_text())
        if (path / "dcp").is_dir():
            file = path / "dcp"
            sharding.load_state(file, root, optimizer)
        elif root is not None and sharding.is_sharded(root):
            raise CheckpointError(f"{path} was written without model.fsdp: resume it with model.fsdp=false")
        else:
            file = path / "optimizer.pt"
            optimizer.load_state_dict(torch.load(file, weights_only=False))
        for file, apply in ((path / "scheduler.pt", scheduler.load_state_dict),
                            (path / "rng.pt", set_rng_state)):
            apply(torch.load(file, weights_only=False))
        return state
    except _LOAD_ERRORS as exc:
        raise _damaged(path, file, exc) from exc


def load_model_weights(path: Path, model: Any) -> None:
    """Load the checkpoint's weights (full model or LoRA adapter) into `model` in place."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model_dir = path / "model"
    adapter = model_dir / "adapter_model.safetensors"
    if adapter.is_file():
        from peft import set_peft_model_state_dict

        try:
            set_peft_model_state_dict(model, load_file(adapter))
        except (*_LOAD_ERRORS, SafetensorError) as exc:
            raise _damaged(path, adapter, exc) from exc
        return
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{model_dir} holds no weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            state.update(load_file(f))
        except (*_LOAD_ERRORS, SafetensorError) as exc:
            raise _damaged(path, f, exc) from exc
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ: another model's checkpoint
        raise CheckpointError(f"cannot load weights from {model_dir}: {exc}") from exc
    tied = {k for k in missing if "lm_head" in k}
    if set(missing) - tied or unexpected:
        raise CheckpointError(f"{model_dir} does not match the model: missing "
                              f"{sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]}")
