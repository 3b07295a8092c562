"""What each part of ASU adds, and whether the paper's claims hold in miniature: the ablation, as one command.

Rows (train.py flags): (a) CLIP mean pooling (ViFi-CLIP-like), (b) the decoder with learned queries instead of SU
selection, (c) SU selection and decoder without MRA, (d) full ASU, (e) full ASU with all SUs kept (--su-topk 0),
(f) full ASU from the random tiny CLIP (--clip tiny: no pretraining; synthetic data only). Rows (a)-(e) start from
--clip (synthetic: the pretrained tiny CLIP of pretrain.py, tiny-pretrained, built on first use).

Columns, one protocol each (DESIGN.md, "Protocols on the synthetic world"), every run's last.pt scored by eval.py
on the val split with the dataset's test views:
- supervised: top-1 over all classes, and each class of the time-reversed pair (sitting down / standing up) and of
  the fine-object pair (waving arms / waving a flag) of the embedded default;
- K-shot (--shots, default 2 and 4): all-way few-shot, K training clips per class drawn with the run's seed
  (nested), from the CLIP (not a supervised checkpoint), no per-epoch val, the last epoch scored;
- base / novel / HM (synthetic only): trained on the base half of the world's motion x scene pairs (--folds,
  --split-kind), base top-1 on the base val clips, novel top-1 zero-shot on the novel val clips with the novel
  class names only, and their harmonic mean 2BN / (B + N), per run, then averaged;
- flag grounded: bench/grounding.py on the supervised checkpoint, how often "flag" is among the 3 units of highest
  selection weight for some region token, over the flag class's val clips / the bare-arms class's (rows with SU
  selection);
- s / run: seconds of training of the supervised run.
Every cell is mean ± std over --seeds (the base / novel cells over seeds x folds).

    python bench/ablation.py                       # the embedded default, 3 seeds
    python bench/ablation.py --quick               # 1 seed, 1 epoch a run: checks every cell's code path
    python bench/ablation.py --only a d --columns transfer --split-kind random --out runs/ablation_random
    python bench/ablation.py --data hmdb51 --data-root data/hmdb51 --clip ViT-B/16 --columns few-shot

Runs go to --out/<row letter>/<protocol>/seed<k>. A run whose last.pt and train_seconds.txt exist is not trained
again, whatever the options now (delete its folder, or choose another --out, to train it again); its scores are
reused too, and written when missing (delete the score_*.json files to score the same checkpoints again).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATIONS = {   # name: train.py flags (after --clip, so that (f)'s wins)
    "(a) mean pooling": ["--decoder-layers", "0", "--mra-layers", "0"],
    "(b) learned queries, no SUs": ["--queries", "learned"],
    "(c) SUs + decoder, no MRA": ["--mra-layers", "0"],
    "(d) ASU": [],
    "(e) ASU, all SUs (--su-topk 0)": ["--su-topk", "0"],
    "(f) ASU from the random tiny CLIP": ["--clip", "tiny"],
}
WITHOUT_UNITS = ("a", "b")   # rows without SU selection: no grounding to measure
PAIRS = {"time-reversed pair": ("sitting down on a chair in the room", "standing up from a chair in the room"),
         "fine-object pair": ("waving arms on the beach", "waving a flag on the beach")}
COLUMNS = ("supervised", "few-shot", "transfer")


def run(command, log):
    with open(log, "w") as file:
        result = subprocess.run(command, cwd=ROOT, stdout=file, stderr=subprocess.STDOUT)
    if result.returncode:
        sys.exit(f"bench/ablation.py: {' '.join(command)} failed (exit {result.returncode}); see {log}")


def train(out, flags, seed, epochs, args):
    """Trains one run into `out` unless it is there; returns its seconds of training."""
    timing = out / "train_seconds.txt"
    if not ((out / "last.pt").is_file() and timing.is_file()):
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("score_*.json"):
            old.unlink()
        timing.unlink(missing_ok=True)   # written last: a run cut short is trained again
        epochs = ["--epochs", str(epochs)] if epochs else []
        command = [sys.executable, "train.py", "--data", args.data, "--out", str(out), "--overwrite", "--seed",
                   str(seed), "--no-progress", "--test-views", "none"] + args.clip_flags + epochs + flags
        start = time.time()
        run(command, out / "train.txt")
        timing.write_text(f"{time.time() - start:.1f}\n")
    return float(timing.read_text())


def score(out, name, flags, args, script="eval.py"):
    """eval.py (or a bench script taking --ckpt and --json) on out/last.pt, cached in out/score_<name>.json."""
    path = out / f"score_{name}.json"
    if not path.is_file():
        run([sys.executable, script, "--ckpt", str(out / "last.pt"), "--json", str(path)] + flags, out / f"{name}.txt")
    return json.loads(path.read_text())


def supervised(letter, flags, seed, args):
    out = args.out / letter / "supervised" / f"seed{seed}"
    row = {"seconds": train(out, args.data_flags + flags, seed, args.epochs, args)}
    result = score(out, "val", ["--no-progress"] + args.eval_common, args)
    row["top1"] = result["top1"]
    for pair, classes in PAIRS.items():
        if all(c in result["per_class"] for c in classes):
            row[pair] = [result["per_class"][c] for c in classes]
    if args.data == "synthetic" and letter not in WITHOUT_UNITS:
        fractions = score(out, "grounding", args.eval_common, args, script="bench/grounding.py")["fraction"]
        row["grounding"] = list(fractions.values())   # flag class, bare-arms class
    return row


def few_shot(letter, flags, seed, shots, args):
    out = args.out / letter / f"{shots}shot" / f"seed{seed}"
    train(out, args.data_flags + ["--shots", str(shots), "--eval-every", "0"] + flags, seed, args.few_shot_epochs,
          args)
    return score(out, "val", ["--shots", str(shots), "--no-progress"] + args.eval_common, args)["top1"]


def transfer(letter, flags, seed, fold, args):
    """(base top-1, novel top-1, harmonic mean) of one run trained on the base classes."""
    out = args.out / letter / f"base{fold}_{args.split_kind}" / f"seed{seed}"
    split = args.world_flags + ["--classes", "base", "--fold", str(fold), "--split-kind", args.split_kind]
    train(out, split + ["--eval-every", "0"] + flags, seed, args.transfer_epochs, args)
    base = score(out, "base", ["--no-progress"], args)["top1"]
    novel = score(out, "novel", ["--classes", "novel", "--no-progress"], args)["top1"]
    return base, novel, 2 * base * novel / (base + novel) if base + novel else 0.0


def mean_std(values, percent=True):
    if not values:
        return "–"
    scale = 100 if percent else 1
    values = [v * scale for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}" if percent else f"{statistics.mean(values):.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed and 1 epoch a run (a check that every cell runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (and few-shot draws)")
    parser.add_argument("--columns", nargs="+", choices=COLUMNS, default=list(COLUMNS), help="protocols to run")
    parser.add_argument("--epochs", type=int, help="epochs of a supervised run (default: train.py's for the dataset)")
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 4], help="K of the few-shot columns")
    parser.add_argument("--few-shot-epochs", type=int, help="epochs of a few-shot run (default: train.py's)")
    parser.add_argument("--folds", type=int, nargs="+", choices=(1, 2), default=[1],
                        help="base / novel folds, averaged (2: the halves swapped)")
    parser.add_argument("--split-kind", choices=("compositional", "random"), default="compositional",
                        help="base / novel split: compositional, or the random control")
    parser.add_argument("--transfer-epochs", type=int, default=10, help="epochs of a run on the base classes")
    parser.add_argument("--data", default="synthetic", help="train.py --data")
    parser.add_argument("--data-root", help="train.py --data-root of the supervised and few-shot runs (default: "
                        "train.py's)")
    parser.add_argument("--world-root", help="train.py --data-root of the base / novel runs (default: train.py's, "
                        "the synthetic world's folder)")
    parser.add_argument("--clip", help="train.py --clip of rows (a)-(e) (default: tiny-pretrained for the synthetic "
                        "set, else train.py's for the dataset)")
    parser.add_argument("--only", nargs="+", help="row letters to run, e.g. a d (default: all)")
    parser.add_argument("--out", default="runs/ablation", help="where the runs go (--quick: runs/ablation_quick)")
    args = parser.parse_args()
    if args.quick:
        args.seeds = args.seeds[:1]
        args.epochs = args.few_shot_epochs = args.transfer_epochs = 1
        args.out = args.out + "_quick" if args.out == "runs/ablation" else args.out
    args.out = Path(args.out).resolve()
    if args.data != "synthetic":   # the base / novel split and the random tiny CLIP are the synthetic world's
        args.columns = [column for column in args.columns if column != "transfer"]
    args.clip = args.clip or ("tiny-pretrained" if args.data == "synthetic" else None)
    args.clip_flags = ["--clip", args.clip] if args.clip else []
    args.data_flags = ["--data-root", str(Path(args.data_root).resolve())] if args.data_root else []
    args.world_flags = ["--data-root", str(Path(args.world_root).resolve())] if args.world_root else []
    args.eval_common = args.data_flags
    chosen = {name: flags for name, flags in CONFIGURATIONS.items()
              if (not args.only or name[1] in args.only) and (name[1] != "f" or args.data == "synthetic")}
    rows = {}
    for name, flags in chosen.items():
        letter, runs = name[1], []
        for seed in args.seeds:
            cells = {}
            if "supervised" in args.columns:
                cells.update(supervised(letter, flags, seed, args))
            if "few-shot" in args.columns:
                cells.update({f"{k}-shot": few_shot(letter, flags, seed, k, args) for k in args.shots})
            if "transfer" in args.columns:
                cells["transfer"] = [transfer(letter, flags, seed, fold, args) for fold in args.folds]
            runs.append(cells)
        rows[name] = runs
        print(f"{name}: done ({len(args.seeds)} seeds)", file=sys.stderr, flush=True)
    print_table(rows, args)


def print_table(rows, args):
    everywhere = lambda key: all(key in cells for runs in rows.values() for cells in runs)   # noqa: E731
    pairs = [pair for pair in PAIRS if everywhere(pair)]
    header = ["configuration"] + (["supervised top-1 %"] if "supervised" in args.columns else [])
    header += [f"{pair} %" for pair in pairs]
    header += [f"K={k} %" for k in args.shots if everywhere(f"{k}-shot")]
    transfer = everywhere("transfer")
    header += ["base %", "novel %", "HM %"] if transfer else []
    grounded = any("grounding" in cells for runs in rows.values() for cells in runs)
    header += ["flag grounded % (flag / bare arms)"] if grounded else []
    header += ["s / run"] if "supervised" in args.columns else []
    print(f"\n{len(args.seeds)} seed(s) ({', '.join(map(str, args.seeds))}), mean ± std; pairs: each class's top-1, "
          f"first / second" + (f"; base / novel: folds {args.folds}, {args.split_kind}" if transfer else "") + "\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, runs in rows.items():
        cells = [name]
        if "supervised" in args.columns:
            cells.append(mean_std([r["top1"] for r in runs]))
        cells += [" / ".join(mean_std([r[pair][k] for r in runs]) for k in (0, 1)) for pair in pairs]
        cells += [mean_std([r[f"{k}-shot"] for r in runs]) for k in args.shots if everywhere(f"{k}-shot")]
        if transfer:
            cells += [mean_std([fold[i] for r in runs for fold in r["transfer"]]) for i in range(3)]
        if grounded:
            cells.append(" / ".join(mean_std([r["grounding"][k] for r in runs if "grounding" in r]) for k in (0, 1)))
        if "supervised" in args.columns:
            cells.append(mean_std([r["seconds"] for r in runs], percent=False))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
