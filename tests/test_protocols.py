"""The protocols on the synthetic world: the compositional base / novel split has every motion and every scene in at
least two base classes and no novel pair among the base ones (in both folds; the random control is a fixed draw);
the few-shot draw on the synthetic (list) layout is seeded and nested, and training uses every shot each epoch; a
zero-shot run on the novel classes scores the novel class names only; bench/grounding.py counts the clips whose
regions rank a unit among their top k."""
import collections
import importlib.util
import json
from pathlib import Path

import pytest

import data
import eval as evaluation
import model
import synthetic
import train

spec = importlib.util.spec_from_file_location("grounding", Path(__file__).resolve().parents[1] / "bench" / "grounding.py")
grounding = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grounding)


def small(workdir, *extra):
    return ["--frames", "2", "--size", "64", "--workers", "0", "--no-progress", "--device", "cpu", "--amp", "off",
            "--cache-dir", str(workdir / "cache"), *extra]


@pytest.mark.parametrize("fold", [1, 2])
def test_compositional_split_covers_motions_and_scenes_and_keeps_novel_pairs_out(fold):
    base, novel = synthetic.split_pairs(fold, "compositional")
    assert sorted(base + novel) == sorted(synthetic.WORLD_PAIRS) and len(base) == len(novel) == 18
    assert not set(base) & set(novel)
    motions = collections.Counter(motion for motion, _ in base)
    scenes = collections.Counter(scene for _, scene in base)
    assert set(motions) == set(synthetic.MOTIONS) and min(motions.values()) >= 2
    assert set(scenes) == set(synthetic.SCENES) and min(scenes.values()) >= 2
    other_base, other_novel = synthetic.split_pairs(3 - fold, "compositional")   # the folds swap the halves
    assert (other_base, other_novel) == (novel, base)
    names = synthetic.protocol_class_names("novel", fold)
    assert names == [synthetic.class_name(motion, scene) for motion, scene in novel]
    assert not set(names) & set(synthetic.protocol_class_names("base", fold))


def test_random_control_is_a_fixed_draw_of_half_the_pairs():
    base, novel = synthetic.split_pairs(1, "random")
    assert (base, novel) == synthetic.split_pairs(1, "random") == synthetic.split_pairs(2, "random")[::-1]
    assert sorted(base + novel) == sorted(synthetic.WORLD_PAIRS) and len(base) == 18
    assert base != synthetic.split_pairs(1, "compositional")[0]


def test_few_shot_draw_on_the_synthetic_layout_is_seeded_and_nested(workdir, tmp_path):
    root = workdir / "synthetic"

    def drawn(shots, seed):
        dataset = data.build_dataset("synthetic", root, "train", shots=shots, seed=seed,
                                     list_out=tmp_path / f"{shots}_{seed}.txt")
        return dataset.samples

    for seed in (0, 1):
        one, two, three = drawn(1, seed), drawn(2, seed), drawn(3, seed)
        assert collections.Counter(label for _, label in two) == {label: 2 for label in range(4)}
        assert set(one) < set(two) < set(three)   # nested: the K-shot set is inside the (K+1)-shot set
        assert drawn(2, seed) == two              # seeded: the same draw again (from the written list too)
        assert data.few_shot_samples(data.build_dataset("synthetic", root, "train").samples, 4, 2, seed) == two
    assert drawn(2, 0) != drawn(2, 1)


def test_few_shot_run_uses_every_shot_each_epoch_and_scores_every_val_clip(workdir, monkeypatch):
    """2 shots x 4 classes = 8 clips with a batch of 3: each epoch still visits all 8; the last epoch's model is
    scored on every val clip."""
    seen, real_getitem = collections.defaultdict(set), data.VideoDataset.__getitem__

    def recording(self, item):
        if self.train:
            epoch, index = item
            seen[epoch].add(self.samples[index][0])
        return real_getitem(self, item)

    monkeypatch.setattr(data.VideoDataset, "__getitem__", recording)
    out, root = workdir / "fewshot", workdir / "synthetic"
    log = train.main(small(workdir, "--clip", "tiny", "--data-root", str(root), "--shots", "2", "--epochs", "2", "--warmup-epochs",
                           "1", "--batch-size", "3", "--eval-every", "0", "--test-views", "none", "--out", str(out)))
    shots = {path for path, _ in data.build_dataset("synthetic", root, "train", shots=2).samples}
    assert len(shots) == 8 and dict(seen) == {0: shots, 1: shots}
    results = evaluation.main(small(workdir, "--ckpt", str(out / "last.pt"), "--shots", "2", "--views", "1x1"))
    val = data.build_dataset("synthetic", root, "val")
    assert results["videos"] == len(val) == 4 and results["top1"] == pytest.approx(log[-1]["val_top1"])


