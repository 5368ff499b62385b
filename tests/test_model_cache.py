"""The default model's cache when several processes need it first at the same time."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_processes_that_dequantise_at_once_all_get_the_model(tmp_path):
    env = dict(os.environ, RLVR_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    code = "from rlvr.models import materialize_default_model as m; print(m())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]  # before the lock: "Directory not empty" for the losers
    assert len({out.strip().splitlines()[-1] for out, _ in outs}) == 1
    assert sum("dequantising" in out for out, _ in outs) == 1  # the others waited and reused it
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == [".dequantise.lock",
                                                                                 "SmolLM2-135M-Instruct"]
