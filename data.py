"""Video data for ASU: PyAV decoding, TSN frame sampling, torch transforms, the dataset layouts, few-shot subsets
and the synthetic embedded default (the paper's "Experiments" section: Kinetics-400, UCF-101, HMDB-51).

In:  a dataset layout on disk (`build_dataset(name, root, split)`, layouts in DESIGN.md "Data layouts").
Out: `VideoDataset[i] -> (video, label, replaced)`, video float32 normalised with CLIP's mean/std,
     (T, 3, S, S) for one view or (V, T, 3, S, S) for V = temporal x spatial test views.

Frames are indexed in decode order: frame k is the k-th frame a full `container.decode()` yields. Timestamps are
never used to sort frames or to turn a time into an index; `load_video` seeks to a keyframe only when that is
cheaper than decoding through, and only in files regular enough to check where it landed (see `_scan`).
"""
import bisect
import csv
import itertools
import json
import logging
import math
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LAYOUTS = ("k400", "ucf101", "hmdb51", "list", "synthetic")

# ----------------------------------------------------------------------------------------------------------- decoding

# our reading: a seek plus decoder flush costs less than decoding a few frames; a target fewer packets than this
# beyond the decoder's position is reached by decoding through (bench/data_speed.py shows the net effect)
SEEK_COST_FRAMES = 4
# our reading: DataLoader workers decode videos in parallel, so each decoder gets one thread (no oversubscription)
DECODER_THREADS = 1


def _rgb(frame):
    """A decoded av.VideoFrame -> (H, W, 3) uint8 RGB, converted on this thread: by default swscale starts a thread
    pool for every frame, which costs several times the conversion itself (0.67 against 0.10 ms a 128 px frame)."""
    return frame.to_ndarray(format="rgb24", threads=DECODER_THREADS)


class VideoReadError(RuntimeError):
    """A video that cannot be used: missing, empty, truncated or undecodable. str(error) = 'path: reason'."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class _SeekFailed(Exception):
    """A seek landed somewhere we cannot place; the caller decodes straight through instead."""


@dataclass
class _Keyframe:
    output_index: int   # its position among the decoded frames
    packet_index: int   # its position among the demuxed packets
    pts: int
    dts: int | None


def _packet_identity(packet):
    # the byte position names a packet without trusting its timestamps
    if packet.pos is not None and packet.pos >= 0:
        return packet.pos
    return (packet.pts, packet.dts, packet.size)


def _scan(container, stream):
    """Demux every packet once (no decoding). Returns (number of frames, seekable keyframes, identity -> keyframe).

    One packet is one frame for the video codecs of these datasets; `_read_through` recounts by decoding when a
    file proves otherwise. Keyframes are only offered for seeking when the file is regular enough to place them:
    every packet has a distinct pts and byte position, nothing is flagged for discard, the first packet is a
    keyframe. A keyframe's output index is its packet index plus its leading pictures: the packets right after
    it that the decoder shows before it (open-GOP B-frames, recognised by a smaller pts). Every seek is checked
    where it lands, and every keyframe met while decoding must come out at its computed index (`_frames_from`);
    any mismatch sends the file down the decode-through path.
    """
    pts, dts, is_key, identity, discard = [], [], [], [], False
    for packet in container.demux(stream):
        if packet.size == 0:   # the empty packet demux() yields at the end, to flush the decoder
            continue
        pts.append(packet.pts)
        dts.append(packet.dts)
        is_key.append(packet.is_keyframe)
        identity.append(_packet_identity(packet))
        discard |= packet.is_discard
    n = len(pts)
    keyframes = []
    regular = (n > 0 and is_key[0] and not discard and None not in pts and len(set(pts)) == n
               and len(set(identity)) == n)
    if regular:
        key_packets = [p for p in range(n) if is_key[p]] + [n]
        for j, next_j in zip(key_packets[:-1], key_packets[1:]):
            leading = sum(pts[q] < pts[j] for q in range(j + 1, next_j))
            contiguous = all(pts[q] < pts[j] for q in range(j + 1, j + 1 + leading))
            if not contiguous or (keyframes and j + leading <= keyframes[-1].output_index):
                keyframes = []
                break
            keyframes.append(_Keyframe(j + leading, j, pts[j], dts[j]))
        if keyframes and keyframes[0].output_index != 0:
            keyframes = []
    return n, keyframes, {identity[k.packet_index]: k for k in keyframes}


def _seek(container, stream, keyframe, by_identity):
    """Seek to `keyframe` (or an earlier one) and return (the keyframe landed on, packet iterator from it)."""
    # demuxers index by pts (mp4, mkv) or dts (avi): try both; landing on an earlier keyframe is fine
    for timestamp in dict.fromkeys([keyframe.pts, keyframe.dts]):
        if timestamp is None:
            continue
        container.seek(timestamp, stream=stream, backward=True)
        packets = container.demux(stream)
        first = next(packets, None)
        anchor = by_identity.get(_packet_identity(first)) if first is not None else None
        if anchor is not None and anchor.packet_index <= keyframe.packet_index:
            return anchor, itertools.chain([first], packets)
    raise _SeekFailed


def _frames_from(container, stream, keyframe, by_identity):
    """Yield (output index, packets fed so far, frame) from a seek to `keyframe` onwards."""
    anchor, packets = _seek(container, stream, keyframe, by_identity)
    key_index_by_pts = {k.pts: k.output_index for k in by_identity.values()}
    packets_fed, output_index, skipped = anchor.packet_index, None, 0
    for packet in packets:
        packets_fed += packet.size > 0
        for frame in packet.decode():
            if output_index is None:
                # leading pictures of an open GOP (if the decoder shows them at all) precede the keyframe
                if frame.pts != anchor.pts:
                    skipped += 1
                    if skipped > 64:
                        raise _SeekFailed
                    continue
                output_index = anchor.output_index
            else:
                output_index += 1
                if key_index_by_pts.get(frame.pts, output_index) != output_index:
                    raise _SeekFailed   # a keyframe came out where _scan did not expect it
            yield output_index, packets_fed, frame


def _read_seeking(container, stream, keyframes, by_identity, targets):
    """Frames at the sorted output indices `targets`: seek to the keyframe before a target when it saves decoding."""
    found, key_outputs = {}, [k.output_index for k in keyframes]
    frames, packets_fed, current = None, 0, -1
    for target in targets:
        anchor = keyframes[bisect.bisect_right(key_outputs, target) - 1]
        if frames is None or (anchor.output_index > current
                              and anchor.packet_index > packets_fed + SEEK_COST_FRAMES):
            frames = _frames_from(container, stream, anchor, by_identity)
        for current, packets_fed, frame in frames:
            if current == target:
                found[target] = _rgb(frame)
                break
        else:   # the stream ended early: the packet count was wrong
            raise _SeekFailed
    return found


def _read_through(path, n, pick, indices):
    """Decode every frame in order, converting only the wanted ones; recount and re-pick if n was wrong."""
    for _ in range(2):
        wanted, found, count = set(indices.tolist()), {}, 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = DECODER_THREADS
            for frame in container.decode(stream):
                if count in wanted:
                    found[count] = _rgb(frame)
                count += 1
        if count == n or count == 0:
            return indices, found, count
        n, indices = count, pick(count)
    raise VideoReadError(path, "the number of decoded frames changes from one decode to the next")


def read_frames(path, pick):
    """Frames of `path` at the decode-order indices `pick(n)` returns for a video of n frames.

    pick: callable n -> int array (any order, repeats allowed). Returns (frames (K, H, W, 3) uint8, indices (K,)).
    Raises VideoReadError for a missing, empty, truncated or undecodable file.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = DECODER_THREADS
            n, keyframes, by_identity = _scan(container, stream)
            if n == 0:
                raise VideoReadError(path, "no video frames")
            indices = np.asarray(pick(n), dtype=np.int64)
            found = None
            if keyframes:
                try:
                    found = _read_seeking(container, stream, keyframes, by_identity, sorted(set(indices.tolist())))
                except (_SeekFailed, av.FFmpegError):   # a damaged file fails again below, with its own error
                    found = None
        if found is None:
            indices, found, n = _read_through(path, n, pick, indices)
            if n == 0:
                raise VideoReadError(path, "no decodable video frames")
    except (av.FFmpegError, OSError, EOFError, UnicodeDecodeError) as error:
        raise VideoReadError(path, f"{type(error).__name__}: {error}") from error
    return np.stack([found[i] for i in indices.tolist()]), indices


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


