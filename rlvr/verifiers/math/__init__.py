"""The `math` verifier: is the final answer of a completion equivalent to the reference answer?

    extract (<answer> / Minerva closing / last of box group, #### and "final answer" /
             "the answer is" / last number, opt-in)
      -> normalize (one spelling of LaTeX and plain text)
      -> string-equality fast path
      -> parse (structure by hand, scalars by a grammar; never `eval`)
      -> equivalence (exact numbers, the precision rule for decimals, probed expressions, sets,
         tuples, intervals, relations, labels, matrices, units, percentages, clock times,
         choices, words)

The reference in `problem.reference["answer"]` may be bare (`42`), boxed, or a full worked
solution; its answer is extracted the same way (all its boxes count). Rewards are 1.0
(`correct`) or 0.0 (`wrong`, `no_answer`, `unparsable`, `verifier_error`).

Errors. A reference that is missing, ambiguous or unreadable raises `BadReferenceError` (a
dataset bug, masked and counted by the trainer); an unreadable one still accepts an answer
spelled exactly like it. Once the reference is read, nothing the completion contains raises:
an unexpected exception inside rlvr or sympy while judging it is the verdict `verifier_error`
(reward 0, the exception and its location in `info`), distinct from `unparsable` so that bugs
stay visible, and not an exception, which the trainer would mask: a model must not be able to
exempt its samples from the reward by triggering a bug. The fuzz test fails on any such verdict.

Size guards inside the parser refuse inputs that could blow up (huge exponents, towers, long or
deeply nested answers, calculus that sympy would evaluate for minutes); time and memory are
bounded from outside by `rlvr.verifiers.pool`, which is how the trainer runs every verifier.
Calling `verify` directly in the trainer's process is safe from `eval` but not from a slow
sympy call: use the pool.

What it does not do: read the question (a unit or a rounding asked for in the prompt is
unknown here), grade working or proofs, or give partial credit.
"""

from __future__ import annotations

import functools
import re
import traceback
from typing import Any

from rlvr.errors import BadReferenceError, ConfigError
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier
from rlvr.verifiers.math.equivalence import COMPUTE_ERRORS, Tolerance, equivalent
from rlvr.verifiers.math.extract import (MAX_ANSWER_CHARS, AmbiguousAnswer, extract_answer,
                                         extract_reference)
from rlvr.verifiers.math.normalize import normalize
from rlvr.verifiers.math.parse import parse_answer, text_key
from rlvr.verifiers.math.values import Choice, Text, UnparsableAnswer, Value

__all__ = ["MathVerifier"]

_INFO_CHARS = 200
# `0,111`, `3,05`: no list is written so, and a thousands group never starts at 0 (`0,1` and
# `-2,1` are lists of solutions, as MATH writes them)
_DECIMAL_COMMA = re.compile(r"^[-+]?(?:0,\d{3,}|\d+,0\d+)$")
_LABELLED_CHOICE = re.compile(r"^(?:\\text\{)?\(([A-J])\)\}?\s*([^\s}].*)$")
_OTHER_CHOICE = re.compile(r"\(\s*[A-J]\s*\)|(?<![A-Za-z\\])[A-J](?![A-Za-z])")
_CHOICE_IN_TEXT = re.compile(
    r"^(?:\\text\{)?\s*(?:(?:option|choice|answer)\s*:?\s*)?\(?\s*([A-J])\s*\)?(?=[\s.:)}]|$)", re.I)


