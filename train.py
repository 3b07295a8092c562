"""Training entry point: fine-tune ASU (CLIP + MRA + SU selection + cross-modal decoder) on a video dataset.

In:  a dataset (`--data`, layouts in DESIGN.md) and CLIP weights (`--clip`); videos reach the model as
     (B, T, 3, S, S) float tensors, labels as (B,) class indices.
Out: in `--out`: args.json, log.jsonl (one JSON object per epoch: epoch, lr, train_loss, val_top1, val_top5, ...),
     last.pt and best.pt, written atomically (temporary file, then os.replace). A checkpoint is the dict
     {"model", "optimizer", "scaler", "scheduler", "epoch" (completed), "step" (optimiser steps into the next
     epoch, for --save-every), "rng" (per rank), "args", "class_names", "best_top1", "log", "sums" (running sums
     of the epoch in progress), "semantic_units"}.

One code path serves one CPU process, N GPUs on one machine (`--gpus N` spawns the processes here) and several
machines (`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK and we join its group; runtime.launch). The global batch
`--batch-size` is per-process batch x processes x gradient-accumulation steps, so the optimisation does not depend
on how many GPUs ran it.

Resume is exact: which samples an epoch visits (and in what order) depends only on (seed, epoch), and their
augmentation only on (seed, epoch, index) (data.VideoDataset.set_epoch); a checkpoint holds everything else
(model, optimiser, GradScaler, schedule, RNG states, position in the epoch, log). So `--resume` after a crash or
after `--stop-after` ends with the same parameters and log as an uninterrupted run.

Reading order: the command line, the sampling and schedule (epoch_indices, lr_factor), then train_worker, which
sets a run up and loops over epochs: train_epoch (one pass over the training set), evaluation, log, checkpoint.

`python train.py` with no flags is the embedded default: synthetic data, tiny random-init CLIP, CPU; it ends by
printing the validation top-1.
"""
import contextlib
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

import clip_vit
import data
import runtime
from model import build_model, load_model_state, units_to_state
from mra import parse_grids
from runtime import DATASET_DEFAULTS, DATASETS, defaults_help, fail, one_line_errors, rank_and_world


