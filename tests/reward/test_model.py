"""The reward model format on a tiny random model: save/load, batching, padding, encoding."""

import json

import pytest
import torch

from rlvr.checkpoint import save_final
from rlvr.errors import ConfigError, ModelLoadError
from rlvr.reward import model as rm

PROMPTS = ["What is 2 + 3?", "Hi", [{"role": "user", "content": "Name a colour."}], "What is 12 + 30?"]
RESPONSES = ["2 + 3 = 5.", "Hello there, how are you doing today, my friend?", "Blue", "42"]


@pytest.fixture(scope="module")
def saved(tiny_model_dir, tmp_path_factory):
    """(in-memory model, its tokenizer, the saved reward model directory)."""
    torch.manual_seed(0)
    model, tokenizer = rm.build_reward_model(str(tiny_model_dir))
    torch.nn.init.normal_(model.score.weight, std=1.0)  # rewards far from 0, so differences show
    rm.prepare_tokenizer(tokenizer, chat_template=True, max_length=64)
    path = tmp_path_factory.mktemp("rm") / "final"
    save_final(model, tokenizer, path)
    rm.write_stats(path, {"mean": 0.5, "std": 2.0, "chat_template": True, "max_length": 64})
    return model.eval(), tokenizer, path


def test_save_load_round_trip_scores_the_same(saved):
    model, tokenizer, path = saved
    loaded, loaded_tok, stats = rm.load_reward_model(path)
    assert stats["mean"] == 0.5 and stats["std"] == 2.0 and stats["format"] == 1
    assert loaded.config.num_labels == 1 and not loaded.training
    before = rm.score_texts(model, tokenizer, PROMPTS, RESPONSES)
    after = rm.score_texts(loaded, loaded_tok, PROMPTS, RESPONSES)
    assert torch.allclose(before, after, atol=1e-6)
    assert before.std() > 0.01  # the texts really score differently
    assert json.loads((path / "config.json").read_text())["architectures"] == ["LlamaForSequenceClassification"]


def test_batched_scores_equal_one_by_one(saved):
    model, tokenizer, _ = saved
    batched = rm.score_texts(model, tokenizer, PROMPTS, RESPONSES, batch_size=4)
    single = torch.cat([rm.score_texts(model, tokenizer, [p], [r], batch_size=1) for p, r in zip(PROMPTS, RESPONSES)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_padding_side_does_not_change_the_score(saved):
    model, tokenizer, _ = saved
    seqs = [rm.encode(tokenizer, p, r) for p, r in zip(PROMPTS, RESPONSES)]
    assert len({len(s) for s in seqs}) > 1  # padding really happens
    left_ids, left_mask = rm.pad(seqs, tokenizer.pad_token_id)
    T = left_ids.shape[1]
    right_ids = torch.full_like(left_ids, tokenizer.pad_token_id)
    right_mask = torch.zeros_like(left_mask)
    for i, s in enumerate(seqs):
        right_ids[i, :len(s)] = torch.tensor(s)
        right_mask[i, :len(s)] = 1
    assert not torch.equal(left_ids, right_ids) and T == max(len(s) for s in seqs)
    with torch.no_grad():
        left = rm.rewards(model, left_ids, left_mask)
        right = rm.rewards(model, right_ids, right_mask)
    assert torch.allclose(left, right, atol=1e-5)


def test_chat_template_encoding_wraps_prompt_and_response(saved):
    _, tokenizer, _ = saved
    ids = rm.encode(tokenizer, "What is 2 + 3?", "5")
    text = tokenizer.decode(ids)
    assert "<|im_start|>user\nWhat is 2 + 3?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n5<|im_end|>\n")
    assert ids[-1] != tokenizer.pad_token_id  # the reward is read at the final newline


def test_without_chat_template_the_response_follows_the_prompt(tiny_model_dir):
    from rlvr.models import load_tokenizer

    tokenizer = rm.prepare_tokenizer(load_tokenizer(str(tiny_model_dir)), chat_template=False, max_length=0)
    assert rm.encode(tokenizer, "What is 2 + 3? ", "5") == tokenizer("What is 2 + 3? 5")["input_ids"]
    with pytest.raises(ConfigError, match="chat template"):
        rm.encode(tokenizer, [{"role": "user", "content": "hi"}], "5")


def test_long_texts_are_cut_from_the_left_keeping_the_end(saved):
    _, tokenizer, _ = saved
    long_response = " ".join(str(i) for i in range(200))
    ids = rm.encode(tokenizer, "Count.", long_response)
    assert len(ids) == 64
    assert tokenizer.decode(ids).endswith("198 199<|im_end|>\n")


def test_a_directory_without_stats_is_not_a_reward_model(saved, tmp_path):
    _, _, path = saved
    with pytest.raises(ModelLoadError, match="no reward_stats.json"):
        rm.load_reward_model(path.parent)  # the run-like parent: its final/ is the model
    with pytest.raises(ModelLoadError, match="no such directory"):
        rm.load_reward_model(tmp_path / "missing")


@pytest.mark.parametrize("stats, needle", [
    ({"format": 2, "mean": 0.0, "std": 1.0}, "unknown reward model format"),
    ({"format": 1, "mean": "x", "std": 1.0}, "'mean' must be a finite number"),
    ({"format": 1, "mean": 0.0, "std": 0.0}, "'std' must be > 0"),
])
def test_bad_stats_are_named(tmp_path, stats, needle):
    (tmp_path / rm.STATS_FILE).write_text(json.dumps(stats))
    with pytest.raises(ModelLoadError, match=needle):
        rm.read_stats(tmp_path)


def test_build_refuses_a_lora_adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="LoRA adapter"):
        rm.build_reward_model(str(tmp_path))
