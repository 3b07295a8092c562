"""CLIP (Radford et al. 2021, section 2.4), the backbone ASU builds on: image ViT, text transformer, BPE tokenizer and
a loader for OpenAI's checkpoints.

Same architecture, parameter names and numerics as OpenAI's `clip/model.py` for the ViT models (B/32, B/16, L/14,
L/14@336), so an official `.pt` file loads with strict key matching. Two differences, both invisible in the outputs:
tensors are batch-first everywhere (B, N, W), and attention runs through `scaled_dot_product_attention` with an
optional additive mask, which ASU's multi-region attention (mra.py) needs.

    images (B, 3, H, W)  -> CLIP.encode_image -> (B, D)      not normalised, as OpenAI's
    tokens (N, 77)       -> CLIP.encode_text  -> (N, D)      not normalised
    texts  [str] * N     -> tokenize          -> (N, 77) int64
    texts  [str] * N     -> encode_texts      -> (N, D) L2-normalised, cached (used for class names and SUs)
"""
import gzip
import hashlib
import html
import math
import os
import urllib.request
import warnings
from functools import lru_cache
from pathlib import Path

import regex
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from tqdm import tqdm

from runtime import atomic_write, rank_and_world

# ----------------------------------------------------------------------------------------------------------------
# Building blocks

class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (so OpenAI's keys load)."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x, attn_mask=None):
        B, N, W = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3W)
        q, k, v = qkv.view(B, N, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, N, W/h)
        if attn_mask is not None and attn_mask.dtype != torch.bool:
            attn_mask = attn_mask.to(q.dtype)  # SDPA wants the mask in the query's dtype (bf16 under autocast)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, W/h)
        return self.out_proj(out.transpose(1, 2).reshape(B, N, W))  # (B, N, W)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = Attention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()  # a Sequential with names, as OpenAI's OrderedDict
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, attn_mask=None):
        x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.grad_checkpointing = False  # recompute block activations in backward: less memory, ~30% more time

    def forward(self, x, attn_mask=None):
        for block in self.resblocks:
            x = run_block(block, x, attn_mask, self.grad_checkpointing)
        return x


def run_block(block, x, attn_mask=None, grad_checkpointing=False):
    """One residual block, recomputed in backward when asked (shared with mra.py so both honour the flag)."""
    if grad_checkpointing and torch.is_grad_enabled():
        return checkpoint(block, x, attn_mask, use_reentrant=False)
    return block(x, attn_mask)


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution, patch_size, width, layers, heads, output_dim):
        super().__init__()
        self.input_resolution, self.patch_size, self.width, self.output_dim = input_resolution, patch_size, width, output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def grid_size(self, height, width):
        return height // self.patch_size, width // self.patch_size

    def positional_embedding_for(self, grid_h, grid_w):
        """The learned positional embedding, bicubically resized when the patch grid differs from training's."""
        pos = self.positional_embedding  # (1 + G*G, W)
        side = round((pos.shape[0] - 1) ** 0.5)
        if (grid_h, grid_w) == (side, side):
            return pos
        patch_pos = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, W, G, G)
        patch_pos = F.interpolate(patch_pos.float(), size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)  # (gh*gw, W)
        return torch.cat([pos[:1], patch_pos])  # (1 + gh*gw, W)

    def embed(self, images):
        """Patch embedding + class token + positional embedding + ln_pre: the ViT's input tokens."""
        x = self.conv1(images)  # (B, W, gh, gw)
        grid_h, grid_w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # (B, N, W)
        class_token = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (B, 1, W)
        x = torch.cat([class_token, x], dim=1)  # (B, 1+N, W)
        x = x + self.positional_embedding_for(grid_h, grid_w).to(x.dtype)
        return self.ln_pre(x)

    def forward(self, images):
        x = self.transformer(self.embed(images))  # (B, 1+N, W)
        return self.ln_post(x[:, 0]) @ self.proj  # (B, D)