def load_video(path, num_frames, train=False, rng=None):
    """TSN-sampled frames of a video: np.ndarray (T, H, W, 3) uint8, in temporal (decode) order.

    train=False: segment centres; train=True: a random frame per segment from `rng` (np.random.Generator;
    a fresh unseeded one when None). Raises VideoReadError when the video cannot be read."""
    frames, _ = read_frames(path, lambda n: sample_indices(n, num_frames, train, rng))
    return frames


# --------------------------------------------------------------------------------------------------------- transforms
# One set of random parameters per clip, applied to all its frames (the motion must stay intact).

# our reading: X-CLIP's multi-scale crop keeps sides >= 0.66 (area >= ~0.44); jitter values are X-CLIP's
CROP_SCALE = (0.4, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)


def to_float(frames):
    """(T, H, W, 3) uint8 numpy -> (T, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)


def resize(video, height, width):
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
    long_side, short_side = max(height, width), min(height, width)
    crops = []
    for k in range(num_crops):
        along = k * (long_side - size) // (num_crops - 1) if num_crops > 1 else (long_side - size) // 2
        across = (short_side - size) // 2
        top, left = (along, across) if height > width else (across, along)
        crops.append(video[..., top:top + size, left:left + size])
    return crops


def random_resized_crop(video, size, rng, scale=CROP_SCALE, ratio=CROP_RATIO):
    """A random box of area fraction in `scale` and aspect in `ratio`, resized to size x size (torchvision's rule,
    numpy randomness). (T, 3, H, W) -> (T, 3, size, size)."""
    height, width = video.shape[-2:]
    area = height * width
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            break
    else:   # fall back to a centred square
        h = w = min(height, width)
        top, left = (height - h) // 2, (width - w) // 2
    return resize(video[..., top:top + h, left:left + w], size, size)


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


def color_jitter(video, rng, brightness, contrast, saturation, hue):
    """torchvision's ColorJitter on a clip: the four adjustments in random order, one factor each per clip."""
    for op in rng.permutation(4):
        if op == 0:
            video = (video * rng.uniform(1 - brightness, 1 + brightness)).clamp(0, 1)
        elif op == 1:
            mean = grayscale(video)[:, :1].mean(dim=(1, 2, 3), keepdim=True)   # per frame, as torchvision
            video = (mean + rng.uniform(1 - contrast, 1 + contrast) * (video - mean)).clamp(0, 1)
        elif op == 2:
            gray = grayscale(video)
            video = (gray + rng.uniform(1 - saturation, 1 + saturation) * (video - gray)).clamp(0, 1)
        else:
            hsv = _rgb_to_hsv(video)
            hsv[:, 0] = (hsv[:, 0] + rng.uniform(-hue, hue)) % 1.0
            video = _hsv_to_rgb(hsv).clamp(0, 1)
    return video


