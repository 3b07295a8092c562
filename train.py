"""Training entry point: fine-tune ASU (CLIP + MRA + SU selection + cross-modal decoder) on a video dataset.

In:  a dataset (`--data`, layouts in DESIGN.md) and CLIP weights (`--clip`); the loader gives (B, T, 3, S, S)
     uint8 videos, normalised on the device (runtime.model_input), and (B,) class indices. `python train.py`
     alone is the embedded default (synthetic data, tiny CLIP, CPU); `--classes base` trains on the base half of the
     synthetic world's classes, `--shots K` on K clips a class (DESIGN.md, "Protocols on the synthetic world").
Out: in `--out`: args.json (the options), log.jsonl (one JSON object per epoch: epoch, lr, train_loss, val_top1,
     ...), last.pt (the whole state of the run, keys in save_run), best.pt (what evaluation needs, save_best) and,
     with --test-views (the synthetic default), test.json: the val split scored with multi-view tests at the end.

One code path serves one CPU process, `--gpus N` processes spawned here and `torchrun` (runtime.launch); the
global `--batch-size` makes the optimisation independent of how many ran it. Resume is exact: an epoch's samples
depend only on (seed, epoch), their augmentation on (seed, epoch, index), and last.pt holds the rest (weights,
optimiser, scaler, schedule, RNG states, position in the epoch, log): `--resume` ends like an uninterrupted run.

Reading order: the command line (build_parser, parse_args, check_options), epoch_indices (the schedule is
runtime.lr_factor), the run's state (RunningSums, save_run), then train_worker: setup_run, and per epoch run_epoch,
train_epoch, optimizer_step.
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
from tqdm import tqdm

import clip_vit
import data
import runtime
import synthetic
from decoder import QUERIES, TEMPORAL
from model import (CLIP_SHAPES, MAX_FRAMES, build_model, load_checkpoint, load_model_state, save_checkpoint,
                   training_memory_gib, units_to_state)
from mra import parse_grids
from runtime import DATASET_DEFAULTS, DATASETS, defaults_help, fail, lr_factor, one_line_errors, rank_and_world

# What a resumed run's command line may change (where files are, how this session runs), unless --allow-changes
RESUME_SAFE = ("epochs", "workers", "no_progress", "save_every", "save_minutes", "data_root", "clip", "cache_dir",
               "test_views")
RESUME_PLACEMENT = ("gpus", "device", "amp", "per_gpu_batch")   # allowed; the run goes on, not bit-exact
PROTOCOL_DEFAULTS = dict(classes="all", fold=1, split_kind="compositional")   # of runs from before these options
SESSION = ("resume", "allow_changes", "overwrite", "stop_after", "new_changes")   # not options of the run
# what save_run writes besides model, args and class_names, all of which restore_run reads
RUN_STATE = ("optimizer", "scheduler", "scaler", "epoch", "step", "rng", "best_top1", "log", "sums")
MAX_SKIPPED_IN_A_ROW = 10   # optimiser steps with a non-finite loss in a row before the run is stopped
TINY_CLIPS = ("tiny-pretrained", "tiny")   # the miniature CLIP of pretrain.py, and its architecture at random


def build_parser():
    p = runtime.argument_parser("train.py", "Train ASU (video action recognition with attentive semantic units).")

    def per_dataset(key, what):   # flags left unset (None) take their value from runtime.DATASET_DEFAULTS
        return f"{what}; default per dataset: {defaults_help(key)}"
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", choices=DATASETS, help='dataset layout (DESIGN.md, "Data layouts")')
    g.add_argument("--data-root", help="dataset folder (default: data/<data>)")
    g.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split of UCF-101 / HMDB-51")
    g.add_argument("--shots", type=int, help="few-shot: K training videos per class from split-1 train (default: all)")
    g.add_argument("--classes", default="all", choices=("all", "base", "novel"),
                   help="synthetic base-to-novel protocol: train on the base (or novel) half of the motion x scene "
                        "pairs of the synthetic world (--data-root then defaults to " + synthetic.WORLD_ROOT + "); "
                        "all (the default): every class of --data-root")
    g.add_argument("--fold", type=int, default=1, choices=(1, 2),
                   help="with --classes base/novel: which half is base (2: the halves swapped)")
    g.add_argument("--split-kind", default="compositional", choices=synthetic.SPLIT_KINDS,
                   help="with --classes base/novel: compositional (every motion and scene in >= 2 base classes, "
                        "novel pairs never trained on) or random (the control)")
    g.add_argument("--frames", type=int, help=per_dataset("frames", "frames per clip"))
    g.add_argument("--size", type=int, help=per_dataset("size", "input size in pixels"))
    g.add_argument("--workers", type=int, help="loader workers per process (default on CUDA: the cores this process "
                   "may use / GPUs in use on the machine - 1; on the CPU: those cores / 4; worked out again on resume)")
    g.add_argument("--strict", action="store_true", help="stop at an unreadable video instead of replacing it")
    g = p.add_argument_group("model")
    g.add_argument("--clip", help=per_dataset("clip", "CLIP weights: name (ViT-B/16), file, 'tiny-pretrained' (the "
                   "miniature CLIP pretrained on the synthetic world by pretrain.py, built into .cache/clip on first "
                   "use) or 'tiny' (its architecture, random init)"))
    g.add_argument("--descriptions", help="JSON of class descriptions for SU extraction (default: none)")
    g.add_argument("--mra-grids", default="2x2,3x3", help="MRA region grids, comma-separated RxC")
    g.add_argument("--mra-layers", type=int, default=2, help="last ViT blocks that carry region tokens (0: no MRA)")
    g.add_argument("--su-topk", type=int, default=8, help="SUs kept per visual token before the softmax (0: all)")
    g.add_argument("--decoder-layers", type=int, default=2, help="cross-modal decoder layers (0: no decoder)")
    g.add_argument("--decoder-memory", default="all", choices=("all", "regions"), help="what the decoder attends to")
    g.add_argument("--temporal", default="halves", choices=TEMPORAL,
                   help="the decoder's temporal path: halves = a linear map of (mean of the second half's frame "
                        "features - the first half's), added to its readout; none = without it")
    g.add_argument("--queries", default="units", choices=QUERIES,
                   help="decoder queries: units = attentive SU selection (ASU); learned = learned queries, "
                        "the ablation without SUs")
    g.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, help="gradient checkpointing of the ViT "
                   "blocks: less memory, about 30%% more time (default: on where model.training_memory_gib estimates "
                   "that --per-gpu-batch would not fit the GPU without it; else off)")
    g.add_argument("--cache-dir", default=str(Path(__file__).resolve().parent / ".cache" / "text"),
                   help="cache of class and SU text embeddings")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help=per_dataset("epochs", "length of the run and of its schedule"))
    g.add_argument("--warmup-epochs", type=float, help=per_dataset("warmup_epochs", "linear warm-up, then cosine"))
    g.add_argument("--min-lr-ratio", type=float, default=0.01, help="the cosine ends at lr x this")
    g.add_argument("--batch-size", type=int, help=per_dataset("batch_size", "global batch (one step, all GPUs)"))
    g.add_argument("--per-gpu-batch", type=int, help=per_dataset("per_gpu_batch", "batch of one process per forward "
                   "pass, at most batch-size / processes (gradients accumulate up to --batch-size)"))
    g.add_argument("--lr", type=float, help=per_dataset("lr", "learning rate of the CLIP weights"))
    g.add_argument("--new-module-lr-mult", type=float,
                   help=per_dataset("new_module_lr_mult", "lr multiplier of the new modules (MRA, selection, decoder)"))
    g.add_argument("--weight-decay", type=float, default=0.001, help="AdamW weight decay (not on 1-D parameters)")
    g.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy")
    g.add_argument("--clip-grad", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    g.add_argument("--amp", choices=("bf16", "fp16", "off"), help="mixed precision, fp16 with a GradScaler "
                   "(default: on CUDA bf16 where the GPU has it, else fp16; on the CPU off)")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, sampling and augmentation")
    g = p.add_argument_group("run")
    g.add_argument("--device", choices=("cuda", "cpu"), help="where to train (default: cuda when present)")
    g.add_argument("--gpus", type=int, default=1, help="processes to spawn on this machine (GPUs; CPU processes "
                   "with --device cpu); ignored under torchrun")
    g.add_argument("--out", help="output folder (default: runs/<data>; when resuming, the checkpoint's folder)")
    g.add_argument("--overwrite", action="store_true", help="start a new run in an --out that holds one (replacing it)")
    g.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT", help="continue the run of CHECKPOINT (no "
                   "value: <--out>/last.pt) with its own options (default: start afresh); the command line may change "
                   "only " + ", ".join("--" + f.replace("_", "-") for f in RESUME_SAFE + RESUME_PLACEMENT))
    g.add_argument("--allow-changes", action="store_true", help="with --resume: also accept changes of "
                   "optimisation, data or model options (each recorded in args.json and the log)")
    g.add_argument("--save-every", type=int, default=0, help="also checkpoint every N optimiser steps (0: off)")
    g.add_argument("--save-minutes", type=float, default=30.0, help="minutes of training between checkpoints (0: off)")
    g.add_argument("--eval-every", type=int, help=per_dataset("eval_every", "val scores every N epochs and after the "
                   "last (0: after the last only; UCF-101 / HMDB-51's val is their test split, never a selection)"))
    g.add_argument("--test-views", help=per_dataset("test_views", "after the last epoch, also score the val split "
                   "with TxS temporal x spatial test views, as eval.py scores last.pt, into test.json (none: skip)"))
    g.add_argument("--stop-after", type=int, help="end this session after epoch N (the schedule still spans "
                   "--epochs; continue with --resume) (default: run to --epochs)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p


OPTIONS = {action.dest for action in build_parser()._actions if action.dest != "help"}


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        for action in parser._actions:   # parsed again without defaults: the flags the command line names
            action.default = argparse.SUPPRESS
        args = resumed_options(args, set(vars(parser.parse_args(argv))))
    else:
        if args.allow_changes:
            fail("--allow-changes goes with --resume")
        for key, value in DATASET_DEFAULTS[args.data].items():
            if key != "views" and getattr(args, key) is None:
                setattr(args, key, value)
        if args.data_root is None:
            args.data_root = synthetic.WORLD_ROOT if args.classes != "all" else str(Path("data") / args.data)
        args.out = str(Path("runs") / args.data) if args.out is None else args.out
        args.new_changes = []
    check_options(args)
    return args


def resumed_options(args, given):
    """The options of the run a checkpoint belongs to, with the changes this command line (`given`) may make."""
    path = Path(args.resume) if args.resume else Path(args.out or Path("runs") / args.data) / "last.pt"
    if not path.is_file():
        fail(f"--resume {path}: no such file")
    ckpt = load_checkpoint(path, mmap=True)
    if "optimizer" not in ckpt:
        fail(f"--resume {path}: holds no optimiser state (best.pt is for evaluation); resume from last.pt")
    if missing := [key for key in RUN_STATE if key not in ckpt]:
        fail(f"--resume {path}: lacks {', '.join(missing)} of a run's state; not a last.pt of this train.py")
    if missing := sorted(OPTIONS - set(SESSION) - {"test_views", "temporal", "queries"} - set(PROTOCOL_DEFAULTS)
                         - set(ckpt["args"])):
        fail(f"--resume {path}: its options (args) lack {', '.join(missing)}; not a last.pt of this train.py")
    options = dict(ckpt["args"], out=str(path.parent))   # the run's folder is where its checkpoint is now
    options.setdefault("test_views", "none")   # runs from before --test-views existed
    options = dict(PROTOCOL_DEFAULTS, **options)   # and from before --classes
    if "workers" not in given:   # worked out again for this machine and --gpus (check_options)
        options["workers"] = None
    if "out" in given and Path(args.out).resolve() != path.parent.resolve():
        fail(f"--out {args.out}: a resumed run writes into its checkpoint's folder {path.parent}")
    changes = []
    for flag in sorted(given - set(SESSION) - {"out"}):
        old, new, dashed = options.get(flag), getattr(args, flag), "--" + flag.replace("_", "-")
        if new == old:
            continue
        if flag not in RESUME_SAFE + RESUME_PLACEMENT and not args.allow_changes:
            fail(f"{dashed} {new}: the run in {path.parent} has {old}; a resumed run keeps its options (add "
                 "--allow-changes to change it anyway, or start a new run with another --out)")
        if flag == "epochs" and new < ckpt["epoch"]:
            fail(f"--epochs {new}: the run in {path.parent} has already completed {ckpt['epoch']} epochs")
        if flag in RESUME_PLACEMENT:
            print(f"note: {dashed} {old} -> {new}: the run continues, but not bit for bit as it would have",
                  file=sys.stderr)
        options[flag] = new
        changes.append({"epoch": ckpt["epoch"], "step": ckpt["step"], "flag": flag, "from": old, "to": new})
    if changes:
        options["changes"] = options.get("changes", []) + changes
    return argparse.Namespace(**options, resume=str(path), allow_changes=args.allow_changes,
                              overwrite=args.overwrite, stop_after=args.stop_after, new_changes=changes)


# The ranges of the run's options (runtime.check_values; with those eval.py shares, runtime.COMMON_LIMITS). The
# schedule's ends and the lr are checked below: label smoothing < 1 and lr > 0 are open bounds.
LIMITS = dict(runtime.COMMON_LIMITS, epochs=(1, None), batch_size=(1, None), per_gpu_batch=(1, None),
              save_every=(0, None), save_minutes=(0, None), eval_every=(0, None), stop_after=(0, None),
              shots=(1, None), mra_layers=(0, None), decoder_layers=(0, None), su_topk=(0, None),
              warmup_epochs=(0, None), clip_grad=(0, None), label_smoothing=(0, None), min_lr_ratio=(0, 1),
              lr=(None, None), new_module_lr_mult=(0, None), weight_decay=(0, None))
# Options a configuration does not use: (option, it is unused when, why). Set to anything but their default, they
# would be a silent no-op, so they are refused (an ablation's command line says what it runs).
UNUSED = (("su_topk", lambda a: a.decoder_layers == 0 or a.queries == "learned", "there is no SU selection"),
          ("descriptions", lambda a: a.decoder_layers == 0 or a.queries == "learned", "no SUs are used"),
          ("queries", lambda a: a.decoder_layers == 0, "there is no decoder"),
          ("temporal", lambda a: a.decoder_layers == 0, "there is no decoder"),
          ("decoder_memory", lambda a: a.decoder_layers == 0, "there is no decoder"),
          ("mra_grids", lambda a: a.mra_layers == 0, "there are no MRA layers"),
          ("fold", lambda a: a.classes == "all", "there is no base / novel split"),
          ("split_kind", lambda a: a.classes == "all", "there is no base / novel split"))


def check_options(args):
    """Every value the run needs, checked before anything is built: one line and exit 2 for a bad one."""
    runtime.check_values(args, LIMITS)
    if not args.lr > 0:
        fail(f"--lr {args.lr}: must be positive")
    if args.warmup_epochs > args.epochs:
        fail(f"--warmup-epochs {args.warmup_epochs}: longer than the run (--epochs {args.epochs})")
    if args.label_smoothing >= 1:
        fail(f"--label-smoothing {args.label_smoothing}: must be below 1")
    if args.decoder_layers and args.frames > MAX_FRAMES:
        fail(f"--frames {args.frames}: the model's time embeddings hold at most {MAX_FRAMES} frames")
    defaults = build_parser()
    for option, unused, why in UNUSED:
        value = getattr(args, option, defaults.get_default(option))   # (older runs lack newer options)
        if unused(args) and value != defaults.get_default(option):
            flags = "--decoder-layers 0" if args.decoder_layers == 0 else "--queries learned"
            flags = "--mra-layers 0" if option == "mra_grids" else flags
            flags = "--classes all" if option in ("fold", "split_kind") else flags
            fail(f"--{option.replace('_', '-')} {value}: has no effect with {flags} ({why})")
    with one_line_errors():
        parse_grids(args.mra_grids)
    if args.test_views != "none":
        runtime.parse_views(args.test_views, "--test-views")
    runtime.resolve_device(args)
    runtime.resolve_amp(args)
    processes = int(os.environ.get("WORLD_SIZE", args.gpus))
    if args.workers is None:   # shared by the processes of one machine (torchrun: LOCAL_WORLD_SIZE of them)
        args.workers = runtime.default_workers(args.device, int(os.environ.get("LOCAL_WORLD_SIZE", args.gpus)))
    args.per_gpu_batch = min(args.per_gpu_batch, max(1, args.batch_size // processes))
    if args.device == "cuda" and args.clip in CLIP_SHAPES:
        args.grad_ckpt = choose_grad_ckpt(args, torch.cuda.get_device_properties(0).total_memory / 2**30)
    args.grad_ckpt = bool(args.grad_ckpt)
    if args.batch_size % (args.per_gpu_batch * processes):
        fail(f"--batch-size {args.batch_size} is not a multiple of --per-gpu-batch {args.per_gpu_batch} x "
             f"{processes} processes")
    if args.data != "synthetic" and not Path(args.data_root).is_dir():
        fail(f"--data-root {args.data_root}: no such folder")
    if args.data == "synthetic":
        with one_line_errors():
            synthetic.check_root(args.data_root)
    if args.classes != "all" and args.data != "synthetic":
        fail(f"--classes {args.classes}: the base / novel split is of the synthetic world (--data synthetic)")
    if args.classes != "all" and args.shots:
        fail(f"--shots {args.shots} with --classes {args.classes}: the few-shot protocol is all-way (--classes all)")
    if args.descriptions and not Path(args.descriptions).is_file():
        fail(f"--descriptions {args.descriptions}: no such file")
    if args.clip not in TINY_CLIPS and args.clip not in clip_vit.MODEL_URLS and not Path(args.clip).is_file():
        fail(f"--clip {args.clip}: no such file (or give one of {', '.join(list(clip_vit.MODEL_URLS) + list(TINY_CLIPS))})")
    runtime.check_out(args.out, fresh=args.resume is None, overwrite=args.overwrite)


GPU_MEMORY_USABLE = 0.85   # of a GPU's memory, for the estimate: the CUDA context, the allocator's slack, ASU's heads


def choose_grad_ckpt(args, gpu_gib):
    """--grad-ckpt from the memory estimate of a named CLIP on a GPU of `gpu_gib`: left unset, on when the batch
    would not fit without it (with a note); ends in one line where even with it the estimate does not fit, or
    where --no-grad-ckpt asks for what does not fit."""
    usable = GPU_MEMORY_USABLE * gpu_gib
    need = {ckpt: training_memory_gib(args.clip, args.frames, args.size, args.per_gpu_batch, ckpt, args.amp)
            for ckpt in (False, True)}
    what = f"{args.clip}, {args.frames} frames at {args.size} px, --per-gpu-batch {args.per_gpu_batch}"
    if need[True] > usable:
        fail(f"--per-gpu-batch {args.per_gpu_batch}: {what} needs about {need[True]:.0f} GiB per GPU even with "
             f"--grad-ckpt (by estimate; {gpu_gib:.0f} GiB here): lower --per-gpu-batch (gradients accumulate up "
             "to --batch-size)")
    if need[False] <= usable or args.grad_ckpt is not None:
        if args.grad_ckpt is False and need[False] > usable:
            fail(f"--no-grad-ckpt: {what} needs about {need[False]:.0f} GiB per GPU without it (by estimate; "
                 f"{gpu_gib:.0f} GiB here): drop --no-grad-ckpt ({need[True]:.0f} GiB) or lower --per-gpu-batch")
        return bool(args.grad_ckpt)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"note: --grad-ckpt on: {what} needs about {need[False]:.0f} GiB per GPU without it, "
              f"{need[True]:.0f} GiB with it (by estimate; {gpu_gib:.0f} GiB here)", file=sys.stderr)
    return True


def epoch_indices(num_samples, seed, epoch, rank, world_size, global_batch):
    """This process's training samples for one epoch, in order; the permutation depends only on (seed, epoch).
    The last global batch is filled up with the first samples (a few 2-shot videos left out of every epoch would be
    a large part of a few-shot set). Rank r takes perm[r::world]: its k-th micro-batch of b lies in the k-th block
    of b * world, so N processes with batch b (or accumulation steps) see what one process with batch N*b sees."""
    perm = np.random.default_rng([seed, epoch]).permutation(num_samples)
    perm = np.concatenate([perm, perm[:(-num_samples) % global_batch]])   # up to a whole number of global batches
    return perm[rank::world_size].tolist()


class RunningSums:
    """Epoch sums over all ranks: loss (x samples), samples, replaced videos, skipped steps. Micro-batches add to a
    device tensor (NCCL reduces only those; the loop need not wait for the GPU); reduce(), a collective, totals it."""

    def __init__(self, device, loss=0.0, samples=0, replaced=0, skipped_steps=0):
        self.loss, self.samples, self.replaced, self.skipped_steps = loss, samples, replaced, skipped_steps
        self.pending = torch.zeros(3, dtype=torch.float64, device=device)

    def add(self, loss, samples, replaced, finite):   # a non-finite loss is left out (its step is skipped)
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
        return {key: getattr(self, key) for key in ("loss", "samples", "replaced", "skipped_steps")}


def saved_options(args):
    """The run's options as args.json and checkpoints keep them: without this session's controls."""
    return {key: value for key, value in vars(args).items() if key not in SESSION}


def save_run(path, run, epoch, step, sums):
    """Checkpoint at (epoch completed, optimiser steps into the next); a collective: every rank calls, rank 0 writes."""
    rngs = runtime.all_rng_states()
    if rank_and_world()[0] == 0:
        save_checkpoint({
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict(), "scheduler": run.scheduler.state_dict(),
            "epoch": epoch, "step": step, "rng": rngs, "args": saved_options(run.args),
            "class_names": list(run.model.class_names), "best_top1": run.best_top1, "log": run.log,
            "sums": sums.state(), "semantic_units": units_to_state(run.model.semantic_units)}, path)
    run.saved_at = time.time()


def save_best(path, run, record):
    """What evaluation needs, no optimiser state. Tensors that fp16 holds exactly (OpenAI's fp16 text tower, zeros)
    are stored in fp16; trained fp32 weights stay fp32, so eval.py gets exactly the model that was scored."""
    state = {key: t.half() if t.is_floating_point() and torch.equal(t.half().float(), t.float()) else t
             for key, t in run.model.state_dict().items()}
    save_checkpoint({"model": state, "args": saved_options(run.args),
                             "class_names": list(run.model.class_names), "epoch": record["epoch"],
                             "metrics": record, "semantic_units": units_to_state(run.model.semantic_units)}, path)


class Stopped(Exception):
    """SIGINT or SIGTERM: the run was saved and stops with exit status 128 + signal."""


def step_controls(run, step_finite):
    """What the ranks must agree on after a step, in one all-reduce (max): stop (a signal reached some rank), save
    now (--save-minutes elapsed on rank 0), a non-finite loss on some rank. The one GPU sync of an optimiser step."""
    due = run.args.save_minutes > 0 and time.time() - run.saved_at >= 60 * run.args.save_minutes
    controls = torch.cat([torch.tensor([runtime.stop_signal(), due and rank_and_world()[0] == 0], dtype=torch.float64,
                                       device=step_finite.device), (~step_finite).double().view(1)])
    if rank_and_world()[1] > 1:
        dist.all_reduce(controls, op=dist.ReduceOp.MAX)
    stop, due, nonfinite = controls.tolist()
    return int(stop), bool(due), bool(nonfinite)


def optimizer_step(run, nonfinite, sums, where):
    """Apply the accumulated gradients (unscaled, clipped), or skip them on every rank when some rank's loss was
    non-finite; the schedule steps either way. With fp16 the GradScaler also skips a step whose gradients overflowed
    (and halves its scale): such a step counts as skipped too. Returns the lr this step ran with (group 0: the CLIP
    weights)."""
    if not nonfinite:
        if run.args.clip_grad > 0:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.args.clip_grad)
        scale = run.scaler.get_scale() if run.scaler.is_enabled() else None   # fp16 only: a GPU sync
        run.scaler.step(run.optimizer)
        run.scaler.update()
        # the gradients are all-reduced, so every rank's scaler finds the same overflow
        nonfinite = scale is not None and run.scaler.get_scale() < scale
    run.optimizer.zero_grad(set_to_none=True)
    sums.skipped_steps += int(nonfinite)
    run.skipped_in_a_row = run.skipped_in_a_row + 1 if nonfinite else 0
    if run.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
        fail(f"{run.skipped_in_a_row} optimiser steps in a row had a non-finite loss or gradients ({where}); lower "
             "--lr or try --amp bf16 / off")
    lr = run.scheduler.get_last_lr()[0]   # read before scheduler.step() moves on to the next step's
    run.scheduler.step()
    return lr


def train_epoch(run, epoch, start_step, sums, device):
    """One pass over the training set from optimiser step `start_step`, adding into `sums`; checkpoints inside it
    (--save-every, --save-minutes); a stop signal ends it after a step (Stopped). Returns the last step's lr."""
    args, steps_per_epoch = run.args, run.steps_per_epoch
    rank, world_size = rank_and_world()
    indices = epoch_indices(len(run.train_set), args.seed, epoch, rank, world_size, args.batch_size)
    run.train_sampler.set_epoch(epoch, indices[start_step * args.accumulation * args.per_gpu_batch:])
    run.model.train()
    step, lr = start_step, None
    step_finite = torch.ones((), dtype=torch.bool, device=device)
    with tqdm(total=steps_per_epoch, initial=start_step, desc=f"epoch {epoch + 1}/{args.epochs}",
              disable=not run.show_progress, dynamic_ncols=True) as bar:
        for micro, (videos, labels, replaced, *colours) in enumerate(run.train_loader):   # colours: on CUDA
            augment = (lambda unit: data.colour_on_device(unit, colours[0])) if colours else None
            last_micro = (micro + 1) % args.accumulation == 0
            # DDP all-reduces the gradients in backward(): only in the last micro-batch of an optimiser step
            with contextlib.nullcontext() if last_micro or world_size == 1 else run.ddp_model.no_sync():
                with runtime.autocast(device, args.amp):
                    logits = run.ddp_model(runtime.model_input(videos, device, augment))   # (b, T, 3, S, S) -> (b, C)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels.to(device, non_blocking=True),
                                                         label_smoothing=args.label_smoothing)
                run.scaler.scale(loss / args.accumulation).backward()
            finite = torch.isfinite(loss.detach())
            step_finite &= finite
            sums.add(loss, len(labels), int(replaced.sum()), finite)
            if not last_micro:
                continue
            stop, due, nonfinite = step_controls(run, step_finite)
            lr = optimizer_step(run, nonfinite, sums, f"epoch {epoch + 1}, step {step + 1}")
            step_finite.fill_(True)
            step += 1
            bar.update(1)
            if run.show_progress and (step % 10 == 0 or step == steps_per_epoch):
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
            if (stop or due or (args.save_every and step % args.save_every == 0)) and step < steps_per_epoch:
                sums.reduce()
                save_run(Path(args.out) / "last.pt", run, epoch, step, sums)
                if stop:
                    raise Stopped(stop)
    sums.reduce()
    return lr


