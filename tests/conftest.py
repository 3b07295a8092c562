"""Fixtures shared by the test files."""
import pytest

import data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder holding a small synthetic set (4 classes x 5 clips of 8 frames at 64 px) under "synthetic"."""
    root = tmp_path_factory.mktemp("work")
    data.make_synthetic(root / "synthetic", num_classes=4, videos_per_class=5, val_fraction=0.2, num_frames=8,
                        size=64, workers=1)
    return root
