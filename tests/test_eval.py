"""eval.py: multi-view scores are the mean of the single views' softmax; an unreadable test video is left out of
every number and listed, and --strict stops at it; zero-shot on UCF-101 / HMDB-51 averages the three test splits and
on Kinetics-600 the three published splits (or random subsets of a given list); the few-shot protocol evaluates a
--shots K checkpoint on split-1 test; --video prints the top classes and the most attended SUs, and --explain draws
them on the frames; several processes give the same numbers as one; large text sets get a progress bar; bad input (a
CLIP file or a video as --ckpt, a root with split 1 only, ...) ends with one line.

The UCF-101, HMDB-51, Kinetics-600 and list layouts are small stand-ins built in a temporary folder from synthetic
clips."""
import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import clip_vit
import data
import eval as evaluation
import pictures
import runtime
import train
from decoder import SUSelection
from model import load_checkpoint, model_from_checkpoint
from mra import region_windows

REPO = Path(__file__).resolve().parents[1]
UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "Basketball"]
HMDB_CLASSES = ["brush_hair", "cartwheel", "catch"]
# the K600 stand-in has every class of the published splits, and two test videos for each of these (abseiling is a
# Kinetics-400 class, in no split; the others are in one, two or all three splits)
K600_WITH_VIDEOS = ["abseiling", "acting in play", "adjusting glasses", "alligator wrestling", "arguing"]
K600_NEW = ["acting in play", "adjusting glasses", "alligator wrestling", "arguing"]


def small(workdir, *extra):
    return ["--frames", "2", "--size", "64", "--workers", "0", "--no-progress", "--device", "cpu", "--amp", "off",
            "--cache-dir", str(workdir / "cache"), *extra]


@pytest.fixture(scope="module")
def checkpoint(workdir):
    """A tiny ASU trained for one epoch on the synthetic set."""
    out = workdir / "run"
    train.main(small(workdir, "--data", "synthetic", "--data-root", str(workdir / "synthetic"), "--clip", "tiny",
                     "--epochs", "1",
                     "--batch-size", "4", "--out", str(out)))
    return out / "last.pt"


def test_checkpoint_from_before_the_temporal_and_query_options_loads(workdir, checkpoint, tmp_path):
    """A checkpoint written before --temporal / --queries existed (no such keys in its options, no temporal layer in
    its weights) is the decoder without the temporal path."""
    ckpt = load_checkpoint(checkpoint)
    assert ckpt["args"]["temporal"] == "halves" and ckpt["args"]["queries"] == "units"
    old = dict(ckpt, args={k: v for k, v in ckpt["args"].items() if k not in ("temporal", "queries")},
               model={k: v for k, v in ckpt["model"].items() if ".temporal." not in k})
    assert len(old["model"]) < len(ckpt["model"])
    model = model_from_checkpoint(old, "old.pt", str(workdir / "cache"))
    assert model.decoder.temporal is None
    assert isinstance(model.selection, SUSelection)


def test_ablation_options_train_and_evaluate(workdir):
    """--queries learned and --temporal none go through train.py into the checkpoint, and eval.py rebuilds them."""
    out = workdir / "learned"
    train.main(small(workdir, "--data", "synthetic", "--data-root", str(workdir / "synthetic"), "--clip", "tiny",
                     "--epochs", "1",
                     "--batch-size", "4", "--queries", "learned", "--temporal", "none", "--out", str(out)))
    ckpt = load_checkpoint(out / "last.pt")
    model = model_from_checkpoint(ckpt, out / "last.pt", str(workdir / "cache"))
    assert model.decoder.temporal is None and not isinstance(model.selection, SUSelection)
    results = evaluation.main(small(workdir, "--ckpt", str(out / "last.pt")))
    assert results["videos"] > 0 and 0 <= results["top1"] <= 1


def clips(workdir):
    return sorted((workdir / "synthetic" / "videos").rglob("*.mp4"))