def run_epoch(run, epoch, start_step, sums, device, changes):
    """Train one epoch, evaluate it when due (every --eval-every epochs and after the last): its log record."""
    args, started = run.args, time.time()
    lr = train_epoch(run, epoch, start_step, sums, device)
    # every loss non-finite: no step learnt anything (steps fp16's GradScaler skips while it backs off its scale
    # had finite losses: that is its calibration, and ten in a row stop the run in optimizer_step)
    if sums.samples == 0:
        fail(f"epoch {epoch + 1}: none of its {run.steps_per_epoch} optimiser steps was taken (every loss was "
             "non-finite); lower --lr or try --amp off")
    if not all(torch.isfinite(parameter).all() for parameter in run.model.parameters()):
        fail(f"epoch {epoch + 1}: the weights are no longer finite (NaN or inf); lower --lr or try --amp off")
    record = {"epoch": epoch + 1, "lr": lr, "train_loss": sums.loss / max(1, sums.samples),
              "skipped_steps": sums.skipped_steps, "replaced": int(sums.replaced)}   # replaced: train + val videos
    if (args.eval_every and (epoch + 1) % args.eval_every == 0) or epoch + 1 == args.epochs:
        val = runtime.predictions(run.model, run.val_set, device, args.amp, args.per_gpu_batch, args.workers,
                                  progress=run.show_progress)
        runtime.check_scored(val, "val")
        scores = runtime.accuracy(val.probs, val.labels)
        record.update(val_top1=scores["top1"], val_top5=scores["top5"], val_mean_class=scores["mean_class"],
                      replaced=record["replaced"] + val.replaced + len(val.unreadable))
    record["seconds"] = round(time.time() - started, 2)
    if changes:   # what --allow-changes changed: in the record of the first epoch that ran with it
        record["changes"] = changes
    return record


