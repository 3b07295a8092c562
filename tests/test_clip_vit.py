"""clip_vit.py is CLIP: equal outputs to OpenAI's reference model.py, equal token ids to OpenAI's tokenizer, and a
loader that reads the files people have and refuses everything else with a clear error."""
import copy
import hashlib
import importlib.util
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import clip_vit

LABELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "labels"


def load_reference(module_name):
    """A module of OpenAI's `clip` package, loaded by file path (its __init__ would import torchvision)."""
    spec = importlib.util.find_spec("clip")
    if spec is None:
        pytest.skip("the openai-clip package (OpenAI's reference code) is not installed")
    path = os.path.join(spec.submodule_search_locations[0], f"{module_name}.py")
    module_spec = importlib.util.spec_from_file_location(f"openai_clip_{module_name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    return load_reference("model")


@pytest.fixture(scope="module")
def small_reference(reference):
    torch.manual_seed(0)
    # embed 64, 64 px, 2 visual layers of width 128 (2 heads), patch 16; text width 128, 2 heads, 2 layers
    return reference.CLIP(64, 64, 2, 128, 16, 77, 49408, 128, 2, 2).float().eval()


def relative_error(ours, ref):
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def check_same_outputs(model, ref_model, resolution, batch=2):
    images = torch.randn(batch, 3, resolution, resolution)
    tokens = clip_vit.tokenize(["a video of a person playing golf.", "a photo of a dog"][:batch])
    with torch.no_grad():
        assert relative_error(model.encode_image(images), ref_model.encode_image(images)) <= 1e-5
        assert relative_error(model.encode_text(tokens), ref_model.encode_text(tokens)) <= 1e-5


# ----------------------------------------------------------------------------------------------------------------
# Equivalence with OpenAI's model.py

def test_small_config_matches_reference(small_reference):
    model = clip_vit.build_clip(small_reference.state_dict())
    assert list(model.state_dict()) == list(small_reference.state_dict())  # same names, same order
    check_same_outputs(model, small_reference, 64)


def test_vit_b16_matches_reference(reference):
    torch.manual_seed(1)
    ref_model = reference.CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12).float().eval()
    model = clip_vit.build_clip(ref_model.state_dict())
    assert model.visual.transformer.layers == 12 and model.visual.width == 768 and model.visual.patch_size == 16
    check_same_outputs(model, ref_model, 224, batch=1)


def test_masked_attention_equals_written_out_softmax():
    torch.manual_seed(0)
    attention = clip_vit.Attention(64, 4)
    x = torch.randn(3, 10, 64)
    mask = torch.zeros(10, 10)
    mask[torch.rand(10, 10) < 0.3] = float("-inf")
    mask.fill_diagonal_(0)  # every row keeps at least one key
    q, k, v = F.linear(x, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(3, 10, 4, 16).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / 16 ** 0.5 + mask, dim=-1)
    expected = attention.out_proj((weights @ v).transpose(1, 2).reshape(3, 10, 64))
    with torch.no_grad():
        assert relative_error(attention(x, mask), expected) <= 1e-5
        assert relative_error(attention(x), attention(x, torch.zeros(10, 10))) <= 1e-6
        assert (attention(x, mask) - attention(x)).abs().max() > 1e-3  # the mask does something


def test_positional_embedding_interpolation():
    model = clip_vit.tiny_clip(seed=0)  # 112 px, 7 x 7 grid
    visual = model.visual
    assert visual.positional_embedding_for(7, 7) is visual.positional_embedding
    resized = visual.positional_embedding_for(14, 10)
    assert resized.shape == (1 + 14 * 10, visual.width)
    assert torch.equal(resized[0], visual.positional_embedding[0])  # the class token's is kept
    with torch.no_grad():
        visual.positional_embedding[1:] = 0.5  # a constant stays constant under bicubic resizing
        assert torch.allclose(visual.positional_embedding_for(10, 10)[1:], torch.tensor(0.5), atol=1e-6)
        assert model.encode_image(torch.randn(1, 3, 224, 160)).shape == (1, model.embed_dim)


def test_tiny_clip_is_deterministic_and_grad_checkpointing_is_exact():
    a, b = clip_vit.tiny_clip(seed=3), clip_vit.tiny_clip(seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.visual.proj, clip_vit.tiny_clip(seed=4).visual.proj)
    images = torch.randn(2, 3, 112, 112)
    a.encode_image(images).square().sum().backward()
    b.visual.transformer.grad_checkpointing = True
    b.encode_image(images).square().sum().backward()
    for (name, pa), pb in zip(a.visual.named_parameters(), b.visual.parameters()):
        assert torch.allclose(pa.grad, pb.grad, rtol=1e-4, atol=1e-6), name


