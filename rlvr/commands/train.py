"""`rlvr train [--config FILE] [--resume RUN_DIR | --overwrite] [--section.key=value ...]`.

Before any set-up the inputs are checked: the config, the model (`rlvr.models.check_model`, about
a second), the trackers of `log.report_to` (installed?) and the run directory (a new run never
writes over an old one without --overwrite).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rlvr.commands import add_run_arguments

TAKES_OVERRIDES = True  # unknown --section.key=value arguments arrive as args.overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Train a policy with GRPO. Settings come from the defaults (the embedded "
                          "default run), then --config FILE, then --section.key=value overrides.")
    add_run_arguments(parser, "Any other --section.key=value (or --section.key value) overrides a config key.")


def run(args: argparse.Namespace) -> int:
    from rlvr.config import build_config, describe, load_yaml
    from rlvr.errors import CheckpointError, ConfigError
    from rlvr.models import check_model
    from rlvr.trackers import check as check_trackers

    if args.help_config:
        print("Config keys (defaults shown):")
        print("\n".join(describe()))
        return 0
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues a run and --overwrite deletes it: choose one")
    base = None
    overrides = list(args.overrides)
    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise CheckpointError(f"{args.resume} is not a run directory (no config.yaml)")
        base = load_yaml(saved)
        overrides.append(f"--output_dir={args.resume}")
    config = build_config(args.config, overrides, base=base)
    check_model(config.model.name)
    check_trackers(config.log.report_to)
    from rlvr.checkpoint import prepare_run_dir  # imports torch: after the one-second checks

    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun rank 0 alone prepares (and writes)
        prepare_run_dir(config.output_dir, resume=bool(args.resume), overwrite=args.overwrite)
    from rlvr.train import train

    train(config, resume=bool(args.resume))
    return 0