@pytest.fixture(scope="module")
def standins(workdir):
    """UCF-101 and HMDB-51 layouts of 3 classes and a Kinetics-600 one with the classes of the published zero-shot
    splits (train.csv names them, val.csv has videos for K600_WITH_VIDEOS); the videos link to synthetic clips."""
    sources = iter(clips(workdir) * 3)
    ucf, hmdb, k600 = workdir / "ucf101", workdir / "hmdb51", workdir / "k600"
    (ucf / "ucfTrainTestlist").mkdir(parents=True)
    (ucf / "ucfTrainTestlist" / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES)))
    (hmdb / "testTrainMulti_7030_splits").mkdir(parents=True)
    for fold in (1, 2, 3):  # split S: group S of each class is the test video, the others train
        train_lines = [f"{name}/v_{name}_g{group:02d}_c01.avi {label + 1}"
                       for label, name in enumerate(UCF_CLASSES) for group in (1, 2, 3) if group != fold]
        test_lines = [f"{name}/v_{name}_g{fold:02d}_c01.avi" for name in UCF_CLASSES]
        (ucf / "ucfTrainTestlist" / f"trainlist{fold:02d}.txt").write_text("\n".join(train_lines) + "\n")
        (ucf / "ucfTrainTestlist" / f"testlist{fold:02d}.txt").write_text("\n".join(test_lines) + "\n")
        for name in HMDB_CLASSES:
            lines = [f"{name}_{k}.avi {2 if k == fold else 1}" for k in (1, 2, 3)]
            (hmdb / "testTrainMulti_7030_splits" / f"{name}_test_split{fold}.txt").write_text("\n".join(lines) + "\n")
    for name in UCF_CLASSES:
        (ucf / "UCF-101" / name).mkdir(parents=True)
        for group in (1, 2, 3):
            os.symlink(next(sources), ucf / "UCF-101" / name / f"v_{name}_g{group:02d}_c01.avi")
    for name in HMDB_CLASSES:
        (hmdb / "videos" / name).mkdir(parents=True)
        for k in (1, 2, 3):
            os.symlink(next(sources), hmdb / "videos" / name / f"{name}_{k}.avi")
    (k600 / "annotations").mkdir(parents=True)
    (k600 / "videos" / "val").mkdir(parents=True)
    with open(k600 / "annotations" / "train.csv", "w", newline="") as f:   # its videos are never read
        writer = csv.writer(f)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for k, name in enumerate(sorted(set(K600_WITH_VIDEOS).union(*data.k600_zero_shot_splits()))):
            writer.writerow([name, f"train{k:04d}", 0, 10, "train"])
    with open(k600 / "annotations" / "val.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for name in K600_WITH_VIDEOS:
            for k in range(2):
                youtube_id = f"{name.replace(' ', '')[:8]}{k:03d}"
                writer.writerow([name, youtube_id, 10, 20, "val"])
                os.symlink(next(sources), k600 / "videos" / "val" / f"{youtube_id}_{10:06d}_{20:06d}.mp4")
    (k600 / "new_classes.txt").write_text("\n".join(K600_NEW) + "\n")
    return {"ucf101": ucf, "hmdb51": hmdb, "k600": k600}


@pytest.fixture(scope="module")
def list_with_unreadable(workdir):
    """A list dataset of the checkpoint's classes with 10 test videos: 8 synthetic clips (2 per class) and, at
    positions 2 and 7 (one on each of two processes), a truncated mp4 and a text file named .mp4.
    -> (root, the 8 readable samples, the 2 unreadable paths)."""
    root = workdir / "list10"
    source = workdir / "synthetic"
    class_names = data.read_class_names("synthetic", source)
    train_samples = data.build_dataset("synthetic", source, "train").samples
    sources = []
    for label in range(len(class_names)):
        sources += [sample for sample in train_samples if sample[1] == label][:2]
    (root / "videos").mkdir(parents=True)
    (root / "labels.txt").write_text("".join(f"{name}\n" for name in class_names))
    samples = []
    for k, (path, label) in enumerate(sources):
        os.symlink(path, root / "videos" / f"clip{k}.mp4")
        samples.append((str(root / "videos" / f"clip{k}.mp4"), label))
    truncated, text = root / "videos" / "truncated.mp4", root / "videos" / "notes.mp4"
    raw = Path(sources[0][0]).read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    text.write_text("not a video\n" * 50)
    lines = [f"{Path(path).relative_to(root)} {label}" for path, label in samples]
    lines.insert(2, f"videos/{truncated.name} 0")
    lines.insert(7, f"videos/{text.name} 1")
    (root / "val.txt").write_text("\n".join(lines) + "\n")
    (root / "train.txt").write_text(lines[0] + "\n")
    return root, samples, [truncated, text]


def test_multi_view_equals_mean_of_single_views(workdir, checkpoint):
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint, str(workdir / "cache")).eval()
    dataset = data.build_dataset("synthetic", workdir / "synthetic", "val", num_frames=2, size=64, views=(2, 3))
    grad_modes = []   # scoring builds no autograd graph (it would cost memory and time)
    hook = model.register_forward_hook(lambda module, inputs, output: grad_modes.append(torch.is_grad_enabled()))
    scores = runtime.predictions(model, dataset, torch.device("cpu"), "off", batch_size=3)
    hook.remove()
    assert grad_modes and not any(grad_modes) and torch.is_grad_enabled()
    probs, labels = scores.probs, scores.labels
    one_by_one = []
    with torch.no_grad():
        for i in range(len(dataset)):
            video = runtime.model_input(dataset[i][0], torch.device("cpu"))  # (6, T, 3, S, S)
            views = torch.stack([model(video[v:v + 1]).softmax(-1)[0] for v in range(len(video))])  # (6, C)
            assert (views - views[0]).abs().max() > 2e-5  # the views differ, so averaging them is tested
            one_by_one.append(views.mean(0))
    torch.testing.assert_close(probs, torch.stack(one_by_one), atol=1e-5, rtol=1e-4)
    results = evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--views", "2x3",
                                    "--json", str(workdir / "views.json")))
    expected = runtime.accuracy(torch.stack(one_by_one), labels)
    assert results["runs"][0]["top1"] == pytest.approx(expected["top1"]) == results["top1"]
    assert results["runs"][0]["views"] == "2x3" == results["views"]
    assert results["videos"] == len(dataset) and results["unreadable"] == []
    assert json.loads((workdir / "views.json").read_text()) == json.loads(json.dumps(results))


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_zero_shot_is_mean_over_three_splits(workdir, checkpoint, standins, name):
    results = evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--data", name,
                                    "--data-root", str(standins[name])))
    assert results["protocol"] == f"zero-shot {name}"
    runs = results["runs"]
    assert [run["split"] for run in runs] == [1, 2, 3]
    assert all(run["videos"] == 3 and run["classes"] == 3 for run in runs)
    assert results["top1_mean"] == pytest.approx(sum(run["top1"] for run in runs) / 3)


