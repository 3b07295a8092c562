"""model.py: ASU's shapes for several (B, T, R, S, C) at 8 and 32 frames, 224 and 336 px; an untrained ASU equals
the CLIP mean-pooling baseline (zero gate); the text tower is frozen and its embeddings are non-persistent buffers;
the parameter groups; and every new parameter learns (the gate at the first step, the rest from the second)."""
import pytest
import torch
import torch.nn.functional as F

from clip_vit import encode_texts, tiny_clip
from model import ASU, class_prompt
from semantic_units import KINDS, SemanticUnit, SemanticUnits, extract_semantic_units


def hand_units(S, C):
    """A small SU bank built by hand: S units of all kinds, each class linked to two of them."""
    units = [SemanticUnit(f"thing number {i}", KINDS[i % len(KINDS)]) for i in range(S)]
    return SemanticUnits(units, [[c % S, (c + 1) % S] for c in range(C)])


def class_list(C, offset=0):
    names = ["ApplyEyeMakeup", "kick_ball", "playing guitar", "Surfing", "ride_bike", "BoxingPunchingBag",
             "walk", "golf swing", "swimming breast stroke"]
    return [names[(i + offset) % len(names)] + ("" if i + offset < len(names) else f" {i}") for i in range(C)]


@pytest.fixture(scope="module")
def clips():
    cache = {}

    def get(resolution):
        if resolution not in cache:
            cache[resolution] = tiny_clip(0, image_resolution=resolution)
        return cache[resolution]
    return get


