"""Reports of `rlvr eval`: `results.json`, a Markdown summary, and PNG plots.

`results` is one dict: `task`, `split`, `sampling` (n, temperature, ...), `ks`, and `models`, a
list with one entry per evaluated model (`label`, `model`, `step` or None, and the output of
`rlvr.eval.evaluate`). Several models in one report make the before/after comparison: the summary
table has a row per model, the per-problem table a column per model, and `pass_at_k.png` a line
per model. Models with a training step (checkpoints of one run) also get `pass_at_k_steps.png`:
pass@k against the step, one line per k.

Plots need matplotlib (`pip install matplotlib`, or the `dev` extra); without it the plots are
skipped with that hint and the JSON and Markdown are still written. This module does not sample
or verify anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

PLOT_HINT = "pip install matplotlib"
MAX_PROBLEM_ROWS = 100


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _fmt(value: Any, stderr: Any = None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" + (f" ± {stderr:.3f}" if isinstance(stderr, float) else "")
    return str(value)


def _metric_names(ks: Sequence[int], models: Sequence[dict]) -> list[str]:
    names = [f"pass@{k}" for k in ks]
    names += [f"maj@{k}" for k in ks if k > 1 and any(m["report"].get(f"maj@{k}") is not None
                                                     for m in models)]
    return names


def summary_table(results: dict[str, Any]) -> list[str]:
    models, ks = results["models"], results["ks"]
    names = _metric_names(ks, models)
    head = ["model", *names, "mean reward", "truncated", "infra errors", "samples"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        r = m["report"]
        cells = [m["label"]] + [_fmt(r.get(x), r.get(f"{x}_stderr")) for x in names]
        cells += [_fmt(r["mean_reward"]), f"{r['truncated_frac']:.0%}", str(r["infra_errors"]),
                  str(r["num_samples"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def problem_table(results: dict[str, Any]) -> list[str]:
    models = results["models"]
    head = ["problem", *(f"{m['label']} correct/n" for m in models)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [m["report"]["problems"] for m in models]
    for i, first in enumerate(rows[0][:MAX_PROBLEM_ROWS]):
        cells = [f"`{first['id']}`"] + [f"{r[i]['correct']}/{r[i]['n']}" for r in rows]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows[0]) > MAX_PROBLEM_ROWS:
        lines.append(f"\n({len(rows[0]) - MAX_PROBLEM_ROWS} more problems in results.json)")
    return lines


def _example(results: dict[str, Any]) -> list[str]:
    r = results["models"][-1]["report"]["problems"]
    solved = next((p for p in r if p["correct"]), None)
    failed = next((p for p in r if not p["correct"] and p["example"]), None)
    out = []
    for title, p in (("a solved problem", solved), ("an unsolved problem", failed)):
        if p and p["example"]:
            text = p["example"] if len(p["example"]) < 1500 else p["example"][:1500] + " …"
            out += [f"**{title}** (`{p['id']}`, {results['models'][-1]['label']}):", "",
                    "```text", text.replace("```", "ʼʼʼ"), "```", ""]
    return out


def _timing(m: dict[str, Any]) -> str:
    r = m["report"]
    gen_s, timed = r.get("time/generate_s", 0.0), r.get("timed_samples", 0)
    rate = f" ({r.get('new_tokens', 0) / gen_s:.1f} new tokens/s)" if gen_s else ""
    untimed = r["num_samples"] - timed
    return (f"- {m['label']}: sampling {gen_s:.1f} s{rate}, verifying {r.get('time/verify_s', 0.0):.1f} s, "
            f"{r.get('new_tokens', 0)} new tokens" + (f"; {untimed} samples untimed" if untimed else ""))


def markdown(results: dict[str, Any], plots: Sequence[str] = ()) -> str:
    s = results["sampling"]
    mode = "greedy" if s["temperature"] == 0 else (f"temperature {s['temperature']}, top-p {s['top_p']}"
                                                  + (f", top-k {s['top_k']}" if s["top_k"] else ""))
    mode += f", {s['dtype']}" if s.get("dtype") else ""
    first = results["models"][0]["report"]
    lines = [f"# rlvr eval: {results['task']} ({results['split']} split)", "",
             f"{first['num_problems']} problems, n = {s['n']} samples each ({mode}, at most "
             f"{s['max_new_tokens']} new tokens, seed {s['seed']}). pass@k is the unbiased "
             "estimate 1 − C(n−c, k)/C(n, k) averaged over problems (± one standard error across "
             "problems); maj@k the expected accuracy of a majority vote over k samples.", "",
             *summary_table(results), ""]
    lines += [f"![{p}]({p})" for p in plots] + ([""] if plots else [])
    lines += ["## Answers by status", ""]
    for m in results["models"]:
        st = m["report"]["statuses"]
        lines.append(f"- {m['label']}: " + ", ".join(f"{k} {v}" for k, v in st.items()))
    timing = [_timing(m) for m in results["models"]]
    lines += ["", "## Time", "", *timing, "", "## Examples", "", *_example(results),
              "## Per-problem results", "", *problem_table(results), ""]
    return "\n".join(lines)


def plot_pass_at_k(results: dict[str, Any], path: Path) -> None:
    """pass@k (and maj@k, dashed) against k, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = results["ks"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, m in enumerate(results["models"]):
        r, color = m["report"], f"C{i}"
        ys = [r.get(f"pass@{k}") for k in ks]
        errs = [r.get(f"pass@{k}_stderr") or 0.0 for k in ks]
        ax.errorbar(ks, ys, yerr=errs, marker="o", capsize=3, color=color, label=f"{m['label']} pass@k")
        maj = [(k, r.get(f"maj@{k}")) for k in ks if r.get(f"maj@{k}") is not None]
        if len(maj) > 1:
            ax.plot(*zip(*maj), linestyle="--", marker="s", color=color, alpha=0.6,
                    label=f"{m['label']} maj@k")
    if len(ks) > 1 and max(ks) / min(ks) >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("k (samples drawn)")
    ax.set_ylabel("score")
    ax.set_title(f"{results['task']}: pass@k (n = {results['sampling']['n']}, "
                 f"{results['models'][0]['report']['num_problems']} problems)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()  # pass@k first, then maj@k
    order = sorted(range(len(labels)), key=lambda i: (labels[i].endswith("maj@k"), i))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_steps(results: dict[str, Any], path: Path) -> bool:
    """pass@k against the training step for the models that have one; False if fewer than two."""
    stepped = sorted((m for m in results["models"] if m.get("step") is not None), key=lambda m: m["step"])
    if len(stepped) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    steps = [m["step"] for m in stepped]
    for i, k in enumerate(results["ks"]):
        ys = [m["report"].get(f"pass@{k}") for m in stepped]
        errs = [m["report"].get(f"pass@{k}_stderr") or 0.0 for m in stepped]
        ax.errorbar(steps, ys, yerr=errs, marker="o", capsize=3, color=f"C{i}", label=f"pass@{k}")
    ax.set_ylim(-0.02, 1.02)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("training step")
    ax.set_ylabel("pass@k")
    ax.set_title(f"{results['task']}: pass@k across training (n = {results['sampling']['n']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(results: dict[str, Any], out_dir: Path, plot: bool = True) -> list[str]:
    """Write results.json, summary.md and the plots into `out_dir`; returns the notes to print."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes, plots = [], []
    write_json(out_dir / "results.json", results)
    if plot:
        try:
            plot_pass_at_k(results, out_dir / "pass_at_k.png")
            plots.append("pass_at_k.png")
            if plot_steps(results, out_dir / "pass_at_k_steps.png"):
                plots.append("pass_at_k_steps.png")
        except ImportError:
            notes.append(f"plots skipped: matplotlib is not installed ({PLOT_HINT})")
    (out_dir / "summary.md").write_text(markdown(results, plots))
    return notes