def test_unreadable_test_videos_are_left_out_and_listed(workdir, checkpoint, list_with_unreadable, capsys):
    root, readable, unreadable = list_with_unreadable
    for path in unreadable:
        with pytest.raises(data.VideoReadError):
            data.load_video(path, 2)
    results = evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--data", "list", "--data-root", str(root),
                                    "--views", "1x1", "--json", str(workdir / "list10.json")))
    printed = capsys.readouterr().out
    assert "top-1" in printed and "over 8 of 10 videos, 2 unreadable" in printed
    assert all(str(path) in printed for path in unreadable)
    assert results["videos"] == 8 and [item["path"] for item in results["unreadable"]] == [str(p) for p in unreadable]
    assert all(item["reason"] for item in results["unreadable"])
    assert json.loads((workdir / "list10.json").read_text()) == json.loads(json.dumps(results))
    # the same numbers by hand, from the model on the 8 readable videos alone
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint, str(workdir / "cache")).eval()
    alone = data.VideoDataset(readable, ckpt["class_names"], num_frames=2, size=64)
    with torch.no_grad():
        correct = [model(runtime.model_input(alone[i][0][None], torch.device("cpu"))).argmax(-1).item() == label
                   for i, (_, label) in enumerate(readable)]
    per_class = {}
    for (_, label), hit in zip(readable, correct):
        per_class.setdefault(ckpt["class_names"][label], []).append(hit)
    per_class = {name: sum(hits) / len(hits) for name, hits in per_class.items()}
    assert results["top1"] == pytest.approx(sum(correct) / 8)
    assert results["per_class"] == pytest.approx(per_class) and len(per_class) == len(ckpt["class_names"])
    assert results["mean_class"] == pytest.approx(sum(per_class.values()) / len(per_class))
    # what train.py's per-epoch validation reads: the 8 scored, the 2 left out
    test_set = data.build_dataset("list", root, "val", num_frames=2, size=64)
    scores = runtime.predictions(model, test_set, torch.device("cpu"), "off", batch_size=4)
    assert scores.probs.shape == (8, len(ckpt["class_names"])) and scores.labels.tolist() == [y for _, y in readable]
    assert len(scores.unreadable) == 2 and scores.replaced == 0
    with pytest.raises(SystemExit) as error:
        evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--data", "list", "--data-root", str(root),
                              "--views", "1x1", "--strict"))
    message = str(error.value)
    assert error.value.code == 2
    assert str(unreadable[0]) in message and "--strict" in message and "\n" not in message, message


