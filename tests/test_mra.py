"""mra.py: region windows tile the patch grid at every scale; MultiRegionViT leaves CLIP's global and patch outputs
unchanged (layers = 0 is CLIP exactly); inside an MRA block region token j sees only the class token, itself and
window j, and nobody else sees region tokens; end to end, a window's pixels move its own region feature most."""
import pytest
import torch

from clip_vit import tiny_clip
from mra import MultiRegionViT, region_attention_mask, region_windows


@pytest.fixture(scope="module")
def clip112():
    return tiny_clip(0)  # 112 px, 7 x 7 patches, 4 blocks, D 64


def clip_patch_outputs(visual, images):
    """CLIP's own per-patch outputs: the same ln_post and proj applied to every token."""
    tokens = visual.ln_post(visual.transformer(visual.embed(images))) @ visual.proj  # (B, 1+N, D)
    return tokens[:, 1:]


@pytest.mark.parametrize("grid", [(7, 7), (14, 14), (16, 16), (21, 21), (24, 24), (5, 9)])
@pytest.mark.parametrize("grids", [((2, 2), (3, 3)), ((1, 1), (2, 2), (4, 4)), ((2, 3),)])
def test_windows_tile_the_grid_at_every_scale(grid, grids):
    grid_h, grid_w = grid
    windows = region_windows(grid_h, grid_w, grids)
    assert len(windows) == sum(rows * cols for rows, cols in grids)
    start = 0
    for rows, cols in grids:
        coverage = torch.zeros(grid_h, grid_w, dtype=torch.long)
        for i in range(rows):
            for j in range(cols):
                r0, r1, c0, c1 = windows[start + i * cols + j]
                assert (r0, r1) == (round(i * grid_h / rows), round((i + 1) * grid_h / rows))
                assert (c0, c1) == (round(j * grid_w / cols), round((j + 1) * grid_w / cols))
                assert r1 > r0 and c1 > c0
                coverage[r0:r1, c0:c1] += 1
        assert (coverage == 1).all()  # each scale is a partition of the grid
        start += rows * cols


def test_windows_reject_grids_finer_than_the_patch_grid():
    with pytest.raises(ValueError, match="does not fit"):
        region_windows(2, 2, ((3, 3),))


def test_mask_structure():
    windows = region_windows(7, 7)
    mask = region_attention_mask(7, 7)
    N, R = 49, len(windows)
    assert mask.shape == (1 + N + R, 1 + N + R)
    allowed = mask == 0
    assert torch.isinf(mask[~allowed]).all() and (mask[~allowed] < 0).all()
    assert allowed[:1 + N, :1 + N].all() and not allowed[:1 + N, 1 + N:].any()
    for j, (r0, r1, c0, c1) in enumerate(windows):
        row = allowed[1 + N + j]
        inside = torch.zeros(7, 7, dtype=torch.bool)
        inside[r0:r1, c0:c1] = True
        assert row[0] and row[1 + N + j]
        assert torch.equal(row[1:1 + N], inside.flatten())
        assert row[1 + N:].sum() == 1


