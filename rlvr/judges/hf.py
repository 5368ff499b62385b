"""`HFJudge`: rubric questions answered by a local Hugging Face causal LM (no server needed).

Two modes:
- `logprob` (default): for each criterion, the judge prompt of `rlvr.judges.base` with that one
  criterion, the assistant's reply forced to start with `1:`, and one forward pass; the answer is
  YES when the model puts more probability on the YES tokens than on the NO tokens. When YES and
  NO together get less than `min_answer_mass` of the probability, the model is not answering the
  question: `JudgeError` (reason "malformed"), never a guess. All criteria of one question go in
  one padded batch. A small model (the embedded 135M default) answers this way when it could
  never keep to a reply format.
- `generate`: greedy decoding of a full reply, read by the strict parser (`parse_verdicts`).

The model is loaded on first use (or `warmup()`), in this process; calls from several threads
are serialised by a lock. A prompt longer than `max_prompt_tokens` is a `JudgeError` ("too_long"),
since cutting it would judge a different text. This module does not place the model on several
devices and does not batch across completions.
"""

from __future__ import annotations

import threading
from typing import Any

from rlvr.errors import ConfigError, JudgeError
from rlvr.judges.base import PROMPT_VERSION, JudgeQuestion, parse_verdicts, render_messages

__all__ = ["HFJudge"]

_YES = ("YES", " YES", "Yes", " Yes", "yes", " yes")
_NO = ("NO", " NO", "No", " No", "no", " no")
MODES = ("logprob", "generate")


class HFJudge:
    """A local causal LM as judge (see the module docstring). `model` is `smollm2-135m` (the
    embedded default), a local directory or a hub id where a hub is reachable."""

    def __init__(self, model: str = "smollm2-135m", mode: str = "logprob", device: str = "cpu",
                 dtype: str = "float32", max_new_tokens: int = 64, min_answer_mass: float = 0.2,
                 max_prompt_tokens: int = 4096):
        if mode not in MODES:
            raise ConfigError(f"hf judge: mode must be one of {', '.join(MODES)}, not {mode!r}")
        if not 0.0 <= min_answer_mass < 1.0:
            raise ConfigError("hf judge: min_answer_mass must be in [0, 1)")
        self.model_name, self.mode, self.device, self.dtype = model, mode, device, dtype
        self.max_new_tokens, self.min_answer_mass = max_new_tokens, min_answer_mass
        self.max_prompt_tokens = max_prompt_tokens
        self.identity = f"hf:{model}:{mode}:{PROMPT_VERSION}"
        self._model: Any = None
        self._tokenizer: Any = None
        self._ids: tuple[list[int], list[int]] = ([], [])
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_model=None, _tokenizer=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def warmup(self) -> None:
        with self._lock:
            self._load()

    def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from rlvr.models import load_model, load_tokenizer

        self._tokenizer = load_tokenizer(self.model_name)
        self._model = load_model(self.model_name, dtype=self.dtype, device=self.device).eval()

        def first_ids(words: tuple[str, ...]) -> list[int]:
            ids = {self._tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
            return sorted(ids)

        self._ids = (first_ids(_YES), first_ids(_NO))
        if set(self._ids[0]) & set(self._ids[1]):
            raise ConfigError(f"hf judge: the tokenizer of {self.model_name} does not tell YES "
                              "from NO by the first token")

    def _prompt(self, question: JudgeQuestion, prefix: str) -> str:
        text = self._tokenizer.apply_chat_template(render_messages(question), tokenize=False,
                                                   add_generation_prompt=True)
        return text + prefix

    def _encode(self, texts: list[str]) -> Any:
        batch = self._tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        if batch["input_ids"].shape[1] > self.max_prompt_tokens:
            raise JudgeError(f"judge {self.identity}: prompt of {batch['input_ids'].shape[1]} tokens "
                             f"is over max_prompt_tokens={self.max_prompt_tokens}",
                             judge=self.identity, reason="too_long")
        return batch.to(self.device)

    def judge(self, question: JudgeQuestion) -> tuple[bool, ...]:
        import torch

        with self._lock, torch.inference_mode():
            self._load()
            if self.mode == "generate":
                return self._generate(question)
            return self._logprob(question)

    def _logprob(self, question: JudgeQuestion) -> tuple[bool, ...]:
        import torch

        texts = [self._prompt(JudgeQuestion(question.prompt, question.completion, (c,),
                                            question.reference), "1:")
                 for c in question.criteria]
        batch = self._encode(texts)
        logits = self._model(**batch).logits[:, -1, :].float()  # (C, V), left padding
        probs = torch.softmax(logits, dim=-1)
        p_yes = probs[:, self._ids[0]].sum(-1)
        p_no = probs[:, self._ids[1]].sum(-1)
        answers = []
        for k, (y, n) in enumerate(zip(p_yes.tolist(), p_no.tolist()), 1):
            if y + n < self.min_answer_mass:
                raise JudgeError(f"judge {self.identity}: criterion {k}: YES and NO get only "
                                 f"{y + n:.3f} of the probability (min_answer_mass="
                                 f"{self.min_answer_mass})", judge=self.identity, reason="malformed")
            answers.append(y > n)
        return tuple(answers)

    def _generate(self, question: JudgeQuestion) -> tuple[bool, ...]:
        batch = self._encode([self._prompt(question, "")])
        out = self._model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                   pad_token_id=self._tokenizer.pad_token_id)
        reply = self._tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        return parse_verdicts(reply, len(question.criteria), self.identity)
