"""What train.py and eval.py share at run time: processes, device and precision, prediction, files, one-line errors.

Not a part of the paper: the machinery around it, in one place so that the two entry points read as peers. It
imports no other file of this project (they import it).

- Processes: `launch(fn, args)` runs fn(args, device) here, in `--gpus N` spawned processes (NCCL on CUDA, gloo
  with `--device cpu`), or in the torchrun group whose RANK / WORLD_SIZE / LOCAL_RANK are set.
- Device and precision: `resolve_device`, `resolve_amp`, `usable_cpus`, `default_workers`, `loader_options`,
  `model_input` (uint8 clips to CLIP's normalised floats on the device), `flush_denormals`, `use_tf32`, `autocast`.
- Prediction: `predictions(model, dataset, ...)` -> Predictions: probabilities (N, C) and labels (N,) of the N
  scored samples, their indices and the unreadable ones left out ({"path", "reason"}), gathered over ranks in sample
  order; `accuracy(probs, labels, class_names)` -> top-1, top-5, mean
  per-class top-1, top-1 per class.
- Files: `atomic_write(path)` (temporary file, then rename; model.py's checkpoint files are written with it),
  `check_out` (an output folder that does not silently replace a run), `check_out_file` (--json and the like).
- Values: `check_values(args, limits)`, the ranges of an entry point's options, one table each.
- Errors a user can fix end in one line on stderr, exit status 2, no traceback: `fail(message)`, `one_line_errors()`.
- Stopping: SIGINT / SIGTERM set a flag (`stop_signal()`) that the training loop reads between optimiser steps;
  a second signal stops at once.
- DATASET_DEFAULTS: the per-dataset defaults of both command lines (DESIGN.md, "Per-dataset defaults").
"""
import argparse
import contextlib
import ctypes
import functools
import math
import multiprocessing.connection
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tqdm import tqdm

DATASETS = ("k400", "ucf101", "hmdb51", "list", "synthetic")   # the layouts of data.py, in --help order
TEST_SPLIT_IS_VAL = ("ucf101", "hmdb51")   # their "val" split is the official test split: never select on it

# A flag left unset takes its value from here. "list" files are usually Kinetics-like, so they share its column.
# eval_every 0 for UCF-101 / HMDB-51: their "val" split is the test split, so it is looked at once, at the end.
# views: eval.py's test views; test_views: train.py's multi-view test after the last epoch (none: eval.py does it,
# as a 4x3 pass over Kinetics' 20k val videos is a job of its own).
_KINETICS = dict(clip="ViT-B/16", frames=8, size=224, lr=8e-6, new_module_lr_mult=10.0, epochs=30, warmup_epochs=5,
                 batch_size=256, per_gpu_batch=8, eval_every=1, views="4x3", test_views="none")
_FEW_SHOT = dict(clip="ViT-B/16", frames=32, size=224, lr=2e-6, new_module_lr_mult=10.0, epochs=50, warmup_epochs=5,
                 batch_size=64, per_gpu_batch=4, eval_every=0, views="1x1", test_views="none")
DATASET_DEFAULTS = {
    "k400": _KINETICS, "list": _KINETICS, "ucf101": _FEW_SHOT, "hmdb51": _FEW_SHOT,
    # the tiny CLIP starts from random weights: its "new" modules are no newer than the rest, so one lr for all
    # (from the tiny-pretrained CLIP of pretrain.py ASU scores higher, but building it takes about 10 minutes once:
    # DESIGN.md, "The miniature CLIP");
    # 4 temporal views of 8 frames cover each frame of a 32-frame clip once (data.sample_indices)
    "synthetic": dict(clip="tiny", frames=8, size=112, lr=1e-3, new_module_lr_mult=1.0, epochs=30, warmup_epochs=1,
                      batch_size=16, per_gpu_batch=16, eval_every=1, views="4x1", test_views="4x1"),
}


# the options train.py and eval.py share, with their ranges (check_values); seeds: numpy's generators take no
# negative ones
COMMON_LIMITS = dict(frames=(1, None), size=(1, None), workers=(0, None), seed=(0, 2**32 - 1))


def defaults_help(key):
    """'k400 8, ucf101 32, ...' for a help line, from the table above."""
    return ", ".join(f"{name} {DATASET_DEFAULTS[name][key]}" for name in DATASETS)


