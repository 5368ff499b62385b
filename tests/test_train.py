"""The real `rlvr train` CLI on a tiny random model: a smoke run, bad input, kill -9 and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

TESTS = Path(__file__).parent


def rlvr_env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return env


def common(model_dir, out, steps=6):
    return [f"--model.name={model_dir}", f"--output_dir={out}", f"--steps={steps}",
            "--task.verifier=fakes:VowelFractionVerifier", "--rollout.prompts_per_step=2",
            "--rollout.group_size=4", "--rollout.max_new_tokens=12", "--eval.every=3",
            "--eval.max_problems=3", "--eval.n=2", "--checkpoint.every=2", "--log.progress=false",
            "--verify.workers=1", "--optim.lr=1e-3", "--log.sample_every=2"]


def rlvr(*args, **kw):
    return subprocess.run([sys.executable, "-m", "rlvr.cli", *args], env=rlvr_env(),
                          capture_output=True, text=True, timeout=600, **kw)


def steps_logged(run_dir):
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_smoke_run_writes_metrics_samples_checkpoints_and_a_loadable_model(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    proc = rlvr("train", *common(tiny_model_dir, out, steps=4))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    for key in ("reward/mean", "reward/std", "pass_rate", "frac_zero_std_groups", "kl/sampler",
                "clip/low_frac", "clip/high_frac", "entropy", "completion/len_mean",
                "completion/len_max", "completion/truncated_frac", "throughput/tokens_per_s",
                "time/rollout_s", "time/verify_s", "time/update_s"):
        assert key in rows[1], key
    assert "eval/pass@1" in rows[0] and "eval/pass@1" in rows[3] and "eval/pass@1" in rows[4]
    assert rows[1]["grad_norm"] > 0  # the dense fake reward gives a real update
    assert (out / "samples.jsonl").read_text().count('"step": 2') == 4
    assert (out / "checkpoints" / "step-000002" / "optimizer.pt").is_file()
    assert (out / "config.yaml").read_text().count("VowelFractionVerifier") == 1
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "final")
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("optim", ["adamw", "adamw_8bit"])
def test_kill_minus_nine_then_resume_reaches_the_same_parameters(tiny_model_dir, tmp_path, optim):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert rlvr("train", *common(tiny_model_dir, straight), f"--optim.name={optim}").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "rlvr.cli", "train", *common(tiny_model_dir, killed),
                             f"--optim.name={optim}"],
                            env=rlvr_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill during step 4, after the checkpoint of step 2
        if (killed / "metrics.jsonl").is_file() and 3 in steps_logged(killed):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "final").exists()
    resumed = rlvr("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr
    assert steps_logged(killed) == steps_logged(straight) == [0, 1, 2, 3, 4, 5, 6]
    a = load_file(straight / "final" / "model.safetensors")
    b = load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    first = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert max((a[k] - first[k]).abs().max().item() for k in first if k in a) > 1e-4  # it trained


def test_lora_run_saves_adapter_and_merged_model(tiny_model_dir, tmp_path):
    out = tmp_path / "lora"
    proc = rlvr("train", *common(tiny_model_dir, out, steps=2), "--model.lora.enabled=true",
                "--model.lora.r=4", "--grpo.beta=0.05", "--eval.every=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "final" / "adapter" / "adapter_config.json").is_file()
    assert (out / "final" / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["kl/ref"] is not None and rows[-1]["kl/ref"] >= 0


@pytest.mark.parametrize("args,code,needle", [
    (["--config", "/nonexistent.yaml"], 2, "does not exist"),
    (["--grpo.betta=1"], 2, "grpo.betta"),
    (["--model.name=/nonexistent-model"], 1, "cannot load"),
    (["--task.name=nope"], 1, "unknown task 'nope'; choose one of: arithmetic"),
    (["--resume", "/nonexistent-run"], 1, "not a run directory"),
])
def test_bad_input_fails_with_a_clear_message(args, code, needle, tmp_path):
    proc = rlvr("train", f"--output_dir={tmp_path / 'r'}", *args)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_commands_and_config_keys():
    top = rlvr("--help")
    assert top.returncode == 0 and "train" in top.stdout and "verify" in top.stdout
    keys = rlvr("train", "--help-config")
    assert "--grpo.beta=0.0" in keys.stdout and "--rollout.group_size=8" in keys.stdout
