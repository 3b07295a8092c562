"""Quality of the rule-based semantic units (semantic_units.py) against handwritten gold sets.

Prints micro precision and recall on the gold set of tests/test_semantic_units.py (44 classes drawn at random from
Kinetics-400, UCF-101 and HMDB-51) and on its held-out set (20 action names from elsewhere), the misses and the
extra units per class, and the per-kind SU bank sizes of the three datasets (when ../shared/data/labels exists).

    python bench/su_quality.py [--details]
"""
import argparse
import importlib.util
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import semantic_units as su  # noqa: E402

LABELS = REPO.parent / "shared" / "data" / "labels"


def load_gold():
    """The gold sets live in the test file, so the test and this script score the same thing."""
    spec = importlib.util.spec_from_file_location("test_semantic_units", REPO / "tests" / "test_semantic_units.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="list every class, not only those with errors")
    args = parser.parse_args()
    gold = load_gold()
    for title, gold_set in (("gold (Kinetics-400, UCF-101, HMDB-51)", gold.GOLD), ("held-out (other sources)",
                                                                                  gold.HELD_OUT)):
        precision, recall, details = gold.score_gold(gold_set)
        print(f"{title}: {len(gold_set)} classes  precision {precision:.3f}  recall {recall:.3f}")
        for name, wrong, missed in details:
            if wrong or missed or args.details:
                print(f"  {name:32s} extra: {', '.join(wrong) or '-'}  |  missed: {', '.join(missed) or '-'}")
    if not LABELS.is_dir():
        print(f"label lists not found under {LABELS}: dataset bank sizes skipped")
        return
    print("\nSU bank per dataset (classes, units per kind, mean units per class, seconds):")
    for dataset in ("kinetics400", "ucf101", "hmdb51"):
        names = (LABELS / f"{dataset}.txt").read_text(encoding="utf-8").splitlines()
        start = time.perf_counter()
        bank = su.extract_semantic_units(names)
        seconds = time.perf_counter() - start
        sizes = "  ".join(f"{kind} {sum(u.kind == kind for u in bank.units):4d}" for kind in su.KINDS)
        mean = sum(map(len, bank.by_class)) / len(names)
        print(f"  {dataset:12s} {len(names):4d} classes  {len(bank.units):4d} units  {sizes}  "
              f"{mean:.1f} per class  {seconds:.2f} s")


if __name__ == "__main__":
    main()
