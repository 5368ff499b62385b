"""`rlvr eval` end to end on a tiny random-weight model: reports, resume, run checkpoints, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rlvr.cli import main

pytestmark = pytest.mark.slow
BASE = ["--task", "arithmetic", "--limit", "3", "-n", "2", "-k", "1,2", "--max-new-tokens", "4",
        "--workers", "0", "--no-progress", "--batch-size", "8"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from rlvr.models import tiny_random_model

    return tiny_random_model(tmp_path_factory.mktemp("models") / "tiny")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_eval_writes_reports_and_resumes_without_the_model(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    model = tiny.parent / "copy"
    shutil.copytree(tiny, model)
    assert main(["eval", *BASE, "--model", f"tiny={model}", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    report = results["models"][0]["report"]
    assert results["task"] == "arithmetic" and results["ks"] == [1, 2]
    assert report["num_problems"] == 3 and report["num_samples"] == 6
    assert 0.0 <= report["pass@1"] <= report["pass@2"] <= 1.0
    assert [p["id"] for p in report["problems"]] == ["add1-6+9", "add1-7+2", "add1-1+8"]
    summary = (out / "summary.md").read_text()
    assert "| tiny |" in summary and "pass@2" in summary and "## Per-problem results" in summary
    assert (out / "pass_at_k.png").stat().st_size > 10_000
    assert "| model | pass@1 | pass@2 |" in capsys.readouterr().out

    # interrupted after the first two samples: the rerun samples only the other four
    samples = out / "samples" / "tiny.jsonl"
    kept = samples.read_text().splitlines()[:2]
    samples.write_text("\n".join(kept) + "\n")
    assert main(["eval", *BASE, "--model", f"tiny={model}", "--out", str(out)]) == 0
    recs = _lines(samples)
    assert len(recs) == 6 and recs[:2] == [json.loads(x) for x in kept]
    assert sorted((r["problem_id"], r["index"]) for r in recs) == sorted(
        (p, i) for p in ("add1-6+9", "add1-7+2", "add1-1+8") for i in range(2))

    # complete: a rerun needs no model at all, and reports the same numbers
    shutil.rmtree(model)
    assert main(["eval", *BASE, "--model", f"tiny={model}", "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())["models"][0]["report"]
    assert again["pass@1"] == json.loads(json.dumps(_report_from(recs)))["pass@1"]


def _report_from(recs):
    from collections import defaultdict

    from rlvr.eval import pass_at_k

    by = defaultdict(list)
    for r in recs:
        by[r["problem_id"]].append(r["passed"])
    return {"pass@1": sum(pass_at_k(2, sum(v), 1) for v in by.values()) / 3}


def test_eval_refuses_to_mix_settings_and_fresh_starts_over(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", *BASE, "--model", f"t={tiny}", "--out", str(out)]) == 0
    rc = main(["eval", *BASE, "--model", f"t={tiny}", "--out", str(out), "--temperature", "0.5"])
    assert rc == 2 and "--fresh" in capsys.readouterr().err
    assert main(["eval", *BASE, "--model", f"t={tiny}", "--out", str(out), "--temperature", "0.5",
                 "--fresh", "--no-plot"]) == 0
    assert len(_lines(out / "samples" / "t.jsonl")) == 6


def test_eval_of_a_run_plots_pass_at_k_across_steps(tiny, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copytree(tiny, run / "checkpoints" / "step-000002")
    shutil.copytree(tiny, run / "final")
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"steps": 4, "model": {"name": str(tiny)},
         "task": {"name": "linear", "options": {"test_size": 5, "train_size": 10}, "verifier": "",
                  "verifier_options": {"mode": "lenient"}}}))
    out = tmp_path / "out"
    args = [a for a in BASE if a not in ("arithmetic", "--task")]
    assert main(["eval", *args, "--run", str(run), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "linear" and results["task_options"]["test_size"] == 5
    assert [(m["label"], m["step"]) for m in results["models"]] == [
        ("base (step 0)", 0), ("step 2", 2), ("final (step 4)", 4)]
    assert (out / "pass_at_k_steps.png").stat().st_size > 10_000
    assert "final (step 4) correct/n" in (out / "summary.md").read_text()


def test_greedy_mode_draws_one_sample_at_temperature_zero(tiny, tmp_path):
    out = tmp_path / "out"
    assert main(["eval", *BASE, "--greedy", "--model", f"g={tiny}", "--out", str(out), "--no-plot"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["sampling"]["temperature"] == 0.0 and results["ks"] == [1]
    assert results["models"][0]["report"]["num_samples"] == 3


@pytest.mark.parametrize("extra,message", [
    (["-n", "4", "-k", "1,8"], "k <= n"),
    (["--task-options", "[1, 2]"], "expected a mapping"),
    (["--task", "nope"], "unknown task"),
    (["--task-options", "{level: 12}"], "level"),
    (["--engine", "nope"], "nope"),
])
def test_eval_usage_errors_are_one_line(tmp_path, capsys, extra, message):
    rc = main(["eval", *BASE, *extra, "--model", "unused", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc in (1, 2) and message in err and "Traceback" not in err


def _training_run(tiny, run: Path, **config) -> Path:
    """A run directory as `rlvr train` writes it: checkpoints through `save_checkpoint` (model/,
    optimizer, state; written without a tokenizer, as before checkpoints carried one) and final/."""
    import torch

    from rlvr.checkpoint import save_checkpoint, save_final
    from rlvr.models import load_model, load_tokenizer

    model = load_model(str(tiny))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    save_checkpoint(run, 2, model, optimizer, scheduler, {"cursor": {"epoch": 0, "index": 4}})
    save_final(model, load_tokenizer(str(tiny)), run / "final")
    (run / "config.yaml").write_text(yaml.safe_dump({"steps": 4, "model": {"name": str(tiny)}, **config}))
    return run


RUN_ARGS = ["--limit", "2", "-n", "2", "-k", "1,2", "--workers", "0", "--no-progress", "--no-plot"]


def test_eval_of_a_run_loads_the_checkpoints_train_writes(tiny, tmp_path, capsys):
    run = _training_run(tiny, tmp_path / "run", rollout={"max_new_tokens": 3})
    out = tmp_path / "out"
    assert main(["eval", *RUN_ARGS, "--run", str(run), "--out", str(out)]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert [(m["label"], m["step"]) for m in results["models"]] == [
        ("base (step 0)", 0), ("step 2", 2), ("final (step 4)", 4)]
    assert all(m["report"]["num_samples"] == 4 for m in results["models"])


def test_eval_of_a_run_samples_with_the_runs_settings_unless_overridden(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny, run / "final")
    (run / "config.yaml").write_text(yaml.safe_dump({
        "steps": 4, "model": {"name": str(tiny), "dtype": "float32", "rollout_dtype": "same"},
        "rollout": {"max_new_tokens": 3, "top_p": 0.9, "top_k": 5}, "eval": {"temperature": 0.7}}))
    out = tmp_path / "out"
    assert main(["eval", *RUN_ARGS, "--run", str(run), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert {k: results["sampling"][k] for k in ("max_new_tokens", "temperature", "top_p", "top_k", "dtype")} == {
        "max_new_tokens": 3, "temperature": 0.7, "top_p": 0.9, "top_k": 5, "dtype": "float32"}
    assert "max_new_tokens=3 (the run)" in err and "temperature=0.7 (the run)" in err
    tokens = [r["num_tokens"] for r in _lines(out / "samples" / "final_step_4.jsonl")]
    assert len(tokens) == 4 and max(tokens) <= 3

    out2 = tmp_path / "out2"
    assert main(["eval", *RUN_ARGS, "--run", str(run), "--out", str(out2), "--max-new-tokens", "5"]) == 0
    assert json.loads((out2 / "results.json").read_text())["sampling"]["max_new_tokens"] == 5
    assert "max_new_tokens=5 (--max-new-tokens)" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["missing", "truncated", "not-a-model"])
def test_a_bad_model_fails_before_the_first_sample(tiny, tmp_path, capsys, bad):
    import time

    model = tmp_path / "bad"
    if bad == "truncated":
        shutil.copytree(tiny, model)
        (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes()[:5000])
    elif bad == "not-a-model":
        model.mkdir()
    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc = main(["eval", *BASE, "--model", f"good={tiny}", "--model", f"bad={model}", "--out", str(out)])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 1 and "model 'bad'" in err and "Traceback" not in err, err
    assert not (out / "samples" / "good.jsonl").exists()  # nothing was sampled
    assert elapsed < 15, elapsed


def test_an_unwritable_output_directory_fails_before_the_first_sample(tiny, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    rc = main(["eval", *BASE, "--model", f"t={tiny}", "--out", str(tmp_path / "file" / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write there" in err and "Traceback" not in err
