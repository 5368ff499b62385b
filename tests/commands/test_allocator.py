"""`rlvr.allocator`: the heavy commands start again with tcmalloc preloaded where the system has
it, with the allocator `RLVR_ALLOCATOR` names, or with glibc's; a bad name is a config error."""

import ctypes.util
import os
import subprocess
import sys

import pytest
import torch

from rlvr.allocator import bound_shape_caches, choose, preload_environment
from rlvr.errors import ConfigError

SYSTEM = {"tcmalloc_minimal": "libtcmalloc_minimal.so.4", "jemalloc": "libjemalloc.so.2"}


def test_auto_takes_tcmalloc_where_the_system_has_it():
    assert choose("auto", SYSTEM.get) == "libtcmalloc_minimal.so.4"
    assert choose("", {"tcmalloc": "libtcmalloc.so.4"}.get) == "libtcmalloc.so.4"
    assert choose("auto", {}.get) is None
    assert choose("system", SYSTEM.get) is None


def test_a_named_allocator_must_exist(tmp_path):
    assert choose("jemalloc", SYSTEM.get) == "libjemalloc.so.2"
    assert choose("libjemalloc.so.2", SYSTEM.get) == "libjemalloc.so.2"
    with pytest.raises(ConfigError, match="no library 'mimalloc'"):
        choose("mimalloc", SYSTEM.get)
    with pytest.raises(ConfigError, match="no such file"):
        choose(str(tmp_path / "libnone.so"), SYSTEM.get)
    library = tmp_path / "libmine.so"
    library.write_bytes(b"")
    assert choose(str(library), SYSTEM.get) == str(library)


def test_the_preload_goes_in_front_once():
    env = preload_environment({"LD_PRELOAD": "libother.so"}, SYSTEM.get)
    assert env["LD_PRELOAD"] == "libtcmalloc_minimal.so.4 libother.so"
    assert preload_environment(env, SYSTEM.get) is None  # started again: nothing more to do
    assert preload_environment({"LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4"}, SYSTEM.get) is None
    assert preload_environment({"RLVR_ALLOCATOR": "system"}, SYSTEM.get) is None
    assert preload_environment({}, {}.get) is None


def test_auto_keeps_an_allocator_the_user_preloads():
    assert preload_environment({"LD_PRELOAD": "/opt/libjemalloc.so.2"}, SYSTEM.get) is None
    named = preload_environment({"LD_PRELOAD": "/opt/libjemalloc.so.2", "RLVR_ALLOCATOR": "tcmalloc_minimal"},
                                SYSTEM.get)
    assert named["LD_PRELOAD"] == "libtcmalloc_minimal.so.4 /opt/libjemalloc.so.2"


PROGRAM = """import sys
from rlvr.cli import main
sys.argv = ["rlvr", "train", "--help-config"]
code = main()
print("MAPPED", any("tcmalloc" in line for line in open("/proc/self/maps")))
sys.exit(code)
"""


def run_program(**env):
    environ = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "RLVR_ALLOCATOR")}
    return subprocess.run([sys.executable, "-c", PROGRAM], env={**environ, **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("tcmalloc_minimal"),
                    reason="the system has no tcmalloc (Debian: libtcmalloc-minimal4)")
def test_the_command_starts_again_with_tcmalloc_mapped():
    auto, system = run_program(), run_program(RLVR_ALLOCATOR="system")
    assert auto.returncode == 0 and system.returncode == 0, (auto.stderr, system.stderr)
    assert "--output_dir" in auto.stdout  # the command ran after the restart
    assert auto.stdout.strip().endswith("MAPPED True"), auto.stdout[-200:]
    assert system.stdout.strip().endswith("MAPPED False"), system.stdout[-200:]


def test_a_bad_allocator_stops_the_command_with_a_config_error(tmp_path):
    proc = run_program(RLVR_ALLOCATOR=str(tmp_path / "libnone.so"))
    assert proc.returncode == 2 and "rlvr train: config error: RLVR_ALLOCATOR=" in proc.stderr, proc.stderr


def test_commands_called_as_functions_do_not_start_again(tmp_path):
    """Tests and library users call `main([...])`: it must not replace their process."""
    from rlvr.cli import main

    os.environ["RLVR_ALLOCATOR"] = str(tmp_path / "libnone.so")
    try:
        assert main(["train", "--help-config"]) == 0
    finally:
        del os.environ["RLVR_ALLOCATOR"]


CACHES = """import sys
from rlvr.cli import main
sys.argv = ["rlvr", "train", "--help-config"]
main()
import torch  # as the command would, after `main` set the environment up

def rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024

weight = torch.ops.mkldnn._reorder_linear_weight(torch.ones(256, 64), 64)

def product(n):  # oneDNN's fp32 linear (the head's logits, fp32 sampling) at a row count not seen
    return torch.ops.mkldnn._linear_pointwise(torch.ones(n, 64), weight, None, "none", [], "")  # before

product(2)
before = rss()
for n in range(100, 700):
    product(n)
print("GROWTH_MB", rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_the_command_bounds_the_kernel_caches_that_grow_with_each_new_shape():
    """600 new shapes: with the libraries' 1,024-entry caches (set by hand, which the command keeps)
    the process grows by about 0.5 MB a shape; with the command's bounds it stops where they are full
    (on a 2-core AVX2 CPU 73 against 316 MB with torch 2.13, 9 against 37 MB with torch 2.11, whose
    oneDNN keeps smaller entries). The product is one that oneDNN runs on every x86 CPU: a bf16 one
    goes elsewhere where the CPU has no bf16 kernels, and no cache grows."""
    environ = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}

    def growth(**env):
        proc = subprocess.run([sys.executable, "-c", CACHES], env={**environ, **env}, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return float(proc.stdout.split("GROWTH_MB")[-1])

    bounded = growth()
    unbounded = growth(ONEDNN_PRIMITIVE_CACHE_CAPACITY="1024", LRU_CACHE_CAPACITY="1024")
    assert unbounded - bounded > 20 and unbounded > 2.5 * bounded, (bounded, unbounded)


def test_the_cache_bounds_keep_what_the_user_set():
    env = {"LRU_CACHE_CAPACITY": "8"}
    bound_shape_caches(env)
    assert env == {"LRU_CACHE_CAPACITY": "8", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "256"}