class MathVerifier(BaseVerifier):
    """Checks the final answer of a completion against `problem.reference["answer"]`.

    Options: `rel_tol` is the relative tolerance of a decimal answer to an exact reference that
    has no exact decimal at the answer's places (`1/3`, `\\sqrt{2}`; a decimal reference is read
    at its own precision instead);
    `last_number_fallback` accepts the last number of the text when no answer is marked;
    `probe_points` is how many random points must agree for expressions with variables.
    """

    def __init__(self, rel_tol: float = 1e-6, last_number_fallback: bool = False,
                 probe_points: int = 6):
        if not 0.0 <= rel_tol < 1.0:
            raise ConfigError(f"math verifier: rel_tol must be in [0, 1), not {rel_tol}")
        if not 1 <= probe_points <= 64:
            raise ConfigError(f"math verifier: probe_points must be in [1, 64], not {probe_points}")
        self.rel_tol = float(rel_tol)
        self.last_number_fallback = bool(last_number_fallback)
        self.probe_points = int(probe_points)
        self._tol = Tolerance(rel_tol=self.rel_tol, probe_points=self.probe_points)

    def warmup(self) -> None:
        """Load the parser and sympy paths once (the pool calls this before timing any item)."""
        for gold, text in ((r"\frac{1}{2}", r"\boxed{x^2 + \sqrt{2}}"), ("3", "x = -3")):
            self.verify(Problem(id="warmup", prompt="", verifier="math", reference={"answer": gold}),
                        Completion(text))

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        gold_text, gold = _read_reference(problem)
        try:
            verdict = self._judge(gold_text, gold, completion.text)
        except (MemoryError, RecursionError):
            raise  # the pool's resource limits: `resource_limit`
        except Exception as exc:  # noqa: BLE001 - see "Errors" in the module docstring
            return Verdict(0.0, False, "verifier_error", {
                "reference": gold_text[:_INFO_CHARS], "error": f"{type(exc).__name__}: {exc!s:.200}",
                "where": _where(exc)})
        if verdict is None:  # the reference has no value, and the answer is not spelled like it
            raise BadReferenceError(f"problem {problem.id}: cannot read the reference answer "
                                    f"{gold_text[:80]!r}: {gold}", problem_id=problem.id,
                                    verifier="math")
        return verdict

    def _judge(self, gold_text: str, gold: Value | str, text: str) -> Verdict | None:
        """The verdict, or None when only a readable reference could decide (`gold` is then
        the reason it cannot be read)."""
        found = extract_answer(text, last_number=self.last_number_fallback)
        if found is None:
            return Verdict(0.0, False, "no_answer", {"reference": gold_text[:_INFO_CHARS]})
        info: dict[str, Any] = {"extracted": found.text[:_INFO_CHARS], "how": found.how,
                                "reference": gold_text[:_INFO_CHARS]}
        if len(found.text) > MAX_ANSWER_CHARS:
            return Verdict(0.0, False, "unparsable", {**info, "reason": "answer too long"})
        pred_text = normalize(found.text)
        if pred_text.replace(" ", "") == gold_text.replace(" ", ""):
            return Verdict(1.0, True, "correct", info)
        if isinstance(gold, str):
            return None
        labelled = _LABELLED_CHOICE.match(gold_text)  # `(B) 5`: the letter or the value
        if labelled and _special_case(Choice(labelled.group(1)), pred_text):
            return Verdict(1.0, True, "correct", info)
        special = _special_case(gold, pred_text)
        if special is not None:
            return _verdict(special, info)
        try:
            pred = parse_answer(pred_text)
        except UnparsableAnswer as exc:
            return Verdict(0.0, False, "unparsable", {**info, "reason": str(exc)})
        try:
            return _verdict(equivalent(gold, pred, self._tol), info)
        except COMPUTE_ERRORS as exc:  # sympy refusing an operation on what the model wrote
            reason = f"cannot compare: {type(exc).__name__}: {exc!s:.120}"
            return Verdict(0.0, False, "unparsable", {**info, "reason": reason})


def _read_reference(problem: Problem) -> tuple[str, Value | str]:
    """The reference's normalised answer and its value, or the reason it has no value (then
    only an answer spelled exactly like it can be judged). `BadReferenceError` when there is no
    answer or no single answer (boxes that cannot be combined)."""
    reference = problem.reference.get("answer")
    if reference is None or not str(reference).strip():
        raise BadReferenceError(f"problem {problem.id}: the math verifier needs reference['answer']",
                                problem_id=problem.id, verifier="math")
    try:
        return _reference_value(str(reference))
    except AmbiguousAnswer as exc:
        raise BadReferenceError(f"problem {problem.id}: {exc}", problem_id=problem.id,
                                verifier="math") from None


@functools.lru_cache(maxsize=4096)
def _reference_value(reference: str) -> tuple[str, Value | str]:
    """`(normalised answer, value)`, or `(normalised answer, reason)` when it cannot be read
    (cached: a reference is read once per worker, not once per sample)."""
    gold_text = normalize(extract_reference(reference))
    if _DECIMAL_COMMA.match(gold_text):
        return gold_text, "a decimal comma or a list of two numbers? write 0.5 or 0, 5"
    labelled = _LABELLED_CHOICE.match(gold_text)
    try:
        return gold_text, parse_answer(labelled.group(2) if labelled else gold_text)
    except UnparsableAnswer as exc:
        return gold_text, str(exc)


def _where(exc: BaseException) -> str:
    """`file.py:line in function` of the innermost frame, for the `verifier_error` info."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def _special_case(gold: Value, pred_text: str) -> bool | None:
    """Multiple-choice letters and word answers are compared on the text, not parsed."""
    if isinstance(gold, Choice):
        m = _CHOICE_IN_TEXT.match(pred_text)
        if m is None or _OTHER_CHOICE.search(pred_text[m.end():]):
            return False  # no letter, or several: `(C) and (D)`
        return m.group(1).upper() == gold.letter.upper()
    if isinstance(gold, Text):
        return text_key(pred_text) == gold.text
    return None


def _verdict(correct: bool, info: dict[str, Any]) -> Verdict:
    return Verdict(1.0 if correct else 0.0, correct, "correct" if correct else "wrong", info)
