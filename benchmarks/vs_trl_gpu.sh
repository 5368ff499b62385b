#!/usr/bin/env bash
# rlvr vs TRL on a GPU machine that has torch, transformers, peft and accelerate but no TRL, no
# network and no copy of the SmolLM2 weights (see "rlvr vs TRL" in benchmarks/README.md).
#
#   benchmarks/vs_trl_gpu.sh pack DIR              # where PyPI and rlvr's default model are: ~6 MB into DIR
#   benchmarks/vs_trl_gpu.sh run DIR [OPTIONS...]  # on the GPU machine, DIR copied there
#
# pack: the pure-Python wheels TRL needs there (trl, datasets, dill, multiprocess for Python
# 3.10-3.13) and the SmolLM2 tokenizer. run: benchmarks/vs_trl.py on CUDA with random SmolLM2-135M
# weights, TRL with gradient checkpointing on and off, 5 steps each; OPTIONS override those.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
[ $# -ge 2 ] || { sed -n 5,6p "$0" >&2; exit 2; }
mode="$1"; dir="$2"; shift 2

case "$mode" in
pack)
    mkdir -p "$dir/wheels"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$dir/wheels" \
        trl==1.16.0 datasets==5.2.0 dill==0.4.1
    for v in 3.10 3.11 3.12 3.13; do  # multiprocess ships one wheel per Python version
        "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$v" \
            -d "$dir/wheels" multiprocess==0.70.19
    done
    PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" "$python" -c \
        'import sys; from rlvr.models import load_tokenizer; load_tokenizer("smollm2-135m").save_pretrained(sys.argv[1])' \
        "$dir/tokenizer"
    du -sh "$dir"
    ;;
run)
    "$python" -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"; print(torch.cuda.get_device_name())'
    PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" "$python" -c 'import rlvr.train' \
        || { echo "vs_trl_gpu: rlvr does not import here (a missing dependency is named above)" >&2; exit 1; }
    exec "$python" "$here/vs_trl.py" --device cuda --random-weights --tokenizer "$dir/tokenizer" \
        --wheels "$dir/wheels" --trl-gradient-checkpointing both --steps 5 "$@"
    ;;
*)
    echo "vs_trl_gpu: unknown mode '$mode' (pack or run)" >&2; exit 2
    ;;
esac
