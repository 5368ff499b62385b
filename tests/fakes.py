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
