"""What each part of ASU adds: the paper's ablation, as one command.

Trains, with the same budget and several seeds, (a) the CLIP mean-pooling baseline, (b) the decoder with learned
queries instead of SU selection, (c) SU selection and decoder without MRA, (d) full ASU, (e) full ASU with all SUs
kept (--su-topk 0) and (f) full ASU without the decoder's temporal path (--temporal none); each run's last
checkpoint is scored by eval.py on the validation split. Prints a markdown table: overall top-1, mean per-class
top-1, the time-reversed and fine-object pairs of the embedded default (sitting down / standing up, waving arms /
waving a flag; other datasets have none), mean +- std over seeds, and seconds of training per run.

    python bench/ablation.py                       # the embedded default, 3 seeds (about 70 minutes on 2 cores)
    python bench/ablation.py --quick               # 1 seed, 3 epochs: checks that every configuration runs
    python bench/ablation.py --data k400 --data-root data/k400 --clip ViT-B/16 --seeds 0 1 2

Runs go to --out/<configuration>/seed<k>. A run whose last.pt and train_seconds.txt exist is not trained again,
whatever the options now (delete its folder, or choose another --out, to train it again); its scores.json is
reused too, and written when missing (delete the scores.json files to score the same checkpoints again, say after
a change of eval.py's views).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATIONS = {   # name: train.py flags
    "(a) mean-pooling baseline": ["--decoder-layers", "0", "--mra-layers", "0"],
    "(b) learned queries, no SUs": ["--queries", "learned"],
    "(c) SUs + decoder, no MRA": ["--mra-layers", "0"],
    "(d) ASU": [],
    "(e) ASU, all SUs (--su-topk 0)": ["--su-topk", "0"],
    "(f) ASU, no temporal path": ["--temporal", "none"],
}
PAIRS = {"time-reversed pair": ("sitting down on a chair in the room", "standing up from a chair in the room"),
         "fine-object pair": ("waving arms on the beach", "waving a flag on the beach")}


def run(command, log):
    with open(log, "w") as file:
        result = subprocess.run(command, cwd=ROOT, stdout=file, stderr=subprocess.STDOUT)
    if result.returncode:
        sys.exit(f"bench/ablation.py: {' '.join(command)} failed (exit {result.returncode}); see {log}")


def train_and_score(name, flags, seed, args):
    out = Path(args.out).resolve() / name.split()[0].strip("()") / f"seed{seed}"
    scores, timing = out / "scores.json", out / "train_seconds.txt"
    if not ((out / "last.pt").is_file() and timing.is_file()):
        out.mkdir(parents=True, exist_ok=True)
        scores.unlink(missing_ok=True)
        timing.unlink(missing_ok=True)   # written last: a run cut short is trained again
        command = [sys.executable, "train.py", "--data", args.data, "--out", str(out), "--overwrite",
                   "--seed", str(seed), "--no-progress", "--test-views", "none"] + flags + args.common
        start = time.time()
        run(command, out / "train.txt")
        timing.write_text(f"{time.time() - start:.1f}\n")
    if not scores.is_file():
        run([sys.executable, "eval.py", "--ckpt", str(out / "last.pt"), "--json", str(scores), "--no-progress"]
            + args.eval_common, out / "eval.txt")
    result = json.loads(scores.read_text())
    per_class = result["runs"][0]["per_class"] if "runs" in result else result["per_class"]
    row = {"top1": result["top1"], "mean_class": result["mean_class"], "seconds": float(timing.read_text())}
    for pair, classes in PAIRS.items():
        if all(c in per_class for c in classes):
            row[pair] = [per_class[c] for c in classes]
    return row


def mean_std(values, percent=True):
    scale = 100 if percent else 1
    values = [v * scale for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}" if percent else f"{statistics.mean(values):.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed and 3 epochs (a check that all runs work)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: train.py's for the dataset)")
    parser.add_argument("--data", default="synthetic", help="train.py --data")
    parser.add_argument("--data-root", help="train.py --data-root (default: train.py's)")
    parser.add_argument("--clip", help="train.py --clip (default: train.py's for the dataset)")
    parser.add_argument("--shots", type=int, help="train.py --shots (few-shot runs)")
    parser.add_argument("--only", nargs="+", help="configuration letters to run, e.g. a d (default: all)")
    parser.add_argument("--out", default="runs/ablation", help="where the runs go (--quick: runs/ablation_quick)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs = args.seeds[:1], args.epochs or 3
        args.out = args.out + "_quick" if args.out == "runs/ablation" else args.out
    args.common, args.eval_common = [], []
    data_root = args.data_root and str(Path(args.data_root).resolve())
    for flag, value in (("--epochs", args.epochs), ("--data-root", data_root), ("--clip", args.clip),
                        ("--shots", args.shots)):
        if value is not None:
            args.common += [flag, str(value)]
    if args.data_root:
        args.eval_common += ["--data-root", data_root]
    chosen = {name: flags for name, flags in CONFIGURATIONS.items()
              if not args.only or name.split()[0].strip("()") in args.only}
    rows = {}
    for name, flags in chosen.items():
        rows[name] = [train_and_score(name, flags, seed, args) for seed in args.seeds]
        print(f"{name}: done ({len(args.seeds)} seeds)", file=sys.stderr, flush=True)
    pairs = [pair for pair in PAIRS if all(pair in row for runs in rows.values() for row in runs)]
    header = ["configuration", "top-1 %", "mean class %"] + [f"{pair} %" for pair in pairs] + ["s / run"]
    print(f"\n{len(args.seeds)} seed(s) ({', '.join(map(str, args.seeds))}), mean ± std; pairs: each class's "
          f"top-1, first / second\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, runs in rows.items():
        cells = [name, mean_std([r["top1"] for r in runs]), mean_std([r["mean_class"] for r in runs])]
        cells += [" / ".join(mean_std([r[pair][k] for r in runs]) for k in (0, 1)) for pair in pairs]
        cells.append(mean_std([r["seconds"] for r in runs], percent=False))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
