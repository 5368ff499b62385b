"""`RubricVerifier` (name `rubric`): partial credit from weighted rubric items, some of them asked
of an LLM judge, with judge failures that are never a 0.

One verification, in order:
1. read the rubric (`rlvr.verifiers.rubric_spec`: items, labels and weights, gate, checks);
2. grader-injection pre-check (`rlvr.judges.injection`): a completion that addresses the grader
   is scored by the `on_injection` rule, before any judge sees it:
   - `"zero"` (default): reward 0, `passed` False, status `grader_injection`;
   - `"deterministic"`: the judge is not asked; positive judge items count as unmet and judge
     pitfalls as met (the worst case); deterministic items score as usual;
   - `"ignore"`: scored normally, only flagged in `info["injection"]`;
3. deterministic items (regex, contains, length, math-equal, code tests);
4. the gate: if a gate item came out wrong, reward 0 and status `gate_failed` (no judge call);
5. judge items: answers from the cache, the rest asked concurrently, up to `items_per_call`
   criteria per judge call; any judge failure makes the whole verification raise `JudgeError`
   (an `InfraError`: the trainer masks the sample and counts it);
6. reward = clip(sum(w * met) / sum(positive w), 0, 1); `passed` = gate ok and reward >=
   the threshold (the rubric's `passed_threshold`, else the `passed_threshold` option).
`info` has every item's id, kind, weight, met, and whether a judge, the cache or a check decided.

Throughput: `verify_batch(problems, completions)` does steps 1-4 for every pair, then sends the
judge calls of *all* of them at once through one thread pool (`judge_threads`), bounded again by
the judge's own `max_concurrency`; the same question (same completion, prompt, reference and
criteria) asked by several pairs of one batch is sent once. `verify()` is `verify_batch` of one. In the verifier pool,
`batch_size` (default `judge_threads`) items go to a worker per `verify_batch` call, with
`batch_budget_s` = `judge_budget_s` per wave of `judge_threads` concurrent judge calls (plus each
code-test item's budget). Options:
`judge` (`{type: openai | hf | module:Object, ...}`; none: judge items are a `ConfigError`),
`deterministic_only` (drop judge items from the rubric: a held-out check with no judge),
`label_weights`, `passed_threshold` (0.5), `items_per_call` (8), `judge_threads` (64),
`cache_entries` (100,000), `on_injection`, `show_reference` (give the judge
`reference["answer"]`), `rubric_dir` (base of relative rubric file paths), `regex_timeout_s`,
`judge_budget_s` (the time a verification with judge items may take: `budget_s()`),
`batch_size` (items per `verify_batch` call from the pool; default `judge_threads`), `math`
and `code` (options of the verifiers that run math-equal and code-test items).

This verifier does not generate rubrics, does not calibrate judges, and does not retry a
verification that raised (the judge client retries its own requests).
"""

from __future__ import annotations

import concurrent.futures
import traceback
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from rlvr.errors import (BadReferenceError, ConfigError, InfraError, JudgeError, RlvrError,
                         VerifierError)
from rlvr.judges.base import Judge, JudgeQuestion, make_judge, prompt_text
from rlvr.judges.cache import JudgeCache, cache_key
from rlvr.judges.injection import addresses_grader
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.base import BaseVerifier
from rlvr.verifiers.rubric_spec import (DEFAULT_LABEL_WEIGHTS, TEXT_KINDS, Item, Rubric, rubric_of,
                                        run_text_check, score)

__all__ = ["RubricVerifier"]

INJECTION_RULES = ("zero", "deterministic", "ignore")
MAX_TEXT_CHARS = 200_000  # checks see at most this much of a completion (head and tail)


@dataclass
class _Plan:
    """One (problem, completion) on its way to a Verdict."""

    problem: Problem
    completion: Completion
    rubric: Rubric
    met: dict[str, bool] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    detail: dict[str, str] = field(default_factory=dict)
    injection: str | None = None
    status: str | None = None  # set when decided before the judge (gate_failed, grader_injection)
    error: InfraError | None = None
    judge_calls: int = 0
    pending: list[tuple[Item, str]] = field(default_factory=list)  # judge items not cached: (item, key)


