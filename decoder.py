"""Attentive SU selection and the cross-modal decoder of ASU (paper: "SU attention", "cross-modal decoder").

The paper's method section is not available to us; this is our reading of its abstract (DESIGN.md, "Selection and
decoder", says what we chose and why).

Selection (SUSelection):
    visual tokens F (B, T, R+1, D)  -- per frame the global feature and the R region features (MRA)
    SU bank U (S, D)                -- L2-normalised text embeddings of the semantic units (frozen)
    weights = softmax over the top-k of cos(F, U) / tau          (B, T, R+1, S), k non-zero per token, sum 1
    queries = MLP(weights @ U) + time embedding + region-id embedding      (B, T*(R+1), D)

Decoder (CrossModalDecoder):
    N pre-LN layers [self-attention over the queries, cross-attention to the memory, FFN (ratio 4)], width D,
    D/64 heads; memory (B, T, M, D) = per frame the global, region (and patch) features, plus a time embedding.
    Readout z = mean over the decoded queries (B, D) + the temporal path below; the model adds gate * z to the mean
    global feature, with the scalar gate zero at initialisation so that an untrained ASU is exactly the CLIP
    mean-pooling baseline (for every temporal and query option).

Temporal path (TemporalContrast, `temporal="halves"`, the default): Linear(mean of the second half's global
    features - mean of the first half's) (B, D), added to z. The paper says the decoder "decodes spatiotemporal
    video representations" and gives no mechanism we can see; a mean over decoded queries is order-blind unless
    content and time interact before the mean, and from a random start the decoder did not learn that within the
    embedded default's budget (DESIGN.md, "Time"). A contrast of the two halves is the simplest feature that
    changes sign when time is reversed; `temporal="none"` is the decoder without it.

Learned queries (LearnedQueries, the ablation "decoder without SU selection"): one learned query per frame and
    visual token (+ the same time and region embeddings), the same (B, T*(R+1), D) shape, no SU attention.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


TEMPORAL = ("halves", "none")   # the decoder's temporal path (see the module docstring)
QUERIES = ("units", "learned")   # its queries: SUSelection (ASU) or LearnedQueries (the ablation)


class SUSelection(nn.Module):
    """Each visual token attends to the SU bank and keeps its k most similar units; returns the SU queries."""

    def __init__(self, dim, num_tokens, topk=8, max_frames=64, tau=0.07):
        """dim: embedding width D; num_tokens: visual tokens per frame (R+1); topk: units kept per token (0 = all);
        max_frames: length of the time-embedding table; tau: initial softmax temperature."""
        super().__init__()
        if topk < 0:
            raise ValueError(f"decoder.py SUSelection: topk must be >= 0 (0 = all units), got {topk}")
        self.topk = topk
        self.max_frames = max_frames
        # The temperature is learned as a log, like CLIP's logit_scale, so it stays positive.
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)))
        # our reading: "2-layer MLP" = Linear-GELU-Linear at width D.
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.time_embedding = nn.Parameter(torch.randn(max_frames, dim) * 0.02)
        self.region_embedding = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)

    @property
    def tau(self):
        return self.log_tau.exp()

    def attention(self, visual_tokens, su_bank):
        """visual_tokens (B, T, R+1, D), su_bank (S, D) -> selection weights (B, T, R+1, S)."""
        # In fp32 even under autocast: with tau = 0.07 the logits span up to 2/0.07 ~ 29, whose exp underflows
        # fp16 and would make a kept unit's weight exactly zero.
        with torch.autocast(visual_tokens.device.type, enabled=False):
            tokens = F.normalize(visual_tokens.float(), dim=-1)             # (B, T, R+1, D)
            units = F.normalize(su_bank.float(), dim=-1)                    # (S, D)
            logits = tokens @ units.t() / self.tau                          # (B, T, R+1, S)
            k = units.shape[0] if self.topk == 0 else min(self.topk, units.shape[0])
            if k == units.shape[0]:
                return logits.softmax(dim=-1)                               # (B, T, R+1, S)
            top_logits, top_index = logits.topk(k, dim=-1)                  # (B, T, R+1, k)
            weights = torch.zeros_like(logits)
            return weights.scatter(-1, top_index, top_logits.softmax(dim=-1))  # (B, T, R+1, S)

    def forward(self, visual_tokens, su_bank):
        """visual_tokens (B, T, R+1, D), su_bank (S, D) -> (queries (B, T*(R+1), D), weights (B, T, R+1, S))."""
        B, T, num_tokens, D = visual_tokens.shape
        if T > self.max_frames:
            raise ValueError(f"decoder.py SUSelection: {T} frames > max_frames={self.max_frames}")
        weights = self.attention(visual_tokens, su_bank)                    # (B, T, R+1, S)
        queries = self.mlp(weights @ su_bank)                               # (B, T, R+1, D)
        queries = queries + self.time_embedding[:T, None] + self.region_embedding  # (B, T, R+1, D)
        return queries.reshape(B, T * num_tokens, D), weights


class LearnedQueries(nn.Module):
    """The ablation without SU selection: input-independent learned queries, shaped like SUSelection's."""

    def __init__(self, dim, num_tokens, max_frames=64):
        super().__init__()
        self.max_frames = max_frames
        self.query_embedding = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)
        self.time_embedding = nn.Parameter(torch.randn(max_frames, dim) * 0.02)

    def forward(self, visual_tokens, su_bank=None):
        """visual_tokens (B, T, R+1, D) (only its shape is used) -> (queries (B, T*(R+1), D), None)."""
        B, T, num_tokens, D = visual_tokens.shape
        if T > self.max_frames:
            raise ValueError(f"decoder.py LearnedQueries: {T} frames > max_frames={self.max_frames}")
        queries = self.query_embedding + self.time_embedding[:T, None]            # (T, R+1, D)
        return queries.reshape(1, T * num_tokens, D).expand(B, -1, -1), None


