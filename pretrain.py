"""Pretraining of the miniature CLIP: the paper in miniature needs a CLIP that knows its world.

ASU selects semantic units by their similarity to frame and region features in CLIP's joint space, so it starts from
a CLIP whose text tower already knows body parts, objects and scenes. OpenAI's CLIP learnt ours from captioned web
images; the tiny CLIP learns the synthetic world here, from captioned frames of the renderer (synthetic.py), with
CLIP's own recipe: both towers from random weights, the symmetric contrastive loss, a learnable temperature.

In:  nothing but the renderer. Each step draws B frames of fresh clips (synthetic.render_clip: any motion in any
     scene but the HELD_OUT pairs) in loader workers, each with one partial caption (synthetic.caption).
Out: in --out: clip.pt (an OpenAI-format state dict: clip_vit.load_clip and `train.py --clip PATH` take it),
     pretrain.json (zero-shot top-1 on frames never trained on: scene, object, pose, each {"seen", "held_out"},
     where held_out frames come from the (motion, scene) pairs no caption ever described), last.pt (the run:
     --resume continues it after Ctrl-C).

Loss (our reading of CLIP for partial captions, as UniCL's multi-positive targets): caption j is a positive of
frame i when every fact it states holds for frame i (synthetic.frame_facts), so "a photo of a ball." has every
frame with a ball as a positive; a caption that states a fact frame i leaves open (a pose between two states) is
left out of frame i's softmax and frame i out of its softmax.

    frames (B, S, S, 3) uint8 -> encode_image -> (B, D);  captions [str] * B -> encode_text -> (B, D)
    logits = scale * cos (B, B);  loss = (CE over captions per frame + CE over frames per caption) / 2
"""
import argparse
import hashlib
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import clip_vit
import runtime
import synthetic
from runtime import fail

# (motion, scene) pairs never rendered in pretraining: one scene per motion, each scene left out for two or three
# motions. pretrain.json's "held_out" figures are measured on them.
HELD_OUT = (("walk", "beach"), ("sit_down", "street"), ("stand_up", "beach"), ("wave", "room"),
            ("wave_flag", "street"), ("kick", "beach"), ("throw", "street"), ("jump", "park"), ("bounce", "park"))
SEEN = tuple((m, s) for m in synthetic.MOTIONS for s in synthetic.SCENES if (m, s) not in HELD_OUT)
RECIPE_VERSION = 2   # bump when the recipe changes in a way the flags do not show: cached CLIPs are built again
CACHE = Path(__file__).resolve().parent / ".cache" / "clip"   # where train.py keeps the tiny-pretrained CLIP
RUN_FILES = ("last.pt", "clip.pt", "pretrain.json")   # what a run writes into --out