class RubricVerifier(BaseVerifier):
    """Scores a completion against its problem's rubric (see the module docstring)."""

    name = "rubric"

    def __init__(self, judge: Mapping[str, Any] | Judge | None = None, deterministic_only: bool = False,
                 label_weights: Mapping[str, float] | None = None, passed_threshold: float = 0.5,
                 items_per_call: int = 8, judge_threads: int = 64, cache_entries: int = 100_000,
                 on_injection: str = "zero", show_reference: bool = True, rubric_dir: str | None = None,
                 regex_timeout_s: float = 0.25, judge_budget_s: float = 75.0,
                 batch_size: int | None = None,
                 math: Mapping[str, Any] | None = None, code: Mapping[str, Any] | None = None):
        if on_injection not in INJECTION_RULES:
            raise ConfigError(f"rubric verifier: on_injection must be one of {INJECTION_RULES}")
        batch_size = judge_threads if batch_size is None else batch_size
        if not 0 <= passed_threshold <= 1 or items_per_call < 1 or judge_threads < 1 \
                or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("rubric verifier: passed_threshold in [0, 1], items_per_call >= 1, "
                              "judge_threads >= 1, batch_size >= 1")
        weights = {k.lower(): float(v) for k, v in (label_weights or DEFAULT_LABEL_WEIGHTS).items()}
        if set(weights) != set(DEFAULT_LABEL_WEIGHTS) or weights["pitfall"] >= 0 \
                or any(weights[k] <= 0 for k in weights if k != "pitfall"):
            raise ConfigError("rubric verifier: label_weights maps essential, important, optional "
                              "(positive) and pitfall (negative) to numbers")
        self.judge = make_judge(judge) if judge is not None and not deterministic_only else None
        self.deterministic_only = deterministic_only
        self.label_weights, self.passed_threshold = weights, float(passed_threshold)
        self.items_per_call, self.judge_threads = items_per_call, judge_threads
        self.cache = JudgeCache(cache_entries)
        self.on_injection, self.show_reference, self.rubric_dir = on_injection, show_reference, rubric_dir
        self.regex_timeout_s, self.judge_budget_s = regex_timeout_s, judge_budget_s
        self.batch_size = batch_size
        self.math_options, self.code_options = dict(math or {}), dict(code or {})
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._math: Any = None
        self._code: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_executor=None, _math=None, _code=None)
        return state

    # ---- lifecycle --------------------------------------------------------------------------

    def warmup(self) -> None:
        """Import what items need, open the judge (a local judge loads its model) and, when
        `code` options are given, warm the code verifier's sandbox."""
        import rlvr.verifiers.math  # noqa: F401 - sympy and the parser, once per process

        if self.judge is not None:
            self.judge.warmup()
        if self.code_options:
            self._code_verifier().warmup()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self.judge is not None:
            self.judge.close()
        if self._code is not None and callable(getattr(self._code, "close", None)):
            self._code.close()
            self._code = None

    def budget_s(self, problem: Problem) -> float | None:
        """The most time one verification of `problem` takes, when this verifier bounds it:
        `judge_budget_s` when a judge is asked (it must exceed the judge's own `deadline_s`),
        plus the code verifier's budget for each code-test item. None (the pool's limit, and
        running past it is the model's timeout) for rubrics of text and math checks only."""
        try:
            rubric = self._rubric(problem)
        except RlvrError:
            return None
        total, bounded = 0.0, False
        if rubric.judge_items and self.judge is not None:
            total, bounded = total + self.judge_budget_s, True
        for item in rubric.items:
            if item.kind == "code_tests":
                total += float(self._code_verifier().budget_s(self._code_problem(item, problem)))
                bounded = True
        return total if bounded else None

    def batch_budget_s(self, problems: Sequence[Problem]) -> float | None:
        """The most time `verify_batch(problems, ...)` takes: its judge calls run
        `judge_threads` at a time, each wave within `judge_budget_s`; code-test items run one
        after another. None when no problem's budget is bounded (see `budget_s`)."""
        calls, code, bounded = 0, 0.0, False
        for problem in problems:
            budget = self.budget_s(problem)
            if budget is None:
                continue
            bounded = True
            rubric = self._rubric(problem)
            if rubric.judge_items and self.judge is not None:
                calls += -(-len({i.text for i in rubric.judge_items}) // self.items_per_call)
                code += budget - self.judge_budget_s
            else:
                code += budget
        if not bounded:
            return None
        return -(-calls // self.judge_threads) * self.judge_budget_s + code

    # ---- the protocol -----------------------------------------------------------------------

    def verify(self, problem: Problem, completion: Completion) -> Verdict:
        result = self.verify_batch([problem], [completion])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def verify_batch(self, problems: Sequence[Problem], completions: Sequence[Completion],
                     ) -> list[Verdict | InfraError | BadReferenceError]:
        """One result per pair, in order: a `Verdict`, or the error of that pair (`JudgeError`
        and other `InfraError`s, `BadReferenceError` for a malformed rubric). All judge calls of
        the batch are in flight together. A `ConfigError` is raised, not returned."""
        if len(problems) != len(completions):
            raise ValueError("problems and completions differ in length")
        plans: list[_Plan | Verdict | InfraError | BadReferenceError] = [
            _guarded(self._prepare, p, p, c) for p, c in zip(problems, completions)]
        self._ask_judge([p for p in plans if isinstance(p, _Plan)])
        return [_guarded(self._verdict, p.problem, p) if isinstance(p, _Plan) else p for p in plans]

    # ---- steps 1-4 --------------------------------------------------------------------------

    def _rubric(self, problem: Problem) -> Rubric:
        rubric = rubric_of(problem.reference, problem.id, self.rubric_dir, self.label_weights)
        if self.deterministic_only:
            rubric = Rubric(tuple(i for i in rubric.items if i.kind != "judge"), rubric.gate,
                            rubric.passed_threshold)
            if rubric.positive_total <= 0:
                raise ConfigError(f"problem {problem.id}: deterministic_only leaves no positive item")
        elif rubric.judge_items and self.judge is None:
            raise ConfigError(f"problem {problem.id}: the rubric has judge items but the rubric "
                              "verifier has no `judge` option")
        return rubric

    def _prepare(self, problem: Problem, completion: Completion) -> _Plan:
        plan = _Plan(problem, completion, self._rubric(problem))
        text = completion.text
        if len(text) > MAX_TEXT_CHARS:
            text = text[:MAX_TEXT_CHARS // 2] + text[-MAX_TEXT_CHARS // 2:]
        plan.injection = addresses_grader(text)
        if plan.injection is not None and self.on_injection == "zero":
            plan.status = "grader_injection"
            return plan
        for item in plan.rubric.items:
            if item.kind in TEXT_KINDS:
                met, plan.detail[item.id] = run_text_check(item, text, self.regex_timeout_s)
                self._decide(plan, item, met, "check")
            elif item.kind == "math_equal":
                self._decide(plan, item, self._math_equal(item, problem, completion), "check")
            elif item.kind == "code_tests":
                self._decide(plan, item, self._code_tests(item, problem, completion), "check")
        by_id = {i.id: i for i in plan.rubric.items}
        if any(plan.met[g] == by_id[g].pitfall for g in plan.rubric.gate):
            plan.status = "gate_failed"
        elif plan.injection is not None and self.on_injection == "deterministic":
            for item in plan.rubric.judge_items:
                self._decide(plan, item, item.pitfall, "injection_rule")
        return plan

    @staticmethod
    def _decide(plan: _Plan, item: Item, met: bool, how: str) -> None:
        plan.met[item.id], plan.how[item.id] = bool(met), how

    def _math_equal(self, item: Item, problem: Problem, completion: Completion) -> bool:
        from rlvr.verifiers.math import MathVerifier

        if self._math is None:
            self._math = MathVerifier(**self.math_options)
        answer = item.spec["answer"]
        answer = problem.reference.get("answer") if answer is True else answer
        if answer is None:
            raise _bad_reference(problem, f"item {item.id}: math_equal: true needs reference['answer']")
        sub = Problem(problem.id, problem.prompt, "math", {"answer": str(answer)})
        return self._math.verify(sub, completion).passed

    def _code_verifier(self) -> Any:
        if self._code is None:
            from rlvr.verifiers.code import CodeVerifier

            self._code = CodeVerifier(**self.code_options)
        return self._code

    @staticmethod
    def _code_problem(item: Item, problem: Problem) -> Problem:
        ref = item.spec["reference"]
        ref = {k: v for k, v in problem.reference.items() if k != "rubric"} if ref is True else ref
        return Problem(problem.id, problem.prompt, "code", ref)

    def _code_tests(self, item: Item, problem: Problem, completion: Completion) -> bool:
        sub = self._code_problem(item, problem)
        return self._code_verifier().verify(sub, completion).passed  # SandboxError: never a 0

    # ---- step 5: the judge ------------------------------------------------------------------

    def _questions(self, plan: _Plan) -> list[tuple[list[tuple[Item, str]], JudgeQuestion]]:
        """The judge calls one plan still needs (criteria already cached are filled in here)."""
        if plan.status is not None or not plan.rubric.judge_items or \
                all(i.id in plan.met for i in plan.rubric.judge_items):
            return []
        prompt = prompt_text(plan.problem.prompt)
        reference = str(plan.problem.reference.get("answer") or "") if self.show_reference else ""
        todo: dict[str, tuple[Item, str]] = {}  # criterion text -> (first item, cache key)
        for item in plan.rubric.judge_items:
            key = cache_key(self.judge.identity, item.text, prompt, reference, plan.completion.text)
            cached = self.cache.get(key)
            if cached is not None:
                self._decide(plan, item, cached, "cache")
            else:
                plan.pending.append((item, key))
                todo.setdefault(item.text, (item, key))
        asks = list(todo.values())
        calls = []
        for start in range(0, len(asks), self.items_per_call):
            chunk = asks[start:start + self.items_per_call]
            question = JudgeQuestion(prompt, plan.completion.text, tuple(i.text for i, _ in chunk),
                                     reference)
            calls.append((chunk, question))
        return calls

    def _ask_judge(self, plans: list[_Plan]) -> None:
        calls = [(plan, chunk, q) for plan in plans for chunk, q in self._questions(plan)]
        if not calls:
            return
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self.judge_threads, thread_name_prefix="rlvr-judge")
        asked: dict[JudgeQuestion, concurrent.futures.Future] = {}  # the same question once
        for _, _, question in calls:
            if question not in asked:
                asked[question] = self._executor.submit(self.judge.judge, question)
        futures = [asked[q] for _, _, q in calls]
        for (plan, chunk, question), future in zip(calls, futures):
            plan.judge_calls += 1
            try:
                answers = future.result()
            except InfraError as exc:  # JudgeError: this pair is masked, never scored 0
                plan.error = plan.error or exc
                continue
            except RlvrError:  # a configuration error (httpx missing, ...): stops the batch
                raise
            except Exception:  # noqa: BLE001 - a judge bug is infra, never a score
                plan.error = plan.error or VerifierError(
                    f"problem {plan.problem.id}: the judge crashed:\n{traceback.format_exc(limit=6)}")
                continue
            if len(answers) != len(chunk):
                plan.error = plan.error or JudgeError(
                    f"judge {self.judge.identity} gave {len(answers)} answers to {len(chunk)} "
                    f"criteria", judge=self.judge.identity, reason="malformed")
                continue
            for (_, key), answer in zip(chunk, answers):
                self.cache.put(key, answer)
            by_text = dict(zip(question.criteria, answers))
            for item, _ in plan.pending:
                if item.text in by_text:
                    self._decide(plan, item, by_text[item.text], "judge")

    # ---- step 6 -----------------------------------------------------------------------------

    def _verdict(self, plan: _Plan) -> Verdict:
        if plan.error is not None:
            raise plan.error
        rubric = plan.rubric
        items = [{"id": i.id, "kind": i.kind, "weight": i.weight, "met": plan.met.get(i.id),
                  "by": plan.how.get(i.id), **({"detail": plan.detail[i.id]} if i.id in plan.detail else {})}
                 for i in rubric.items]
        info: dict[str, Any] = {"items": items, "injection": plan.injection,
                                "judge_calls": plan.judge_calls}
        if plan.status is not None:
            return Verdict(0.0, False, plan.status, info)
        missing = [i.id for i in rubric.items if i.id not in plan.met]
        if missing:  # a judge answer that never came: an infra error, never a "no"
            raise VerifierError(f"problem {plan.problem.id}: no decision for items {missing}")
        reward, raw, positive = score([(i.weight, plan.met[i.id]) for i in rubric.items])
        threshold = rubric.passed_threshold if rubric.passed_threshold is not None else self.passed_threshold
        passed = reward >= threshold
        info.update(raw=raw, positive_total=positive, threshold=threshold)
        return Verdict(reward, passed, "passed" if passed else "below_threshold", info)


def _guarded(step: Any, problem: Problem, *args: Any) -> Any:
    """`step(*args)`, or the error it raised as a value: one pair's failure never stops a batch.
    Like the verifier pool: hostile text that exhausts memory or recursion is the model's failure
    (reward 0, status `resource_limit`); an untyped exception is a verifier bug (`VerifierError`).
    A `ConfigError` (judge items but no judge) is the run's, not the pair's: it propagates."""
    try:
        return step(*args)
    except (InfraError, BadReferenceError) as exc:
        return exc
    except RlvrError:
        raise
    except (MemoryError, RecursionError) as exc:
        return Verdict(0.0, False, "resource_limit", {"error": type(exc).__name__})
    except Exception:  # noqa: BLE001 - reported as infra with its traceback, never a 0
        return VerifierError(f"problem {problem.id}: rubric verifier crashed:\n"
                             f"{traceback.format_exc(limit=8)}")


def _bad_reference(problem: Problem, message: str) -> BadReferenceError:
    return BadReferenceError(f"problem {problem.id}: rubric: {message}", problem_id=problem.id,
                             verifier="rubric")
