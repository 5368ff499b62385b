"""The HF engine's own sampling loop: one prefill per prompt, a KV cache written in place,
finished rows dropped from the batch.

`transformers.generate` spends most of a CPU decode step outside the model's matrix products:
its dynamic cache concatenates every layer's keys and values at every token (the whole cache
copied each step), the CPU attention kernel is slow for one query token, and every row keeps
decoding until the batch's longest completion ends. `sample_rows` keeps the model's forward and
changes the rest:

- each distinct prompt is prefilled once and its cache repeated for its samples (G = 8 samples
  of a prompt cost one prefill, not eight);
- `GrowingLayer` keeps each layer's keys and values in buffers that grow 32 positions at a time and
  writes each new token in place; attention reads the whole buffers, the unwritten part masked;
- attention is `rlvr.attention.grouped_attention`: two batched matrix products over the key/value
  heads, where the CPU SDPA kernel is slow for one query token;
- rows that have emitted EOS are removed from the batch once they make up an eighth of it, so
  the late steps decode the few long completions alone.

Each step's next-token scores go through `choose`, which the engine supplies (temperature, top-k,
top-p, per-row random streams, the sampled token's log-prob). The loop works for decoder-only
models whose attention goes through transformers' attention interface (Llama, Qwen, Mistral and
most current architectures); the engine falls back to `generate` for others and on CUDA, where
`generate` has a static cache and compiled graphs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

from rlvr.attention import cache_keyword, own_attention, supported

COMPACT_FRACTION = 8  # drop finished rows once they are 1/8 of the batch
GROW = 32  # KV cache positions added at a time


class GrowingLayer(DynamicLayer):
    """One layer's keys and values (B, heads, room, head_dim), zeros until written, each new token
    written in place. The buffers grow `GROW` positions at a time up to `capacity` (`reserve`), so
    one-token attention reads about as many positions as are written, not the whole capacity (on
    the vs_trl rollout, 180 positions, 0.65 s of 11.5). For one new token `update` returns the
    whole buffers (the loop's mask hides the positions not yet written): a view of the filled part
    would be copied by every batched product that reads it (their CPU kernels take only contiguous
    batches), the whole cache of every layer at every step. For several tokens (the prefill) it
    returns that view."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length, self.room = capacity, 0, 0

    def reserve(self, end: int) -> None:
        """Room for `end` positions: the buffers grow to the next multiple of `GROW`, at most `capacity`."""
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({end} tokens)")
        if end > self.room and self.is_initialized:
            room = min(self.capacity, -(-end // GROW) * GROW)
            more = lambda t: t.new_zeros(t.shape[:2] + (room - self.room,) + t.shape[3:])  # noqa: E731
            self.keys = torch.cat([self.keys, more(self.keys)], dim=2)
            self.values = torch.cat([self.values, more(self.values)], dim=2)
            self.room = room

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.keys, self.values = key_states[:, :, :0].clone(), value_states[:, :, :0].clone()
            self.device, self.is_initialized = key_states.device, True
        end = self.length + key_states.shape[-2]
        self.reserve(end)
        self.keys[:, :, self.length:end] = key_states
        self.values[:, :, self.length:end] = value_states
        self.length = end
        if key_states.shape[-2] == 1:
            return self.keys, self.values
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.length

    def batch_repeat_interleave(self, repeats: int | torch.Tensor) -> None:
        if self.is_initialized:
            self.keys = self.keys.repeat_interleave(repeats, dim=0)
            self.values = self.values.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.keys, self.values = self.keys[indices], self.values[indices]


def supports(model: Any) -> bool:
    """Whether `sample_rows` can drive `model`: a decoder-only LM on transformers' attention
    interface with full or sliding-window attention layers only."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    kinds = set(getattr(text, "layer_types", None) or [])
    return supported(model) and kinds <= {"full_attention", "sliding_attention"}


@torch.no_grad()
def sample_rows(model: Any, prompts: Sequence[Sequence[int]], repeats: Sequence[int], max_new_tokens: int,
                choose: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                eos_ids: Sequence[int], pad_id: int) -> tuple[list[list[int]], list[list[float]]]:
    """Sample `repeats[i]` rows from prompt `prompts[i]`, in that order, until EOS or
    `max_new_tokens`. `choose(scores (B, V) float, rows (B,) indices of the rows) -> (tokens (B,),
    log-probs (B,))` picks each step's tokens. Returns each row's tokens (EOS included) and log-probs."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts], device=device)
    prompt_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    attention = torch.cat([prompt_mask, prompt_mask.new_zeros((len(prompts), max_new_tokens))], dim=1)
    layers = model.config.get_text_config().num_hidden_layers
    cache = Cache(layers=[GrowingLayer(width + max_new_tokens) for _ in range(layers)])
    counts = torch.tensor(list(repeats), device=device)
    rows = int(counts.sum())
    tokens = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((rows, max_new_tokens), device=device)
    lengths = torch.zeros(rows, dtype=torch.long, device=device)
    eos = torch.tensor(list(eos_ids), device=device)
    kv = {cache_keyword(model): cache}
    with own_attention(model):
        # the last position by index, not `logits_to_keep=1`: its slice (P, 1, H) is not contiguous, and a
        # bf16 head on CPU then multiplies it by P expanded copies of itself (0.45 GB for 8 prompts)
        scores = model(input_ids=ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                       logits_to_keep=torch.tensor([width - 1], device=device), **kv).logits[:, -1]
        cache.batch_repeat_interleave(counts)
        scores, attention = scores.repeat_interleave(counts, 0), attention.repeat_interleave(counts, 0)
        last = positions[:, -1].repeat_interleave(counts, 0)
        alive = torch.arange(rows, device=device)  # the rows still in the batch
        done = torch.zeros(rows, dtype=torch.bool, device=device)  # finished, not yet dropped
        for t in range(max_new_tokens):
            tok, lp = choose(scores.float(), alive)
            live = ~done
            tokens[alive[live], t], logps[alive[live], t] = tok[live], lp[live]
            lengths[alive[live]] += 1
            done |= torch.isin(tok, eos)
            if t == max_new_tokens - 1 or bool(done.all()):
                break
            if int(done.sum()) * COMPACT_FRACTION >= len(alive):
                keep = (~done).nonzero().flatten()
                cache.batch_select_indices(keep)
                alive, tok, attention, last, done = alive[keep], tok[keep], attention[keep], last[keep], done[keep]
            attention[:, width + t] = 1  # token t goes into the cache now
            last = last + 1
            for layer in cache.layers:
                layer.reserve(width + t + 1)
            visible = attention[:, None, None, :cache.layers[0].room].bool()  # (B, 1, 1, room); a 4D mask is used as given
            scores = model(input_ids=tok[:, None], attention_mask=visible, position_ids=last[:, None],
                           use_cache=True, **kv).logits[:, -1]
    n = lengths.tolist()
    return ([row[:k] for row, k in zip(tokens.tolist(), n)], [row[:k] for row, k in zip(logps.tolist(), n)])