def build_parser():
    p = runtime.argument_parser("pretrain.py", "Pretrain the miniature CLIP on captioned frames of the synthetic "
                                "world (the backbone of train.py --clip tiny-pretrained).")
    p.add_argument("--out", default="runs/pretrain", help="output folder: clip.pt, pretrain.json, last.pt")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps (about 10 minutes on 2 cores; from the "
                   "CLIP of 350 steps ASU learnt less than from random weights: DESIGN.md)")
    p.add_argument("--batch-size", type=int, default=128, help="frames (and captions) per step")
    p.add_argument("--frames-per-clip", type=int, default=1, help="frames drawn from each rendered clip (1: every frame of a batch from its own clip, the most varied batch)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW)")
    p.add_argument("--warmup-steps", type=int, default=30, help="linear warm-up, then cosine to zero")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices only)")
    p.add_argument("--size", type=int, default=112, help="frame size in pixels (the tiny CLIP's input)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the frames and the captions")
    p.add_argument("--workers", type=int, default=1, help="loader workers that render frames")
    p.add_argument("--eval-clips", type=int, default=8, help="test clips per (motion, scene) pair for pretrain.json")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out that holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def check_options(args):
    for flag in ("steps", "batch_size", "frames_per_clip", "size", "eval_clips"):
        if getattr(args, flag) < 1:
            fail(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least 1")
    if args.batch_size % args.frames_per_clip:
        fail(f"--batch-size {args.batch_size} is not a multiple of --frames-per-clip {args.frames_per_clip}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        fail(f"--lr {args.lr}: must be a positive number")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        fail(f"--weight-decay {args.weight_decay}: must be a number, not negative")
    for flag in ("warmup_steps", "workers", "seed"):
        if getattr(args, flag) < 0:
            fail(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must not be negative")
    if args.resume and not (Path(args.out) / "last.pt").is_file():
        fail(f"--resume: {Path(args.out) / 'last.pt'} does not exist (start a run with this --out first)")
    if args.size % 16:
        fail(f"--size {args.size}: must be a multiple of the tiny CLIP's 16-pixel patches")
    runtime.check_out(args.out, fresh=not args.resume, overwrite=args.overwrite, files=RUN_FILES)


# ------------------------------------------------------------------------------------------------ Captioned frames

def match(facts, captions):
    """(B, B) bool positives and ignored: caption j holds for frame i / states a kind or fact frame i leaves open."""
    positives = np.zeros((len(facts), len(captions)), bool)
    ignored = np.zeros_like(positives)
    for j, (_, stated) in enumerate(captions):
        open_to = stated | {kind for kind, _ in stated}   # a frame leaves open a kind or a single fact
        for i, (known, unknown) in enumerate(facts):
            positives[i, j] = stated <= known
            ignored[i, j] = not positives[i, j] and bool(open_to & unknown)
    return positives, ignored


def captioned_batch(seed, step, batch_size, frames_per_clip, size, pairs=SEEN):
    """Step `step`'s batch, the same whoever renders it: frames (B, S, S, 3) uint8, captions [str], and the
    (B, B) positives and ignored of the loss."""
    rng = np.random.default_rng([seed, step])
    frames, records = [], []
    for _ in range(batch_size // frames_per_clip):
        motion, scene = pairs[rng.integers(len(pairs))]
        clip, clip_records = synthetic.render_clip(motion, scene, frames_per_clip, size, int(rng.integers(2 ** 62)),
                                                   balanced=True)
        frames.append(clip)
        records += clip_records
    captions = [synthetic.caption(record, rng) for record in records]
    positives, ignored = match([synthetic.frame_facts(record) for record in records], captions)
    return (torch.from_numpy(np.concatenate(frames)), [text for text, _ in captions], torch.from_numpy(positives),
            torch.from_numpy(ignored))


class CaptionedFrames(torch.utils.data.IterableDataset):
    """Batches of steps `start`, `start` + 1, ...; worker k of n renders the steps k, k + n, ..., which the loader
    hands out in order, so a run is the same with any number of workers."""

    def __init__(self, args, start):
        self.args, self.start = args, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        a = self.args
        for step in range(self.start + worker, a.steps, workers):
            yield captioned_batch(a.seed, step, a.batch_size, a.frames_per_clip, a.size)


# ----------------------------------------------------------------------------------------------------------- Model

def new_clip(seed, size):
    """The tiny CLIP's architecture (clip_vit.tiny_clip) with CLIP's initial temperature, 0.07, to be learnt."""
    model = clip_vit.tiny_clip(seed=seed, image_resolution=size).train()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    return model


def contrastive_loss(image_features, text_features, logit_scale, positives, ignored):
    """CLIP's symmetric loss with multi-positive targets: the mean log-probability of the positives, per frame
    (over captions) and per caption (over frames); ignored pairs are out of both softmaxes."""
    logits = logit_scale.exp().clamp(max=100) * F.normalize(image_features, dim=-1) @ F.normalize(text_features,
                                                                                                   dim=-1).t()  # (B, B)
    logits = logits.masked_fill(ignored, float("-inf"))

    def side(log_probs, dim):
        return -(log_probs.masked_fill(~positives, 0).sum(dim) / positives.sum(dim)).mean()
    return (side(logits.log_softmax(1), 1) + side(logits.log_softmax(0), 0)) / 2


def encode_captions(model, captions):
    """Text features (B, D) of a batch's captions, each distinct caption encoded once."""
    distinct = sorted(set(captions))
    features = model.encode_text(clip_vit.tokenize(distinct, model.context_length))  # (U, D)
    return features[torch.tensor([distinct.index(c) for c in captions])]  # (B, D)


def param_groups(model, weight_decay):
    """Weight decay on the matrices, not on gains, biases, embeddings or the temperature (as open_clip)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


# ------------------------------------------------------------------------------------------------------ Zero-shot

def test_frames(pairs, clips, size, seed):
    """Frames of `clips` clips per pair, none of them drawn in training (their own seeds): (N, S, S, 3), records."""
    frames, records = [], []
    for k, (motion, scene) in enumerate(pairs):
        for c in range(clips):
            clip, clip_records = synthetic.render_clip(motion, scene, 4, size, [seed, 7919, k, c], balanced=True)
            frames.append(clip)
            records += clip_records
    return torch.from_numpy(np.concatenate(frames)), records


def zero_shot_tests():
    """What pretrain.json scores: per key, the prompts and each record's answer (None: not scored)."""
    poses, scenes, objects = list(synthetic.POSES), list(synthetic.SCENES), ("ball", "flag", "chair")
    return {
        "scene": ([f"a photo of {synthetic.SCENE_WORDS[s][0]}." for s in scenes], lambda r: scenes.index(r["scene"])),
        "object": ([f"a photo of a {o}." for o in objects],
                   lambda r: 0 if r["ball"] else 1 if r["flag"] else 2 if r["chair"] else None),
        "pose": ([f"a photo of a person {synthetic.POSES[p][0]}." for p in poses],
                 lambda r: poses.index(r["pose"]) if r["pose"] else None),
    }


@torch.no_grad()
def zero_shot(model, test_sets):
    """pretrain.json's figures: {key: {set name: top-1}} for the keys of zero_shot_tests."""
    model.eval()
    results = {}
    for name, (frames, records) in test_sets.items():
        images = torch.cat([F.normalize(model.encode_image(runtime.model_input(frames[k:k + 256].permute(0, 3, 1, 2),
                                                                                 torch.device("cpu"))), dim=-1)
                            for k in range(0, len(frames), 256)])  # (N, D)
        for key, (prompts, answer) in zero_shot_tests().items():
            texts = F.normalize(model.encode_text(clip_vit.tokenize(prompts, model.context_length)), dim=-1)
            answers = [answer(r) for r in records]
            scored = [i for i, a in enumerate(answers) if a is not None]
            right = (images[scored] @ texts.t()).argmax(1) == torch.tensor([answers[i] for i in scored])
            results.setdefault(key, {})[name] = round(right.float().mean().item(), 4)
    model.train()
    return results


# -------------------------------------------------------------------------------------------------------- The run

def save_state(path, model, optimizer, step, args, log):
    with runtime.atomic_write(path) as file:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "args": vars(args), "log": log}, file)


def pretrain(args):
    """The run: returns pretrain.json's dict. Ctrl-C saves last.pt and exits 130 (continue with --resume)."""
    out = Path(args.out)
    torch.manual_seed(args.seed)
    model = new_clip(args.seed, args.size)
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    start, log = 0, []
    if args.resume:
        state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, log = state["step"], state["log"]
    started = time.time()
    loader = torch.utils.data.DataLoader(CaptionedFrames(args, start), batch_size=None,
                                         **runtime.loader_options(torch.device("cpu"), args.workers))
    runtime.catch_stop_signals()
    bar = tqdm(total=args.steps, initial=start, desc="pretraining the tiny CLIP", disable=args.no_progress,
               dynamic_ncols=True)
    for step, (frames, captions, positives, ignored) in enumerate(loader, start):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * runtime.lr_factor(step, args.warmup_steps, args.steps)
        images = model.encode_image(runtime.model_input(frames.permute(0, 3, 1, 2), torch.device("cpu")))  # (B, D)
        loss = contrastive_loss(images, encode_captions(model, captions), model.logit_scale, positives, ignored)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))   # as OpenAI's and open_clip's training
        log.append(round(loss.item(), 4))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
        signum = runtime.stop_signal()
        if signum:
            save_state(out / "last.pt", model, optimizer, step + 1, args, log)
            bar.close()
            print(f"stopped; {out / 'last.pt'} holds the run. Continue it with:\n  python pretrain.py --resume "
                  f"--out {shlex.quote(str(out))}", file=sys.stderr, flush=True)
            raise SystemExit(128 + signum)
    bar.close()
    seconds = time.time() - started
    save_state(out / "last.pt", model, optimizer, args.steps, args, log)
    learned_scale = model.logit_scale.exp().item()
    with torch.no_grad():   # OpenAI's published weights are fp16 values: so are ours (frozen parts store exactly)
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
        # ASU freezes CLIP's logit scale, which a trained CLIP has at its clamp, 100; 350 steps of partial captions
        # leave it near its start (about 14), where a frozen class-name matrix caps the logit gap between similar
        # names (clip_vit.tiny_clip says the same of the random tower). Zero-shot top-1 does not depend on it.
        model.logit_scale.fill_(math.log(100))
    test_sets = {"seen": test_frames(SEEN, args.eval_clips, args.size, args.seed),
                 "held_out": test_frames(HELD_OUT, args.eval_clips * len(SEEN) // len(HELD_OUT), args.size,
                                         args.seed)}
    results = dict(zero_shot(model, test_sets), steps=args.steps, train_seconds=round(seconds, 1),
                   final_loss=float(np.mean(log[-20:])) if log else None, learned_logit_scale=round(learned_scale, 2))
    with runtime.atomic_write(out / "clip.pt") as file:
        torch.save(model.state_dict(), file)
    runtime.write_text_atomic(out / "pretrain.json", json.dumps(results, indent=2) + "\n")
    return results


