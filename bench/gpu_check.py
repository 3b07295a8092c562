"""GPU check of ASU training (not a test; bench/gpu_check.sh runs it after checking the machine): one end-to-end
run on one device, through train.py's parts: the synthetic set decoded by the real loader and its workers, ASU on a
ViT-B/16 CLIP (random weights with B/16's shapes: a GPU machine may have no real ones) at 8 frames x 224 px,
batch 8, in a one-rank DDP group, with train.py's optimiser, autocast, loss, scaler, clipping and step. Prints one
summary line: clips/s, the fraction of step time spent waiting for data, model FLOPs utilisation (MFU), peak
memory, the attention kernels the profiler saw (flash / memory-efficient / cudnn / math), and the milliseconds per
clip of the colour jitter that train.py runs on the GPU rather than in the loader workers (data.colour_on_device;
bench/data_speed.py has what it costs a worker).

`--device cpu` runs the same path on the tiny CLIP (2 frames of 64 px, batch 2, a few steps) so that a test covers
it; its clips/s say nothing about a GPU.

    bash bench/gpu_check.sh [--device cpu] [--steps N] [--workers N]
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import clip_vit  # noqa: E402
import data  # noqa: E402
import runtime  # noqa: E402
import synthetic  # noqa: E402
import train  # noqa: E402
from model import build_model  # noqa: E402

# dense bf16 / fp16 tensor-core peaks in TFLOP/s, the first name contained in the device's wins; PEAK_TFLOPS overrides
PEAKS = {"H100 NVL": 835, "H100 PCIe": 756, "H100": 989, "H200": 989, "H20": 148, "A100": 312, "A10G": 70,
         "A10": 125, "L40S": 362, "L4": 121, "4090": 165}
# what the profiler names each attention kernel of scaled_dot_product_attention; none of them: the math path
KERNELS = {"flash": "_scaled_dot_product_flash_attention", "memory-efficient": "_scaled_dot_product_efficient",
           "cudnn": "_scaled_dot_product_cudnn_attention"}


def attention_kernels(step):
    """The attention kernels one call of `step` runs, as the profiler sees them."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        step()
    names = {event.name for event in profile.events()}
    seen = [kernel for kernel, op in KERNELS.items() if any(op in name for name in names)]
    return "+".join(seen) or "math"