def lr_factor(step, warmup_steps, total_steps, min_ratio=0.0):
    """Linear warm-up to 1, then cosine from 1 to min_ratio; stepped once per optimiser step (train.py, pretrain.py)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ------------------------------------------------------------------------------------------- One-line errors and help

class UsageError(SystemExit):
    """Exit status 2 (bad input, as argparse uses it) with the one-line `message` already printed."""

    def __init__(self, message):
        super().__init__(2)
        self.message = message

    def __str__(self):
        return self.message


def fail(message):
    """End the program with one clear line on stderr and exit status 2 (no traceback)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise UsageError(message)


def first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@contextlib.contextmanager
def one_line_errors(prefix=""):
    """Turn the ValueError / OSError that the components raise for bad input (their messages name the argument,
    file and line) into fail(). Wrap only calls whose errors are the user's to fix."""
    try:
        yield
    except (OSError, ValueError) as e:
        fail(prefix + first_line(e))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends '(default: X)' to a help line unless the line itself says what the default is."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def argument_parser(prog, description):
    """An ArgumentParser whose own errors (unknown choice, bad number) are one line too, not usage + error."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    parser.error = lambda message: fail(f"{prog}: {message}")
    return parser


# -------------------------------------------------------------------------------------------------------------- Files

@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """A temporary file beside `path`, synced and renamed over it when the block ends without error: a reader (or a
    crash mid-write) sees the old file or the new one, never a part. Named by process id: one per concurrent writer."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)   # still there only when the block failed


def write_text_atomic(path, text):
    with atomic_write(path, "w") as file:
        file.write(text)


RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "args.json", "test.json")   # what train.py writes into --out


def check_out(out, fresh, overwrite, files=RUN_FILES):
    """--out is a folder we can write into, and a new run (`fresh`) does not silently replace the run in it (any of
    `files`, what the entry point writes): with `overwrite` those files are removed, so none of the old run's is left
    to pass for the new one's."""
    if not str(out).strip():
        fail("--out '': give a folder")
    out = Path(out)
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        fail(f"--out {out}: cannot write there ({e.strerror or e})")
    held = [name for name in files if (out / name).exists()]
    if fresh and held:
        if not overwrite:
            again = f"continue it with --resume, " if "last.pt" in held else ""
            fail(f"--out {out} holds a run ({', '.join(held)}): {again}choose another --out, or add --overwrite to "
                 "replace it")
        if int(os.environ.get("RANK", 0)) == 0:   # under torchrun every rank checks, one removes
            for name in held:
                (out / name).unlink(missing_ok=True)


def check_out_file(path, flag):
    """An output file (`flag` names it) that can be written, checked before the work that fills it: its folder
    exists and takes a new file, and the path is not a folder."""
    path = Path(path)
    if not str(path).strip() or path.is_dir():
        fail(f"{flag} {path}: is a folder, not a file")
    if not path.parent.is_dir():
        fail(f"{flag} {path}: no such folder {path.parent}")
    try:
        probe = path.with_name(f".write_test{os.getpid()}")
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        fail(f"{flag} {path}: cannot write there ({e.strerror or e})")
    if path.exists() and not os.access(path, os.W_OK):
        fail(f"{flag} {path}: cannot write there (read-only file)")


def check_values(args, limits):
    """Each option of `limits` ({name: (low, high)}, None for no bound, both inclusive) within its range, and
    finite where it is a float; an option left unset (None) passes. One table per entry point instead of an if
    per flag; the values a model can hold (frames, sizes) are checked where the model is known."""
    for name, (low, high) in limits.items():
        value, flag = getattr(args, name), "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"{flag} {value}: must be a finite number")
        if low is not None and value < low:
            fail(f"{flag} {value}: must be at least {low}")
        if high is not None and value > high:
            fail(f"{flag} {value}: must be at most {high}")