class CLIP(nn.Module):
    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 context_length, vocab_size, transformer_width, transformer_heads, transformer_layers):
        super().__init__()
        self.embed_dim, self.context_length, self.vocab_size = embed_dim, context_length, vocab_size
        self.visual = VisionTransformer(image_resolution, vision_patch_size, vision_width, vision_layers,
                                        max(1, vision_width // 64), embed_dim)
        self.transformer = Transformer(transformer_width, transformer_layers, transformer_heads)
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = nn.LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(1 / 0.07).log())
        causal = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.register_buffer("causal_mask", causal, persistent=False)
        self.initialize_parameters()

    def initialize_parameters(self):
        """OpenAI's initialisation (only matters for the random-weight tiny config and tests)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for transformer in (self.transformer, self.visual.transformer):
            proj_std = transformer.width ** -0.5 * (2 * transformer.layers) ** -0.5
            for block in transformer.resblocks:
                nn.init.normal_(block.attn.in_proj_weight, std=transformer.width ** -0.5)
                nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
                nn.init.normal_(block.mlp.c_fc.weight, std=(2 * transformer.width) ** -0.5)
                nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.transformer.width ** -0.5)

    def encode_image(self, images):
        return self.visual(images)  # (B, D)

    def encode_text(self, tokens):
        # the end-of-text token has the largest id, so argmax finds it in every row; attention is causal, so the
        # padding after the longest text changes nothing before it: cut there (captions of 20 tokens: 4x cheaper)
        ends = tokens.argmax(dim=-1)  # (N,)
        length = int(ends.max()) + 1 if len(tokens) else tokens.shape[1]
        tokens = tokens[:, :length]
        x = self.token_embedding(tokens) + self.positional_embedding[:length]  # (N, L, W)
        x = self.ln_final(self.transformer(x, self.causal_mask[:length, :length]))  # (N, L, W)
        return x[torch.arange(x.shape[0]), ends] @ self.text_projection  # (N, D)


def tiny_clip(seed=0, image_resolution=112):
    """A random-init CLIP small enough for tests and the CPU embedded default (7 x 7 patches at 112 px).
    The image tower is 64 wide (one head): trained from scratch on the synthetic set it learns as fast per step
    as a 128-wide one and steps 2.5 times faster on a CPU. The joint embedding is 64 wide too, as it sets the
    width of ASU's decoder: at 128 the decoder cost as much as the whole image tower. Its weights are rounded to
    fp16 values, as OpenAI's published weights are, so that frozen tensors can be stored in fp16 without loss (see
    train.py's best.pt). Its logit scale is 100, a trained CLIP's, not CLIP's 1/0.07 at initialisation: ASU keeps it
    frozen, and a random text tower gives class names that share words nearly parallel embeddings (cosine 0.99 for
    "bouncing a ball in the room / in the street"), so at 14.3 even a perfect video feature could put only 1.7
    between their logits."""
    torch.manual_seed(seed)
    model = CLIP(embed_dim=64, image_resolution=image_resolution, vision_layers=4, vision_width=64,
                 vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=128,
                 transformer_heads=2, transformer_layers=2).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100))
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    return model


# more texts than this get a progress bar: a small label set stays quiet, while a Kinetics-size one (400 class
# names, and an SU bank of its own) kept ViT-B/16 busy for about 45 s on a CPU with no output
PROGRESS_MIN_TEXTS = 300


@torch.no_grad()
def encode_texts(model, texts, batch_size=256, cache_dir=None, progress=False):
    """L2-normalised text embeddings (N, D), fp32. The one place text embeddings are computed (class names, SUs).

    With `cache_dir`, results are stored under a key made of the text tower's weights and the texts, so a frozen
    text encoder is run once per run configuration, not once per process. progress=True shows a tqdm bar on
    rank 0 when more than PROGRESS_MIN_TEXTS texts are encoded (not read from the cache).
    """
    texts = list(texts)
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256()
        for name, tensor in text_tower_state(model):
            key.update(name.encode())
            key.update(tensor.detach().float().cpu().numpy().tobytes())
        key.update("\n".join(texts).encode())
        cache_file = Path(cache_dir) / f"text_embeddings_{key.hexdigest()[:24]}.pt"
        if cache_file.exists():
            return torch.load(cache_file, map_location="cpu", weights_only=True).to(model.text_projection.device)
    device = model.text_projection.device
    chunks = []
    show = progress and len(texts) > PROGRESS_MIN_TEXTS and rank_and_world()[0] == 0
    bar = tqdm(total=len(texts), desc="encoding texts", unit="text", disable=not show, leave=False)
    for start in range(0, len(texts), batch_size):
        tokens = tokenize(texts[start:start + batch_size], model.context_length, truncate=True).to(device)
        with torch.autocast(device.type, enabled=False):
            chunks.append(F.normalize(model.encode_text(tokens).float(), dim=-1))  # (n, D)
        bar.update(len(tokens))
    bar.close()
    embeddings = torch.cat(chunks) if chunks else torch.zeros(0, model.embed_dim, device=device)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache_file) as file:
            torch.save(embeddings.cpu(), file)
    return embeddings


def text_tower_state(model):
    """(name, tensor) pairs of the text encoder's weights, the cache key of encode_texts."""
    return [(name, tensor) for name, tensor in model.state_dict().items() if not name.startswith("visual.")]


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer: OpenAI's byte-level BPE, written again with `regex` (same ids for every input)

def find_bpe_vocab(path=None):
    """The BPE merges file: an explicit path, $CLIP_BPE_PATH, or the copy inside the installed `clip` package."""
    candidates = [path] if path else []
    if os.environ.get("CLIP_BPE_PATH"):
        candidates.append(os.environ["CLIP_BPE_PATH"])
    import importlib.util
    spec = importlib.util.find_spec("clip")
    if spec is not None and spec.submodule_search_locations:
        candidates += [os.path.join(loc, "bpe_simple_vocab_16e6.txt.gz") for loc in spec.submodule_search_locations]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        "CLIP's BPE vocabulary bpe_simple_vocab_16e6.txt.gz was not found; looked at: "
        + (", ".join(str(c) for c in candidates) or "nothing")
        + ". Install it with `pip install openai-clip==1.0.1` or set CLIP_BPE_PATH to the file.")


