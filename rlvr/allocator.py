"""The memory allocator of the heavy commands (`rlvr train|eval|sft|rm`): tcmalloc where the
system has it.

A training step on CPU churns through tensors of many sizes (activations, a head's logits chunk
by chunk, gradients). glibc's malloc keeps the freed blocks in its heap, fragmented, and the
resident memory grows to well above what is alive: on the vs_trl workload's update with
checkpointing, a peak of 4.7 GiB for about 3.5 GiB in use. tcmalloc's peak was 3.9 GiB there, and
the update took 27-28 s instead of 33-35 s (benchmarks/README.md); PyTorch's CPU launcher and
vLLM's CPU guide preload it the same way.

A process cannot change its allocator once running, so the command starts itself again
(`os.execve`: the same process id, arguments and environment) with the library in `LD_PRELOAD`,
before torch is imported. `RLVR_ALLOCATOR` chooses:
- `auto` (the default): tcmalloc when the system has it (Debian: `libtcmalloc-minimal4`, which
  `scripts/setup.sh` installs), else glibc's;
- `system`: glibc's malloc, no restart;
- a library name or path (`libjemalloc.so.2`, `/opt/lib/libtcmalloc.so`): that one, or an error.

The same commands bound two caches of compiled matrix-product kernels that grow with every new
shape (`bound_shape_caches`, before torch loads): oneDNN's primitive cache and PyTorch's ideep
cache, 1,024 entries each by default, of about 0.3-0.6 MB each on this model's products. Every
micro-batch width and decode batch size is a new shape, so on the vs_trl workload a trainer's heap
grew 50-70 MiB a step (about 1 GB by the time both caches are full); at 256 and 64 entries it stays
flat, and a step still finds 99.5% of its kernels in the cache (a miss costs about 0.5 ms). A
value the user sets is kept.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from typing import MutableMapping

from rlvr.errors import ConfigError

TCMALLOC = ("tcmalloc_minimal", "tcmalloc")  # gperftools' libraries, by `find_library` name
SHAPE_CACHES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "256", "LRU_CACHE_CAPACITY": "64"}  # entries


def bound_shape_caches(env: MutableMapping[str, str]) -> None:
    """Cap oneDNN's and ideep's kernel caches in `env` (the process's own, before torch loads),
    unless they are set already."""
    for key, entries in SHAPE_CACHES.items():
        env.setdefault(key, entries)


def choose(setting: str, find=ctypes.util.find_library) -> str | None:
    """The library to preload for `RLVR_ALLOCATOR=setting`, or None for glibc's malloc."""
    setting = setting.strip() or "auto"
    if setting == "system":
        return None
    if setting == "auto":
        return next((lib for lib in map(find, TCMALLOC) if lib), None)
    if os.sep in setting:
        if not os.path.isfile(setting):
            raise ConfigError(f"RLVR_ALLOCATOR={setting}: no such file (auto, system, or a shared library)")
        return setting
    name = setting.removeprefix("lib").split(".so")[0]
    found = find(name)
    if found is None:
        raise ConfigError(f"RLVR_ALLOCATOR={setting}: the system has no library {name!r} (auto, system, or a "
                          "shared library's name or path)")
    return found


def preload_environment(env: dict[str, str], find=ctypes.util.find_library) -> dict[str, str] | None:
    """The environment to start again with, or None when this process already runs as chosen."""
    setting = env.get("RLVR_ALLOCATOR", "auto")
    preloaded = env.get("LD_PRELOAD", "").replace(":", " ").split()
    names = {os.path.basename(p) for p in preloaded}
    if setting.strip() in ("", "auto") and any("malloc" in n for n in names):
        return None  # the user preloads an allocator already
    library = choose(setting, find)
    if library is None or os.path.basename(library) in names:
        return None
    return {**env, "LD_PRELOAD": " ".join([library, *preloaded])}


def preload() -> None:
    """Start this process again with the chosen allocator preloaded (Linux; no-op where it is)."""
    if not sys.platform.startswith("linux"):
        return
    env = preload_environment(dict(os.environ))
    if env is not None:
        sys.stdout.flush(), sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, env)
