"""`rlvr train` on the built-in rubric task with an HTTP judge that fails a set share of requests:
judge failures are masked and counted, and the run aborts past `verify.max_infra_error_rate`."""

import json

import pytest
import yaml

from judges.judge_server import JudgeServer
from test_train import rlvr


def config(tmp_path, url):
    cfg = {"task": {"name": "rubric", "options": {"test_size": 4},
                    "verifier": "rlvr.verifiers.rubric:RubricVerifier",
                    "verifier_options": {"judge": {"type": "openai", "base_url": url,
                                                   "max_retries": 0, "timeout_s": 10}}},
           "verify": {"max_infra_error_rate": 0.5, "workers": 1, "timeout_s": 60},
           "rollout": {"prompts_per_step": 2, "group_size": 5, "max_new_tokens": 12},
           "eval": {"every": 0}, "log": {"progress": False}, "checkpoint": {"every": 0}}
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fraction,ok", [(0.3, True), (0.6, False)])
def test_judge_failures_are_masked_then_abort(tiny_model_dir, tmp_path, fraction, ok):
    out = tmp_path / "run"
    with JudgeServer(fail_fraction=fraction) as server:
        proc = rlvr("train", "--config", str(config(tmp_path, server.url)),
                    f"--model.name={tiny_model_dir}", f"--output_dir={out}", "--steps=2")
        requests = len(server.requests)
    assert requests >= 10  # every sample asked the judge once (one judge item, no retries)
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in rows if r.get("step", 0) >= 1 and "verify/infra_errors" in r]
        assert [r["verify/infra_errors"] for r in steps] == [3.0, 3.0]  # 30% of 10, masked
        assert all(0.0 <= r["reward/mean"] <= 1.0 for r in steps)
    else:
        assert proc.returncode != 0
        assert "max_infra_error_rate" in proc.stderr + proc.stdout
