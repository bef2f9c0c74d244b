#!/usr/bin/env bash
# One device run (about 7 minutes on one H100/H200): the throughput table of docs/benchmarks.md.
#
#   bash benchmarks/gpu_wheels.sh    # here, once: the wheels the device image lacks, into .whl/
#   bash benchmarks/gpu.sh           # on the device machine, with .whl carried along
#
# The device has Python with CUDA builds of torch and torchvision but none of this project's
# other wheels and no network: what .whl/ holds is installed into a private folder, and the
# package runs from src/. Without .whl/ stage 2 uses stand-in boxes instead of selective search.
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
python3 -c 'import torch, torchvision, cv2, PIL
print("torch", torch.__version__, "cuda", torch.version.cuda, "torchvision", torchvision.__version__,
      "opencv", cv2.__version__, "contrib", hasattr(cv2, "ximgproc"), "pillow", PIL.__version__)'
# measurements stop starting after BUDGET_S (400) s; each has its own limit; the whole run ends
# 80 s later. Extra arguments go to gpu.py (e.g. --only BYOL ORL).
budget=${BUDGET_S:-400}
timeout $((budget + 80)) python3 benchmarks/gpu.py --budget-s "$budget" --work /tmp/orl-gpu-bench "$@"
