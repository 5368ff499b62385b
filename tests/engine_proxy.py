"""A Docker engine that tests can restart or slow down: a proxy in front of its Unix socket.
The `engine_proxy` fixture (tests/conftest.py) gives one per test."""

import os
import socket
import threading
import time


def docker_socket() -> str | None:
    """The path of the engine's Unix socket, or None when DOCKER_HOST is not a Unix socket."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host[len("unix://"):] if host.startswith("unix://") else None


class EngineProxy:
    """Forwards a Unix socket to the Docker engine's socket, as a client sees the engine.

    `restart(down_s)` drops every connection and refuses new ones for `down_s` (what a client
    sees of an engine restart); `stop()`/`start()` do the same in two steps. `delay_s` > 0 holds
    every chunk a client sends for that long before the engine gets it (a slow engine: API calls
    and the containers' attached streams alike).
    """

    def __init__(self, path: str, target: str = "/var/run/docker.sock", delay_s: float = 0.0):
        self.path, self.target, self.delay_s = path, target, delay_s
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.server: socket.socket | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> None:
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
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_engine: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_engine and self.delay_s:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.close()
        self.server = None
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
        self.start()
