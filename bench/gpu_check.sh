#!/usr/bin/env bash
# GPU check of ASU training (not a test): 30 optimiser steps of ASU on a ViT-B/16 CLIP (random weights with B/16's
# shapes: the GPU machine has no real weights), 8 frames x 224 px, batch 8, synthetic clips, once with bf16 and once
# with fp16 (+ GradScaler). Prints clips/s, peak GPU memory and model FLOPs utilisation (MFU). Without CUDA it says
# so and exits 0.
#
#   bash bench/gpu_check.sh            # PYTHON=... to pick the interpreter; PEAK_TFLOPS=... for another GPU's peak
#
# The step is train.py's: same model, optimiser groups, autocast, loss, scaler, clipping. Data loading is left out
# of the timing (a few batches are decoded once and reused), so clips/s is the model's speed.
set -uo pipefail
cd "$(dirname "$0")/.."

# The first interpreter whose torch sees a GPU; else the first one that has torch at all.
candidates=("${PYTHON:-}" .venv/bin/python python3 python)
py=""
for candidate in "${candidates[@]}"; do
  [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
  if "$candidate" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    py=$candidate; break
  fi
  if [ -z "$py" ] && "$candidate" -c "import torch" 2>/dev/null; then py=$candidate; fi
done
if [ -z "$py" ]; then
  echo "gpu_check: no Python with torch; installing requirements.txt into .venv"
  python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt || { echo "gpu_check: install failed"; exit 1; }
  py=.venv/bin/python
fi
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU visible to $py (torch $("$py" -c 'import torch; print(torch.__version__)')); nothing to check."
  exit 0
fi
for module in numpy av tqdm regex; do
  "$py" -c "import $module" 2>/dev/null || "$py" -m pip install -q "$module" || { echo "gpu_check: $module missing"; exit 1; }
done

exec "$py" - <<'EOF'
import os, tempfile, time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import clip_vit
import data
import model as asu_model
import runtime

STEPS, WARMUP, BATCH, FRAMES, SIZE = 30, 5, 8, 8, 224
device = torch.device("cuda")
name = torch.cuda.get_device_name()
# dense bf16/fp16 tensor-core peaks; PEAK_TFLOPS overrides
peaks = {"H200": 989, "H100 PCIe": 756, "H100": 989, "A100": 312, "L40S": 362, "A10": 125, "4090": 165}
peak = float(os.environ.get("PEAK_TFLOPS") or next((v for k, v in peaks.items() if k in name), 0)) * 1e12
print(f"gpu_check: {name}, torch {torch.__version__}, ViT-B/16 ASU, {FRAMES} x {SIZE}, batch {BATCH}, {STEPS} steps")

root = os.path.join(tempfile.gettempdir(), "asu_gpu_check_synthetic")
started = time.time()
dataset = data.build_dataset("synthetic", root, "train", num_frames=FRAMES, size=SIZE, train=True)
loader = iter(torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=4))
batches = [(runtime.model_input(videos, device), labels.to(device)) for videos, labels, _ in (next(loader) for _ in range(4))]
print(f"synthetic data ready in {time.time() - started:.0f} s")

for amp in ("bf16", "fp16"):
    torch.manual_seed(0)
    clip = clip_vit.CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                         context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                         transformer_layers=12)
    model = asu_model.ASU(clip, dataset.class_names).to(device)
    optimizer = torch.optim.AdamW(model.param_groups(8e-6, 10.0, 0.001), betas=(0.9, 0.98), eps=1e-8)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")

    def step(videos, labels):
        with runtime.autocast(device, amp):
            logits = model(videos)                                           # (B, C)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=0.1)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss

    model.train()
    with FlopCounterMode(display=False) as counter:
        step(*batches[0])
    flops = counter.get_total_flops()
    for i in range(WARMUP):
        step(*batches[i % len(batches)])
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.time()
    for i in range(STEPS):
        loss = step(*batches[i % len(batches)])
    torch.cuda.synchronize()
    seconds = time.time() - start
    clips_per_s = STEPS * BATCH / seconds
    mfu = flops * STEPS / seconds / peak if peak else float("nan")
    print(f"{amp}: {clips_per_s:.1f} clips/s ({1000 * seconds / STEPS:.0f} ms/step), peak memory "
          f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, {flops / 1e12:.2f} TFLOP/step, "
          f"MFU {100 * mfu:.1f}% (of {peak / 1e12:.0f} TFLOP/s), loss {loss.item():.3f}")
    del model, optimizer, clip
    torch.cuda.empty_cache()
EOF