def build_parser():
    p = runtime.argument_parser("train.py", "Train ASU (video action recognition with attentive semantic units).")
    per_dataset = "default per dataset: "
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", choices=DATASETS,
                   help="dataset layout (drawn in DESIGN.md, \"Data layouts\")")
    g.add_argument("--data-root", default=None, help="dataset folder (default: data/<data>)")
    g.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split of UCF-101 / HMDB-51")
    g.add_argument("--shots", type=int, default=None,
                   help="few-shot: K training videos per class from split-1 train (default: all)")
    g.add_argument("--frames", type=int, default=None, help=per_dataset + defaults_help("frames"))
    g.add_argument("--size", type=int, default=None,
                   help="input size in pixels; " + per_dataset + defaults_help("size"))
    g.add_argument("--workers", type=int, default=None,
                   help="data-loading processes per GPU process (default: 8 on CUDA, CPU cores / 4 on the CPU)")
    g.add_argument("--strict", action="store_true", help="stop at an unreadable video instead of replacing it")
    g = p.add_argument_group("model")
    g.add_argument("--clip", default=None,
                   help="CLIP weights: a name (ViT-B/16), a file, or 'tiny' (random init); " + per_dataset
                   + defaults_help("clip"))
    g.add_argument("--descriptions", default=None, help="JSON of class descriptions for SU extraction (default: none)")
    g.add_argument("--mra-grids", default="2x2,3x3", help="MRA region grids, comma-separated RxC")
    g.add_argument("--mra-layers", type=int, default=2, help="last ViT blocks that carry region tokens (0: no MRA)")
    g.add_argument("--su-topk", type=int, default=8, help="SUs kept per visual token before the softmax (0: all)")
    g.add_argument("--decoder-layers", type=int, default=2, help="cross-modal decoder layers (0: no decoder)")
    g.add_argument("--decoder-memory", default="all", choices=("all", "regions"), help="what the decoder attends to")
    g.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing of the ViT blocks")
    g.add_argument("--cache-dir", default=str(Path(__file__).resolve().parent / ".cache" / "text"),
                   help="cache of class and SU text embeddings")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=None, help=per_dataset + defaults_help("epochs"))
    g.add_argument("--warmup-epochs", type=float, default=None,
                   help="linear warm-up, then cosine; " + per_dataset + defaults_help("warmup_epochs"))
    g.add_argument("--min-lr-ratio", type=float, default=0.01, help="the cosine ends at lr x this")
    g.add_argument("--batch-size", type=int, default=None,
                   help="global batch (per-GPU batch x GPUs x accumulation); " + per_dataset
                   + defaults_help("batch_size"))
    g.add_argument("--per-gpu-batch", type=int, default=None,
                   help="batch of one process per forward pass; gradients are accumulated up to --batch-size; "
                   + per_dataset + defaults_help("per_gpu_batch") + " (at most batch-size / processes)")
    g.add_argument("--lr", type=float, default=None, help="learning rate of the CLIP weights; " + per_dataset
                   + defaults_help("lr"))
    g.add_argument("--new-module-lr-mult", type=float, default=10.0, help="lr multiplier of the new modules")
    g.add_argument("--weight-decay", type=float, default=0.001, help="AdamW weight decay (not on 1-D parameters)")
    g.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy")
    g.add_argument("--clip-grad", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    g.add_argument("--amp", default=None, choices=("bf16", "fp16", "off"),
                   help="mixed precision (default: on CUDA bf16 where supported, else fp16; on the CPU bf16 where "
                   "it is native, else off); fp16 uses a GradScaler")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, sampling and augmentation")
    g = p.add_argument_group("run")
    g.add_argument("--device", default=None, choices=("cuda", "cpu"), help="default: cuda when present")
    g.add_argument("--gpus", type=int, default=1,
                   help="processes to spawn on this machine (GPUs; CPU processes with --device cpu); "
                   "ignored under torchrun")
    g.add_argument("--out", default=None, help="output folder (default: runs/<data>, or the --resume folder)")
    g.add_argument("--resume", default=None,
                   help="checkpoint to continue from, e.g. runs/k400/last.pt (default: start afresh)")
    g.add_argument("--save-every", type=int, default=0,
                   help="also checkpoint every N optimiser steps inside an epoch (0: at epoch ends only)")
    g.add_argument("--stop-after", type=int, default=None,
                   help="end this run after epoch N (the schedule still spans --epochs); continue with --resume "
                   "(default: run to --epochs)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    for key, value in DATASET_DEFAULTS[args.data].items():
        if key != "views" and getattr(args, key) is None:
            setattr(args, key, value)
    if args.data_root is None:
        args.data_root = str(Path("data") / args.data)
    if args.out is None:
        args.out = str(Path(args.resume).parent) if args.resume else str(Path("runs") / args.data)
    with one_line_errors():
        parse_grids(args.mra_grids)  # fail early on a malformed value
    runtime.resolve_device(args)
    runtime.resolve_amp(args)
    if args.workers is None:
        args.workers = runtime.default_workers(args.device)
    processes = int(os.environ.get("WORLD_SIZE", args.gpus))
    args.per_gpu_batch = min(args.per_gpu_batch, max(1, args.batch_size // processes))
    if args.batch_size % (args.per_gpu_batch * processes):
        fail(f"--batch-size {args.batch_size} is not a multiple of --per-gpu-batch {args.per_gpu_batch} x "
             f"{processes} processes")
    if args.data != "synthetic" and not Path(args.data_root).is_dir():
        fail(f"--data-root {args.data_root}: no such folder")
    for flag in ("descriptions", "resume"):
        value = getattr(args, flag)
        if value and not Path(value).is_file():
            fail(f"--{flag} {value}: no such file")
    if args.clip != "tiny" and args.clip not in clip_vit.MODEL_URLS and not Path(args.clip).is_file():
        fail(f"--clip {args.clip}: no such file (or give one of {', '.join(clip_vit.MODEL_URLS)}, or 'tiny')")
    return args


# ----------------------------------------------------------------------------------------------------------------
# Sampling and schedule

def epoch_indices(num_samples, seed, epoch, rank, world_size, global_batch):
    """This process's training samples for one epoch, in order.

    The permutation depends only on (seed, epoch); whole global batches only (drop_last). Rank r takes
    perm[r::world], so its k-th micro-batch of b samples lies inside the k-th block of b * world: N processes with
    batch b see, step by step, exactly the samples one process with batch N*b sees (DDP averages the gradients,
    so the parameters agree), and the same holds across gradient-accumulation steps."""
    steps = num_samples // global_batch
    perm = np.random.default_rng([seed, epoch]).permutation(num_samples)[: steps * global_batch]
    return perm[rank::world_size].tolist()


def lr_factor(step, warmup_steps, total_steps, min_ratio):
    """Linear warm-up to 1, then cosine from 1 to min_ratio; stepped once per optimiser step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------------------------------------------
# State of a run: RNGs, running sums, checkpoints

def rng_state():
    """This process's RNG states, as tensors / tuples so that torch.load(weights_only=True) reads them back."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "python": random.getstate()}


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def all_rng_states():
    """RNG states of every rank (rank 0 writes the checkpoint, each rank restores its own)."""
    rank, world_size = rank_and_world()
    if world_size == 1:
        return [rng_state()]
    states = [None] * world_size
    dist.all_gather_object(states, rng_state())
    return states


class RunningSums:
    """Sums over the epoch in progress and over all ranks: loss (x samples), samples, replaced videos.

    Each step adds to this rank's `pending` tensor on the device (NCCL reduces only device tensors, and the loop
    never waits for the GPU just to log); `reduce()`, a collective, folds every rank's pending sums into the
    totals before a checkpoint or the epoch's log record."""

    def __init__(self, device, loss=0.0, samples=0, replaced=0):
        self.loss, self.samples, self.replaced = loss, samples, replaced
        self.pending = torch.zeros(3, dtype=torch.float64, device=device)

    def add(self, loss, samples, replaced):
        self.pending[0] += loss.detach().double() * samples
        self.pending[1] += samples
        self.pending[2] += replaced

    def reduce(self):
        if rank_and_world()[1] > 1:
            dist.all_reduce(self.pending)
        loss, samples, replaced = self.pending.tolist()
        self.loss, self.samples, self.replaced = self.loss + loss, self.samples + samples, self.replaced + replaced
        self.pending.zero_()

    def state(self):
        return {"loss": self.loss, "samples": self.samples, "replaced": self.replaced}


def save_run(path, run, epoch, step, sums):
    """Checkpoint the run at (epoch completed, optimiser steps into the next); a collective (every rank calls it,
    rank 0 writes)."""
    rngs = all_rng_states()
    if rank_and_world()[0] == 0:
        runtime.save_checkpoint({
            "model": run["model"].state_dict(), "optimizer": run["optimizer"].state_dict(),
            "scaler": run["scaler"].state_dict(), "scheduler": run["scheduler"].state_dict(),
            "epoch": epoch, "step": step, "rng": rngs, "args": vars(run["args"]),
            "class_names": list(run["model"].class_names), "best_top1": run["best_top1"], "log": run["log"],
            "sums": sums.state(), "semantic_units": units_to_state(run["model"].semantic_units)}, path)


# ----------------------------------------------------------------------------------------------------------------
# Training

def train_epoch(run, epoch, start_step, sums, device):
    """One pass over the training set from optimiser step `start_step`: forward, backward, gradient accumulation,
    clipping, AdamW and schedule steps; every --save-every steps a mid-epoch checkpoint. Adds into `sums`; returns
    the learning rate of the CLIP weights in the last step, as the optimiser ran it."""
    args, model, ddp_model = run["args"], run["model"], run["ddp_model"]
    optimizer, scheduler, scaler = run["optimizer"], run["scheduler"], run["scaler"]
    rank, world_size = rank_and_world()
    accumulation, steps_per_epoch = args.accumulation, run["steps_per_epoch"]
    train_set = run["train_set"]
    train_set.set_epoch(epoch)
    indices = epoch_indices(len(train_set), args.seed, epoch, rank, world_size, args.batch_size)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.per_gpu_batch, sampler=indices[start_step * accumulation * args.per_gpu_batch:],
        num_workers=args.workers, pin_memory=device.type == "cuda")
    model.train()
    show = rank == 0 and not args.no_progress
    bar = tqdm(total=steps_per_epoch, initial=start_step, desc=f"epoch {epoch + 1}/{args.epochs}",
               disable=not show, dynamic_ncols=True)
    step, lr = start_step, None
    for micro, (videos, labels, replaced) in enumerate(loader):
        videos = videos.to(device, non_blocking=True)                        # (b, T, 3, S, S)
        labels = labels.to(device, non_blocking=True)                        # (b,)
        last_micro = (micro + 1) % accumulation == 0
        sync = contextlib.nullcontext() if last_micro or world_size == 1 else ddp_model.no_sync()
        with sync:
            with runtime.autocast(device, args.amp):
                logits = ddp_model(videos)                                   # (b, C)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=args.label_smoothing)
            scaler.scale(loss / accumulation).backward()
        sums.add(loss, len(labels), int(replaced.sum()))
        if not last_micro:
            continue
        if args.clip_grad > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        lr = scheduler.get_last_lr()[0]   # the lr this step ran with (group 0: the CLIP weights); then the next one
        scheduler.step()
        step += 1
        bar.update(1)
        if show and (step % 10 == 0 or step == steps_per_epoch):
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        if args.save_every and step % args.save_every == 0 and step < steps_per_epoch:
            sums.reduce()
            save_run(Path(args.out) / "last.pt", run, epoch, step, sums)
    bar.close()
    sums.reduce()
    return lr


def setup_run(args, device):
    """Data, model, optimiser, schedule and scaler of a run, as a dict; restored from --resume when given.
    Returns (run, start epoch, start step, running sums)."""
    rank, world_size = rank_and_world()
    args.processes = world_size
    args.accumulation = args.batch_size // (args.per_gpu_batch * world_size)  # both recorded in args.json
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    with runtime.rank_zero_first(), one_line_errors():  # rank 0 generates synthetic data and fills the text cache
        dataset_options = dict(num_frames=args.frames, size=args.size, seed=args.seed, strict=args.strict,
                               fold=1 if args.shots else args.split)
        train_set = data.build_dataset(args.data, args.data_root, "train", train=True, shots=args.shots,
                                       **dataset_options)
        val_set = data.build_dataset(args.data, args.data_root, "val", train=False, **dataset_options)
        model = build_model(args, train_set.class_names).to(device)
    steps_per_epoch = len(train_set) // args.batch_size
    if steps_per_epoch == 0:
        fail(f"--batch-size {args.batch_size} is larger than the training set ({len(train_set)} videos)")
    optimizer = torch.optim.AdamW(model.param_groups(args.lr, args.new_module_lr_mult, args.weight_decay),
                                  betas=(0.9, 0.98), eps=1e-8)
    warmup_steps, total_steps = round(args.warmup_epochs * steps_per_epoch), args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, args.min_lr_ratio))
    ddp_model = model
    if world_size > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False)  # the buffers (text embeddings) are equal on all ranks and never change
    run = dict(args=args, model=model, ddp_model=ddp_model, optimizer=optimizer, scheduler=scheduler,
               scaler=torch.amp.GradScaler(device.type, enabled=args.amp == "fp16"), train_set=train_set,
               val_set=val_set, steps_per_epoch=steps_per_epoch, best_top1=-1.0, log=[])
    if not args.resume:
        return run, 0, 0, RunningSums(device)
    ckpt = runtime.load_checkpoint(args.resume)
    with one_line_errors():
        load_model_state(model, ckpt["model"], args.resume)
    for key in ("optimizer", "scaler", "scheduler"):
        run[key].load_state_dict(ckpt[key])
    run["best_top1"], run["log"] = ckpt["best_top1"], ckpt["log"]
    rngs = ckpt["rng"]
    set_rng_state(rngs[rank] if len(rngs) == world_size else rngs[0])
    changed = {k: (v, getattr(args, k)) for k, v in ckpt["args"].items()
               if k in ("epochs", "batch_size", "lr", "seed", "data", "frames", "size") and getattr(args, k) != v}
    if rank == 0 and changed:
        print("note: resuming with changed options: "
              + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()), file=sys.stderr)
    return run, ckpt["epoch"], ckpt["step"], RunningSums(device, **ckpt["sums"])


