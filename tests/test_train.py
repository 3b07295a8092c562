"""train.py: N DDP processes train exactly like one process with N times the batch (and like gradient
accumulation); a run resumed after --stop-after, after SIGKILL mid-epoch, or after dying inside a checkpoint write
ends with the same parameters and log as an uninterrupted run; AMP trains; bad input ends with one line.

Everything runs on the CPU with the tiny CLIP, 2 frames of 64 px and a 4-class synthetic set of 16 + 4 clips."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


def tiny_args(workdir, out, *extra):
    return ["--data", "synthetic", "--data-root", str(workdir / "synthetic"), "--frames", "2", "--size", "64",
            "--batch-size", "4", "--lr", "1e-3", "--workers", "0", "--no-progress", "--device", "cpu",
            "--cache-dir", str(workdir / "cache"), "--out", str(out), *extra]


def parameters(out, name="last.pt"):
    return torch.load(Path(out) / name, map_location="cpu", weights_only=True)["model"]


def assert_same_parameters(a, b, atol=0.0):
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f"parameters differ by {worst}"


def read_log(out):
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def assert_same_log(a, b):
    """Equal records, apart from wall-clock seconds; the losses may differ in float64 summation order only."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if key != "seconds":
                assert x[key] == pytest.approx(y[key], rel=1e-9, abs=1e-12), key


@pytest.fixture(scope="module")
def reference(workdir):
    """An uninterrupted run of EPOCHS epochs, the yardstick of the resume tests."""
    out = workdir / "reference"
    log = train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off"))
    assert [r["epoch"] for r in log] == list(range(1, EPOCHS + 1))
    return out


def test_epoch_indices_partition_global_batches():
    """Rank r's k-th micro-batch lies in the k-th block of one global batch, whatever the split into processes."""
    n, global_batch, per_process = 23, 8, 2
    one = train.epoch_indices(n, 0, 3, 0, 1, global_batch)
    assert len(one) == (n // global_batch) * global_batch and len(set(one)) == len(one)
    for world in (2, 4):
        ranks = [train.epoch_indices(n, 0, 3, r, world, global_batch) for r in range(world)]
        for k in range(len(ranks[0]) // per_process):
            block = {i for r in ranks for i in r[k * per_process:(k + 1) * per_process]}
            assert block == set(one[k * per_process * world:(k + 1) * per_process * world])
    assert train.epoch_indices(n, 0, 4, 0, 1, global_batch) != one  # a new order each epoch
    assert train.epoch_indices(n, 0, 3, 0, 1, global_batch) == one  # ... that depends on (seed, epoch) only


# lr 1e-4 in the DDP tests: the key part of attention's in_proj_bias has an exactly zero true gradient (softmax
# ignores a shift shared by all keys), and Adam turns the float noise in it (which depends on the summation order,
# so on the batch split) into steps of order lr; at 1e-4 that stays inside the 1e-5 tolerance over the 4 steps.
DDP_ARGS = ["--epochs", "1", "--lr", "1e-4", "--amp", "off"]


@pytest.fixture(scope="module")
def one_process(workdir):
    """One process with the whole batch of 4: the yardstick of the DDP tests."""
    out = workdir / "one"
    return out, train.main(tiny_args(workdir, out, *DDP_ARGS, "--per-gpu-batch", "4"))


def test_ddp_equals_one_process_and_accumulation(workdir, one_process):
    """2 gloo processes x batch 2 == 1 process x batch 4 == 1 process x 2 accumulated batches of 2."""
    one_out, one = one_process
    two = train.main(tiny_args(workdir, workdir / "two", *DDP_ARGS, "--per-gpu-batch", "2", "--gpus", "2"))
    acc = train.main(tiny_args(workdir, workdir / "acc", *DDP_ARGS, "--per-gpu-batch", "2"))
    assert json.loads((workdir / "two" / "args.json").read_text())["processes"] == 2
    assert json.loads((workdir / "acc" / "args.json").read_text())["accumulation"] == 2
    reference = parameters(one_out)
    assert_same_parameters(reference, parameters(workdir / "two"), atol=1e-5)
    assert_same_parameters(reference, parameters(workdir / "acc"), atol=1e-5)
    for log in (two, acc):
        assert log[0]["train_loss"] == pytest.approx(one[0]["train_loss"], abs=1e-5)
        assert log[0]["val_top1"] == one[0]["val_top1"]
    # and training moved the weights (the comparison above is not between untouched models)
    import clip_vit
    start = clip_vit.tiny_clip(seed=0).visual.conv1.weight
    assert (reference["clip.visual.conv1.weight"] - start).abs().max() > 1e-5


def test_torchrun_joins_its_group(workdir, one_process):
    """Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) train.py joins the launcher's group instead of spawning."""
    out = workdir / "torchrun"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
               *tiny_args(workdir, out, *DDP_ARGS, "--per-gpu-batch", "2")]
    env = {**os.environ, "TORCH_SHOW_CPP_STACKTRACES": "1"}  # should a rank abort, say where
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    # torchrun's own summary fills the end of stderr; the failing rank's message comes before it
    assert result.returncode == 0, result.stderr[:4000]
    assert json.loads((out / "args.json").read_text())["processes"] == 2
    assert_same_parameters(parameters(one_process[0]), parameters(out), atol=1e-5)


def test_resume_after_stop_equals_straight_run(workdir, reference):
    out = workdir / "stopped"
    first = train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off", "--stop-after", "2"))
    assert len(first) == 2
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off", "--resume", str(out / "last.pt")))
    assert_same_parameters(parameters(reference), parameters(out))
    assert_same_log(read_log(reference), read_log(out))
    assert_same_parameters(parameters(reference, "best.pt"), parameters(out, "best.pt"))


def test_sigkill_mid_epoch_then_resume_equals_straight_run(workdir, reference):
    out = workdir / "killed"
    command = [sys.executable, "train.py", *tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off",
                                                      "--save-every", "1")]
    stderr = workdir / "killed.stderr"
    with open(stderr, "w") as err:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 120
    while not (out / "last.pt").exists():  # the first checkpoint: after step 1 of epoch 1
        assert process.poll() is None, stderr.read_text()
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = torch.load(out / "last.pt", weights_only=True)
    assert killed_at["epoch"] < EPOCHS  # it really died before the end
    train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off", "--resume", str(out / "last.pt")))
    assert_same_parameters(parameters(reference), parameters(out))
    assert_same_log(read_log(reference), read_log(out))


