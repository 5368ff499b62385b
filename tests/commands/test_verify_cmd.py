"""`rlvr verify` through the real command line, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LINES = [
    {"verifier": "math", "answer": r"\frac{1}{2}", "completion": r"so \boxed{0.5}", "id": "a", "keep": [1]},
    {"verifier": "math", "answer": "3", "completion": r"\boxed{4}"},
    "this line is not JSON {",
    {"verifier": "math", "answer": "3"},
    ["a", "list"],
    {"verifier": "no_such_verifier", "completion": "x"},
    {"verifier": "math", "answer": "5", "completion": r"\boxed{10^{10^{10^{10}}}}"},
    {"verifier": "integer", "answer": "7", "completion": "the answer is 7"},
    {"verifier": "math", "answer": r"(3, \infty)", "completion": r"<answer>x > 3</answer>"},
]


def _run(tmp_path: Path, lines, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "verify", str(src), "--output", str(dst),
                           "--workers", "1", "--timeout-s", "20", *extra],
                          capture_output=True, text=True, timeout=120)
    out = [json.loads(line) for line in dst.read_text().splitlines()] if dst.exists() else []
    return proc, out


def test_verify_writes_one_line_per_input_line_with_verdicts(tmp_path):
    proc, out = _run(tmp_path, LINES)
    assert proc.returncode == 0, proc.stderr
    assert len(out) == len(LINES)
    statuses = [row["status"] for row in out]
    assert statuses == ["correct", "wrong", "malformed", "malformed", "malformed", "unknown_verifier",
                        "unparsable", "correct", "correct"]
    assert out[0]["id"] == "a" and out[0]["keep"] == [1] and out[0]["reward"] == 1.0
    assert out[2]["raw"] == LINES[2] and "invalid JSON" in out[2]["info"]["error"]
    assert out[3]["answer"] == "3" and "completion" in out[3]["info"]["error"]
    assert all(set(row) >= {"reward", "passed", "status", "info"} for row in out)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["lines"] == len(LINES) and summary["passed"] == 3
    assert summary["statuses"]["malformed"] == 3
    assert "verify" in proc.stderr  # the progress bar


def test_verify_options_reach_the_verifier(tmp_path):
    line = {"verifier": "math", "answer": "12", "completion": "so we get 12 apples"}
    _, plain = _run(tmp_path, [line], "--no-progress")
    _, lenient = _run(tmp_path, [line], "--no-progress",
                      "--options", json.dumps({"math": {"last_number_fallback": True}}))
    assert plain[0]["status"] == "no_answer"
    assert lenient[0]["status"] == "correct"


def test_verify_bad_options_is_a_config_error(tmp_path):
    proc, _ = _run(tmp_path, LINES[:1], "--no-progress", "--options", "[1]")
    assert proc.returncode == 2 and "config error" in proc.stderr


class CrashingVerifier:
    """A verifier with a bug: it raises on every call (its failure is infrastructure, not 0)."""

    def verify(self, problem, completion):
        raise RuntimeError("bug in a verifier")


def test_a_crashing_verifier_is_an_error_line_and_the_run_goes_on(tmp_path, monkeypatch):
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    lines = [{"verifier": "test_verify_cmd:CrashingVerifier", "completion": "x", "id": "c"},
             {"verifier": "math", "answer": "2", "completion": r"\boxed{2}"}]
    proc, out = _run(tmp_path, lines, "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert [row["status"] for row in out] == ["error", "correct"]
    assert "bug in a verifier" in out[0]["info"]["message"]


def test_a_bad_reference_is_its_own_status_not_an_error(tmp_path):
    lines = [{"verifier": "integer", "answer": "seven", "completion": "7", "id": "bad"},
             {"verifier": "integer", "answer": "7", "completion": "7"}]
    proc, out = _run(tmp_path, lines, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert [row["status"] for row in out] == ["bad_reference", "correct"]
    assert out[0]["info"]["error"] == "BadReferenceError" and "bad" in out[0]["info"]["message"]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["statuses"] == {"bad_reference": 1, "correct": 1}
    assert summary["engine_outages"] == 0 and summary["outage_s"] == 0.0
