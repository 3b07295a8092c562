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
import argparse
import contextlib
import json
import math
import os
import random
import shlex
import signal
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


# What a resumed run's command line may change: where files are and how this session runs. Everything else
# (optimisation, data, model) comes from the checkpoint, unless --allow-changes.
RESUME_SAFE = ("epochs", "workers", "no_progress", "save_every", "save_minutes", "data_root", "clip", "cache_dir")
RESUME_PLACEMENT = ("gpus", "device", "amp", "per_gpu_batch")   # allowed; the run goes on, not bit-exact
SESSION = ("resume", "allow_changes", "overwrite", "stop_after", "new_changes")   # not options of the run


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
                   help="mixed precision (default: on CUDA bf16 where the GPU has it, else fp16; on the CPU off); "
                   "fp16 uses a GradScaler")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, sampling and augmentation")
    g = p.add_argument_group("run")
    g.add_argument("--device", default=None, choices=("cuda", "cpu"), help="default: cuda when present")
    g.add_argument("--gpus", type=int, default=1,
                   help="processes to spawn on this machine (GPUs; CPU processes with --device cpu); "
                   "ignored under torchrun")
    g.add_argument("--out", default=None,
                   help="output folder (default: runs/<data>; when resuming, the checkpoint's folder)")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --out that holds one (its checkpoints are replaced)")
    g.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                   help="continue a run: from CHECKPOINT (e.g. runs/k400/last.pt), or with no value from "
                   "<--out>/last.pt. The run keeps its own options; the command line may change only "
                   + ", ".join("--" + f.replace("_", "-") for f in RESUME_SAFE + RESUME_PLACEMENT)
                   + " (default: start afresh)")
    g.add_argument("--allow-changes", action="store_true",
                   help="with --resume: also accept changes of the optimisation, data or model options (each is "
                   "recorded in args.json and the log)")
    g.add_argument("--save-every", type=int, default=0,
                   help="also checkpoint every N optimiser steps inside an epoch (0: not by steps)")
    g.add_argument("--save-minutes", type=float, default=30.0,
                   help="also checkpoint inside an epoch when this many minutes of training have passed since the "
                   "last checkpoint (0: not by time)")
    g.add_argument("--eval-every", type=int, default=None,
                   help="evaluate on the val split every N epochs and after the last (0: after the last only); "
                   + per_dataset + defaults_help("eval_every")
                   + " (UCF-101 / HMDB-51's val split is their test split: it never selects a model)")
    g.add_argument("--stop-after", type=int, default=None,
                   help="end this session after epoch N (the schedule still spans --epochs); continue with --resume "
                   "(default: run to --epochs)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p


def given_flags(argv):
    """The flags the command line names (dest names), told apart from defaults by parsing with none."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.resume is not None:
        args = resumed_options(args, given_flags(argv))
    else:
        if args.allow_changes:
            fail("--allow-changes goes with --resume")
        for key, value in DATASET_DEFAULTS[args.data].items():
            if key != "views" and getattr(args, key) is None:
                setattr(args, key, value)
        if args.data_root is None:
            args.data_root = str(Path("data") / args.data)
        if args.out is None:
            args.out = str(Path("runs") / args.data)
        args.new_changes = []
    check_options(args)
    return args


def resumed_options(args, given):
    """The options of the run a checkpoint belongs to, with the changes this command line may make."""
    path = Path(args.resume) if args.resume else Path(args.out or Path("runs") / args.data) / "last.pt"
    if not path.is_file():
        fail(f"--resume {path}: no such file")
    ckpt = runtime.load_checkpoint(path, mmap=True)
    if "optimizer" not in ckpt:
        fail(f"--resume {path}: holds no optimiser state (best.pt is for evaluation); resume from last.pt")
    options = dict(ckpt["args"], out=str(path.parent))   # the run's folder is where its checkpoint is now
    if "out" in given and Path(args.out).resolve() != path.parent.resolve():
        fail(f"--out {args.out}: a resumed run writes into its checkpoint's folder {path.parent}")
    changes = []
    for flag in sorted(given - set(SESSION) - {"out"}):
        old, new = options.get(flag), getattr(args, flag)
        if new == old:
            continue
        if flag not in RESUME_SAFE + RESUME_PLACEMENT and not args.allow_changes:
            fail(f"--{flag.replace('_', '-')} {new}: the run in {path.parent} has {old}; a resumed run keeps its "
                 "options (add --allow-changes to change it anyway, or start a new run with another --out)")
        if flag == "epochs" and new < ckpt["epoch"]:
            fail(f"--epochs {new}: the run in {path.parent} has already completed {ckpt['epoch']} epochs")
        if flag in RESUME_PLACEMENT:
            print(f"note: --{flag.replace('_', '-')} {old} -> {new}: the run continues, but not bit for bit as "
                  "it would have", file=sys.stderr)
        options[flag] = new
        changes.append({"epoch": ckpt["epoch"], "step": ckpt["step"], "flag": flag, "from": old, "to": new})
    if changes:
        options["changes"] = options.get("changes", []) + changes
    session = {key: getattr(args, key) for key in SESSION if key != "new_changes"}
    return argparse.Namespace(**options, **dict(session, resume=str(path), new_changes=changes))


def check_options(args):
    """Every value the run needs, checked before anything is built: one line and exit 2 for a bad one."""
    for flag, value, low in (("frames", args.frames, 1), ("size", args.size, 1), ("epochs", args.epochs, 1),
                             ("batch_size", args.batch_size, 1), ("per_gpu_batch", args.per_gpu_batch, 1),
                             ("workers", args.workers, 0), ("save_every", args.save_every, 0),
                             ("save_minutes", args.save_minutes, 0), ("eval_every", args.eval_every, 0),
                             ("stop_after", args.stop_after, 0), ("shots", args.shots, 1),
                             ("mra_layers", args.mra_layers, 0), ("decoder_layers", args.decoder_layers, 0),
                             ("su_topk", args.su_topk, 0), ("warmup_epochs", args.warmup_epochs, 0),
                             ("clip_grad", args.clip_grad, 0), ("label_smoothing", args.label_smoothing, 0),
                             ("min_lr_ratio", args.min_lr_ratio, 0)):
        if value is not None and value < low:
            fail(f"--{flag.replace('_', '-')} {value}: must be at least {low}")
    if not args.lr > 0:
        fail(f"--lr {args.lr}: must be positive")
    if args.warmup_epochs > args.epochs:
        fail(f"--warmup-epochs {args.warmup_epochs}: longer than the run (--epochs {args.epochs})")
    if args.label_smoothing >= 1 or args.min_lr_ratio > 1:
        fail(f"--label-smoothing {args.label_smoothing} must be below 1 and --min-lr-ratio {args.min_lr_ratio} "
             "at most 1")
    with one_line_errors():
        parse_grids(args.mra_grids)
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
    if args.descriptions and not Path(args.descriptions).is_file():
        fail(f"--descriptions {args.descriptions}: no such file")
    if args.clip != "tiny" and args.clip not in clip_vit.MODEL_URLS and not Path(args.clip).is_file():
        fail(f"--clip {args.clip}: no such file (or give one of {', '.join(clip_vit.MODEL_URLS)}, or 'tiny')")
    runtime.check_out(args.out, fresh=args.resume is None, overwrite=args.overwrite)


# ----------------------------------------------------------------------------------------------------------------
# Sampling and schedule

def epoch_indices(num_samples, seed, epoch, rank, world_size, global_batch):
    """This process's training samples for one epoch, in order.

    The permutation depends only on (seed, epoch). Every sample is visited: when the global batch does not divide
    the set, the last batch is filled up with the first samples of the permutation (a few 2-shot videos left out
    of every epoch would be a large part of a few-shot set). Rank r takes perm[r::world], so its k-th micro-batch
    of b samples lies inside the k-th block of b * world: N processes with batch b see, step by step, exactly the
    samples one process with batch N*b sees (DDP averages the gradients, so the parameters agree), and the same
    holds across gradient-accumulation steps."""
    perm = np.random.default_rng([seed, epoch]).permutation(num_samples)
    steps = math.ceil(num_samples / global_batch)
    perm = np.concatenate([perm, perm[: steps * global_batch - num_samples]])
    return perm[rank::world_size].tolist()


def lr_factor(step, warmup_steps, total_steps, min_ratio):
    """Linear warm-up to 1, then cosine from 1 to min_ratio; stepped once per optimiser step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------------------------------------------
# State of a run: running sums, checkpoints

class RunningSums:
    """Sums over the epoch in progress and over all ranks: loss (x samples), samples, replaced videos, and the
    optimiser steps skipped for a non-finite loss.

    Each micro-batch adds to this rank's `pending` tensor on the device (NCCL reduces only device tensors, and the
    loop does not wait for the GPU just to log); `reduce()`, a collective, folds every rank's pending sums into the
    totals before a checkpoint or the epoch's log record."""

    def __init__(self, device, loss=0.0, samples=0, replaced=0, skipped_steps=0):
        self.loss, self.samples, self.replaced, self.skipped_steps = loss, samples, replaced, skipped_steps
        self.pending = torch.zeros(3, dtype=torch.float64, device=device)

    def add(self, loss, samples, replaced, finite):
        """A non-finite loss is left out of the sums (its step is skipped)."""
        self.pending[0] += torch.where(finite, loss.detach().double() * samples, 0.0)
        self.pending[1] += finite.double() * samples
        self.pending[2] += replaced

    def reduce(self):
        if rank_and_world()[1] > 1:
            dist.all_reduce(self.pending)
        loss, samples, replaced = self.pending.tolist()
        self.loss, self.samples, self.replaced = self.loss + loss, self.samples + samples, self.replaced + replaced
        self.pending.zero_()

    def state(self):
        return {"loss": self.loss, "samples": self.samples, "replaced": self.replaced,
                "skipped_steps": self.skipped_steps}


def saved_options(args):
    """The run's options as args.json and checkpoints keep them: without this session's controls."""
    return {key: value for key, value in vars(args).items() if key not in SESSION}


def save_run(path, run, epoch, step, sums):
    """Checkpoint the run at (epoch completed, optimiser steps into the next); a collective (every rank calls it,
    rank 0 writes)."""
    rngs = runtime.all_rng_states()
    if rank_and_world()[0] == 0:
        runtime.save_checkpoint({
            "model": run["model"].state_dict(), "optimizer": run["optimizer"].state_dict(),
            "scaler": run["scaler"].state_dict(), "scheduler": run["scheduler"].state_dict(),
            "epoch": epoch, "step": step, "rng": rngs, "args": saved_options(run["args"]),
            "class_names": list(run["model"].class_names), "best_top1": run["best_top1"], "log": run["log"],
            "sums": sums.state(), "semantic_units": units_to_state(run["model"].semantic_units)}, path)
    run["saved_at"] = time.time()


def save_best(path, run, record):
    """What evaluation needs: weights, options, class names, SU bank, epoch and metrics (no optimiser state).
    Tensors that fp16 holds exactly (the frozen text tower of OpenAI's fp16 weights, zeros) are stored in fp16;
    trained fp32 weights stay fp32, so eval.py gets exactly the model that was scored."""
    def compact(tensor):
        half = tensor.half() if tensor.is_floating_point() else tensor
        return half if tensor.is_floating_point() and torch.equal(half.float(), tensor.float()) else tensor

    state = {key: compact(tensor) for key, tensor in run["model"].state_dict().items()}
    runtime.save_checkpoint({"model": state, "args": saved_options(run["args"]),
                             "class_names": list(run["model"].class_names), "epoch": record["epoch"],
                             "metrics": record, "semantic_units": units_to_state(run["model"].semantic_units)},
                            path)


def data_error_line(error):
    """The one-line message of an unusable-data error (an unreadable video under --strict, too many unreadable in
    a row), also when a DataLoader worker raised it and torch re-raised it as a RuntimeError; else None."""
    text = str(error).strip()
    if isinstance(error, data.VideoReadError) or "unreadable videos in a row" in text:
        return text.splitlines()[-1]
    if isinstance(error, RuntimeError) and "VideoReadError" in text:
        return text.splitlines()[-1].split("VideoReadError: ", 1)[-1]
    return None


# ----------------------------------------------------------------------------------------------------------------
# Training

MAX_SKIPPED_IN_A_ROW = 10   # optimiser steps with a non-finite loss in a row before the run is stopped


class Stopped(Exception):
    """SIGINT or SIGTERM: the run was saved and stops with exit status 128 + signal."""


def step_controls(run, step_finite):
    """What every rank must agree on after an optimiser step, in one all-reduce (max): stop (a signal reached
    some rank), checkpoint now (--save-minutes elapsed on rank 0), and whether any rank's loss was non-finite.
    The .tolist() waits for the step to finish on the GPU: one synchronisation per optimiser step."""
    args = run["args"]
    due = args.save_minutes > 0 and time.time() - run["saved_at"] >= 60 * args.save_minutes
    controls = torch.stack([torch.tensor(float(runtime.stop_signal()), device=step_finite.device),
                            torch.tensor(float(due and rank_and_world()[0] == 0), device=step_finite.device),
                            (~step_finite).double()])
    if rank_and_world()[1] > 1:
        dist.all_reduce(controls, op=dist.ReduceOp.MAX)
    stop, due, nonfinite = controls.tolist()
    return int(stop), bool(due), bool(nonfinite)


def train_epoch(run, epoch, start_step, sums, device):
    """One pass over the training set from optimiser step `start_step`: forward, backward, gradient accumulation,
    clipping, AdamW and schedule steps; mid-epoch checkpoints every --save-every steps and --save-minutes minutes;
    a stop signal ends it after the current optimiser step (Stopped). Adds into `sums`; returns the learning rate
    of the CLIP weights in the last step, as the optimiser ran it."""
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
    step_finite = torch.ones((), dtype=torch.bool, device=device)
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
        finite = torch.isfinite(loss.detach())
        step_finite &= finite
        sums.add(loss, len(labels), int(replaced.sum()), finite)
        if not last_micro:
            continue
        stop, due, nonfinite = step_controls(run, step_finite)
        if nonfinite:   # skip the update (every rank: the flag was reduced), keep the schedule in step
            sums.skipped_steps += 1
            run["skipped_in_a_row"] += 1
            if run["skipped_in_a_row"] >= MAX_SKIPPED_IN_A_ROW:
                fail(f"{run['skipped_in_a_row']} optimiser steps in a row had a non-finite loss (epoch {epoch + 1}, "
                     f"step {step + 1}); lower --lr or try --amp off")
        else:
            run["skipped_in_a_row"] = 0
            if args.clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)
        step_finite.fill_(True)
        lr = scheduler.get_last_lr()[0]   # the lr this step ran with (group 0: the CLIP weights); then the next one
        scheduler.step()
        step += 1
        bar.update(1)
        if show and (step % 10 == 0 or step == steps_per_epoch):
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        by_steps = args.save_every and step % args.save_every == 0
        if (stop or due or by_steps) and step < steps_per_epoch:
            sums.reduce()
            save_run(Path(args.out) / "last.pt", run, epoch, step, sums)
            if stop:
                bar.close()
                raise Stopped(stop)
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
    with runtime.rank_zero_first(), one_line_errors():  # per machine: synthetic data, CLIP download, text cache
        dataset_options = dict(num_frames=args.frames, size=args.size, seed=args.seed, strict=args.strict,
                               fold=1 if args.shots else args.split)
        train_set = data.build_dataset(args.data, args.data_root, "train", train=True, shots=args.shots,
                                       **dataset_options)
        val_set = data.build_dataset(args.data, args.data_root, "val", train=False, **dataset_options)
        if rank == 0:
            check_videos(train_set, "train", args.strict)
            check_videos(val_set, "val", args.strict)
        model = build_model(args, train_set.class_names).to(device)
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
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
               val_set=val_set, steps_per_epoch=steps_per_epoch, best_top1=-1.0, log=[], saved_at=time.time(),
               skipped_in_a_row=0)
    if not args.resume:
        return run, 0, 0, RunningSums(device)
    ckpt = runtime.load_checkpoint(args.resume)
    with one_line_errors():
        load_model_state(model, ckpt["model"], args.resume)
    fresh_groups = [dict(group) for group in optimizer.param_groups]
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    # The groups' hyper-parameters come from this run's options (the same values unless --allow-changes changed
    # --lr, --new-module-lr-mult or --weight-decay), the moments and the step count from the checkpoint.
    for group, fresh in zip(optimizer.param_groups, fresh_groups):
        group["initial_lr"], group["weight_decay"] = fresh["initial_lr"], fresh["weight_decay"]
    scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
    for group, base_lr, lr_lambda in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base_lr * lr_lambda(scheduler.last_epoch)
    if ckpt["scaler"] and run["scaler"].is_enabled():   # a bf16 / fp32 run resumed with fp16 starts a new scaler
        run["scaler"].load_state_dict(ckpt["scaler"])
    run["best_top1"], run["log"] = ckpt["best_top1"], ckpt["log"]
    rngs = ckpt["rng"]
    runtime.set_rng_state(rngs[rank] if len(rngs) == world_size else rngs[0])
    return run, ckpt["epoch"], ckpt["step"], RunningSums(device, **ckpt["sums"])


