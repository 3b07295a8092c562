"""Speed of 8-frame test-mode sampling (data.load_video) against decoding every frame and indexing it, the way
several peer loaders read a clip (`frame.to_ndarray(format="rgb24")` on every frame). Kinetics-like clips: 340x256,
10 s at 30 fps, H.264, a keyframe every 2 s and every 10 s. Checks that all give identical frames and prints clips/s
and ratios. Two more columns separate our two savings: decode-all with our one-thread RGB conversion (what seeking
alone gains) and ours with seeking switched off (what converting only the sampled frames gains).
Target: >= 3x on the 2-s-keyframe clip, never slower on the 10-s one.

    python bench/data_speed.py [--repeats 7]
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import data  # noqa: E402
import synthetic  # noqa: E402


def kinetics_like_clip(path, keyframe_seconds, seconds=10, fps=30, width=340, height=256, seed=0):
    """A panning texture with moving blocks and sensor noise, so the encoder does real work."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 8 + 2, (width + seconds * fps * 2) // 8 + 2, 3))
    texture = np.kron(coarse, np.ones((8, 8, 1)))          # (H', W', 3) blocky texture, panned below
    frames = np.empty((seconds * fps, height, width, 3), np.uint8)
    for i in range(len(frames)):
        image = texture[:height, 2 * i:2 * i + width].copy()
        for k in range(4):
            x, y = (37 * k + 5 * i) % (width - 40), (53 * k + 3 * i) % (height - 40)
            image[y:y + 40, x:x + 40] = (60 * k, 255 - 60 * k, 128)
        frames[i] = np.clip(image + rng.normal(0, 3, image.shape), 0, 255)
    keyint = str(keyframe_seconds * fps)
    synthetic.write_video(path, frames, fps=fps, options={"preset": "veryfast", "crf": "23", "threads": "1",
                                                      "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"})


def decode_all_then_index(path, num_frames, convert=lambda frame: frame.to_ndarray(format="rgb24")):
    """What several peer loaders do: decode every frame to an array, then take the TSN indices."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = data.DECODER_THREADS   # same decoder settings as ours
        frames = [convert(frame) for frame in container.decode(stream)]
    return np.stack(frames)[data.sample_indices(len(frames), num_frames)]


def decode_all_our_conversion(path, num_frames):
    return decode_all_then_index(path, num_frames, convert=data._rgb)


def decode_through(path, num_frames):
    """Ours with seeking switched off: decode every frame, convert only the sampled ones."""
    with av.open(str(path)) as container:
        n = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    indices = data.sample_indices(n, num_frames)
    _, found, _ = data._read_through(path, n, lambda m: data.sample_indices(m, num_frames), indices)
    return np.stack([found[i] for i in indices.tolist()])


def clips_per_second(fn, path, num_frames, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(path, num_frames)
        times.append(time.perf_counter() - start)
    return 1 / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed reads per method and clip (median reported)")
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per clip")
    args = parser.parse_args()
    targets = {2: 3.0, 10: 1.0}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'clip':<26}{'ours clips/s':>14}{'decode-all':>12}{'ratio':>8}{'all, 1-thread rgb':>19}{'ratio':>8}"
              f"{'no-seek':>10}{'ratio':>8}  frames")
        for keyframe_seconds, target in targets.items():
            path = Path(tmp) / f"kinetics_like_key{keyframe_seconds}s.mp4"
            kinetics_like_clip(path, keyframe_seconds)
            ours = data.load_video(path, args.frames)
            same = all(np.array_equal(ours, fn(path, args.frames))
                       for fn in (decode_all_then_index, decode_all_our_conversion, decode_through))
            speed = {name: clips_per_second(fn, path, args.frames, args.repeats) for name, fn in
                     (("ours", data.load_video), ("all", decode_all_then_index),
                      ("all_rgb", decode_all_our_conversion), ("through", decode_through))}
            ratio = speed["ours"] / speed["all"]
            ok &= same and ratio >= target
            print(f"{path.name:<26}{speed['ours']:>14.1f}{speed['all']:>12.1f}{ratio:>7.2f}x"
                  f"{speed['all_rgb']:>19.1f}{speed['ours'] / speed['all_rgb']:>7.2f}x"
                  f"{speed['through']:>10.1f}{speed['ours'] / speed['through']:>7.2f}x  "
                  f"{'identical' if same else 'DIFFERENT'}  (target >= {target:g}x)")
    print("PASS" if ok else "FAIL", "(timings are wall-clock medians; single-threaded decoding for every method)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