def test_no_readable_test_video_is_an_error_not_nan(workdir, checkpoint, list_with_unreadable, tmp_path, capsys):
    """A test set none of whose videos can be read has no score: one line and exit status 2, not "top-1 nan"."""
    root, _, unreadable = list_with_unreadable
    lines = [line for line in (root / "val.txt").read_text().splitlines() if "clip" not in line]
    assert len(lines) == 2
    (tmp_path / "labels.txt").write_text((root / "labels.txt").read_text())
    (tmp_path / "videos").symlink_to(root / "videos")
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as error:
        evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--data", "list", "--data-root", str(tmp_path),
                              "--views", "1x1", "--json", str(tmp_path / "scores.json")))
    message = str(error.value)
    assert error.value.code == 2 and "none of the 2 test videos could be read" in message, message
    assert str(tmp_path / "videos" / unreadable[0].name) in message and "\n" not in message
    assert "top-1" not in capsys.readouterr().out and not (tmp_path / "scores.json").exists()


def test_zero_shot_k600_published_splits(workdir, checkpoint, standins, capsys):
    results = evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--data", "k600",
                                    "--data-root", str(standins["k600"]), "--views", "1x1"))
    printed = capsys.readouterr().out
    runs = results["runs"]
    assert results["protocol"] == "zero-shot k600" and [run["split"] for run in runs] == [1, 2, 3]
    for run, split in zip(runs, data.k600_zero_shot_splits()):
        with_videos = [name for name in K600_WITH_VIDEOS if name in split]
        assert run["classes"] == 160 and run["videos"] == 2 * len(with_videos) and run["unreadable"] == []
        assert sorted(run["per_class"]) == sorted(with_videos)
    assert len({run["videos"] for run in runs}) > 1   # the splits differ in which stand-in classes they hold
    top1 = torch.tensor([run["top1"] for run in runs], dtype=torch.float64)
    assert results["top1_mean"] == pytest.approx(top1.mean().item())
    assert results["top1_std"] == pytest.approx(top1.std(unbiased=False).item())
    assert f"{results['top1_mean']:.4f} +- {results['top1_std']:.4f} over the 3 splits" in printed


def test_zero_shot_k600_subsets(workdir, checkpoint, standins):
    results = evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--data", "k600",
                                    "--data-root", str(standins["k600"]),
                                    "--k600-new-classes", str(standins["k600"] / "new_classes.txt"),
                                    "--k600-subset-size", "2", "--views", "1x1"))
    runs = results["runs"]
    assert [run["subset"] for run in runs] == [1, 2, 3]
    assert all(run["classes"] == 2 and run["videos"] == 4 for run in runs)  # 2 classes x 2 videos each
    assert all(len(run["per_class"]) == 2 and set(run["per_class"]) <= set(K600_NEW) for run in runs)
    top1 = torch.tensor([run["top1"] for run in runs], dtype=torch.float64)
    assert results["top1_mean"] == pytest.approx(top1.mean().item())
    assert results["top1_std"] == pytest.approx(top1.std(unbiased=False).item())