def check_videos(dataset, split, strict):
    """Before the first step: every listed video exists (a missing val folder shows here, not after an epoch)."""
    missing = [path for path, _ in dataset.samples if not os.path.isfile(path)]
    if not missing:
        return
    total = len(dataset.samples)
    message = f"{len(missing)} of {total} {split} videos listed are missing (first: {', '.join(missing[:3])})"
    if len(missing) == total:
        fail(f"{message}; check --data-root")
    if strict:
        fail(f"{message}; --strict stops here")
    print(f"warning: {message}; each is replaced by another sample when drawn", file=sys.stderr)


def evaluate(run, device):
    """val top-1, top-5, mean-class and the number of replaced val videos."""
    args = run["args"]
    probs, labels, replaced = runtime.predict(run["model"], run["val_set"], device, args.amp, args.per_gpu_batch,
                                              args.workers, progress=rank_and_world()[0] == 0 and not args.no_progress)
    return dict(runtime.accuracy(probs, labels), replaced=replaced)


def train_worker(args, device):
    """One process of a run: set up (or resume), then per epoch train, evaluate, log and checkpoint. Returns the
    log records."""
    runtime.catch_stop_signals()
    run, start_epoch, start_step, sums = setup_run(args, device)
    is_main = rank_and_world()[0] == 0
    out = Path(args.out)
    if is_main:
        runtime.write_text_atomic(out / "args.json", json.dumps(saved_options(args), indent=2) + "\n")
        # The log is rebuilt from the checkpoint, so epochs that ran after it (and were lost) are not repeated.
        runtime.write_text_atomic(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in run["log"]))
    # UCF-101 / HMDB-51 "val" is the test split: looked at (logged) but never used to pick a checkpoint
    select = args.data not in runtime.TEST_SPLIT_IS_VAL
    end = args.epochs if args.stop_after is None else min(args.epochs, args.stop_after)
    try:
        for epoch in range(start_epoch, end):
            epoch_start = time.time()
            lr = train_epoch(run, epoch, start_step, sums, device)
            record = {"epoch": epoch + 1, "lr": lr, "train_loss": sums.loss / max(1, sums.samples),
                      "skipped_steps": sums.skipped_steps, "replaced": int(sums.replaced)}
            if (args.eval_every and (epoch + 1) % args.eval_every == 0) or epoch + 1 == args.epochs:
                metrics = evaluate(run, device)
                record.update(val_top1=metrics["top1"], val_top5=metrics["top5"],
                              val_mean_class=metrics["mean_class"], replaced=record["replaced"] + metrics["replaced"])
            record["seconds"] = round(time.time() - epoch_start, 2)
            if args.new_changes and epoch == start_epoch:
                record["changes"] = args.new_changes
            run["log"].append(record)
            is_best = select and record.get("val_top1", -1.0) > run["best_top1"]
            run["best_top1"] = max(run["best_top1"], record.get("val_top1", -1.0)) if select else -1.0
            sums, start_step = RunningSums(device), 0
            save_run(out / "last.pt", run, epoch + 1, 0, sums)
            if is_main:
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                if is_best:
                    save_best(out / "best.pt", run, record)
                scores = (f", val top-1 {record['val_top1']:.4f}, top-5 {record['val_top5']:.4f}"
                          if "val_top1" in record else "")
                print(f"epoch {epoch + 1}/{args.epochs}: train loss {record['train_loss']:.4f}{scores} "
                      f"({record['seconds']:.0f} s)", flush=True)
            stop, _, _ = step_controls(run, torch.ones((), dtype=torch.bool, device=device))
            if stop:
                raise Stopped(stop)
    except Stopped as stopped:
        signum = stopped.args[0]
        if is_main:
            print(f"stopped by {signal.Signals(signum).name}; {out / 'last.pt'} holds the run. Continue it with:\n"
                  f"  python train.py --resume {shlex.quote(str(out / 'last.pt'))}", file=sys.stderr, flush=True)
        if rank_and_world()[1] > 1:
            dist.barrier()   # rank 0 has written last.pt: now every rank may leave
        raise SystemExit(128 + signum) from None
    except Exception as error:   # an unusable video under --strict, or a data root that yields none
        line = data_error_line(error)
        if line is None:
            raise
        fail(line)
    if is_main and run["log"]:
        last = run["log"][-1]
        which = "best.pt: the best val top-1" if select else "last.pt: the last epoch (no selection on test)"
        if "val_top1" in last:
            print(f"val top-1 {last['val_top1']:.4f} after epoch {last['epoch']}"
                  + (f" (best {run['best_top1']:.4f})" if select else "") + f"; checkpoints in {out}; evaluate "
                  f"{which}")
    return run["log"]


def main(argv=None):
    """Parse argv (default sys.argv[1:]), train, return the log records (one dict per epoch)."""
    args = parse_args(argv)
    runtime.launch(train_worker, args)
    log_path = Path(args.out) / "log.jsonl"
    return [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []


if __name__ == "__main__":
    main()
