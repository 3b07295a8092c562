"""Multi-region attention (MRA) of ASU: region-aware visual features from CLIP's image ViT (paper: "MRA").

Our reading of the paper (its method section is not available to us; DESIGN.md, "MRA"):
- Regions are windows over the patch grid at several scales; grids ((2, 2), (3, 3)) give R = 4 + 9 = 13 regions.
  Along an axis of G patches split into n parts, window i covers [round(i*G/n), round((i+1)*G/n)).
- R region tokens enter before the last `layers` ViT blocks. Token j starts as the class token's hidden state
  plus a learnable region embedding (zero at init), and attends only to itself, the class token and the patches
  of window j. The class token and the patches never attend to region tokens, so the global and patch outputs
  are exactly CLIP's, and with layers = 0 the module is CLIP's image encoder.

    images (B, 3, H, W) -> MultiRegionViT -> global (B, D), regions (B, R, D), patches (B, N, D)
    (all three after CLIP's ln_post and proj; N = grid_h * grid_w patches)
"""
import torch
import torch.nn as nn

from clip_vit import run_block


def parse_grids(text):
    """The command line's region scales: '2x2,3x3' -> ((2, 2), (3, 3)); '' -> ()."""
    try:
        grids = tuple(tuple(int(n) for n in part.lower().split("x")) for part in text.split(",") if part.strip())
    except ValueError:
        grids = ((),)
    if any(len(grid) != 2 or min(grid) < 1 for grid in grids):
        raise ValueError(f"--mra-grids {text!r}: expected comma-separated RxC of positive numbers, e.g. 2x2,3x3")
    return grids


def region_windows(grid_h, grid_w, grids=((2, 2), (3, 3))):
    """Windows (row0, row1, col0, col1), half-open, over a grid_h x grid_w patch grid; rows x cols per scale."""
    windows = []
    for rows, cols in grids:
        if not (1 <= rows <= grid_h and 1 <= cols <= grid_w):
            raise ValueError(f"mra.py region_windows: grid {rows}x{cols} does not fit a {grid_h}x{grid_w} patch grid")
        row_bounds = [round(i * grid_h / rows) for i in range(rows + 1)]
        col_bounds = [round(j * grid_w / cols) for j in range(cols + 1)]
        for i in range(rows):
            for j in range(cols):
                windows.append((row_bounds[i], row_bounds[i + 1], col_bounds[j], col_bounds[j + 1]))
    return windows


def region_attention_mask(grid_h, grid_w, grids=((2, 2), (3, 3))):
    """Additive mask (1+N+R, 1+N+R) over the tokens [class, N patches, R regions]: 0 where attention is allowed,
    -inf where it is forbidden (rows are queries, columns keys)."""
    windows = region_windows(grid_h, grid_w, grids)
    num_patches, num_regions = grid_h * grid_w, len(windows)
    length = 1 + num_patches + num_regions
    allowed = torch.zeros(length, length, dtype=torch.bool)
    allowed[:1 + num_patches, :1 + num_patches] = True          # class token and patches: CLIP's attention
    patch_grid = torch.arange(num_patches).reshape(grid_h, grid_w)
    for j, (r0, r1, c0, c1) in enumerate(windows):
        row = 1 + num_patches + j
        allowed[row, 0] = True                                  # the class token
        allowed[row, 1 + patch_grid[r0:r1, c0:c1].flatten()] = True   # the patches of window j
        allowed[row, row] = True                                # itself
    mask = torch.zeros(length, length)
    return mask.masked_fill_(~allowed, float("-inf"))


class MultiRegionViT(nn.Module):
    """CLIP's VisionTransformer with R region tokens in its last `layers` blocks."""

    def __init__(self, visual, grids=((2, 2), (3, 3)), layers=2):
        """visual: a clip_vit.VisionTransformer (shared, not copied); grids: (rows, cols) per region scale;
        layers: how many final blocks carry region tokens (0 = plain CLIP, no regions)."""
        super().__init__()
        total = len(visual.transformer.resblocks)
        if not 0 <= layers <= total:
            raise ValueError(f"mra.py MultiRegionViT: layers={layers} must be in [0, {total}] (the ViT's depth)")
        self.visual = visual
        self.grids = tuple((int(rows), int(cols)) for rows, cols in grids)
        self.layers = layers
        self.num_regions = sum(rows * cols for rows, cols in self.grids) if layers else 0
        if layers:
            self.region_embedding = nn.Parameter(torch.zeros(self.num_regions, visual.width))
        self._masks = {}  # (grid_h, grid_w, device) -> additive mask; built once per input size

    def attention_mask(self, grid_h, grid_w, device):
        key = (grid_h, grid_w, str(device))
        if key not in self._masks:
            self._masks[key] = region_attention_mask(grid_h, grid_w, self.grids).to(device)
        return self._masks[key]

    def forward(self, images):
        """images (B, 3, H, W) -> global (B, D), regions (B, R, D), patches (B, N, D)."""
        transformer = self.visual.transformer
        checkpointing = transformer.grad_checkpointing
        x = self.visual.embed(images)                                        # (B, 1+N, W)
        num_patches = x.shape[1] - 1
        first_region_block = len(transformer.resblocks) - self.layers
        for block in transformer.resblocks[:first_region_block]:
            x = run_block(block, x, None, checkpointing)                     # (B, 1+N, W)
        if self.layers:
            grid_h, grid_w = self.visual.grid_size(*images.shape[-2:])
            mask = self.attention_mask(grid_h, grid_w, x.device)             # (1+N+R, 1+N+R)
            region_tokens = x[:, :1] + self.region_embedding.to(x.dtype)     # (B, R, W)
            x = torch.cat([x, region_tokens], dim=1)                         # (B, 1+N+R, W)
            for block in transformer.resblocks[first_region_block:]:
                x = run_block(block, x, mask, checkpointing)                 # (B, 1+N+R, W)
        # The class token alone, exactly as VisionTransformer.forward (so layers = 0 is CLIP bit for bit).
        global_features = self.visual.ln_post(x[:, 0]) @ self.visual.proj   # (B, D)
        tokens = self.visual.ln_post(x[:, 1:]) @ self.visual.proj            # (B, N+R, D)
        return global_features, tokens[:, num_patches:], tokens[:, :num_patches]
