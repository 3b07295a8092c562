"""decoder.py: the SU selection keeps exactly k units per visual token with weights that sum to 1 and a learnable
temperature; the cross-modal decoder has the documented shapes, heads and invariances, and its gate starts at 0;
the temporal contrast changes sign when time is reversed; learned queries ignore the input."""
import math

import pytest
import torch
import torch.nn.functional as F

from decoder import CrossModalDecoder, LearnedQueries, SUSelection, TemporalContrast


def make_inputs(B=2, T=3, tokens=5, S=20, D=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    visual_tokens = torch.randn(B, T, tokens, D, generator=generator)
    su_bank = F.normalize(torch.randn(S, D, generator=generator), dim=-1)
    return visual_tokens, su_bank


@pytest.mark.parametrize("topk, S", [(1, 20), (3, 20), (8, 20), (8, 5), (0, 20)])
def test_selection_weights_sum_to_one_with_k_nonzero(topk, S):
    torch.manual_seed(0)
    selection = SUSelection(32, num_tokens=5, topk=topk)
    visual_tokens, su_bank = make_inputs(S=S)
    queries, weights = selection(visual_tokens, su_bank)
    assert queries.shape == (2, 3 * 5, 32)
    assert weights.shape == (2, 3, 5, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    expected_k = S if topk == 0 else min(topk, S)
    assert ((weights > 0).sum(-1) == expected_k).all()
    assert (weights >= 0).all()


def test_selection_matches_definition():
    """The kept units are the k most similar ones by cosine, weighted by softmax(cos / tau) among themselves."""
    torch.manual_seed(0)
    selection = SUSelection(32, num_tokens=5, topk=4, tau=0.1)
    visual_tokens, su_bank = make_inputs()
    _, weights = selection(visual_tokens, su_bank)
    cosine = F.normalize(visual_tokens, dim=-1) @ su_bank.t()                     # (B, T, R+1, S)
    top_cosine, top_index = cosine.topk(4, dim=-1)
    expected = torch.zeros_like(cosine).scatter(-1, top_index, (top_cosine / 0.1).softmax(-1))
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(selection.tau, torch.tensor(0.1))


def test_selection_queries_are_mlp_of_mixture_plus_embeddings():
    torch.manual_seed(0)
    selection = SUSelection(32, num_tokens=5, topk=3)
    visual_tokens, su_bank = make_inputs()
    queries, weights = selection(visual_tokens, su_bank)
    expected = (selection.mlp(weights @ su_bank) + selection.time_embedding[:3, None]
                + selection.region_embedding)                                      # (B, T, R+1, D)
    torch.testing.assert_close(queries, expected.reshape(2, 15, 32))
    # The same visual token in two frames gives queries that differ by the time embedding only.
    visual_tokens[:, 1] = visual_tokens[:, 0]
    queries = selection(visual_tokens, su_bank)[0].reshape(2, 3, 5, 32)
    torch.testing.assert_close(queries[:, 1] - queries[:, 0],
                               (selection.time_embedding[1] - selection.time_embedding[0]).expand(2, 5, 32))


def test_temperature_is_learnable_and_sharpens():
    torch.manual_seed(0)
    selection = SUSelection(32, num_tokens=5, topk=6)
    assert selection.log_tau.requires_grad
    assert math.isclose(selection.tau.item(), 0.07, rel_tol=1e-6)
    visual_tokens, su_bank = make_inputs()
    queries, weights = selection(visual_tokens, su_bank)
    queries.square().sum().backward()
    assert selection.log_tau.grad is not None and selection.log_tau.grad.abs() > 0
    # A lower temperature concentrates the weights: the largest weight grows, the support stays k.
    with torch.no_grad():
        selection.log_tau.fill_(math.log(0.02))
    sharper = selection(visual_tokens, su_bank)[1]
    assert (sharper.amax(-1) >= weights.amax(-1) - 1e-6).all()
    assert (sharper.amax(-1) > weights.amax(-1) + 1e-3).any()
    assert ((sharper > 0).sum(-1) == 6).all()


def test_selection_under_bf16_autocast_keeps_k_units():
    torch.manual_seed(0)
    selection = SUSelection(32, num_tokens=5, topk=8)
    visual_tokens, su_bank = make_inputs(S=40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        queries, weights = selection(visual_tokens.bfloat16(), su_bank)
    assert weights.dtype == torch.float32
    assert ((weights > 0).sum(-1) == 8).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))


def test_selection_rejects_too_many_frames():
    selection = SUSelection(32, num_tokens=5, max_frames=2)
    visual_tokens, su_bank = make_inputs(T=3)
    with pytest.raises(ValueError, match="max_frames"):
        selection(visual_tokens, su_bank)


@pytest.mark.parametrize("dim, heads", [(32, 1), (128, 2), (512, 8)])
def test_decoder_heads_and_shapes(dim, heads):
    decoder = CrossModalDecoder(dim, layers=2)
    assert len(decoder.layers) == 2
    for layer in decoder.layers:
        assert layer.self_attn.num_heads == heads and layer.cross_attn.num_heads == heads
        assert layer.mlp[0].out_features == 4 * dim
    queries = torch.randn(3, 4 * 14, dim)
    memory = torch.randn(3, 4, 14 + 9, dim)
    assert decoder(queries, memory).shape == (3, dim)
    assert decoder.gate.item() == 0.0 and decoder.gate.requires_grad


def test_decoder_invariances():
    """Readout = mean over queries, and no positional information inside the layers: permuting the queries, or the
    memory tokens within a frame, leaves z unchanged; the memory's frame order matters (time embedding)."""
    torch.manual_seed(0)
    decoder = CrossModalDecoder(64, layers=2).eval()
    queries = torch.randn(2, 12, 64)
    memory = torch.randn(2, 3, 7, 64)
    z = decoder(queries, memory)
    torch.testing.assert_close(decoder(queries[:, torch.randperm(12)], memory), z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(decoder(queries, memory[:, :, torch.randperm(7)]), z, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(decoder(queries, memory.flip(1)), z, atol=1e-4)
    # The memory is actually read: changing it changes z.
    assert not torch.allclose(decoder(queries, memory + torch.randn_like(memory)), z, atol=1e-4)


def test_decoder_with_zero_layers_is_normalised_mean_plus_temporal_contrast():
    queries, memory = torch.randn(2, 6, 32), torch.randn(2, 3, 4, 32)
    plain = CrossModalDecoder(32, layers=0, temporal="none")
    assert plain.temporal is None
    torch.testing.assert_close(plain(queries, memory), plain.ln_post(queries).mean(1))
    decoder = CrossModalDecoder(32, layers=0)   # temporal="halves", the default
    expected = decoder.ln_post(queries).mean(1) + decoder.temporal(memory[:, :, 0])
    torch.testing.assert_close(decoder(queries, memory), expected)
    with pytest.raises(ValueError, match="temporal"):
        CrossModalDecoder(32, temporal="conv")


@pytest.mark.parametrize("T", [1, 2, 7, 8])
def test_temporal_contrast_is_the_halves_difference_and_flips_with_time(T):
    torch.manual_seed(0)
    contrast = TemporalContrast(16)
    frames = torch.randn(3, T, 16)
    out = contrast(frames)
    assert out.shape == (3, 16)
    if T == 1:
        assert torch.equal(out, torch.zeros(3, 16))
        out.sum().backward()   # proj takes part in backward (DDP needs every parameter to), with a zero gradient
        assert all(p.grad is not None and not p.grad.any() for p in contrast.parameters())
        return
    half = T // 2
    expected = contrast.proj(frames[:, T - half:].mean(1) - frames[:, :half].mean(1))
    torch.testing.assert_close(out, expected)
    # reversing time negates the contrast: proj(c) + proj(-c) = 2 * bias
    torch.testing.assert_close(out + contrast(frames.flip(1)), 2 * contrast.proj.bias.expand(3, 16))
    # order within each half does not matter; order across the halves does
    within = torch.cat([frames[:, :half].flip(1), frames[:, half:T - half], frames[:, T - half:].flip(1)], 1)
    torch.testing.assert_close(contrast(within), out, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(contrast(frames.flip(1)), out, atol=1e-3)


def test_learned_queries_have_selection_shapes_and_ignore_the_input():
    queries = LearnedQueries(32, num_tokens=5)
    visual_tokens, _ = make_inputs()                                       # (2, 3, 5, 32)
    out, weights = queries(visual_tokens)
    assert out.shape == (2, 3 * 5, 32) and weights is None
    torch.testing.assert_close(queries(visual_tokens * 7 + 1)[0], out)
    assert not torch.allclose(out[:, :5], out[:, 5:10])                   # time embeddings tell frames apart


def test_every_decoder_and_selection_parameter_gets_a_gradient():
    torch.manual_seed(0)
    selection = SUSelection(32, num_tokens=5, topk=3)
    decoder = CrossModalDecoder(32, layers=2)
    visual_tokens, su_bank = make_inputs()
    visual_tokens.requires_grad_(True)
    queries, _ = selection(visual_tokens, su_bank)
    z = decoder(queries, visual_tokens)
    (z * torch.randn_like(z)).sum().backward()
    for module in (selection, decoder):
        for name, parameter in module.named_parameters():
            if name == "gate":
                continue  # the gate multiplies z outside the decoder (model.py)
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert visual_tokens.grad.abs().sum() > 0
