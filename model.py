"""The whole ASU model (paper: figure 2), wired from clip_vit.py, mra.py, semantic_units.py and decoder.py.

    videos (B, T, 3, H, W)
      -> MRA visual branch          global g (B, T, D), regions r (B, T, R, D), patches p (B, T, N, D)
      -> SU selection               F = [g, r] (B, T, R+1, D) attends to the SU bank U (S, D) -> queries
      -> cross-modal decoder        queries attend to the memory [g, r, p] of all frames -> z (B, D)
                                    (+ the temporal contrast of g's two halves, decoder.py)
      -> video feature              v = mean_t(g) + gate * z                        (gate zero at init)
      -> logits (B, C)              exp(logit_scale) * cos(v, W), W = class-name text embeddings (C, D)

The text encoder is frozen: class-name and SU embeddings are computed once (clip_vit.encode_texts, cached on disk
with `cache_dir`) and kept as non-persistent buffers, so a checkpoint does not depend on the label set and
`set_class_names` swaps it for zero-shot evaluation. Ablations: `mra_layers=0` (no regions, R = 0);
`decoder_layers=0` together with `mra_layers=0` is the plain CLIP mean-pooling baseline (ViFi-CLIP style).

Also here: `build_model(options, class_names)`, the ASU that train.py's options describe, and
`model_from_checkpoint(checkpoint, path)`, the ASU a checkpoint holds (train.py and eval.py both build through
them); the SU bank a checkpoint carries goes in and out through `units_to_state` / `units_from_state`; checkpoint
files are written with `save_checkpoint` (atomically) and read with `load_checkpoint`, which names what a file is
when it is not a train.py checkpoint (a CLIP file, a video, ...) in one line. `training_memory_gib` estimates one
training process's GPU memory (train.py switches --grad-ckpt on by it).
"""
import argparse
import re
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import pretrain
from clip_vit import build_clip, encode_texts, load_clip, tiny_clip
from decoder import QUERIES, CrossModalDecoder, LearnedQueries, SUSelection
from mra import MultiRegionViT, parse_grids
from runtime import atomic_write, fail
from semantic_units import (SemanticUnit, SemanticUnits, extract_semantic_units, load_descriptions,
                            normalize_class_name, su_text_embeddings)


MAX_FRAMES = 64   # frames per clip the time-embedding tables of SU selection and decoder hold


def class_prompt(class_name):
    """The text whose embedding stands for a class."""
    return f"a video of a person {normalize_class_name(class_name)}."


