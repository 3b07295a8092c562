"""ASU's training cost over the CLIP mean-pooling baseline (issue 5; not a test: prints ratios).

ViT-B/16 with random weights, one video of 8 x 224 px (batch 1), CPU, one training step = forward + cross-entropy
+ backward under bf16 autocast (default). Three configurations share the same CLIP:
    baseline  CLIP encode_image per frame, mean over frames, cosine to the class embeddings (ViFi-CLIP style)
    mra       the same with MultiRegionViT (13 region tokens in the last 2 blocks); its region and patch outputs
              enter the loss too, so backward goes through everything MRA adds
    asu       the whole model.ASU (MRA + SU selection + cross-modal decoder), default options
Targets: asu / baseline <= 1.15 and mra / baseline <= 1.08.

Timing: the configurations run interleaved in one process (baseline, mra, asu, again and again) and each keeps its
median, so a machine whose load changes over time still compares like with like. The ratio of process CPU times is
printed too: on a machine shared with other jobs it moves less than wall time (with several threads it also counts
their spin-waiting, so compare it single-threaded: OMP_NUM_THREADS=1).
Memory: each configuration runs one more step in a fresh subprocess, which resets its high-water mark (VmHWM, through
/proc/self/clear_refs) after building the models, so the figure is the step's own peak above the built model
(activations, gradients, workspace), not the weights.
Text tower: frozen and outside the timed step, so it is built with --text-layers 1 (default) to keep start-up short;
the parameter count below is still ViT-B/16's 12-layer one.

On a CPU without native bf16 matrix units (AVX2 only: no AVX512-BF16 / AMX) bf16 GEMMs take a slow path and one
B/16 step takes minutes; `--amp off` measures the same ratios in fp32 there.

    python bench/model_speed.py [--frames 8] [--size 224] [--amp bf16|off] [--repeats 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import clip_vit  # noqa: E402
from model import ASU  # noqa: E402
from mra import MultiRegionViT  # noqa: E402

CONFIGS = ["baseline", "mra", "asu"]
TARGETS = {"mra": 1.08, "asu": 1.15}


def build_models(text_layers, labels=None):
    """ViT-B/16-shaped CLIP (random weights) and the MRA and ASU built on it (Kinetics-400 class names)."""
    torch.manual_seed(0)
    clip = clip_vit.CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                         context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                         transformer_layers=text_layers)
    if labels is not None:   # e.g. Kinetics-400's class list: its SU bank is the real one
        class_names = [line.strip() for line in Path(labels).read_text().splitlines() if line.strip()]
    else:
        class_names = [f"action number {i}" for i in range(400)]
    asu = ASU(clip, class_names)
    mra = MultiRegionViT(clip.visual, grids=asu.visual.grids, layers=asu.visual.layers)
    return clip, mra, asu


def baseline_logits(clip, class_embeddings, videos):
    """The CLIP mean-pooling baseline: (B, T, 3, H, W) -> (B, C)."""
    B, T = videos.shape[:2]
    frames = clip.encode_image(videos.flatten(0, 1)).reshape(B, T, -1)             # (B, T, D)
    with torch.autocast("cpu", enabled=False):
        video = F.normalize(frames.mean(dim=1).float(), dim=-1)                     # (B, D)
        return clip.logit_scale.exp() * video @ class_embeddings.t()               # (B, C)


def train_step(config, clip, mra, asu, videos, labels, amp):
    extra = 0.0
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
        if config == "baseline":
            logits = baseline_logits(clip, asu.class_embeddings, videos)
        elif config == "mra":
            global_features, regions, patches = mra(videos.flatten(0, 1))         # (B*T, D), (B*T, R, D), (B*T, N, D)
            frames = global_features.reshape(videos.shape[0], videos.shape[1], -1)  # (B, T, D)
            video = F.normalize(frames.mean(dim=1).float(), dim=-1)
            logits = clip.logit_scale.exp() * video @ asu.class_embeddings.t()
            extra = regions.float().mean() + patches.float().mean()
        else:
            logits = asu(videos)
    loss = F.cross_entropy(logits.float(), labels) + extra
    loss.backward()
    for module in (clip, mra, asu):
        module.zero_grad(set_to_none=True)


def status_mib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024


def measure_memory(config, args):
    """In the child: peak resident memory of one training step, above the resident size with the models built."""
    clip, mra, asu = build_models(args.text_layers, args.labels)
    videos = torch.randn(args.batch, args.frames, 3, args.size, args.size)
    labels = torch.zeros(args.batch, dtype=torch.long)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    before = status_mib("VmRSS")
    train_step(config, clip, mra, asu, videos, labels, args.amp)
    print(json.dumps({"peak_mib": status_mib("VmHWM") - before}))


def count(parameters):
    return sum(p.numel() for p in parameters)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames per video (default 8)")
    parser.add_argument("--labels", default=None,
                        help="class list, one name a line, e.g. Kinetics-400's (default: 400 stand-in names)")
    parser.add_argument("--size", type=int, default=224, help="frame size in pixels (default 224)")
    parser.add_argument("--batch", type=int, default=1, help="videos per step (default 1)")
    parser.add_argument("--amp", choices=["bf16", "off"], default="bf16", help="CPU autocast dtype (default bf16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration (default 3)")
    parser.add_argument("--text-layers", type=int, default=1,
                        help="layers of the (frozen, untimed) text tower; ViT-B/16 has 12 (default 1: fast start)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory subprocesses")
    parser.add_argument("--memory-of", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        return measure_memory(args.memory_of, args)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.1f}; "
          f"ViT-B/16, {args.batch} x {args.frames} x {args.size} px, amp {args.amp}")
    clip, mra, asu = build_models(args.text_layers, args.labels)
    videos = torch.randn(args.batch, args.frames, 3, args.size, args.size)
    labels = torch.zeros(args.batch, dtype=torch.long)

    text_block = count(clip.transformer.resblocks[0].parameters())
    text_tower = count(p for name, p in clip.named_parameters() if not name.startswith("visual."))
    text_tower += (12 - len(clip.transformer.resblocks)) * text_block  # as ViT-B/16's 12-layer text tower
    print(f"parameters: CLIP visual {count(clip.visual.parameters()) / 1e6:.2f} M (trained), "
          f"text tower {text_tower / 1e6:.2f} M (frozen); new in ASU: MRA region embedding "
          f"{count([asu.visual.region_embedding]) / 1e6:.3f} M, "
          f"SU selection {count(asu.selection.parameters()) / 1e6:.2f} M, "
          f"decoder {count(asu.decoder.parameters()) / 1e6:.2f} M; SU bank S = {asu.su_bank.shape[0]}, "
          f"C = {asu.class_embeddings.shape[0]} classes")

    times = {config: [] for config in CONFIGS}
    cpu_times = {config: [] for config in CONFIGS}
    for config in CONFIGS:
        train_step(config, clip, mra, asu, videos, labels, args.amp)  # warm-up
    for _ in range(args.repeats):
        for config in CONFIGS:
            start, cpu_start = time.perf_counter(), time.process_time()
            train_step(config, clip, mra, asu, videos, labels, args.amp)
            times[config].append(time.perf_counter() - start)
            cpu_times[config].append(time.process_time() - cpu_start)
    del clip, mra, asu
    seconds = {config: statistics.median(t) for config, t in times.items()}
    cpu_seconds = {config: statistics.median(t) for config, t in cpu_times.items()}
    for config in CONFIGS:
        memory = ""
        if not args.no_memory:
            out = subprocess.run([sys.executable, __file__, "--memory-of", config, "--frames", str(args.frames),
                                  "--size", str(args.size), "--batch", str(args.batch), "--amp", args.amp,
                                  "--text-layers", str(args.text_layers)], capture_output=True, text=True, check=True)
            memory = f"   step peak memory {json.loads(out.stdout.strip().splitlines()[-1])['peak_mib']:6.0f} MiB"
        print(f"{config:9s} {seconds[config]:8.3f} s / step (runs: {', '.join(f'{t:.2f}' for t in times[config])})"
              f"{memory}")
    for config, target in TARGETS.items():
        print(f"{config} / baseline: {seconds[config] / seconds['baseline']:.3f}  (target <= {target}; "
              f"process CPU time ratio {cpu_seconds[config] / cpu_seconds['baseline']:.3f})")


if __name__ == "__main__":
    main()
