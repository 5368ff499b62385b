"""Fuzzing the math verifier with generated model text: every string ends as a verdict, in time.

10,000 completions are generated from a fixed seed: random nesting of the LaTeX commands the
parser knows (fractions, roots, powers, sums, products, integrals and limits with bounds, sets,
intervals, matrices, relations, units, percent and degree signs, clock times, thousands
separators), unicode, several answer markers and boxes, and random truncation. Each is judged
in this process against a reference drawn from a list of well-formed references of every
family. A verdict with status `verifier_error` (an unexpected exception inside rlvr or sympy)
fails the test and names the input, as does any item that takes more than `ITEM_LIMIT_S` of
CPU time. The whole run takes about 50 s of CPU on one core.
"""

from __future__ import annotations

import random
import time

from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.math import MathVerifier

SEED = 20_261_201
N_ITEMS = 10_000
ITEM_LIMIT_S = 5.0  # CPU seconds, well under the pool's per-item limit (`verify.timeout_s`, 10 s)
STATUSES = {"correct", "wrong", "no_answer", "unparsable"}

REFERENCES = [
    "42", "-7", "0", "2.5", "0.333", r"\frac{3}{4}", r"-\frac{1}{2}", r"\sqrt{2}", r"2\sqrt{3}",
    r"\pi", r"\frac{\pi}{6}", "e^2", "1,000,000", r"6.02 \times 10^{23}", "x^2 + 2x + 1",
    r"\frac{x+1}{x-1}", r"\ln 2", r"\sin x", r"\{1, 2, 3\}", "(1, 2)", "(3, 4, 5)", "[0, 1)",
    r"(-\infty, 3]", r"[1, 2] \cup (3, 4)", "x > 3", r"-1 \le x < 2", "x = 5", "y = 2x + 1",
    "x = 1 or x = 2", r"\pm 3", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"50\%",
    r"30^\circ", r"5 \text{ km}", r"12 \text{ hours}", r"\$18.50", "(B)", r"\text{Monday}",
    "no solution", "9:30", "3:5", r"\sum_{k=1}^{n} k^2", r"\prod_{k=1}^{n} k", r"\binom{6}{3}",
    "5!", r"\log_2 8", r"|x - 1|", r"f(x) = x^2", r"\infty", r"\emptyset", "19, 46, and 82",
    r"\boxed{1} and \boxed{-2}", "The answer is 12.", "Adding gives 5.\n#### 5", r"(p, q) = (3, 2)",
]

ATOMS = ["0", "1", "2", "7", "12", "-3", "0.5", "3.14159", "1e-8", "2.5000004", "x", "y", "n", "k",
         "a", "b", "e", "i", r"\pi", r"\infty", r"\theta", r"\alpha", "A", "B", "AB", "V_1", "x_{1}",
         "f(x)", "1,000", r"1{,}000", r"1,\! 000", "0,111", "9:30", "12:00", "3:5", r"\emptyset",
         r"\mathbb{R}", "π", "√2", "≤", "×", "−1", "²", "½", "∞", "°", "\u200b", "\u202e", "数",
         "😀", "\\", "{", "}", "(", ")", "[", "]", "|", "&", "$", "%", "^", "_", ",", ".", ":"]
UNARY = [r"\sqrt{%s}", r"\sqrt[3]{%s}", r"\sin(%s)", r"\cos %s", r"\ln(%s)", r"\log_{2} %s",
         r"\left( %s \right)", r"\{%s\}", r"|%s|", r"-%s", r"%s!", r"%s\%%", r"%s^\circ",
         r"\text{%s}", r"\mathbf{%s}", r"\overline{%s}", r"%s \text{ cm}", r"\$%s",
         r"\sum_{k=1}^{n} %s", r"\sum_{i=0}^{\infty} %s", r"\prod_{k=1}^{%s} k",
         r"\int_0^1 %s \, dx", r"\int %s dx", r"\lim_{x \to 0} %s", r"\lim_{n\to\infty} %s",
         r"\frac{d}{dx} %s", r"\binom{%s}{2}", r"\lfloor %s \rfloor", r"\underbrace{%s}_{n}",
         r"\operatorname{sgn}(%s)", r"\vec{%s}", r"%s'", r"\hat{%s}", r"\begin{cases} %s \end{cases}"]
