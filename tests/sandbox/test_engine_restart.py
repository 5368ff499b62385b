"""The code verifier across a Docker engine restart: the affected sample raises SandboxError (an
infrastructure error, never a silent 0), samples while the engine is down raise too, and later
samples succeed.

`test_restart_through_a_proxy` runs everywhere Docker does: the sandbox talks to the engine
through a small Unix-socket proxy that this test "restarts" (drops every connection, refuses new
ones for a second, then comes back), which is what a client sees of an engine restart.
`test_real_engine_restart` restarts the real engine with the shell command in the environment
variable RLVR_TEST_ENGINE_RESTART_CMD (opt-in: it disturbs everything else using the engine).
"""

import os
import socket
import subprocess
import threading
import time

import pytest

from rlvr.errors import SandboxError
from rlvr.sandbox.docker import DockerSandbox
from rlvr.types import Completion, Problem
from rlvr.verifiers.code import CodeVerifier

pytestmark = pytest.mark.docker

PROBLEM = Problem("add", "", "code", {"tests": "assert add(1, 2) == 3\n", "test_format": "assert",
                                      "entry_point": "add"})
GOOD = Completion("```python\ndef add(a, b):\n    return a + b\n```")
SLOW = Completion("```python\nimport time\ntime.sleep(3)\ndef add(a, b):\n    return a + b\n```")


class EngineProxy:
    """Forwards a Unix socket to the Docker engine's socket; `restart` drops everything."""

    def __init__(self, path: str, target: str = "/var/run/docker.sock"):
        self.path, self.target = path, target
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self._listen()

    def _listen(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen(64)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self.server.close()
        os.unlink(self.path)
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self._listen()


@pytest.fixture()
def proxy(docker_ready, tmp_path):
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the restart proxy needs a Unix-socket engine, not {host}")
    proxy = EngineProxy(str(tmp_path / "engine.sock"), host[len("unix://"):])
    yield proxy
    proxy.stop()


def test_restart_through_a_proxy(proxy):
    sandbox = DockerSandbox(base_url=f"unix://{proxy.path}", pool_size=1)
    verifier = CodeVerifier(sandbox=sandbox, timeout_s=10)
    assert verifier.verify(PROBLEM, GOOD).passed
    threading.Timer(0.5, proxy.restart, args=(2.0,)).start()
    with pytest.raises(SandboxError, match="lost mid-run"):
        verifier.verify(PROBLEM, SLOW)
    with pytest.raises(SandboxError):  # the engine is still "down"
        verifier.verify(PROBLEM, GOOD)
    time.sleep(2.0)
    assert verifier.verify(PROBLEM, GOOD).passed
    sandbox.close()
    assert DockerSandbox(pool_size=1).leftovers() == []


@pytest.mark.skipif(not os.environ.get("RLVR_TEST_ENGINE_RESTART_CMD"),
                    reason="opt-in: set RLVR_TEST_ENGINE_RESTART_CMD to a command that restarts "
                           "the Docker engine")
def test_real_engine_restart(docker_ready):
    sandbox = DockerSandbox(pool_size=1)
    verifier = CodeVerifier(sandbox=sandbox, timeout_s=60)
    assert verifier.verify(PROBLEM, GOOD).passed
    restart = threading.Timer(0.5, subprocess.run, args=(os.environ["RLVR_TEST_ENGINE_RESTART_CMD"],),
                              kwargs={"shell": True, "check": True})
    restart.start()
    with pytest.raises(SandboxError):  # outlasts the engine's stop timeout: killed with it
        verifier.verify(PROBLEM, Completion(SLOW.text.replace("sleep(3)", "sleep(40)")))
    restart.join()
    deadline, passed = time.monotonic() + 60, False
    while not passed and time.monotonic() < deadline:
        try:
            passed = verifier.verify(PROBLEM, GOOD).passed
        except SandboxError:
            time.sleep(1)  # the engine is still coming up: these samples are masked, not scored
    assert passed
    sandbox.close()
    assert sandbox.leftovers() == []
