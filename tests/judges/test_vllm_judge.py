"""OpenAIJudge against a real `vllm serve` of the embedded model over HTTP (where vLLM is
installed; skipped otherwise). The 135M model may not keep to the reply format: then the
answer is a `JudgeError` about the reply, never a transport failure and never a silent "no"."""

import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("vllm")
httpx = pytest.importorskip("httpx")

from rlvr.errors import JudgeError  # noqa: E402
from rlvr.judges.base import JudgeQuestion  # noqa: E402
from rlvr.judges.openai import OpenAIJudge  # noqa: E402
from rlvr.models import materialize_default_model  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_judge_against_vllm_serve(tmp_path):
    port = free_port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1")
    log = open(tmp_path / "vllm.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                             "--model", str(materialize_default_model()), "--served-model-name",
                             "smollm2", "--host", "127.0.0.1", "--port", str(port),
                             "--max-model-len", "4096"], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "vllm.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(2)
        judge = OpenAIJudge(base_url=base, model="smollm2", max_tokens=32, timeout_s=60)
        q = JudgeQuestion("What is the capital of France?", "Paris.", ("Names Paris.", "Names Rome."))
        try:
            answers = judge.judge(q)
            assert len(answers) == 2
        except JudgeError as exc:
            assert exc.reason in ("malformed", "refusal", "empty", "truncated"), exc
        assert judge.stats["requests"] == 1 and not any(k.startswith("retry_") for k in judge.stats)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