@pytest.mark.parametrize("resolution, layers", [(112, 2), (112, 1), (112, 4), (224, 2), (336, 2)])
def test_global_and_patches_equal_clip(resolution, layers):
    clip = tiny_clip(0, image_resolution=resolution)
    mra = MultiRegionViT(clip.visual, layers=layers)
    images = torch.randn(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.nn.init.normal_(mra.region_embedding)  # region tokens must not leak, whatever their values
        global_features, regions, patches = mra(images)
        reference_global = clip.encode_image(images)
        reference_patches = clip_patch_outputs(clip.visual, images)
    grid = resolution // 16
    D = clip.embed_dim
    assert global_features.shape == (2, D) and regions.shape == (2, 13, D) and patches.shape == (2, grid ** 2, D)
    scale = reference_global.abs().max()
    assert (global_features - reference_global).abs().max() <= 1e-5 * scale
    assert (patches - reference_patches).abs().max() <= 1e-5 * reference_patches.abs().max()


def test_zero_layers_is_exactly_clip(clip112):
    mra = MultiRegionViT(clip112.visual, layers=0)
    assert mra.num_regions == 0 and not list(mra.parameters(recurse=False))
    images = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        global_features, regions, patches = mra(images)
        assert torch.equal(global_features, clip112.encode_image(images))
        torch.testing.assert_close(patches, clip_patch_outputs(clip112.visual, images), rtol=1e-6, atol=1e-6)
    assert regions.shape == (3, 0, clip112.embed_dim)


@pytest.mark.parametrize("grids, R", [(((2, 2), (3, 3)), 13), (((1, 1), (2, 2)), 5), (((4, 4),), 16)])
def test_shapes_at_other_input_sizes(clip112, grids, R):
    """A 112-px CLIP fed 224 px (interpolated positional embedding, 14 x 14 grid) and a non-square input."""
    mra = MultiRegionViT(clip112.visual, grids=grids)
    with torch.no_grad():
        for height, width in [(224, 224), (112, 160)]:
            global_features, regions, patches = mra(torch.randn(2, 3, height, width))
            D = clip112.embed_dim
            assert global_features.shape == (2, D)
            assert regions.shape == (2, R, D)
            assert patches.shape == (2, (height // 16) * (width // 16), D)
    assert len(mra._masks) == 2  # one cached mask per grid size


def test_layers_out_of_range(clip112):
    with pytest.raises(ValueError, match="layers=5"):
        MultiRegionViT(clip112.visual, layers=5)


def test_region_tokens_start_from_class_state(clip112):
    mra = MultiRegionViT(clip112.visual, layers=2)
    assert torch.equal(mra.region_embedding, torch.zeros(13, clip112.visual.width))  # zero at init
    with torch.no_grad():
        torch.nn.init.normal_(mra.region_embedding)
    captured = {}
    hook = clip112.visual.transformer.resblocks[2].register_forward_pre_hook(
        lambda module, args: captured.setdefault("x", args[0].detach().clone()))
    try:
        with torch.no_grad():
            mra(torch.randn(2, 3, 112, 112))
    finally:
        hook.remove()
    x = captured["x"]                                                   # (B, 1+N+R, W) entering the first MRA block
    assert x.shape == (2, 1 + 49 + 13, clip112.visual.width)
    torch.testing.assert_close(x[:, 50:], x[:, :1] + mra.region_embedding)


def test_mask_inside_one_block(clip112):
    """Perturbing one input token of an MRA block changes exactly the outputs that may attend to it."""
    torch.manual_seed(0)
    mra = MultiRegionViT(clip112.visual, layers=2)
    block = clip112.visual.transformer.resblocks[-1]
    windows = region_windows(7, 7)
    N, R = 49, 13
    mask = mra.attention_mask(7, 7, "cpu")
    assert torch.equal(mask, region_attention_mask(7, 7)) and mask is mra.attention_mask(7, 7, "cpu")
    W = clip112.visual.width
    x = torch.randn(1, 1 + N + R, W)
    with torch.no_grad():
        out = block(x, mask)

        def changed(index):
            perturbed = x.clone()
            perturbed[0, index] += 3 * torch.randn(W)
            return (block(perturbed, mask) - out).abs().amax(-1)[0] > 0   # (1+N+R,) which outputs moved

        for patch in range(N):
            moved = changed(1 + patch)
            row, col = divmod(patch, 7)
            for j, (r0, r1, c0, c1) in enumerate(windows):
                assert moved[1 + N + j] == (r0 <= row < r1 and c0 <= col < c1), (patch, j)
            assert moved[:1 + N].all()
        moved = changed(0)  # the class token is seen by everyone
        assert moved.all()
        for j in range(R):
            moved = changed(1 + N + j)  # a region token is seen by itself only
            assert moved[1 + N + j] and moved.sum() == 1, j


def test_perturbing_a_window_moves_its_region_most(clip112):
    mra = MultiRegionViT(clip112.visual, layers=2)
    windows = region_windows(7, 7)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(1, 3, 112, 112, generator=generator)
    with torch.no_grad():
        regions = mra(images)[1][0]                                      # (R, D)
        for j, (r0, r1, c0, c1) in enumerate(windows):
            perturbed = images.clone()
            pixels = perturbed[..., r0 * 16:r1 * 16, c0 * 16:c1 * 16]
            pixels += torch.randn(pixels.shape, generator=generator)
            moved = (mra(perturbed)[1][0] - regions).norm(dim=-1) / regions.norm(dim=-1)  # (R,)
            disjoint = [k for k, (a0, a1, b0, b1) in enumerate(windows)
                        if a1 <= r0 or a0 >= r1 or b1 <= c0 or b0 >= c1]
            assert moved[j] > 1.5 * moved[disjoint].max(), (j, moved)


def test_bf16_autocast_and_grad_checkpointing(clip112):
    torch.manual_seed(0)
    mra = MultiRegionViT(clip112.visual, layers=2)
    with torch.no_grad():
        torch.nn.init.normal_(mra.region_embedding, std=0.1)
    images = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        reference = mra(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_precision = mra(images)
    for a, b in zip(reference, low_precision):
        assert b.dtype == torch.bfloat16 and torch.isfinite(b).all()
        assert (a - b.float()).norm() < 0.1 * a.norm()

    def gradients():
        mra.zero_grad()
        global_features, regions, patches = mra(images)
        (global_features.sum() + regions.square().sum() + patches.mean()).backward()
        return [p.grad.clone() for p in mra.parameters()]

    plain = gradients()
    clip112.visual.transformer.grad_checkpointing = True
    try:
        checkpointed = gradients()
    finally:
        clip112.visual.transformer.grad_checkpointing = False
    assert mra.region_embedding.grad.abs().sum() > 0
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b)