def normalize(video):
    mean = torch.tensor(CLIP_MEAN, dtype=video.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=video.dtype).view(1, 3, 1, 1)
    return (video - mean) / std


def train_transform(frames, size, rng, crop_scale=CROP_SCALE, colour=True):
    """Random resized crop, horizontal flip (p 0.5), colour jitter (p 0.8) and grayscale (p 0.2) unless
    colour=False, CLIP mean/std.
    frames (T, H, W, 3) uint8 -> (T, 3, size, size) float32."""
    video = random_resized_crop(to_float(frames), size, rng, scale=crop_scale)
    if rng.random() < 0.5:
        video = video.flip(-1)
    if colour and rng.random() < 0.8:
        video = color_jitter(video, rng, **JITTER)
    if colour and rng.random() < 0.2:
        video = grayscale(video)
    return normalize(video.contiguous())


def eval_transform(frames, size, num_crops=1):
    """Short side to `size`, then `num_crops` evenly spaced crops, CLIP mean/std.
    frames (T, H, W, 3) uint8 -> (num_crops, T, 3, size, size) float32."""
    video = resize_short_side(to_float(frames), size)
    return torch.stack([normalize(crop) for crop in spatial_crops(video, size, num_crops)])


# ------------------------------------------------------------------------------------------------------------ dataset

MAX_REPLACEMENTS = 20   # unreadable videos in a row before we conclude the data root itself is wrong


class VideoDataset(torch.utils.data.Dataset):
    """Samples (path, label) -> (video, label, replaced).

    video: (T, 3, S, S) float32 for views == (1, 1), else (V, T, 3, S, S) with V = temporal * spatial, ordered
    temporal-major. All randomness (frame sampling, augmentation, replacement of unreadable videos) comes from
    np.random.default_rng([seed, epoch, index]), so it does not depend on DataLoader workers or DDP ranks.
    An unreadable video is logged once per process, counted in `replaced` and replaced by another sample chosen
    from (seed, epoch, index); strict=True raises VideoReadError instead.
    crop_scale is the area range of the random resized crop; colour=False leaves out colour jitter and grayscale.
    """

    def __init__(self, samples, class_names, num_frames=8, size=224, train=False, views=(1, 1), seed=0,
                 strict=False, crop_scale=CROP_SCALE, colour=True):
        self.crop_scale, self.colour = tuple(crop_scale), colour
        self.samples = [(str(path), int(label)) for path, label in samples]
        self.class_names = list(class_names)
        self.num_frames, self.size, self.train = num_frames, size, train
        self.views = (int(views[0]), int(views[1]))
        self.seed, self.strict = seed, strict
        self.epoch = 0
        self.unreadable = {}   # path -> reason, for this process
        if not self.samples:
            raise ValueError("VideoDataset: no samples")
        if min(self.views) < 1:
            raise ValueError(f"VideoDataset: views must be >= 1, got {views}")
        bad = [label for _, label in self.samples if not 0 <= label < len(self.class_names)]
        if bad:
            raise ValueError(f"VideoDataset: label {bad[0]} outside 0..{len(self.class_names) - 1}")

    def __len__(self):
        return len(self.samples)

    def set_epoch(self, epoch):
        """Call before each epoch (and before building the DataLoader iterator, which copies the dataset)."""
        self.epoch = int(epoch)

    def _pick(self, rng):
        temporal = self.views[0]
        if self.train:
            return lambda n: np.concatenate([sample_indices(n, self.num_frames, True, rng) for _ in range(temporal)])
        return lambda n: np.concatenate([sample_indices(n, self.num_frames, view=v, num_views=temporal)
                                         for v in range(temporal)])

    def _read(self, index):
        """Frames (temporal * T, H, W, 3) of sample `index` or of its replacements; + label, replaced, rng."""
        candidate = index
        for attempt in range(MAX_REPLACEMENTS + 1):
            if attempt:
                candidate = int(np.random.default_rng([self.seed, self.epoch, index, attempt])
                                .integers(len(self.samples)))
            path, label = self.samples[candidate]
            if path in self.unreadable:
                continue
            rng = np.random.default_rng([self.seed, self.epoch, index])   # the same for every attempt
            try:
                frames, _ = read_frames(path, self._pick(rng))
                return frames, label, attempt, rng
            except VideoReadError as error:
                if self.strict:
                    raise
                self.unreadable[path] = error.reason
                log.warning("unreadable video %s: %s (replaced by another sample; --strict makes this an error)",
                            path, error.reason)
        raise RuntimeError(f"{MAX_REPLACEMENTS + 1} unreadable videos in a row from sample {index} "
                           f"({self.samples[index][0]}); check the data root")

    def __getitem__(self, index):
        frames, label, replaced, rng = self._read(index)
        temporal, spatial = self.views
        if self.train:
            clips = np.split(frames, temporal)
            views = [train_transform(clip, self.size, rng, self.crop_scale, self.colour)
                     for clip in clips for _ in range(spatial)]
            video = torch.stack(views)                                       # (V, T, 3, S, S)
        else:
            crops = eval_transform(frames, self.size, spatial)               # (spatial, temporal*T, 3, S, S)
            video = crops.unflatten(1, (temporal, self.num_frames)).transpose(0, 1)   # (temporal, spatial, T, ...)
            video = video.reshape(temporal * spatial, *video.shape[2:])      # (V, T, 3, S, S)
        if temporal * spatial == 1:
            video = video[0]                                                 # (T, 3, S, S)
        return video.contiguous(), label, replaced


