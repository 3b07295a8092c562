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

import runtime
import train

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


def tiny_args(workdir, out, *extra):
    return ["--data", "synthetic", "--data-root", str(workdir / "synthetic"), "--clip", "tiny", "--frames", "2",
            "--size", "64", "--batch-size", "4", "--lr", "1e-3", "--workers", "0", "--no-progress", "--device", "cpu",
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
    """Rank r's k-th micro-batch lies in the k-th block of one global batch, whatever the split into processes;
    every sample is visited, the last batch filled up with the first ones (none is left out of an epoch)."""
    n, global_batch, per_process = 23, 8, 2
    one = train.epoch_indices(n, 0, 3, 0, 1, global_batch)
    assert len(one) == 24 and set(one) == set(range(n)) and one[23] == one[0]
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


def test_one_frame_trains_under_ddp(workdir):
    """--frames 1 with 2 gloo processes: the temporal path has no order to read, but its parameters still take part
    in backward, so DDP's second step does not fail waiting for their gradients."""
    out = workdir / "one_frame"
    log = train.main(tiny_args(workdir, out, "--frames", "1", "--size", "32", "--mra-grids", "2x2", "--epochs", "1",
                               "--amp", "off", "--per-gpu-batch", "1", "--gpus", "2"))
    assert json.loads((out / "args.json").read_text())["processes"] == 2
    assert len(log) == 1 and math.isfinite(log[0]["train_loss"])
    assert torch.load(out / "last.pt", weights_only=True)["scheduler"]["last_epoch"] == 4   # 16 clips / batch 4


def test_torchrun_joins_its_group(workdir, one_process):
    """Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) train.py joins the launcher's group instead of spawning,
    started as README's multi-node command starts it (c10d rendezvous; port 0: any free one), and ends like the one
    process with the whole batch (so like --gpus 2, test_ddp_equals_one_process_and_accumulation)."""
    out = workdir / "torchrun"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", "--rdzv-id", "test", "train.py",
               *tiny_args(workdir, out, *DDP_ARGS, "--per-gpu-batch", "2")]
    env = {**os.environ, "TORCH_SHOW_CPP_STACKTRACES": "1"}  # should a rank abort, say where
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    # torchrun's own summary fills the end of stderr; the failing rank's message comes before it
    assert result.returncode == 0, result.stderr[:4000]
    assert json.loads((out / "args.json").read_text())["processes"] == 2
    assert_same_parameters(parameters(one_process[0]), parameters(out), atol=1e-5)
    log = read_log(out)
    assert len(log) == 1 and log[0]["train_loss"] == pytest.approx(one_process[1][0]["train_loss"], abs=1e-5)
    assert log[0]["val_top1"] == one_process[1][0]["val_top1"]


def test_resume_after_stop_equals_straight_run(workdir, reference):
    """With a loader worker (persistent across epochs, fed (epoch, index) pairs) against the reference run without:
    the same bits, stopped and resumed or not."""
    out = workdir / "stopped"
    first = train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off", "--stop-after", "2",
                                 "--workers", "1"))
    assert len(first) == 2
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    train.main(tiny_args(workdir, out, "--epochs", str(EPOCHS), "--amp", "off", "--resume", str(out / "last.pt"),
                         "--workers", "1"))
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
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.05)


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
        (["--resume", str(reference / "last.pt"), "--decoder-layers", "0"], "--decoder-layers 0: the run in"),
        (["--resume", str(reference / "last.pt"), "--decoder-layers", "0", "--mra-layers", "0", "--allow-changes"],
         "another model"),
    ]
    for argv, expected in cases:
        with pytest.raises(SystemExit) as error:
            train.main(argv)
        message = str(error.value)
        assert error.value.code == 2, (argv, message)
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
    lines = (REPO / "DESIGN.md").read_text().split("## Per-dataset defaults", 1)[1].split("\n## ")[0].splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    header, rows = rows[0], rows[1:]
    assert header[0] == "dataset" and {row[0] for row in rows} == set(runtime.DATASETS)
    for row in rows:
        assert dict(zip(header[1:], row[1:])) == {k: str(v) for k, v in runtime.DATASET_DEFAULTS[row[0]].items()}


# ------------------------------------------------------------------------------------------------ resume and stop

RESUME_FLAGS = ["--su-topk", "4", "--decoder-memory", "regions", "--epochs", "3", "--amp", "off"]


