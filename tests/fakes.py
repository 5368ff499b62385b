"""Small fakes written for the tests (importable by verifier worker processes via PYTHONPATH)."""

import os

from rlvr.errors import VerifierError
from rlvr.types import Verdict


class VowelFractionVerifier:
    """Reward = fraction of vowels in the text: a dense signal even for a random tiny model."""

    def verify(self, problem, completion):
        text = completion.text
        frac = sum(ch in "aeiou" for ch in text) / max(len(text), 1)
        return Verdict(reward=frac, passed=frac > 0.5, status="scored")


class FlakyVerifier:
    """Raises an infrastructure error for every completion whose text has an even length."""

    def verify(self, problem, completion):
        if len(completion.text) % 2 == 0:
            raise VerifierError("backend unavailable")
        return Verdict(reward=1.0, passed=True, status="correct")


class SlowVerifier:
    def verify(self, problem, completion):
        if completion.text.startswith("hang"):  # "hang:PATH" first writes the worker's pid to PATH
            if ":" in completion.text:
                with open(completion.text.split(":", 1)[1], "a") as f:
                    f.write(f"{os.getpid()}\n")
            while True:
                pass
        if completion.text == "crash":
            os._exit(3)
        if completion.text == "bug":
            raise ZeroDivisionError("verifier bug")
        if completion.text == "oom":
            _ = bytearray(8 * 1024**3)
        return Verdict(reward=1.0, passed=True, status="correct")


class ConstantVerifier:
    """Every completion scores 0.5: every group is flat, so no group carries a signal."""

    def verify(self, problem, completion):
        return Verdict(reward=0.5, passed=False, status="scored")


class LengthVerifier:
    """Reward = 1 for an odd number of characters: a spread in every group of ScriptedEngine."""

    def verify(self, problem, completion):
        odd = len(completion.text) % 2 == 1
        return Verdict(reward=float(odd), passed=odd, status="correct" if odd else "wrong")


class BadReferenceVerifier:
    """Problems whose id ends in a digit below 5 have a reference this verifier cannot read."""

    def verify(self, problem, completion):
        from rlvr.errors import BadReferenceError

        if problem.id[-1] in "01234":
            raise BadReferenceError("reference['answer'] is missing", problem_id=problem.id,
                                    verifier="bad_reference")
        return Verdict(reward=float(len(completion.text) % 2), passed=True, status="scored")


class ScriptedEngine:
    """A rollout engine for loop tests: completion j of every prompt is `texts[j % len(texts)]`,
    tokenized and followed by EOS, cut at max_new_tokens (finish "length" when EOS was cut off),
    with every sampling log-prob equal to `logprob`. Records its weight updates; the last engine built is `ScriptedEngine.last`."""

    last = None

    def __init__(self, model, tokenizer, *, dtype="same", texts=("ab", "abc", "abcd", "abcde"),
                 logprob=-1.0):
        self.model, self.tokenizer, self.texts, self.logprob = model, tokenizer, texts, logprob
        self.updates, self.closed, self.dtype = 0, False, dtype
        ScriptedEngine.last = self

    def generate(self, prompts, params):
        from rlvr.rollout.base import encode_prompt
        from rlvr.types import Completion

        out = []
        for prompt in prompts:
            prompt_ids = tuple(encode_prompt(self.tokenizer, prompt))
            group = []
            for j in range(params.n):
                ids = self.tokenizer(self.texts[j % len(self.texts)], add_special_tokens=False)["input_ids"]
                ids = [*ids, self.tokenizer.eos_token_id]
                cut = len(ids) > params.max_new_tokens
                ids = tuple(ids[:params.max_new_tokens])
                group.append(Completion(text=self.tokenizer.decode(ids, skip_special_tokens=True), finish_reason="length" if cut else "stop",
                                        prompt_ids=prompt_ids, completion_ids=ids,
                                        logprobs=(self.logprob,) * len(ids)))
            out.append(group)
        return out

    def update_weights(self, model):
        self.updates += 1

    def close(self):
        self.closed = True


class HalfFlatVerifier:
    """Flat (always 0) on problems whose id ends in an even digit, else 1 for odd-length texts."""

    def verify(self, problem, completion):
        if int(problem.id[-1]) % 2 == 0:
            return Verdict(reward=0.0, passed=False, status="wrong")
        odd = len(completion.text) % 2 == 1
        return Verdict(reward=float(odd), passed=odd, status="scored")