def recipe_key(args):
    """What a cached CLIP depends on: the renderer, the recipe and its options."""
    options = {k: v for k, v in vars(args).items() if k not in ("out", "resume", "overwrite", "no_progress",
                                                                   "workers")}
    text = json.dumps([synthetic.VERSION, RECIPE_VERSION, options], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_pretrained(cache=CACHE, progress=True):
    """The path of the tiny-pretrained CLIP (pretrain.py's defaults), pretrained here on first use and again when the
    renderer or the recipe changes. Used by train.py for --clip tiny-pretrained."""
    args = build_parser().parse_args([])
    out = Path(cache) / f"tiny-pretrained-{recipe_key(args)}"
    if not (out / "clip.pt").is_file():
        print(f"building the tiny-pretrained CLIP into {out} (pretrain.py with its defaults, once; about 10 minutes "
              "on 2 cores)", flush=True)
        main(["--out", str(out), "--overwrite"] + ([] if progress else ["--no-progress"]))
    return out / "clip.pt"


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_options(args)
    results = pretrain(args)
    print(json.dumps({k: results[k] for k in ("scene", "object", "pose")}) +
          f"  ({results['train_seconds']:.0f} s; {Path(args.out) / 'clip.pt'})", flush=True)
    return results


if __name__ == "__main__":
    runtime.flush_denormals()
    main()
