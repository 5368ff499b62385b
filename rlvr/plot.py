"""Pictures of training runs: the curves of `metrics.jsonl` in one PNG.

`write_run_plots(run_dir)` writes `RUN/curves.png` (called at the end of `rlvr train`);
`plot_runs(run_dirs, path)` draws several runs over each other, one colour per run, for
comparison (`rlvr plot RUN_DIR... [--out FILE]`). Six panels against the training step: training
reward, held-out pass@1, completion length, KL (to the reference when `grpo.beta > 0`, solid, and
sampler-vs-trainer, dashed), entropy, and step time. A metric a run did not log leaves its panel
empty with a note, never an error.

Plots need matplotlib (`pip install matplotlib`, or the `dev` extra); without it `PluginError`
carries that hint. This module reads `metrics.jsonl` only: it does not train, evaluate or log.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from rlvr.errors import ConfigError, PluginError

PLOT_HINT = "pip install matplotlib"
CURVES = "curves.png"
# (title, [(metric, line style, legend suffix)], y label)
PANELS: tuple[tuple[str, tuple[tuple[str, str, str], ...], str], ...] = (
    ("training reward", (("reward/mean", "-", ""),), "mean reward"),
    ("held-out pass@1", (("eval/pass@1", "-", ""),), "pass@1"),
    ("completion length", (("completion/len_mean", "-", ""),), "tokens (mean)"),
    ("KL", (("kl/ref", "-", " to reference"), ("kl/sampler", "--", " sampler vs trainer")), "KL"),
    ("entropy", (("entropy", "-", ""),), "nats per token"),
    ("step time", (("time/step_s", "-", ""),), "seconds"),
)


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of `RUN/metrics.jsonl` by step (the last row of a step wins; a torn line is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no metrics.jsonl: is it a training run directory?")
    rows: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows[row["step"]] = row
    return [rows[s] for s in sorted(rows)]


def series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, leaving out steps that did not log it (or logged null/NaN)."""
    pts = [(r["step"], float(r[key])) for r in rows
           if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
           and math.isfinite(r[key])]
    return [s for s, _ in pts], [v for _, v in pts]


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    names = [p.resolve().name or str(p) for p in run_dirs]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(run_dirs, names)]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PluginError(f"plots need matplotlib, which is not installed: {PLOT_HINT}") from exc
    return plt


def draw_runs(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]]):
    """A matplotlib figure of the panels for `runs`, a list of (label, metrics rows)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=110)
    for ax, (title, metrics, ylabel) in zip(axes.flat, PANELS):
        drawn = False
        for i, (label, rows) in enumerate(runs):
            for key, style, suffix in metrics:
                xs, ys = series(rows, key)
                if not xs:
                    continue
                marker = "o" if len(xs) <= 30 or key == "eval/pass@1" else None
                name = (label if len(runs) > 1 else "") + (suffix if len(metrics) > 1 else "")
                ax.plot(xs, ys, style, color=f"C{i}", marker=marker, markersize=3.5,
                        label=name.strip() or None)
                drawn = True
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if title == "held-out pass@1":
            ax.set_ylim(-0.02, 1.02)
        ys = [y for line in ax.get_lines() for y in line.get_ydata()]
        if title == "KL" and len(ax.get_lines()) > 1 and min(ys, default=0) > 0:
            ax.set_yscale("log")  # reference KL and sampler mismatch differ by orders of magnitude
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="0.5")
        elif any(line.get_label() and not line.get_label().startswith("_") for line in ax.get_lines()):
            ax.legend(fontsize=7, loc="best")
    names = ", ".join(label for label, _ in runs)
    fig.suptitle(f"rlvr run{'s' if len(runs) > 1 else ''}: {names}", fontsize=11)
    fig.tight_layout()
    return fig


def plot_runs(run_dirs: Sequence[str | os.PathLike], path: str | os.PathLike) -> Path:
    """Draw the curves of one or more runs into the PNG `path` (one colour per run)."""
    plt = _pyplot()
    dirs = [Path(d) for d in run_dirs]
    fig = draw_runs([(label, read_metrics(d)) for label, d in zip(_labels(dirs), dirs)])
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def write_run_plots(run_dir: str | os.PathLike) -> Path | None:
    """`RUN/curves.png` from the run's metrics; None (after saying why) when matplotlib is missing
    or the run logged nothing yet. Never raises for those: a finished run must not fail here."""
    from rlvr.metrics import say

    try:
        return plot_runs([run_dir], Path(run_dir) / CURVES)
    except (PluginError, ConfigError) as exc:
        say(f"no {CURVES}: {exc}")
        return None
