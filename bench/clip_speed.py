"""Speed and peak memory of clip_vit's encode_image against OpenAI's reference model.py (not a test: prints ratios).

ViT-B/16, batch 8 x 224 px, CPU, inference (no grad), the same random weights in both models. Targets (issue 2):
ours fp32 / reference fp32 <= 1.0 and ours under bf16 autocast / reference fp32 <= 0.4.

Timing: the three configurations run interleaved in one process (reference, ours fp32, ours bf16, again and again)
and each keeps its median, so a machine whose load changes over time still compares like with like.
Memory: each configuration runs once more in a fresh subprocess, which resets its high-water mark (VmHWM, through
/proc/self/clear_refs) after building the model, so the figure is the forward pass's own peak above that.

    python bench/clip_speed.py [--batch 8] [--repeats 3]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import clip_vit  # noqa: E402
from test_clip_vit import load_reference  # noqa: E402

CONFIGS = ["reference fp32", "ours fp32", "ours bf16"]


def build_models():
    torch.manual_seed(0)
    reference = load_reference("model").CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12).float().eval()
    return reference, clip_vit.build_clip(reference.state_dict())


def forward(config, reference, ours, images):
    model = reference if config.startswith("reference") else ours
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.endswith("bf16")):
        model.encode_image(images)


def status_mib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024


def measure_memory(config, batch):
    """In the child: peak resident memory of one forward, above the resident size with the model built."""
    reference, ours = build_models()
    if config.startswith("reference"):
        ours = None
    else:
        reference = None
    images = torch.randn(batch, 3, 224, 224)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    before = status_mib("VmRSS")
    forward(config, reference, ours, images)
    print(json.dumps({"peak_mib": status_mib("VmHWM") - before}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="images per forward (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per configuration (default 3)")
    parser.add_argument("--memory-of", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        return measure_memory(args.memory_of, args.batch)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    reference, ours = build_models()
    images = torch.randn(args.batch, 3, 224, 224)
    times = {config: [] for config in CONFIGS}
    for config in CONFIGS:
        forward(config, reference, ours, images)  # warm-up
    for _ in range(args.repeats):
        for config in CONFIGS:
            start = time.perf_counter()
            forward(config, reference, ours, images)
            times[config].append(time.perf_counter() - start)
    del reference, ours
    seconds = {config: statistics.median(t) for config, t in times.items()}
    for config in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--memory-of", config, "--batch", str(args.batch)],
                             capture_output=True, text=True, check=True)
        peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
        print(f"{config:15s} {seconds[config]:7.3f} s / forward of {args.batch}   forward peak memory {peak:6.0f} MiB")
    ref = seconds["reference fp32"]
    print(f"ours fp32 / reference fp32: {seconds['ours fp32'] / ref:.2f}  (target <= 1.0)")
    print(f"ours bf16 / reference fp32: {seconds['ours bf16'] / ref:.2f}  (target <= 0.4; needs a CPU with native "
          f"bf16 matrix units such as AVX512-BF16 or AMX, else bf16 GEMMs are emulated and slower than fp32)")


if __name__ == "__main__":
    main()