class ASU(nn.Module):
    def __init__(self, clip, class_names, semantic_units=None, mra_grids=((2, 2), (3, 3)), mra_layers=2,
                 su_topk=8, decoder_layers=2, decoder_memory="all", temporal="halves", queries="units", cache_dir=None,
                 max_frames=MAX_FRAMES, progress=False):
        """clip: a clip_vit.CLIP (its visual branch is fine-tuned, its text tower frozen);
        class_names: the label set; semantic_units: a SemanticUnits bank (None = extracted from class_names);
        mra_grids / mra_layers: MRA region scales and how many final ViT blocks carry region tokens (0 = none);
        su_topk: units kept per visual token (0 = all); decoder_layers: cross-modal decoder depth (0 = no SU
        selection and no decoder, which needs mra_layers=0: the CLIP mean-pooling baseline);
        decoder_memory: "all" (global, regions and patches of every frame) or "regions" (global and regions);
        temporal: the decoder's temporal path, "halves" or "none" (decoder.py); queries: "units" (attentive SU
        selection) or "learned" (the ablation with input-independent learned queries);
        cache_dir: where text embeddings are cached; max_frames: length of the time-embedding tables;
        progress: tqdm bars while a large label set's texts are encoded (clip_vit.encode_texts)."""
        super().__init__()
        if decoder_memory not in ("all", "regions"):
            raise ValueError(f"model.py ASU: decoder_memory must be 'all' or 'regions', got {decoder_memory!r}")
        if decoder_layers < 0 or mra_layers < 0:
            raise ValueError(f"model.py ASU: decoder_layers={decoder_layers} and mra_layers={mra_layers} must be >= 0")
        if decoder_layers == 0 and mra_layers > 0:
            raise ValueError("model.py ASU: mra_layers > 0 needs decoder_layers > 0 (region features only feed the "
                             "SU selection and decoder); for the mean-pooling baseline set both to 0")
        if queries not in QUERIES:
            raise ValueError(f"model.py ASU: queries must be one of {QUERIES}, got {queries!r}")
        self.decoder_memory = decoder_memory
        self.cache_dir = cache_dir
        # The CLIP (text tower used by set_class_names) and the visual branch that wraps the same clip.visual:
        # the visual weights appear under both "clip.visual." and "visual.visual." in state_dict, shared tensors
        # that torch.save stores once.
        self.clip = clip
        for name, parameter in clip.named_parameters():
            if not name.startswith("visual."):
                parameter.requires_grad_(False)  # text tower and logit_scale frozen (our reading, as ViFi-CLIP)
        self.visual = MultiRegionViT(clip.visual, grids=mra_grids, layers=mra_layers)
        dim = clip.visual.output_dim
        if decoder_layers:
            num_tokens = self.visual.num_regions + 1
            self.selection = (SUSelection(dim, num_tokens, topk=su_topk, max_frames=max_frames) if queries == "units"
                              else LearnedQueries(dim, num_tokens, max_frames=max_frames))
            self.decoder = CrossModalDecoder(dim, layers=decoder_layers, max_frames=max_frames, temporal=temporal)
        else:
            self.selection = self.decoder = None
        self.register_buffer("class_embeddings", None, persistent=False)
        self.register_buffer("su_bank", None, persistent=False)
        self.set_class_names(class_names, semantic_units, progress)

    @torch.no_grad()
    def set_class_names(self, class_names, semantic_units=None, progress=False):
        """Swap the label set (zero-shot). Without `semantic_units` the SU bank is extracted from the new class
        names (our reading: the bank describes the action set in use). progress: bars for large text sets."""
        class_names = list(class_names)
        if not class_names:
            raise ValueError("model.py ASU.set_class_names: class_names is empty")
        device = self.clip.logit_scale.device
        self.class_names = class_names
        self.class_embeddings = encode_texts(self.clip, [class_prompt(name) for name in class_names],
                                             cache_dir=self.cache_dir, progress=progress).to(device)  # (C, D)
        if self.decoder is None:
            self.semantic_units = semantic_units
            return
        if semantic_units is None:
            semantic_units = extract_semantic_units(class_names)
        if not semantic_units.units:
            raise ValueError("model.py ASU.set_class_names: the SU bank is empty")
        self.semantic_units = semantic_units
        su_bank = su_text_embeddings(self.clip, semantic_units.units, cache_dir=self.cache_dir,
                                     progress=progress)                                   # (S, D)
        self.su_bank = su_bank.to(device)

    def forward(self, videos, return_attention=False):
        """videos (B, T, 3, H, W) -> logits (B, C); with return_attention also a dict with "su_attention"
        (B, T, R+1, S), the SU selection weights per frame and visual token (global first, then the regions; None
        for the baseline), and "video_features" (B, D), the L2-normalised video representation v."""
        if videos.dim() != 5:
            raise ValueError(f"model.py ASU.forward: videos must be (B, T, 3, H, W), got {tuple(videos.shape)}")
        B, T = videos.shape[:2]
        global_features, regions, patches = self.visual(videos.flatten(0, 1))   # (B*T, D), (B*T, R, D), (B*T, N, D)
        D = global_features.shape[-1]
        global_features = global_features.reshape(B, T, D)                       # (B, T, D)
        video_features = global_features.mean(dim=1)                              # (B, D)
        su_attention = None
        if self.decoder is not None:
            regions = regions.reshape(B, T, regions.shape[1], D)                        # (B, T, R, D)
            visual_tokens = torch.cat([global_features[:, :, None], regions], dim=2)   # (B, T, R+1, D)
            queries, su_attention = self.selection(visual_tokens, self.su_bank)   # (B, T*(R+1), D), (B, T, R+1, S)
            memory = visual_tokens
            if self.decoder_memory == "all":
                memory = torch.cat([visual_tokens, patches.reshape(B, T, -1, D)], dim=2)  # (B, T, R+1+N, D)
            z = self.decoder(queries, memory)                                     # (B, D)
            video_features = video_features + self.decoder.gate * z               # (B, D)
        with torch.autocast(videos.device.type, enabled=False):  # logits in fp32 whatever the AMP setting
            video_features = F.normalize(video_features.float(), dim=-1)                   # (B, D)
            logits = self.clip.logit_scale.exp() * video_features @ self.class_embeddings.t()  # (B, C)
        if return_attention:
            return logits, {"su_attention": su_attention, "video_features": video_features}
        return logits

    def param_groups(self, lr, new_module_lr_mult=10.0, weight_decay=0.001):
        """AdamW groups: CLIP weights at lr, new modules (MRA region embedding, selection, decoder) at
        lr * new_module_lr_mult; no weight decay on 1-D parameters (biases, norms), embeddings, gate, temperature."""
        groups = {}
        for name, parameter in self.named_parameters():  # shared visual weights come once, as "clip.visual.*"
            if not parameter.requires_grad:
                continue
            new = not name.startswith("clip.")
            decay = parameter.ndim >= 2 and "embedding" not in name
            groups.setdefault((new, decay), []).append(parameter)
        return [{"name": ("new" if new else "clip") + ("" if decay else "_no_decay"), "params": params,
                 "lr": lr * (new_module_lr_mult if new else 1.0), "weight_decay": weight_decay if decay else 0.0}
                for (new, decay), params in sorted(groups.items())]