def test_few_shot_protocol(workdir, standins):
    out = workdir / "fewshot"
    root = standins["ucf101"]
    train.main(small(workdir, "--data", "ucf101", "--data-root", str(root), "--shots", "1", "--clip", "tiny",
                     "--epochs", "1", "--warmup-epochs", "1", "--batch-size", "3", "--lr", "1e-3", "--out", str(out)))
    drawn = (root / "fewshot_ucf101_1shot_seed0.txt").read_text().split("\n")
    assert sorted(int(line.split()[1]) for line in drawn if line) == [0, 1, 2]  # 1 video per class
    results = evaluation.main(small(workdir, "--ckpt", str(out / "last.pt"), "--shots", "1"))
    assert results["protocol"] == "1-shot ucf101"
    assert [(run["split"], run["videos"]) for run in results["runs"]] == [(1, 3)]
    with pytest.raises(SystemExit, match="--shots 2"):
        evaluation.main(small(workdir, "--ckpt", str(out / "last.pt"), "--shots", "2"))


@pytest.mark.parametrize("eval_every", ["0", "1"])
def test_few_shot_reports_the_last_epoch_and_sees_every_shot(workdir, standins, eval_every, monkeypatch):
    """UCF-101's val split is its test split: no model is selected on it (no best.pt), with or without per-epoch
    evaluation the reported number is the last epoch's, and each epoch visits all 6 shots although the batch of 4
    does not divide them."""
    out = workdir / f"fewshot_last{eval_every}"
    seen, real_getitem = {}, data.VideoDataset.__getitem__

    def recording(self, item):
        if self.train:   # training items come as (epoch, index) pairs (data.EpochSampler)
            epoch, index = item
            seen.setdefault(epoch, set()).add(self.samples[index][0])
        return real_getitem(self, item)

    monkeypatch.setattr(data.VideoDataset, "__getitem__", recording)
    log = train.main(small(workdir, "--data", "ucf101", "--data-root", str(standins["ucf101"]), "--shots", "2",
                           "--clip", "tiny", "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "4",
                           "--lr", "1e-3", "--eval-every", eval_every, "--out", str(out)))
    shots = {path for path, _ in data.build_dataset("ucf101", standins["ucf101"], "train", shots=2).samples}
    assert len(shots) == 6 and seen == {0: shots, 1: shots}
    assert ("val_top1" in log[0]) == (eval_every == "1") and "val_top1" in log[-1]
    assert not (out / "best.pt").exists()
    results = evaluation.main(small(workdir, "--ckpt", str(out / "last.pt"), "--shots", "2"))
    assert results["top1"] == pytest.approx(log[-1]["val_top1"])


