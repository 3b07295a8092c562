"""The captioned world (synthetic.render_clip, frame_facts, caption, captions) and pretrain.py: captions say what was
drawn, the loss's targets follow the facts, a few steps lower the loss, an interrupted run resumes to the same
weights, and the pretrained file goes through clip_vit.load_clip and train.py's --clip tiny-pretrained."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import clip_vit
import model as asu_model
import pretrain
import runtime
import synthetic

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--steps", "6", "--batch-size", "8", "--frames-per-clip", "4", "--size", "32", "--warmup-steps", "2",
         "--eval-clips", "1", "--workers", "0", "--no-progress"]


def test_captioned_world_api():
    assert synthetic.CLASSES == tuple((synthetic.class_name(m, s), m, s) for m, s in synthetic.DEFAULT_PAIRS)
    assert synthetic.class_name("kick", "beach") == "kicking a ball with one leg on the beach"
    for motion in synthetic.MOTIONS:   # every motion in every scene
        for scene in synthetic.SCENES:
            frames, records = synthetic.render_clip(motion, scene, 3, 32, seed=1)
            assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
            assert len(records) == 3 and all(r["motion"] == motion and r["scene"] == scene for r in records)
            assert all(r["pose"] is None or r["pose"] in synthetic.POSES for r in records)
    with pytest.raises(ValueError, match="motions are"):
        synthetic.render_clip("swim", "park")
    # recording draws nothing from the generator: the frames are the ones the data set's clips are made of
    frames, _ = synthetic.render_clip("throw", "beach", 9, 64, seed=5)
    assert np.array_equal(frames, synthetic._render_clip("throw", "beach", 9, 64, np.random.default_rng(5)))


def test_captions_name_what_was_drawn():
    seen = set()
    for motion in synthetic.MOTIONS:
        _, records = synthetic.render_clip(motion, "beach", 8, 64, seed=2, balanced=True)
        for record in records:
            texts = synthetic.captions(record)
            assert len(texts) == 3
            for text in texts:
                assert ("ball" in text) == bool(record["ball"]), (text, record)
                assert ("flag" in text) == bool(record["flag"]), (text, record)
                assert ("chair" in text) == record["chair"], (text, record)
                assert "beach" in text and record["figure"] in text and f"facing {record['facing']}" in text
                if record["pose"]:
                    assert any(phrase in text for phrase in synthetic.POSES[record["pose"]]), (text, record)
            seen.add(record["pose"])
    assert {"arms_up", "leg_up", "sitting", "air"} <= seen   # balanced frames reach the short poses


def test_partial_captions_state_only_facts_of_their_frame():
    rng = np.random.default_rng(0)
    _, records = synthetic.render_clip("kick", "park", 16, 64, seed=3, balanced=True)
    for record in records:
        known, unknown = synthetic.frame_facts(record)
        for _ in range(20):
            text, stated = synthetic.caption(record, rng)
            assert stated and stated <= known and not {kind for kind, _ in stated} & unknown
            assert text.endswith(".")


def test_targets_follow_the_facts():
    """A caption is a positive of every frame it is true of (not only its own), and states nothing of a frame
    whose pose is between two states."""
    _, records = synthetic.render_clip("kick", "park", 24, 64, seed=4, balanced=True)
    frames_facts = [synthetic.frame_facts(r) for r in records]
    ball = ("a photo of a ball.", frozenset({("object", "ball")}))
    leg = ("a person with one leg raised.", frozenset({("pose", "leg_up")}))
    positives, ignored = pretrain.match(frames_facts, [ball, leg])
    assert positives[:, 0].all() and not ignored[:, 0].any()   # every frame of a kick shows the ball
    for i, record in enumerate(records):
        assert positives[i, 1] == (record["pose"] == "leg_up")
        assert ignored[i, 1] == (record["pose"] is None)
    assert any(r["pose"] is None for r in records) and any(r["pose"] == "leg_up" for r in records)


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = pretrain.new_clip(seed=0, size=64)
    frames, captions, positives, ignored = pretrain.captioned_batch(0, 0, 32, 4, 64)
    optimizer = torch.optim.AdamW(pretrain.param_groups(model, 0.1), lr=2e-3)
    images = runtime.model_input(frames.permute(0, 3, 1, 2), torch.device("cpu"))

    def loss():
        return pretrain.contrastive_loss(model.encode_image(images), pretrain.encode_captions(model, captions),
                                         model.logit_scale, positives, ignored)
    first = loss()
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < first.item() - 0.2


def test_batches_are_the_same_with_any_number_of_workers():
    a = pretrain.captioned_batch(3, 5, 16, 4, 32)
    b = pretrain.captioned_batch(3, 5, 16, 4, 32)
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and torch.equal(a[2], b[2])
    args = pretrain.build_parser().parse_args(SMALL + ["--size", "32", "--steps", "4"])
    one = list(torch.utils.data.DataLoader(pretrain.CaptionedFrames(args, 1), batch_size=None, num_workers=0))
    two = list(torch.utils.data.DataLoader(pretrain.CaptionedFrames(args, 1), batch_size=None, num_workers=2))
    assert len(one) == len(two) == 3
    for x, y in zip(one, two):
        assert torch.equal(x[0], y[0]) and x[1] == y[1]


def test_interrupted_run_resumes_to_the_same_weights_and_loads_as_clip(tmp_path, monkeypatch, busy_cpu):
    """Under load: a run stopped after 3 steps and resumed ends with the weights of an uninterrupted run; its
    clip.pt is an OpenAI-format state dict that load_clip reads; pretrain.json has every key."""
    whole = pretrain.main(SMALL + ["--out", str(tmp_path / "whole")])
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return 2 if calls["n"] == 3 else 0
    monkeypatch.setattr(runtime, "stop_signal", stop_after_three)
    with pytest.raises(SystemExit) as stopped:
        pretrain.main(SMALL + ["--out", str(tmp_path / "cut")])
    assert stopped.value.code == 130
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(runtime, "stop_signal", lambda: 0)
    resumed = pretrain.main(SMALL + ["--out", str(tmp_path / "cut"), "--resume"])
    a = torch.load(tmp_path / "whole" / "clip.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "clip.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {k: resumed[k] for k in ("scene", "object", "pose")} == {k: whole[k] for k in ("scene", "object", "pose")}
    report = json.loads((tmp_path / "whole" / "pretrain.json").read_text())
    for key in ("scene", "object", "pose"):
        assert set(report[key]) == {"seen", "held_out"} and all(0 <= v <= 1 for v in report[key].values())
    clip = clip_vit.load_clip(tmp_path / "whole" / "clip.pt")
    assert all(torch.equal(clip.state_dict()[k], a[k].float()) for k in a)
    assert clip.visual.conv1.kernel_size == (16, 16) and clip.context_length == 77


def test_train_builds_asu_on_the_pretrained_tiny_clip(tmp_path, monkeypatch):
    pretrain.main(SMALL + ["--steps", "1", "--out", str(tmp_path / "p")])
    monkeypatch.setattr(pretrain, "ensure_pretrained", lambda progress=True: tmp_path / "p" / "clip.pt")
    options = dict(clip="tiny-pretrained", seed=0, size=64, mra_grids="2x2", mra_layers=1, su_topk=4,
                   decoder_layers=1, decoder_memory="all", cache_dir=None, descriptions=None)
    asu = asu_model.build_model(options, ["kicking a ball with one leg in the park", "waving a flag on the beach"])
    weights = torch.load(tmp_path / "p" / "clip.pt", weights_only=True)
    assert torch.equal(asu.clip.visual.conv1.weight, weights["visual.conv1.weight"].float())


def test_help_lists_every_flag():
    text = subprocess.run([sys.executable, "pretrain.py", "--help"], cwd=REPO, capture_output=True, text=True).stdout
    for action in pretrain.build_parser()._actions:
        assert any(flag in text for flag in action.option_strings)
        assert action.help
