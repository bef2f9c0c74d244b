# Sourced by the device scripts (benchmarks/gpu.sh, benchmarks/scenes_gpu.sh) from the repository
# root: the device has Python with CUDA builds of torch and torchvision but none of this
# project's other wheels and no network, so what .whl/ holds (benchmarks/gpu_wheels.sh) is
# installed into a private folder and the package runs from src/; then the card and versions.
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
