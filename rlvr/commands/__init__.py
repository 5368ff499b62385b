"""One module per `rlvr` command, each with `add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser, epilog: str) -> None:
    """The arguments of every command that trains into a run directory (`train`, `sft`, `rm
    train`): a config file, --resume / --overwrite, --help-config; `epilog` shows overrides."""
    parser.add_argument("--config", metavar="FILE", help="YAML config file")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint, with its saved config")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in an output_dir that already holds a run (deletes its "
                        "metrics, samples, checkpoints and final model)")
    parser.add_argument("--help-config", action="store_true", help="list every config key with its default")
    parser.epilog = epilog
