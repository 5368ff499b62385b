"""The GRPO training loop: sample -> rollout -> verify -> advantages -> update -> log -> checkpoint.

`train(config)` is one straight function with the phases visible; the math it applies lives in
`rlvr.grpo` as pure functions. How this loop differs from the GRPO paper (DeepSeekMath):
- With `grpo.inner_steps = 1` (the default) pi_old is pi_theta detached: no extra forward pass.
- The KL penalty (k3, per token) needs a frozen reference only when `grpo.beta > 0`; with LoRA the
  reference is the base model with the adapters disabled, never a second copy.
- Completions are scored through the scoring seam (`rlvr.scoring.Scorer`): the verifier pool, a
  learned reward model (`reward.model`), or both, per problem. A learned reward has no notion of
  correct (`passed` None): such samples count in reward means and advantages, not in `pass_rate`
  (`verify/unjudged` counts them); the length-per-reward-bucket guard then buckets by quartiles
  of the step's rewards instead of the fixed [0, 1] buckets.
- Samples whose verification failed for infrastructure reasons are masked out of their group
  (not scored 0), counted in `verify/infra_errors`, and the run aborts past a configured rate.
  Samples of a problem whose reference its verifier cannot read are masked out too, counted in
  `verify/bad_references` (a dataset bug: never the model's 0, never the infrastructure's).
- Sequences whose advantage is exactly 0 are skipped in the backward pass when beta = 0: their
  gradient is exactly zero, and they still count in the loss denominators, so the update is the
  same as with them included, only cheaper.
- Optional DAPO dynamic sampling, overlong filtering / soft penalty, and truncated importance
  sampling against the rollout engine's own log-probs (when rollout and trainer differ). A step
  whose every group lacks signal still logs, checkpoints and evaluates when due, and advances the
  learning-rate schedule (`rlvr.update.skip_update`); its weights do not move.
- Sampling goes through a rollout engine (`rollout.engine`); after each update the loop calls
  `engine.update_weights(policy)` and nothing else: the engine owns its sampling copy.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rlvr import dist, grpo, guards, sharding
from rlvr.checkpoint import (latest_checkpoint, load_model_weights, load_training_state, save_checkpoint,
                             save_final)
from rlvr.components import build_engine, build_scorer, resolve_device, sampling_dtype, task_problems
from rlvr.config import Config, save_config, to_dict
from rlvr.errors import ConfigError, InfraError
from rlvr.eval import evaluate
from rlvr.metrics import RunLog, say
from rlvr.models import load_tokenizer
from rlvr.plot import write_run_plots
from rlvr.rollout.base import RolloutEngine, SamplingParams
from rlvr.scoring import BAD_REFERENCE, INFRA, Outcome, Scorer, outcome
from rlvr.types import Completion, Problem
from rlvr.policy import Actors, build_actors, build_optimizer, build_policy, sharded_run
from rlvr.update import UpdateSettings, collate, skip_update, update_policy


# ------------------------------------------------------------------------- data and batches


class DataCursor:
    """Walks the train split in a seeded random order, epoch after epoch; resumable."""

    def __init__(self, size: int, seed: int, epoch: int = 0, index: int = 0):
        self.size, self.seed, self.epoch, self.index = size, seed, epoch, index
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        return random.Random(f"{self.seed}/{self.epoch}").sample(range(self.size), self.size)

    def take(self, k: int) -> list[int]:
        out = []
        for _ in range(k):
            if self.index >= self.size:
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._permutation()
            out.append(self._order[self.index])
            self.index += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}


@dataclass
class Rollouts:
    """One step's groups, flattened to B = groups x G samples."""

    problems: list[Problem]  # (B,)
    completions: list[Completion]  # (B,)
    rewards: torch.Tensor  # (P, G) as scored by the verifier (before penalties); 0 where not scored
    valid: torch.Tensor  # (P, G) False where not scored (infrastructure failure, bad reference)
    passed: torch.Tensor  # (P, G) False where not judged
    judged: torch.Tensor  # (P, G) False where the scorer has no notion of correct (passed None)
    statuses: list[str]  # (B,)
    frac_zero_std: float  # over every group sampled this step, before dynamic-sampling filtering
    infra_errors: int  # over every sample of the step, kept or not
    bad_references: list[tuple[str, str]]  # (problem id, error) per sample, over the whole step
    sampled: int
    generate_s: float
    verify_s: float
    last_infra_error: str = ""


