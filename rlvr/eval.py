"""Evaluation: sample n completions per problem, verify them, report pass@k / maj@k.

`pass_at_k` is the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), in its
numerically stable product form. `evaluate` is the one function both `rlvr eval` and the periodic
held-out evaluation of `rlvr train` call.
"""

from __future__ import annotations

from typing import Any, Sequence

from rlvr.errors import InfraError
from rlvr.rollout.base import RolloutEngine, SamplingParams
from rlvr.types import Problem


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (requires k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def evaluate(engine: RolloutEngine, problems: Sequence[Problem], pool: Any, *, n: int,
             params: SamplingParams, ks: Sequence[int] = (1,)) -> dict[str, Any]:
    """Sample `n` completions per problem, verify them with `pool`, and summarise.

    Returns {"pass@k": ..., "mean_reward": ..., "infra_errors": ..., "problems": [...]}. Samples
    that hit an infrastructure error are left out of their problem's n (and counted).
    """
    groups = engine.generate([p.prompt for p in problems], SamplingParams(
        n=n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
        max_new_tokens=params.max_new_tokens, seed=params.seed))
    flat_p = [p for p, g in zip(problems, groups) for _ in g]
    flat_c = [c for g in groups for c in g]
    results = pool.verify(flat_p, flat_c)
    per_problem, infra, rewards = [], 0, []
    for i, p in enumerate(problems):
        verdicts = results[i * n:(i + 1) * n]
        ok = [v for v in verdicts if not isinstance(v, InfraError)]
        infra += len(verdicts) - len(ok)
        rewards += [v.reward for v in ok]
        per_problem.append({"id": p.id, "n": len(ok), "correct": sum(v.passed for v in ok)})
    report: dict[str, Any] = {"n": n, "infra_errors": infra, "problems": per_problem,
                              "mean_reward": sum(rewards) / max(1, len(rewards))}
    for k in ks:
        scored = [pass_at_k(r["n"], r["correct"], k) for r in per_problem if r["n"] >= k]
        report[f"pass@{k}"] = sum(scored) / max(1, len(scored))
    return report