# ------------------------------------------------------------------------------------------------------------ layouts

LAYOUT_HELP = {
    "k400": "annotations/{train,val}.csv (label,youtube_id,time_start,time_end,split) with clips "
            "videos/{train,val}/{youtube_id}_{start:06d}_{end:06d}.mp4, or train.txt/val.txt/labels.txt",
    "list": "train.txt and val.txt ('relative/path label_index' per line) and labels.txt (one class per line)",
    "ucf101": "UCF-101/<Class>/v_*.avi and ucfTrainTestlist/{classInd.txt,trainlist0S.txt,testlist0S.txt}",
    "hmdb51": "videos/<class>/*.avi and testTrainMulti_7030_splits/<class>_test_splitS.txt (1 = train, 2 = test)",
    "synthetic": "generated on first use: videos/ plus train.txt, val.txt, labels.txt",
}


def _lines(path, layout):
    """(line number, stripped line) for the non-blank lines of an annotation file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found (the {layout} layout is: {LAYOUT_HELP[layout]})")
    with open(path, encoding="utf-8-sig", newline="") as file:
        for lineno, line in enumerate(file, 1):
            if line.strip():
                yield lineno, line.strip()


def _bad_line(path, lineno, line, expected):
    return ValueError(f"{path}:{lineno}: cannot parse {line!r}; expected {expected}")


def _read_labels(path, layout="list"):
    names = []
    for lineno, line in _lines(path, layout):
        if line in names:
            raise _bad_line(path, lineno, line, "each class name once")
        names.append(line)
    return names


def _read_list(path, root, num_classes, layout="list"):
    samples = []
    for lineno, line in _lines(path, layout):
        parts = line.rsplit(None, 1)   # the path may contain spaces, the label may not
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= num_classes:
            raise _bad_line(path, lineno, line, f"'relative/path label_index' with 0 <= label_index < {num_classes}")
        samples.append((str(root / parts[0]), int(parts[1])))
    return samples


def _write_list(path, root, samples):
    lines = []
    for video, label in samples:
        video = Path(video)
        relative = video.relative_to(root) if video.is_relative_to(root) else video
        lines.append(f"{relative.as_posix()} {label}\n")
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)


def _k400(root, split):
    annotations = root / "annotations"
    if not annotations.is_dir():
        class_names = _read_labels(root / "labels.txt", "k400")
        return class_names, split and _read_list(root / f"{split}.txt", root, len(class_names), "k400")
    rows = {}
    for part in ("train", "val"):
        path = annotations / f"{part}.csv"
        if not path.is_file():
            continue
        with open(path, encoding="utf-8-sig", newline="") as file:   # -sig: tolerate a byte-order mark
            reader = csv.reader(file)
            header = [h.strip() for h in next(reader, [])]
            expected = "label,youtube_id,time_start,time_end[,split,...]"
            if header[:4] != ["label", "youtube_id", "time_start", "time_end"]:
                raise _bad_line(path, 1, ",".join(header), f"the header {expected}")
            rows[part] = []
            for row in reader:
                if not "".join(row).strip():
                    continue
                label, youtube_id, start, end = ([field.strip() for field in row] + ["", "", "", ""])[:4]
                if not (label and youtube_id and len(row) == len(header) and start.isdigit() and end.isdigit()):
                    raise _bad_line(path, reader.line_num, ",".join(row), f"{expected} with integer times")
                start, end = int(start), int(end)
                rows[part].append((label, youtube_id, start, end))
    if not rows:
        raise FileNotFoundError(f"{annotations}: no train.csv or val.csv (the k400 layout is: {LAYOUT_HELP['k400']})")
    if split and split not in rows:
        raise FileNotFoundError(f"{annotations / (split + '.csv')}: not found "
                                f"(the k400 layout is: {LAYOUT_HELP['k400']})")
    class_names = sorted({row[0] for part in rows.values() for row in part})   # the standard 400-class order
    if not split:
        return class_names, None
    label_of = {name: i for i, name in enumerate(class_names)}
    return class_names, [(str(root / "videos" / split / f"{youtube_id}_{start:06d}_{end:06d}.mp4"), label_of[label])
                         for label, youtube_id, start, end in rows[split]]


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
    if name not in LAYOUTS:
        raise ValueError(f"--data {name!r}: unknown dataset; choose one of {', '.join(LAYOUTS)}")
    if split not in (None, "train", "val"):
        raise ValueError(f"split {split!r}: expected 'train' or 'val'")
    if name in ("ucf101", "hmdb51") and fold not in (1, 2, 3):
        raise ValueError(f"--fold {fold}: {name} has official splits 1, 2, 3")
    if not root.is_dir():
        raise FileNotFoundError(f"--data {name}: data root {root} does not exist; expected the {name} layout: "
                                f"{LAYOUT_HELP[name]}")
    if name == "k400":
        return _k400(root, split)
    if name == "ucf101":
        return _ucf101(root, split, fold)
    if name == "hmdb51":
        return _hmdb51(root, split, fold)
    class_names = _read_labels(root / "labels.txt", name)
    return class_names, split and _read_list(root / f"{split}.txt", root, len(class_names), name)


def read_class_names(name, root=None):
    """The class names of a layout in the dataset's official order (raw, e.g. 'ApplyEyeMakeup')."""
    root = Path(root) if root is not None else Path("data") / name
    if name == "synthetic" and not (root / "labels.txt").is_file():
        return synthetic_class_names()
    return _read_layout(name, root, None)[0]


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