def test_single_video_prints_classes_and_units(workdir, checkpoint, capsys):
    video = clips(workdir)[0]
    results = evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--video", str(video), "--top-units", "3"))
    printed = capsys.readouterr().out
    class_names = load_checkpoint(checkpoint)["class_names"]
    assert len(results["classes"]) == min(5, len(class_names))
    probabilities = [c["probability"] for c in results["classes"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6
    assert results["classes"][0]["class"] in printed
    weights = [u["weight"] for u in results["semantic_units"]]
    assert len(weights) == 3 and weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1 + 1e-5
    for unit in results["semantic_units"]:
        assert f"{unit['unit']} ({unit['kind']})" in printed


def test_explain_draws_the_windows_that_selected_the_top_units(workdir, checkpoint, tmp_path, capsys):
    """--explain: a PNG with a row of the model's frames per top unit, named under it, each frame boxed at the
    token that gave the unit most weight (the whole frame or an MRA window); no box where no token kept it."""
    video, out = clips(workdir)[0], tmp_path / "explain.png"
    results = evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--video", str(video), "--top-units", "2",
                                    "--explain", str(out)))
    assert f"wrote {out}" in capsys.readouterr().out
    image = pictures.read_png(out)
    top = results["semantic_units"][0]
    assert pictures.find_text(image, f"1. {top['unit']} ({top['kind']})") is not None
    assert pictures.find_text(image, results["classes"][0]["class"]) is not None
    # the picture's boxes, from the model's own selection weights
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint, str(workdir / "cache")).eval()
    frames = data.VideoDataset([(str(video), 0)], ckpt["class_names"], num_frames=2, size=64)[0][0]   # (2, 3, 64, 64)
    with torch.no_grad():
        _, info = model(runtime.model_input(frames[None], torch.device("cpu")), return_attention=True)
    index = [u.text for u in model.semantic_units.units].index(top["unit"])
    weights, tokens = info["su_attention"][0, :, :, index].max(dim=1)                               # (2,), (2,)
    windows = [(0, 4, 0, 4)] + region_windows(4, 4, ((2, 2), (3, 3)))   # 64 px of 16-px patches: a 4 x 4 grid
    y0 = pictures.LINE + pictures.PAD                                    # the first row, under the title
    for t in range(2):
        x0 = pictures.PAD + t * (64 + pictures.PAD)
        shown = image[y0:y0 + 64, x0:x0 + 64].astype(int)
        seen = frames[t].permute(1, 2, 0).numpy().astype(int)
        changed = (shown != seen).any(-1)                                                      # (64, 64)
        if weights[t] == 0:
            assert not changed.any()
            continue
        r0, r1, c0, c1 = windows[tokens[t]]
        assert changed[r0 * 16, c0 * 16:c1 * 16].all() and changed[r1 * 16 - 1, c0 * 16:c1 * 16].all()
        assert changed.sum() == changed[r0 * 16:r1 * 16, c0 * 16:c1 * 16].sum()   # nothing drawn outside the box
    for argv, expected in (([], "add --video"), (["--video", str(video)], "a .png file")):
        with pytest.raises(SystemExit) as error:
            evaluation.main(small(workdir, "--ckpt", str(checkpoint), "--explain", str(tmp_path / "x.jpg"), *argv))
        assert error.value.code == 2 and expected in str(error.value)


def test_two_processes_give_the_same_numbers(workdir, checkpoint, list_with_unreadable):
    """Also the unreadable videos, one on each process, come back together in sample order."""
    root = str(list_with_unreadable[0])
    argv = ["--ckpt", str(checkpoint), "--data", "list", "--data-root", root, "--views", "1x1"]
    one = evaluation.main(small(workdir, *argv, "--json", str(workdir / "one.json")))
    evaluation.main(small(workdir, *argv, "--gpus", "2", "--json", str(workdir / "two.json")))
    two = json.loads((workdir / "two.json").read_text())
    assert one["videos"] == two["videos"] == 8 and one["top1"] == two["top1"] and one["top5"] == two["top5"]
    assert one["unreadable"] == two["unreadable"] and len(two["unreadable"]) == 2
    assert one["mean_class"] == pytest.approx(two["mean_class"])
    assert one["per_class"] == pytest.approx(two["per_class"])


class CLIP(torch.nn.Module):
    """Stands in for OpenAI's CLIP class, whose released files are TorchScript archives of it."""

    def forward(self, x):
        return x * 2


def test_text_encoding_bar_only_for_large_sets(capsys):
    model = clip_vit.tiny_clip()
    for count, progress, shown in ((clip_vit.PROGRESS_MIN_TEXTS + 1, True, True),
                                   (clip_vit.PROGRESS_MIN_TEXTS + 1, False, False),
                                   (clip_vit.PROGRESS_MIN_TEXTS, True, False)):
        embeddings = clip_vit.encode_texts(model, [f"text {k}" for k in range(count)], progress=progress)
        assert embeddings.shape == (count, model.embed_dim)
        assert ("encoding texts" in capsys.readouterr().err) == shown, (count, progress)


def split_one_only(standins, name, tmp_path):
    """A copy of the UCF-101 / HMDB-51 stand-in without the files of splits 2 and 3."""
    root = tmp_path / f"{name}_split1"
    for item in standins[name].iterdir():
        if item.name in ("ucfTrainTestlist", "testTrainMulti_7030_splits"):
            (root / item.name).mkdir(parents=True)
            for file in item.iterdir():
                if not file.name.endswith(("02.txt", "03.txt", "split2.txt", "split3.txt")):
                    (root / item.name / file.name).write_bytes(file.read_bytes())
        elif item.is_dir():
            root.mkdir(exist_ok=True)
            os.symlink(item, root / item.name)
    return root


