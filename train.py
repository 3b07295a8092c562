"""Training entry point: fine-tune ASU (CLIP + MRA + SU selection + cross-modal decoder) on a video dataset.

In:  a dataset (`--data`, layouts in DESIGN.md) and CLIP weights (`--clip`); videos reach the model as
     (B, T, 3, S, S) float tensors, labels as (B,) class indices.
Out: in `--out`: args.json, log.jsonl (one JSON object per epoch: epoch, lr, train_loss, val_top1, val_top5, ...),
     last.pt and best.pt, written atomically (temporary file, then os.replace). A checkpoint is the dict
     {"model", "optimizer", "scaler", "scheduler", "epoch" (completed), "step" (optimiser steps into the next
     epoch, for --save-every), "rng" (per rank), "args", "class_names", "best_top1", "log", "loss_sums",
     "semantic_units"}.

One code path serves one CPU process, N GPUs on one machine (`--gpus N` spawns the processes here) and several
machines (`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK and we join its group). The global batch `--batch-size`
is per-process batch x processes x gradient-accumulation steps, so the optimisation does not depend on how many
GPUs ran it.

Resume is exact: which samples an epoch visits (and in what order) depends only on (seed, epoch), and their
augmentation only on (seed, epoch, index) (data.VideoDataset.set_epoch); a checkpoint holds everything else
(model, optimiser, GradScaler, schedule, RNG states, position in the epoch, log). So `--resume` after a crash or
after `--stop-after` ends with the same parameters and log as an uninterrupted run.

`python train.py` with no flags is the embedded default: synthetic data, tiny random-init CLIP, CPU; it ends by
printing the validation top-1.
"""
import argparse
import contextlib
import json
import math
import os
import random
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from tqdm import tqdm

import clip_vit

DATASETS = ("k400", "ucf101", "hmdb51", "list", "synthetic")

# Per-dataset defaults (DESIGN.md, "Training and evaluation"). A flag left unset takes its value from here.
# "list" files are usually Kinetics-like, so they share the Kinetics column.
_KINETICS = dict(clip="ViT-B/16", frames=8, size=224, lr=8e-6, epochs=30, warmup_epochs=5, batch_size=256,
                 per_gpu_batch=8, views="4x3")
_FEW_SHOT = dict(clip="ViT-B/16", frames=32, size=224, lr=2e-6, epochs=50, warmup_epochs=5, batch_size=64,
                 per_gpu_batch=4, views="1x1")
DATASET_DEFAULTS = {
    "k400": _KINETICS,
    "list": _KINETICS,
    "ucf101": _FEW_SHOT,
    "hmdb51": _FEW_SHOT,
    "synthetic": dict(clip="tiny", frames=8, size=112, lr=1e-3, epochs=20, warmup_epochs=1, batch_size=16,
                      per_gpu_batch=16, views="1x1"),
}


def _defaults_help(key):
    """'k400 8, ucf101 32, ...' for a help line, from the table above."""
    return ", ".join(f"{name} {DATASET_DEFAULTS[name][key]}" for name in DATASETS)


def fail(message):
    """End the program with one clear line on stderr and exit status 1 (no traceback)."""
    raise SystemExit(f"error: {message}")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends '(default: X)' to a help line unless the line itself says what the default is."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    p = argparse.ArgumentParser(
        prog="train.py", description="Train ASU (video action recognition with attentive semantic units).",
        formatter_class=HelpFormatter)
    # argparse's own errors (unknown --data, bad numbers) become one line too, not usage + error.
    p.error = lambda message: fail(f"{p.prog}: {message}")
    per_dataset = "default per dataset: "
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", choices=DATASETS, help="dataset layout (see DESIGN.md)")
    g.add_argument("--data-root", default=None, help="dataset folder (default: data/<data>)")
    g.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split of UCF-101 / HMDB-51")
    g.add_argument("--shots", type=int, default=None,
                   help="few-shot: K training videos per class from split-1 train (default: all)")
    g.add_argument("--frames", type=int, default=None, help=per_dataset + _defaults_help("frames"))
    g.add_argument("--size", type=int, default=None,
                   help="input size in pixels; " + per_dataset + _defaults_help("size"))
    g.add_argument("--workers", type=int, default=None,
                   help="data-loading processes per GPU process (default: 8 on CUDA, CPU cores / 4 on the CPU)")
    g.add_argument("--strict", action="store_true", help="stop at an unreadable video instead of replacing it")
    g = p.add_argument_group("model")
    g.add_argument("--clip", default=None,
                   help="CLIP weights: a name (ViT-B/16), a file, or 'tiny' (random init); " + per_dataset
                   + _defaults_help("clip"))
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
    g.add_argument("--epochs", type=int, default=None, help=per_dataset + _defaults_help("epochs"))
    g.add_argument("--warmup-epochs", type=float, default=None,
                   help="linear warm-up, then cosine; " + per_dataset + _defaults_help("warmup_epochs"))
    g.add_argument("--min-lr-ratio", type=float, default=0.01, help="the cosine ends at lr x this")
    g.add_argument("--batch-size", type=int, default=None,
                   help="global batch (per-GPU batch x GPUs x accumulation); " + per_dataset
                   + _defaults_help("batch_size"))
    g.add_argument("--per-gpu-batch", type=int, default=None,
                   help="batch of one process per forward pass; gradients are accumulated up to --batch-size; "
                   + per_dataset + _defaults_help("per_gpu_batch") + " (at most batch-size / processes)")
    g.add_argument("--lr", type=float, default=None, help="learning rate of the CLIP weights; " + per_dataset
                   + _defaults_help("lr"))
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