def dataset_options(args):
    """What the run's train, val and test sets share (build_dataset keywords)."""
    return dict(num_frames=args.frames, size=args.size, seed=args.seed, strict=args.strict,
                fold=1 if args.shots else args.split,
                classes=synthetic.protocol_class_names(args.classes, args.fold, args.split_kind))


def final_test(run, device):
    """The val split scored with --test-views views after the last epoch, as eval.py scores last.pt (the same
    dataset, weights and view averaging): eval.py's result fields, with per_class."""
    args = run.args
    with one_line_errors():
        test_set = data.build_dataset(args.data, args.data_root, "val", views=runtime.parse_views(args.test_views),
                                      **dataset_options(args))
    scores = runtime.score_test_set(run.model, test_set, device, args.amp, args.per_gpu_batch, args.workers,
                                    progress=run.show_progress, strict=args.strict)
    return dict(data=args.data, views=args.test_views, **scores)


def distributed_model(model, device):
    """DDP around the model. The buffers (text embeddings) are equal on all ranks and never change: DDP need not
    broadcast them; the gradients are views into DDP's all-reduce buckets (one copy fewer of them in memory)."""
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False,
        gradient_as_bucket_view=True)


def setup_run(args, device):
    """The run (data, model, optimiser, schedule, scaler; restored from --resume), start epoch, step and sums."""
    rank, world_size = rank_and_world()
    args.processes, args.accumulation = world_size, args.batch_size // (args.per_gpu_batch * world_size)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    # mmap: each rank reads the tensors it copies, from the page cache the ranks of a machine share
    ckpt = load_checkpoint(args.resume, mmap=True) if args.resume else None
    with runtime.rank_zero_first(), one_line_errors():  # per machine: synthetic data, CLIP download, text cache
        options = dataset_options(args)
        # colour jitter and grayscale are most of a training item's transform time: on a GPU they run there
        train_set = data.build_dataset(args.data, args.data_root, "train", train=True, shots=args.shots,
                                       colour_on_device=device.type == "cuda", **options)
        val_set = data.build_dataset(args.data, args.data_root, "val", train=False, **options)
        check_sets(args, train_set, val_set, ckpt and ckpt["class_names"], rank == 0)
        model = build_model(args, train_set.class_names, device=device)
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    # one loader for the whole run (persistent workers); each epoch gives its sampler (epoch, index) pairs
    train_sampler = data.EpochSampler()
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.per_gpu_batch, sampler=train_sampler,
                                               **runtime.loader_options(device, args.workers, persistent=True))
    # fused: one kernel for all parameters on CUDA (the CPU's fused AdamW is no faster than the default there)
    optimizer = torch.optim.AdamW(model.param_groups(args.lr, args.new_module_lr_mult, args.weight_decay),
                                  betas=(0.9, 0.98), eps=1e-8, fused=device.type == "cuda")
    warmup_steps, total_steps = round(args.warmup_epochs * steps_per_epoch), args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, args.min_lr_ratio))
    ddp_model = model if world_size == 1 else distributed_model(model, device)
    run = argparse.Namespace(args=args, model=model, ddp_model=ddp_model, optimizer=optimizer, scheduler=scheduler,
                             scaler=torch.amp.GradScaler(device.type, enabled=args.amp == "fp16"),
                             train_set=train_set, val_set=val_set, train_sampler=train_sampler,
                             train_loader=train_loader, steps_per_epoch=steps_per_epoch, best_top1=-1.0,
                             log=[], saved_at=time.time(), skipped_in_a_row=0,
                             show_progress=rank == 0 and not args.no_progress)
    if not args.resume:
        return run, 0, 0, RunningSums(device)
    return restore_run(run, ckpt, device)