def test_encode_texts_normalised_batched_and_cached(tmp_path):
    model = clip_vit.tiny_clip(seed=0)
    texts = [f"a video of a person doing thing {i}." for i in range(5)]
    expected = F.normalize(model.encode_text(clip_vit.tokenize(texts)), dim=-1).detach()
    embeddings = clip_vit.encode_texts(model, texts, batch_size=2, cache_dir=tmp_path)
    assert torch.allclose(embeddings, expected, atol=1e-6)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(5))
    cached = list(tmp_path.glob("text_embeddings_*.pt"))
    assert len(cached) == 1
    torch.save(torch.full_like(embeddings, 7.0), cached[0])  # prove the second call reads the file
    assert torch.equal(clip_vit.encode_texts(model, texts, cache_dir=tmp_path), torch.full_like(embeddings, 7.0))
    with torch.no_grad():
        model.text_projection.mul_(2)  # other weights: another key
    clip_vit.encode_texts(model, texts, cache_dir=tmp_path)
    clip_vit.encode_texts(model, texts[:4], cache_dir=tmp_path)  # other texts: another key
    assert len(list(tmp_path.glob("text_embeddings_*.pt"))) == 3


# ----------------------------------------------------------------------------------------------------------------
# Loader

def official_style_archive(ref_model, path):
    """A checkpoint made as OpenAI's: the three extra buffers, fp16 weights, traced to TorchScript."""
    ref_model = ref_model.float().eval()
    for name, value in [("input_resolution", ref_model.visual.input_resolution),
                        ("context_length", ref_model.context_length), ("vocab_size", ref_model.vocab_size)]:
        if hasattr(ref_model, name):
            delattr(ref_model, name)  # a plain int attribute in model.py, a buffer in the released archives
        ref_model.register_buffer(name, torch.tensor(value))
    images = torch.randn(1, 3, ref_model.visual.input_resolution, ref_model.visual.input_resolution)
    traced = torch.jit.trace_module(ref_model, {"encode_image": images, "encode_text": clip_vit.tokenize("a dog")})
    traced = traced.half()
    torch.jit.save(traced, str(path))


def fp16_rounded(ref_model):
    with torch.no_grad():
        for tensor in ref_model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return ref_model


def test_loads_official_torchscript_archive(reference, tmp_path):
    torch.manual_seed(2)
    ref_model = reference.CLIP(64, 64, 2, 128, 16, 77, 49408, 128, 2, 2)
    path = tmp_path / "ViT-tiny.pt"
    official_style_archive(copy.deepcopy(ref_model), path)
    assert {"input_resolution", "context_length", "vocab_size"} <= set(torch.jit.load(str(path)).state_dict())
    assert torch.jit.load(str(path)).state_dict()["visual.proj"].dtype == torch.float16
    model = clip_vit.load_clip(str(path))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    check_same_outputs(model, fp16_rounded(ref_model), 64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_loads_plain_state_dict(small_reference, tmp_path, dtype):
    path = tmp_path / "state.pt"
    torch.save({k: v.to(dtype) for k, v in small_reference.state_dict().items()}, path)
    model = clip_vit.load_clip(path)
    expected = fp16_rounded(clip_vit.build_clip(small_reference.state_dict())) if dtype == torch.float16 else small_reference
    check_same_outputs(model, expected, 64)


def test_bad_checkpoints_give_clear_errors(reference, small_reference, tmp_path):
    good = tmp_path / "good.pt"
    torch.save(small_reference.state_dict(), good)

    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("these are not weights\n")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other_architecture = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(3, 4).state_dict(), other_architecture)
    missing_block_key = tmp_path / "missing.pt"
    state = dict(small_reference.state_dict())
    del state["visual.transformer.resblocks.1.mlp.c_fc.weight"]
    torch.save(state, missing_block_key)
    extra_key = tmp_path / "extra.pt"
    torch.save({**small_reference.state_dict(), "visual.unexpected": torch.zeros(1)}, extra_key)
    resnet = tmp_path / "rn.pt"
    torch.save(reference.CLIP(64, 64, (1, 1, 1, 1), 32, None, 77, 49408, 64, 1, 1).state_dict(), resnet)
    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_a_dict)

    for path, words in [(not_a_checkpoint, "neither a TorchScript"), (truncated, "neither a TorchScript"),
                        (other_architecture, "missing"), (missing_block_key, "mlp.c_fc.weight"),
                        (extra_key, "visual.unexpected"), (resnet, "ResNet"), (not_a_dict, "not a state dict")]:
        with pytest.raises(ValueError) as error:
            clip_vit.load_clip(path)
        assert str(path) in str(error.value) and words in str(error.value), str(error.value)
    with pytest.raises(FileNotFoundError, match="no-such-file.pt"):
        clip_vit.load_clip(tmp_path / "no-such-file.pt")


