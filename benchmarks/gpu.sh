#!/usr/bin/env bash
# One device run (about 7 minutes on one H100/H200): the throughput table of docs/benchmarks.md.
#
#   bash benchmarks/gpu_wheels.sh    # here, once: the wheels the device image lacks, into .whl/
#   bash benchmarks/gpu.sh           # on the device machine, with .whl carried along
#
# The device lacks this project's other wheels (benchmarks/device_env.sh installs .whl/). Without
# opencv-contrib in .whl/ stage 2 uses stand-in boxes instead of selective search.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/device_env.sh
# measurements stop starting after BUDGET_S (400) s; each has its own limit; the whole run ends
# 80 s later. Extra arguments go to gpu.py (e.g. --only BYOL ORL).
budget=${BUDGET_S:-400}
timeout $((budget + 80)) python3 benchmarks/gpu.py --budget-s "$budget" --work /tmp/orl-gpu-bench "$@"