BINARY = [r"\frac{%s}{%s}", r"%s^{%s}", r"%s_{%s}", "%s + %s", "%s - %s", r"%s \cdot %s",
          r"%s \times %s", "%s / %s", "%s, %s", "(%s, %s)", "[%s, %s)", r"\{%s, %s\}", "%s = %s",
          r"%s \le %s", "%s < %s", r"%s \ne %s", r"%s \approx %s", r"%s \in %s", r"%s \cup %s",
          r"%s \pm %s", r"%s \text{ or } %s", "%s and %s", "%s:%s", r"%s \to %s",
          r"\begin{pmatrix} %s & %s \\ 1 & 0 \end{pmatrix}", r"\binom{%s}{%s}", "%s %s",
          r"\sum_{k=%s}^{%s} k^2", r"\int_{%s}^{%s} x \, dx", r"\lim_{x \to %s} %s"]
WRAPPERS = [r"\boxed{%s}", r"The answer is $\boxed{%s}$.", "Final Answer: The final answer is %s. I hope",
            "So the answer is %s.", "#### %s", "<answer>%s</answer>", r"\boxed{%s} and \boxed{2}",
            r"$x = \boxed{%s}$ or $x = \boxed{1}$", r"First \boxed{3}. Then the final answer is %s.",
            r"\fbox{%s}", r"\boxed %s", "%s", r"\[ \boxed{%s} \]", r"\boxed{\boxed{%s}}"]


def expression(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth <= 0 or roll < 0.25:
        return rng.choice(ATOMS)
    if roll < 0.55:
        return rng.choice(UNARY) % expression(rng, depth - 1)
    return rng.choice(BINARY) % (expression(rng, depth - 1), expression(rng, depth - 1))


def completion_text(rng: random.Random) -> str:
    text = rng.choice(WRAPPERS) % expression(rng, rng.randint(1, 6))
    if rng.random() < 0.2:  # truncated mid-answer, as a completion cut at max_tokens is
        text = text[:rng.randint(0, len(text))]
    if rng.random() < 0.1:
        text = "Let me think step by step. " * rng.randint(1, 3) + text
    return text


def test_generated_model_text_always_ends_as_a_verdict_in_time():
    rng = random.Random(SEED)
    verifier = MathVerifier()
    statuses: dict[str, int] = {}
    slowest = (0.0, "")
    start = time.perf_counter()
    for i in range(N_ITEMS):
        reference, text = rng.choice(REFERENCES), completion_text(rng)
        problem = Problem(f"fuzz-{i}", "", "math", {"answer": reference})
        item_start = time.process_time()  # CPU time: a busy CI machine does not fail the test
        verdict = verifier.verify(problem, Completion(text))
        elapsed_s = time.process_time() - item_start
        slowest = max(slowest, (elapsed_s, text))
        assert isinstance(verdict, Verdict)
        assert verdict.status in STATUSES, (i, reference, text, verdict)
        assert verdict.reward == (1.0 if verdict.passed else 0.0)
        statuses[verdict.status] = statuses.get(verdict.status, 0) + 1
    total_s = time.perf_counter() - start
    assert slowest[0] < ITEM_LIMIT_S, slowest
    assert sum(statuses.values()) == N_ITEMS
    assert len(statuses) == len(STATUSES), statuses  # the generator reaches every outcome
    print(f"\n{N_ITEMS} items in {total_s:.1f} s, slowest {slowest[0] * 1000:.0f} ms: {statuses}")
