"""Evaluation entry point: the protocols behind the paper's numbers, for a checkpoint written by train.py.

In:  `--ckpt F` (train.py's last.pt / best.pt: weights, options, class names and SU bank) and a dataset.
Out: printed metrics (and `--json OUT`), per evaluation: top-1, top-5 and mean per-class accuracy, top-1 per class,
     the number of videos scored and the unreadable ones. An unreadable test video is never replaced: it is left
     out of every number and listed with its reason ("top-1 X over N of M videos, K unreadable"); `--strict`
     stops at the first one instead.

Protocols (DESIGN.md, "Protocols"):
- same label set as training: V = temporal x spatial views per video (`--views 4x3`; Kinetics' default), each
  scored alone; the softmax probabilities are averaged over the views (our reading of "multi-view averaging").
- zero-shot, when the dataset's class names differ from the checkpoint's: the model's label set and SU bank are
  swapped for the target's (ASU.set_class_names). UCF-101 / HMDB-51: mean (and std) over the three official test
  splits. Kinetics-600 (`--data k600`: a Kinetics-400-style layout with 600 classes): the three published splits
  of 160 of the 220 classes new to Kinetics-600 (data.k600_zero_shot_splits, the files in labels/), each
  evaluated as a 160-way task on its own videos, reported as mean +- std; `--k600-new-classes FILE` draws random
  subsets of another list instead.
- few-shot (`--shots K`): a checkpoint trained with `train.py --shots K`, evaluated on split-1 test.
- base-to-novel on the synthetic world (`--classes base|novel`, `--fold`, `--split-kind`; default: the
  checkpoint's): a checkpoint trained with `train.py --classes base` scored on the val clips of the base classes,
  or zero-shot on those of the novel classes with the novel class names only.
- one video (`--video clip.mp4`): the top-5 classes and the semantic units the video attended to most (the SU
  selection weights, averaged over frames and visual tokens); `--explain out.png` draws, for each of those units,
  the frames the model saw with the window (an MRA region, or the whole frame for the global token) whose selection
  gave the unit most weight in each frame.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import data
import pictures
import runtime
import semantic_units
import synthetic
from model import check_size_for_patch, load_checkpoint, model_from_checkpoint
from mra import parse_grids, region_windows
from runtime import DATASET_DEFAULTS, DATASETS, fail, one_line_errors, rank_and_world


def build_parser():
    p = runtime.argument_parser("eval.py", "Evaluate an ASU checkpoint written by train.py.")
    p.add_argument("--ckpt", required=True, help="checkpoint written by train.py (last.pt or best.pt)")
    p.add_argument("--video", default=None,
                   help="predict one video: top-5 classes and its most attended SUs (default: none)")
    p.add_argument("--data", default=None, choices=DATASETS + ("k600",),
                   help="dataset to evaluate on (default: the checkpoint's)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the checkpoint's, or data/<data>)")
    p.add_argument("--split", type=int, default=None, choices=(1, 2, 3),
                   help="UCF-101 / HMDB-51 test split (default: the checkpoint's; all three for zero-shot)")
    p.add_argument("--shots", type=int, default=None,
                   help="few-shot protocol: the checkpoint must come from train.py --shots K; split-1 test "
                   "(default: none)")
    p.add_argument("--classes", default=None, choices=("all", "base", "novel"),
                   help="the synthetic world's base or novel classes (zero-shot on novel: only the novel names are "
                        "scored), or all classes of the data root (default: the checkpoint's)")
    p.add_argument("--fold", type=int, default=None, choices=(1, 2),
                   help="with --classes base/novel: which half is base (default: the checkpoint's, else 1)")
    p.add_argument("--split-kind", default=None, choices=synthetic.SPLIT_KINDS,
                   help="with --classes base/novel: compositional or random (default: the checkpoint's, else "
                        "compositional)")
    p.add_argument("--k600-new-classes", default=None,
                   help="file of Kinetics-600 classes, one per line, to draw random class subsets from instead of "
                   "the three published zero-shot splits (default: none, the published splits in labels/)")
    p.add_argument("--k600-subsets", type=int, default=3, help="random class subsets drawn from --k600-new-classes")
    p.add_argument("--k600-subset-size", type=int, default=160, help="classes per subset of --k600-new-classes")
    p.add_argument("--views", default=None,
                   help="temporal x spatial test views, e.g. 4x3 (default per dataset: "
                   + ", ".join(f"{name} {DATASET_DEFAULTS[name]['views']}" for name in DATASETS) + ")")
    p.add_argument("--frames", type=int, default=None, help="frames per view (default: the checkpoint's)")
    p.add_argument("--size", type=int, default=None, help="input size in pixels (default: the checkpoint's)")
    p.add_argument("--descriptions", default=None,
                   help="JSON of class descriptions for the target's SUs in zero-shot (default: none)")
    p.add_argument("--top-units", type=int, default=5, help="SUs printed with --video")
    p.add_argument("--explain", default=None,
                   help="with --video: a PNG of the frames with the windows that selected each top SU (default: none)")
    p.add_argument("--batch-size", type=int, default=8, help="videos per forward pass and process")
    p.add_argument("--workers", type=int, default=None,
                   help="data-loading processes per process (default on CUDA: the machine's cores / GPUs in use - 1, "
                        "at most 16; on the CPU: cores / 4)")
    p.add_argument("--device", default=None, choices=("cuda", "cpu"), help="default: cuda when present")
    p.add_argument("--gpus", type=int, default=1,
                   help="processes to spawn (GPUs; CPU processes with --device cpu); ignored under torchrun")
    p.add_argument("--amp", default=None, choices=("bf16", "fp16", "off"),
                   help="mixed precision (default: on CUDA bf16 where the GPU has it, else fp16; on the CPU off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the class subsets of --k600-new-classes")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable test video instead of leaving it out and listing it")
    p.add_argument("--cache-dir", default=str(Path(__file__).resolve().parent / ".cache" / "text"),
                   help="cache of class and SU text embeddings")
    p.add_argument("--json", default=None, help="also write the results to this JSON file (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p


# The ranges of the options (runtime.check_values; with those train.py shares, runtime.COMMON_LIMITS)
LIMITS = dict(runtime.COMMON_LIMITS, batch_size=(1, None), top_units=(1, None), shots=(1, None),
              k600_subsets=(1, None), k600_subset_size=(1, None))


def parse_args(argv=None):
    """The options, each checked before any work (outputs included); one line and exit 2 for a bad one."""
    args = build_parser().parse_args(argv)
    runtime.check_values(args, LIMITS)
    if not Path(args.ckpt).is_file():
        fail(f"--ckpt {args.ckpt}: no such file")
    if args.json is not None:
        runtime.check_out_file(args.json, "--json")
    ckpt = load_checkpoint(args.ckpt, mmap=True)
    check_model_input(args, ckpt)
    protocol_options(args, argparse.Namespace(**ckpt["args"]), args.data or ckpt["args"]["data"])
    if args.explain is not None:
        check_explain(args, ckpt["args"])
    for flag in ("video", "descriptions", "k600_new_classes"):
        value = getattr(args, flag)
        if value and not Path(value).is_file():
            fail(f"--{flag.replace('_', '-')} {value}: no such file")
    if args.data is not None and args.data != "synthetic" and args.data_root is not None \
            and not Path(args.data_root).is_dir():
        fail(f"--data-root {args.data_root}: no such folder")
    if args.video:
        args.gpus = 1   # one video is one forward pass: one process, one printout
    runtime.resolve_device(args)
    runtime.resolve_amp(args)
    if args.workers is None:   # shared by the processes of one machine (torchrun: LOCAL_WORLD_SIZE of them)
        args.workers = runtime.default_workers(args.device, int(os.environ.get("LOCAL_WORLD_SIZE", args.gpus)))
    return args


def check_model_input(args, ckpt):
    """--frames and --size that the checkpoint's model can take: frames its time embeddings hold, a size of whole
    patches that hold its MRA grids (what train.py checks of its own options)."""
    state, trained = ckpt["model"], ckpt["args"]
    held = min((t.shape[0] for key, t in state.items() if key.endswith("time_embedding")), default=None)
    if args.frames is not None and held is not None and args.frames > held:
        fail(f"--frames {args.frames}: the model of {args.ckpt} holds at most {held} frames")
    patch = state.get("clip.visual.conv1.weight")
    if args.size is not None and patch is not None:
        grids = parse_grids(trained["mra_grids"]) if trained["mra_layers"] else ()
        with one_line_errors():
            check_size_for_patch(args.size, patch.shape[-1], grids)


def check_explain(args, trained):
    """--explain needs one video, a PNG name and a model that selects SUs."""
    if not args.video:
        fail(f"--explain {args.explain}: explains one video, add --video FILE")
    if not args.explain.lower().endswith(".png"):
        fail(f"--explain {args.explain}: a .png file")
    if not trained["decoder_layers"] or trained.get("queries", "units") != "units":
        fail(f"--explain: the model of {args.ckpt} selects no semantic units (trained with --decoder-layers 0 or "
             "--queries learned)")
    runtime.check_out_file(args.explain, "--explain")


def target_units(args, class_names):
    """SU bank of a zero-shot label set: extracted from its class names (and --descriptions)."""
    descriptions = None
    if args.descriptions:
        with one_line_errors("--descriptions: "):
            descriptions = semantic_units.load_descriptions(args.descriptions)
    return semantic_units.extract_semantic_units(class_names, descriptions)


def test_set(data_args, views, fold=1, missing_hint=""):
    """The test split ("val") of the dataset in data_args; bad input ends in one line (a missing file's with
    `missing_hint` appended). Unreadable videos are left out, not replaced; --strict is applied when they are
    met (runtime.predictions), as an error raised inside a DataLoader worker would come back as a traceback."""
    with one_line_errors():
        try:
            return data.build_dataset(data_args.data, data_args.data_root, "val", num_frames=data_args.frames,
                                      size=data_args.size, views=views, seed=data_args.seed, fold=fold,
                                      classes=data_args.classes)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{str(e).splitlines()[0]}{missing_hint}") from None


def summarize(name, runs):
    """The results of a protocol: one evaluation's fields at the top level, or the mean and std over several
    (splits or class subsets); `runs` lists every evaluation either way."""
    if len(runs) == 1:
        return dict(protocol=name, **runs[0], runs=runs)
    top1 = np.array([run["top1"] for run in runs])
    return {"protocol": name, "runs": runs, "top1_mean": float(top1.mean()), "top1_std": float(top1.std()),
            "top5_mean": float(np.mean([run["top5"] for run in runs])),
            "mean_class_mean": float(np.mean([run["mean_class"] for run in runs]))}


UNREADABLE_SHOWN = 5   # unreadable videos printed under an evaluation's line; --json lists them all


def evaluate(model, dataset, args, device, **info):
    """Score one test set: the metrics over the readable videos, how many they were, the unreadable ones."""
    result = dict(info, **runtime.score_test_set(model, dataset, device, args.amp, args.batch_size, args.workers,
                                                 progress=not args.no_progress, strict=args.strict))
    unreadable = result["unreadable"]
    if rank_and_world()[0] == 0:
        where = " ".join(f"{k} {v}" for k, v in info.items())
        print(f"{where}: top-1 {result['top1']:.4f} over {result['videos']} of {len(dataset)} videos, "
              f"{len(unreadable)} unreadable; top-5 {result['top5']:.4f}, mean-class "
              f"{result['mean_class']:.4f}", flush=True)
        for item in unreadable[:UNREADABLE_SHOWN]:
            print(f"  left out: {item['path']}: {item['reason']}")
        if len(unreadable) > UNREADABLE_SHOWN:
            print(f"  ... and {len(unreadable) - UNREADABLE_SHOWN} more (--json lists them all)")
    return result


def k600_splits(args, class_names, root):
    """The class lists of the K600 protocol: the published splits, or random subsets of --k600-new-classes.
    -> (lists of class names, "split" or "subset")."""
    known = set(class_names)
    if not args.k600_new_classes:
        splits = data.k600_zero_shot_splits()
        for number, split in enumerate(splits, 1):
            missing = [name for name in split if name not in known]
            if missing:
                fail(f"--data-root {root}: {len(missing)} classes of Kinetics-600 zero-shot split {number} are not "
                     f"among its classes (e.g. {missing[0]!r}); --k600-new-classes takes another list")
        return splits, "split"
    lines = Path(args.k600_new_classes).read_text().splitlines()
    new_names = [line.strip() for line in lines if line.strip()]
    for number, name in enumerate(lines, 1):
        if name.strip() and name.strip() not in known:
            fail(f"{args.k600_new_classes} line {number}: {name.strip()!r} is not a class of {root}")
    if len(new_names) < args.k600_subset_size:
        fail(f"--k600-subset-size {args.k600_subset_size}: only {len(new_names)} new classes")
    rng = np.random.default_rng(args.seed)
    return [[new_names[i] for i in sorted(rng.choice(len(new_names), args.k600_subset_size, replace=False))]
            for _ in range(args.k600_subsets)], "subset"


def k600_protocol(model, args, data_args, views, device, ckpt):
    """Zero-shot on Kinetics-600 classes new to Kinetics-400: each split (or subset) a task of its own classes on
    their videos; mean +- std over them."""
    full = test_set(data_args, views)
    splits, kind = k600_splits(args, full.class_names, data_args.data_root)
    runs = []
    for number, split in enumerate(splits, 1):
        trained_on = set(split) & set(ckpt["class_names"])
        if trained_on and rank_and_world()[0] == 0:
            print(f"note: {len(trained_on)} classes of {kind} {number} are among the checkpoint's training classes "
                  f"(e.g. {sorted(trained_on)[0]!r}): not zero-shot for them", file=sys.stderr)
        position = {name: i for i, name in enumerate(split)}
        samples = [(path, position[full.class_names[label]]) for path, label in full.samples
                   if full.class_names[label] in position]
        if not samples:
            fail(f"--data-root {data_args.data_root}: no test video of the classes of K600 {kind} {number}")
        dataset = data.VideoDataset(samples, split, num_frames=data_args.frames, size=data_args.size, train=False,
                                    views=views, seed=data_args.seed)
        model.set_class_names(split, target_units(args, split), progress=not args.no_progress)
        runs.append(evaluate(model, dataset, args, device, data="k600", **{kind: number},
                             views=f"{views[0]}x{views[1]}"))
    return summarize("zero-shot k600", runs)


def predict_video(model, args, device, ckpt):
    """Top-5 classes of one video and the SUs its frames attended to most."""
    dataset = data.VideoDataset([(str(Path(args.video).resolve()), 0)], ckpt["class_names"],
                                num_frames=args.frames, size=args.size, train=False, strict=True)
    try:
        video = dataset[0][0]                                                    # (T, 3, S, S)
    except Exception as e:  # an unreadable file ends with one line naming it
        fail(f"--video {args.video}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    model.eval()
    with torch.no_grad(), runtime.autocast(device, args.amp):
        logits, info = model(runtime.model_input(video[None], device), return_attention=True)   # (1, C)
    probs = logits.float().softmax(-1)[0]                                        # (C,)
    top = probs.topk(min(5, len(probs)))
    classes = [{"class": ckpt["class_names"][i], "probability": p} for p, i in zip(top.values.tolist(),
                                                                                     top.indices.tolist())]
    print(f"{args.video}: top-5 classes")
    for c in classes:
        print(f"  {c['probability']:.3f}  {c['class']}")
    units = []
    if info["su_attention"] is None:
        print("  (this model has no SU selection: trained with --decoder-layers 0 or --queries learned)")
    else:
        weights = info["su_attention"][0].float().mean(dim=(0, 1))               # (S,) over frames and tokens
        top = weights.topk(min(args.top_units, len(weights)))
        units = [{"unit": model.semantic_units.units[i].text, "kind": model.semantic_units.units[i].kind,
                  "weight": w} for w, i in zip(top.values.tolist(), top.indices.tolist())]
        print("semantic units attended to most")
        for u in units:
            print(f"  {u['weight']:.3f}  {u['unit']} ({u['kind']})")
        if args.explain:
            title = (f"{Path(args.video).name}: {classes[0]['class']} {classes[0]['probability']:.2f}. Box: where a "
                     "unit was chosen most (yellow: a region, blue: the whole frame)")
            pictures.write_png(args.explain, explain_picture(model, video, info["su_attention"][0].float(),
                                                             top.indices.tolist(), units, title))
            print(f"wrote {args.explain}: each row a unit, each box the window that chose it most in that frame")
    return {"video": args.video, "classes": classes, "semantic_units": units}


def explain_picture(model, video, attention, unit_indices, units, title):
    """video (T, 3, S, S) uint8, attention (T, R+1, S_units) -> a sheet (pictures.sheet): a row of the T frames
    per unit, each frame boxed where its selection gave the unit most weight (the whole frame for the global
    token, an MRA window for a region token; no box where no token of the frame kept the unit in its top-k)."""
    frames = video.permute(0, 2, 3, 1).numpy()                                   # (T, S, S, 3)
    patch = model.visual.visual.patch_size
    grid_h, grid_w = model.visual.visual.grid_size(*frames.shape[1:3])
    windows = region_windows(grid_h, grid_w, model.visual.grids) if model.visual.layers else []
    boxes = [(0, 0, grid_w * patch, grid_h * patch)] + [(c0 * patch, r0 * patch, c1 * patch, r1 * patch)
                                                        for r0, r1, c0, c1 in windows]   # token -> (x0, y0, x1, y1)
    rows, captions = [], []
    for rank, (index, unit) in enumerate(zip(unit_indices, units), 1):
        weights, tokens = attention[:, :, index].max(dim=1)                      # (T,), (T,): the best token
        row = frames.copy()
        for t in range(len(row)):
            if weights[t] > 0:
                pictures.draw_box(row[t], boxes[tokens[t]], (255, 230, 0) if tokens[t] else (0, 220, 255))
        rows.append(row)
        captions.append(f"{rank}. {unit['unit']} ({unit['kind']}) {unit['weight']:.3f}")
    return pictures.sheet(rows, captions, title)


def eval_worker(args, device):
    results = run_protocol(args, device)
    if rank_and_world()[0] == 0:
        runs = results.get("runs", ())
        if len(runs) > 1:
            print(f"{results['protocol']}: top-1 {results['top1_mean']:.4f} +- {results['top1_std']:.4f} over the "
                  f"{len(runs)} {'splits' if 'split' in runs[0] else 'subsets'}")
        if args.json:
            runtime.write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    return results


def protocol_options(args, trained, name):
    """--classes, --fold and --split-kind, each the checkpoint's where not given (checked: a split of the synthetic
    world only, fold and kind only with a split)."""
    classes = args.classes or getattr(trained, "classes", "all")
    fold = args.fold or getattr(trained, "fold", 1)
    kind = args.split_kind or getattr(trained, "split_kind", "compositional")
    if classes != "all" and name != "synthetic":
        fail(f"--classes {classes}: the base / novel split is of the synthetic world (--data synthetic)")
    if classes == "all" and (args.fold or args.split_kind):
        fail(f"--{'fold' if args.fold else 'split-kind'}: has no effect with --classes all (no base / novel split)")
    return classes, fold, kind


def run_protocol(args, device):
    ckpt = load_checkpoint(args.ckpt)
    with one_line_errors():
        model = model_from_checkpoint(ckpt, args.ckpt, args.cache_dir, progress=not args.no_progress, device=device)
    trained = argparse.Namespace(**ckpt["args"])
    args.frames = args.frames or trained.frames
    args.size = args.size or trained.size
    if args.video:
        return predict_video(model, args, device, ckpt)

    name = args.data or trained.data
    same_data = name == trained.data
    classes, fold, kind = protocol_options(args, trained, name)
    world = classes != "all"   # (the world's root, and a checkpoint of the world's evaluated on it)
    same_root = same_data and world == (getattr(trained, "classes", "all") != "all")
    default_root = synthetic.WORLD_ROOT if world else str(Path("data") / name)
    data_args = argparse.Namespace(
        data="k400" if name == "k600" else name,
        data_root=args.data_root or (trained.data_root if same_root else default_root),
        frames=args.frames, size=args.size, seed=trained.seed, shots=None, split=1,
        classes=synthetic.protocol_class_names(classes, fold, kind))
    if data_args.data != "synthetic" and not Path(data_args.data_root).is_dir():
        fail(f"--data-root {data_args.data_root}: no such folder")
    views = runtime.parse_views(args.views or DATASET_DEFAULTS[data_args.data]["views"])
    view_text = f"{views[0]}x{views[1]}"
    if name == "k600":
        return k600_protocol(model, args, data_args, views, device, ckpt)

    if args.shots is not None:
        if trained.shots != args.shots:
            fail(f"--shots {args.shots}: checkpoint {args.ckpt} was trained with --shots {trained.shots}")
        folds = [1]
    elif args.split:
        folds = [args.split]
    else:
        folds = [trained.split if same_data else 1]
    datasets = [test_set(data_args, views, fold) for fold in folds]
    zero_shot = list(datasets[0].class_names) != list(ckpt["class_names"])
    if zero_shot:
        if name in ("ucf101", "hmdb51") and args.split is None:  # the zero-shot protocol: all three test splits
            hint = "; zero-shot averages the three test splits: add --split 1 to evaluate split 1 alone"
            datasets += [test_set(data_args, views, fold, missing_hint=hint) for fold in (2, 3)]
            folds = [1, 2, 3]
        model.set_class_names(datasets[0].class_names, target_units(args, datasets[0].class_names),
                              progress=not args.no_progress)
    protocol = ("zero-shot " if zero_shot else f"{args.shots}-shot " if args.shots else "") + name
    protocol += f" {classes} (fold {fold}, {kind})" if world else ""
    official_splits = name in ("ucf101", "hmdb51")
    runs = [evaluate(model, dataset, args, device, data=name, **({"split": fold} if official_splits else {}),
                     views=view_text) for fold, dataset in zip(folds, datasets)]
    return summarize(protocol, runs)


def main(argv=None):
    """Parse argv (default sys.argv[1:]), evaluate, print; return the results dict (None on spawned ranks)."""
    return runtime.launch(eval_worker, parse_args(argv))


if __name__ == "__main__":
    main()
