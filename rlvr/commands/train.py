"""`rlvr train [--config FILE] [--resume RUN_DIR] [--section.key=value ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

TAKES_OVERRIDES = True  # unknown --section.key=value arguments arrive as args.overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Train a policy with GRPO. Settings come from the defaults (the embedded "
                          "default run), then --config FILE, then --section.key=value overrides.")
    parser.add_argument("--config", metavar="FILE", help="YAML config file")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint, with its saved config")
    parser.add_argument("--help-config", action="store_true", help="list every config key with its default")
    parser.epilog = "Any other --section.key=value (or --section.key value) overrides a config key."


def run(args: argparse.Namespace) -> int:
    from rlvr.config import build_config, describe, load_yaml

    if args.help_config:
        print("Config keys (defaults shown):")
        print("\n".join(describe()))
        return 0
    base = None
    overrides = list(args.overrides)
    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            from rlvr.errors import CheckpointError

            raise CheckpointError(f"{args.resume} is not a run directory (no config.yaml)")
        base = load_yaml(saved)
        overrides.append(f"--output_dir={args.resume}")
    config = build_config(args.config, overrides, base=base)
    from rlvr.train import train

    train(config, resume=bool(args.resume))
    return 0