# ----------------------------------------------------------------------------------------------------------------
# Building the model from command-line options, and from a checkpoint

def build_model(options, class_names, clip=None, semantic_units=None, device=None):
    """ASU from the options of train.py (an argparse Namespace, or the dict a checkpoint saves), on `device`
    (default: the CPU), where it also encodes the class-name and SU texts. clip: an already
    built CLIP (a checkpoint's), default the one `options.clip` names ('tiny': random init; 'tiny-pretrained': the
    miniature CLIP of pretrain.py, pretrained into its cache on first use); semantic_units: a
    SemanticUnits bank, default extracted from class_names (and `options.descriptions`); `options.no_progress`
    (absent: True) silences the bars of a large label set's text encoding. Bad options raise ValueError / OSError
    with a message naming the flag."""
    options = argparse.Namespace(**options) if isinstance(options, dict) else options
    if clip is None:
        if options.clip == "tiny":
            clip = tiny_clip(seed=options.seed)
        elif options.clip == "tiny-pretrained":
            clip = load_clip(pretrain.ensure_pretrained(progress=not getattr(options, "no_progress", True)))
        else:
            try:
                clip = load_clip(options.clip)
            except Exception as e:  # a wrong file can fail in many ways; name the argument, keep one line
                raise ValueError(f"--clip {options.clip}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if semantic_units is None and options.descriptions:
        try:
            descriptions = load_descriptions(options.descriptions)
        except (OSError, ValueError) as e:
            raise ValueError(f"--descriptions: {e}") from None
        semantic_units = extract_semantic_units(class_names, descriptions)
    check_input_size(options.size, clip, parse_grids(options.mra_grids) if options.mra_layers else ())
    if device is not None:
        clip = clip.to(device)   # before ASU(): its text embeddings are computed on the clip's device
    model = ASU(clip, class_names, semantic_units=semantic_units, mra_grids=parse_grids(options.mra_grids),
                mra_layers=options.mra_layers, su_topk=options.su_topk, decoder_layers=options.decoder_layers,
                decoder_memory=options.decoder_memory, cache_dir=options.cache_dir,
                # checkpoints written before these options existed hold a decoder without them
                temporal=getattr(options, "temporal", "none"), queries=getattr(options, "queries", "units"),
                progress=not getattr(options, "no_progress", True))
    if getattr(options, "grad_ckpt", False):
        for module in model.modules():
            if hasattr(module, "grad_checkpointing"):
                module.grad_checkpointing = True
    return model if device is None else model.to(device)


def check_input_size(size, clip, grids):
    """--size must be a whole number of CLIP's patches, and the patch grid must hold the finest MRA grid."""
    check_size_for_patch(size, clip.visual.conv1.kernel_size[0], grids)


def check_size_for_patch(size, patch, grids):
    """check_input_size for a CLIP of `patch`-pixel patches (eval.py checks --size before building the model)."""
    if size % patch:
        raise ValueError(f"--size {size}: not a multiple of the CLIP's {patch}-pixel patches (e.g. {patch * 14})")
    finest = max((max(grid) for grid in grids), default=1)
    if size // patch < finest:
        raise ValueError(f"--size {size}: {size // patch} x {size // patch} patches cannot hold the {finest} x "
                         f"{finest} MRA grid; use at least {finest * patch}")


def units_to_state(units):
    """A SemanticUnits bank as plain lists, so a checkpoint carries the SUs it was trained with."""
    if units is None:
        return None
    return {"units": [[unit.text, unit.kind] for unit in units.units], "by_class": [list(c) for c in units.by_class]}


def units_from_state(state):
    if state is None:
        return None
    return SemanticUnits([SemanticUnit(text, kind) for text, kind in state["units"]],
                         [list(c) for c in state["by_class"]])


def load_model_state(model, state_dict, path):
    """load_state_dict(strict) with a one-line ValueError for a checkpoint of another model."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or mismatched:
        parts = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                 if keys]
        raise ValueError(f"checkpoint {path} holds another model: " + ", ".join(parts))
    model.load_state_dict(state_dict)


def model_from_checkpoint(checkpoint, path, cache_dir=None, progress=False, device=None):
    """The ASU of a train.py checkpoint (a dict), built from its own tensors on `device` (default: the CPU): the CLIP
    file it started from is not needed. Its label set and SU bank are the ones it was trained with. progress: bars
    while encoding texts."""
    clip_state = {k[len("clip."):]: v for k, v in checkpoint["model"].items() if k.startswith("clip.")}
    try:
        clip = build_clip(clip_state)
    except ValueError as e:
        raise ValueError(f"checkpoint {path} holds another model: {str(e).splitlines()[0]}") from None
    options = dict(checkpoint["args"], cache_dir=cache_dir, descriptions=None, grad_ckpt=False,
                   no_progress=not progress)
    model = build_model(options, checkpoint["class_names"], clip=clip,
                        semantic_units=units_from_state(checkpoint.get("semantic_units")), device=device)
    load_model_state(model, checkpoint["model"], path)
    return model


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint files

def save_checkpoint(state, path):
    with atomic_write(path) as file:
        torch.save(state, file)


# (offset, bytes) that open the video containers of the datasets: mp4 / mov, avi, mkv / webm
VIDEO_SIGNATURES = ((4, b"ftyp"), (8, b"AVI "), (0, b"\x1aE\xdf\xa3"))
CLIP_STATE_KEYS = ("visual.proj", "text_projection", "visual.conv1.weight")
# the run options that building the model (build_model) and its test set (eval.py) read from a checkpoint
CHECKPOINT_OPTIONS = ("data", "data_root", "frames", "size", "seed", "split", "shots", "mra_grids", "mra_layers",
                      "su_topk", "decoder_layers", "decoder_memory")


def _not_a_checkpoint(path, head):
    """What a file (`head`: its first 16 bytes) that torch.load must not be asked about is (a video, a TorchScript
    archive), or None. Checked first: torch's own errors for these files advise loading with weights_only=False."""
    if any(head[offset:offset + len(magic)] == magic for offset, magic in VIDEO_SIGNATURES):
        return "is not a checkpoint (a video file?)"
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if not any(name.endswith("constants.pkl") for name in names):   # torch.save archives have none
            return None
        # OpenAI's released CLIP files are TorchScript archives of their class CLIP (clip/model.py)
        if any("class CLIP(" in archive.read(name).decode("utf-8", "replace") for name in names
               if "/code/" in name and name.endswith(".py")):
            return ("is a CLIP checkpoint (OpenAI's TorchScript file), not one written by train.py "
                    "(train.py --clip takes it)")
    return "is a TorchScript archive, not a checkpoint written by train.py"


def load_checkpoint(path, mmap=False):
    """A train.py checkpoint as a dict; anything else ends with one line naming the file and what it is. mmap:
    read tensors only when used (to look at a checkpoint's options without reading its weights)."""
    if not Path(path).is_file():
        fail(f"checkpoint {path}: no such file")
    with open(path, "rb") as file:
        head = file.read(16)
    if what := _not_a_checkpoint(path, head):
        fail(f"checkpoint {path} {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # truncated, not a torch file, or pickled objects we do not load
        # torch's message starts with advice to load with weights_only=False; the cause comes later in it
        message = str(e)
        if pickled := re.search(r"Unsupported global: GLOBAL (\S+)", message):
            fail(f"checkpoint {path} holds a pickled Python object ({pickled.group(1)}), not a checkpoint written "
                 "by train.py (tensors, numbers, strings)")
        if "PytorchStreamReader" in message:
            fail(f"checkpoint {path} is damaged or truncated (a PyTorch archive that cannot be read)")
        if head[:4] != b"PK\x03\x04" and head[:1] != b"\x80":   # torch.save's zip format, its older pickle format
            fail(f"checkpoint {path} is not a PyTorch file, so not a checkpoint written by train.py")
        cause = re.search(r"WeightsUnpickler error: ([^\n]*)", message)
        fail(f"checkpoint {path} cannot be read as a checkpoint written by train.py "
             f"({cause.group(1) if cause else type(e).__name__})")
    if isinstance(state, dict) and any(key in state for key in CLIP_STATE_KEYS):
        fail(f"checkpoint {path} is a CLIP state dict, not written by train.py (train.py --clip takes it)")
    if not isinstance(state, dict) or not {"model", "args", "class_names"} <= state.keys():
        fail(f"checkpoint {path}: not written by train.py (needs the keys model, args, class_names)")
    options = state["args"] if isinstance(state["args"], dict) else {}
    if missing := [key for key in CHECKPOINT_OPTIONS if key not in options]:
        fail(f"checkpoint {path}: its options (args) lack {', '.join(missing)}; not a checkpoint of this train.py")
    return state


# ----------------------------------------------------------------------------------------------------------------
# Memory of a training process, estimated (not measured: DESIGN.md, "GPU memory", has the table)

# OpenAI's CLIPs: visual (width, layers, patch) and parameter counts (visual: trained; text tower: frozen)
CLIP_SHAPES = {"ViT-B/32": (768, 12, 32, 88e6, 63e6), "ViT-B/16": (768, 12, 16, 86e6, 63e6),
               "ViT-L/14": (1024, 24, 14, 304e6, 123e6), "ViT-L/14@336px": (1024, 24, 14, 304e6, 123e6)}
# Bytes kept for backward per token and unit of width in one ViT block under 16-bit autocast: 34 (Korthikanti et
# al., 2022, "Reducing activation recomputation", with an attention kernel that keeps no tokens x tokens matrix,
# as scaled_dot_product_attention's flash and memory-efficient kernels do), + 8 for QuickGELU's sigmoid and its
# input, + 4 for the two LayerNorms' fp32 inputs. Without autocast (fp32) every tensor is twice as large.
BLOCK_BYTES_PER_TOKEN_WIDTH = 46


def training_memory_gib(clip, frames, size, per_gpu_batch, grad_ckpt, amp="bf16", region_tokens=13):
    """Estimated GPU memory (GiB) of one training process with a CLIP of CLIP_SHAPES: the trained visual weights
    with their gradients and AdamW's two moments (16 bytes a parameter), the frozen text tower (4), and the ViT's
    activations for frames x per_gpu_batch images of (size / patch)^2 + 1 + region_tokens tokens. With grad_ckpt
    a block keeps only its fp32 input (4 bytes per token and unit of width) and one block at a time is recomputed
    in full. ASU's modules after the ViT (selection, decoder) and the allocator's slack are left out: a lower
    bound, good to a few tens of per cent."""
    width, layers, patch, visual_params, text_params = CLIP_SHAPES[clip]
    tokens = frames * per_gpu_batch * ((size // patch) ** 2 + 1 + region_tokens)
    block = BLOCK_BYTES_PER_TOKEN_WIDTH * (1 if amp in ("bf16", "fp16") else 2) * tokens * width
    activations = layers * 4 * tokens * width + block if grad_ckpt else layers * block
    return (16 * visual_params + 4 * text_params + activations) / 2**30