@pytest.fixture(scope="module")
def world(workdir):
    """The whole world (36 classes) at its smallest: one training and one val clip a class."""
    root = workdir / "world"
    synthetic.make_synthetic(root, pairs=synthetic.WORLD_PAIRS, videos_per_class=2, val_fraction=0.5, num_frames=6,
                             size=64, workers=1)
    return root


@pytest.fixture(scope="module")
def base_run(workdir, world):
    """A run of one epoch on the base classes of fold 1."""
    out = workdir / "base"
    train.main(small(workdir, "--clip", "tiny", "--data-root", str(world), "--classes", "base", "--epochs", "1",
                     "--batch-size", "6", "--eval-every", "0", "--test-views", "none", "--out", str(out)))
    return out


def test_zero_shot_on_novel_classes_scores_the_novel_names_only(workdir, base_run, monkeypatch):
    out = base_run
    base, novel = (synthetic.protocol_class_names(classes) for classes in ("base", "novel"))
    on_base = evaluation.main(small(workdir, "--ckpt", str(out / "last.pt"), "--views", "1x1"))
    assert on_base["protocol"] == "synthetic base (fold 1, compositional)"
    assert list(on_base["per_class"]) == base and on_base["videos"] == 18

    scored, real_set_class_names = [], model.ASU.set_class_names

    def recording(asu, class_names, *args, **kwargs):
        scored.append(list(class_names))
        return real_set_class_names(asu, class_names, *args, **kwargs)

    monkeypatch.setattr(model.ASU, "set_class_names", recording)
    on_novel = evaluation.main(small(workdir, "--ckpt", str(out / "last.pt"), "--classes", "novel",
                                          "--views", "1x1"))
    assert on_novel["protocol"] == "zero-shot synthetic novel (fold 1, compositional)"
    assert scored[-1] == novel and on_novel["classes"] == 18   # the model's label set: the novel names only
    assert list(on_novel["per_class"]) == novel and on_novel["videos"] == 18


def test_grounding_counts_clips_whose_regions_rank_the_unit_high(base_run, tmp_path, capsys):
    """bench/grounding.py: a fraction of each class's val clips, 1.0 when k covers the whole bank, never lower for a
    larger k; a unit the bank lacks ends in one line."""
    flag_class, other = "waving a flag on the beach", "waving arms in the street"   # both base classes of fold 1
    assert {flag_class, other} <= set(synthetic.protocol_class_names("base"))
    ckpt = ["--ckpt", str(base_run / "last.pt"), "--classes", flag_class, other]
    units = len(model.load_checkpoint(base_run / "last.pt")["semantic_units"]["units"])
    fractions = {k: grounding.main(ckpt + ["--k", str(k), "--json", str(tmp_path / f"{k}.json")]) for k in (1, 3)}
    assert fractions[3] == json.loads((tmp_path / "3.json").read_text())["fraction"]
    assert all(0 <= fractions[1][name] <= fractions[3][name] <= 1 for name in (flag_class, other))
    assert grounding.main(ckpt + ["--k", str(units)]) == {flag_class: 1.0, other: 1.0}
    with pytest.raises(SystemExit) as exit_info:
        grounding.main(ckpt + ["--unit", "kite"])
    assert exit_info.value.code == 2 and "--unit 'kite'" in capsys.readouterr().err


def test_protocol_options_refused_where_they_do_nothing(workdir, capsys):
    for argv, flag in ((["--classes", "base", "--data", "list", "--data-root", str(workdir)], "--classes base"),
                       (["--fold", "2"], "--fold 2"), (["--split-kind", "random"], "--split-kind random"),
                       (["--classes", "novel", "--shots", "2"], "--shots 2")):
        with pytest.raises(SystemExit) as exit_info:
            train.parse_args(small(workdir, "--clip", "tiny", "--out", str(workdir / "refused"), *argv))
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip().startswith(f"error: {flag}")
