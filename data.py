"""Video data for ASU, in the order a clip travels: decoding (video.py) -> TSN frame sampling -> transforms ->
VideoDataset -> the dataset layouts and few-shot subsets (the paper's "Experiments": Kinetics-400, UCF-101,
HMDB-51; the synthetic embedded default is rendered by synthetic.py and read here like any list dataset).

In:  a dataset layout on disk (`build_dataset(name, root, split)`; the layouts are drawn in DESIGN.md).
Out: `VideoDataset[i] -> (video, label, replaced)`, video uint8 RGB (runtime.model_input normalises it on the
     device), (T, 3, S, S) for one view or (V, T, 3, S, S) for V = temporal x spatial test views; in evaluation an
     unreadable video gives `{"path", "reason"}` instead, which runtime.predictions leaves out and lists; with
     `colour_on_device` (training on CUDA) a fourth element carries the clip's colour jitter for the GPU.
     `load_video(path, T)`: the TSN-sampled frames of one file, (T, H, W, 3) uint8, in decode order.
     `k600_zero_shot_splits()`: the three published 160-class Kinetics-600 zero-shot splits (labels/).
"""
import csv
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import synthetic
from runtime import DATASETS, write_text_atomic
from semantic_units import normalize_class_name
from video import VideoReadError, read_frames  # noqa: F401 (VideoReadError: part of this module's API)

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------------- TSN sampling