def restore_run(run, ckpt, device):
    """Weights, optimiser moments and step count, schedule, scaler, log and RNG states from `ckpt`, the groups'
    hyper-parameters kept from this run's options (--allow-changes may change them). Returns what setup_run does."""
    with one_line_errors():
        load_model_state(run.model, ckpt["model"], run.args.resume)
    fresh = [(group["initial_lr"], group["weight_decay"]) for group in run.optimizer.param_groups]
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scheduler.base_lrs = [initial_lr for initial_lr, _ in fresh]
    factor = run.scheduler.lr_lambdas[0](run.scheduler.last_epoch)   # one schedule for all groups
    for group, (initial_lr, weight_decay) in zip(run.optimizer.param_groups, fresh):
        group.update(initial_lr=initial_lr, weight_decay=weight_decay, lr=initial_lr * factor)
    if ckpt["scaler"] and run.scaler.is_enabled():   # a bf16 / fp32 run resumed with fp16 starts a new scaler
        run.scaler.load_state_dict(ckpt["scaler"])
    run.best_top1, run.log = ckpt["best_top1"], ckpt["log"]
    rank, world_size = rank_and_world()
    runtime.set_rng_state(ckpt["rng"][rank] if len(ckpt["rng"]) == world_size else ckpt["rng"][0])
    return run, ckpt["epoch"], ckpt["step"], RunningSums(device, **ckpt["sums"])


