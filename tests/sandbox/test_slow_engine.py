"""A slow Docker engine is infrastructure, never the model's timeout.

The sandbox talks to the engine through a proxy that holds every chunk sent to the engine (API
calls and the containers' attached streams) for a few seconds. A code verifier declares its own
budget (the sandbox bounds the program's time), so an item that its worker cannot finish within
that budget, or a harness that does not answer within the program's limit plus grace, is an
`InfraError`: masked and counted, never a `timeout` verdict with reward 0.
"""

import pytest

from rlvr.errors import InfraError
from rlvr.sandbox.base import Limits, Program
from rlvr.sandbox.docker import DockerSandbox
from rlvr.types import Completion, Problem, Verdict
from rlvr.verifiers.code import CodeVerifier
from rlvr.verifiers.pool import VerifierPool

pytestmark = pytest.mark.docker

PROBLEM = Problem("add", "", "code", {"tests": "assert add(1, 2) == 3\n", "test_format": "assert",
                                      "entry_point": "add"})
GOOD = Completion("```python\ndef add(a, b):\n    return a + b\n```")




def test_a_harness_that_answers_late_is_a_sandbox_error_not_a_timeout(engine_proxy):
    with DockerSandbox(base_url=engine_proxy.url, pool_size=1, grace_s=0.5) as sandbox:
        quick = Limits(timeout_s=0.5, memory_mb=256, pids=32, disk_mb=16)
        assert sandbox.run(Program("print(1)"), quick).stdout == "1\n"
        engine_proxy.delay_s = 2.0  # the request reaches the harness after the run's limit plus grace
        with pytest.raises(InfraError, match="did not answer within the run's limit plus grace"):
            sandbox.run(Program("print(2)"), quick)
        engine_proxy.delay_s = 0.0


def test_a_slow_engine_costs_infra_errors_and_zero_model_timeouts(engine_proxy):
    verifier = CodeVerifier(sandbox_options={"base_url": engine_proxy.url, "pool_size": 1, "grace_s": 1},
                            timeout_s=1, startup_grace_s=2)
    with VerifierPool({"code": verifier}, workers=2, timeout_s=30) as pool:
        pool.start(wait=True)  # warm containers at full speed
        assert pool.verify([PROBLEM], [GOOD])[0].passed
        engine_proxy.delay_s = 3.0  # now every request to the engine or a container waits 3 s
        results = pool.verify([PROBLEM] * 2, [GOOD] * 2)
        engine_proxy.delay_s = 0.0
    errors = [r for r in results if isinstance(r, InfraError)]
    timeouts = [r for r in results if isinstance(r, Verdict) and r.status == "timeout"]
    print(f"\n{len(errors)} infra errors, {len(timeouts)} model timeouts: "
          f"{sorted({type(e).__name__ + ': ' + str(e)[:70] for e in errors})}")
    assert timeouts == []
    assert len(errors) == 2  # every item met the slow engine; none was charged to the model
