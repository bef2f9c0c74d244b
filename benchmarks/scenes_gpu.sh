#!/usr/bin/env bash
# The scene study's compute axis on one lent GPU (docs/results/scenes.md, "On a GPU"):
#
#   python benchmarks/scenes_gpu.py prepare --cache CACHE   # here, once: .scenes-gpu/inputs.npz
#   bash benchmarks/gpu_wheels.sh                           # here, once: .whl/ (pycocotools)
#   bash benchmarks/scenes_gpu.sh [--budget 380]            # there, with .scenes-gpu and .whl carried
#
# The device has Python with CUDA builds of torch and torchvision, scikit-learn and OpenCV, but
# not pycocotools and no network: .whl/ is installed into a private folder and the package runs
# from src/. Results: $OUT/scenes_gpu.json, written as they come.
set -euo pipefail
cd "$(dirname "$0")/.."
site=/tmp/orl-site
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl
    export PYTHONPATH="$site:$PWD/src"
else
    export PYTHONPATH="$PWD/src"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
python3 benchmarks/scenes_gpu.py run "$@"
