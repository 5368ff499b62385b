"""`rlvr sft` on a tiny random model: the response-only loss, bucketing, checkpoints and resume,
the final model in the trainer's loader, LoRA, and bad input named by file and line."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from rlvr.config import CheckpointConfig, Config, LogConfig, LoraConfig, ModelConfig, OptimConfig
from rlvr.errors import ConfigError, DataError
from rlvr.models import load_model, load_tokenizer
from rlvr.rollout.base import encode_prompt
from rlvr.sft import (DataConfig, Example, SFTConfig, build_sft_config, encode_example, load_examples,
                      load_splits, micro_batches, nll_sum, prompt_and_response, sft)
from rlvr.supervised import BatchCursor, bucketed_batches
from rlvr.tasks.demos import demonstrations, write_jsonl
from rlvr.tasks.files import DataWarning

PROMPT = ({"role": "user", "content": "What is 2 + 3? Put your final answer within \\boxed{}."},)


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(str(tiny_model_dir)).eval()


@pytest.fixture(scope="module")
def demos_file(tmp_path_factory):
    return write_jsonl(demonstrations(level=1, n=40, test_size=30), tmp_path_factory.mktemp("d") / "demos.jsonl")


def config(model_dir, demos, out, **over) -> SFTConfig:
    data = over.pop("data", {})
    model = over.pop("model", {})
    return SFTConfig(output_dir=str(out), steps=over.pop("steps", 6), batch_size=8, eval_every=3,
                     model=ModelConfig(name=str(model_dir), train_autocast=False, **model),
                     data=DataConfig(train_file=str(demos), eval_fraction=0.1, **data),
                     optim=OptimConfig(lr=1e-3, warmup_steps=1, schedule="cosine", micro_batch_size=3),
                     checkpoint=CheckpointConfig(every=2, keep=2), log=LogConfig(progress=False), **over)


# ------------------------------------------------------------------------- the loss


def test_example_tokens_are_the_engines_prompt_then_the_response_and_eos(tok):
    ex = encode_example(tok, PROMPT, "2 + 3 = 5. \\boxed{5}", "f:1", max_length=512)
    assert list(ex.prompt_ids) == encode_prompt(tok, PROMPT)  # what the rollout engine samples after
    assert list(ex.response_ids) == tok("2 + 3 = 5. \\boxed{5}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(ex.prompt_ids).endswith("<|im_start|>assistant\n") and not ex.truncated


def test_loss_is_on_response_tokens_only_worked_by_hand(tok, model):
    ex = encode_example(tok, PROMPT, "5", "f:1", max_length=512)
    ids = torch.tensor([ex.prompt_ids + ex.response_ids])
    P = len(ex.prompt_ids)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.double(), -1)[0]  # (L, V)
        total, n = nll_sum(model, [ex], tok.pad_token_id, autocast=False)
    # the response is "5" then EOS: two targets, predicted from positions P-1 and P
    assert n == 2 == len(ex.response_ids)
    by_hand = -(logp[P - 1, ex.response_ids[0]] + logp[P, ex.response_ids[1]])
    assert float(total) == pytest.approx(float(by_hand), rel=1e-5)
    with_prompt = by_hand - sum(logp[t - 1, ids[0, t]] for t in range(1, P))
    assert float(total) < float(with_prompt) - 1.0  # the prompt's own tokens are not in the loss


def test_bucketed_micro_batches_give_the_loss_and_gradient_of_one_by_one(tok, model):
    rows = demonstrations(level=2, n=7, seed=5)
    examples = [encode_example(tok, r["prompt"], r["response"] * (1 + i % 3), f"f:{i}", 512)
                for i, r in enumerate(rows)]
    assert len({len(e) for e in examples}) > 2  # different lengths: padding in every batch
    tokens = sum(len(e.response_ids) for e in examples)
    params = [p for p in model.parameters()]

    def loss_and_grad(groups):
        model.zero_grad()
        loss = sum(nll_sum(model, g, tok.pad_token_id, False)[0] / tokens for g in groups)
        loss.backward()
        return float(loss.detach()), torch.cat([p.grad.flatten() for p in params]).clone()

    order = bucketed_batches([len(e) for e in examples], 7, seed=0)[0]
    batched = loss_and_grad(micro_batches([examples[i] for i in order], 3))
    single = loss_and_grad([[e] for e in examples])
    assert batched[0] == pytest.approx(single[0], rel=1e-5)
    assert torch.allclose(batched[1], single[1], rtol=1e-4, atol=1e-6)


def test_bucketed_batches_cover_each_item_once_sorted_within_windows_and_seeded():
    lengths = [((i * 37) % 50) + 1 for i in range(100)]
    batches = bucketed_batches(lengths, 8, seed=1, window_batches=4)
    assert sorted(i for b in batches for i in b) == list(range(100))
    assert sorted(len(b) for b in batches)[1:] == [8] * 12  # windows of 32: 32, 32, 32, 4 items
    assert all([lengths[i] for i in b] == sorted(lengths[i] for i in b) for b in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread < 0.4 * sum(max(lengths) - 1 for _ in batches)  # far less padding than random
    assert batches == bucketed_batches(lengths, 8, seed=1, window_batches=4)
    cursor = BatchCursor(lengths, 8, seed=1)
    first = [cursor.take() for _ in range(cursor.batches_per_epoch + 2)]
    again = BatchCursor(lengths, 8, seed=1, **{"epoch": 1, "index": 1})
    assert again.take() == first[-1] and cursor.state() == {"epoch": 1, "index": 2}


# ------------------------------------------------------------------------- a run end to end


def test_run_checkpoints_resumes_to_identical_weights_and_the_trainer_loads_it(tiny_model_dir, demos_file, tmp_path):
    out = tmp_path / "run"
    sft(config(tiny_model_dir, demos_file, out))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    assert "eval/loss" in rows[0] and "eval/loss" in rows[3] and "eval/loss" in rows[6]
    assert rows[6]["eval/loss"] < rows[0]["eval/loss"]  # it learns the demonstrations
    assert all(r["tokens"] > 0 and r["grad_norm"] > 0 for r in rows[1:])
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"step-000002", "step-000004", "latest"}
    # resume from step 2 (36 train rows, batches of 8: the epoch turns over on the way)
    again = tmp_path / "again"
    shutil.copytree(out, again)
    shutil.rmtree(again / "final")
    shutil.rmtree(again / "checkpoints" / "step-000004")
    (again / "checkpoints" / "latest").write_text("step-000002")
    sft(config(tiny_model_dir, demos_file, again), resume=True)
    resumed = [json.loads(line) for line in (again / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [0, 1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in resumed[3:]] == pytest.approx([r["loss"] for r in rows[3:]], rel=1e-6)
    a, b = load_file(out / "final" / "model.safetensors"), load_file(again / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the final model loads with the trainer's own builder, as `rlvr train --model.name=RUN/final`
    from rlvr.models import check_model
    from rlvr.policy import build_policy

    check_model(str(out / "final"))
    policy, _ = build_policy(Config(model=ModelConfig(name=str(out / "final"))), torch.device("cpu"))
    assert torch.equal(policy.state_dict()["model.embed_tokens.weight"], a["model.embed_tokens.weight"])


def test_lora_run_writes_a_merged_final_model(tiny_model_dir, demos_file, tmp_path):
    out = tmp_path / "lora"
    sft(config(tiny_model_dir, demos_file, out, steps=2, model={"lora": LoraConfig(enabled=True, r=4)}))
    assert (out / "final" / "config.json").is_file() and (out / "final" / "adapter").is_dir()
    base = load_file(tiny_model_dir / "model.safetensors")
    final = load_model(str(out / "final")).state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(final[key], base[key])  # the adapters were merged into the weights
    assert not any("lora" in k for k in final)


def test_cli_trains_and_refuses_to_write_over_a_run(tiny_model_dir, demos_file, tmp_path):
    out = tmp_path / "cli"
    args = [sys.executable, "-m", "rlvr.cli", "sft", f"--data.train_file={demos_file}",
            f"--model.name={tiny_model_dir}", f"--output_dir={out}", "--steps=2", "--log.progress=false",
            "--batch_size=4"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "final" / "model.safetensors").is_file() and "final model in" in proc.stderr
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "is not empty" in again.stderr
    bad = subprocess.run(args[:4] + ["--data.max_length=abc"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "data.max_length" in bad.stderr


# ------------------------------------------------------------------------- bad input


def test_rows_of_every_format(tok):
    assert prompt_and_response({"prompt": "Q", "response": "A"}, "f:1") == ("Q", "A")
    assert prompt_and_response({"prompt": "Q", "response": "A"}, "f:1", "chat") == (({"role": "user", "content": "Q"},), "A")
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    assert prompt_and_response({"messages": msgs}, "f:1") == (tuple(msgs[:2]), "A")
    assert prompt_and_response({"prompt": msgs[:2], "response": "A"}, "f:1") == (tuple(msgs[:2]), "A")


@pytest.mark.parametrize("row,message", [
    ({"question": "Q", "answer": "A"}, r"f\.jsonl:2: expected 'prompt' and 'response', or 'messages' \(has: answer, question\)"),
    ({"prompt": "Q"}, r"f\.jsonl:2: missing field 'response'"),
    ({"prompt": "Q", "response": "  "}, r"f\.jsonl:2: field 'response' is empty"),
    ({"prompt": "Q", "response": 3}, r"f\.jsonl:2: field 'response' should be str"),
    ({"messages": [{"role": "user", "content": "Q"}]}, r"f\.jsonl:2: the last of 'messages' must be the assistant's"),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": ""}]}, r"f\.jsonl:2: .*answer .* is empty"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "A"}]}, r"f\.jsonl:2: messages\[0\] must be a mapping"),
    ({"prompt": [{"role": "tool", "content": "x"}], "response": "A"}, r"f\.jsonl:2: prompt\[0\] has role 'tool'"),
    ({"prompt": "word " * 200, "response": "A"}, r"f\.jsonl:2: the prompt alone has \d+ tokens, so with data\.max_length=64 nothing"),
])
def test_bad_rows_name_file_and_line(tok, tmp_path, row, message):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "response": "A"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message):
        load_examples(str(path), tok, DataConfig(train_file=str(path), max_length=64))


def test_long_responses_are_cut_without_eos_and_bad_rows_can_be_skipped(tok, tmp_path):
    path = tmp_path / "f.jsonl"
    good = [json.dumps({"prompt": "Q", "response": "A " * 100})] * 10
    path.write_text("\n".join(good + ["{not json"]) + "\n")
    with pytest.raises(DataError, match=r"f\.jsonl:11: not valid JSON"):
        load_examples(str(path), tok, DataConfig(train_file=str(path)))
    with pytest.warns(DataWarning, match="f.jsonl:11"):
        examples = load_examples(str(path), tok, DataConfig(train_file=str(path), on_error="skip", max_length=40))
    assert len(examples) == 10 and all(len(e) == 40 and e.truncated for e in examples)
    assert all(tok.eos_token_id not in e.response_ids for e in examples)


def test_held_out_split_is_seeded_and_disjoint(tok, demos_file):
    data = DataConfig(train_file=str(demos_file), eval_fraction=0.1)
    train, held = load_splits(data, tok, seed=0)
    assert len(train) == 36 and len(held) == 4
    assert not {e.where for e in train} & {e.where for e in held}
    assert [e.where for e in held] == [e.where for e in load_splits(data, tok, seed=0)[1]]
    assert isinstance(held[0], Example)


def test_config_errors():
    with pytest.raises(ConfigError, match="data.train_file is required"):
        build_sft_config(overrides=[])
    with pytest.raises(ConfigError, match="unknown key data.trian_file"):
        build_sft_config(overrides=["--data.trian_file=x.jsonl"])
    with pytest.raises(ConfigError, match="eval_fraction"):
        build_sft_config(overrides=["--data.train_file=x.jsonl", "--data.eval_fraction=1"])
    cfg = build_sft_config(overrides=["--data.train_file=x.jsonl", "--model.lora.enabled=true"])
    assert cfg.model.lora.enabled and cfg.optim.lr == 5e-5