def build_dataset(name, root=None, split="train", num_frames=8, size=224, train=False, views=(1, 1), seed=0,
                  strict=False, shots=None, fold=1, list_out=None):
    """A VideoDataset for layout `name` in {k400, ucf101, hmdb51, list, synthetic} under `root` (default
    data/<name>). split 'val' is the test split of UCF-101 / HMDB-51; fold is their official split 1..3.
    shots=K: K training videos per class from split-1 train (nested, seeded by `seed`); the drawn list is written
    to `list_out` (default <root>/fewshot_<name>_<K>shot_seed<seed>.txt) and reused when that file exists."""
    root = Path(root) if root is not None else Path("data") / name
    if name == "synthetic":   # rendered on first use, and again when the renderer has changed since
        make_synthetic(root, **_synthetic_settings(root))
    if shots and fold != 1:
        raise ValueError(f"--shots {shots} with --fold {fold}: the few-shot protocol uses split 1")
    class_names, samples = _read_layout(name, root, split, fold)
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
    if name == "synthetic":   # see SYNTHETIC_CROP_SCALE and SYNTHETIC_COLOUR
        return VideoDataset(samples, class_names, num_frames, size, train, views, seed, strict,
                            crop_scale=SYNTHETIC_CROP_SCALE, colour=SYNTHETIC_COLOUR)
    return VideoDataset(samples, class_names, num_frames, size, train, views, seed, strict)


# ---------------------------------------------------------------------------------------------------------- synthetic
# The embedded default: a stick figure rendered with numpy and written as H.264 mp4, so it takes the path of real
# data. Class names combine units of the four kinds: body parts (arms, legs), motions, objects (ball, chair) and
# scenes (park, beach, room, street). Each scene holds two of the default classes and one motion (bouncing a ball)
# happens in two scenes, so neither the scene alone nor the motion alone names the class.

SYNTHETIC_CLASSES = (   # (class name, motion, scene); the first `num_classes` are used (default 8)
    ("walking in the park", "walk", "park"),
    ("sitting down on a chair in the room", "sit_down", "room"),
    ("waving arms on the beach", "wave", "beach"),
    ("kicking a ball with one leg in the park", "kick", "park"),
    ("throwing a ball on the beach", "throw", "beach"),
    ("jumping with both legs in the street", "jump", "street"),
    ("bouncing a ball in the room", "bounce", "room"),
    ("bouncing a ball in the street", "bounce", "street"),
    # beyond the default 8: standing up is sitting down played backwards, which a model can only tell apart
    # from frame order (mean pooling cannot); a random-init tiny model does not learn that in a few minutes
    ("standing up from a chair in the room", "stand_up", "room"),
    ("waving arms in the street", "wave", "street"),
    ("kicking a ball with one leg on the beach", "kick", "beach"),
    ("jumping with both legs in the park", "jump", "park"),
)
SYNTHETIC_CROP_SCALE = (0.7, 1.0)   # our choice: a crop of 40% of the area could cut the figure out
# our choice: no colour jitter, as the renderer already draws each clip in its own colours and noise; on this set
# jitter and grayscale would double the time it takes to load a training clip
SYNTHETIC_COLOUR = False
SYNTHETIC_VERSION = 3   # bump when the renderer changes, so cached sets are regenerated


def synthetic_class_names(num_classes=8):
    if not 1 <= num_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"num_classes {num_classes}: the synthetic set has 1..{len(SYNTHETIC_CLASSES)} classes")
    return [name for name, _, _ in SYNTHETIC_CLASSES[:num_classes]]


def _jitter(color, rng, amount=18):
    return np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0, 255)


