"""synthetic.py: the embedded default's classes use the four SU kinds and need scene and motion together, the
time-reversed class is an exact reversal, the fine-object class differs only by its flag, and a set is rendered
once, deterministically, and re-rendered when the renderer changes; --preview draws the classes as a PNG."""
import json

import av
import numpy as np
import pytest

import data
import pictures
import synthetic

def test_synthetic_classes_use_all_four_kinds_and_need_scene_and_motion():
    names = synthetic.synthetic_class_names()
    assert len(names) == 10 and len(set(names)) == len(names)
    text = " ".join(names)
    for kind, words in {"body part": ("arms", "leg"), "object": ("ball", "chair", "flag"),
                        "scene": ("park", "beach", "room", "street"),
                        "motion": ("walking", "sitting down", "waving", "kicking", "throwing", "jumping",
                                   "bouncing")}.items():
        assert all(word in text for word in words), kind
    # every scene holds two or more default classes and one motion happens in two scenes: neither alone names the
    # class
    default = synthetic.CLASSES[:10]
    scenes = [scene for _, _, scene in default]
    assert all(scenes.count(scene) >= 2 for scene in scenes)
    motions = [motion for _, motion, _ in default]
    assert any(motions.count(motion) == 2 for motion in motions)
    assert {"standing up from a chair in the room", "waving a flag on the beach"} <= set(names)
    # standing up is sitting down with time reversed: the same pose at mirrored times
    p = dict(thigh=14, shin=13, torso=20, upper=11, lower=10, ground=110, x=60, facing=1, onset=0.2, duration=0.4)
    for x in np.linspace(0, 0.4, 9):
        sit = synthetic._pose("sit_down", 0.2 + x, p)
        stand = synthetic._pose("stand_up", 0.6 - x, p)
        np.testing.assert_allclose(np.hstack([np.ravel(v) for v in sit[:5]]),
                                   np.hstack([np.ravel(v) for v in stand[:5]]), atol=1e-9)


def test_waving_a_flag_is_waving_arms_with_a_flag():
    """The fine-object pair: the same pose, scene and colours from the same seed; only the flag's pixels differ,
    and they are few (a small object: under 2% of the frame)."""
    flag = synthetic._render_clip("wave_flag", "beach", 12, 128, np.random.default_rng(4))
    arms = synthetic._render_clip("wave", "beach", 12, 128, np.random.default_rng(4))
    differ = (flag != arms).any(-1)                                             # (T, H, W)
    assert differ.any(axis=(1, 2)).all()                                        # a flag in every frame
    assert differ.mean(axis=(1, 2)).max() < 0.02


