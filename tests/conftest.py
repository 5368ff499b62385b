"""Fixtures and rules shared by every test.

Docker: tests that need the engine and the sandbox image take the `docker_ready` fixture, which
skips them, naming the reason, when either is missing. Where the engine is promised (CI sets
RLVR_REQUIRE_DOCKER=1 in `.ci/run`), a missing engine or image is a failure instead, and so is
any other test's skip whose reason says the Docker sandbox is unavailable: the sandbox tests are
never skipped silently where they are meant to run.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

REQUIRE_DOCKER = os.environ.get("RLVR_REQUIRE_DOCKER", "") not in ("", "0")
DOCKER_UNAVAILABLE = "Docker sandbox unavailable"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random-weight Llama with the default model's tokenizer (built offline), or with the
    tokenizer directory RLVR_TEST_TOKENIZER names, on a machine without the default model's package
    (a GPU machine: `benchmarks/vs_trl_gpu.sh pack` writes one)."""
    from rlvr.models import tiny_random_model

    return tiny_random_model(tmp_path_factory.mktemp("tiny") / "model",
                             tokenizer=os.environ.get("RLVR_TEST_TOKENIZER") or None)


@pytest.fixture(scope="session")
def docker_ready() -> None:
    from rlvr.sandbox import engine

    reason = engine.unavailable_reason()
    if reason and REQUIRE_DOCKER:
        pytest.fail(f"RLVR_REQUIRE_DOCKER is set, but the Docker sandbox is unavailable: "
                    f"{reason}", pytrace=False)
    if reason:
        pytest.skip(f"{DOCKER_UNAVAILABLE}: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under RLVR_REQUIRE_DOCKER=1, a test skipped because Docker is unavailable fails."""
    report = (yield).get_result()
    if REQUIRE_DOCKER and report.skipped and DOCKER_UNAVAILABLE in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = (f"RLVR_REQUIRE_DOCKER is set, so the Docker sandbox must be available "
                           f"here; the test was skipped with: {report.longrepr}")


@pytest.fixture()
def engine_proxy(docker_ready, tmp_path):
    """An `EngineProxy` in front of the Docker engine's socket; the sandbox reaches the engine
    through `engine_proxy.url`. Skips where the engine is not on a Unix socket."""
    from engine_proxy import EngineProxy, docker_socket

    target = docker_socket()
    if target is None:
        pytest.skip(f"the engine proxy needs a Unix-socket engine, not {os.environ['DOCKER_HOST']}")
    proxy = EngineProxy(str(tmp_path / "engine.sock"), target)
    yield proxy
    proxy.stop()
