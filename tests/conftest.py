"""Fixtures shared by the test files."""
import subprocess
import sys

import pytest

import synthetic


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder holding a small synthetic set (4 classes x 5 clips of 8 frames at 64 px) under "synthetic"."""
    root = tmp_path_factory.mktemp("work")
    synthetic.make_synthetic(root / "synthetic", num_classes=4, videos_per_class=5, val_fraction=0.2,
                             num_frames=8, size=64, workers=1)
    return root


@pytest.fixture
def busy_cpu():
    """Four busy processes on the machine's cores while the test runs: races and load-dependent results that a
    quiet run hides show up under load."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


@pytest.fixture(autouse=True)
def no_pretraining_in_tests(monkeypatch):
    """The tiny-pretrained CLIP takes minutes to build: a test that reaches it by a default (train.py's synthetic
    set) fails at once, naming the fix, instead of spending the suite's time. Tests that need one make a small one."""
    import pretrain

    def refuse(*args, **kwargs):
        pytest.fail("this test would pretrain the tiny CLIP: pass --clip tiny (random init) or a small clip.pt")
    monkeypatch.setattr(pretrain, "ensure_pretrained", refuse)
