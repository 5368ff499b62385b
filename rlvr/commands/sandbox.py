"""`rlvr sandbox build-image | doctor`: build the offline sandbox image; check the sandbox works.

Thin: parses options and calls `rlvr.sandbox.image.build_image` or `rlvr.sandbox.doctor.run_checks`.
`build-image` exits 0 when the image exists afterwards (built now, or already there: it is then a
no-op unless `--force`). `doctor` prints one line per check and exits 0 only when all pass.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rlvr.sandbox.engine import DEFAULT_IMAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser("build-image", help="build the default sandbox image offline "
                           "(debootstrap + import; needs root and a Debian mirror)")
    build.add_argument("--image", default=DEFAULT_IMAGE, help=f"image name (default {DEFAULT_IMAGE})")
    build.add_argument("--suite", default="bookworm", help="Debian suite (default bookworm)")
    build.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror URL")
    build.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    build.add_argument("--no-progress", action="store_true", help="no progress display")
    build.add_argument("--docker-host", default=None, help="Docker engine URL (default: environment)")
    doctor = sub.add_parser("doctor", help="report engine, image, runtime and enforced limits")
    doctor.add_argument("--image", default=DEFAULT_IMAGE, help=f"image to check (default {DEFAULT_IMAGE})")
    doctor.add_argument("--runtime", default="auto", help="auto | default | a runtime name")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument("--docker-host", default=None, help="Docker engine URL (default: environment)")
    doctor.add_argument("--outage-budget-s", type=float, default=None,
                        help="the sandbox's outage budget to report and use (default: the "
                             "sandbox default, 60)")


class _ProgressLine:
    """Progress on stderr: one self-rewriting line on a terminal, else one line per step."""

    def __init__(self, enabled: bool):
        self.enabled, self.tty, self.start = enabled, sys.stderr.isatty(), time.monotonic()

    def __call__(self, stage: str, detail: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.monotonic() - self.start:5.0f}s] {stage:<11} {detail}"[:100]
        if self.tty and stage not in ("debootstrap", "import", "cleanup"):
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(("\r\033[K" if self.tty else "") + line + "\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    if args.action == "build-image":
        from rlvr.sandbox.image import build_image

        progress = _ProgressLine(not args.no_progress)
        built = build_image(args.image, args.suite, args.mirror, force=args.force,
                            base_url=args.docker_host, progress=progress)
        print(f"{args.image}: {'built' if built else 'already present (use --force to rebuild)'}")
        return 0
    from rlvr.sandbox.doctor import run_checks

    checks = run_checks(args.image, args.runtime, args.docker_host, args.outage_budget_s)
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=1))
    else:
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<48} {c.detail}")
    return 0 if checks and all(c.ok for c in checks) else 1
