"""Do the semantic units ground? How often a unit ("flag") is among the k units of highest SU-selection weight for
some region token, over the val clips of the class that shows it and of the class that does not.

With a CLIP that knows the synthetic world (pretrain.py), the selection should pick "flag" on the regions of
*waving a flag on the beach* and not on those of *waving arms on the beach* (the same pose and scene, no flag): the
issue's target is >= 80% of flag clips and <= 20% of bare-arms clips. The weights are decoder.SUSelection's
(B, T, R+1, S), the ones `eval.py --video` averages to show a clip's units; token 0 of each frame is its global
feature, tokens 1..R its MRA regions, and only those count here. One view per clip (eval.py's 1x1: the middle
frames, centre crop).

    python bench/grounding.py --ckpt runs/synthetic/last.pt
    python bench/grounding.py --ckpt runs/synthetic/last.pt --unit ball --classes "bouncing a ball in the room"
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import data  # noqa: E402
import runtime  # noqa: E402
from model import load_checkpoint, model_from_checkpoint  # noqa: E402
from runtime import fail, one_line_errors  # noqa: E402

FLAG_PAIR = ("waving a flag on the beach", "waving arms on the beach")


@torch.no_grad()
def unit_in_top_regions(model, videos, unit_index, k=3):
    """videos (B, T, 3, S, S), normalised -> (B,) bool: the unit is among the k highest selection weights of at
    least one region token of one frame."""
    _, info = model(videos, return_attention=True)
    weights = info["su_attention"][:, :, 1:].float()                       # (B, T, R, S): regions, not the frame
    top = weights.topk(min(k, weights.shape[-1]), dim=-1).indices          # (B, T, R, k)
    return (top == unit_index).any(-1).flatten(1).any(1)                   # (B,)


def grounding(model, dataset, classes, unit="flag", k=3, batch_size=8, device="cpu"):
    """{class: fraction of its clips in `dataset` where `unit` is grounded (unit_in_top_regions)} and
    {class: clips}, for the classes named."""
    texts = [u.text for u in model.semantic_units.units]
    if unit not in texts:
        raise ValueError(f"--unit {unit!r}: not in the checkpoint's SU bank ({', '.join(texts)})")
    wanted = {dataset.class_names.index(name): name for name in classes if name in dataset.class_names}
    if missing := [name for name in classes if name not in dataset.class_names]:
        raise ValueError(f"--classes: {missing[0]!r} is not a class of the checkpoint's data")
    indices = [i for i, (_, label) in enumerate(dataset.samples) if label in wanted]
    hits, counts = dict.fromkeys(classes, 0), dict.fromkeys(classes, 0)
    model.eval()
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start:start + batch_size]]
        videos = torch.stack([video for video, _, _ in items])                   # (B, T, 3, S, S) uint8
        found = unit_in_top_regions(model, runtime.model_input(videos, device), texts.index(unit), k)   # (B,)
        for (_, label, _), hit in zip(items, found.tolist()):
            hits[wanted[label]] += hit
            counts[wanted[label]] += 1
    return {name: hits[name] / max(1, counts[name]) for name in classes}, counts


def main(argv=None):
    parser = runtime.argument_parser("bench/grounding.py", __doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a train.py checkpoint with SU selection (last.pt / best.pt)")
    parser.add_argument("--unit", default="flag", help="the semantic unit to look for")
    parser.add_argument("--classes", nargs="+", default=list(FLAG_PAIR),
                        help="classes whose val clips are measured (default: the flag class, then bare arms)")
    parser.add_argument("--k", type=int, default=3, help="units of highest selection weight per region token")
    parser.add_argument("--data-root", help="dataset folder (default: the checkpoint's)")
    parser.add_argument("--json", help="also write the result here (default: none)")
    args = parser.parse_args(argv)
    if args.k < 1:
        fail(f"--k {args.k}: at least 1")
    if not Path(args.ckpt).is_file():
        fail(f"--ckpt {args.ckpt}: no such file")
    ckpt = load_checkpoint(args.ckpt)
    trained = argparse.Namespace(**ckpt["args"])
    if trained.decoder_layers == 0 or getattr(trained, "queries", "units") != "units":
        fail(f"--ckpt {args.ckpt}: has no SU selection (--decoder-layers 0 or --queries learned)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with one_line_errors():
        model = model_from_checkpoint(ckpt, args.ckpt, device=device)
        dataset = data.build_dataset(trained.data, args.data_root or trained.data_root, "val",
                                     num_frames=trained.frames, size=trained.size, seed=trained.seed)
        fractions, counts = grounding(model, dataset, args.classes, args.unit, args.k, device=device)
    for name in args.classes:
        print(f"{name}: {args.unit!r} in the top-{args.k} units of some region on {fractions[name]:.3f} of "
              f"{counts[name]} val clips")
    if args.json:
        runtime.write_text_atomic(args.json, json.dumps({"unit": args.unit, "k": args.k, "fraction": fractions,
                                                         "clips": counts}, indent=2) + "\n")
    return fractions


if __name__ == "__main__":
    main()
