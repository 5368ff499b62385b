"""A scripted critique-and-revise judge on loopback, in the chat-completions format, for tests of
`rlvr rm pairs`. It is the rubric tests' `JudgeServer` (HTTP server, request log, request-order
`faults`, `fail_fraction`) with another answer:

- critique stage (one assistant message so far: the original response):
  "Critique: the response does not yet follow: <principle>";
- revision stage (two assistant messages: the response and the critique):
  `revise(original, principle)`.

Faults are scripted per prompt, so they stay put under concurrent requests:
`script[prompt text] = (stage, fault)`, stage "critique" or "revision", fault one of "500",
"hang" (answers after `hang_s`), "malformed" (not a chat-completions body), "not-json", "empty",
"refusal", "truncated" or "same" (revision stage: the original back, unchanged).
"""

from __future__ import annotations

import re
import time

from judges.judge_server import JudgeServer

_PRINCIPLE = re.compile(r"^Principle: (.*)$", re.M)


def revise(original: str, principle: str) -> str:
    return f"{original.strip()} [revised to follow: {principle}]"


class PairsServer(JudgeServer):
    def __init__(self, script: dict[str, tuple[str, str]] | None = None, hang_s: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.script, self.hang_s = dict(script or {}), hang_s

    @staticmethod
    def read(body: dict) -> tuple[str, str, str, str]:
        """(stage, prompt, original response, principle) of a request."""
        messages = body["messages"]
        prompt = next(m["content"] for m in messages if m["role"] == "user")
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        principle = _PRINCIPLE.search(messages[-1]["content"]).group(1)
        return ("critique" if len(answers) == 1 else "revision"), prompt, answers[0], principle

    def answer(self, handler, body: dict, fault: str | None) -> None:
        stage, prompt, original, principle = self.read(body)
        scripted_stage, scripted = self.script.get(prompt, (None, None))
        fault = fault or (scripted if scripted_stage == stage else None)
        if fault == "hang":
            time.sleep(self.hang_s)
        if fault == "500":
            return self.send(handler, 500, b'{"error": "server error"}')
        if fault == "malformed":
            return self.send(handler, 200, b'{"choices": []}')
        if fault == "not-json":
            return self.send(handler, 200, b"<html>gateway</html>")
        if fault == "empty":
            return self.send(handler, 200, self.completion("  "))
        if fault == "refusal":
            return self.send(handler, 200, self.completion(None, refusal="I can't help with that."))
        if fault == "truncated":
            return self.send(handler, 200, self.completion("Critique: the resp", finish="length"))
        if stage == "critique":
            text = f"Critique: the response does not yet follow: {principle}"
        else:
            text = original if fault == "same" else revise(original, principle)
        self.send(handler, 200, self.completion(text))
