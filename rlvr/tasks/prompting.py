"""How a task turns a question into a prompt: chat or plain, system prompt, few-shot, answer format.

Every task of rlvr other than the embedded arithmetic one takes a `prompt` option, a mapping that
`PromptStyle.from_options` checks key by key:

    prompt:
      chat: true               # chat messages (the engine applies the chat template) or plain text
      system_prompt: "..."     # optional; in plain mode it is the first paragraph
      answer_format: boxed     # boxed | tags | code | none: the instruction appended to the question
      instruction: "..."       # optional: replaces the format's default instruction
      few_shot:                # optional worked examples, shown before the question
        - {question: "What is 2 + 2?", answer: "2 + 2 = 4. \\boxed{4}"}

The answer format only changes the instruction; which verifier reads the answer is the task's
choice (and the config's `task.verifier`). This module does not tokenize and does not apply chat
templates: the rollout engine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rlvr.errors import ConfigError
from rlvr.types import Prompt

INSTRUCTIONS: dict[str, str] = {
    "boxed": "Put your final answer within \\boxed{}.",
    "tags": "Think step by step, then give your final answer between <answer> and </answer>.",
    "code": "Write your solution in Python in a single ```python code block.",
    "none": "",
}


@dataclass(frozen=True)
class PromptStyle:
    """The options of the `prompt` mapping (see the module docstring)."""

    chat: bool = True
    system_prompt: str | None = None
    answer_format: str = "boxed"
    instruction: str | None = None
    few_shot: tuple[tuple[str, str], ...] = ()  # (question, answer) pairs

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None, answer_format: str = "boxed",
                     task: str = "task") -> "PromptStyle":
        """Check a `prompt` option mapping; `answer_format` is the task's default format."""
        opts = dict(options or {})
        known = {"chat", "system_prompt", "answer_format", "instruction", "few_shot"}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ConfigError(f"{task}: unknown prompt option {unknown[0]!r}; valid: "
                              f"{', '.join(sorted(known))}")
        fmt = opts.get("answer_format", answer_format)
        if fmt not in INSTRUCTIONS:
            raise ConfigError(f"{task}: prompt.answer_format must be one of "
                              f"{', '.join(INSTRUCTIONS)}, not {fmt!r}")
        shots = []
        for i, shot in enumerate(opts.get("few_shot") or ()):
            if not isinstance(shot, Mapping) or not {"question", "answer"} <= set(shot):
                raise ConfigError(f"{task}: prompt.few_shot[{i}] must be a mapping with "
                                  "'question' and 'answer'")
            shots.append((str(shot["question"]), str(shot["answer"])))
        chat = opts.get("chat", True)
        if not isinstance(chat, bool):
            raise ConfigError(f"{task}: prompt.chat must be true or false, not {chat!r}")
        return cls(chat=chat, system_prompt=opts.get("system_prompt") or None, answer_format=fmt,
                   instruction=opts.get("instruction"), few_shot=tuple(shots))

    def question_text(self, question: str) -> str:
        """The question with the answer-format instruction appended."""
        instruction = INSTRUCTIONS[self.answer_format] if self.instruction is None else self.instruction
        return f"{question.rstrip()}\n\n{instruction}" if instruction else question.rstrip()

    def render(self, question: str) -> Prompt:
        """Chat messages (a tuple of dicts) or one plain string."""
        if self.chat:
            messages: list[dict[str, str]] = []
            if self.system_prompt:
                messages.append({"role": "system", "content": self.system_prompt})
            for q, a in self.few_shot:
                messages.append({"role": "user", "content": self.question_text(q)})
                messages.append({"role": "assistant", "content": a})
            messages.append({"role": "user", "content": self.question_text(question)})
            return tuple(messages)
        parts = [self.system_prompt] if self.system_prompt else []
        parts += [f"Question: {self.question_text(q)}\nAnswer: {a}" for q, a in self.few_shot]
        parts.append(f"Question: {self.question_text(question)}\nAnswer:")
        return "\n\n".join(parts)
