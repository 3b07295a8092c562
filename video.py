"""Video decoding with PyAV: the first stage of the data pipeline, before the paper's TSN sampling (data.py).

In:  a video file and `pick`, a callable n -> frame indices (data.sample_indices for TSN), plus the short side the
     transform needs.
Out: `read_frames(path, pick, short_side) -> (frames (K, H, W, 3) uint8 RGB, indices (K,))`, scaled down in the
     decoder and upright as a player shows them (rotation metadata applied); VideoReadError (str: 'path: reason')
     for a missing, empty, truncated or undecodable file.

Frames are indexed in decode order: frame k is the k-th frame a full `container.decode()` yields. No time is ever
turned into an index: only in files regular enough to check (see `_scan`) does a pts name its frame, and only there
does `read_frames` seek to a keyframe (when that is cheaper than decoding through) and let the decoder drop frames
nobody sampled. The decoder scales frames to the short side the transform needs (`_rgb`), so no full-resolution
frame is ever copied. A file that breaks an assumption on the way is read again by decoding every frame.
"""
import bisect
import contextlib
import itertools
from collections import namedtuple
from pathlib import Path

import av
import numpy as np

# our reading: a seek plus decoder flush costs less than decoding a few frames; a target fewer packets than this
# beyond the decoder's position is reached by decoding through (bench/data_speed.py shows the net effect)
SEEK_COST_FRAMES = 4
# our reading: DataLoader workers decode videos in parallel, so each decoder gets one thread (no oversubscription)
DECODER_THREADS = 1
# packets of frames nobody asked for are fed with skip_frame NONREF, so the decoder drops those that no other frame
# is predicted from (most B-frames): a quarter to a third less decoding, the same frames (`_frames_from`). Only for
# H.264, whose decoder reads skip_frame per packet and drops exactly its non-reference pictures; libdav1d (AV1)
# reads it once, when it opens; HEVC's decoder also drops sub-layer non-reference pictures that higher sub-layers
# may predict from; MPEG-4 part 2 files can hold packets that yield no frame at all (not-coded VOPs), which a
# dropped frame would hide; VP9 gains nothing.
SKIP_UNWANTED = True
SKIPPING_CODECS = ("h264",)
# a keyframe's position among the decoded frames (output) and among the demuxed packets, and its timestamps
_Keyframe = namedtuple("_Keyframe", "output_index packet_index pts dts")


# swscale's bilinear widens its kernel with the downscaling factor: an antialiased triangle filter, the one
# torch's bilinear resize with antialias=True applies, so frames scaled here match a float resize of full frames
# (mean absolute difference 0.007 on a 1080p clip; AREA 0.011, BICUBIC 0.012). Scaling to YUV 4:4:4 first and
# converting to RGB at the small size is as close and a third faster than scaling straight into RGB (1.2 against
# 1.9 ms a 1080p frame), whose full-chroma path is slow; scaling to RGB without full chroma triples the error.
SCALING = int(av.video.reformatter.Interpolation.BILINEAR)


def _rgb(frame, short_side=None):
    """A decoded av.VideoFrame -> (H, W, 3) uint8 RGB, scaled by swscale (SCALING) so that its short side is
    `short_side` (aspect kept) when it is larger; a frame already that small is left as it is, so the transform's
    one resize is the only one. Then turned as its rotation metadata says. Converted on this thread: by default
    swscale starts a thread pool for every frame, which costs several times the conversion itself (0.67 against
    0.10 ms a 128 px frame)."""
    width, height, rotation = frame.width, frame.height, frame.rotation   # (a reformatted frame has no side data)
    if short_side is not None and min(width, height) > short_side:
        scale = short_side / min(width, height)
        width, height = max(short_side, round(width * scale)), max(short_side, round(height * scale))
        fmt = frame.format   # YUV of any layout via 4:4:4 (full-range JPEG YUV stays full range); RGB, gray straight
        between = ("rgb24" if fmt.is_rgb or fmt.has_palette or fmt.name.startswith("gray")
                   else "yuvj444p" if fmt.name.startswith("yuvj") else "yuv444p")
        frame = frame.reformat(width=width, height=height, format=between, interpolation=SCALING,
                               threads=DECODER_THREADS)
    image = frame.to_ndarray(format="rgb24", threads=DECODER_THREADS)              # (H, W, 3)
    # as a player shows it: a phone's portrait clip is stored landscape, with a display matrix that turns it
    # (frame.rotation: degrees counterclockwise, -90 for the usual portrait tag); mirrored matrices are not undone
    return np.ascontiguousarray(np.rot90(image, round(rotation / 90))) if rotation else image