def bytes_to_unicode():
    """Reversible map from the 256 byte values to printable unicode characters (GPT-2's trick)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


class Tokenizer:
    # contractions, letter runs, single digits, runs of other non-space characters (OpenAI's pattern)
    pattern = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                            regex.IGNORECASE)

    def __init__(self, bpe_path=None):
        merges = gzip.open(find_bpe_vocab(bpe_path)).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
        merges = [tuple(merge.split()) for merge in merges]
        self.byte_encoder = bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab] + ["".join(merge) for merge in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks = {merge: i for i, merge in enumerate(merges)}
        self.cache = {token: [token] for token in ("<|startoftext|>", "<|endoftext|>")}  # never split, as OpenAI's
        try:  # OpenAI runs ftfy first; it only changes mojibake, so it is optional here
            import ftfy
            self.fix_text = ftfy.fix_text
        except ImportError:
            self.fix_text = lambda text: text

    def bpe(self, token):
        """Merge the characters of one pre-token by rank until no known pair is left."""
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if best not in self.bpe_ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = word
        return word

    def encode(self, text):
        text = html.unescape(html.unescape(self.fix_text(text))).strip()
        text = regex.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for token in self.pattern.findall(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(token))
        return ids


@lru_cache()
def default_tokenizer():
    return Tokenizer()


def tokenize(texts, context_length=77, truncate=False):
    """Token ids (N, context_length), start and end tokens included, zero-padded; as OpenAI's clip.tokenize."""
    if isinstance(texts, str):
        texts = [texts]
    tokenizer = default_tokenizer()
    sot, eot = tokenizer.encoder["<|startoftext|>"], tokenizer.encoder["<|endoftext|>"]
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot] + tokenizer.encode(text) + [eot]
        if len(ids) > context_length:
            if not truncate:
                raise RuntimeError(f"Input {text!r} is too long for context length {context_length} "
                                   f"({len(ids)} tokens); pass truncate=True to cut it")
            ids = ids[:context_length]
            ids[-1] = eot
        result[i, :len(ids)] = torch.tensor(ids)
    return result


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: OpenAI's TorchScript archives or plain state dicts