def options_of(out):
    """args.json without the output folder (the runs compared live in different folders) and the loader workers (a
    resumed run works them out again for its machine)."""
    return {k: v for k, v in json.loads((Path(out) / "args.json").read_text()).items() if k not in ("out", "workers")}


@pytest.mark.parametrize("processes", [1, 2])
def test_resume_with_nothing_else_continues_that_run(workdir, processes):
    """--resume CHECKPOINT alone takes every option from the checkpoint: non-default --frames, --size, --su-topk,
    --decoder-memory and a 3-epoch schedule stopped after epoch 1 end like the same flags run straight through."""
    place = ["--gpus", "2", "--per-gpu-batch", "2"] if processes == 2 else []
    straight, stopped = workdir / f"straight{processes}", workdir / f"resumed{processes}"
    train.main(tiny_args(workdir, straight, *RESUME_FLAGS, *place))
    train.main(tiny_args(workdir, stopped, *RESUME_FLAGS, *place, "--stop-after", "1"))
    assert len(read_log(stopped)) == 1
    train.main(["--resume", str(stopped / "last.pt")])
    assert_same_parameters(parameters(straight), parameters(stopped))
    assert_same_log(read_log(straight), read_log(stopped))
    assert options_of(straight) == options_of(stopped)
    assert options_of(stopped)["frames"] == 2 and options_of(stopped)["su_topk"] == 4


def test_resume_refuses_changes_unless_allowed_and_logs_the_real_lr(workdir, capsys):
    out = workdir / "changed"
    train.main(tiny_args(workdir, out, *RESUME_FLAGS, "--stop-after", "1"))
    with pytest.raises(SystemExit) as error:
        train.main(["--resume", str(out / "last.pt"), "--lr", "5e-3"])
    message = str(error.value)
    assert error.value.code == 2 and "--lr 0.005" in message and "0.001" in message and "\n" not in message
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    train.main(["--resume", str(out / "last.pt"), "--lr", "5e-3", "--allow-changes"])
    options = json.loads((out / "args.json").read_text())
    assert options["lr"] == 5e-3
    assert options["changes"] == [{"epoch": 1, "step": 0, "flag": "lr", "from": 1e-3, "to": 5e-3}]
    log = read_log(out)
    assert log[1]["changes"] == options["changes"] and "changes" not in log[0] and "changes" not in log[2]
    steps_per_epoch = 4   # 16 training clips, batch 4; warm-up 1 epoch, 3 epochs
    for record in log[1:]:   # the lr of each epoch's last step, as AdamW ran it: the new lr times the schedule
        factor = train.lr_factor(record["epoch"] * steps_per_epoch - 1, steps_per_epoch, 3 * steps_per_epoch, 0.01)
        assert record["lr"] == pytest.approx(5e-3 * factor, rel=1e-12)
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["initial_lr"] == 5e-3


@pytest.fixture(scope="module")
def signal_references(workdir):
    """Straight runs of the signal tests' flags, one per number of processes."""
    return {processes: run_straight(workdir, processes) for processes in (1, 2)}


def signal_flags(workdir, out, processes):
    # batch 2: 8 optimiser steps an epoch, a checkpoint after each (--save-every 1) that the test watches
    place = ["--gpus", "2", "--per-gpu-batch", "1"] if processes == 2 else []
    return tiny_args(workdir, out, "--epochs", "2", "--batch-size", "2", "--amp", "off", "--save-every", "1", *place)


def run_straight(workdir, processes):
    out = workdir / f"signal_reference{processes}"
    train.main(signal_flags(workdir, out, processes))
    return out


@pytest.mark.parametrize("signum,processes", [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGINT, 2),
                                              (signal.SIGTERM, 2)])
