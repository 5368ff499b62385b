"""rlvr's math verifier against Math-Verify on the same labelled table, side by side.

Both judge every (reference, completion, expected) triple of the regression table
(`tests/verifiers/math_cases.jsonl` unless `--cases` names another file, such as
`tests/verifiers/math_cases_second_pass.jsonl`, whose rows have a `class` and may expect
"bad_reference"). Math-Verify is called
the way RL trainers call it: `verify(parse("\\\\boxed{" + gold + "}"), parse(completion))`.

Printed as JSON: for each verifier, accuracy against the human labels, false accepts (reward 1
where the label says wrong or the reference is unreadable), false rejects, unreadable references
that were judged instead of reported (`bad_reference_missed`; Math-Verify, which cannot report
one, agrees with such a label when it gives no reward), mean/p50/p99 latency of one
verification in this process (after a warm-up; answer caches cleared before each item), and
verifications per second
with `--workers` processes (rlvr through its `VerifierPool`, Math-Verify through a
`multiprocessing` pool): each case once after a warm-up, the median of `--rounds` runs with fresh
processes. Then the accuracy per family.

This is a script, not a test: it does not assert the goals; read the numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

from rlvr.errors import BadReferenceError
from rlvr.types import Completion, Problem
from rlvr.verifiers.math import MathVerifier, _reference_value
from rlvr.verifiers.math.parse import parse_answer
from rlvr.verifiers.pool import VerifierPool

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ROOT / "tests" / "verifiers" / "math_cases.jsonl"
BAD_REFERENCE = "bad_reference"  # expected: the reference cannot be read (rlvr must raise)


# Warm-up answers, unrelated to the table: they let each worker's parser build its lookahead
# tables (ANTLR fills them lazily) so that the timed pass measures the steady state of a run.
WARM_UP = ["x+1", "2x^2-3x+1", "\\frac{a}{b}", "\\sqrt{7}", "3\\pi", "\\frac{\\sqrt{5}}{3}", "e^{2x}",
           "\\sin(x)+\\cos(y)", "\\ln(3)", "(y-2)^3", "\\log_{3} 9", "4!", "\\binom{6}{3}", "|x-1|",
           "x \\le 4", "y = 3x - 7", "(1, 5]", "\\{2, 9\\}", "7 \\text{ m}", "12\\%", "\\frac{1}{x+1}",
           "x^{3}y", "2\\cdot 5", "6 \\times 10^{4}", "\\tan\\theta", "\\sqrt[3]{5}", "-\\frac{2}{9}"]


def warm_up_cases(copies: int) -> list[dict]:
    return [{"gold": w, "completion": f"\\boxed{{{w}}}"} for w in WARM_UP] * copies


def load_cases(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rlvr_judge(case: dict, verifier: MathVerifier = MathVerifier()) -> bool | str:
    problem = Problem("bench", "", "math", {"answer": case["gold"]})
    try:
        return verifier.verify(problem, Completion(case["completion"])).passed
    except BadReferenceError:
        return BAD_REFERENCE


def math_verify_judge(case: dict) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse("\\boxed{" + case["gold"] + "}"), parse(case["completion"])))


def _agrees(verdict: bool | str, expected: bool | str, reports_bad_references: bool) -> bool:
    """A judge agrees with the label; a judge with no notion of a bad reference (Math-Verify)
    agrees on an unreadable reference when it gives no reward."""
    if expected == BAD_REFERENCE and not reports_bad_references:
        return verdict is False
    return verdict == expected


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def score(cases: list[dict], judge, clear_cache,
          reports_bad_references: bool = False) -> tuple[dict, list]:
    """Accuracy, false accepts/rejects and single-process latency of one judge (no answer cache)."""
    for case in warm_up_cases(1):
        judge(case)
    verdicts, latencies_ms = [], []
    for case in cases:
        clear_cache()
        start = time.perf_counter()
        verdicts.append(judge(case))
        latencies_ms.append((time.perf_counter() - start) * 1000)
    wrong = [(v, c["expected"]) for v, c in zip(verdicts, cases)
             if not _agrees(v, c["expected"], reports_bad_references)]
    return {
        "accuracy": round(1 - len(wrong) / len(cases), 4),
        "false_accepts": sum(1 for v, _ in wrong if v is True),
        "false_rejects": sum(1 for v, e in wrong if e is True),
        "bad_reference_missed": sum(1 for _, e in wrong if e == BAD_REFERENCE),
        "latency_mean_ms": round(statistics.fmean(latencies_ms), 3),
        "latency_p50_ms": round(statistics.median(latencies_ms), 3),
        "latency_p99_ms": round(_percentile(latencies_ms, 0.99), 3),
    }, verdicts


def rlvr_throughput(cases: list[dict], workers: int) -> float:
    problems = [Problem(str(i), "", "math", {"answer": c["gold"]}) for i, c in enumerate(cases)]
    completions = [Completion(c["completion"]) for c in cases]
    warm = warm_up_cases(2 * workers)
    with VerifierPool({"math": MathVerifier()}, workers=workers, timeout_s=10.0) as pool:
        pool.verify([Problem("warm", "", "math", {"answer": w["gold"]}) for w in warm],
                    [Completion(w["completion"]) for w in warm])
        start = time.perf_counter()
        pool.verify(problems, completions)
        return len(cases) / (time.perf_counter() - start)


def math_verify_throughput(cases: list[dict], workers: int) -> float:
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(math_verify_judge, warm_up_cases(2 * workers))
        start = time.perf_counter()
        pool.map(math_verify_judge, cases, chunksize=8)
        return len(cases) / (time.perf_counter() - start)


def per_family(cases: list[dict], verdicts: dict[str, list]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i, case in enumerate(cases):
        family = case.get("family") or case["class"]
        row = out.setdefault(family, {"cases": 0, **{name: 0 for name in verdicts}})
        row["cases"] += 1
        for name, v in verdicts.items():
            row[name] += _agrees(v[i], case["expected"], name == "rlvr")
    return out


def _clear_rlvr() -> None:
    parse_answer.cache_clear()
    _reference_value.cache_clear()


def _clear_math_verify() -> None:
    return None  # Math-Verify keeps no cache between calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--workers", type=int, default=2, help="processes for the throughput run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput runs, each with fresh worker processes; the median is kept")
    parser.add_argument("--show-disagreements", action="store_true")
    args = parser.parse_args()
    cases = load_cases(args.cases)
    rlvr_stats, rlvr_v = score(cases, rlvr_judge, _clear_rlvr, reports_bad_references=True)
    mv_stats, mv_v = score(cases, math_verify_judge, _clear_math_verify)
    rlvr_stats["verifications_per_s"] = round(statistics.median(
        rlvr_throughput(cases, args.workers) for _ in range(args.rounds)), 1)
    mv_stats["verifications_per_s"] = round(statistics.median(
        math_verify_throughput(cases, args.workers) for _ in range(args.rounds)), 1)
    report = {"cases": len(cases), "workers": args.workers, "rlvr": rlvr_stats, "math_verify": mv_stats,
              "per_family": per_family(cases, {"rlvr": rlvr_v, "math_verify": mv_v})}
    if args.show_disagreements:
        report["rlvr_disagreements"] = [
            {**{k: c.get(k) for k in ("family", "class", "gold", "completion", "expected")},
             "rlvr": v}
            for c, v in zip(cases, rlvr_v) if not _agrees(v, c["expected"], True)]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