def sample_indices(n, num_frames, train=False, rng=None, view=0, num_views=1):
    """TSN sampling of `num_frames` indices from n frames: T equal segments, a random frame in each (train) or the
    centre floor((i + 0.5)·n/T) (test). Temporal test view v of V takes floor((i + (v + 0.5)/V)·n/T) instead,
    so the views are evenly spaced inside each segment. Returns int64 (T,), non-decreasing."""
    i = np.arange(num_frames)
    if train:
        rng = np.random.default_rng() if rng is None else rng
        start = i * n // num_frames
        end = np.maximum((i + 1) * n // num_frames, start + 1)
        return rng.integers(start, end).astype(np.int64)
    # integer form of floor((i + (2v + 1) / 2V) * n / T)
    return ((2 * num_views * i + 2 * view + 1) * n // (2 * num_views * num_frames)).astype(np.int64)


def load_video(path, num_frames, train=False, rng=None, short_side=None):
    """TSN-sampled frames of a video: np.ndarray (T, H, W, 3) uint8, in temporal (decode) order. train=False:
    segment centres; train=True: a random frame per segment from `rng` (np.random.Generator; a fresh unseeded one
    when None); short_side: as read_frames. Raises VideoReadError when the video cannot be read."""
    return read_frames(path, lambda n: sample_indices(n, num_frames, train, rng), short_side)[0]


# --------------------------------------------------------------------------------------------------------- transforms
# One set of random parameters per clip, applied to all its frames (the motion must stay intact). Clips leave the
# dataset as uint8 (a quarter of float32's bytes through the DataLoader's shared memory and to the GPU);
# runtime.model_input turns them into CLIP's normalised floats on the device.

# our reading: X-CLIP's multi-scale crop keeps sides >= 0.66 (area >= ~0.44); jitter values are X-CLIP's
CROP_SCALE = (0.4, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
# the usual Kinetics recipe: frames at short side 256 before a 224 random resized crop; test crops at short side 224
TRAIN_SHORT_SIDE = 256 / 224


def train_short_side(size):
    """The short side the decoder delivers for a training crop of `size` (test crops: `size` itself)."""
    return round(size * TRAIN_SHORT_SIDE)


def to_tensor(frames):
    """(T, H, W, 3) uint8 numpy -> (T, 3, H, W) uint8 tensor (a view, no copy)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def to_uint8(video):
    """(T, 3, H, W) float in [0, 1] -> uint8, rounded."""
    return video.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def resize(video, height, width):
    """Float (T, 3, H, W) -> (T, 3, height, width), bilinear with antialiasing (area-like when downscaling)."""
    return F.interpolate(video, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def resize_short_side(video, size):
    """(T, 3, H, W) -> (T, 3, h, w) with min(h, w) = size, aspect kept."""
    height, width = video.shape[-2:]
    scale = size / min(height, width)
    return resize(video, max(size, round(height * scale)), max(size, round(width * scale)))


def spatial_crops(video, size, num_crops):
    """`num_crops` size x size crops evenly spaced along the long side (1: centre; 3: both ends and centre).
    (T, 3, H, W) -> list of (T, 3, size, size)."""
    height, width = video.shape[-2:]
    spare, across = max(height, width) - size, (min(height, width) - size) // 2
    alongs = [k * spare // (num_crops - 1) for k in range(num_crops)] if num_crops > 1 else [spare // 2] * num_crops
    boxes = [(along, across) if height > width else (across, along) for along in alongs]
    return [video[..., top:top + size, left:left + size] for top, left in boxes]


def random_crop_box(height, width, rng, scale=CROP_SCALE, ratio=CROP_RATIO):
    """(top, left, h, w) of a random box of area fraction in `scale` and aspect in `ratio` (torchvision's
    RandomResizedCrop rule, numpy randomness); a centred square when ten draws do not fit."""
    for _ in range(10):
        target_area = height * width * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    h = w = min(height, width)
    return (height - h) // 2, (width - w) // 2, h, w


def grayscale(video):
    gray = (0.299 * video[:, 0] + 0.587 * video[:, 1] + 0.114 * video[:, 2]).unsqueeze(1)   # (T, 1, H, W)
    return gray.expand_as(video)


def _rgb_to_hsv(video):
    r, g, b = video.unbind(1)
    maxc, minc = video.max(1).values, video.min(1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, (g - b) / safe, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, (hue / 6) % 1.0, torch.zeros_like(hue))
    saturation = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)),
                             torch.zeros_like(maxc))
    return torch.stack([hue, saturation, maxc], 1)


def _hsv_to_rgb(hsv):
    hue, saturation, value = hsv.unbind(1)
    k = torch.stack([(5 + hue * 6) % 6, (3 + hue * 6) % 6, (1 + hue * 6) % 6], 1)        # r, g, b
    weight = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return value.unsqueeze(1) * (1 - saturation.unsqueeze(1) * weight)


def jitter_steps(rng, brightness, contrast, saturation, hue):
    """torchvision's ColorJitter drawn once per clip: the four adjustments in random order, each with its factor."""
    ranges = ((1 - brightness, 1 + brightness), (1 - contrast, 1 + contrast), (1 - saturation, 1 + saturation),
              (-hue, hue))
    return [(int(op), rng.uniform(*ranges[op])) for op in rng.permutation(4)]


def color_jitter(video, steps):
    """Apply jitter_steps to (T, 3, H, W) float in [0, 1]."""
    for op, factor in steps:
        if op == 0:
            video = (video * factor).clamp(0, 1)
        elif op == 1:
            mean = grayscale(video)[:, :1].mean(dim=(1, 2, 3), keepdim=True)   # per frame, as torchvision
            video = (mean + factor * (video - mean)).clamp(0, 1)
        elif op == 2:
            gray = grayscale(video)
            video = (gray + factor * (video - gray)).clamp(0, 1)
        else:
            hsv = _rgb_to_hsv(video)
            hsv[:, 0] = (hsv[:, 0] + factor) % 1.0
            video = _hsv_to_rgb(hsv).clamp(0, 1)
    return video


def draw_colour(rng, colour=True):
    """One clip's colour augmentation, as a (10,) float64 tensor: [grayscale, jitter steps n, then n (op, factor)
    pairs of jitter_steps]. Colour jitter with p 0.8, grayscale with p 0.2; nothing when colour=False."""
    jitter = jitter_steps(rng, **JITTER) if colour and rng.random() < 0.8 else []
    gray = colour and rng.random() < 0.2
    packed = torch.zeros(10, dtype=torch.float64)
    packed[0], packed[1] = float(gray), len(jitter)
    for k, (op, factor) in enumerate(jitter):
        packed[2 + 2 * k], packed[3 + 2 * k] = op, factor
    return packed


def apply_colour(video, packed):
    """draw_colour's augmentation (its tensor or that as a list) on one clip (T, 3, H, W), floats in [0, 1], on any
    device."""
    steps = [(int(packed[2 + 2 * k]), float(packed[3 + 2 * k])) for k in range(int(packed[1]))]
    video = color_jitter(video, steps)
    return grayscale(video) if packed[0] else video


def colour_on_device(videos, colours):
    """Training batches whose colour augmentation was left to the device (VideoDataset(colour_on_device=True)):
    videos (B, [V,] T, 3, S, S) floats in [0, 1] on the device, colours (B, [V,] 10) as draw_colour made them ->
    the same videos, each clip jittered as the loader worker would have done it (up to uint8 rounding)."""
    clips, packed = videos.flatten(0, -5), colours.reshape(-1, colours.shape[-1]).tolist()   # (N, T, 3, S, S)
    return torch.stack([apply_colour(clip, p) for clip, p in zip(clips, packed)]).view_as(videos)


def train_transform(frames, size, rng, crop_scale=CROP_SCALE, colour=True, colour_on_device=False):
    """Random resized crop, horizontal flip (p 0.5), colour jitter (p 0.8) and grayscale (p 0.2) unless
    colour=False, one set of parameters for the clip. frames (T, H, W, 3) uint8 (best at short side
    train_short_side(size)) -> (T, 3, size, size) uint8. The float steps run one frame at a time on its crop, so a
    1080p training item needs about 40 MiB (bench/data_speed.py). colour_on_device=True leaves the colour steps out
    and returns (clip, draw_colour's tensor) for colour_on_device() to apply on the GPU (the same random draws)."""
    video = to_tensor(frames)                                                 # (T, 3, H, W) uint8
    top, left, h, w = random_crop_box(*video.shape[-2:], rng, scale=crop_scale)
    flip = rng.random() < 0.5
    packed = draw_colour(rng, colour)
    draws = packed.tolist()   # read once, not per frame
    out = torch.empty(len(video), 3, size, size, dtype=torch.uint8)
    for t, frame in enumerate(video[..., top:top + h, left:left + w]):
        frame = resize(frame[None].float().div_(255), size, size)           # (1, 3, size, size)
        frame = frame.flip(-1) if flip else frame
        out[t] = to_uint8(frame if colour_on_device else apply_colour(frame, draws))[0]
    return (out, packed) if colour_on_device else out


def eval_transform(frames, size, num_crops=1):
    """Short side to `size` (a no-op for frames the decoder already scaled), then `num_crops` evenly spaced crops.
    frames (T, H, W, 3) uint8 -> (num_crops, T, 3, size, size) uint8."""
    video = to_tensor(frames)                                                 # (T, 3, H, W) uint8
    if min(video.shape[-2:]) != size:
        video = to_uint8(resize_short_side(video.float().div_(255), size))
    return torch.stack(spatial_crops(video, size, num_crops))


# ------------------------------------------------------------------------------------------------------------ dataset

MAX_REPLACEMENTS = 20   # unreadable videos in a row before we conclude the data root itself is wrong


class VideoDataset(torch.utils.data.Dataset):
    """Samples (path, label) -> (video, label, replaced). video: (T, 3, S, S) uint8 for views == (1, 1), else
    (V, T, 3, S, S) with V = temporal * spatial, ordered temporal-major; frames are decoded at short side
    train_short_side(S) for training and S for test. All randomness (frame sampling, augmentation, replacement of
    unreadable videos) comes from np.random.default_rng([seed, epoch, index]), so it does not depend on DataLoader
    workers or DDP ranks; the epoch is `set_epoch`'s, or comes with the index as an (epoch, index) pair (what
    EpochSampler yields, for persistent workers whose copies of the dataset never see a later set_epoch). An
    unreadable video is logged once per process (path -> reason in `unreadable`); strict=True raises VideoReadError.
    Otherwise, with replace_unreadable (default: train) it is counted in `replaced` and replaced by another sample
    chosen from (seed, epoch, index), so a training epoch keeps its size; without, the item is
    `{"path": ..., "reason": ...}`, so that an evaluation scores real test videos only and can list the others.
    crop_scale is the area range of the random resized crop; colour=False leaves out colour jitter and grayscale.
    colour_on_device=True (training on a GPU) leaves those two to the device: items are then (video, label,
    replaced, colours), colours (10,) or (V, 10) as draw_colour made them, for colour_on_device() on the batch.
    cache_frames=True keeps every decoded frame of each video in memory after its first read, in the main process
    (DataLoader workers decode as usual), for a set that fits: the embedded default's training set takes about
    0.75 GB. The items are the same; the default, whose loading took half its model time, trains a quarter faster."""

    def __init__(self, samples, class_names, num_frames=8, size=224, train=False, views=(1, 1), seed=0,
                 strict=False, crop_scale=CROP_SCALE, colour=True, replace_unreadable=None, cache_frames=False,
                 colour_on_device=False):
        self.crop_scale, self.colour = tuple(crop_scale), colour
        self.colour_on_device = bool(colour_on_device and colour and train)
        self.replace_unreadable = train if replace_unreadable is None else bool(replace_unreadable)
        self.samples = [(str(path), int(label)) for path, label in samples]
        self.class_names, self.views = list(class_names), (int(views[0]), int(views[1]))
        self.num_frames, self.size, self.train, self.seed, self.strict = num_frames, size, train, seed, strict
        self.epoch, self.unreadable = 0, {}   # unreadable: path -> reason, for this process
        self.cached = {} if cache_frames else None   # path -> every frame of the video, (n, H, W, 3) uint8
        if not self.samples:
            raise ValueError("VideoDataset: no samples")
        if min(self.views) < 1:
            raise ValueError(f"VideoDataset: views must be >= 1, got {views}")
        if bad := [label for _, label in self.samples if not 0 <= label < len(self.class_names)]:
            raise ValueError(f"VideoDataset: label {bad[0]} outside 0..{len(self.class_names) - 1}")

    def __len__(self):
        return len(self.samples)

    def set_epoch(self, epoch):
        """The epoch of plain integer indices; call before building a DataLoader iterator (it copies the dataset)."""
        self.epoch = int(epoch)

    def _pick(self, rng):
        """n -> the frame indices of every temporal view, concatenated (training ignores view, test ignores rng)."""
        temporal = self.views[0]
        return lambda n: np.concatenate([sample_indices(n, self.num_frames, self.train, rng, v, temporal)
                                         for v in range(temporal)])

    def _read(self, index, epoch):
        """Frames (temporal * T, H, W, 3) of sample `index` or of its replacements; + label, replaced, rng.
        Frames None: sample `index` is unreadable and not replaced."""
        candidate = index
        for attempt in range(MAX_REPLACEMENTS + 1 if self.replace_unreadable else 1):
            if attempt:
                candidate = int(np.random.default_rng([self.seed, epoch, index, attempt])
                                .integers(len(self.samples)))
            path, label = self.samples[candidate]
            if path in self.unreadable:
                continue
            rng = np.random.default_rng([self.seed, epoch, index])   # the same for every attempt
            try:
                short_side = train_short_side(self.size) if self.train else self.size
                return self._frames(path, self._pick(rng), short_side), label, attempt, rng
            except VideoReadError as error:
                if self.strict:
                    raise
                self.unreadable[path] = error.reason
                log.warning("unreadable video %s: %s (%s)", path, error.reason,
                            "replaced by another sample; --strict makes this an error" if self.replace_unreadable
                            else "left out of the scores; --strict stops at it instead")
        if not self.replace_unreadable:
            return None, self.samples[index][1], 0, None
        raise RuntimeError(f"{MAX_REPLACEMENTS + 1} unreadable videos in a row from sample {index} "
                           f"({self.samples[index][0]}); check the data root")

    def _frames(self, path, pick, short_side):
        """The frames `pick` chooses; with cache_frames, from every frame of the video, decoded on first use (the
        same frames as read_frames gives: it is exact). Loader workers never cache: they decode in parallel anyway,
        and a copy in each (every worker sees every video over the epochs) would multiply the memory."""
        if self.cached is None or torch.utils.data.get_worker_info() is not None:
            return read_frames(path, pick, short_side)[0]
        if path not in self.cached:
            self.cached[path] = read_frames(path, np.arange, short_side)[0]
        every = self.cached[path]                                            # (n, H, W, 3)
        return every[np.asarray(pick(len(every)), dtype=np.int64)]

    def __getitem__(self, item):
        """item: an index (of epoch `self.epoch`) or an (epoch, index) pair."""
        epoch, index = (int(item[0]), int(item[1])) if isinstance(item, (tuple, list)) else (self.epoch, int(item))
        frames, label, replaced, rng = self._read(index, epoch)
        if frames is None:
            path = self.samples[index][0]
            return {"path": path, "reason": self.unreadable[path]}
        temporal, spatial = self.views
        colours = None
        if self.train:
            clips = [train_transform(clip, self.size, rng, self.crop_scale, self.colour, self.colour_on_device)
                     for clip in np.split(frames, temporal) for _ in range(spatial)]
            if self.colour_on_device:
                clips, colours = zip(*clips)
                colours = torch.stack(colours)                               # (V, 10)
            video = torch.stack(clips)                                       # (V, T, 3, S, S)
        else:
            crops = eval_transform(frames, self.size, spatial)               # (spatial, temporal*T, 3, S, S)
            video = crops.unflatten(1, (temporal, self.num_frames)).transpose(0, 1)   # (temporal, spatial, T, ...)
            video = video.reshape(temporal * spatial, *video.shape[2:])      # (V, T, 3, S, S)
        if temporal * spatial == 1:
            video, colours = video[0], None if colours is None else colours[0]   # (T, 3, S, S), (10,)
        if colours is not None:
            return video.contiguous(), label, replaced, colours
        return video.contiguous(), label, replaced


class EpochSampler(torch.utils.data.Sampler):
    """A DataLoader sampler that yields (epoch, index) pairs of the indices given to `set_epoch(epoch, indices)`.
    Samplers run in the main process, so one DataLoader with persistent workers serves every epoch of a run."""

    def __init__(self):
        self.items = []

    def set_epoch(self, epoch, indices):
        self.items = [(int(epoch), int(index)) for index in indices]

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


# ------------------------------------------------------------------------------------------------------------ layouts

LAYOUT_HELP = {
    "k400": "annotations/{train,val}.csv (label,youtube_id,time_start,time_end,split) with clips "
            "videos/{train,val}/{youtube_id}_{start:06d}_{end:06d}.mp4, or train.txt/val.txt/labels.txt",
    "list": "train.txt and val.txt ('relative/path label_index' per line) and labels.txt (one class per line)",
    "ucf101": "UCF-101/<Class>/v_*.avi and ucfTrainTestlist/{classInd.txt,trainlist0S.txt,testlist0S.txt}",
    "hmdb51": "videos/<class>/*.avi and testTrainMulti_7030_splits/<class>_test_splitS.txt (1 = train, 2 = test)",
    "synthetic": "generated on first use: videos/ plus train.txt, val.txt, labels.txt",
}
K400_COLUMNS = "label,youtube_id,time_start,time_end[,split,...]"


def _lines(path, layout):
    """(line number, stripped line) for the non-blank lines of an annotation file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found (the {layout} layout is: {LAYOUT_HELP[layout]})")
    with open(path, encoding="utf-8-sig", newline="") as file:   # -sig: tolerate a byte-order mark
        for lineno, line in enumerate(file, 1):
            if line.strip():
                yield lineno, line.strip()


def _bad_line(path, lineno, line, expected):
    return ValueError(f"{path}:{lineno}: cannot parse {line!r}; expected {expected}")


def _read_labels(path, layout="list"):
    """The class names of a labels file; two names whose text prompts are the same ('kick_ball', 'Kick Ball') are
    refused: the model would hold one text embedding for both."""
    names, line_of = [], {}   # line_of: the normalised name -> its line
    for lineno, line in _lines(path, layout):
        prompt = normalize_class_name(line)
        if prompt in line_of:
            raise ValueError(f"{path}:{lineno}: {line!r} gives the same text prompt as line {line_of[prompt]} "
                             f"({prompt!r}); expected each class once")
        names.append(line)
        line_of[prompt] = lineno
    return names


def _read_list(path, root, num_classes, layout="list"):
    """(video path, label) per line. A repeated line is counted once, and said so in one warning (a video listed
    twice would count twice in every score); the same video with two labels is refused."""
    samples, first, repeats = [], {}, []   # first: video -> (line, label)
    for lineno, line in _lines(path, layout):
        parts = line.rsplit(None, 1)   # the path may contain spaces, the label may not
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= num_classes:
            raise _bad_line(path, lineno, line, f"'relative/path label_index' with 0 <= label_index < {num_classes}")
        video, label = str(root / parts[0]), int(parts[1])
        if video in first:
            if first[video][1] != label:
                raise ValueError(f"{path}:{lineno}: {parts[0]} has label {label} here and {first[video][1]} on line "
                                 f"{first[video][0]}; expected one label per video")
            repeats.append((lineno, first[video][0]))
            continue
        first[video] = (lineno, label)
        samples.append((video, label))
    if repeats:
        log.warning("%s: %d repeated lines left out (line %d repeats line %d); each video counts once", path,
                    len(repeats), *repeats[0])
    return samples


def _write_list(path, root, samples):
    lines = []
    for video, label in samples:
        video = Path(video)
        lines.append(f"{(video.relative_to(root) if video.is_relative_to(root) else video).as_posix()} {label}\n")
    write_text_atomic(path, "".join(lines))


def _list_layout(root, split, layout):
    class_names = _read_labels(root / "labels.txt", layout)
    return class_names, split and _read_list(root / f"{split}.txt", root, len(class_names), layout)


def _k400_rows(path):
    """(label, youtube_id, start, end) of each row of a Kinetics annotation csv."""
    with open(path, encoding="utf-8-sig", newline="") as file:   # -sig: tolerate a byte-order mark
        reader = csv.reader(file)
        header = [h.strip() for h in next(reader, [])]
        if header[:4] != ["label", "youtube_id", "time_start", "time_end"]:
            raise _bad_line(path, 1, ",".join(header), f"the header {K400_COLUMNS}")
        rows = []
        for row in reader:
            if not "".join(row).strip():
                continue
            label, youtube_id, start, end = ([field.strip() for field in row] + ["", "", "", ""])[:4]
            if not (label and youtube_id and len(row) == len(header) and start.isdigit() and end.isdigit()):
                raise _bad_line(path, reader.line_num, ",".join(row), f"{K400_COLUMNS} with integer times")
            rows.append((label, youtube_id, int(start), int(end)))
    return rows


def _k400(root, split):
    annotations = root / "annotations"
    if not annotations.is_dir():
        return _list_layout(root, split, "k400")
    rows = {part: _k400_rows(annotations / f"{part}.csv") for part in ("train", "val")
            if (annotations / f"{part}.csv").is_file()}
    if not rows:
        raise FileNotFoundError(f"{annotations}: no train.csv or val.csv (the k400 layout is: {LAYOUT_HELP['k400']})")
    if split and split not in rows:
        raise FileNotFoundError(f"{annotations / (split + '.csv')}: not found "
                                f"(the k400 layout is: {LAYOUT_HELP['k400']})")
    if split == "train" and len(rows) == 2:   # a class in one csv only: no training video, or never validated
        # (an evaluation may test a subset of the classes: a zero-shot test set whose train.csv only names them)
        train_classes, val_classes = ({row[0] for row in rows[part]} for part in ("train", "val"))
        for part, only in (("val", val_classes - train_classes), ("train", train_classes - val_classes)):
            if only:
                raise ValueError(f"{annotations / (part + '.csv')}: {len(only)} classes are in no row of the other "
                                 f"csv ({', '.join(map(repr, sorted(only)[:3]))}); train and val need the same classes")
    class_names = sorted({row[0] for part in rows.values() for row in part})   # the standard 400-class order
    label_of = {name: i for i, name in enumerate(class_names)}
    return class_names, split and [(str(root / "videos" / split / f"{youtube_id}_{start:06d}_{end:06d}.mp4"),
                                    label_of[label]) for label, youtube_id, start, end in rows[split]]


def _ucf101(root, split, fold):
    lists = root / "ucfTrainTestlist"
    class_names = []
    for lineno, line in _lines(lists / "classInd.txt", "ucf101"):
        parts = line.split()
        if len(parts) != 2 or parts[0] != str(len(class_names) + 1):
            raise _bad_line(lists / "classInd.txt", lineno, line, f"'{len(class_names) + 1} ClassName'")
        class_names.append(parts[1])
    if not split:
        return class_names, None
    label_of = {name.lower(): i for i, name in enumerate(class_names)}   # folder case varies in the official lists
    path = lists / f"{'trainlist' if split == 'train' else 'testlist'}{fold:02d}.txt"
    samples = []
    for lineno, line in _lines(path, "ucf101"):
        parts = line.split()
        label = label_of.get(parts[0].split("/")[0].lower(), -1) if len(parts) in (1, 2) and "/" in parts[0] else -1
        if label < 0 or (len(parts) == 2 and parts[1] != str(label + 1)):
            raise _bad_line(path, lineno, line, "'Class/v_Class_gXX_cYY.avi[ class_index]' with a class of "
                                                "classInd.txt (and its index)")
        samples.append((str(root / "UCF-101" / parts[0]), label))
    return class_names, samples


def _hmdb51(root, split, fold):
    splits = root / "testTrainMulti_7030_splits"
    suffix = f"_test_split{fold}.txt"
    if not splits.is_dir():
        raise FileNotFoundError(f"{splits}: not found (the hmdb51 layout is: {LAYOUT_HELP['hmdb51']})")
    class_names = sorted(p.name[:-len(suffix)] for p in splits.glob(f"*{suffix}"))   # HMDB's alphabetical order
    if not class_names:
        raise FileNotFoundError(f"{splits}: no *{suffix} files (the hmdb51 layout is: {LAYOUT_HELP['hmdb51']})")
    # a class without this split's file would silently drop out of the split's label set
    others = {p.name.rsplit("_test_split", 1)[0] for p in splits.glob("*_test_split[123].txt")} - set(class_names)
    if others:
        raise FileNotFoundError(f"{splits / (sorted(others)[0] + suffix)}: not found, though the class has the files "
                                f"of other splits ({len(others)} classes lack split {fold})")
    if not split:
        return class_names, None
    wanted, samples = "1" if split == "train" else "2", []
    for label, name in enumerate(class_names):
        path = splits / f"{name}{suffix}"
        for lineno, line in _lines(path, "hmdb51"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise _bad_line(path, lineno, line, "'video.avi 0|1|2' (1 = train, 2 = test, 0 = unused)")
            if parts[1] == wanted:
                samples.append((str(root / "videos" / name / parts[0]), label))
    return class_names, samples


def _read_layout(name, root, split, fold=1):
    """(class_names, samples) of a layout; samples is None when split is None."""
    if name not in DATASETS:
        raise ValueError(f"--data {name!r}: unknown dataset; choose one of {', '.join(DATASETS)}")
    if split not in (None, "train", "val"):
        raise ValueError(f"split {split!r}: expected 'train' or 'val'")
    if name in ("ucf101", "hmdb51") and fold not in (1, 2, 3):
        raise ValueError(f"--fold {fold}: {name} has official splits 1, 2, 3")
    if not root.is_dir():
        raise FileNotFoundError(f"--data {name}: data root {root} does not exist; expected the {name} layout: "
                                f"{LAYOUT_HELP[name]}")
    if name == "k400":
        return _k400(root, split)
    if name in ("ucf101", "hmdb51"):
        return (_ucf101 if name == "ucf101" else _hmdb51)(root, split, fold)
    return _list_layout(root, split, name)


def read_class_names(name, root=None):
    """The class names of a layout in the dataset's official order (raw, e.g. 'ApplyEyeMakeup')."""
    root = Path(root) if root is not None else Path("data") / name
    if name == "synthetic" and not (root / "labels.txt").is_file():
        return synthetic.synthetic_class_names()
    return _read_layout(name, root, None)[0]


LABELS_DIR = Path(__file__).resolve().parent / "labels"


def k600_zero_shot_splits():
    """The three published Kinetics-600 zero-shot splits (ER-ZSAR, Chen & Huang 2021; X-CLIP and ViFi-CLIP report
    on them): three lists of 160 of the 220 classes new to Kinetics-400, each in its file's order, from
    labels/k600_zero_shot_split{1,2,3}.csv (a '#' source line, then id,name rows)."""
    splits = []
    for number in (1, 2, 3):
        path = LABELS_DIR / f"k600_zero_shot_split{number}.csv"
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
        rows = list(csv.reader(lines))
        if rows[0] != ["id", "name"]:
            raise ValueError(f"{path}: expected the header id,name")
        splits.append([name for _, name in rows[1:]])
    return splits


def few_shot_samples(samples, num_classes, shots, seed=0, class_names=None):
    """K videos per class, nested across K: each class's videos (sorted by path) are shuffled by (seed, class) and
    the first K are taken, so the 2-shot set is inside the 4-shot set, and so on."""
    by_class = [sorted(path for path, label in samples if label == c) for c in range(num_classes)]
    chosen = []
    for label, paths in enumerate(by_class):
        if len(paths) < shots:
            name = f"{label} ({class_names[label]})" if class_names else label
            raise ValueError(f"--shots {shots}: class {name} has only {len(paths)} training videos")
        order = np.random.default_rng([seed, label]).permutation(len(paths))
        chosen += [(paths[k], label) for k in order[:shots]]
    return chosen


def class_subset(class_names, samples, keep, root):
    """The classes named in `keep` only, in that order, labels renumbered: (keep, their samples)."""
    position = {name: i for i, name in enumerate(keep)}
    if missing := [name for name in keep if name not in set(class_names)]:
        raise ValueError(f"--data-root {root}: has no class {missing[0]!r} ({len(missing)} of the {len(keep)} "
                         "classes asked for are missing)")
    return list(keep), [(path, position[class_names[label]]) for path, label in samples
                        if class_names[label] in position]


def build_dataset(name, root=None, split="train", num_frames=8, size=224, train=False, views=(1, 1), seed=0,
                  strict=False, shots=None, fold=1, list_out=None, classes=None, colour_on_device=False):
    """A VideoDataset for layout `name` in {k400, ucf101, hmdb51, list, synthetic} under `root` (default
    data/<name>). split 'val' is the test split of UCF-101 / HMDB-51; fold is their official split 1..3.
    shots=K: K training videos per class from split-1 train (nested, seeded by `seed`); the drawn list is written
    to `list_out` (default <root>/fewshot_<name>_<K>shot_seed<seed>.txt) and reused when that file exists.
    classes: the names of the classes to keep (a base or novel half, synthetic.protocol_class_names), in their
    order; a synthetic root without a set is then rendered as the whole world (synthetic.WORLD_PAIRS).
    colour_on_device: see VideoDataset (train.py sets it on CUDA)."""
    root = Path(root) if root is not None else Path("data") / name
    if name == "synthetic":   # rendered on first use, and again when the renderer has changed since
        synthetic.ensure_synthetic(root, pairs=synthetic.WORLD_PAIRS if classes is not None else None)
    if shots and fold != 1:
        raise ValueError(f"--shots {shots} with --fold {fold}: the few-shot protocol uses split 1")
    if shots and classes is not None:
        raise ValueError(f"--shots {shots}: the few-shot protocol is all-way (every class of the data root)")
    class_names, samples = _read_layout(name, root, split, fold)
    if classes is not None:
        class_names, samples = class_subset(class_names, samples, classes, root)
    if shots and split == "train":
        list_out = Path(list_out) if list_out is not None else root / f"fewshot_{name}_{shots}shot_seed{seed}.txt"
        if list_out.is_file():
            samples = _read_list(list_out, root, len(class_names))
            counts = np.bincount([label for _, label in samples], minlength=len(class_names))
            if (counts != shots).any():
                raise ValueError(f"{list_out}: expected {shots} videos per class, found {sorted(set(counts))}")
        else:
            samples = few_shot_samples(samples, len(class_names), shots, seed, class_names)
            _write_list(list_out, root, samples)
    # see synthetic.CROP_SCALE and synthetic.COLOUR; the synthetic set is small enough to keep decoded (about 0.9 GB)
    looks = (dict(crop_scale=synthetic.CROP_SCALE, colour=synthetic.COLOUR, cache_frames=True)
             if name == "synthetic" else {})
    return VideoDataset(samples, class_names, num_frames, size, train, views, seed, strict,
                        colour_on_device=colour_on_device, **looks)