def check_sets(args, train_set, val_set, trained, is_main):
    """Before the model is built: the sets can train the run. A whole global batch of training videos (else no
    optimiser step would ever complete: an epoch is a whole number of global batches, filled up from its own
    samples, epoch_indices), a training video of every class, the classes the run was `trained` on (a resumed
    run; else None), and videos that are there (check_videos)."""
    if len(train_set) < args.batch_size:
        # the largest global batch that fits and divides into --per-gpu-batch x processes (or smaller micro-batches)
        unit = args.per_gpu_batch * args.processes
        fits = len(train_set) // unit * unit or len(train_set) // args.processes * args.processes
        fail(f"--batch-size {args.batch_size}: more than the {len(train_set)} training videos of {args.data_root}, "
             f"so no optimiser step would complete; use --batch-size {fits} or less")
    counts = np.bincount([label for _, label in train_set.samples], minlength=len(train_set.class_names))
    if empty := [name for name, count in zip(train_set.class_names, counts) if count == 0]:
        fail(f"--data-root {args.data_root}: {len(empty)} of {len(counts)} classes have no training video "
             f"({', '.join(map(repr, empty[:3]))}{', ...' if len(empty) > 3 else ''})")
    if trained is not None and list(trained) != list(train_set.class_names):
        names, trained = list(train_set.class_names), list(trained)
        new, gone = sorted(set(names) - set(trained)), sorted(set(trained) - set(names))
        what = (f"classes not in the run ({', '.join(map(repr, new[:3]))})" if new else
                f"without the run's {', '.join(map(repr, gone[:3]))}" if gone else "in another order")
        fail(f"--data-root {args.data_root}: {len(names)} classes, {what}; the run in {Path(args.resume).parent} "
             f"was trained on {len(trained)} (resume it on its own data)")
    if is_main:
        check_videos(train_set, "train", args.strict)
        check_videos(val_set, "val", args.strict)


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


