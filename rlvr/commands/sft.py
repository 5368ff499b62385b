"""`rlvr sft [--config FILE] [--resume RUN_DIR | --overwrite] [--section.key=value ...]`.

Supervised fine-tuning on demonstrations (see `rlvr.sft`). As with `rlvr train`, the inputs are
checked before any set-up: the config, the train/eval files exist, the model (`check_model`,
about a second), the trackers, and the run directory (never written over without --overwrite).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlvr.commands import add_run_arguments

TAKES_OVERRIDES = True  # unknown --section.key=value arguments arrive as args.overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Supervised fine-tuning on demonstrations ({prompt, response} or chat "
                          "messages, JSONL or Parquet); the loss is on response tokens only.")
    add_run_arguments(parser, ("Any other --section.key=value overrides a config key, e.g. "
                               "--data.train_file=demos.jsonl --model.lora.enabled=true"))


def run(args: argparse.Namespace) -> int:
    from rlvr.errors import DataError
    from rlvr.models import check_model
    from rlvr.sft import build_sft_config, describe_sft
    from rlvr.supervised import config_layers
    from rlvr.trackers import check as check_trackers

    if args.help_config:
        print("Config keys (defaults shown):")
        print("\n".join(describe_sft()))
        return 0
    base, overrides = config_layers(args.resume, args.overwrite, args.overrides)
    config = build_sft_config(args.config, overrides, base=base)
    for key in ("train_file", "eval_file"):
        path = getattr(config.data, key)
        if path and not Path(path).expanduser().is_file():
            raise DataError(f"data.{key}: {path} does not exist")
    check_model(config.model.name)
    check_trackers(config.log.report_to)
    from rlvr.checkpoint import prepare_run_dir
    from rlvr.sft import sft

    prepare_run_dir(config.output_dir, resume=bool(args.resume), overwrite=args.overwrite, command="sft")
    sft(config, resume=bool(args.resume))
    return 0
