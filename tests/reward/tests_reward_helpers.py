"""A tiny random reward model in the saved format of `rlvr.reward.model`, for tests."""

from __future__ import annotations

from pathlib import Path


def make_tiny_reward_model(causal_lm_dir: Path, out: Path, mean: float = 0.0, std: float = 1.0,
                           seed: int = 0, chat_template: bool = True) -> Path:
    """`out`: the tiny causal LM of `causal_lm_dir` with a random scalar head, its tokenizer and
    reward_stats.json {mean, std} (texts encoded with the chat template unless told)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlvr.reward.model import write_stats

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(causal_lm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        causal_lm_dir, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        model.score.weight.normal_(0.0, 1.0)  # a visible spread of rewards between texts
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_stats(out, {"mean": mean, "std": std, "chat_template": chat_template, "max_length": 256,
                      "base_model": str(causal_lm_dir), "pairs": 0})
    return out
