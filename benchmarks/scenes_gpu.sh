#!/usr/bin/env bash
# The scene study's compute axis on one lent GPU (docs/results/scenes.md, "The trend with compute"):
#
#   python benchmarks/scenes_gpu.py prepare --cache CACHE   # here, once: .scenes-gpu/inputs.npz
#   NO_OPENCV=1 bash benchmarks/gpu_wheels.sh               # here, once: .whl/ (pycocotools)
#   bash benchmarks/scenes_gpu.sh [--budget 380]            # there, with .scenes-gpu and .whl carried
#
# The device lacks pycocotools (benchmarks/device_env.sh installs .whl/). Results:
# $OUT/scenes_gpu.json, written as they come.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/device_env.sh
python3 benchmarks/scenes_gpu.py run "$@"