def parse_grids(text):
    """'2x2,3x3' -> ((2, 2), (3, 3)); '' -> ()."""
    try:
        return tuple(tuple(int(n) for n in part.lower().split("x")) for part in text.split(",") if part.strip())
    except ValueError:
        fail(f"--mra-grids {text!r}: expected comma-separated RxC, e.g. 2x2,3x3")


def parse_views(text):
    """'4x3' -> (4, 3): temporal x spatial test views."""
    try:
        temporal, spatial = (int(n) for n in text.lower().split("x"))
    except ValueError:
        fail(f"--views {text!r}: expected TxS, e.g. 4x3")
    if temporal < 1 or spatial not in (1, 3):
        fail(f"--views {text!r}: temporal views >= 1 and 1 or 3 spatial crops")
    return temporal, spatial


def resolve_device(args):
    """Pick the device and check --gpus against the machine; sets args.device."""
    under_torchrun = "WORLD_SIZE" in os.environ
    gpus_present = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if args.gpus < 1:
        fail(f"--gpus {args.gpus}: must be at least 1")
    if args.device is None:
        if gpus_present == 0 and args.gpus > 1 and not under_torchrun:
            fail(f"--gpus {args.gpus}: this machine has no GPU (add --device cpu to run {args.gpus} CPU processes)")
        args.device = "cuda" if gpus_present else "cpu"
    if args.device == "cuda":
        if gpus_present == 0:
            fail("--device cuda: no CUDA GPU is present")
        if not under_torchrun and args.gpus > gpus_present:
            fail(f"--gpus {args.gpus}: only {gpus_present} GPU(s) present")


def resolve_amp(args):
    """bf16 where the hardware computes in it. On a CPU without native bf16 (AVX512-BF16 / AMX) bf16 matrix
    products are emulated and far slower than fp32, so there the default is off."""
    if args.amp is None:
        if args.device == "cuda":
            args.amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            args.amp = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "off"


def default_workers(device):
    """8 per GPU; on a CPU the workers take cores from the model's threads, so none on a small machine."""
    return 8 if device == "cuda" else (os.cpu_count() or 1) // 4


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    for key, value in DATASET_DEFAULTS[args.data].items():
        if key != "views" and getattr(args, key) is None:
            setattr(args, key, value)
    if args.data_root is None:
        args.data_root = str(Path("data") / args.data)
    if args.out is None:
        args.out = str(Path(args.resume).parent) if args.resume else str(Path("runs") / args.data)
    parse_grids(args.mra_grids)  # fail early on a malformed value
    resolve_device(args)
    resolve_amp(args)
    if args.workers is None:
        args.workers = default_workers(args.device)
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
# Processes: one, spawned (--gpus N), or joined (torchrun)

def rank_and_world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_in_group(fn, args, rank, world_size, local_rank, init_method):
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        # Processes on a CPU share its cores; oversubscribed threads make every process slower.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo", init_method=init_method,
                            rank=rank, world_size=world_size)
    try:
        result = fn(args, device)
        # Leave together, so that no rank closes its connections while another (rank 0, still writing the last
        # checkpoint) holds them open: an unannounced close is one way for gloo to abort the other process.
        dist.barrier()
        return result
    finally:
        dist.destroy_process_group()


def _spawned(rank, fn, args, port):
    _run_in_group(fn, args, rank, args.gpus, rank, f"tcp://127.0.0.1:{port}")