def colour_milliseconds(videos, device, repeats=3):
    """Milliseconds per clip of the training colour augmentation (jitter and grayscale, data.colour_on_device) on
    `device`, every clip jittered: what train.py takes off the loader workers on CUDA."""
    rng, colours = np.random.default_rng(0), []
    while len(colours) < len(videos):
        colour = data.draw_colour(rng)
        if colour[1]:   # keep the draws that jitter (p 0.8)
            colours.append(colour)
    colours, unit = torch.stack(colours), videos.to(device).float().div_(255)    # (B, 10), (B, T, 3, S, S)
    data.colour_on_device(unit, colours)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        data.colour_on_device(unit, colours)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - started) / (repeats * len(videos))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda: ViT-B/16; cpu: the tiny CLIP")
    p.add_argument("--steps", type=int, help="timed optimiser steps (default: cuda 30, cpu 3)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default: cuda 5, cpu 1)")
    p.add_argument("--workers", type=int, help="loader workers (default: train.py's for one GPU; cpu: 1)")
    p.add_argument("--amp", choices=("bf16", "fp16", "off"), help="default: train.py's for the device")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    steps, warmup = args.steps or (30 if cuda else 3), args.warmup or (5 if cuda else 1)
    frames, size, batch = (8, 224, 8) if cuda else (2, 64, 2)
    workers = args.workers if args.workers is not None else runtime.default_workers("cuda") if cuda else 1
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(0)
        runtime.use_tf32()
    runtime.flush_denormals()
    tmp = Path(tempfile.mkdtemp(prefix="asu_gpu_check_"))
    root = Path(tempfile.gettempdir()) / f"asu_gpu_check_synthetic_{args.device}"
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{tmp / 'rendezvous'}", rank=0,
                            world_size=1, device_id=device if cuda else None)
    try:
        if not cuda:   # a small set renders in seconds; on a GPU machine the default set (rendered once, kept)
            synthetic.make_synthetic(root, num_classes=4, videos_per_class=4, val_fraction=0.25, num_frames=8,
                                     size=64, workers=1)
        options = train.build_parser().parse_args(["--frames", str(frames), "--size", str(size),
                                                   "--cache-dir", str(tmp / "text")])
        options.amp = args.amp
        options.device = args.device
        runtime.resolve_amp(options)
        train_set = data.build_dataset("synthetic", root, "train", num_frames=frames, size=size, train=True)
        torch.manual_seed(0)
        clip = (clip_vit.CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                              vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=512,
                              transformer_heads=8, transformer_layers=12) if cuda else clip_vit.tiny_clip())
        model = build_model(options, train_set.class_names, clip=clip, device=device)
        optimizer = torch.optim.AdamW(model.param_groups(8e-6, 10.0, 0.001), betas=(0.9, 0.98), eps=1e-8,
                                      fused=cuda)
        run = argparse.Namespace(args=argparse.Namespace(clip_grad=1.0), model=model, optimizer=optimizer,
                                 scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
                                 scaler=torch.amp.GradScaler(device.type, enabled=options.amp == "fp16"),
                                 ddp_model=train.distributed_model(model, device), skipped_in_a_row=0)
        sums = train.RunningSums(device)
        sampler = torch.utils.data.RandomSampler(train_set, replacement=True, num_samples=(steps + warmup + 2) * batch)
        batches = iter(torch.utils.data.DataLoader(train_set, batch_size=batch, sampler=sampler, drop_last=True,
                                                   **runtime.loader_options(device, workers, persistent=True)))

        def step(videos, labels, ddp=True):
            with runtime.autocast(device, options.amp):
                logits = (run.ddp_model if ddp else model)(runtime.model_input(videos, device))   # (B, C)
            loss = F.cross_entropy(logits.float(), labels.to(device, non_blocking=True), label_smoothing=0.1)
            run.scaler.scale(loss).backward()
            train.optimizer_step(run, False, sums, "gpu_check")
            return loss

        model.train()
        videos, labels, _ = next(batches)
        with FlopCounterMode(display=False) as counter:   # outside DDP: its hooks are not model FLOPs
            step(videos, labels, ddp=False)
        flops = counter.get_total_flops()
        kernels = attention_kernels(lambda: step(videos, labels))
        for _ in range(warmup):
            step(*next(batches)[:2])
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        waited, started = 0.0, time.perf_counter()
        for _ in range(steps):
            asked = time.perf_counter()
            videos, labels, _ = next(batches)
            waited += time.perf_counter() - asked
            loss = step(videos, labels)
            loss.item()   # train.py syncs once per step too (step_controls)
        seconds = time.perf_counter() - started
        colour_ms = colour_milliseconds(videos, device)
    finally:
        dist.destroy_process_group()
    peak = float(os.environ.get("PEAK_TFLOPS") or next((v for k, v in PEAKS.items()
                                                        if cuda and k in torch.cuda.get_device_name()), 0)) * 1e12
    mfu = (f"{100 * flops * steps / seconds / peak:.1f}%" if peak else "n/a (unknown peak: PEAK_TFLOPS=...)" if cuda
           else "n/a")
    memory = (f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda
              else f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS")
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"gpu_check: {name}, torch {torch.__version__}, {'ViT-B/16' if cuda else 'tiny'} ASU {frames} x {size} "
          f"batch {batch} {options.amp}, 1-rank DDP, {workers} workers, {steps} steps: "
          f"{steps * batch / seconds:.1f} clips/s, data wait {100 * waited / seconds:.0f}%, MFU {mfu}, peak memory "
          f"{memory}, attention {kernels}, colour jitter on the device {colour_ms:.2f} ms/clip, loss {loss.item():.3f}"
          + (" (H100 targets: MFU >= 40%, data wait < 10%)" if cuda else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