def rollout_step(cfg: Config, step: int, cursor: DataCursor, train_set: Sequence[Problem],
                 engine: RolloutEngine, scorer: Scorer) -> Rollouts:
    """Sample prompts, generate G completions each, score them; with dynamic sampling, repeat
    until `prompts_per_step` groups have non-zero reward spread (or the round limit is hit)."""
    P, G, r = cfg.rollout.prompts_per_step, cfg.rollout.group_size, cfg.rollout
    params = SamplingParams(n=G, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                            max_new_tokens=r.max_new_tokens)
    kept: list[tuple[Problem, list[Completion], list[Outcome]]] = []
    every: list[tuple[Problem, Outcome]] = []
    zero_std, gen_s, ver_s = 0, 0.0, 0.0
    kept_everywhere = 0  # over every rank: the decision to draw again is the same on all of them
    for rnd in range(cfg.grpo.max_sampling_rounds if cfg.grpo.dynamic_sampling else 1):
        drawn = cursor.take(P - kept_everywhere)  # the same draw on every rank; each takes a block
        lo, hi = dist.block(len(drawn))
        problems = [train_set[i] for i in drawn[lo:hi]]
        t0 = time.perf_counter()
        groups = engine.generate([p.prompt for p in problems],
                                 replace(params, seed=hash_seed(cfg.seed, step, rnd), first_index=lo)) if problems else []
        t1 = time.perf_counter()
        results = scorer.score([p for p in problems for _ in range(G)], [c for g in groups for c in g]) if problems else []
        gen_s, ver_s = gen_s + t1 - t0, ver_s + time.perf_counter() - t1
        outs = [outcome(x) for x in results]
        every += [(p, o) for p, o in zip([p for p in problems for _ in range(G)], outs)]
        flat = grpo.zero_std_groups(*_tensors(outs, G)[:2])  # (P,)
        zero_std += int(flat.sum())
        for i, (problem, group) in enumerate(zip(problems, groups)):
            if not (cfg.grpo.dynamic_sampling and flat[i]):
                kept.append((problem, group, outs[i * G:(i + 1) * G]))
        kept_everywhere = int(dist.all_sum([len(kept)])[0])
        if kept_everywhere >= P:
            break
    outs = [o for _, _, group in kept for o in group]
    rewards, valid, passed, judged = _tensors(outs, G)
    infra = [o.error for _, o in every if o.status == INFRA]
    return Rollouts(
        problems=[p for p, g, _ in kept for _ in g], completions=[c for _, g, _ in kept for c in g],
        rewards=rewards, valid=valid, passed=passed, judged=judged, statuses=[o.status for o in outs],
        frac_zero_std=zero_std / max(len(every) // G, 1), infra_errors=len(infra),
        bad_references=[(p.id, o.error) for p, o in every if o.status == BAD_REFERENCE],
        sampled=len(every), generate_s=gen_s, verify_s=ver_s, last_infra_error=infra[-1] if infra else "")


def merge_rollouts(parts: Sequence[Rollouts]) -> Rollouts:
    """The step's rollouts of every rank as one (rank order: the single-process order)."""
    if len(parts) == 1:
        return parts[0]
    return Rollouts(
        problems=[p for r in parts for p in r.problems], completions=[c for r in parts for c in r.completions],
        rewards=torch.cat([r.rewards for r in parts]), valid=torch.cat([r.valid for r in parts]),
        passed=torch.cat([r.passed for r in parts]), judged=torch.cat([r.judged for r in parts]),
        statuses=[s for r in parts for s in r.statuses],
        frac_zero_std=sum(r.frac_zero_std * r.sampled for r in parts) / max(sum(r.sampled for r in parts), 1),
        infra_errors=sum(r.infra_errors for r in parts), bad_references=[b for r in parts for b in r.bad_references],
        sampled=sum(r.sampled for r in parts), generate_s=max(r.generate_s for r in parts),
        verify_s=max(r.verify_s for r in parts),
        last_infra_error=next((r.last_infra_error for r in reversed(parts) if r.last_infra_error), ""))


def _tensors(outs: Sequence[Outcome], G: int) -> tuple[torch.Tensor, ...]:
    """(rewards, valid, passed, judged), each (len(outs) // G, G); passed is False where not judged."""
    shape = (len(outs) // G, G)
    return (torch.tensor([o.reward for o in outs], dtype=torch.float).reshape(shape),
            torch.tensor([o.scored for o in outs], dtype=torch.bool).reshape(shape),
            torch.tensor([bool(o.passed) for o in outs], dtype=torch.bool).reshape(shape),
            torch.tensor([o.passed is not None for o in outs], dtype=torch.bool).reshape(shape))


def hash_seed(*parts: int) -> int:
    return int.from_bytes(random.Random("/".join(map(str, parts))).randbytes(4), "little")


# ------------------------------------------------------------------------- set-up


def load_problems(cfg: Config) -> tuple[list[Problem], list[Problem]]:
    """Train and test problems of the task, with `task.verifier` applied when set."""
    t = cfg.task
    train_set = task_problems(t.name, t.options, "train", verifier=t.verifier)
    test_set = task_problems(t.name, t.options, "test", verifier=t.verifier, limit=cfg.eval.max_problems)
    if not train_set:
        raise ConfigError(f"task {t.name!r} has no train problems")
    return train_set, test_set


# ------------------------------------------------------------------------- the loop


def train(cfg: Config, resume: bool = False) -> Path:
    """Run GRPO as configured; returns the run directory. `resume` continues its last checkpoint.
    Under torchrun every rank calls this; rank 0 alone writes (see `rlvr.dist`)."""
    started = time.perf_counter()
    world = dist.init(cfg.model.device)
    run_dir, checkpoint = open_run_dir(cfg, resume, world.main)
    random.seed(cfg.seed), np.random.seed(cfg.seed % 2**32), torch.manual_seed(cfg.seed)
    device = resolve_device(dist.device_for(cfg.model.device))
    train_set, test_set = load_problems(cfg)
    with contextlib.ExitStack() as stack:  # workers load while the model does
        scorer = stack.enter_context(build_scorer(train_set + test_set, cfg.task.verifier_options, cfg.verify,
                                                  cfg.reward, device))
        tokenizer = load_tokenizer(cfg.model.name)
        policy, reference = build_policy(cfg, device)
        engine = _engine(cfg, stack, policy, tokenizer, device)
        actors = build_actors(cfg, policy, reference)
        optimizer, scheduler = build_optimizer(cfg, policy)
        log = RunLog(run_dir, tensorboard=cfg.log.tensorboard, report_to=cfg.log.report_to,
                     config=to_dict(cfg), project=cfg.log.project) if world.main else _NoLog()
        stack.callback(log.close)  # tracker runs end on errors too
        cursor, start = restore(checkpoint, cfg, actors, optimizer, scheduler, log, len(train_set))
        if checkpoint is not None:
            engine.update_weights(policy)  # its copy was made before the weights were restored
        settings = UpdateSettings.of(cfg, device)
        progress = _progress(cfg, start)
        if start == 1 and cfg.eval.at_start and cfg.eval.every and test_set:
            log.metrics(0, {**held_out_eval(cfg, 0, engine, test_set, scorer),
                            "time/elapsed_s": time.perf_counter() - started})
        reported: set[str] = set()  # problems whose bad reference was already reported
        history: list[tuple[float, float]] = []  # (reward mean, length mean) per step: the length guard
        for step in range(start, cfg.steps + 1):
            t0 = time.perf_counter()
            # sample + rollout + score (each rank its block of prompts; then every rank sees all)
            ro = merge_rollouts(dist.gather(rollout_step(cfg, step, cursor, train_set, engine, scorer)))
            t_rollout = time.perf_counter() - t0
            check_infra(cfg, step, ro)
            report_bad_references(ro, reported)
            # advantages + update; a step without a group to learn from still counts (skip_update)
            t1 = time.perf_counter()
            if ro.completions:
                batch, adv, loss_rows, shaped = advantages_for(cfg, ro, tokenizer.pad_token_id)
                mine = torch.arange(len(adv))[world.rank::world.size]  # this rank's rows of the update
                stats = update_policy(settings, actors.policy, actors.reference, optimizer, scheduler,
                                      batch.rows(mine) if len(mine) else None, adv[mine], loss_rows[mine])
                t_sync = time.perf_counter()
                engine.update_weights(policy)
                stats["time/sync_weights_s"] = time.perf_counter() - t_sync
            else:
                note(f"step {step}: dynamic sampling found no group with a reward spread; no update")
                shaped, stats = ro.rewards, skip_update(cfg.grpo.inner_steps, optimizer, scheduler)
            t_update = time.perf_counter() - t1
            # log
            metrics = step_metrics(ro, shaped, stats, t_rollout, t_update, time.perf_counter() - t0,
                                   continuous=bool(cfg.reward.model))
            counters = scorer.take_stats()  # e.g. verify/engine_outages, verify/outage_s: summed over ranks
            metrics.update(zip(counters, dist.all_sum(counters.values())))
            if cfg.eval.every and test_set and (step % cfg.eval.every == 0 or step == cfg.steps):
                metrics.update(held_out_eval(cfg, step, engine, test_set, scorer))
            metrics["time/elapsed_s"] = time.perf_counter() - started  # since this process started
            watch_length(step, history, metrics)
            log.metrics(step, metrics)
            if cfg.log.sample_every and step % cfg.log.sample_every == 0:
                log.samples(step, sample_rows(ro, cfg.log.num_samples))
            progress(step, metrics)
            # checkpoint
            sharded = actors.policy if sharded_run(cfg) else None  # then every rank writes its shards
            if (world.main or sharded) and cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < cfg.steps:
                save_checkpoint(run_dir, step, policy, optimizer, scheduler, {"cursor": cursor.state()},
                                keep=cfg.checkpoint.keep, tokenizer=tokenizer, sharded=sharded)
        weights = sharding.full_state_dict(policy) if sharded_run(cfg) else None  # a collective
        if world.main:
            save_final(policy, tokenizer, run_dir / "final", weights)
            write_run_plots(run_dir)
    note(f"done: final model in {run_dir / 'final'}")
    dist.shutdown()
    return run_dir


def open_run_dir(cfg: Config, resume: bool, main: bool) -> tuple[Path, Path | None]:
    """(the run directory, the checkpoint to continue or None). The main rank creates the directory
    and writes the run's config into it."""
    run_dir = Path(cfg.output_dir)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        note(f"no checkpoint in {run_dir}: starting from step 0")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    return run_dir, checkpoint


def restore(checkpoint: Path | None, cfg: Config, actors: Actors, optimizer: Any, scheduler: Any,
            log: Any, num_train: int) -> tuple[DataCursor, int]:
    """(data cursor, first step): from `checkpoint` when resuming, else a fresh start. Metrics and
    samples logged after the checkpoint are dropped, so the files read as one run."""
    if checkpoint is None:
        log.truncate_after(-1)
        return DataCursor(num_train, cfg.seed), 1
    if not sharded_run(cfg):  # sharded weights come from dcp/ with the optimizer state
        load_model_weights(checkpoint, actors.policy.lm)
    state = load_training_state(checkpoint, optimizer, scheduler, root=actors.policy)
    log.truncate_after(state["step"])
    note(f"resuming {cfg.output_dir} after step {state['step']}")
    return DataCursor(num_train, cfg.seed, **state["cursor"]), state["step"] + 1


def _engine(cfg: Config, stack: contextlib.ExitStack, policy: Any, tokenizer: Any,
            device: torch.device) -> RolloutEngine:
    """The rollout engine. A sharded policy cannot sample in place: the engine gets its own full
    copy, made before the policy is sharded."""
    dtype = sampling_dtype(cfg.model.rollout_dtype, cfg.model.dtype, device, cfg.model.lora.enabled,
                           engine=cfg.rollout.engine)
    if sharded_run(cfg) and dtype == "same":
        dtype = cfg.model.dtype
    return stack.enter_context(contextlib.closing(build_engine(
        cfg.rollout.engine, policy, tokenizer, dtype=dtype, options=cfg.rollout.options)))


def note(message: str) -> None:
    """Progress messages: rank 0 speaks for every rank."""
    if dist.is_main():
        say(message)


class _NoLog:
    """The run log of ranks other than 0: rank 0 writes for all, from metrics every rank shares."""

    def truncate_after(self, step: int) -> None: ...
    def metrics(self, step: int, values: dict[str, Any]) -> None: ...
    def samples(self, step: int, rows: list[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


def check_infra(cfg: Config, step: int, ro: Rollouts) -> None:
    if not ro.infra_errors:
        return
    rate = ro.infra_errors / max(ro.sampled, 1)
    note(f"step {step}: {ro.infra_errors} of {ro.sampled} verifications failed (infrastructure); "
        f"masked out of the update. Last: {ro.last_infra_error.splitlines()[0] if ro.last_infra_error else '?'}")
    if rate > cfg.verify.max_infra_error_rate:
        raise InfraError(f"step {step}: {rate:.0%} of verifications failed, above "
                         f"verify.max_infra_error_rate={cfg.verify.max_infra_error_rate}; last error:\n"
                         f"{ro.last_infra_error}")


def report_bad_references(ro: Rollouts, reported: set[str]) -> None:
    """Say once per problem that its reference is unreadable (its samples are masked out)."""
    for problem_id, error in ro.bad_references:
        if problem_id not in reported:
            reported.add(problem_id)
            note(f"problem {problem_id}: bad reference, its samples are masked out and counted in "
                f"verify/bad_references: {error.splitlines()[0]}")


def watch_length(step: int, history: list[tuple[float, float]], metrics: dict[str, float]) -> None:
    """Warn (once per step, logged as guard/length_warning) when reward rises while length explodes."""
    history.append((metrics["reward/mean"], metrics["completion/len_mean"]))
    warning = guards.length_explosion_warning(history)
    metrics["guard/length_warning"] = float(warning is not None)
    if warning:
        note(f"step {step}: {warning}")


def advantages_for(cfg: Config, ro: Rollouts, pad_id: int):
    """(token batch, advantages (B,), rows that count in the loss (B,), shaped rewards (P, G))."""
    batch = collate(ro.completions, pad_id)
    lengths = batch.mask.sum(-1)
    truncated = torch.tensor([c.finish_reason == "length" for c in ro.completions])
    shaped = ro.rewards.clone()
    if cfg.grpo.overlong == "soft":
        shaped += grpo.soft_overlong_penalty(lengths, cfg.rollout.max_new_tokens,
                                             cfg.grpo.overlong_cache_tokens).view_as(shaped)
    if cfg.grpo.length_penalty_coef > 0:
        shaped = guards.length_penalty(shaped, lengths.view_as(shaped), cfg.grpo.length_penalty_target,
                                       cfg.rollout.max_new_tokens, cfg.grpo.length_penalty_coef)
    adv = grpo.group_advantages(shaped, ro.valid, std=cfg.grpo.advantage_std).flatten()
    loss_rows = ro.valid.flatten().clone()
    if cfg.grpo.overlong == "filter":
        loss_rows &= ~truncated
    return batch, adv, loss_rows, shaped


def step_metrics(ro: Rollouts, shaped: torch.Tensor, stats: dict[str, float],
                 t_rollout: float, t_update: float, t_step: float, continuous: bool = False) -> dict[str, float]:
    """The step's metrics. `pass_rate` is over valid samples whose scorer judges correctness
    (NaN when none does); `continuous`: bucket lengths by reward quartiles (a learned reward)."""
    valid = ro.valid.flatten()
    judged = valid & ro.judged.flatten()
    r = ro.rewards.flatten()[valid]
    nan = float("nan")
    lengths = torch.tensor([len(c.completion_ids) for c in ro.completions], dtype=torch.float)
    tokens = float(lengths.sum())
    return {
        "reward/mean": float(r.mean()) if len(r) else nan,
        "reward/std": float(r.std()) if len(r) > 1 else 0.0,
        "reward/shaped_mean": float(shaped.flatten()[valid].mean()) if len(r) else nan,
        "pass_rate": float(ro.passed.flatten()[judged].float().mean()) if judged.any() else nan,
        "verify/unjudged": float((valid & ~ro.judged.flatten()).sum()),  # scored without a notion of correct
        "frac_zero_std_groups": ro.frac_zero_std,
        "verify/infra_errors": float(ro.infra_errors),
        "verify/bad_references": float(len(ro.bad_references)),
        "verify/verifier_errors": float(ro.statuses.count("verifier_error")),  # a verifier bug on model text
        "verify/samples": float(ro.sampled),
        "completion/len_mean": float(lengths.mean()) if len(lengths) else nan,
        "completion/len_max": float(lengths.max()) if len(lengths) else nan,
        "completion/truncated_frac": (sum(c.finish_reason == "length" for c in ro.completions)
                                      / len(ro.completions)) if ro.completions else nan,
        **stats,
        "throughput/tokens_per_s": tokens / max(ro.generate_s, 1e-9),
        "time/generate_s": ro.generate_s, "time/verify_s": ro.verify_s,
        "time/rollout_s": t_rollout, "time/update_s": t_update, "time/step_s": t_step,
        **guards.length_by_reward_bucket(ro.rewards, lengths.view_as(ro.rewards), ro.valid,
                                         buckets="quantile" if continuous else "fixed"),
    }


def held_out_eval(cfg: Config, step: int, engine: RolloutEngine, test_set: Sequence[Problem],
                  scorer: Scorer) -> dict[str, float]:
    """pass@1 and mean reward on the held-out split; under data parallelism each rank evaluates
    its share. pass@1 averages the problems that have one (a problem scored by a reward model
    has none): NaN when no problem has one, and `eval/unjudged_problems` counts those left out."""
    t0 = time.perf_counter()
    r = cfg.rollout
    params = SamplingParams(temperature=cfg.eval.temperature, top_p=r.top_p, top_k=r.top_k,
                            max_new_tokens=r.max_new_tokens, seed=hash_seed(cfg.seed, 7919, step))
    share = dist.shard(test_set)
    report = evaluate(engine, share, scorer, n=cfg.eval.n, params=params, ks=(1,)) if share else None
    parts = [p for p in dist.gather(report) if p is not None]
    rows = [row for p in parts for row in p["problems"]]
    scored = [row["pass@1"] for row in rows if row["pass@1"] is not None]
    unjudged = sum(1 for row in rows if row["n"] and not row["judged"])  # scored by a reward model
    n = sum(row["n"] for row in rows)
    out = {"eval/pass@1": sum(scored) / len(scored) if scored else (float("nan") if unjudged else 0.0),
           "eval/mean_reward": sum(row["mean_reward"] * row["n"] for row in rows if row["n"]) / n if n else 0.0,
           "eval/infra_errors": float(sum(p["infra_errors"] for p in parts)),
           "eval/bad_references": float(sum(p["bad_references"] for p in parts)),
           "eval/dropped_problems": float(len(rows) - len(scored) - unjudged),
           "eval/unjudged_problems": float(unjudged), "time/eval_s": time.perf_counter() - t0}
    note(f"step {step}: held-out pass@1 = {out['eval/pass@1']:.3f}, mean reward = "
         f"{out['eval/mean_reward']:.3f} ({len(test_set)} problems x {cfg.eval.n})")
    return out


def sample_rows(ro: Rollouts, k: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(min(k, len(ro.completions))):
        j = i * max(len(ro.completions) // max(k, 1), 1)
        rows.append({"problem": ro.problems[j].id, "completion": ro.completions[j].text,
                     "reward": float(ro.rewards.flatten()[j]), "status": ro.statuses[j],
                     "finish_reason": ro.completions[j].finish_reason})
    return rows


def _progress(cfg: Config, start: int):
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=start - 1, desc="grpo", unit="step",
               disable=not (cfg.log.progress and dist.is_main()),
               dynamic_ncols=True)

    def update(step: int, m: dict[str, float]) -> None:
        post = {"reward": f"{m['reward/mean']:.3f}", "pass": f"{m['pass_rate']:.2f}",
                "len": f"{m['completion/len_mean']:.0f}", "s/step": f"{m['time/step_s']:.0f}"}
        if "eval/pass@1" in m:
            post["eval"] = f"{m['eval/pass@1']:.3f}"
        bar.set_postfix(post)
        bar.update(1)
        if step == cfg.steps:
            bar.close()

    return update
