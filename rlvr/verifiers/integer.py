"""A small, fast verifier for integer answers: the built-in check of the arithmetic task.

It exists so that training works without the full math verifier, and because its two modes matter
for learning signal on a small base model:

- `strict`: only an integer inside the last `\\boxed{...}` counts (SmolLM2-135M: about 0% right).
- `lenient`: the last boxed integer, else the last integer anywhere in the text (about 25%).

`format_weight` w adds a separate format reward: reward = (1 - w) * correct + w * boxed, where
`boxed` means the answer was given as a boxed integer. A run can start lenient and still teach
the format. `passed` is correctness alone. Parsing is regex over a bounded tail of the text.
It does not understand expressions, fractions or LaTeX: use the `math` verifier for those.
"""

from __future__ import annotations

import re

from rlvr.errors import BadReferenceError, ConfigError
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier

MAX_SCAN_CHARS = 20_000  # only the tail of a completion is scanned: the answer comes last
MAX_DIGITS = 64
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{\s*([^{}]{0,200})\}")
_INT_IN_BOX = re.compile(r"^\s*\$?\s*([-+]?\d{1,64})\s*\$?\s*\.?\s*$")
_INT = re.compile(r"(?<![\d.])[-+]?\d{1,64}(?!\d|\.\d)")  # not the integer part of a decimal


def boxed_integer(text: str) -> int | None:
    """The integer inside the last `\\boxed{}` of `text`, or None if that box holds no integer."""
    boxes = _BOXED.findall(text[-MAX_SCAN_CHARS:])
    if not boxes:
        return None
    m = _INT_IN_BOX.match(boxes[-1].replace(",", ""))
    return int(m.group(1)) if m else None


def last_integer(text: str) -> int | None:
    """The last integer written anywhere in `text` (thousands separators not supported)."""
    found = _INT.findall(text[-MAX_SCAN_CHARS:])
    return int(found[-1]) if found else None


class IntegerVerifier(BaseVerifier):
    """Checks an integer answer against `problem.reference["answer"]`."""

    def __init__(self, mode: str = "lenient", format_weight: float = 0.0):
        if mode not in ("strict", "lenient"):
            raise ConfigError(f"integer verifier: mode must be 'strict' or 'lenient', not {mode!r}")
        if not 0.0 <= format_weight <= 1.0:
            raise ConfigError(f"integer verifier: format_weight must be in [0, 1], not {format_weight}")
        self.mode = mode
        self.format_weight = float(format_weight)

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        try:
            expected = int(str(problem.reference["answer"]).strip())
        except (KeyError, ValueError) as exc:
            raise BadReferenceError(f"problem {problem.id}: reference answer is not an integer",
                                    problem_id=problem.id, verifier="integer") from exc
        boxed = boxed_integer(completion.text)
        answer = boxed
        if answer is None and self.mode == "lenient":
            answer = last_integer(completion.text)
        correct = answer is not None and answer == expected
        w = self.format_weight
        reward = (1.0 - w) * float(correct) + w * float(boxed is not None)
        status = "no_answer" if answer is None else ("correct" if correct else "wrong")
        return Verdict(reward=reward, passed=correct, status=status,
                       info={"extracted": answer, "boxed": boxed is not None})
