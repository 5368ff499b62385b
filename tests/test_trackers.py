"""`log.report_to`: the real W&B (offline), trackio (local) and MLflow (local store) libraries
receive every step's numbers through `RunLog`, and a resumed run continues the same tracker run.
Each library is optional: its test is skipped where it is not installed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlvr.errors import ConfigError
from rlvr.trackers import MlflowTracker, check, names

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from rlvr.metrics import RunLog
    run_dir, report_to, first, last = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    log = RunLog(run_dir, tensorboard=False, report_to=report_to, config={"seed": 7, "grpo": {"beta": 0.0}})
    for step in range(first, last + 1):
        log.metrics(step, {"reward/mean": step / 10, "eval/pass@1": step / 20, "note": "x",
                           "kl/ref": float("nan")})
    log.close()
""")


def _log_steps(run_dir: Path, report_to: str, first: int, last: int, env: dict) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), report_to, str(first), str(last)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _offline_env(tmp_path: Path) -> dict:
    return {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "TRACKIO_DIR": str(tmp_path / "trackio"),
            "MLFLOW_TRACKING_URI": "", "WANDB_DISABLE_GIT": "true"}


def _wandb_history(path: Path) -> dict[int, dict]:
    """History rows of a W&B run file (LevelDB-log framing of protobuf `Record`s)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, buf, rows = path.read_bytes(), 7, b"", {}
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if left < 7 or (length == 0 and kind == 0):
            pos += left
            continue
        buf, pos = buf + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(buf)
            buf = b""
            if rec.WhichOneof("record_type") == "history":
                row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item}
                rows[row["_step"]] = row
    return rows


def test_wandb_offline_run_gets_every_step_and_resumes(tmp_path):
    pytest.importorskip("wandb")
    run = tmp_path / "run"
    run.mkdir()
    _log_steps(run, "wandb", 1, 2, _offline_env(tmp_path))
    run_id = json.loads((run / "trackers.json").read_text())["wandb"]
    files = sorted(run.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 1
    rows = _wandb_history(files[0])
    assert {s: (r["reward/mean"], r["eval/pass@1"]) for s, r in rows.items()} == {1: (0.1, 0.05), 2: (0.2, 0.1)}
    assert not any("note" in r or "kl/ref" in r for r in rows.values())  # text and NaN are not sent
    _log_steps(run, "wandb", 3, 3, _offline_env(tmp_path))  # resumed: the same W&B run id
    assert json.loads((run / "trackers.json").read_text())["wandb"] == run_id
    resumed = {s for f in run.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb") for s in _wandb_history(f)}
    assert 3 in resumed


def test_trackio_local_run_gets_every_step(tmp_path):
    pytest.importorskip("trackio")
    run = tmp_path / "run"
    run.mkdir()
    _log_steps(run, "trackio", 1, 3, _offline_env(tmp_path))
    db = sqlite3.connect(tmp_path / "trackio" / "rlvr.db")
    rows = {step: json.loads(m) for step, m in db.execute("select step, metrics from metrics where run_name = ?",
                                                          ("run",))}
    assert {s: m["eval/pass@1"] for s, m in rows.items()} == {1: 0.05, 2: 0.1, 3: 0.15}
    assert json.loads((run / "trackers.json").read_text()) == {"trackio": "run"}


def test_mlflow_local_store_gets_every_step_with_legal_names(tmp_path):
    pytest.importorskip("mlflow")
    run = tmp_path / "run"
    run.mkdir()
    _log_steps(run, "mlflow", 1, 2, _offline_env(tmp_path))
    _log_steps(run, "mlflow", 3, 3, _offline_env(tmp_path))  # resumed: the same MLflow run
    from mlflow.tracking import MlflowClient

    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    store = f"sqlite:///{run / 'mlflow.db'}" if (run / "mlflow.db").exists() else (run / "mlruns").as_uri()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=store)
    history = client.get_metric_history(run_id, "eval/pass_at_1")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.05), (2, 0.1), (3, 0.15)]
    assert client.get_run(run_id).data.params["grpo.beta"] == "0.0"
    assert MlflowTracker.key("eval/pass@1") == "eval/pass_at_1"


def test_report_to_names_are_checked_and_a_missing_library_names_its_install(tmp_path):
    assert names("") == [] and names("none") == [] and names(" WandB, mlflow ") == ["wandb", "mlflow"]
    with pytest.raises(ConfigError, match="choose from wandb, trackio, mlflow"):
        names("tensorboard2")
    script = ("import sys; sys.modules['wandb'] = None  # as if not installed\n"
              "from rlvr.metrics import RunLog\n"
              f"RunLog(__import__('pathlib').Path({str(tmp_path)!r}), report_to='wandb')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "PluginError" in proc.stderr and "pip install wandb" in proc.stderr
    check("")  # nothing asked: nothing needed