def train_worker(args, device):
    """One process of a run: set up (or resume), then per epoch train, evaluate, log and checkpoint. Returns the
    log records."""
    run, start_epoch, start_step, sums = setup_run(args, device)
    is_main = rank_and_world()[0] == 0
    out = Path(args.out)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        runtime.write_text_atomic(out / "args.json", json.dumps(vars(args), indent=2) + "\n")
        # The log is rebuilt from the checkpoint, so epochs that ran after it (and were lost) are not repeated.
        runtime.write_text_atomic(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in run["log"]))
    for epoch in range(start_epoch, min(args.epochs, args.stop_after or args.epochs)):
        epoch_start = time.time()
        lr = train_epoch(run, epoch, start_step, sums, device)
        probs, val_labels, val_replaced = runtime.predict(run["model"], run["val_set"], device, args.amp,
                                                          args.per_gpu_batch, args.workers,
                                                          progress=is_main and not args.no_progress)
        metrics = runtime.accuracy(probs, val_labels)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": sums.loss / max(1, sums.samples),
                  "val_top1": metrics["top1"], "val_top5": metrics["top5"], "val_mean_class": metrics["mean_class"],
                  "replaced": int(sums.replaced) + val_replaced, "seconds": round(time.time() - epoch_start, 2)}
        run["log"].append(record)
        is_best = metrics["top1"] > run["best_top1"]
        run["best_top1"] = max(run["best_top1"], metrics["top1"])
        sums, start_step = RunningSums(device), 0
        save_run(out / "last.pt", run, epoch + 1, 0, sums)
        if is_main:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if is_best:
                with runtime.atomic_write(out / "best.pt") as best, open(out / "last.pt", "rb") as last:
                    shutil.copyfileobj(last, best)
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {record['train_loss']:.4f}, "
                  f"val top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f} ({record['seconds']:.0f} s)",
                  flush=True)
    if is_main and run["log"]:
        print(f"val top-1 {run['log'][-1]['val_top1']:.4f} (best {run['best_top1']:.4f}); checkpoints in {out}")
    return run["log"]


def main(argv=None):
    """Parse argv (default sys.argv[1:]), train, return the log records (one dict per epoch)."""
    args = parse_args(argv)
    runtime.launch(train_worker, args)
    log_path = Path(args.out) / "log.jsonl"
    return [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []


if __name__ == "__main__":
    main()
