"""`rlvr verify INPUT.jsonl --output OUTPUT.jsonl`: verify a file of completions offline.

Thin: parses options and calls `rlvr.verifiers.offline.verify_file`, then prints a JSON summary
on stdout. Exit status 0 when every line was verified (wrong answers, malformed lines and bad
references included; they are in the output), 1 when a verifier or its infrastructure failed on
some line (`status: "error"`), 2 for a bad command line or config. `--timeout-s` limits a case
whose verifier declares no time budget of its own (math); a verifier that does (code: its
sandbox limits) is given that budget, and running past it is an error, not the model's timeout.
"""

from __future__ import annotations

import argparse
import json

from rlvr.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help='JSONL file, one {"verifier", "completion", ...} object a line')
    parser.add_argument("--output", "-o", required=True,
                        help="JSONL file to write (one line per input line)")
    parser.add_argument("--workers", type=int, default=2, help="verifier worker processes (default 2)")
    parser.add_argument("--timeout-s", type=float, default=10.0,
                        help="wall-clock limit per case of a verifier without its own budget "
                             "(default 10)")
    parser.add_argument("--memory-mb", type=int, default=2048,
                        help="address-space cap per worker (default 2048)")
    parser.add_argument("--options", default="{}",
                        help='verifier options as JSON: \'{"math": {"last_number_fallback": true}}\'')
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    from rlvr.verifiers.offline import verify_file

    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--options is not valid JSON: {exc}") from exc
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ConfigError('--options must map verifier names to option objects: {"math": {...}}')
    summary = verify_file(args.input, args.output, workers=args.workers, timeout_s=args.timeout_s,
                          memory_mb=args.memory_mb, options=options, progress=not args.no_progress)
    print(json.dumps(summary.as_dict()))
    return 1 if summary.statuses.get("error") else 0