def test_download_checks_sha256_and_caches(tmp_path):
    payload = b"pretend weights " * 1000
    sha = hashlib.sha256(payload).hexdigest()
    (tmp_path / "server" / sha).mkdir(parents=True)
    (tmp_path / "server" / sha / "ViT-X.pt").write_bytes(payload)
    url = (tmp_path / "server" / sha / "ViT-X.pt").as_uri()
    target = clip_vit.download(url, tmp_path / "cache")
    assert target == tmp_path / "cache" / "ViT-X.pt" and target.read_bytes() == payload
    (tmp_path / "server" / sha / "ViT-X.pt").unlink()  # served from the cache from now on
    assert clip_vit.download(url, tmp_path / "cache") == target

    wrong = "0" * 64
    (tmp_path / "server" / wrong).mkdir()
    (tmp_path / "server" / wrong / "ViT-Y.pt").write_bytes(payload)
    with pytest.raises(RuntimeError, match="sha256"):
        clip_vit.download((tmp_path / "server" / wrong / "ViT-Y.pt").as_uri(), tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ViT-X.pt"]  # nothing half-written kept


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer

@pytest.fixture(scope="module")
def reference_tokenizer():
    pytest.importorskip("ftfy", reason="OpenAI's tokenizer needs ftfy")
    return load_reference("simple_tokenizer").SimpleTokenizer()


def reference_ids(tokenizer, text):
    return [tokenizer.encoder["<|startoftext|>"]] + tokenizer.encode(text) + [tokenizer.encoder["<|endoftext|>"]]


def check_same_ids(reference_tokenizer, texts):
    ours = clip_vit.tokenize(texts, context_length=77, truncate=True)
    for row, text in zip(ours, texts):
        expected = reference_ids(reference_tokenizer, text)[:77]
        length = len(expected)
        assert row[:length].tolist() == expected, text
        assert not row[length:].any()


def test_tokenizer_matches_openai_on_dataset_class_names(reference_tokenizer):
    if not LABELS_DIR.is_dir():
        pytest.skip(f"class lists not found at {LABELS_DIR}")
    for name in ("kinetics400", "ucf101", "hmdb51"):
        names = (LABELS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        check_same_ids(reference_tokenizer, names + [f"a video of a person {n}." for n in names])


HARD_STRINGS = [
    "", " ", "café crème brûlée", "naïve façade", "🏄‍♀️ surfing 🌊!!", "打篮球", "サッカーをする", "태권도",
    "1234567890", "3.14159 and 2,718", "?!?!...---***", "((nested)) [brackets] {braces}", "&amp; &lt;b&gt; &quot;x&quot;",
    "&amp;amp;", "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S LOUD", "rock'n'roll",
    "ApplyEyeMakeup", "tying knot (not on a tie)", "kick_ball", "  many   spaces\tand\nnewlines  ",
    "Ã©tÃ© mojibake", "<|startoftext|> inside <|endoftext|>", "x" * 300, "\u00a0non-breaking\u2009thin",
]


def test_tokenizer_matches_openai_on_hard_strings(reference_tokenizer):
    check_same_ids(reference_tokenizer, HARD_STRINGS)


def test_tokenizer_overlong_text():
    long_text = "jump " * 100
    with pytest.raises(RuntimeError, match="too long"):
        clip_vit.tokenize(long_text)
    tokens = clip_vit.tokenize([long_text, "short"], truncate=True)
    eot = clip_vit.default_tokenizer().encoder["<|endoftext|>"]
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tokens[0, -1] == eot and tokens[0].argmax() == 76  # EOT last, and still where encode_text pools
    assert tokens[1, 2] == eot


def test_missing_vocabulary_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIP_BPE_PATH", str(tmp_path / "nowhere.txt.gz"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="nowhere.txt.gz"):
        clip_vit.find_bpe_vocab()


def test_model_names_resolve_to_the_cache_folder(small_reference, tmp_path):
    torch.save(small_reference.state_dict(), tmp_path / "ViT-B-16.pt")  # a stand-in under the official file name
    model = clip_vit.load_clip("ViT-B/16", download_root=tmp_path)
    check_same_outputs(model, small_reference, 64)