class TemporalContrast(nn.Module):
    """Linear(mean of the second half of the frames - mean of the first half): (B, T, D) -> (B, D). With an odd T
    the middle frame is in neither half, so reversing the frames exactly negates the contrast."""

    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, frame_features):
        half = frame_features.shape[1] // 2
        if half == 0:   # one frame: no order to read. Zero, but through proj: under DDP every parameter must
            # take part in backward (its gradient here is zero), or the reducer waits for it and the next step fails
            return self.proj(frame_features[:, 0]) * 0                                            # (B, D)
        contrast = frame_features[:, -half:].mean(dim=1) - frame_features[:, :half].mean(dim=1)   # (B, D)
        return self.proj(contrast)                                                                # (B, D)


class DecoderLayer(nn.Module):
    """Pre-LN: x += SelfAttn(LN(x)); x += CrossAttn(LN(x), memory); x += FFN(LN(x))."""

    def __init__(self, dim, heads, ffn_ratio=4):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_3 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * ffn_ratio), nn.GELU(), nn.Linear(dim * ffn_ratio, dim))

    def forward(self, queries, memory):
        """queries (B, Q, D), memory (B, M, D) already layer-normalised -> (B, Q, D)."""
        x = self.ln_1(queries)
        queries = queries + self.self_attn(x, x, x, need_weights=False)[0]                    # (B, Q, D)
        queries = queries + self.cross_attn(self.ln_2(queries), memory, memory, need_weights=False)[0]
        return queries + self.mlp(self.ln_3(queries))                                           # (B, Q, D)


class CrossModalDecoder(nn.Module):
    """SU queries decode a video representation from the visual memory of all frames."""

    def __init__(self, dim, layers=2, max_frames=64, ffn_ratio=4, temporal="halves"):
        """dim: width D (heads = D/64, at least 1); layers: number of decoder layers; max_frames: length of the
        memory time-embedding table; ffn_ratio: FFN hidden width / D; temporal: "halves" (TemporalContrast added
        to the readout) or "none"."""
        super().__init__()
        if temporal not in TEMPORAL:
            raise ValueError(f"decoder.py CrossModalDecoder: temporal must be one of {TEMPORAL}, got {temporal!r}")
        heads = max(1, dim // 64)
        if dim % heads:
            raise ValueError(f"decoder.py CrossModalDecoder: dim={dim} is not divisible by {heads} heads")
        self.max_frames = max_frames
        self.memory_time_embedding = nn.Parameter(torch.randn(max_frames, dim) * 0.02)
        # One LayerNorm on the memory, shared by the layers (pre-LN on the key/value side).
        self.ln_memory = nn.LayerNorm(dim)
        self.layers = nn.ModuleList([DecoderLayer(dim, heads, ffn_ratio) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(dim)
        self.temporal = TemporalContrast(dim) if temporal == "halves" else None
        # Zero at init: v = mean_t(global) + gate * z is then exactly the mean-pooling baseline.
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, queries, memory):
        """queries (B, Q, D), memory (B, T, M, D) whose first token per frame is the global feature -> z (B, D),
        the mean of the decoded queries plus the temporal contrast (not yet gated)."""
        B, T, M, D = memory.shape
        if T > self.max_frames:
            raise ValueError(f"decoder.py CrossModalDecoder: {T} frames > max_frames={self.max_frames}")
        frame_features = memory[:, :, 0]                                          # (B, T, D)
        memory = memory + self.memory_time_embedding[:T, None]                   # (B, T, M, D)
        memory = self.ln_memory(memory.reshape(B, T * M, D))                      # (B, T*M, D)
        for layer in self.layers:
            queries = layer(queries, memory)                                      # (B, Q, D)
        z = self.ln_post(queries).mean(dim=1)                                     # (B, D)
        if self.temporal is not None:
            z = z + self.temporal(frame_features)                                 # (B, D)
        return z
