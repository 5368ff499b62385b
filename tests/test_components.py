"""The set-up shared by rlvr train and rlvr eval: per-verifier options, problems, devices."""

import pytest
import torch

from rlvr.components import build_pool, resolve_device, task_problems
from rlvr.config import VerifyConfig
from rlvr.errors import ConfigError


def test_each_verifier_gets_its_own_options_else_the_tasks():
    problems = task_problems("arithmetic", {}, "test", limit=2)
    both = problems + [type(problems[0])(id="c1", prompt="x", verifier="countdown",
                                         reference={"numbers": [1, 2], "target": 3})]
    pool = build_pool(both, {"mode": "lenient"},
                      VerifyConfig(workers=0, options={"integer": {"mode": "strict", "format_weight": 0.5}}))
    assert pool.verifiers["integer"].mode == "strict" and pool.verifiers["integer"].format_weight == 0.5
    assert pool.verifiers["countdown"].lenient  # no entry of its own: the task's options


def test_problems_of_a_split_with_a_verifier_override_and_a_limit():
    problems = task_problems("arithmetic", {"level": 1}, "test", verifier="math", limit=3)
    assert len(problems) == 3 and {p.verifier for p in problems} == {"math"}


def test_cuda_asked_for_without_cuda_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:1")