def _scene(kind, size, rng):
    """Background (size, size, 3) float32 and the y of the ground line. Scenes differ in layout and texture, not
    only colour, so they survive colour jitter and grayscale."""
    image = np.empty((size, size, 3), np.float32)
    y = np.arange(size)[:, None]
    x = np.arange(size)[None, :]
    if kind == "park":      # sky, mown grass in stripes, a tree
        horizon = int(size * rng.uniform(0.38, 0.48))
        image[:] = _jitter((125, 185, 235), rng)
        grass = _jitter((70, 150, 60), rng)
        image[horizon:] = grass
        image[horizon:][((y[horizon:] // max(2, size // 16)) % 2 == 0)[:, 0]] = grass * 0.8
        tree_x = int(rng.uniform(0.1, 0.9) * size)
        image[int(horizon * 0.6):horizon + 2, tree_x - size // 40 - 1:tree_x + size // 40 + 1] = (100, 70, 40)
        image[(y - horizon * 0.5) ** 2 + (x - tree_x) ** 2 < (size * 0.1) ** 2] = _jitter((40, 110, 40), rng)
    elif kind == "beach":   # sky, sea with wave lines, dotted sand
        sea, sand = int(size * rng.uniform(0.28, 0.34)), int(size * rng.uniform(0.48, 0.55))
        image[:] = _jitter((160, 205, 240), rng)
        image[sea:sand] = _jitter((40, 100, 185), rng)
        waves = (sea < y) & (y < sand) & (((y - sea) % max(3, size // 20)) == 0) & ((x // 6) % 3 != 0)
        image[waves] = (235, 240, 250)
        image[sand:] = _jitter((225, 205, 150), rng)
        image[(y >= sand) & ((x * 7 + y * 13) % 23 == 0)] = (150, 130, 90)
    elif kind == "room":    # striped wallpaper, a window, wooden floor planks
        floor = int(size * rng.uniform(0.6, 0.68))
        wall = _jitter((205, 190, 165), rng)
        image[:] = wall
        image[:, (x[0] // max(3, size // 12)) % 2 == 0] = wall * 0.88
        wx, wy, ww = int(rng.uniform(0.1, 0.6) * size), int(size * 0.12), int(size * 0.3)
        image[wy:wy + ww, wx:wx + ww] = (90, 90, 90)
        image[wy + 2:wy + ww - 2, wx + 2:wx + ww - 2] = _jitter((170, 215, 245), rng)
        image[wy + ww // 2 - 1:wy + ww // 2 + 1, wx:wx + ww] = (90, 90, 90)
        image[wy:wy + ww, wx + ww // 2 - 1:wx + ww // 2 + 1] = (90, 90, 90)
        image[floor:] = _jitter((140, 95, 60), rng)
        image[floor:][(((y[floor:] - floor) % max(3, size // 14)) == 0)[:, 0]] = (95, 60, 35)
    else:                   # street: buildings with lit windows, asphalt with a dashed lane line
        road = int(size * rng.uniform(0.55, 0.62))
        image[:] = _jitter((185, 185, 195), rng)
        image[int(size * 0.1):road] = _jitter((95, 80, 80), rng)
        lit = (y > size * 0.14) & (y < road - 4) & (y % 10 < 5) & (x % 9 < 4)
        image[lit] = _jitter((240, 215, 110), rng)
        image[road:] = _jitter((75, 75, 80), rng)
        lane = int((road + size) / 2)
        image[lane - 1:lane + 1, ((x[0] // 10) % 2) == 0] = (240, 240, 240)
    ground = size * rng.uniform(0.84, 0.92)
    return image, ground


def _draw_segments(image, segments, color):
    """Draws thick lines (x0, y0, x1, y1, radius) in one colour; a segment with equal ends is a disk. Works on the
    bounding box of all of them at once, which is what keeps rendering fast."""
    segments = np.asarray(segments, np.float32)                                  # (K, 5)
    x0s, y0s, x1s, y1s, radii = segments.T
    size, pad = image.shape[0], radii.max() + 1
    left, right = max(0, int(min(x0s.min(), x1s.min()) - pad)), min(size, int(max(x0s.max(), x1s.max()) + pad) + 1)
    top, bottom = max(0, int(min(y0s.min(), y1s.min()) - pad)), min(size, int(max(y0s.max(), y1s.max()) + pad) + 1)
    if left >= right or top >= bottom:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)                # (h, w) each
    x0s, y0s, radii = x0s[:, None, None], y0s[:, None, None], radii[:, None, None]
    dx, dy = x1s[:, None, None] - x0s, y1s[:, None, None] - y0s                  # (K, 1, 1)
    t = np.clip(((xs - x0s) * dx + (ys - y0s) * dy) / np.maximum(dx * dx + dy * dy, 1e-6), 0, 1)   # (K, h, w)
    inside = ((xs - x0s - t * dx) ** 2 + (ys - y0s - t * dy) ** 2 <= radii ** 2).any(0)          # (h, w)
    image[top:bottom, left:right][inside] = color


def _smooth(u):
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


def _pose(motion, u, p):
    """Figure pose at clip time u in [0, 1]: (hip x, hip y, lean, arms, legs, ball or None).
    Angles in radians from straight down, positive = towards where the figure faces; arms and legs are
    ((upper, lower), (upper, lower)), absolute angles. Sizes come from p (per-clip parameters)."""
    thigh, shin, ground, x = p["thigh"], p["shin"], p["ground"], p["x"]
    stand = ground - thigh - shin
    arms, legs, lean, ball = ((0.15, 0.3), (-0.15, 0.1)), ((0.12, 0.05), (-0.12, -0.15)), 0.05, None
    if motion == "walk":
        phase = 2 * math.pi * p["cycles"] * u + p["phase"]
        swing = 0.55 * math.sin(phase)
        legs = ((swing, swing - 0.5 * max(0.0, -math.cos(phase))), (-swing, -swing - 0.5 * max(0.0, math.cos(phase))))
        arms = ((-0.8 * swing, -0.8 * swing + 0.35), (0.8 * swing, 0.8 * swing + 0.35))
        x, lean = x + p["facing"] * p["travel"] * (u - 0.5), 0.22
        stand += 1.5 * abs(math.sin(phase))
    elif motion in ("sit_down", "stand_up"):
        s = _smooth((u - p["onset"]) / p["duration"])
        s = s if motion == "sit_down" else 1 - s     # standing up is sitting down with time reversed
        angle = s * math.pi / 2                      # thighs rotate to horizontal, feet stay put
        x -= p["facing"] * thigh * math.sin(angle)
        stand = ground - shin - thigh * math.cos(angle)
        legs = ((angle, 0.0), (angle - 0.08, -0.08))
        lean = 0.05 + 0.6 * math.sin(math.pi * s)
        reach = math.sin(math.pi * s)              # arms go forward for balance, then rest on the knees
        arms = ((0.3 + 0.7 * reach, 0.8 + 0.6 * s), (0.2 + 0.6 * reach, 0.7 + 0.6 * s))
    elif motion == "wave":
        swing = 0.7 * math.sin(2 * math.pi * p["cycles"] * u + p["phase"])
        arms = ((2.6, 2.6 + swing), (-2.6, -2.6 + swing))
    elif motion == "kick":
        t = (u - p["onset"]) / 0.3                   # back swing, kick, return
        if 0 < t < 0.4:
            angle = -0.7 * math.sin(math.pi * t / 0.4)
        elif 0.4 <= t < 1:
            angle = 1.4 * math.sin(math.pi * (t - 0.4) / 0.6)
        else:
            angle = 0.0
        legs = ((angle, angle - 0.4 * (angle < 0)), (-0.12, -0.12))
        arms = ((-0.5 * angle, -0.5 * angle + 0.3), (0.4 * angle, 0.4 * angle + 0.3))
        contact = p["onset"] + 0.3 * 0.55
        start = x + p["facing"] * (thigh * 0.25 + shin * 0.5 + p["ball"])
        flight = max(0.0, u - contact)
        ball = (start + p["facing"] * p["speed"] * flight, ground - p["ball"] - 25 * flight * max(0.0, 0.5 - flight))
    elif motion == "throw":
        t = (u - p["onset"]) / 0.35                  # wind back, swing over the top, follow through
        if t < 0.5:
            angle = 0.3 - 2.6 * _smooth(t / 0.5)
        elif t < 0.8:
            angle = -2.3 + 4.2 * _smooth((t - 0.5) / 0.3)
        else:
            angle = 1.9 - 1.2 * _smooth((t - 0.8) / 0.2)
        arms = ((angle, angle + 0.2), (0.6, 0.9))
        legs = ((0.3, 0.25), (-0.3, -0.3))
        release = p["onset"] + 0.35 * 0.72
        if u < release:
            neck_y = stand - p["torso"]
            ball = (x + p["facing"] * (p["upper"] + p["lower"]) * math.sin(angle),
                    neck_y + (p["upper"] + p["lower"]) * math.cos(angle))
        else:
            flight = u - release
            ball = (x + p["facing"] * (p["upper"] * 0.7 + p["speed"] * flight),
                    stand - p["torso"] - p["upper"] - p["speed"] * flight * (1.2 - 3.0 * flight))
    elif motion == "jump":
        height = abs(math.sin(math.pi * p["cycles"] * u + p["phase"]))
        crouch = max(0.0, 1 - 3 * height)
        legs = ((0.9 * crouch, -0.6 * crouch), (0.8 * crouch, -0.7 * crouch))
        stand += thigh * (1 - math.cos(0.9 * crouch)) - p["hop"] * height
        # arms swing forward, never overhead: a jump must not look like "waving arms" frozen mid-air
        arms = ((0.3 + 1.1 * height, 0.5 + 1.1 * height), (0.1 + 1.1 * height, 0.3 + 1.1 * height))
    elif motion == "bounce":
        height = abs(math.cos(math.pi * p["cycles"] * u + p["phase"]))
        hand_y = stand - p["torso"] + p["upper"] + p["lower"] * 0.5 + 6 * (1 - height)
        hand_x = x + p["facing"] * (p["upper"] * 0.6 + p["lower"] * 0.6)
        arms = ((0.7, 1.2 - 0.5 * (1 - height)), (-0.1, 0.2))
        ball = (hand_x + p["facing"] * 2, hand_y + p["ball"] + (ground - 2 * p["ball"] - hand_y) * (1 - height))
    return x, stand, lean, arms, legs, ball


def _render_clip(motion, scene, num_frames, size, rng):
    """One clip: (num_frames, size, size, 3) uint8."""
    background, ground = _scene(scene, size, rng)
    # our choice: a figure about two thirds of the frame tall with thick limbs, so that a tiny ViT trained from
    # scratch with 16-pixel patches can see its pose within the embedded default's few minutes
    scale = size / 128 * rng.uniform(1.25, 1.5)
    facing = rng.choice([-1, 1])
    p = dict(thigh=14 * scale, shin=13 * scale, torso=20 * scale, upper=11 * scale, lower=10 * scale,
             head=5.5 * scale, ball=7 * scale, ground=ground, facing=facing, phase=rng.uniform(0, 2 * math.pi),
             cycles=rng.uniform(1.5, 2.5), travel=size * rng.uniform(0.45, 0.6), onset=rng.uniform(0.1, 0.3),
             duration=rng.uniform(0.3, 0.45), hop=size * rng.uniform(0.08, 0.14), speed=size * rng.uniform(0.5, 0.8))
    p["x"] = size * rng.uniform(0.35, 0.65) if motion == "walk" else size * rng.uniform(0.25, 0.75)
    if motion in ("wave", "bounce"):
        p["cycles"] = rng.uniform(2.0, 3.5)
    if motion in ("kick", "throw"):
        p["x"] = size * (0.5 - 0.25 * facing + rng.uniform(-0.08, 0.08))   # room in front for the ball
        p["onset"] = rng.uniform(0.15, 0.35)
    figure = _jitter([(25, 25, 25), (190, 30, 30), (30, 40, 170), (245, 245, 245)][rng.integers(4)], rng, 25)
    ball_color = _jitter([(230, 60, 20), (250, 220, 30), (240, 240, 240)][rng.integers(3)], rng, 15)
    radius = max(1.2, 2.8 * scale)
    noise = rng.standard_normal((2, size + 16, size + 16, 3)).astype(np.float32) * rng.uniform(2, 6)
    if motion in ("sit_down", "stand_up"):   # the chair stands where the hips end up
        seat_x, seat_y = p["x"] - facing * p["thigh"], ground - p["shin"] + radius
        back, half = seat_x - facing * p["thigh"] * 0.6, p["thigh"] * 0.6
        _draw_segments(background, [(seat_x - half, seat_y, seat_x + half, seat_y, radius),
                                    (back, seat_y, back, seat_y - p["torso"] * 0.9, radius),
                                    (seat_x - half * 0.8, seat_y, seat_x - half * 0.8, ground, radius * 0.8),
                                    (seat_x + half * 0.8, seat_y, seat_x + half * 0.8, ground, radius * 0.8)],
                       _jitter((60, 60, 70), rng, 20))
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for i in range(num_frames):
        x, hip_y, lean, arms, legs, ball = _pose(motion, i / (num_frames - 1), p)
        neck = (x + facing * p["torso"] * math.sin(lean), hip_y - p["torso"] * math.cos(lean))
        head = (neck[0] + facing * (p["head"] + 1) * math.sin(lean), neck[1] - (p["head"] + 1) * math.cos(lean))
        segments = [(x, hip_y, *neck, radius * 1.3), (*head, *head, p["head"]),
                    (*head, head[0] + facing * (p["head"] + 3 * scale), head[1] + 1, radius * 0.8)]   # nose
        for (a, b), start, first, second in ((legs[0], (x, hip_y), p["thigh"], p["shin"]),
                                             (legs[1], (x, hip_y), p["thigh"], p["shin"]),
                                             (arms[0], neck, p["upper"], p["lower"]),
                                             (arms[1], neck, p["upper"], p["lower"])):
            joint = (start[0] + facing * first * math.sin(a), start[1] + first * math.cos(a))
            end = (joint[0] + facing * second * math.sin(b), joint[1] + second * math.cos(b))
            segments += [(*start, *joint, radius), (*joint, *end, radius)]
        image = background.copy()
        _draw_segments(image, segments, figure)
        if ball is not None:
            _draw_segments(image, [(*ball, *ball, p["ball"])], ball_color)
        k, dy, dx = rng.integers(2), rng.integers(16), rng.integers(16)
        image += noise[k, dy:dy + size, dx:dx + size]
        frames[i] = np.clip(image, 0, 255)
    return frames


def write_video(path, frames, fps=16, codec="libx264", options=None):
    """Writes (T, H, W, 3) uint8 frames as a video (H.264 mp4 by default) through PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = dict(options if options is not None else {"preset": "veryfast", "crf": "23", "threads": "1"})
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _make_clip(job):
    path, motion, scene, num_frames, size, seed_sequence = job
    rng = np.random.default_rng(seed_sequence)
    length = num_frames + int(rng.integers(-4, 5))   # per-clip duration variation
    write_video(path, _render_clip(motion, scene, length, size, rng))


def _synthetic_settings(root):
    """The settings a set under `root` was made with (so a set made with, say, num_classes=11 is kept as it is),
    without the renderer version; {} (the defaults) where there is no complete set."""
    marker = Path(root) / "synthetic.json"
    try:
        settings = json.loads(marker.read_text())
        settings.pop("version")
        return settings
    except (OSError, ValueError, KeyError, AttributeError):
        return {}


def make_synthetic(root, num_classes=8, videos_per_class=60, val_fraction=0.2, seed=0, num_frames=32, size=128,
                   workers=None):
    """Renders the synthetic set into `root` (default size: 8 classes x 60 clips = 48 train + 12 val each, 28..36
    frames of 128 x 128 at 16 fps, H.264) with videos/<class>/<split>_<k>.mp4, train.txt, val.txt, labels.txt.
    Deterministic from `seed`. Skips the work when `root` already holds a complete set with the same parameters
    (synthetic.json, written last)."""
    root = Path(root)
    settings = dict(version=SYNTHETIC_VERSION, num_classes=num_classes, videos_per_class=videos_per_class,
                    val_fraction=val_fraction, seed=seed, num_frames=num_frames, size=size)
    marker = root / "synthetic.json"
    class_names = synthetic_class_names(num_classes)

    def complete():
        return marker.is_file() and json.loads(marker.read_text()) == settings

    if complete():
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        try:   # several DDP ranks may get here at once: one renders, the others wait and find it done
            import fcntl
            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:
            pass
        if complete():
            return
        marker.unlink(missing_ok=True)
        num_val = max(1, round(videos_per_class * val_fraction))
        jobs, lists = [], {"train": [], "val": []}
        for label, (name, motion, scene) in enumerate(SYNTHETIC_CLASSES[:num_classes]):
            folder = root / "videos" / name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(videos_per_class):
                split = "val" if k < num_val else "train"
                relative = f"videos/{folder.name}/{split}_{k:03d}.mp4"
                lists[split].append(f"{relative} {label}\n")
                jobs.append((str(root / relative), motion, scene, num_frames, size, [seed, label, k]))
        workers = workers or min(8, os.cpu_count() or 1)
        if workers > 1 and not multiprocessing.current_process().daemon:   # daemons may not have children
            from concurrent.futures import ProcessPoolExecutor
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_make_clip, jobs, chunksize=4))
        else:
            for job in jobs:
                _make_clip(job)
        for split, lines in lists.items():
            (root / f"{split}.txt").write_text("".join(lines))
        (root / "labels.txt").write_text("".join(name + "\n" for name in class_names))
        marker.write_text(json.dumps(settings))