def train_worker(args, device):
    """One process of a run: set up (or resume), then per epoch train, evaluate, log, checkpoint; returns the log."""
    runtime.catch_stop_signals()
    run, start_epoch, start_step, sums = setup_run(args, device)
    is_main, out = rank_and_world()[0] == 0, Path(args.out)
    if is_main:
        runtime.write_text_atomic(out / "args.json", json.dumps(saved_options(args), indent=2) + "\n")
        # The log is rebuilt from the checkpoint, so epochs that ran after it (and were lost) are not repeated.
        runtime.write_text_atomic(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in run.log))
    select = args.data not in runtime.TEST_SPLIT_IS_VAL   # a test split is logged, never used to pick best.pt
    try:
        end = args.epochs if args.stop_after is None else min(args.epochs, args.stop_after)
        for epoch in range(start_epoch, end):
            record = run_epoch(run, epoch, start_step, sums, device, args.new_changes if epoch == start_epoch else [])
            run.log.append(record)
            is_best = select and record.get("val_top1", -1.0) > run.best_top1
            run.best_top1 = max(run.best_top1, record.get("val_top1", -1.0)) if select else -1.0
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
            stop = step_controls(run, torch.ones((), dtype=torch.bool, device=device))[0]
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
    except Exception as error:   # unusable data: an unreadable video under --strict, too many unreadable in a row
        text = str(error).strip()   # (raised in a DataLoader worker, it comes as a RuntimeError that names it)
        if isinstance(error, data.VideoReadError) or "unreadable videos in a row" in text:
            fail(text.splitlines()[-1])
        if isinstance(error, RuntimeError) and "VideoReadError" in text:
            fail(text.splitlines()[-1].split("VideoReadError: ", 1)[-1])
        raise
    last = run.log[-1] if run.log else {}
    if is_main and "val_top1" in last:
        which = "best.pt: the best val top-1" if select else "last.pt: the last epoch (no selection on test)"
        best = f" (best {run.best_top1:.4f})" if select else ""
        print(f"val top-1 {last['val_top1']:.4f} after epoch {last['epoch']}{best}; checkpoints in {out}; evaluate "
              f"{which}", flush=True)
    if last.get("epoch") == args.epochs and args.test_views != "none":
        test = final_test(run, device)
        if is_main:
            runtime.write_text_atomic(out / "test.json", json.dumps(test, indent=2) + "\n")
            print(f"test top-1 {test['top1']:.4f} with {test['views']} views over {test['videos']} val videos "
                  f"(last.pt, as eval.py scores it; {out / 'test.json'} has each class)", flush=True)
    return run.log


def main(argv=None):
    """Parse argv (default sys.argv[1:]), train, return the log records (one dict per epoch)."""
    args = parse_args(argv)
    runtime.launch(train_worker, args)
    log_path = Path(args.out) / "log.jsonl"
    return [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []


if __name__ == "__main__":
    main()