def test_synthetic_set_generated_once_deterministic_and_readable(tmp_path, busy_cpu):
    """Two renderings in one process, under load, give the same bytes (x264 with mbtree read memory it had not
    set, so the bytes depended on what the process had encoded before)."""
    kwargs = dict(num_classes=8, videos_per_class=2, num_frames=12, size=64, workers=1)
    synthetic.make_synthetic(tmp_path / "a", **kwargs)
    synthetic.make_synthetic(tmp_path / "b", **kwargs)
    for split in ("train", "val"):
        assert (tmp_path / "a" / f"{split}.txt").read_text() == (tmp_path / "b" / f"{split}.txt").read_text()
    files = sorted((tmp_path / "a").rglob("*.mp4"))
    assert len(files) == 16
    for path in files:
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path
    dataset = data.build_dataset("list", tmp_path / "a", "train", num_frames=8, size=32)
    assert dataset.class_names == synthetic.synthetic_class_names(8)
    assert len(dataset) == 8 and sorted(label for _, label in dataset.samples) == list(range(8))
    for path, _ in dataset.samples:
        frames = data.load_video(path, 8)
        assert frames.shape == (8, 64, 64, 3)
    # complete sets are not rendered again; different settings are
    marker = tmp_path / "a" / "synthetic.json"
    stamp = marker.stat().st_mtime_ns
    synthetic.make_synthetic(tmp_path / "a", **kwargs)
    assert marker.stat().st_mtime_ns == stamp
    synthetic.make_synthetic(tmp_path / "a", **dict(kwargs, videos_per_class=3))
    assert len((tmp_path / "a" / "train.txt").read_text().splitlines()) == 16
    # the synthetic layout keeps a set made with its own settings, and re-renders it (same settings) when the
    # renderer version changed
    stamp = marker.stat().st_mtime_ns
    dataset = data.build_dataset("synthetic", tmp_path / "a", "val", num_frames=8, size=32)
    assert dataset.colour is False and len(dataset) == 8
    assert marker.stat().st_mtime_ns == stamp
    marker.write_text(json.dumps(dict(json.loads(marker.read_text()), version=0, num_classes=9)))
    data.build_dataset("synthetic", tmp_path / "a", "val", num_frames=8, size=32)
    assert json.loads(marker.read_text())["version"] == synthetic.VERSION
    assert len((tmp_path / "a" / "train.txt").read_text().splitlines()) == 18
    # a set made before version 5 with that version's default of 8 classes takes today's default of 10
    marker.write_text(json.dumps(dict(json.loads(marker.read_text()), version=4, num_classes=8)))
    data.build_dataset("synthetic", tmp_path / "a", "val", num_frames=8, size=32)
    assert json.loads(marker.read_text())["num_classes"] == 10
    assert len((tmp_path / "a" / "train.txt").read_text().splitlines()) == 20


def test_rgb_to_yuv420p_matches_bt601():
    """Our integer conversion agrees with swscale's BT.601 one up to rounding: luma everywhere, chroma on blocks of
    one colour (elsewhere the two place the half-resolution chroma samples differently)."""
    def both(image):
        ours = synthetic.rgb_to_yuv420p(image).astype(int)
        theirs = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p").to_ndarray()
        return ours, theirs.astype(int)

    noise = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    ours, theirs = both(noise)
    assert ours.shape == theirs.shape == (24, 24)
    assert np.abs(ours[:16] - theirs[:16]).max() <= 1                               # Y plane
    for colour in ((200, 40, 90), (0, 0, 0), (255, 255, 255), (10, 220, 30)):
        ours, theirs = both(np.full((16, 24, 3), colour, np.uint8))
        assert np.abs(ours - theirs).max() <= 1, colour                              # Y, U and V planes


def test_preview_writes_a_png_of_each_class_frames_over_time(tmp_path):
    """`synthetic.py --preview`: a PNG with one row per class of frames evenly spaced over a rendered clip, the
    class name written under each row."""
    out = tmp_path / "preview.png"
    synthetic.main(["--preview", str(out), "--classes", "2", "--frames", "3", "--size", "32"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pictures.read_png(out)
    names = synthetic.synthetic_class_names(2)
    line = pictures.LINE
    width = max(3 * (32 + pictures.PAD) + pictures.PAD, *(pictures.text_width(n) + 2 * pictures.PAD for n in names))
    assert image.shape == (2 * (32 + line) + pictures.PAD, width, 3)
    for row, (name, motion, scene) in enumerate(synthetic.CLASSES[:2]):
        clip, _ = synthetic.render_clip(motion, scene, num_frames=32, size=32)
        top = pictures.PAD + row * (32 + line)
        for column, t in enumerate((0, 16, 31)):   # first, middle and last frame
            left = pictures.PAD + column * (32 + pictures.PAD)
            assert np.array_equal(image[top:top + 32, left:left + 32], clip[t]), (name, t)
        assert pictures.find_text(image, name) == (pictures.PAD, top + 32 + pictures.PAD)
    with pytest.raises(SystemExit) as error:   # bad input: one line naming the flag
        synthetic.main(["--preview", str(tmp_path / "preview.jpg")])
    assert error.value.code == 2 and "--preview" in str(error.value)
