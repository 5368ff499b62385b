"""Where a run's numbers go: `metrics.jsonl`, `samples.jsonl`, TensorBoard, trackers, a progress bar.

One JSON line per step in `metrics.jsonl`, flushed as it is written, so a crash loses nothing
already logged. On resume, lines of steps after the checkpoint are dropped first, so the file
reads as one uninterrupted run. TensorBoard is used when it is installed and enabled; the
trackers of `log.report_to` (W&B, trackio, MLflow: `rlvr.trackers`) get every step's numbers.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = True, report_to: str = "",
                 config: Mapping[str, Any] | None = None, project: str = "rlvr"):
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        self.samples_path = run_dir / "samples.jsonl"
        self._trackers = None
        if report_to:
            from rlvr.trackers import Trackers

            self._trackers = Trackers(report_to, run_dir, config, project=project)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                pass

    def truncate_after(self, step: int) -> None:
        """Drop metric and sample lines of steps > `step` (written after the last checkpoint)."""
        for path in (self.metrics_path, self.samples_path):
            if not path.is_file():
                continue
            kept = []
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
            path.write_text("".join(k + "\n" for k in kept))

    def metrics(self, step: int, values: Mapping[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in values.items()}}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._trackers is not None:
            self._trackers.log(step, values)

    def samples(self, step: int, rows: list[Mapping[str, Any]]) -> None:
        with open(self.samples_path, "a") as f:
            for row in rows:
                f.write(json.dumps({"step": step, **row}) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._trackers is not None:
            self._trackers.close()


def say(message: str) -> None:
    print(f"rlvr: {message}", file=sys.stderr, flush=True)
