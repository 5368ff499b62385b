"""Fixtures of the sandbox tests. Docker tests skip, naming the reason, only when no engine or no
sandbox image is reachable; CI provides both (it runs `rlvr sandbox build-image` first)."""

import pytest

from rlvr.sandbox import engine


@pytest.fixture(scope="session")
def docker_ready() -> None:
    reason = engine.unavailable_reason()
    if reason:
        pytest.skip(f"Docker sandbox unavailable: {reason}")


@pytest.fixture(scope="module")
def docker_sandbox(docker_ready):
    from rlvr.sandbox.docker import DockerSandbox

    with DockerSandbox(pool_size=1) as sandbox:
        yield sandbox