def launch(fn, args):
    """Run fn(args, device) in one process, in --gpus spawned processes, or in the torchrun group we are part of.
    Returns fn's result when it ran in this process (None after spawning)."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return _run_in_group(fn, args, int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                             int(os.environ.get("LOCAL_RANK", 0)), "env://")
    if args.gpus > 1:
        try:
            mp.spawn(_spawned, args=(fn, args, _free_port()), nprocs=args.gpus)
        except mp.ProcessExitedException as e:
            if e.exit_code and e.exit_code > 0:  # the worker ended through fail(): its one line is above
                raise SystemExit(e.exit_code) from None
            fail(f"worker process {e.error_index} died: {e}")
        return None
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    return fn(args, device)


@contextlib.contextmanager
def rank_zero_first():
    """Rank 0 runs the body first (generating synthetic data, filling caches), then the others."""
    rank, world_size = rank_and_world()
    if rank != 0:
        dist.barrier()
    yield
    if rank == 0 and world_size > 1:
        dist.barrier()


def autocast(device, amp):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


# ----------------------------------------------------------------------------------------------------------------
# Model, data, optimiser

def build_model(args, class_names, clip=None, units=None):
    """ASU from the options in args (a Namespace or the dict saved in a checkpoint). clip: an already built CLIP
    (eval.py builds it from the checkpoint), default --clip; units: a SemanticUnits bank, default extracted from
    class_names (and --descriptions)."""
    import model as asu_model
    import semantic_units

    args = argparse.Namespace(**args) if isinstance(args, dict) else args
    if clip is None:
        if args.clip == "tiny":
            clip = clip_vit.tiny_clip(seed=args.seed)
        else:
            try:
                clip = clip_vit.load_clip(args.clip)
            except Exception as e:  # a wrong file can fail in many ways; name the argument, keep one line
                fail(f"--clip {args.clip}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if units is None and args.descriptions:
        try:
            descriptions = semantic_units.load_descriptions(args.descriptions)
        except (OSError, ValueError) as e:
            fail(f"--descriptions: {e}")
        units = semantic_units.extract_semantic_units(class_names, descriptions)
    model = asu_model.ASU(clip, class_names, semantic_units=units, mra_grids=parse_grids(args.mra_grids),
                          mra_layers=args.mra_layers, su_topk=args.su_topk, decoder_layers=args.decoder_layers,
                          decoder_memory=args.decoder_memory, cache_dir=args.cache_dir)
    if getattr(args, "grad_ckpt", False):
        for module in model.modules():
            if hasattr(module, "grad_checkpointing"):
                module.grad_checkpointing = True
    return model


def build_data(args, split, train, views=(1, 1), fold=None):
    """data.build_dataset with the options in args; bad input ends with one line."""
    import data
    try:
        return data.build_dataset(args.data, args.data_root, split, num_frames=args.frames, size=args.size,
                                  train=train, views=views, seed=args.seed, strict=args.strict,
                                  shots=args.shots if split == "train" else None,
                                  fold=1 if args.shots else (fold or args.split))
    except (OSError, ValueError) as e:  # data.py's messages name the argument, file and line
        fail(str(e))


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
# Evaluation (also used by eval.py)

@torch.no_grad()
def predict(model, dataset, device, amp, batch_size, workers=0, progress=False):
    """Class probabilities of every sample, on every rank: (probs (N, C), labels (N,), replaced count).

    Multi-view items (V, T, 3, S, S) are scored one view at a time and the softmax probabilities averaged over
    the views (our reading of "multi-view averaging"; averaging logits is the other common choice)."""
    model.eval()
    rank, world_size = rank_and_world()
    indices = list(range(rank, len(dataset), world_size))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=indices, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    probs, labels, replaced = [], [], 0
    for videos, batch_labels, batch_replaced in tqdm(loader, desc="eval", disable=not progress or rank != 0,
                                                     leave=False):
        videos = videos.to(device, non_blocking=True)
        if videos.dim() == 5:                                                # (B, T, 3, S, S): one view
            videos = videos[:, None]
        view_probs = 0
        for v in range(videos.shape[1]):
            with autocast(device, amp):
                logits = model(videos[:, v])                                 # (B, C)
            view_probs = view_probs + logits.float().softmax(-1)
        probs.append((view_probs / videos.shape[1]).cpu())
        labels.append(batch_labels)
        replaced += int(batch_replaced.sum())
    probs = torch.cat(probs) if probs else torch.zeros(0, 0)
    labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    if world_size == 1:
        return probs, labels, replaced
    gathered = [None] * world_size
    dist.all_gather_object(gathered, (indices, probs, labels, replaced))
    order = torch.tensor([i for part in gathered for i in part[0]]).argsort()
    all_probs = torch.cat([part[1] for part in gathered if len(part[0])])[order]
    all_labels = torch.cat([part[2] for part in gathered if len(part[0])])[order]
    return all_probs, all_labels, sum(part[3] for part in gathered)


def accuracy(probs, labels):
    """top-1, top-5 and mean per-class top-1 (over the classes that have samples)."""
    if len(labels) == 0:
        return {"top1": float("nan"), "top5": float("nan"), "mean_class": float("nan")}
    top5 = probs.topk(min(5, probs.shape[1]), dim=1).indices                    # (N, 5)
    correct1 = top5[:, 0] == labels
    per_class = [correct1[labels == c].float().mean() for c in labels.unique()]
    return {"top1": correct1.float().mean().item(),
            "top5": (top5 == labels[:, None]).any(1).float().mean().item(),
            "mean_class": torch.stack(per_class).mean().item()}


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints

def save_checkpoint(state, path):
    """Write to a temporary file, then rename over `path`: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path, text):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path):
    """A train.py checkpoint as a dict; anything else ends with one line naming the file."""
    if not Path(path).is_file():
        fail(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or pickled objects we do not load
        fail(f"checkpoint {path}: cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
    if not isinstance(state, dict) or not {"model", "args", "class_names"} <= state.keys():
        fail(f"checkpoint {path}: not written by train.py (needs the keys model, args, class_names)")
    return state


def load_model_state(model, state_dict, path):
    """load_state_dict(strict) with a one-line error for a checkpoint of another model."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or mismatched:
        parts = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                 if keys]
        fail(f"checkpoint {path} holds another model: " + ", ".join(parts))
    model.load_state_dict(state_dict)


def units_to_state(units):
    """A SemanticUnits bank as plain lists, so a checkpoint carries the SUs it was trained with."""
    if units is None:
        return None
    return {"units": [[unit.text, unit.kind] for unit in units.units], "by_class": [list(c) for c in units.by_class]}


def units_from_state(state):
    import semantic_units
    if state is None:
        return None
    return semantic_units.SemanticUnits([semantic_units.SemanticUnit(text, kind) for text, kind in state["units"]],
                                        [list(c) for c in state["by_class"]])


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


# ----------------------------------------------------------------------------------------------------------------
# Training

def train_worker(args, device):
    rank, world_size = rank_and_world()
    is_main = rank == 0
    show = is_main and not args.no_progress
    out = Path(args.out)
    accumulation = args.batch_size // (args.per_gpu_batch * world_size)
    args.processes, args.accumulation = world_size, accumulation  # recorded in args.json and checkpoints
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)

    with rank_zero_first():  # synthetic data is generated and text embeddings cached once, by rank 0
        train_set = build_data(args, "train", train=True)
        val_set = build_data(args, "val", train=False)
        model = build_model(args, train_set.class_names).to(device)
    steps_per_epoch = len(train_set) // args.batch_size
    if steps_per_epoch == 0:
        fail(f"--batch-size {args.batch_size} is larger than the training set ({len(train_set)} videos)")
    total_steps = args.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.param_groups(args.lr, args.new_module_lr_mult, args.weight_decay),
                                  betas=(0.9, 0.98), eps=1e-8)
    warmup_steps = round(args.warmup_epochs * steps_per_epoch)

    def schedule(step):
        return lr_factor(step, warmup_steps, total_steps, args.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")

    start_epoch, start_step, best_top1, log = 0, 0, -1.0, []
    loss_sums = [0.0, 0, 0]  # sum of losses, samples, replaced videos of the epoch in progress (all ranks)
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        load_model_state(model, ckpt["model"], args.resume)
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, start_step, best_top1, log = ckpt["epoch"], ckpt["step"], ckpt["best_top1"], ckpt["log"]
        loss_sums = list(ckpt["loss_sums"])
        rngs = ckpt["rng"]
        set_rng_state(rngs[rank] if len(rngs) == world_size else rngs[0])
        changed = {k: (v, getattr(args, k)) for k, v in ckpt["args"].items()
                   if k in ("epochs", "batch_size", "lr", "seed", "data", "frames", "size") and getattr(args, k) != v}
        if is_main and changed:
            print("note: resuming with changed options: "
                  + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()), file=sys.stderr)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "args.json", json.dumps(vars(args), indent=2) + "\n")
        # The log is rebuilt from the checkpoint, so epochs that ran after it (and were lost) are not repeated.
        write_text_atomic(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in log))

    ddp_model = model
    if world_size > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False)  # the buffers (text embeddings) are equal on all ranks and never change

    def checkpoint(epoch, step, path=out / "last.pt"):
        rngs = all_rng_states()  # a collective: every rank takes part
        if is_main:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scaler": scaler.state_dict(), "scheduler": scheduler.state_dict(),
                             "epoch": epoch, "step": step, "rng": rngs, "args": vars(args),
                             "class_names": list(train_set.class_names), "best_top1": best_top1, "log": log,
                             "loss_sums": list(loss_sums), "semantic_units": units_to_state(model.semantic_units)},
                            path)

    stop_epoch = min(args.epochs, args.stop_after or args.epochs)
    for epoch in range(start_epoch, stop_epoch):
        epoch_start = time.time()
        train_set.set_epoch(epoch)
        indices = epoch_indices(len(train_set), args.seed, epoch, rank, world_size, args.batch_size)
        loader = torch.utils.data.DataLoader(
            train_set, batch_size=args.per_gpu_batch, sampler=indices[start_step * accumulation * args.per_gpu_batch:],
            num_workers=args.workers, pin_memory=device.type == "cuda")
        model.train()
        bar = tqdm(total=steps_per_epoch, initial=start_step, desc=f"epoch {epoch + 1}/{args.epochs}",
                   disable=not show, dynamic_ncols=True)
        # loss sum, samples, replaced videos since the last reduction; on the device (NCCL reduces only those),
        # so the loop never waits for the GPU just to log
        step, sums = start_step, torch.zeros(3, dtype=torch.float64, device=device)
        for micro, (videos, labels, replaced) in enumerate(loader):
            videos = videos.to(device, non_blocking=True)                    # (b, T, 3, S, S)
            labels = labels.to(device, non_blocking=True)                    # (b,)
            last_micro = (micro + 1) % accumulation == 0
            sync = contextlib.nullcontext() if last_micro or world_size == 1 else ddp_model.no_sync()
            with sync:
                with autocast(device, args.amp):
                    logits = ddp_model(videos)                               # (b, C)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=args.label_smoothing)
                scaler.scale(loss / accumulation).backward()
            sums[0] += loss.detach().double() * len(labels)
            sums[1] += len(labels)
            sums[2] += int(replaced.sum())
            if not last_micro:
                continue
            if args.clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            bar.update(1)
            if show and (step % 10 == 0 or step == steps_per_epoch):
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{args.lr * schedule(scheduler.last_epoch - 1):.2e}")
            if args.save_every and step % args.save_every == 0 and step < steps_per_epoch:
                if world_size > 1:
                    dist.all_reduce(sums)
                loss_sums = [loss_sums[i] + sums[i].item() for i in range(3)]
                sums.zero_()
                checkpoint(epoch, step)
        bar.close()
        if world_size > 1:
            dist.all_reduce(sums)
        loss_sums = [loss_sums[i] + sums[i].item() for i in range(3)]

        probs, val_labels, val_replaced = predict(model, val_set, device, args.amp, args.per_gpu_batch,
                                                  args.workers, progress=show)
        metrics = accuracy(probs, val_labels)
        record = {"epoch": epoch + 1, "lr": args.lr * schedule(scheduler.last_epoch - 1),
                  "train_loss": loss_sums[0] / max(1, loss_sums[1]), "val_top1": metrics["top1"],
                  "val_top5": metrics["top5"], "val_mean_class": metrics["mean_class"],
                  "replaced": int(loss_sums[2]) + val_replaced,
                  "seconds": round(time.time() - epoch_start, 2)}
        log.append(record)
        is_best = metrics["top1"] > best_top1
        best_top1 = max(best_top1, metrics["top1"])
        loss_sums, start_step = [0.0, 0, 0], 0
        checkpoint(epoch + 1, 0)
        if is_main:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if is_best:
                tmp = out / "best.pt.tmp"
                shutil.copyfile(out / "last.pt", tmp)
                os.replace(tmp, out / "best.pt")
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {record['train_loss']:.4f}, "
                  f"val top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f} ({record['seconds']:.0f} s)",
                  flush=True)
    if is_main and log:
        print(f"val top-1 {log[-1]['val_top1']:.4f} (best {best_top1:.4f}); checkpoints in {out}")
    return log


def main(argv=None):
    """Parse argv (default sys.argv[1:]), train, return the log records (one dict per epoch)."""
    args = parse_args(argv)
    launch(train_worker, args)
    log_path = Path(args.out) / "log.jsonl"
    return [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []


if __name__ == "__main__":
    main()
