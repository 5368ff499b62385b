"""`rlvr rm train` end to end on a tiny random model: metrics, checkpoints, resume, LoRA, errors."""

import json
from pathlib import Path

import pytest
import torch

from rlvr.cli import main
from rlvr.reward.model import load_reward_model, score_texts
from rlvr.reward.synthetic import make_split, write_jsonl
from rlvr.reward.train import build_config, update


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    train, held = make_split(16, 4, kind="concise", pairs_per_prompt=2, seed=0)
    write_jsonl(d / "train.jsonl", train)
    write_jsonl(d / "eval.jsonl", held)
    return d


def args(model_dir, data_dir, out, *extra):
    return ["rm", "train", f"--model.name={model_dir}", f"--data.train_file={data_dir / 'train.jsonl'}",
            f"--data.eval_file={data_dir / 'eval.jsonl'}", f"--output_dir={out}", "--steps=6",
            "--batch_pairs=4", "--optim.micro_batch_size=4", "--optim.lr=1e-3", "--eval.every=3",
            "--checkpoint.every=2", "--checkpoint.keep=2", "--log.progress=false", "--log.tensorboard=false",
            "--data.max_length=96", *extra]


def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_metrics_checkpoints_and_a_loadable_reward_model(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    # bf16 autocast in training on every machine: the saved statistics must still be fp32 scores
    assert main(args(tiny_model_dir, data_dir, out, "--model.train_autocast=true")) == 0
    rows = metrics(out)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    evals = [r["step"] for r in rows if "eval/accuracy" in r]
    assert evals == [0, 3, 6]
    assert all(r["train/pairs"] == 4 for r in rows[1:])  # 2 prompts x 2 pairs per step
    assert all(0 <= r["eval/accuracy"] <= 1 and r["eval/pairs"] == 8 for r in rows if "eval/accuracy" in r)
    assert rows[-1]["train/loss"] > 0 and rows[-1]["throughput/pairs_per_s"] > 0
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-000002", "step-000004"]
    model, tokenizer, stats = load_reward_model(out / "final")
    assert stats["chat_template"] is True and stats["max_length"] == 96 and stats["pairs"] == 32
    rows_train = [json.loads(x) for x in (data_dir / "train.jsonl").read_text().splitlines()]
    r = score_texts(model, tokenizer, [x["prompt"] for x in rows_train] * 2,
                    [x["chosen"] for x in rows_train] + [x["rejected"] for x in rows_train])
    # the saved statistics are those of the training pairs' rewards under the saved model
    assert stats["mean"] == pytest.approx(float(r.mean()), abs=1e-4)
    assert stats["std"] == pytest.approx(float(r.std()), rel=1e-3)
    assert tokenizer.model_max_length == 96 and tokenizer.chat_template


def test_resume_continues_to_the_same_result_as_an_uninterrupted_run(tiny_model_dir, data_dir, tmp_path):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert main(args(tiny_model_dir, data_dir, straight)) == 0
    # a run stopped after step 4: its last checkpoint is step 2 (the final model replaces step 4's)
    assert main(args(tiny_model_dir, data_dir, cut, "--steps=4")) == 0
    assert main(["rm", "train", "--resume", str(cut), "--steps=6"]) == 0
    a, b = metrics(straight), metrics(cut)
    assert [r["step"] for r in b] == [0, 1, 2, 3, 4, 5, 6]  # steps 3-4 of the cut run were dropped
    for ra, rb in zip(a[1:], b[1:]):
        assert ra["train/loss"] == pytest.approx(rb["train/loss"], rel=1e-5, abs=1e-7)
    ma, ta, sa = load_reward_model(straight / "final")
    mb, tb, sb = load_reward_model(cut / "final")
    assert torch.allclose(ma.score.weight, mb.score.weight, atol=1e-6)
    assert sa["mean"] == pytest.approx(sb["mean"], abs=1e-5)


def test_lora_run_saves_a_merged_reward_model(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "lora"
    assert main(args(tiny_model_dir, data_dir, out, "--model.lora.enabled=true", "--model.lora.r=4",
                     "--steps=2", "--eval.every=0")) == 0
    assert (out / "final" / "adapter" / "adapter_config.json").is_file()
    model, tokenizer, stats = load_reward_model(out / "final")
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert stats["std"] > 0


def test_a_bad_training_file_is_a_one_line_error_with_file_and_line(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n"
                   + json.dumps({"prompt": "q", "chosen": "", "rejected": "b"}) + "\n")
    code = main(["rm", "train", f"--model.name={tiny_model_dir}", f"--data.train_file={bad}",
                 f"--output_dir={tmp_path / 'run'}"])
    assert code == 1
    assert f"{bad}:2: field 'chosen' is empty" in capsys.readouterr().err


@pytest.mark.parametrize("extra, needle", [
    ([], "data.train_file is required"),
    (["--data.train_file=x.jsonl", "--batch_pairs=0"], "batch_pairs must be >= 1"),
    (["--data.train_file=x.jsonl", "--nope=1"], "unknown key nope"),
])
def test_bad_config_is_a_config_error(extra, needle, capsys):
    assert main(["rm", "train", *extra]) == 2
    assert needle in capsys.readouterr().err


def test_help_config_lists_the_reward_model_keys(capsys):
    assert main(["rm", "train", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "--data.train_file=''" in out and "--center_coef=0.0" in out and "--optim.lr=" in out


def test_micro_batches_give_the_gradient_of_the_whole_batch(tiny_model_dir):
    from rlvr.reward.model import build_reward_model, encode, prepare_tokenizer
    from rlvr.reward.train import Encoded

    model, tokenizer = build_reward_model(str(tiny_model_dir))
    model = model.double()
    torch.nn.init.normal_(model.score.weight, std=1.0)
    prepare_tokenizer(tokenizer, chat_template=True, max_length=64)
    train, _ = make_split(3, 0, pairs_per_prompt=2, seed=2)
    data = Encoded([encode(tokenizer, r["prompt"], r["chosen"]) for r in train],
                   [encode(tokenizer, r["prompt"], r["rejected"]) for r in train], [0.5, 0, 0, 1, 0, 0])

    def grads(micro):
        cfg = build_config(overrides=["--data.train_file=x", f"--optim.micro_batch_size={micro}",
                                      "--center_coef=0.1"])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
        stats = update(cfg, model, optimizer, scheduler, data, list(range(6)), tokenizer.pad_token_id, False)
        return [p.grad.clone() for p in model.parameters()], stats

    whole, s_whole = grads(12)
    parts, s_parts = grads(2)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(whole, parts))
    assert s_whole["train/loss"] == pytest.approx(s_parts["train/loss"], abs=1e-10)
    assert s_whole["train/accuracy"] == pytest.approx(s_parts["train/accuracy"])
