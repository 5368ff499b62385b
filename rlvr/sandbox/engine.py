"""The Docker engine as rlvr uses it: connecting, the container policy, labels, stale cleanup.

Every container rlvr starts is created by `create_container` with the policy of the sandbox:

- `--network none`, read-only root filesystem, a size-capped `tmpfs` work dir (`nosuid,nodev,
  noexec`), user 65534 (nobody), every capability dropped, `no-new-privileges`;
- memory limit with swap off (`memswap == memory`), a pids limit, a CPU quota, private IPC;
- a scrubbed environment, no log driver (nothing of the program's output is kept by the engine);
- `AutoRemove`, and stdin that closes when rlvr's connection closes (`StdinOnce`), so the harness
  inside exits and the engine deletes the container even if the rlvr process is killed;
- labels `rlvr.sandbox=1` and `rlvr.owner=<host>:<pid>`, so `remove_stale` can delete what a
  dead rlvr process left behind;
- the gVisor runtime (`runsc`) when the engine has it and the config does not say otherwise.

This module does not run programs (see `rlvr.sandbox.docker`) and does not build images
(see `rlvr.sandbox.image`).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Mapping

from rlvr.errors import ConfigError, SandboxError

LABEL = "rlvr.sandbox"
OWNER_LABEL = "rlvr.owner"
INSTANCE_LABEL = "rlvr.sandbox.instance"  # one value per DockerSandbox object
WORK_DIR = "/sandbox"
USER = "65534:65534"
DEFAULT_IMAGE = "rlvr-sandbox:bookworm"

ENGINE_FIX = ("start the Docker engine (for example 'sudo systemctl start docker', or run "
              "'dockerd' as root; on Debian/Ubuntu install it with 'apt-get install docker.io'), "
              "or, only for trusted code, set the sandbox backend to 'subprocess', which is NOT "
              "a security boundary")


def connect(base_url: str | None = None, timeout_s: float = 60.0, version: str | None = None):
    """A low-level Docker API client, checked with a ping; `SandboxError` with the fix if not.
    `version` (an API version this engine spoke before) saves the round trip that asks for it."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise SandboxError("the Docker SDK for Python is missing: pip install 'docker>=7'") from exc
    try:
        if base_url:
            api = docker.APIClient(base_url=base_url, timeout=timeout_s, version=version or "auto")
        else:
            api = docker.from_env(timeout=timeout_s, version=version or "auto").api
        api.ping()
    except (DockerException, OSError) as exc:
        where = base_url or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise SandboxError(f"no Docker engine reachable at {where} ({exc}); {ENGINE_FIX}") from exc
    return api


def unavailable_reason(image: str = DEFAULT_IMAGE, base_url: str | None = None) -> str | None:
    """Why Docker sandboxes cannot run here (no engine, no image), or None when they can."""
    try:
        api = connect(base_url, timeout_s=10)
        check_image(api, image)
    except SandboxError as exc:
        return str(exc)
    return None


def engine_errors() -> tuple[type[BaseException], ...]:
    """The exception types a call to the engine raises when the engine or connection fails."""
    import requests
    from docker.errors import DockerException

    return (DockerException, requests.exceptions.RequestException, OSError)


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pick_runtime(api, runtime: str) -> str | None:
    """'auto' -> 'runsc' when installed, else the engine default (None); a name must exist."""
    runtimes = set((api.info().get("Runtimes") or {}).keys())
    if runtime == "auto":
        return "runsc" if "runsc" in runtimes else None
    if runtime in ("", "default"):
        return None
    if runtime not in runtimes:
        raise ConfigError(f"sandbox runtime {runtime!r} is not installed in the Docker engine "
                          f"(it has: {', '.join(sorted(runtimes))}); use 'auto' or 'default'")
    return runtime


def check_image(api, image: str) -> None:
    from docker.errors import ImageNotFound

    try:
        api.inspect_image(image)
    except ImageNotFound:
        hint = ("run 'rlvr sandbox build-image' (offline, about two minutes)"
                if image == DEFAULT_IMAGE else f"build or load {image!r} into this engine")
        raise SandboxError(f"sandbox image {image!r} is not in the Docker engine: {hint}") from None


def host_config(api, memory_mb: int, pids: int, cpus: float, disk_mb: int,
                runtime: str | None) -> dict[str, Any]:
    return api.create_host_config(
        network_mode="none", read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], ipc_mode="private",
        tmpfs={WORK_DIR: f"rw,nosuid,nodev,noexec,size={disk_mb}m,uid=65534,gid=65534,mode=0700"},
        shm_size=1 << 20, mem_limit=f"{memory_mb}m", memswap_limit=f"{memory_mb}m",
        pids_limit=pids, nano_cpus=int(cpus * 1e9), auto_remove=True,
        runtime=runtime, log_config={"Type": "none", "Config": {}},
        ulimits=[{"Name": "core", "Soft": 0, "Hard": 0}])


def create_container(api, image: str, command: list[str], config: Mapping[str, Any],
                     labels: Mapping[str, str] | None = None) -> str:
    """Create (not start) one sandbox container with the policy; returns its id."""
    spec = api.create_container_config(
        image=image, command=command, user=USER, working_dir=WORK_DIR, stdin_open=True,
        tty=False, network_disabled=True, host_config=config,
        environment={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        labels={LABEL: "1", OWNER_LABEL: owner(), **dict(labels or {})})
    spec["StdinOnce"] = True  # stdin closes when rlvr's connection does: the harness then exits
    return api.create_container_from_config(spec)["Id"]


def our_containers(api, mine_only: bool = False) -> list[dict]:
    """Containers labelled by rlvr (of this process only, with `mine_only`)."""
    label = f"{OWNER_LABEL}={owner()}" if mine_only else LABEL
    return api.containers(all=True, filters={"label": label})


def remove_stale(api) -> int:
    """Force-remove rlvr containers of this host whose owner process is gone; returns how many."""
    from docker.errors import APIError, NotFound

    host = socket.gethostname()
    removed = 0
    for c in our_containers(api):
        who = (c.get("Labels") or {}).get(OWNER_LABEL, "")
        name, _, pid = who.rpartition(":")
        if name != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            api.remove_container(c["Id"], force=True)
            removed += 1
        except (NotFound, APIError):
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
