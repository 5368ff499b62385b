"""Worked demonstrations for the arithmetic task: column addition with the carries written out.

`demonstrations(...)` returns rows `{id, prompt, response}` that `rlvr sft` reads: the prompt is
exactly the task's prompt (the same chat messages the trainer samples from), the response adds the
two numbers column by column, ones first, writes each column's digit and carry, and ends with the
sum in `\\boxed{}`:

    Ones: 7 + 5 = 12, write 2, carry 1.
    Tens: 4 + 8 + 1 = 13, write 3, carry 1.
    Hundreds: the carry 1, write 1.
    So 47 + 85 = 132.
    \\boxed{132}

The problems are drawn (seeded) from the task's *train* split, built with the task options given,
and checked against its test split: a demonstration never shows a held-out problem. Build them
with the options of the evaluation (`level`, `test_size`, `seed` of the task), or a larger
`test_size`, so the held-out problems stay unseen.

    python -m rlvr.tasks.demos --level 2 -n 400 --test-size 50 --out demos/add2.jsonl

This module writes demonstrations only for the built-in arithmetic task; it does not train.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

from rlvr.errors import ConfigError
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.types import Problem

PLACES = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands", "millions",
          "ten-millions", "hundred-millions", "billions")
_ID = re.compile(r"^add\d+-(\d+)\+(\d+)$")


def worked_addition(a: int, b: int) -> str:
    """Column addition of two non-negative integers, one line per column, ending in `\\boxed{}`."""
    if a < 0 or b < 0:
        raise ValueError(f"worked_addition adds non-negative integers, not {a} and {b}")
    xs, ys = str(a)[::-1], str(b)[::-1]
    lines, carry = [], 0
    for i in range(max(len(xs), len(ys))):
        x, y = int(xs[i]) if i < len(xs) else 0, int(ys[i]) if i < len(ys) else 0
        total = x + y + carry
        terms = f"{x} + {y}" + (f" + {carry}" if carry else "")
        tail = f", carry {total // 10}." if total >= 10 else "."
        lines.append(f"{PLACES[i].capitalize()}: {terms} = {total}, write {total % 10}{tail}")
        carry = total // 10
    if carry:
        lines.append(f"{PLACES[max(len(xs), len(ys))].capitalize()}: the carry {carry}, write {carry}.")
    lines.append(f"So {a} + {b} = {a + b}.")
    lines.append(f"\\boxed{{{a + b}}}")
    return "\n".join(lines)


def operands(problem: Problem) -> tuple[int, int]:
    """The two numbers of an arithmetic problem, read from its id (`add<level>-<a>+<b>`)."""
    m = _ID.match(problem.id)
    if not m:
        raise ConfigError(f"problem {problem.id!r} is not an arithmetic problem (id add<L>-<a>+<b>)")
    return int(m.group(1)), int(m.group(2))


def demonstrations(level: int | list[int] = 2, n: int = 400, seed: int = 0, test_size: int = 30,
                   task_seed: int = 0, system_prompt: str | None = None,
                   train_size: int = 100_000) -> list[dict[str, Any]]:
    """`n` worked demonstrations of distinct train problems of `arithmetic` (level, test_size,
    task_seed, system_prompt, train_size as the task's options), chosen with `seed`."""
    task = ArithmeticTask(level=level, test_size=test_size, train_size=train_size, seed=task_seed,
                          system_prompt=system_prompt)
    train = task.problems("train")
    held_out = {p.id for p in task.problems("test")}
    if not 1 <= n <= len(train):
        raise ConfigError(f"demos: n must be in 1..{len(train)} (the train split of level {level} "
                          f"with test_size {test_size}), not {n}")
    chosen = random.Random(f"demos-{seed}").sample(list(train), n)
    if held_out & {p.id for p in chosen}:  # the task's splits are disjoint; never trust it blindly
        raise ConfigError("demos: a chosen problem is in the task's test split")
    return [{"id": p.id, "prompt": [dict(m) for m in p.prompt], "response": worked_addition(*operands(p))}
            for p in chosen]


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlvr.tasks.demos",
                                     description="Write worked demonstrations of the arithmetic task (JSONL).")
    parser.add_argument("--level", type=int, action="append", help="digits per operand (repeatable; default 2)")
    parser.add_argument("-n", type=int, default=400, help="demonstrations to write")
    parser.add_argument("--seed", type=int, default=0, help="which train problems are chosen")
    parser.add_argument("--test-size", type=int, default=30, help="the task's test_size (held out: never shown)")
    parser.add_argument("--task-seed", type=int, default=0, help="the task's seed option")
    parser.add_argument("--out", required=True, help="output JSONL file")
    args = parser.parse_args(argv)
    levels = args.level or [2]
    try:
        rows = demonstrations(levels[0] if len(levels) == 1 else levels, args.n, args.seed,
                              args.test_size, args.task_seed)
    except ConfigError as exc:
        print(f"rlvr demos: error: {exc}", file=sys.stderr)
        return 2
    print(f"rlvr demos: wrote {len(rows)} demonstrations to {write_jsonl(rows, args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