# ----------------------------------------------------------------------------------------------- Device and precision

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
    """On CUDA bf16 where the GPU computes in it, else fp16 (with a GradScaler). On a CPU fp32 whatever the CPU:
    emulated bf16 (AVX2) is 4-7x slower, and native bf16 (AVX512-BF16) ran the embedded default's tiny model no
    faster (94 s against 99 s) and less accurate (0.885 against 0.917), so one precision keeps the default's figure
    the same on every CPU. `--amp bf16` still asks for it."""
    if args.amp is None:
        # without emulation: V100 / T4 "support" bf16 only by emulation, without tensor cores
        bf16 = args.device == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        args.amp = ("bf16" if bf16 else "fp16") if args.device == "cuda" else "off"


def usable_cpus():
    """The cores this process may run on: the CPU set a SLURM job or a container grants (sched_getaffinity), which
    os.cpu_count() ignores (it counts the whole machine's)."""
    with contextlib.suppress(AttributeError, OSError):   # sched_getaffinity: Linux only
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(device, processes=1):
    """Loader workers per process. On CUDA each of the machine's `processes` (one per GPU) gets its share of the
    usable cores less one for its own training loop, with no cap: decoding full-size video gives 2.5-4 training
    clips/s per worker, and a GPU takes hundreds (README, "Training on real data"); on a CPU the workers take cores
    from the model's threads, so none on a small machine."""
    if device == "cuda":
        return max(1, usable_cpus() // processes - 1)
    return usable_cpus() // 4


def _ignore_stop_signals(worker_id):
    """In a loader worker: SIGINT / SIGTERM are for the training process, which stops in order (a scheduler signals
    every process of the job); the worker ends when that process does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def loader_options(device, workers, persistent=False, prefetch=4):
    """DataLoader settings: pinned memory for faster, asynchronous copies to a GPU; with workers, each keeps
    `prefetch` batches in flight (4 for training: decoding times vary from video to video; evaluation asks for
    fewer, as its multi-view items are up to 12 times larger), ignores stop signals, and with `persistent` lives as
    long as its loader (the training loader: one for the whole run)."""
    options = dict(num_workers=workers, pin_memory=device.type == "cuda")
    if workers:
        options.update(persistent_workers=persistent, prefetch_factor=prefetch, worker_init_fn=_ignore_stop_signals)
    return options


# CLIP's pixel statistics (OpenAI's preprocessing). Clips travel as uint8 (a quarter of float32's bytes through the
# loader's shared memory and to the GPU); train.py and eval.py normalise them on the device with model_input.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@functools.lru_cache
def _clip_statistics(device):
    """CLIP_MEAN and CLIP_STD as (3, 1, 1) tensors on `device`, made once: a tensor built from a list is a blocking
    copy to a GPU, which every training step would otherwise wait for."""
    return (torch.tensor(CLIP_MEAN, device=device).view(3, 1, 1), torch.tensor(CLIP_STD, device=device).view(3, 1, 1))


def model_input(videos, device, augment=None):
    """uint8 videos (..., 3, S, S) from a loader -> float32 on `device`, scaled to [0, 1], CLIP mean/std.
    augment: a function of the [0, 1] floats run before the normalisation (train.py: the colour augmentation that a
    GPU does faster than the loader workers, data.colour_on_device)."""
    mean, std = _clip_statistics(device)
    videos = videos.to(device, non_blocking=True).float().div_(255)                      # (..., 3, S, S)
    return (augment(videos) if augment else videos).sub_(mean).div_(std)


def flush_denormals():
    """Floats below ~1e-38 (denormals) count as zero on the CPU (x86 FTZ/DAZ). A trained model's gradients fill with
    them, and a CPU computes on them many times slower: a step of the embedded default's trained model took 0.34 s
    against 0.16 s with this. Threads inherit the setting when they are created, so launch() calls this before
    torch starts its thread pool. GPUs are not affected."""
    torch.set_flush_denormal(True)


def use_tf32():
    """On CUDA, float32 matrix products and convolutions in TF32 (10-bit mantissa, 8x the fp32 rate on tensor
    cores): what --amp off runs in, and the float32 parts outside autocast. The precision bf16 autocast already
    accepts; a CPU is not affected."""
    torch.set_float32_matmul_precision("high")   # one API (torch refuses a mix of it and the per-backend one)
    torch.backends.cudnn.allow_tf32 = True


def autocast(device, amp):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


# ----------------------------------------------------------- Processes: one, spawned (--gpus N), or joined (torchrun)

def rank_and_world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_rank():
    """This process's index on its machine (LOCAL_RANK under torchrun; the rank when spawned here)."""
    return int(os.environ.get("LOCAL_RANK", rank_and_world()[0]))


# A collective that waits longer than this fails (NCCL's own default: 10 minutes). Steps take seconds; the longest
# regular wait is for rank 0 writing a large checkpoint. A hung rank is found after this long.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
# Ranks that wait for their machine's local rank 0 to set up (render synthetic data, download CLIP, encode the class
# and SU texts, look for every listed video: minutes for 240k videos on a slow file system) wait on a gloo group of
# their own with this limit, not on NCCL's (rank_zero_first).
SETUP_TIMEOUT = timedelta(hours=3)
_groups = {}


def _run_in_group(fn, args, rank, world_size, local_rank, init_method):
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)   # before NCCL starts, so each rank's communicator is on its own GPU
        device = torch.device("cuda", local_rank)
        use_tf32()
    else:
        device = torch.device("cpu")
    # The processes of a machine share its cores; oversubscribed intra-op threads make every process slower.
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    torch.set_num_threads(max(1, usable_cpus() // local_world))
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo", init_method=init_method, rank=rank,
                            world_size=world_size, timeout=COLLECTIVE_TIMEOUT,
                            device_id=device if args.device == "cuda" else None)
    _groups["setup"] = dist.new_group(backend="gloo", timeout=SETUP_TIMEOUT)
    try:
        result = fn(args, device)
        # Leave together, so that no rank closes its connections while another (rank 0, still writing the last
        # checkpoint) holds them open: an unannounced close is one way for gloo to abort the other process.
        dist.barrier()
        return result
    finally:
        _groups.clear()
        dist.destroy_process_group()


def _die_with_parent():
    """Ask Linux to send this process SIGTERM when its parent dies (a `kill -9` of the launcher), so that a
    spawned rank saves and stops instead of training on alone. Elsewhere nothing happens."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # 1 = PR_SET_PDEATHSIG


def _spawned(rank, fn, args, rendezvous_file):
    # Our own process group: a Ctrl-C in the terminal reaches the launcher only, which forwards it once to every
    # rank (see launch), so a rank never sees the first Ctrl-C twice (the second stops at once).
    os.setpgrp()
    _die_with_parent()
    os.environ["LOCAL_RANK"] = str(rank)
    flush_denormals()
    _run_in_group(fn, args, rank, args.gpus, rank, f"file://{rendezvous_file}")


def _wait_for_ranks(processes, grace_seconds=120):
    """Until every rank has ended. Once one fails, the others get `grace_seconds` to end on their own (ranks that
    stop on a signal leave together, rank 0 last, after writing its checkpoint) before they are terminated."""
    while any(p.is_alive() for p in processes) and not any(p.exitcode for p in processes):
        # with a timeout: a rank may end between the test above and this call
        multiprocessing.connection.wait([p.sentinel for p in processes if p.exitcode is None], timeout=1.0)
    deadline = time.time() + grace_seconds
    for process in processes:
        process.join(max(0.0, deadline - time.time()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join()


def launch(fn, args):
    """Run fn(args, device) in one process, in --gpus spawned processes, or in the torchrun group we are part of.
    Returns fn's result when it ran in this process (None after spawning). A spawned rank's exit status (2 for
    bad input, 130 / 143 after SIGINT / SIGTERM) becomes this process's."""
    flush_denormals()
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return _run_in_group(fn, args, int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                             int(os.environ.get("LOCAL_RANK", 0)), "env://")
    if args.gpus <= 1:
        if args.device == "cuda":
            use_tf32()
        return fn(args, torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu"))
    # The ranks meet through a file, not a TCP port: a port found free here can be taken by another program
    # before the ranks bind it (seen as a hang when several runs start at once).
    rendezvous = Path(tempfile.mkdtemp(prefix="asu_ranks_")) / "rendezvous"
    context = mp.start_processes(_spawned, args=(fn, args, str(rendezvous)), nprocs=args.gpus, join=False,
                                 start_method="spawn")
    def forward(signum, frame):
        for process in context.processes:
            if process.is_alive():
                os.kill(process.pid, signum)
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _wait_for_ranks(context.processes)
        context.join()   # all have ended: raises with the failing rank's traceback or exit status
    except mp.ProcessExitedException as e:
        if e.exit_code and e.exit_code > 0:  # the rank's own line (an error, or how to resume) is above
            raise SystemExit(e.exit_code) from None
        fail(f"worker process {e.error_index} died: {e}")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutil.rmtree(rendezvous.parent, ignore_errors=True)


@contextlib.contextmanager
def rank_zero_first():
    """Local rank 0 of each machine runs the body first (generating synthetic data, downloading CLIP weights,
    filling caches: per-machine work), then the other ranks, which find it done. They wait on the gloo group made
    for this (SETUP_TIMEOUT), so no NCCL collective is pending meanwhile."""
    rank, world_size = rank_and_world()
    group = _groups.get("setup") if world_size > 1 else None
    if local_rank() != 0:
        dist.barrier(group=group)
    yield
    if local_rank() == 0 and world_size > 1:
        dist.barrier(group=group)


def rng_state():
    """This process's RNG states as tensors / tuples, which torch.load(weights_only=True) reads back. No CUDA state:
    nothing draws from it (data randomness: per-sample numpy generators), and fewer GPUs could not restore it."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "python": random.getstate()}


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def all_rng_states():
    """RNG states of every rank (rank 0 writes the checkpoint, each rank restores its own)."""
    states = [rng_state()] * rank_and_world()[1]
    if len(states) > 1:
        dist.all_gather_object(states, states[0])
    return states


_stop = {"signal": 0}


def _on_stop_signal(signum, frame):
    _stop["signal"] = signum
    for s in (signal.SIGINT, signal.SIGTERM):   # the next one ends the process at once
        signal.signal(s, signal.SIG_DFL)


def catch_stop_signals():
    """From now on SIGINT and SIGTERM only set stop_signal(); the second one ends the process at once."""
    _stop["signal"] = 0
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _on_stop_signal)


def stop_signal():
    """The signal number of a stop request received by this process (0: none)."""
    return _stop["signal"]


# --------------------------------------------------------------------------------------------------------- Prediction

@dataclass
class Predictions:
    """What `predictions` returns: the same on every rank, in sample order."""
    probs: torch.Tensor   # (N, C) class probabilities of the N samples scored
    labels: torch.Tensor  # (N,)
    indices: list         # (N,) the dataset index of each scored sample
    unreadable: list      # [{"path", "reason"}] the samples left out, unreadable
    replaced: int         # samples the dataset replaced by another one (a dataset built with replace_unreadable)


def _collate_readable(batch):
    """default_collate of the batch's readable items; the unreadable ones ({"path", "reason"} dicts of a dataset that
    does not replace them) come back apart: -> (collated or None, their positions, [(position, dict)])."""
    positions = [k for k, item in enumerate(batch) if not isinstance(item, dict)]
    left_out = [(k, item) for k, item in enumerate(batch) if isinstance(item, dict)]
    collated = torch.utils.data.default_collate([batch[k] for k in positions]) if positions else None
    return collated, positions, left_out


def parse_views(text, flag="--views"):
    """'4x3' -> (4, 3): temporal x spatial test views (1 or 3 spatial crops); a bad value ends in one line."""
    try:
        temporal, spatial = (int(n) for n in text.lower().split("x"))
    except ValueError:
        fail(f"{flag} {text!r}: expected TxS, e.g. 4x3")
    if temporal < 1 or spatial not in (1, 3):
        fail(f"{flag} {text!r}: temporal views >= 1 and 1 or 3 spatial crops")
    return temporal, spatial


@torch.no_grad()
def predictions(model, dataset, device, amp, batch_size, workers=0, progress=False, strict=False):
    """Class probabilities of every readable sample, gathered over ranks: a Predictions. Items are (video, label,
    replaced) or, for an unreadable video the dataset leaves out, {"path", "reason"}: such a sample is not scored
    but listed; strict=True ends at the first one instead (fail(): one line, exit status 2). Multi-view items
    (V, T, 3, S, S) are scored one view at a time and the softmax probabilities averaged over the views (our
    reading of "multi-view averaging"; averaging logits is the other common choice)."""
    model.eval()
    rank, world_size = rank_and_world()
    indices = list(range(rank, len(dataset), world_size))
    # each worker one batch ahead, two with one view: a 4x3-view batch is 12 times a training batch
    multi_view = getattr(dataset, "views", (1, 1)) != (1, 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=indices, collate_fn=_collate_readable,
                                         **loader_options(device, workers, prefetch=1 if multi_view else 2))
    probs, labels, scored, unreadable, replaced = [], [], [], [], 0
    start = 0   # position in `indices` of the batch's first sample (the loader keeps the sampler's order)
    for collated, positions, left_out in tqdm(loader, desc="eval", disable=not progress or rank != 0, leave=False):
        for k, item in left_out:
            if strict:
                fail(f"{item['path']}: {item['reason']} (unreadable; --strict stops at the first such video)")
            unreadable.append((indices[start + k], item))
        scored += [indices[start + k] for k in positions]
        start += len(positions) + len(left_out)
        if collated is None:
            continue
        videos, batch_labels, batch_replaced = collated
        videos = videos.to(device, non_blocking=True)                        # uint8: normalised one view at a time
        videos = videos[:, None] if videos.dim() == 5 else videos            # (B, V, T, 3, S, S); V = 1: one view
        view_probs = 0
        for v in range(videos.shape[1]):
            with autocast(device, amp):
                logits = model(model_input(videos[:, v], device))            # (B, C)
            view_probs = view_probs + logits.float().softmax(-1)
        probs.append((view_probs / videos.shape[1]).cpu())
        labels.append(batch_labels)
        replaced += int(batch_replaced.sum())
    parts = [(scored, probs, labels, unreadable, replaced)] * world_size
    if world_size > 1:
        dist.all_gather_object(parts, parts[0])
    # each of the first four lists, concatenated over ranks
    scored, probs, labels, unreadable = ([x for part in parts for x in part[k]] for k in range(4))
    order = torch.tensor(scored, dtype=torch.long).argsort()
    return Predictions(probs=torch.cat(probs)[order] if probs else torch.zeros(0, 0),           # (N, C)
                       labels=torch.cat(labels)[order] if labels else torch.zeros(0, dtype=torch.long),
                       indices=[scored[i] for i in order.tolist()],
                       unreadable=[item for _, item in sorted(unreadable)],
                       replaced=sum(part[4] for part in parts))


def accuracy(probs, labels, class_names=None):
    """top-1, top-5 and mean per-class top-1 (over the classes that have samples); with class_names also
    per_class, {class name: top-1} for those classes in label order."""
    result, per_class = {"top1": float("nan"), "top5": float("nan"), "mean_class": float("nan")}, {}
    if len(labels):
        top5 = probs.topk(min(5, probs.shape[1]), dim=1).indices                # (N, 5)
        correct1 = top5[:, 0] == labels
        per_class = {int(c): correct1[labels == c].float().mean().item() for c in labels.unique()}
        result = {"top1": correct1.float().mean().item(),
                  "top5": (top5 == labels[:, None]).any(1).float().mean().item(),
                  "mean_class": sum(per_class.values()) / len(per_class)}
    if class_names is not None:
        result["per_class"] = {class_names[c]: top1 for c, top1 in per_class.items()}
    return result


def check_scored(scores, split):
    """Predictions that scored at least one video: a score over none would be NaN, a number no run earned."""
    if not len(scores.labels):
        first = scores.unreadable[0] if scores.unreadable else {"path": "-", "reason": "no video"}
        fail(f"none of the {len(scores.unreadable)} {split} videos could be read (first: {first['path']}: "
             f"{first['reason']}); there is no score to report")


def score_test_set(model, dataset, device, amp, batch_size, workers=0, progress=False, strict=False):
    """A test set scored (predictions, then accuracy): the result fields eval.py and train.py's final test
    report: classes, videos (the number scored), unreadable, top1, top5, mean_class, per_class."""
    scores = predictions(model, dataset, device, amp, batch_size, workers, progress=progress, strict=strict)
    check_scored(scores, "test")
    return dict(classes=len(dataset.class_names), videos=len(scores.labels), unreadable=scores.unreadable,
                **accuracy(scores.probs, scores.labels, dataset.class_names))
