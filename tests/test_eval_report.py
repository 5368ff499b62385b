"""Reports of `rlvr eval`: the Markdown tables, the plots, and the matplotlib install hint."""

from __future__ import annotations

import json
import sys

import pytest

from rlvr.eval import summarise
from rlvr.report import markdown, write_report
from rlvr.types import Problem


def _results(steps=(None, None)):
    probs = [Problem(id=f"p{i}", prompt="", verifier="integer") for i in range(2)]
    models = []
    for j, (label, step) in enumerate(zip(("base", "trained"), steps)):
        recs = {p.id: [{"index": i, "text": f"answer {i}", "finish_reason": "stop",
                        "reward": float(i < j + 1), "passed": i < j + 1, "status": "x",
                        "answer": str(i < j + 1)} for i in range(4)] for p in probs}
        report = summarise(probs, recs, n=4, ks=(1, 2, 4))
        report.update({"infra_errors": 0})
        models.append({"label": label, "model": label, "step": step, "report": report})
    return {"task": "arithmetic", "task_options": {}, "split": "test", "ks": [1, 2, 4],
            "sampling": {"n": 4, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                         "max_new_tokens": 8, "seed": 0}, "models": models}


def test_markdown_compares_models_side_by_side():
    text = markdown(_results(), ["pass_at_k.png"])
    assert "| base | 0.250 ± 0.000 | 0.500 ± 0.000 | 1.000 ± 0.000 |" in text
    assert "| trained | 0.500 ± 0.000 |" in text
    assert "| `p0` | 1/4 | 2/4 |" in text and "![pass_at_k.png](pass_at_k.png)" in text
    assert "maj@2" in text and "**a solved problem**" in text
    assert "- base: sampling 0.0 s, verifying 0.0 s, 0 new tokens; 8 samples untimed" in text


def test_write_report_plots_steps_only_for_two_or_more_steps(tmp_path):
    pytest.importorskip("matplotlib")
    assert write_report(_results(), tmp_path) == []
    assert json.loads((tmp_path / "results.json").read_text())["models"][1]["label"] == "trained"
    assert (tmp_path / "pass_at_k.png").is_file()
    assert not (tmp_path / "pass_at_k_steps.png").exists()
    write_report(_results(steps=(0, 10)), tmp_path)
    assert (tmp_path / "pass_at_k_steps.png").is_file()


def test_without_matplotlib_the_reports_are_written_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    notes = write_report(_results(), tmp_path)
    assert notes and "pip install matplotlib" in notes[0]
    assert (tmp_path / "summary.md").is_file() and not (tmp_path / "pass_at_k.png").exists()
