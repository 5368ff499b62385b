"""`rlvr plot RUN_DIR... [--out FILE]`: the training curves of one run, or of several overlaid.

One run writes `RUN_DIR/curves.png` (the file `rlvr train` writes at its end); several runs write
`--out` (default `curves.png` here), one colour per run.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run directories")
    parser.add_argument("--out", metavar="FILE", help="PNG to write (default: RUN_DIR/curves.png for "
                        "one run, curves.png in the current directory for several)")


def run(args: argparse.Namespace) -> int:
    from rlvr.plot import CURVES, plot_runs

    out = Path(args.out) if args.out else (Path(args.runs[0]) / CURVES if len(args.runs) == 1 else Path(CURVES))
    path = plot_runs(args.runs, out)
    print(f"rlvr plot: wrote {path}")
    return 0