def test_signal_mid_epoch_saves_and_the_printed_command_resumes(workdir, signal_references, signum, processes):
    out = workdir / f"signalled_{signum}_{processes}"
    process = subprocess.Popen([sys.executable, "train.py", *signal_flags(workdir, out, processes)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while True:   # wait for epoch 2 to be under way: a mid-epoch checkpoint at (epoch 1, step >= 1)
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "epoch 2 did not start within 180 s"
        try:
            state = torch.load(out / "last.pt", weights_only=True)
            if state["epoch"] == 1 and state["step"] >= 1:
                break
        except (OSError, RuntimeError, EOFError):
            pass
        time.sleep(0.01)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr, stderr
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and 0 < state["step"] < 8
    lines = stderr.strip().splitlines()
    command = lines[-1].split()
    assert command[:3] == ["python", "train.py", "--resume"], stderr
    assert signal.Signals(signum).name in stderr
    subprocess.run([sys.executable, *command[1:]], cwd=REPO, check=True, capture_output=True, timeout=300)
    reference = signal_references[processes]
    assert_same_parameters(parameters(reference), parameters(out))
    assert_same_log(read_log(reference), read_log(out))


# ---------------------------------------------------------------------------------------- checks before any step

def test_missing_val_folder_is_one_line_before_training(workdir, tmp_path):
    """A Kinetics layout whose videos/val/ is missing stops at the start, not after an epoch."""
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    (root / "videos" / "train").mkdir(parents=True)
    clips = sorted((workdir / "synthetic" / "videos").rglob("*.mp4"))
    for part in ("train", "val"):
        rows = ["label,youtube_id,time_start,time_end,split"]
        for k, clip in enumerate(clips[:8]):
            name, youtube_id = clip.parent.name.replace("_", " "), f"{part}{k:03d}"
            rows.append(f"{name},{youtube_id},0,10,{part}")
            if part == "train":
                os.symlink(clip, root / "videos" / "train" / f"{youtube_id}_000000_000010.mp4")
        (root / "annotations" / f"{part}.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    start = time.time()
    with pytest.raises(SystemExit) as error:
        train.main(tiny_args(workdir, out, "--data", "k400", "--data-root", str(root), "--clip", "tiny",
                             "--epochs", "1", "--warmup-epochs", "1"))
    assert time.time() - start < 60 and error.value.code == 2
    assert "8 of 8 val videos listed are missing" in str(error.value) and "--data-root" in str(error.value)
    assert not (out / "last.pt").exists()


def test_existing_run_folder_is_refused_without_overwrite(workdir, reference):
    with pytest.raises(SystemExit) as error:
        train.main(tiny_args(workdir, reference, "--epochs", str(EPOCHS), "--amp", "off"))
    assert error.value.code == 2 and "holds a run" in str(error.value) and "--resume" in str(error.value)
    copy = workdir / "overwritten"
    copy.mkdir()
    (copy / "last.pt").write_bytes((reference / "last.pt").read_bytes())
    log = train.main(tiny_args(workdir, copy, "--epochs", "1", "--amp", "off", "--overwrite"))
    assert len(log) == 1 and torch.load(copy / "last.pt", weights_only=True)["epoch"] == 1


def test_overwrite_removes_every_file_of_the_old_run(tmp_path):
    """A folder holding any file a run writes is a run (last.pt may have been deleted to save space); --overwrite
    removes them all, so none of the old run's can pass for the new one's, and leaves other files alone."""
    for name in runtime.RUN_FILES[1:] + ("notes.txt",):
        (tmp_path / name).write_text(name)
    with pytest.raises(SystemExit, match="holds a run"):
        runtime.check_out(tmp_path, fresh=True, overwrite=False)
    assert (tmp_path / "best.pt").exists()
    runtime.check_out(tmp_path, fresh=True, overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


BAD_VALUES = ["frames 0", "frames -1", "size 0", "size 8", "size 16", "size 32", "size 50", "warmup longer",
              "stop-after -1", "out is a file", "out under a file", "out not writable", "strict unreadable",
              "no val video readable"]


def bad_value_case(name, workdir, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    broken = tmp_path / "broken"   # a list dataset whose one training video is a text file named .mp4
    (broken / "clips").mkdir(parents=True)
    (broken / "clips" / "bad.mp4").write_text("not a video")
    good = sorted((workdir / "synthetic" / "videos").rglob("*.mp4"))[0]
    os.symlink(good, broken / "clips" / "good.mp4")
    (broken / "labels.txt").write_text("a\nb\n")
    (broken / "train.txt").write_text("clips/bad.mp4 0\nclips/good.mp4 1\n")
    (broken / "val.txt").write_text("clips/good.mp4 1\n")
    no_val = tmp_path / "no_val"   # two readable training videos, the one val video unreadable
    (no_val / "clips").mkdir(parents=True)
    for k in range(2):
        os.symlink(good, no_val / "clips" / f"good{k}.mp4")
    (no_val / "clips" / "bad.mp4").write_text("not a video")
    (no_val / "labels.txt").write_text("a\nb\n")
    (no_val / "train.txt").write_text("clips/good0.mp4 0\nclips/good1.mp4 1\n")
    (no_val / "val.txt").write_text("clips/bad.mp4 1\n")
    base = tiny_args(workdir, tmp_path / "out", "--epochs", "1")
    return dict(zip(BAD_VALUES, [
        (base + ["--frames", "0"], "--frames 0"),
        (base + ["--frames", "-1"], "--frames -1"),
        (base + ["--size", "0"], "--size 0"),
        (base + ["--size", "8"], "--size 8"),
        (base + ["--size", "16"], "--size 16"),
        (base + ["--size", "32"], "--size 32"),
        (base + ["--size", "50"], "--size 50"),
        (base + ["--warmup-epochs", "3"], "--warmup-epochs 3"),
        (base + ["--stop-after", "-1"], "--stop-after -1"),
        (tiny_args(workdir, a_file), "is a file"),
        (tiny_args(workdir, a_file / "sub"), "cannot write there"),
        (tiny_args(workdir, Path("/proc/asu_out")), "cannot write there"),
        (base + ["--data", "list", "--data-root", str(broken), "--batch-size", "2", "--warmup-epochs", "1",
                 "--clip", "tiny", "--strict"], "bad.mp4"),
        (base + ["--data", "list", "--data-root", str(no_val), "--batch-size", "2", "--warmup-epochs", "1",
                 "--clip", "tiny"], "none of the 1 val videos could be read (first: "),
    ]))[name]


@pytest.mark.parametrize("name", BAD_VALUES)
def test_bad_values_end_in_one_line(name, workdir, tmp_path, capsys):
    """Every bad value ends in exit status 2 and one line naming the flag or file (in this process: any other
    exception than SystemExit would fail the test, as a traceback would show)."""
    argv, expected = bad_value_case(name, workdir, tmp_path)
    with pytest.raises(SystemExit) as error:
        train.main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert error.value.code == 2 and len(lines) == 1 and expected in lines[0], (argv, lines)


def test_best_checkpoint_is_small_and_eval_scores_it(workdir, reference):
    """best.pt holds what evaluation needs, not the optimiser state; eval.py gives it the val top-1 it had."""
    import eval as evaluation
    best, last = reference / "best.pt", reference / "last.pt"
    assert best.stat().st_size <= 0.55 * last.stat().st_size
    state = torch.load(best, weights_only=True)
    assert "optimizer" not in state and state["epoch"] == state["metrics"]["epoch"]
    results = evaluation.main(["--ckpt", str(best), "--workers", "0", "--no-progress", "--device", "cpu",
                               "--cache-dir", str(workdir / "cache"), "--views", "1x1"])   # the val of an epoch
    assert results["runs"][0]["top1"] == pytest.approx(state["metrics"]["val_top1"])
    assert max(r["val_top1"] for r in read_log(reference)) == state["metrics"]["val_top1"]


def test_final_multi_view_test_is_what_eval_gives_last_checkpoint(workdir, reference):
    """After the last epoch train.py scores the val split with --test-views (the synthetic default 4x1) into
    test.json: the probabilities eval.py gives last.pt with those views, so every figure and class agrees."""
    import eval as evaluation
    test = json.loads((reference / "test.json").read_text())
    assert test["views"] == "4x1" and test["videos"] == 4 and len(test["per_class"]) == 4
    results = evaluation.main(["--ckpt", str(reference / "last.pt"), "--workers", "0", "--no-progress",
                               "--device", "cpu", "--cache-dir", str(workdir / "cache")])
    assert results["views"] == "4x1"
    for key in ("top1", "top5", "mean_class"):
        assert test[key] == pytest.approx(results[key], abs=1e-12), key
    assert test["per_class"] == pytest.approx(results["per_class"], abs=1e-12)
    single = evaluation.main(["--ckpt", str(reference / "last.pt"), "--workers", "0", "--no-progress",
                              "--device", "cpu", "--cache-dir", str(workdir / "cache"), "--views", "1x1"])
    assert single["top1"] == pytest.approx(read_log(reference)[-1]["val_top1"])


def test_colour_jitter_on_the_device_trains_as_in_the_workers(workdir, monkeypatch):
    """On CUDA train.py leaves colour jitter and grayscale to the device (data.colour_on_device): forced here on the
    CPU, with colour on for the synthetic set, a run applies it to every batch and ends as the run that jitters in
    the loader (the clips differ by the uint8 rounding between the two steps only)."""
    import data
    import synthetic
    monkeypatch.setattr(synthetic, "COLOUR", True)
    real_build, real_apply, batches = data.build_dataset, data.colour_on_device, []
    train.main(tiny_args(workdir, workdir / "colour_worker", "--epochs", "1", "--amp", "off"))
    monkeypatch.setattr(data, "build_dataset",
                        lambda *a, **k: real_build(*a, **{**k, "colour_on_device": k.get("train", False)}))
    monkeypatch.setattr(data, "colour_on_device",
                        lambda videos, colours: batches.append(colours) or real_apply(videos, colours))
    train.main(tiny_args(workdir, workdir / "colour_device", "--epochs", "1", "--amp", "off"))
    worker, device = read_log(workdir / "colour_worker")[0], read_log(workdir / "colour_device")[0]
    assert len(batches) == 4 and all(colours.shape == (4, 10) for colours in batches)   # 16 clips, batch 4
    assert sum(int(colours[:, 1].gt(0).sum()) for colours in batches) >= 8                 # most clips jittered
    assert device["train_loss"] == pytest.approx(worker["train_loss"], rel=1e-3)   # without colour: 4.26 vs 5.16
    assert_same_parameters(parameters(workdir / "colour_worker"), parameters(workdir / "colour_device"), atol=2.5e-3)


def test_non_finite_loss_skips_its_step_and_a_run_of_them_stops(workdir, monkeypatch):
    """One NaN loss: its optimiser step is skipped and counted, the weights stay finite; NaN from then on: the run
    stops in one line after ten skipped steps in a row, or at the end of an epoch that took no step."""
    real = torch.nn.functional.cross_entropy
    calls = []

    def nan_on_second_call(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", nan_on_second_call)
    log = train.main(tiny_args(workdir, workdir / "one_nan", "--epochs", "1", "--amp", "off"))
    assert log[0]["skipped_steps"] == 1 and math.isfinite(log[0]["train_loss"])
    assert all(torch.isfinite(p).all() for p in parameters(workdir / "one_nan").values())
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(SystemExit) as error:   # 16 steps an epoch
        train.main(tiny_args(workdir, workdir / "all_nan", "--epochs", "1", "--amp", "off", "--batch-size", "1"))
    assert error.value.code == 2 and "10 optimiser steps in a row had a non-finite loss" in str(error.value)
    # fewer steps an epoch than that: an epoch that took none ends the run (no log record, no checkpoint of it)
    with pytest.raises(SystemExit) as error:
        train.main(tiny_args(workdir, workdir / "nan_epoch", "--epochs", "2", "--amp", "off"))
    assert error.value.code == 2 and "epoch 1: none of its 4 optimiser steps was taken" in str(error.value)
    assert not (workdir / "nan_epoch" / "last.pt").exists() and not (workdir / "nan_epoch" / "best.pt").exists()


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")   # lr_scheduler's: a skipped first step, as meant
def test_steps_the_grad_scaler_skips_are_counted_and_a_run_of_them_stops():
    """fp16: a step whose gradients overflow is skipped by the GradScaler itself (the loss was finite); it counts in
    skipped_steps and in the ten-in-a-row stop like a non-finite loss, and a finite step resets the row."""
    import argparse
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    run = argparse.Namespace(args=argparse.Namespace(clip_grad=1.0), model=model, optimizer=optimizer,
                             scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
                             scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 10), skipped_in_a_row=0)
    sums = train.RunningSums(torch.device("cpu"))

    def step(gradient):
        run.scaler.scale(model(torch.ones(1, 3)).sum()).backward()   # what training does before a step
        for p in model.parameters():
            p.grad.fill_(gradient)
        train.optimizer_step(run, False, sums, "test")

    before = model.weight.detach().clone()
    step(float("inf"))
    assert sums.skipped_steps == 1 and run.skipped_in_a_row == 1 and torch.equal(model.weight, before)
    step(1.0)
    assert sums.skipped_steps == 1 and run.skipped_in_a_row == 0 and not torch.equal(model.weight, before)
    with pytest.raises(SystemExit) as error:
        for _ in range(train.MAX_SKIPPED_IN_A_ROW):
            step(float("inf"))
    assert error.value.code == 2 and sums.skipped_steps == 1 + train.MAX_SKIPPED_IN_A_ROW


def test_grad_ckpt_is_switched_on_where_the_estimate_needs_it_and_refused_where_nothing_fits(capsys):
    """On an 80 GiB GPU, ViT-L/14@336px at 16 frames x batch 8 fits only with --grad-ckpt (DESIGN.md, "GPU memory"):
    unset, it is switched on with a note; --no-grad-ckpt ends in one line naming the flag; at 8 frames it stays off;
    a batch that fits neither way ends in one line naming --per-gpu-batch."""
    import argparse

    def options(frames, grad_ckpt=None, per_gpu_batch=8):
        return argparse.Namespace(clip="ViT-L/14@336px", frames=frames, size=336, per_gpu_batch=per_gpu_batch,
                                  amp="bf16", grad_ckpt=grad_ckpt)
    assert train.choose_grad_ckpt(options(16), 80) is True
    assert "--grad-ckpt on" in capsys.readouterr().err
    assert train.choose_grad_ckpt(options(8), 80) is False and train.choose_grad_ckpt(options(8, True), 80) is True
    for asked, flag in ((options(16, False), "--no-grad-ckpt"), (options(32, None, 64), "--per-gpu-batch 64")):
        with pytest.raises(SystemExit) as error:
            train.choose_grad_ckpt(asked, 80)
        assert error.value.code == 2 and str(error.value).startswith(flag) and "\n" not in str(error.value)


def test_resume_works_out_the_workers_again(workdir, reference, monkeypatch):
    """A resumed run's loader workers are this machine's default, not those of the run's first session (which the
    checkpoint holds: --workers 0 here), unless the command line names them."""
    monkeypatch.setattr(train.runtime, "default_workers", lambda device, processes=1: 3)
    assert train.parse_args(["--resume", str(reference / "last.pt")]).workers == 3
    assert train.parse_args(["--resume", str(reference / "last.pt"), "--workers", "1"]).workers == 1


def test_resume_under_another_amp_mode_runs(workdir, capsys):
    """A bf16 run resumed with --amp fp16 (a GradScaler with no saved state) goes on, with a note that it is not
    bit-exact; and back to fp32 from that fp16 checkpoint (whose scaler state is then unused)."""
    smaller = ["--frames", "1", "--size", "32", "--mra-grids", "2x2", "--batch-size", "8", "--epochs", "3"]
    out = workdir / "amp_switch"
    train.main(tiny_args(workdir, out, *smaller, "--amp", "bf16", "--stop-after", "1"))
    log = train.main(["--resume", str(out / "last.pt"), "--amp", "fp16", "--stop-after", "2"])
    assert "--amp bf16 -> fp16" in capsys.readouterr().err
    assert torch.load(out / "last.pt", weights_only=True)["scaler"]["scale"] > 0
    log = train.main(["--resume", str(out / "last.pt"), "--amp", "off"])
    assert [r["epoch"] for r in log] == [1, 2, 3] and all(math.isfinite(r["train_loss"]) for r in log)
    assert json.loads((out / "args.json").read_text())["amp"] == "off"


def test_gpu_check_runs_its_cpu_path_and_fails_on_an_unusable_gpu(tmp_path):
    """bench/gpu_check.sh --device cpu: the GPU check's whole path (synthetic set, loader workers, one-rank DDP,
    train.py's step, profiler) on the tiny CLIP, one summary line. A machine with a GPU that torch cannot use (a
    stand-in nvidia-smi lists one here) fails instead of passing without measuring anything."""
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--device", "cpu"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("gpu_check: CPU") and "1-rank DDP" in line, line
    for field in ("clips/s", "data wait", "MFU", "peak memory", "attention"):
        assert field in line, (field, line)
    assert line.split("attention ")[1].split(",")[0] in ("flash", "memory-efficient", "math", "flash+memory-efficient")
    if not torch.cuda.is_available():
        fake = tmp_path / "nvidia-smi"
        fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n")
        fake.chmod(0o755)
        result = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO, capture_output=True, text=True,
                                timeout=120, env={**env, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
        assert result.returncode == 1 and "a GPU is present but torch cannot use it" in result.stdout, result.stdout
