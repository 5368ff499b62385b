"""The training loop's features, driven directly through `train()` with a scripted rollout engine.

`fakes.ScriptedEngine` gives every group the same completions ("ab", "abc", "abcd", "abcde"), so
each feature's effect on the update is known in advance; verifiers are the small fakes of
`tests/fakes.py`, run in-process (`verify.workers=0`).
"""

import json

import pytest
import torch

import fakes
from rlvr.config import build_config
from rlvr.errors import InfraError
from rlvr.train import train


def run(tiny_model_dir, out, *extra, steps=2):
    cfg = build_config(overrides=[
        f"--model.name={tiny_model_dir}", f"--output_dir={out}", f"--steps={steps}",
        "--task.verifier=fakes:LengthVerifier", "--rollout.engine=fakes:ScriptedEngine",
        "--rollout.prompts_per_step=2", "--rollout.group_size=4", "--rollout.max_new_tokens=8",
        "--eval.every=0", "--checkpoint.every=0", "--log.progress=false", "--log.tensorboard=false",
        "--log.sample_every=0", "--verify.workers=0", "--optim.lr=1e-2", "--model.rollout_dtype=same",
        *extra])
    train(cfg)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows}  # step 0 (the base model's eval) only when eval.every > 0


def weights(path):
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_a_step_without_signal_still_logs_evaluates_checkpoints_and_keeps_the_weights(tiny_model_dir, tmp_path):
    rows = run(tiny_model_dir, tmp_path / "r", "--task.verifier=fakes:ConstantVerifier",
               "--grpo.dynamic_sampling=true", "--grpo.max_sampling_rounds=2", "--checkpoint.every=2",
               "--eval.every=2", "--eval.max_problems=2", "--eval.n=2", steps=4)
    assert sorted(rows) == [0, 1, 2, 3, 4]
    for r in (rows[s] for s in (1, 2, 3, 4)):
        assert r["update/sequences"] == 0 and r["frac_zero_std_groups"] == 1.0
        assert r["verify/samples"] == 16  # two rounds of 2 prompts x 4, every group flat
    assert "eval/pass@1" in rows[2] and "eval/pass@1" in rows[4]
    assert (tmp_path / "r" / "checkpoints" / "step-000002").is_dir()
    assert fakes.ScriptedEngine.last.updates == 0 and fakes.ScriptedEngine.last.closed
    before, after = weights(tiny_model_dir), weights(tmp_path / "r" / "final")
    assert all(torch.equal(before[k], after[k]) for k in after)


def test_dynamic_sampling_fills_the_batch_with_informative_groups(tiny_model_dir, tmp_path):
    plain = run(tiny_model_dir, tmp_path / "plain", "--task.verifier=fakes:HalfFlatVerifier", steps=3)
    dyn = run(tiny_model_dir, tmp_path / "dyn", "--task.verifier=fakes:HalfFlatVerifier",
              "--grpo.dynamic_sampling=true", "--grpo.max_sampling_rounds=8", steps=3)
    assert any(r["update/sequences"] < 8 for r in plain.values())  # a flat group drawn: fewer rows learn
    assert all(r["update/sequences"] == 8 for r in dyn.values())  # every kept group has a spread
    assert any(r["verify/samples"] > 8 for r in dyn.values())  # ... found by drawing more prompts


def test_overlong_filter_masks_truncated_completions_out_of_the_loss(tiny_model_dir, tmp_path):
    # max_new_tokens=2 cuts the EOS of "abcd" and "abcde" (two tokens each): half of every group
    kept = run(tiny_model_dir, tmp_path / "keep", "--rollout.max_new_tokens=2", steps=1)
    filt = run(tiny_model_dir, tmp_path / "filt", "--rollout.max_new_tokens=2", "--grpo.overlong=filter", steps=1)
    assert kept[1]["completion/truncated_frac"] == 0.5
    assert kept[1]["update/sequences"] == 8 and filt[1]["update/sequences"] == 4


def test_soft_overlong_penalty_shapes_the_reward(tiny_model_dir, tmp_path):
    # lengths 2, 2, 3, 3 tokens with EOS; the penalty ramps from 0 at 2 tokens to -1 at 4: -0.5 for half
    rows = run(tiny_model_dir, tmp_path / "soft", "--rollout.max_new_tokens=4", "--grpo.overlong=soft",
               "--grpo.overlong_cache_tokens=2", steps=1)
    assert rows[1]["reward/shaped_mean"] == pytest.approx(rows[1]["reward/mean"] - 0.25)


