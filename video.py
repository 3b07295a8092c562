"""Video decoding with PyAV: the first stage of the data pipeline, before the paper's TSN sampling (data.py); and
the dataset preparation command that re-encodes a dataset at the size training reads it (`resize`, at the end).

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
import multiprocessing
import os
import shutil
import sys
from collections import namedtuple
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

import runtime

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


# --------------------------------------------------------------------------------------------------------------------
# Dataset preparation: python video.py resize SRC DST --short-side 256 --workers N
#
# A 1080p file decodes at a few training items per second per worker, far short of what a GPU takes; the same video
# at short side 256 decodes many times faster (README, "Training on real data"). Peers do this with an ffmpeg
# shell-out per file (mmaction2's tools/data/resize_videos.py); here PyAV decodes, swscale scales (SCALING, as
# read_frames does), libx264 encodes with a fixed keyframe interval (read_frames seeks to keyframes), no audio.

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv")
# A re-encoded video keeps its source's name (annotation files list the names), so the container follows the name.
# WebM cannot hold H.264: those files hold Matroska, of which WebM is a subset (readers look at the content).
# AVI stores no presentation times, so an AVI gets no B-frames: decode order is then display order.
MUXER_OF_SUFFIX = {".avi": "avi", ".mkv": "matroska", ".webm": "matroska", ".flv": "flv"}   # others: mp4
ENCODER_PRESET = "fast"   # libx264's speed / size trade-off (ffmpeg's default is medium: smaller files, slower)
FAILURES_FILE = "resize_failures.txt"


def scaled_size(width, height, short_side):
    """(width, height) with the short side `short_side`, aspect kept, both even (H.264's 4:2:0 needs it); a video
    already that small keeps its size (rounded down to even): never scaled up."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _temporary(target):
    """Where `target` is written until it is complete: hidden, beside it, the same for every run (a run that was
    killed leaves it; the next one writes it again)."""
    return target.with_name(f".{target.name}.part")


def resize_video(source, target, short_side=256, gop=16, crf=23):
    """Re-encode `source` with H.264 at short side `short_side` (every frame, in decode order, at its average frame
    rate), a keyframe every `gop` frames, quality `crf`, no audio; into a temporary file renamed to `target` once
    complete. Returns the number of frames. Raises VideoReadError for a source that cannot be read."""
    source, target = Path(source), Path(target)
    temporary = _temporary(target)
    x264 = f"keyint={gop}:min-keyint={gop}:scenecut=0" + (":bframes=0" if target.suffix.lower() == ".avi" else "")
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise VideoReadError(source, "no video stream")
            stream_in = container.streams.video[0]
            stream_in.codec_context.thread_count = DECODER_THREADS   # one process per file: one thread each
            rate = stream_in.average_rate or stream_in.guessed_rate or Fraction(30)
            with av.open(str(temporary), "w", format=MUXER_OF_SUFFIX.get(target.suffix.lower(), "mp4")) as output:
                stream, count = None, 0
                for frame in container.decode(stream_in):
                    if stream is None:   # the size of the first frame sets the output's
                        width, height = scaled_size(frame.width, frame.height, short_side)
                        stream = output.add_stream("libx264", rate=rate)
                        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                        stream.options = {"preset": ENCODER_PRESET, "crf": str(crf), "threads": "1",
                                          "x264-params": x264}
                    small = frame.reformat(width=width, height=height, format="yuv420p", interpolation=SCALING,
                                           threads=DECODER_THREADS)
                    small.pts, small.time_base = count, 1 / Fraction(rate)   # frame k at k / rate
                    output.mux(stream.encode(small))
                    count += 1
                if stream is None:
                    raise VideoReadError(source, "no decodable video frames")
                output.mux(stream.encode())
        os.replace(temporary, target)
        return count
    except (av.FFmpegError, OSError, EOFError, UnicodeDecodeError) as error:
        raise VideoReadError(source, f"{type(error).__name__}: {error}") from error
    finally:
        temporary.unlink(missing_ok=True)   # still there only when something failed


def _resize_job(job):
    """One file in a pool worker -> (relative path, reason or None). Never raises: a bad file is reported."""
    source, target, short_side, gop, crf = job
    try:
        resize_video(source, target, short_side, gop, crf)
        return source, None
    except VideoReadError as error:
        return source, error.reason
    except Exception as error:   # anything else one file does to the decoder is that file's failure, not the run's
        return source, f"{type(error).__name__}: {runtime.first_line(error)}"


def resize_tree(source_root, target_root, short_side=256, gop=16, crf=23, workers=1, progress=True):
    """Every video under `source_root` re-encoded (resize_video) to the same relative path under `target_root`, in
    `workers` processes; other files (annotation lists) copied; a video whose target exists is kept (a finished
    file: targets appear only by a rename). Unreadable videos are listed, never fatal: with their reasons on stderr
    and in target_root/resize_failures.txt (empty when none). Returns {"done", "kept", "failed": [(path, reason)],
    "bytes_before", "bytes_after"} (the sizes over the videos done and kept)."""
    source_root, target_root = Path(source_root), Path(target_root)
    files = sorted(p for p in source_root.rglob("*") if p.is_file() and not p.name.startswith("."))
    jobs, kept = [], []
    for path in files:
        target = target_root / path.relative_to(source_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            if not target.exists():
                with runtime.atomic_write(target) as file, open(path, "rb") as original:
                    shutil.copyfileobj(original, file)
        elif target.exists():
            kept.append(path)
        else:
            jobs.append((path, target, short_side, gop, crf))
    failed = []
    # fork: the workers need nothing but this module; chunksize 1: files take very different times
    with multiprocessing.get_context("fork").Pool(max(1, min(workers, len(jobs) or 1))) as pool:
        results = pool.imap_unordered(_resize_job, jobs, chunksize=1)
        for source, reason in tqdm(results, total=len(jobs), desc="resize", unit="video", disable=not progress):
            if reason is not None:
                failed.append((str(source.relative_to(source_root)), reason))
    failed.sort()
    runtime.write_text_atomic(target_root / FAILURES_FILE, "".join(f"{path}\t{reason}\n" for path, reason in failed))
    finished = kept + [job[0] for job in jobs if str(job[0].relative_to(source_root)) not in dict(failed)]
    return dict(done=len(jobs) - len(failed), kept=len(kept), failed=failed,
                bytes_before=sum(p.stat().st_size for p in finished),
                bytes_after=sum((target_root / p.relative_to(source_root)).stat().st_size for p in finished))


def main(argv=None):
    parser = runtime.argument_parser("video.py", "Dataset preparation with PyAV.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("resize", formatter_class=runtime.HelpFormatter,
                            help="re-encode a folder tree of videos at a short side, for faster loading",
                            description="Re-encode every video under SRC to the same path under DST: H.264 at the "
                                        "short side given (never scaled up), a fixed keyframe interval, no audio. "
                                        "Other files are copied, so DST is a --data-root. Run again, it does what "
                                        f"is left. Unreadable videos are listed at the end and in DST/{FAILURES_FILE}.")
    p.error = lambda message: runtime.fail(f"video.py resize: {message}")
    p.add_argument("source", metavar="SRC", help="the dataset folder (e.g. data/k400)")
    p.add_argument("target", metavar="DST", help="the folder to write (e.g. data/k400_256), not inside SRC")
    p.add_argument("--short-side", type=int, default=256, help="short side in pixels, even (256 serves 224 px "
                   "training crops, train.py's default; 320 leaves room for larger ones)")
    p.add_argument("--gop", type=int, default=16, help="frames between keyframes (where a read can start)")
    p.add_argument("--crf", type=int, default=23, help="libx264 quality, 0 (lossless) to 51 (worst)")
    p.add_argument("--workers", type=int, default=runtime.usable_cpus(), help="processes, one file each "
                   "(default: the cores this process may use)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args = parser.parse_args(argv)
    source, target = Path(args.source).resolve(), Path(args.target).resolve()
    if not source.is_dir():
        runtime.fail(f"SRC {args.source}: no such folder")
    if target == source or source in target.parents:
        runtime.fail(f"DST {args.target}: inside SRC {args.source} (its videos would be read as sources next time)")
    if args.short_side < 2 or args.short_side % 2:
        runtime.fail(f"--short-side {args.short_side}: must be even and at least 2")
    if args.gop < 1 or args.workers < 1 or not 0 <= args.crf <= 51:
        runtime.fail(f"--gop {args.gop}, --workers {args.workers}: at least 1; --crf {args.crf}: 0 to 51")
    with runtime.one_line_errors(f"DST {args.target}: "):
        target.mkdir(parents=True, exist_ok=True)
    summary = resize_tree(source, target, args.short_side, args.gop, args.crf, args.workers, not args.no_progress)
    for path, reason in summary["failed"]:
        print(f"unreadable: {path}: {reason}", file=sys.stderr)
    before, after = summary["bytes_before"], summary["bytes_after"]
    print(f"resize: {summary['done']} videos written, {summary['kept']} already there, {len(summary['failed'])} "
          f"unreadable (listed in {target / FAILURES_FILE}); {before / 2**30:.2f} GiB -> {after / 2**30:.2f} GiB "
          f"({after / max(1, before):.0%} of the sources)", flush=True)
    return summary


if __name__ == "__main__":
    main()
