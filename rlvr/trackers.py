"""Experiment trackers: the run's metrics also sent to Weights & Biases, trackio or MLflow.

`log.report_to` names them, comma-separated (`wandb`, `trackio`, `mlflow`; empty = none). Each is
an optional dependency: a missing one is a `PluginError` with its install hint, raised before the
run starts. Every tracker has one method, `log(step, metrics)`, and `close()`.

- `wandb`: a run in `RUN/wandb/`; with `WANDB_MODE=offline` it needs no network or account
  (`wandb sync RUN/wandb/offline-run-*` uploads it later).
- `trackio`: local-first; runs go to `$TRACKIO_DIR` (default `~/.cache/huggingface/trackio`),
  `trackio show` opens the dashboard.
- `mlflow`: `$MLFLOW_TRACKING_URI` when set, else a store inside the run directory
  (`RUN/mlflow.db` when SQLAlchemy is installed, else the file store `RUN/mlruns`).

The tracker's run id is kept in `RUN/trackers.json`, so `rlvr train --resume` continues the same
tracker run. This module does not decide what to log, and never downloads or uploads by itself.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Protocol

from rlvr.errors import ConfigError, PluginError

STATE = "trackers.json"
INSTALL = {"wandb": "pip install wandb", "trackio": "pip install trackio",
           "mlflow": "pip install mlflow (or mlflow-skinny)"}


class Tracker(Protocol):
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


def names(report_to: str) -> list[str]:
    """The tracker names of a `log.report_to` value, checked (ConfigError names the choices)."""
    out = [n.strip().lower() for n in report_to.split(",") if n.strip() and n.strip().lower() != "none"]
    unknown = [n for n in out if n not in INSTALL]
    if unknown:
        raise ConfigError(f"log.report_to: unknown tracker {unknown[0]!r}; choose from "
                          f"{', '.join(INSTALL)} (comma-separated), or leave it empty")
    return out


def check(report_to: str) -> None:
    """Fail now if a named tracker is not installed (before any set-up of the run)."""
    import importlib

    for name in names(report_to):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise PluginError(f"log.report_to={name} needs the {name} package, which is not "
                              f"installed: {INSTALL[name]}") from exc


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in config.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)[:5000]
    return out


class WandbTracker:
    def __init__(self, run_dir: Path, project: str, name: str, config: Mapping[str, Any], run_id: str | None):
        import wandb

        self.run = wandb.init(project=project, name=name, dir=str(run_dir), config=dict(config),
                              id=run_id, resume="allow" if run_id else None)
        self.id = self.run.id

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class TrackioTracker:
    def __init__(self, run_dir: Path, project: str, name: str, config: Mapping[str, Any], run_id: str | None):
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=project, name=run_id or name, config=dict(config),
                                resume="allow" if run_id else "never", embed=False)
        self.id = run_id or name

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.trackio.log(dict(metrics), step=step)

    def close(self) -> None:
        self.trackio.finish()


class MlflowTracker:
    """MLflow metric names allow letters, digits and `_-. :/`: `eval/pass@1` is `eval/pass_at_1`."""

    def __init__(self, run_dir: Path, project: str, name: str, config: Mapping[str, Any], run_id: str | None):
        import importlib.util

        import mlflow

        if not os.environ.get("MLFLOW_TRACKING_URI"):
            if importlib.util.find_spec("sqlalchemy") is not None:
                mlflow.set_tracking_uri(f"sqlite:///{run_dir.absolute() / 'mlflow.db'}")
            else:
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow-skinny: no SQL store
                mlflow.set_tracking_uri((run_dir.absolute() / "mlruns").as_uri())
        self.mlflow = mlflow
        if run_id is None:
            mlflow.set_experiment(project)
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else name)
        self.id = self.run.info.run_id
        if run_id is None:
            mlflow.log_params(_flat(config))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.mlflow.log_metrics({self.key(k): v for k, v in metrics.items()}, step=step)

    @staticmethod
    def key(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name.replace("@", "_at_"))

    def close(self) -> None:
        self.mlflow.end_run()


KINDS = {"wandb": WandbTracker, "trackio": TrackioTracker, "mlflow": MlflowTracker}


class Trackers:
    """The trackers of `log.report_to` as one: `log` sends finite numbers to each, `close` ends each."""

    def __init__(self, report_to: str, run_dir: Path, config: Mapping[str, Any] | None = None,
                 project: str = "rlvr", name: str | None = None):
        check(report_to)
        self.trackers: list[Any] = []
        state_path = Path(run_dir) / STATE
        try:
            state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        except ValueError:
            state = {}
        for kind in names(report_to):
            tracker = KINDS[kind](Path(run_dir), project, name or Path(run_dir).absolute().name,
                                  config or {}, state.get(kind))
            self.trackers.append(tracker)
            state[kind] = tracker.id
        if self.trackers:
            state_path.write_text(json.dumps(state, indent=2) + "\n")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        values = _numbers(metrics)
        for tracker in self.trackers:
            tracker.log(step, values)

    def close(self) -> None:
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.close()