class SimulatedDeath(BaseException):
    """Stands for the process dying: nothing in train.py catches a BaseException."""


def test_death_inside_checkpoint_write_keeps_previous_checkpoint(workdir, reference, monkeypatch):
    out = workdir / "crashed"
    real_save = torch.save
    calls, torn = [], []

    def dying_save(obj, f, *args, **kwargs):
        """The second last.pt write gets half its bytes on disk, then the process 'dies'."""
        if "last.pt.tmp" in str(getattr(f, "name", "")):
            calls.append(1)
            if len(calls) == 2:
                real_save(obj, f, *args, **kwargs)
                f.truncate(f.tell() // 2)
                f.flush()
                torn.append(os.path.getsize(f.name))
                raise SimulatedDeath
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(SimulatedDeath):
        train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off"))
    monkeypatch.undo()
    assert torn[0] > 0  # the torn write reached the disk ...
    survivor = torch.load(out / "last.pt", weights_only=True)  # ... but last.pt is the previous, whole one
    assert survivor["epoch"] == 1
    train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off", "--resume", str(out / "last.pt")))
    assert_same_parameters(parameters(reference), parameters(out))
    assert_same_log(read_log(reference), read_log(out))


def test_amp_bf16_on_cpu_trains(workdir):
    """bf16 autocast runs the whole training step, lowers the loss like fp32 does, and is really on (the numbers
    differ). A smaller config than the other tests: CPUs without native bf16 emulate it slowly."""
    smaller = ["--frames", "1", "--size", "32", "--mra-grids", "2x2", "--batch-size", "8", "--epochs", "3"]
    fp32 = train.main(tiny_args(workdir, workdir / "fp32", *smaller, "--amp", "off"))
    bf16 = train.main(tiny_args(workdir, workdir / "bf16", *smaller, "--amp", "bf16"))
    assert json.loads((workdir / "bf16" / "args.json").read_text())["amp"] == "bf16"
    assert all(torch.isfinite(p).all() for p in parameters(workdir / "bf16").values())
    assert bf16[-1]["train_loss"] < bf16[0]["train_loss"]
    for a, b in zip(bf16, fp32):
        assert a["train_loss"] != b["train_loss"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a GradScaler needs CUDA")
def test_amp_fp16_with_grad_scaler_on_cuda(workdir):
    out = workdir / "fp16"
    args = [a if a != "cpu" else "cuda" for a in tiny_args(workdir, out, "--epochs", "2", "--amp", "fp16")]
    log = train.main(args)
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0
    assert all(math.isfinite(r["train_loss"]) for r in log)


def test_bad_input_one_line(workdir, reference, tmp_path):
    """Each error is a single line that names the argument or file at fault."""
    not_clip = tmp_path / "not_clip.pt"
    not_clip.write_text("hello")
    tiny_state = tmp_path / "tiny_clip_state.pt"
    torch.save({"visual.proj": torch.zeros(1)}, tiny_state)
    base = tiny_args(workdir, tmp_path / "out", "--epochs", "1")
    cases = [
        (["--data", "kinetics"], "invalid choice"),
        (["--data", "ucf101", "--data-root", str(tmp_path / "missing")], "--data-root"),
        (base + ["--clip", str(tmp_path / "missing.pt")], "--clip"),
        (base + ["--clip", str(not_clip)], "--clip"),
        (["--gpus", str(max(2, torch.cuda.device_count() + 1))], "--gpus"),
        (base + ["--resume", str(tiny_state)], "not written by train.py"),
        (base + ["--resume", str(reference / "last.pt"), "--decoder-layers", "0", "--mra-layers", "0"],
         "another model"),
    ]
    for argv, expected in cases:
        with pytest.raises(SystemExit) as error:
            train.main(argv)
        message = str(error.value.code)
        assert expected in message and "\n" not in message, (argv, message)


def test_cli_error_has_no_traceback(workdir, tmp_path):
    not_clip = tmp_path / "not_clip.pt"
    not_clip.write_text("hello")
    result = subprocess.run([sys.executable, "train.py", *tiny_args(workdir, tmp_path / "out"), "--clip",
                             str(not_clip)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(not_clip) in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_design_notes_defaults_table_matches_the_code():
    """DESIGN.md's per-dataset defaults table says what runtime.DATASET_DEFAULTS holds, row by row."""
    import runtime
    lines = (REPO / "DESIGN.md").read_text().split("## Per-dataset defaults", 1)[1].splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    header, rows = rows[0], rows[1:]
    assert header[0] == "dataset" and {row[0] for row in rows} == set(runtime.DATASETS)
    for row in rows:
        assert dict(zip(header[1:], row[1:])) == {k: str(v) for k, v in runtime.DATASET_DEFAULTS[row[0]].items()}
