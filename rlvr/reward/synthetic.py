"""A learnable synthetic preference set: addition questions, the right sum preferred.

    rlvr rm synth --out data/rm-add --train-prompts 2000 --eval-prompts 200 [--kind sum] [--seed 0]

writes `train.jsonl` and `eval.jsonl` of `{prompt, chosen, rejected}` rows for `rlvr rm train`
(`data.train_file`, `data.eval_file`). The two files share no question. Kinds:

- `sum`: "What is 37 + 45?"; chosen "37 + 45 = 82.", rejected the same sentence with a wrong sum
  (off by 1 to 10 either way: mostly a wrong last digit, sometimes a dropped carry). Both answers
  have the same shape, so only the arithmetic tells them apart.
- `concise`: both answers state the right sum; the rejected one is padded with filler sentences
  (a length preference, the kind a reward model learns too easily; useful to test length guards).

Each question gets `pairs_per_prompt` pairs (different wrong sums or paddings), which the trainer
keeps in one batch. Everything is drawn from `random.Random(seed)`: the same arguments write the
same files. This module writes data; it does not train or score.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any, Literal

from rlvr.errors import ConfigError

KINDS = ("sum", "concise")
QUESTIONS = ("What is {a} + {b}?", "Compute {a} + {b}.", "Add {a} and {b}.", "{a} + {b} = ?")
ANSWERS = ("{a} + {b} = {s}.", "The sum of {a} and {b} is {s}.", "{a} + {b} = {s}", "The answer is {s}.")
FILLER = ("Let me think about this carefully before answering.", "Addition is a basic operation.",
          "I will explain the reasoning in detail.", "This is an interesting question.",
          "Numbers can be added in any order.", "I hope this answer is helpful to you.")


def _questions(count: int, digits: int, rng: random.Random, avoid: set[tuple[int, int]]) -> list[tuple[int, int]]:
    lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
    room = (hi - lo + 1) ** 2 - len(avoid)
    if count > room:
        raise ConfigError(f"only {room} distinct {digits}-digit questions are left; asked for {count}")
    out: list[tuple[int, int]] = []
    seen = set(avoid)
    while len(out) < count:
        q = (rng.randint(lo, hi), rng.randint(lo, hi))
        if q not in seen:
            seen.add(q)
            out.append(q)
    return out


def _wrong_sums(total: int, k: int, rng: random.Random) -> list[int]:
    deltas = [d for d in range(-10, 11) if d and total + d >= 0]
    return [total + d for d in rng.sample(deltas, k)]


def pairs_for(a: int, b: int, kind: str, pairs_per_prompt: int, rng: random.Random) -> list[dict[str, Any]]:
    """The preference rows of one question `a + b`."""
    question = rng.choice(QUESTIONS).format(a=a, b=b)
    answer = rng.choice(ANSWERS)
    right = answer.format(a=a, b=b, s=a + b)
    if kind == "sum":
        return [{"prompt": question, "chosen": right, "rejected": answer.format(a=a, b=b, s=w)}
                for w in _wrong_sums(a + b, pairs_per_prompt, rng)]
    if kind == "concise":
        rows = []
        for _ in range(pairs_per_prompt):
            filler = rng.sample(FILLER, rng.randint(2, 4))
            rows.append({"prompt": question, "chosen": right,
                         "rejected": " ".join(filler[:1] + [right.rstrip(".") + "."] + filler[1:])})
        return rows
    raise ConfigError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")


def make_split(train_prompts: int, eval_prompts: int, *, kind: Literal["sum", "concise"] = "sum",
               digits: int = 2, pairs_per_prompt: int = 2, seed: int = 0
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train rows, held-out rows); the held-out questions are not among the training ones."""
    if digits < 1 or pairs_per_prompt < 1 or train_prompts < 1 or eval_prompts < 0:
        raise ConfigError("digits, pairs_per_prompt and train_prompts must be >= 1, eval_prompts >= 0")
    if kind == "sum" and pairs_per_prompt > 10:
        raise ConfigError("kind 'sum' has at most 10 wrong sums per question (pairs_per_prompt <= 10)")
    rng = random.Random(f"rm-synth/{seed}")
    held = _questions(eval_prompts, digits, rng, set())
    train = _questions(train_prompts, digits, rng, set(held))
    train_rows = [r for a, b in train for r in pairs_for(a, b, kind, pairs_per_prompt, rng)]
    return train_rows, [r for a, b in held for r in pairs_for(a, b, kind, pairs_per_prompt, rng)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="writes DIR/train.jsonl and DIR/eval.jsonl")
    parser.add_argument("--train-prompts", type=int, default=2000, help="training questions (default 2000)")
    parser.add_argument("--eval-prompts", type=int, default=200, help="held-out questions (default 200)")
    parser.add_argument("--pairs-per-prompt", type=int, default=2, help="pairs per question (default 2)")
    parser.add_argument("--kind", choices=KINDS, default="sum", help="sum: right vs wrong sum (default); "
                        "concise: right sum vs the same padded with filler")
    parser.add_argument("--digits", type=int, default=2, help="digits of each addend (default 2)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    train, held = make_split(args.train_prompts, args.eval_prompts, kind=args.kind, digits=args.digits,
                             pairs_per_prompt=args.pairs_per_prompt, seed=args.seed)
    out = Path(args.out)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "eval.jsonl", held)
    print(f"wrote {len(train)} training pairs to {out / 'train.jsonl'} and {len(held)} held-out pairs "
          f"to {out / 'eval.jsonl'}")
    return 0
