"""Fixtures of the sandbox tests (`docker_ready`, which skips, or fails under
RLVR_REQUIRE_DOCKER=1, when no engine or image is reachable, is in `tests/conftest.py`)."""

import pytest


@pytest.fixture(scope="module")
def docker_sandbox(docker_ready):
    from rlvr.sandbox.docker import DockerSandbox

    with DockerSandbox(pool_size=1) as sandbox:
        yield sandbox