def videos(B, T, size, seed=0):
    return torch.randn(B, T, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("B, T, size, grids, R, S, C, topk", [
    (2, 8, 112, ((2, 2), (3, 3)), 13, 6, 4, 8),
    (1, 8, 224, ((2, 2), (3, 3)), 13, 12, 3, 8),
    (1, 32, 224, ((1, 1), (2, 2)), 5, 3, 7, 8),
    (1, 8, 336, ((3, 3),), 9, 20, 2, 0),
    (1, 32, 336, ((2, 2), (3, 3)), 13, 9, 5, 4),
])
def test_shapes(clips, B, T, size, grids, R, S, C, topk):
    model = ASU(clips(size), class_list(C), hand_units(S, C), mra_grids=grids, su_topk=topk)
    with torch.no_grad():
        logits, info = model(videos(B, T, size), return_attention=True)
    assert logits.shape == (B, C) and logits.dtype == torch.float32
    attention = info["su_attention"]
    assert attention.shape == (B, T, R + 1, S)
    torch.testing.assert_close(attention.sum(-1), torch.ones(B, T, R + 1))
    assert ((attention > 0).sum(-1) == (S if topk == 0 else min(topk, S))).all()
    assert info["video_features"].shape == (B, model.clip.embed_dim)
    assert model.class_embeddings.shape == (C, model.clip.embed_dim)
    assert model.su_bank.shape == (S, model.clip.embed_dim)


@pytest.mark.parametrize("temporal, queries", [("halves", "units"), ("none", "units"), ("halves", "learned")])
def test_zero_gate_equals_mean_pooling_baseline(clips, temporal, queries):
    """For every temporal and query option: the gate multiplies all the decoder adds."""
    clip = clips(112)
    names = class_list(5)
    asu = ASU(clip, names, hand_units(7, 5), temporal=temporal, queries=queries)
    baseline = ASU(clip, names, decoder_layers=0, mra_layers=0)
    assert baseline.decoder is None and baseline.semantic_units is None
    # the baseline adds no parameter to CLIP's visual branch
    assert {id(p) for p in baseline.parameters() if p.requires_grad} == {id(p) for p in clip.visual.parameters()}
    x = videos(2, 4, 112)
    with torch.no_grad():
        logits = asu(x)
        baseline_logits = baseline(x)
        frames = clip.encode_image(x.flatten(0, 1)).reshape(2, 4, -1)                 # (B, T, D)
        classes = encode_texts(clip, [f"a video of a person {n}." for n in
                                      ["apply eye makeup", "kick ball", "playing guitar", "surfing", "ride bike"]])
        reference = clip.logit_scale.exp() * F.normalize(frames.mean(1), dim=-1) @ classes.t()  # (B, C)
    torch.testing.assert_close(logits, baseline_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(baseline_logits, reference, rtol=1e-5, atol=1e-5)
    assert asu.decoder.gate.item() == 0.0
    with torch.no_grad():
        asu.decoder.gate.fill_(1.0)  # a non-zero gate does change the logits: the decoder is wired in
        assert not torch.allclose(asu(x), baseline_logits, atol=1e-3)
        asu.decoder.gate.zero_()


def test_frozen_text_tower_and_non_persistent_buffers(clips):
    clip = clips(112)
    model = ASU(clip, class_list(3), hand_units(4, 3))
    for name, parameter in model.clip.named_parameters():
        assert parameter.requires_grad == name.startswith("visual."), name
    state = model.state_dict()
    assert "class_embeddings" not in state and "su_bank" not in state
    assert "visual.region_embedding" in state and "decoder.gate" in state and "clip.logit_scale" in state
    torch.testing.assert_close(model.class_embeddings, encode_texts(clip, [class_prompt(n) for n in class_list(3)]))
    assert class_prompt("ApplyEyeMakeup") == "a video of a person apply eye makeup."


def test_set_class_names_for_zero_shot(clips):
    clip = clips(112)
    torch.manual_seed(0)
    model = ASU(clip, class_list(3), hand_units(4, 3))
    with torch.no_grad():
        model.decoder.gate.fill_(0.5)
    new_names, new_units = class_list(6, offset=3), hand_units(9, 6)
    model.set_class_names(new_names, new_units)
    assert model.class_names == new_names and model.semantic_units is new_units
    fresh = ASU(clip, new_names, new_units)
    fresh.load_state_dict(model.state_dict())  # the checkpoint does not depend on the label set
    x = videos(1, 8, 112)
    with torch.no_grad():
        logits, info = model(x, return_attention=True)
        torch.testing.assert_close(logits, fresh(x))
    assert logits.shape == (1, 6) and info["su_attention"].shape == (1, 8, 14, 9)
    # Without a bank, the units are extracted from the new names.
    model.set_class_names(class_list(2))
    assert model.semantic_units == extract_semantic_units(class_list(2))
    assert model.su_bank.shape[0] == len(model.semantic_units.units)


def test_ablation_switches(clips):
    clip = clips(112)
    names, units = class_list(3), hand_units(5, 3)
    x = videos(1, 2, 112)
    no_regions = ASU(clip, names, units, mra_layers=0)
    with torch.no_grad():
        assert no_regions(x, return_attention=True)[1]["su_attention"].shape == (1, 2, 1, 5)
    models = {}
    for memory in ("all", "regions"):
        torch.manual_seed(0)
        models[memory] = ASU(clip, names, units, decoder_memory=memory)
        with torch.no_grad():
            models[memory].decoder.gate.fill_(1.0)
    with torch.no_grad():
        assert not torch.allclose(models["all"](x), models["regions"](x), atol=1e-4)  # patches are read in "all"
    with pytest.raises(ValueError, match="decoder_memory"):
        ASU(clip, names, units, decoder_memory="patches")
    with pytest.raises(ValueError, match="queries"):
        ASU(clip, names, units, queries="random")
    learned = ASU(clip, names, units, queries="learned")
    with torch.no_grad():
        assert learned(x, return_attention=True)[1]["su_attention"] is None   # no SU selection to show
    with pytest.raises(ValueError, match="mra_layers"):
        ASU(clip, names, units, decoder_layers=0, mra_layers=2)
    with pytest.raises(ValueError, match="videos"):
        no_regions(torch.randn(4, 3, 112, 112))


def test_param_groups(clips):
    model = ASU(clips(112), class_list(3), hand_units(5, 3))
    groups = model.param_groups(1e-5, new_module_lr_mult=10.0, weight_decay=0.01)
    trainable = {id(p): name for name, p in model.named_parameters() if p.requires_grad}
    seen = [id(p) for group in groups for p in group["params"]]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    by_name = {trainable[id(p)]: group for group in groups for p in group["params"]}
    for name, group in by_name.items():
        new = not name.startswith("clip.")
        assert group["lr"] == pytest.approx(1e-4 if new else 1e-5), name
    for name in ["decoder.gate", "selection.log_tau", "visual.region_embedding", "selection.time_embedding",
                 "decoder.memory_time_embedding", "decoder.layers.0.ln_1.weight", "clip.visual.class_embedding",
                 "clip.visual.positional_embedding", "clip.visual.transformer.resblocks.0.attn.in_proj_bias"]:
        assert by_name[name]["weight_decay"] == 0.0, name
    for name in ["decoder.layers.0.cross_attn.in_proj_weight", "selection.mlp.0.weight", "clip.visual.conv1.weight",
                 "clip.visual.proj", "clip.visual.transformer.resblocks.0.mlp.c_fc.weight"]:
        assert by_name[name]["weight_decay"] == 0.01, name
    torch.optim.AdamW(groups)  # a valid optimiser spec


def test_every_new_parameter_learns(clips):
    torch.manual_seed(0)
    model = ASU(clips(112), class_list(4), hand_units(6, 4)).train()
    optimizer = torch.optim.AdamW(model.param_groups(1e-3), betas=(0.9, 0.98))
    x, labels = videos(2, 2, 112), torch.tensor([1, 3])
    new = {name: p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("clip.")}
    assert {"decoder.gate", "visual.region_embedding", "selection.log_tau"} <= set(new)

    F.cross_entropy(model(x), labels).backward()
    # DDP without find_unused_parameters needs every trainable parameter in the graph.
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == (parameter.grad is not None), name
    assert new["decoder.gate"].grad.abs() > 0  # the gate learns first ...
    for name, parameter in new.items():
        if name != "decoder.gate":  # ... while everything behind it gets exactly zero
            assert parameter.grad.abs().sum() == 0, name
    optimizer.step()
    optimizer.zero_grad()
    assert new["decoder.gate"].item() != 0.0

    F.cross_entropy(model(x), labels).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad.abs().sum() > 0, name  # now every parameter, new and CLIP's, has a gradient
    before = {name: p.detach().clone() for name, p in new.items()}
    optimizer.step()
    for name, parameter in new.items():
        assert not torch.equal(parameter, before[name]), name


def test_bf16_autocast_with_grad_checkpointing(clips):
    clip = tiny_clip(1)
    model = ASU(clip, class_list(3), hand_units(5, 3))
    with torch.no_grad():
        model.decoder.gate.fill_(0.5)
    clip.visual.transformer.grad_checkpointing = True
    x = videos(1, 2, 112)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.float32
    logits.logsumexp(-1).sum().backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_design_notes_memory_table_is_the_estimate():
    """DESIGN.md's GPU memory table is what model.training_memory_gib gives (batch 8, bf16), row by row; the
    estimate grows with frames and size, and gradient checkpointing lowers it."""
    from pathlib import Path
    from model import training_memory_gib
    text = (Path(__file__).resolve().parents[1] / "DESIGN.md").read_text().split("## GPU memory", 1)[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.split("\n## ")[0].splitlines()
            if line.startswith("| ") and not line.startswith("| CLIP")]
    assert len(rows) == 9
    for clip, frames, size, without, with_ckpt in rows:
        for ckpt, printed in ((False, without), (True, with_ckpt)):
            assert f"{training_memory_gib(clip, int(frames), int(size), 8, ckpt):.1f}" == printed, (clip, frames)
        assert float(with_ckpt) < float(without)
    assert training_memory_gib("ViT-B/16", 16, 224, 8, False) > training_memory_gib("ViT-B/16", 8, 224, 8, False)
    assert training_memory_gib("ViT-B/16", 8, 224, 8, False, amp="off") > training_memory_gib("ViT-B/16", 8, 224, 8,
                                                                                             False)
