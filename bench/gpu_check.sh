#!/usr/bin/env bash
# GPU check of ASU training (not a test). First the machine: every package train.py needs (with OpenAI's BPE
# vocabulary and PyAV's H.264 encoder), and a GPU that torch can compute on; then bench/gpu_check.py, one end-to-end
# run (synthetic set at 224 px with 8 frames, the real loader and workers, one-rank DDP, ViT-B/16) that prints one
# line: clips/s, data wait, MFU, peak memory, attention kernel.
#
#   bash bench/gpu_check.sh              # PYTHON=... picks the interpreter; PEAK_TFLOPS=... another GPU's peak
#   bash bench/gpu_check.sh --device cpu # the same path on the tiny CLIP (the test suite runs it)
#
# Exit status 1 when something is missing, when a GPU is present but torch cannot use it (a CPU build of torch, a
# driver too old for its CUDA), or when there is no GPU at all without --device cpu: a check that measured nothing
# does not pass.
set -uo pipefail
cd "$(dirname "$0")/.."

device=cuda
previous=""
for arg in "$@"; do
  [ "$previous" = "--device" ] && device=$arg
  [ "$arg" = "--device=cpu" ] && device=cpu
  previous=$arg
done

py=""
for candidate in "${PYTHON:-}" .venv/bin/python python3 python; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
done
[ -n "$py" ] || { echo "gpu_check: FAIL: no Python found"; exit 1; }

# one interpreter start for every package check (each import of torch costs seconds)
missing=$("$py" -c "
import importlib
for module in ('torch', 'numpy', 'av', 'tqdm', 'regex', 'pytest'):
    try:
        importlib.import_module(module)
    except Exception as e:
        raise SystemExit(f'{module} cannot be imported ({type(e).__name__}); pip install -r requirements.txt')
import av, clip_vit
try:
    clip_vit.find_bpe_vocab()
except Exception:
    raise SystemExit('no BPE vocabulary (the openai-clip package of requirements.txt carries it)')
try:
    av.codec.Codec('libx264', 'w')
except Exception:
    raise SystemExit('PyAV has no libx264 encoder (the synthetic set is written with it)')
" 2>&1)
[ -z "$missing" ] || { echo "gpu_check: FAIL: $py: $missing"; exit 1; }

if [ "$device" = cuda ]; then
  present=""
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then present=yes; fi
  ls /dev/nvidia[0-9]* >/dev/null 2>&1 && present=yes
  usable=$("$py" -c "
import torch
try:
    torch.ones(1, device='cuda').add_(1).item()
    print('yes')
except Exception as e:
    print(f'torch {torch.__version__} (CUDA {torch.version.cuda}): {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}')
" 2>/dev/null)
  if [ "$usable" != yes ]; then
    if [ -n "$present" ]; then
      echo "gpu_check: FAIL: a GPU is present but torch cannot use it: $usable"
    else
      echo "gpu_check: FAIL: no GPU on this machine (--device cpu runs the same path on a tiny model)"
    fi
    exit 1
  fi
fi

exec "$py" bench/gpu_check.py "$@"
