"""`rlvr rm SUBCOMMAND ...`: the reward model commands, each a module of `rlvr.reward`.

    rlvr rm train --config rm.yaml [--resume RUN_DIR | --overwrite] [--section.key=value ...]
    rlvr rm pairs ...        preference pairs from written principles (AI feedback)
    rlvr rm synth ...        a learnable synthetic preference set (addition sums)

Each subcommand module has `add_arguments(parser)` and `run(args) -> int`, like the top-level
commands, and is imported only when it runs. This module only dispatches.
"""

from __future__ import annotations

import argparse
import importlib

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("rlvr.reward.train", "train a Bradley-Terry reward model on preference pairs"),
    "pairs": ("rlvr.reward.pairs", "write preference pairs from prompts and a principles file"),
    "synth": ("rlvr.reward.synthetic", "write a learnable synthetic preference set"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=list(SUBCOMMANDS), metavar="SUBCOMMAND",
                        help="; ".join(f"{k}: {v[1]}" for k, v in SUBCOMMANDS.items()))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the subcommand's arguments (--help lists them)")


def run(args: argparse.Namespace) -> int:
    module_name, description = SUBCOMMANDS[args.subcommand]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"rlvr rm {args.subcommand}", description=description)
    module.add_arguments(parser)
    rest = list(args.args)
    if getattr(module, "TAKES_OVERRIDES", False):  # --section.key=value pass through unparsed
        sub, sub.overrides = parser.parse_known_args(rest)
    else:
        sub = parser.parse_args(rest)
    return int(module.run(sub) or 0)