class VideoReadError(RuntimeError):
    """A video that cannot be used: missing, empty, truncated or undecodable. str(error) = 'path: reason'."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class _SeekFailed(Exception):
    """A seek landed somewhere we cannot place; the caller decodes straight through instead."""


def _packet_identity(packet):
    """The byte position, which names a packet without trusting its timestamps; (pts, dts, size) without one."""
    return packet.pos if packet.pos is not None and packet.pos >= 0 else (packet.pts, packet.dts, packet.size)


def _scan(container, stream):
    """Demux every packet once (no decoding) -> (number of frames, seekable keyframes, identity -> keyframe,
    pts -> output index).

    One packet is one frame for the video codecs of these datasets (`_read_through` recounts when a file proves
    otherwise). Keyframes are offered for seeking only in a file regular enough to place them: every packet has a
    distinct pts and byte position, none is flagged for discard, the first is a keyframe. A keyframe's output index
    is its packet index plus its leading pictures, the packets right after it that the decoder shows before it
    (open-GOP B-frames: a smaller pts), which must also be its pts's rank among all packets: in such a file the
    rank of a frame's pts names its output index. Seeks are checked where they land, and frames met while decoding
    must come out in that order (`_frames_from`); any mismatch sends the file down the decode-through path."""
    # leaving out the empty packet that demux() yields at the end, to flush the decoder
    packets = [(p.pts, p.dts, p.is_keyframe, _packet_identity(p), p.is_discard)
               for p in container.demux(stream) if p.size > 0]
    pts, dts, is_key, identity, discard = zip(*packets) if packets else [()] * 5
    n, keyframes = len(packets), []
    if n > 0 and is_key[0] and not any(discard) and None not in pts and len(set(pts)) == len(set(identity)) == n:
        key_packets = [p for p in range(n) if is_key[p]] + [n]
        for j, next_j in zip(key_packets[:-1], key_packets[1:]):
            leading = sum(pts[q] < pts[j] for q in range(j + 1, next_j))
            contiguous = all(pts[q] < pts[j] for q in range(j + 1, j + 1 + leading))
            if not contiguous or (keyframes and j + leading <= keyframes[-1].output_index):
                keyframes = []
                break
            keyframes.append(_Keyframe(j + leading, j, pts[j], dts[j]))
    rank_of_pts = {t: rank for rank, t in enumerate(sorted(pts))} if keyframes else {}
    if keyframes and (keyframes[0].output_index != 0 or any(rank_of_pts[k.pts] != k.output_index for k in keyframes)):
        keyframes, rank_of_pts = [], {}
    return n, keyframes, {identity[k.packet_index]: k for k in keyframes}, rank_of_pts


def _seek(container, stream, keyframe, by_identity):
    """Seek to `keyframe` (or an earlier one) and return (the keyframe landed on, packet iterator from it)."""
    # demuxers index by pts (mp4, mkv) or dts (avi): try both; landing on an earlier keyframe is fine
    for timestamp in dict.fromkeys(t for t in (keyframe.pts, keyframe.dts) if t is not None):
        container.seek(timestamp, stream=stream, backward=True)
        packets = container.demux(stream)
        first = next(packets, None)
        anchor = by_identity.get(_packet_identity(first)) if first is not None else None
        if anchor is not None and anchor.packet_index <= keyframe.packet_index:
            return anchor, itertools.chain([first], packets)
    raise _SeekFailed


def _frames_from(container, stream, keyframe, by_identity, rank_of_pts, wanted):
    """Yield (output index, packets fed so far, frame) from a seek to `keyframe` onwards. The packet of a frame not
    in `wanted` goes in with skip_frame NONREF (SKIP_UNWANTED, H.264): the decoder drops it if no frame refers to it.
    A frame's output index is the rank of its pts, checked as it comes out: every index between two frames must
    belong to a packet that was allowed to be dropped, so nothing else can go missing unnoticed."""
    anchor, packets = _seek(container, stream, keyframe, by_identity)
    codec = stream.codec_context
    skipping = SKIP_UNWANTED and codec.name in SKIPPING_CODECS
    packets_fed, previous, leading, droppable = anchor.packet_index, None, 0, set()
    for packet in packets:
        packets_fed += packet.size > 0
        if skipping:
            rank = rank_of_pts.get(packet.pts)
            drop = rank is not None and rank not in wanted
            codec.skip_frame = "NONREF" if drop else "DEFAULT"
            if drop:
                droppable.add(rank)
        for frame in packet.decode():
            if previous is None and frame.pts != anchor.pts:
                leading += 1   # a leading picture of an open GOP (if the decoder shows it at all) precedes the keyframe
                if leading > 64:
                    raise _SeekFailed
                continue
            index = rank_of_pts.get(frame.pts, -1)
            if (previous is None and index != anchor.output_index) or (previous is not None and (
                    index <= previous or any(r not in droppable for r in range(previous + 1, index)))):
                raise _SeekFailed   # a frame came out where _scan did not place it
            previous = index
            yield index, packets_fed, frame


def _read_seeking(container, stream, keyframes, by_identity, rank_of_pts, targets, short_side):
    """Frames at the sorted output indices `targets`: seek to the keyframe before a target when it saves decoding."""
    found, key_outputs, wanted = {}, [k.output_index for k in keyframes], set(targets)
    frames, packets_fed, current = None, 0, -1
    for target in targets:
        anchor = keyframes[bisect.bisect_right(key_outputs, target) - 1]
        if frames is None or (anchor.output_index > current and anchor.packet_index > packets_fed + SEEK_COST_FRAMES):
            frames = _frames_from(container, stream, anchor, by_identity, rank_of_pts, wanted)
        for current, packets_fed, frame in frames:
            if current == target:
                found[target] = _rgb(frame, short_side)
                break
        else:   # the stream ended early: the packet count was wrong
            raise _SeekFailed
    return found


def _read_through(path, n, pick, indices, short_side):
    """Decode every frame in order, converting only the wanted ones; recount and re-pick if n was wrong."""
    for _ in range(2):
        wanted, found, count = set(indices.tolist()), {}, 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = DECODER_THREADS
            for frame in container.decode(stream):
                if count in wanted:
                    found[count] = _rgb(frame, short_side)
                count += 1
        if count == n or count == 0:
            return indices, found, count
        n, indices = count, np.asarray(pick(count), dtype=np.int64)
    raise VideoReadError(path, "the number of decoded frames changes from one decode to the next")


def read_frames(path, pick, short_side=None):
    """Frames of `path` at the decode-order indices that `pick` (callable n -> int array; any order, repeats
    allowed) returns for a video of n frames: (frames (K, H, W, 3) uint8, indices (K,)), scaled down in the decoder
    to short side `short_side` where they are larger (None: full size). Raises VideoReadError for a missing, empty,
    truncated or undecodable file."""
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
            n, keyframes, by_identity, rank_of_pts = _scan(container, stream)
            if n == 0:
                raise VideoReadError(path, "no video frames")
            indices, found = np.asarray(pick(n), dtype=np.int64), None
            if keyframes:   # a damaged file fails again below, with its own error
                with contextlib.suppress(_SeekFailed, av.FFmpegError):
                    found = _read_seeking(container, stream, keyframes, by_identity, rank_of_pts,
                                          sorted(set(indices.tolist())), short_side)
        if found is None:
            indices, found, n = _read_through(path, n, pick, indices, short_side)
            if n == 0:
                raise VideoReadError(path, "no decodable video frames")
    except (av.FFmpegError, OSError, EOFError, UnicodeDecodeError) as error:
        raise VideoReadError(path, f"{type(error).__name__}: {error}") from error
    return np.stack([found[i] for i in indices.tolist()]), indices
