"""`rlvr train` input checks: a model path that holds no model, and a run directory that already
holds a run (refused unless --resume or --overwrite)."""

from __future__ import annotations

import json
import time

import pytest

from rlvr.cli import main


def _args(model, out):
    return ["train", f"--model.name={model}", f"--output_dir={out}", "--steps=1",
            "--rollout.prompts_per_step=2", "--rollout.group_size=2", "--rollout.max_new_tokens=4",
            "--eval.every=0", "--checkpoint.every=0", "--log.progress=false", "--log.tensorboard=false",
            "--verify.workers=0"]


def test_a_model_path_without_a_model_fails_at_once_with_what_is_accepted(tmp_path, capsys):
    t0 = time.perf_counter()
    rc = main(_args("/nonexistent", tmp_path / "run"))
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "no model exists at that path" in err and "smollm2-135m" in err and "checkpoints/step-N" in err
    assert "Repo id" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was set up
    assert elapsed < 5, elapsed


@pytest.mark.slow
def test_a_run_directory_is_not_overwritten_without_overwrite(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(tiny_model_dir, run)) == 0
    metrics = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(metrics + json.dumps({"step": 99, "mine": 1}) + "\n")
    before = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main(_args(tiny_model_dir, run)) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and "Traceback" not in err
    assert (run / "metrics.jsonl").read_text() == before  # untouched
    assert main([*_args(tiny_model_dir, run), "--overwrite"]) == 0
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert main(["train", "--resume", str(run), "--overwrite"]) == 2
    assert "choose one" in capsys.readouterr().err


def test_an_unknown_tracker_fails_at_once_with_the_choices(tiny_model_dir, tmp_path, capsys):
    rc = main([*_args(tiny_model_dir, tmp_path / "run"), "--log.report_to=wandb,tensorbored"])
    err = capsys.readouterr().err
    assert rc == 2 and "choose from wandb, trackio, mlflow" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
