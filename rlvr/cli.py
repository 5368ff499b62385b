"""The `rlvr` command: a thin dispatcher to `rlvr.commands.<name>`.

Each command module has `add_arguments(parser)` and `run(args) -> int` and is imported only when
its command runs, so `rlvr --help` is instant. Errors that rlvr raises on purpose print one line
(`rlvr: error: ...`) and exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rlvr.errors import ConfigError, RlvrError

COMMANDS: dict[str, str] = {
    "train": "train a policy with GRPO on a task",
    "eval": "sample, verify and report pass@k / maj@k on a task",
    "plot": "draw the training curves of one or more runs into a PNG",
    "verify": "verify a JSONL file of completions offline",
    "sandbox": "build the sandbox image, check the sandbox works",
    "sft": "supervised fine-tuning on demonstrations (the warm start before GRPO)",
    "rm": "reward models: train (Bradley-Terry), pairs (AI feedback), synth (synthetic pairs)",
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr", description="Reinforcement learning from verifiable rewards.",
        epilog="Run 'rlvr COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"rlvr {_version()}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND",
                        help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    return parser


def _version() -> str:
    from rlvr import __version__

    return __version__


HEAVY = ("train", "eval", "sft", "rm")  # run as a program: `rlvr.allocator`'s choice and cache bounds


def main(argv: list[str] | None = None) -> int:
    program, argv = argv is None, list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv or ["--help"])  # prints help or a usage error, exits
    name, rest = argv[0], argv[1:]
    if program and name in HEAVY:
        from rlvr import allocator

        allocator.bound_shape_caches(os.environ)
        try:
            allocator.preload()
        except ConfigError as exc:
            print(f"rlvr {name}: config error: {exc}", file=sys.stderr)
            return 2
    module = importlib.import_module(f"rlvr.commands.{name}")
    parser = argparse.ArgumentParser(prog=f"rlvr {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    if getattr(module, "TAKES_OVERRIDES", False):  # --section.key=value pass through unparsed
        args, args.overrides = parser.parse_known_args(rest)
    else:
        args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except ConfigError as exc:
        print(f"rlvr {name}: config error: {exc}", file=sys.stderr)
        return 2
    except RlvrError as exc:
        print(f"rlvr {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rlvr {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
