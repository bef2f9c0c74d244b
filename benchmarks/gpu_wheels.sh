#!/usr/bin/env bash
# Download, on a machine with network access, the wheels the device image lacks into .whl/
# (ignored by git), for `benchmarks/gpu.sh` to install there without network.
#
# The device image (Python 3.12, x86-64) already holds torch, torchvision, numpy, pillow, PyYAML,
# tqdm, scikit-learn, joblib, tensorboard and opencv-python-headless; the training loop and
# stage 2 need only OpenCV's contrib modules on top (selective search), and the scene benchmark
# pycocotools (its masks). 4.10.0.84 is the newest opencv-contrib-python-headless wheel (56 MB)
# under a device run's 64 MiB carry limit; NO_OPENCV=1 leaves it out, for a run that carries the
# scene inputs (benchmarks/scenes_gpu.sh) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
wheels=("pycocotools==2.0.11")
[ "${NO_OPENCV:-0}" = 1 ] || wheels+=("opencv-contrib-python-headless==4.10.0.84")
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
du -sh .whl