def test_bad_input_one_line(workdir, checkpoint, standins, tmp_path):
    """Each error is a single line that names the argument or file at fault, and what it is."""
    clip_state = tmp_path / "clip_state.pt"
    torch.save({"visual.proj": torch.zeros(1)}, clip_state)
    clip_file = tmp_path / "ViT-B-16.pt"
    with warnings.catch_warnings():   # TorchScript is deprecated, but OpenAI's CLIP files are TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(CLIP()).save(str(clip_file))
    pickled = tmp_path / "pickled_module.pt"
    torch.save(CLIP(), pickled)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(Path(checkpoint).read_bytes()[:100000])
    no_splits = tmp_path / "k600_no_splits"
    (no_splits / "annotations").mkdir(parents=True)
    (no_splits / "annotations" / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                                       "abseiling,abc,0,10,val\n")
    ckpt = load_checkpoint(checkpoint)
    ckpt["args"] = dict(ckpt["args"], decoder_layers=0, mra_layers=0)
    other_model = tmp_path / "other_model.pt"
    torch.save(ckpt, other_model)
    bad_classes = tmp_path / "new_classes.txt"
    bad_classes.write_text("acting in play\nflying a kite\n")
    not_video = tmp_path / "not_video.mp4"
    not_video.write_text("hello")
    base = small(workdir, "--ckpt", str(checkpoint))
    cases = [
        (base + ["--data", "kinetics"], "invalid choice"),
        (base + ["--data", "ucf101", "--data-root", str(tmp_path / "missing")], "--data-root"),
        (small(workdir, "--ckpt", str(tmp_path / "missing.pt")), "--ckpt"),
        (small(workdir, "--ckpt", str(clip_state)), "is a CLIP state dict, not written by train.py"),
        (small(workdir, "--ckpt", str(clip_file)), "is a CLIP checkpoint (OpenAI's TorchScript file), not one written"),
        (small(workdir, "--ckpt", str(clips(workdir)[0])), "is not a checkpoint (a video file?)"),
        (small(workdir, "--ckpt", str(pickled)), "holds a pickled Python object"),
        (small(workdir, "--ckpt", str(truncated)), "is damaged or truncated"),
        (small(workdir, "--ckpt", str(other_model)), "another model"),
        (["--ckpt", str(checkpoint), "--gpus", str(max(2, torch.cuda.device_count() + 1))], "--gpus"),
        (base + ["--data", "k600", "--data-root", str(standins["k600"]), "--k600-new-classes", str(bad_classes)],
         f"{bad_classes} line 2"),
        (base + ["--video", str(not_video)], "--video"),
        (base + ["--data", "k600", "--data-root", str(no_splits)], "classes of Kinetics-600 zero-shot split 1"),
        (base + ["--data", "ucf101", "--data-root", str(split_one_only(standins, "ucf101", tmp_path))],
         "testlist02.txt"),
        (base + ["--data", "hmdb51", "--data-root", str(split_one_only(standins, "hmdb51", tmp_path))],
         "_test_split2.txt"),
    ]
    for argv, expected in cases:
        with pytest.raises(SystemExit) as error:
            evaluation.main(argv)
        message = str(error.value)
        assert error.value.code == 2, (argv, message)
        assert expected in message and "\n" not in message and "weights_only" not in message, (argv, message)
        if "split1" in argv[-1]:
            assert "add --split 1" in message, message
    one_split = evaluation.main(base + ["--data", "ucf101", "--split", "1",
                                        "--data-root", str(split_one_only(standins, "ucf101", tmp_path / "again"))])
    assert one_split["split"] == 1 and one_split["videos"] == 3   # what the hint says works


def test_cli_error_has_no_traceback(tmp_path):
    not_ckpt = tmp_path / "not_ckpt.pt"
    not_ckpt.write_text("hello")
    result = subprocess.run([sys.executable, "eval.py", "--ckpt", str(not_ckpt), "--device", "cpu"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(not_ckpt) in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert "is not a PyTorch file" in lines[0], lines[0]
