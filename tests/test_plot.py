"""Run plots: the panels drawn from `metrics.jsonl`, several runs overlaid, `rlvr plot`, and a
missing matplotlib as an install hint."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.errors import ConfigError
from rlvr.plot import CURVES, draw_runs, read_metrics, series, write_run_plots


def _run(path: Path, steps: int = 8, beta: float = 0.0, seed: int = 0) -> Path:
    """A metrics.jsonl as `rlvr train` writes it: step 0 holds the base model's eval only."""
    path.mkdir(parents=True)
    rows = [{"step": 0, "eval/pass@1": 0.2, "time/elapsed_s": 5.0}]
    for s in range(1, steps + 1):
        row = {"step": s, "reward/mean": 0.2 + 0.08 * s + 0.01 * seed, "completion/len_mean": 40 - s,
               "kl/sampler": 1e-4 * s, "entropy": 1.5 - 0.1 * s, "time/step_s": 60.0 + s,
               "kl/ref": 0.01 * s if beta else None}
        if s % 4 == 0:
            row["eval/pass@1"] = 0.2 + 0.1 * s
        rows.append(row)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (path / "metrics.jsonl").write_text(text + '{"step": 9, "rew')  # a line torn by a crash
    return path


def test_series_skip_steps_without_the_metric_and_null_values(tmp_path):
    rows = read_metrics(_run(tmp_path / "r"))
    assert [r["step"] for r in rows] == list(range(9))
    assert series(rows, "eval/pass@1") == ([0, 4, 8], [0.2, 0.2 + 0.4, 0.2 + 0.8])
    assert series(rows, "kl/ref") == ([], [])
    assert series(rows, "reward/mean")[0] == list(range(1, 9))


def test_one_run_has_the_six_panels_with_its_curves(tmp_path):
    rows = read_metrics(_run(tmp_path / "r"))
    fig = draw_runs([("r", rows)])
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert list(axes) == ["training reward", "held-out pass@1", "completion length", "KL", "entropy",
                          "step time"]
    (line,) = axes["held-out pass@1"].get_lines()
    assert list(line.get_xdata()) == [0, 4, 8]
    kl = axes["KL"].get_lines()
    assert len(kl) == 1 and kl[0].get_linestyle() == "--"  # no beta: only the sampler KL
    assert all(len(ax.get_lines()) == 1 for t, ax in axes.items() if t != "KL")
    assert math.isclose(axes["step time"].get_lines()[0].get_ydata()[-1], 68.0)


def test_several_runs_are_overlaid_one_colour_each(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", beta=0.04, seed=1)
    fig = draw_runs([("a", read_metrics(a)), ("b", read_metrics(b))])
    reward = next(ax for ax in fig.axes if ax.get_title() == "training reward")
    lines = reward.get_lines()
    assert [ln.get_label() for ln in lines] == ["a", "b"] and lines[0].get_color() != lines[1].get_color()
    kl = next(ax for ax in fig.axes if ax.get_title() == "KL")
    assert sorted(ln.get_label() for ln in kl.get_lines()) == [
        "a sampler vs trainer", "b sampler vs trainer", "b to reference"]


def test_rlvr_plot_writes_pngs(tmp_path, capsys):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", steps=4)
    assert main(["plot", str(a)]) == 0
    assert (a / CURVES).stat().st_size > 30_000 and str(a / CURVES) in capsys.readouterr().out
    both = tmp_path / "both.png"
    assert main(["plot", str(a), str(b), "--out", str(both)]) == 0
    assert both.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and both.stat().st_size > 30_000
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_write_run_plots_never_fails_a_finished_run(tmp_path, capsys):
    assert write_run_plots(tmp_path) is None  # nothing logged: says so, does not raise
    assert "no metrics.jsonl" in capsys.readouterr().err
    assert write_run_plots(_run(tmp_path / "r")) == tmp_path / "r" / CURVES


def test_without_matplotlib_the_error_names_the_install(tmp_path):
    script = ("import sys; sys.modules['matplotlib'] = None\n"
              "from rlvr.cli import main\n"
              f"sys.exit(main(['plot', {str(_run(tmp_path / 'r'))!r}]))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "pip install matplotlib" in proc.stderr, proc.stderr
    with pytest.raises(ConfigError):
        read_metrics(tmp_path)