def test_inner_steps_reuse_the_stored_old_log_probs(tiny_model_dir, tmp_path):
    one = run(tiny_model_dir, tmp_path / "one", "--optim.lr=0.05", steps=1)
    two = run(tiny_model_dir, tmp_path / "two", "--optim.lr=0.05", "--grpo.inner_steps=2", steps=1)
    assert one[1]["clip/low_frac"] == one[1]["clip/high_frac"] == 0.0  # ratio is exactly 1
    assert two[1]["clip/low_frac"] + two[1]["clip/high_frac"] > 0  # the second pass moved away from pi_old


def test_truncated_importance_sampling_scales_down_tokens_the_sampler_overrated(tiny_model_dir, tmp_path):
    # the engine claims log-prob -1 per token; the random policy gives about -10.8, so the weight
    # min(pi_old / pi_sampler, cap) is about e^-9.8 and the gradient nearly vanishes
    plain = run(tiny_model_dir, tmp_path / "plain", steps=1)
    tis = run(tiny_model_dir, tmp_path / "tis", "--grpo.tis_cap=2.0", steps=1)
    assert plain[1]["kl/sampler"] > 1.0
    assert 0 < tis[1]["grad_norm"] < plain[1]["grad_norm"] * 1e-3


def test_infra_errors_are_masked_counted_and_abort_past_the_rate(tiny_model_dir, tmp_path):
    # FlakyVerifier fails on even-length texts: "ab" and "abcd", half of every group
    rows = run(tiny_model_dir, tmp_path / "ok", "--task.verifier=fakes:FlakyVerifier",
               "--verify.max_infra_error_rate=0.6", steps=2)
    for r in rows.values():
        assert r["verify/infra_errors"] == 4 and r["reward/mean"] == 1.0  # the failures are not 0s
        assert r["update/sequences"] == 0  # what is left of each group is flat: no signal
    with pytest.raises(InfraError, match="max_infra_error_rate"):
        run(tiny_model_dir, tmp_path / "abort", "--task.verifier=fakes:FlakyVerifier",
            "--verify.max_infra_error_rate=0.25", steps=2)


def test_bad_references_are_masked_counted_apart_and_reported_once(tiny_model_dir, tmp_path, capsys):
    rows = run(tiny_model_dir, tmp_path / "bad", "--task.verifier=fakes:BadReferenceVerifier",
               "--rollout.prompts_per_step=8", "--verify.max_infra_error_rate=0.0", steps=3)
    bad = [r["verify/bad_references"] for r in rows.values()]
    assert sum(bad) > 0 and all(b % 4 == 0 for b in bad)  # whole groups: every sample of the problem
    assert all(r["verify/infra_errors"] == 0 for r in rows.values())  # not infrastructure: no abort at rate 0
    err = capsys.readouterr().err
    reported = [line for line in err.splitlines() if "bad reference" in line]
    assert len(reported) == len(set(reported)) > 0  # each problem once


def test_the_engine_is_told_after_every_update(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path / "u", steps=3)
    assert fakes.ScriptedEngine.last.updates == 3 and fakes.ScriptedEngine.last.closed


def test_the_length_guard_logs_lengths_per_reward_bucket_and_penalises_past_its_target(tiny_model_dir, tmp_path):
    # lengths 2, 2, 3, 3 tokens; past the target of 2 the penalty is 0.5 * (3 - 2) / (4 - 2) = 0.25
    rows = run(tiny_model_dir, tmp_path / "len", "--rollout.max_new_tokens=4", "--grpo.length_penalty_coef=0.5",
               "--grpo.length_penalty_target=2", steps=1)
    r = rows[1]
    assert r["reward/shaped_mean"] == pytest.approx(r["reward/mean"] - 0.125)
    # LengthVerifier: "abc" (2 tokens) and "abcde" (3) score 1, "ab" (2) and "abcd" (3) score 0
    assert r["guard/count/full"] == r["guard/count/zero"] == 4
    assert r["guard/len_mean/full"] == r["guard/len_mean/zero"] == 2.5
    assert r["guard/length_warning"] == 0.0
