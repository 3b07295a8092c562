"""The fault table: bad inputs to the entry points (train.py, eval.py, semantic_units.py, pretrain.py), grouped by class of
fault. Each ends with exit status 2 and one line on stderr naming the flag or file at fault, no traceback (run in
this process, any exception other than SystemExit fails the test), and every file that existed before is
byte-identical after. All fail before a model is built: the checkpoints here are stand-ins with just the keys
and tensors that are checked, so the whole table takes a few seconds.

The other bad inputs (a wrong --clip file, damaged checkpoints, unreadable videos under --strict, ...) are in
test_train.py and test_eval.py; what is handled rather than refused (repeated list lines, rotated clips) in
test_data.py."""
import hashlib
import os
from pathlib import Path

import pytest
import torch

import eval as evaluation
import pretrain
import semantic_units
import train

CLASSES = ["kick ball", "throw ball", "jump"]


def write_list_set(root, class_names, train_lines, val_lines):
    """A list dataset's files (no videos: every case here stops before one is opened)."""
    root.mkdir(parents=True)
    (root / "labels.txt").write_text("".join(name + "\n" for name in class_names))
    (root / "train.txt").write_text("".join(f"v/t{k}.mp4 {label}\n" for k, label in enumerate(train_lines)))
    (root / "val.txt").write_text("".join(f"v/e{k}.mp4 {label}\n" for k, label in enumerate(val_lines)))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data sets, runs and checkpoints the cases point at, made once; each case works in a copy-free world and
    the test checks that nothing in it changed."""
    root = tmp_path_factory.mktemp("faults")
    w = {"root": root}
    # 3 classes, 12 training and 6 val videos (the ROOT)
    w["list"] = write_list_set(root / "list", CLASSES, [k % 3 for k in range(12)], [k % 3 for k in range(6)])
    w["other"] = write_list_set(root / "other", CLASSES + ["wave"], [k % 4 for k in range(8)], list(range(4)))
    w["no_jump"] = write_list_set(root / "no_jump", CLASSES, [k % 2 for k in range(8)], [0, 1, 2])
    w["two_labels"] = write_list_set(root / "two_labels", CLASSES, [k % 3 for k in range(6)], [0, 1, 2])
    with open(w["two_labels"] / "val.txt", "a") as file:
        file.write("v/e1.mp4 2\n")   # line 4: e1 again, with another label
    w["same_prompt"] = write_list_set(root / "same_prompt", CLASSES + ["Kick_Ball"], [0, 1, 2, 3], [0, 1, 2, 3])
    # a finished run's files without last.pt (deleted to save space)
    w["old_run"] = root / "old_run"
    w["old_run"].mkdir()
    for name in ("best.pt", "log.jsonl", "args.json"):
        (w["old_run"] / name).write_text(name)
    # stand-in checkpoints: a run's options as train.py saves them, and the tensors the checks read
    run = root / "run"
    args = train.parse_args(["--data", "list", "--data-root", str(w["list"]), "--clip", "tiny", "--batch-size", "4",
                             "--workers", "0", "--no-progress", "--device", "cpu", "--out", str(run)])
    options = train.saved_options(args)
    model = {"clip.visual.conv1.weight": torch.zeros(4, 3, 16, 16), "selection.time_embedding": torch.zeros(64, 4)}
    state = {"optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 1, "step": 0, "rng": [], "best_top1": 0.5,
             "log": [], "sums": {}}
    w["last"] = run / "last.pt"
    torch.save(dict(state, model=model, args=options, class_names=CLASSES), w["last"])
    w["no_scheduler"] = run / "no_scheduler" / "last.pt"
    w["no_scheduler"].parent.mkdir()
    torch.save(dict({k: v for k, v in state.items() if k != "scheduler"}, model=model, args=options,
                    class_names=CLASSES), w["no_scheduler"])
    w["best"] = run / "best.pt"
    torch.save(dict(model=model, args=options, class_names=CLASSES), w["best"])
    w["no_frames"] = run / "no_frames.pt"
    torch.save(dict(model=model, args={k: v for k, v in options.items() if k != "frames"}, class_names=CLASSES),
               w["no_frames"])
    w["pretrained"] = root / "pretrained"   # a finished pretraining: its clip.pt is not to be replaced unasked
    w["pretrained"].mkdir()
    (w["pretrained"] / "clip.pt").write_text("clip.pt")
    w["labels"] = root / "labels.txt"
    w["labels"].write_text("".join(name + "\n" for name in CLASSES))
    w["empty_labels"] = root / "empty_labels.txt"
    w["empty_labels"].write_text("\n  \n")
    w["read_only"] = root / "read_only"
    w["read_only"].mkdir()
    os.chmod(w["read_only"], 0o555)
    return w


def tiny(w, *extra):
    """train.py on the list set, small and on the CPU, writing into a fresh folder."""
    return ["--data", "list", "--data-root", str(w["list"]), "--clip", "tiny", "--batch-size", "4", "--workers", "0",
            "--no-progress", "--device", "cpu", "--out", str(w["root"] / "new_run"), *extra]


def scoring(w, *extra):
    return ["--ckpt", str(w["best"]), "--device", "cpu", "--workers", "0", "--no-progress", *extra]


# (class of fault, entry point, argv from the world, what the line must name). Each class stands for a kind of
# check; its cases are the examples of it.
CASES = [
    # values out of range or not finite: runtime.check_values' tables (train.LIMITS, eval.LIMITS)
    ("values", train, lambda w: tiny(w, "--lr", "inf"), "--lr inf"),
    ("values", train, lambda w: tiny(w, "--min-lr-ratio", "nan"), "--min-lr-ratio nan"),
    ("values", train, lambda w: tiny(w, "--warmup-epochs", "nan"), "--warmup-epochs nan"),
    ("values", train, lambda w: tiny(w, "--label-smoothing", "nan"), "--label-smoothing nan"),
    ("values", train, lambda w: tiny(w, "--seed", "-1"), "--seed -1"),
    ("values", train, lambda w: tiny(w, "--weight-decay", "-0.1"), "--weight-decay -0.1"),
    ("values", train, lambda w: tiny(w, "--new-module-lr-mult", "-1"), "--new-module-lr-mult -1"),
    ("values", evaluation, lambda w: scoring(w, "--batch-size", "0"), "--batch-size 0"),
    ("values", evaluation, lambda w: scoring(w, "--workers", "-1"), "--workers -1"),
    ("values", evaluation, lambda w: scoring(w, "--frames", "-4"), "--frames -4"),
    # what the model can hold: frames of its time embeddings, sizes of whole patches holding the MRA grids
    ("model input", train, lambda w: tiny(w, "--frames", "100"), "--frames 100"),
    ("model input", train, lambda w: tiny(w, "--mra-grids", "0x0"), "--mra-grids '0x0'"),
    ("model input", evaluation, lambda w: scoring(w, "--frames", "100"), "--frames 100"),
    ("model input", evaluation, lambda w: scoring(w, "--size", "63"), "--size 63"),
    # options the configuration ignores
    ("unused options", train, lambda w: tiny(w, "--decoder-layers", "0", "--su-topk", "4"), "--su-topk 4"),
    ("unused options", train, lambda w: tiny(w, "--mra-layers", "0", "--mra-grids", "2x2"), "--mra-grids 2x2"),
    ("unused options", train, lambda w: tiny(w, "--queries", "learned", "--su-topk", "0"), "--su-topk 0"),
    # outputs: where the results would go, checked before the work
    ("outputs", train, lambda w: tiny(w, "--out", ""), "--out ''"),
    ("outputs", train, lambda w: tiny(w, "--out", str(w["old_run"])), "best.pt, log.jsonl, args.json"),
    ("outputs", evaluation, lambda w: scoring(w, "--json", str(w["root"] / "missing" / "r.json")), "--json"),
    ("outputs", evaluation, lambda w: scoring(w, "--json", str(w["root"])), "--json"),
    ("outputs", evaluation, lambda w: scoring(w, "--json", str(w["read_only"] / "r.json")), "--json"),
    ("outputs", semantic_units, lambda w: [str(w["labels"]), "--json", str(w["root"] / "no" / "su.json")],
     "--json"),
    # a user's folder is not the synthetic set's to render into (--data list forgotten)
    ("foreign folder", train, lambda w: tiny(w, "--data", "synthetic"), "holds files that are not a synthetic set"),
    # the epoch plan: a global batch larger than the training set would never complete an optimiser step
    ("epoch plan", train, lambda w: tiny(w, "--batch-size", "256", "--per-gpu-batch", "8", "--epochs", "2",
                                         "--warmup-epochs", "0"), "--batch-size 256: more than the 12 training"),
    # data files: checked like source, each message naming the file (and line)
    ("data files", train, lambda w: tiny(w, "--data-root", str(w["two_labels"])), "val.txt:4"),
    ("data files", train, lambda w: tiny(w, "--data-root", str(w["same_prompt"])), "labels.txt:4"),
    ("data files", train, lambda w: tiny(w, "--data-root", str(w["no_jump"])), "have no training video ('jump')"),
    ("data files", semantic_units, lambda w: [str(w["empty_labels"])], "empty_labels.txt: no class names"),
    # checkpoints that lack what their use reads
    ("checkpoints", train, lambda w: ["--resume", str(w["no_scheduler"])], "lacks scheduler"),
    ("checkpoints", evaluation, lambda w: ["--ckpt", str(w["no_frames"]), "--device", "cpu"], "lack frames"),
    # pretrain.py: values, and the run its --out holds
    ("values", pretrain, lambda w: ["--steps", "0", "--out", str(w["root"] / "p")], "--steps 0"),
    ("values", pretrain, lambda w: ["--lr", "nan", "--out", str(w["root"] / "p")], "--lr nan"),
    ("values", pretrain, lambda w: ["--batch-size", "10", "--frames-per-clip", "4", "--out", str(w["root"] / "p")],
     "--batch-size 10"),
    ("outputs", pretrain, lambda w: ["--out", str(w["pretrained"])], "clip.pt"),
    ("checkpoints", pretrain, lambda w: ["--resume", "--out", str(w["root"] / "p")], "last.pt does not exist"),
    # a resumed run on data of other classes
    ("resume", train, lambda w: ["--resume", str(w["last"]), "--data-root", str(w["other"]), "--workers", "0"],
     "classes not in the run ('wave')"),
]


def snapshot(root):
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(Path(root).rglob("*"))
            if path.is_file()}


@pytest.mark.parametrize("fault, entry, argv, names", CASES,
                         ids=[f"{case[0]}: {case[1].__name__} {case[3]}" for case in CASES])
def test_fault_ends_in_one_line_and_changes_nothing(world, fault, entry, argv, names, capsys, monkeypatch):
    if names == "--json" and "read_only" in str(argv(world)) and os.access(world["read_only"], os.W_OK):
        pytest.skip("a read-only folder is writable to this user (root)")
    monkeypatch.chdir(world["root"])   # relative defaults (runs/, data/) land in the world, not the repository
    before = snapshot(world["root"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:
        entry.main(argv(world))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert error.value.code == 2, (fault, err)
    assert len(lines) == 1 and names in lines[0] and "Traceback" not in err, (fault, names, err)
    after = snapshot(world["root"])
    assert {path: after.get(path) for path in before} == before, f"{fault}: files changed"