MODEL_URLS = {  # OpenAI's public files; the second-to-last path part is the file's sha256
    "ViT-B/32": "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B/16": "https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "ViT-L/14": "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    "ViT-L/14@336px": "https://openaipublic.azureedge.net/clip/models/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
}
EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # buffers of the official archives, not weights


def download(url, root):
    """Fetch `url` into `root` once, with a progress bar; the file's sha256 must match the URL's."""
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    target = root / os.path.basename(url)
    expected = url.split("/")[-2]
    if target.is_file():
        if sha256_of(target) == expected:
            return target
        print(f"{target} exists but its sha256 does not match {url}; downloading it again")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url) as source, atomic_write(target) as output:
        total = int(source.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="iB", unit_scale=True, desc=f"downloading {target.name}") as bar:
            while chunk := source.read(1 << 20):
                output.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != expected:   # raised inside atomic_write: the partial file is removed
            raise RuntimeError(f"{url}: downloaded file's sha256 does not match {expected}; nothing was kept")
    return target


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build_clip(state_dict):
    """A CLIP ViT whose architecture is read off the tensor shapes of `state_dict`; weights loaded strictly, fp32."""
    state_dict = {k: v for k, v in state_dict.items() if k not in EXTRA_KEYS}
    if "visual.layer1.0.conv1.weight" in state_dict or "visual.attnpool.positional_embedding" in state_dict:
        raise ValueError("this is a ResNet CLIP checkpoint; only the ViT models (ViT-B/32, B/16, L/14, ...) are supported")
    required = ["visual.conv1.weight", "visual.positional_embedding", "visual.proj", "text_projection",
                "positional_embedding", "token_embedding.weight", "ln_final.weight"]
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise ValueError(f"not a CLIP ViT state dict: missing {', '.join(missing)}")

    def count_layers(prefix):
        return len({k.split(".")[len(prefix.split("."))] for k in state_dict if k.startswith(prefix + ".")})

    grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    patch_size = state_dict["visual.conv1.weight"].shape[-1]
    text_width = state_dict["ln_final.weight"].shape[0]
    model = CLIP(embed_dim=state_dict["text_projection"].shape[1], image_resolution=patch_size * grid,
                 vision_layers=count_layers("visual.transformer.resblocks"),
                 vision_width=state_dict["visual.conv1.weight"].shape[0], vision_patch_size=patch_size,
                 context_length=state_dict["positional_embedding"].shape[0],
                 vocab_size=state_dict["token_embedding.weight"].shape[0], transformer_width=text_width,
                 transformer_heads=max(1, text_width // 64), transformer_layers=count_layers("transformer.resblocks"))
    try:
        model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    except RuntimeError as error:  # shape mismatch, missing or unexpected keys
        raise ValueError(f"state dict does not fit a CLIP ViT: {error}") from None
    return model.eval()


def load_clip(name_or_path, device="cpu", download_root="~/.cache/clip"):
    """CLIP from a model name (ViT-B/16, ...: `download_root`, downloaded when missing) or a checkpoint path.

    A path may hold an official TorchScript archive or a plain state dict (fp16 or fp32); the model comes back
    fp32, in eval mode. Anything else raises a ValueError naming the file and what was wrong.
    """
    if name_or_path in MODEL_URLS:
        path = Path(download_root).expanduser() / os.path.basename(MODEL_URLS[name_or_path])
        if not path.is_file():
            path = download(MODEL_URLS[name_or_path], download_root)
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such CLIP checkpoint; give a file or one of {', '.join(MODEL_URLS)}")
    state_dict = read_state_dict(path)
    try:
        return build_clip(state_dict).to(device)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def read_state_dict(path):
    """The tensors of a TorchScript archive or of a torch.save'd state dict (optionally under a "state_dict" key)."""
    try:
        with warnings.catch_warnings():  # OpenAI's files are TorchScript; torch's deprecation notice can't be acted on
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    except Exception:
        pass  # not TorchScript: try a plain state dict
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: neither a TorchScript archive nor a torch.save file "
                         f"(truncated or not a checkpoint?): {str(error).splitlines()[0]}") from None
    if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path}: holds a {type(state_dict).__name__}, not a state dict of tensors")
    return state_dict
