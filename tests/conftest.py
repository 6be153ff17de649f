"""Shared pytest fixtures.

``shared_data`` is the real test-data folder beside the repo (``../shared/data``); tests that use
it fail (not skip) when it is missing. ``keypoint_dataset`` builds a small on-disk dataset with
the awkward cases every label format must survive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo>/../shared/data`` (real, small, licensed test data; see its README.md)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture()
def keypoint_dataset(tmp_path: Path):
    """A 4-keypoint dataset written under ``tmp_path/imgs`` with real PNG images.

    * ``bild_ä_猫.png`` (non-ASCII name), 64x48, 2 instances, one with v=0 and v=1 points;
    * ``crowd.png``, 80x60, 12 instances (many in one image), one marked iscrowd;
    * ``empty.png``, 32x32, no instances.
    """
    from posetune.data.images import save_image
    from posetune.data.records import ImageRecord, Instance, KeypointDataset
    from posetune.data.spec import KeypointSpec

    root = tmp_path / "imgs"
    rng = np.random.default_rng(7)
    sizes = {"bild_ä_猫.png": (64, 48), "crowd.png": (80, 60), "empty.png": (32, 32)}
    for name, (w, h) in sizes.items():
        save_image(root / name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    spec = KeypointSpec.from_names(["head", "left_hand", "right_hand", "tail"], name="toy",
                                   skeleton=[(0, 1), (0, 2), (0, 3)])
    a = Instance(keypoints=[[10.5, 12.25, 2], [0, 0, 0], [30.125, 20.5, 1], [40, 44, 2]], bbox=[5, 6, 40, 40], id=1)
    b = Instance(keypoints=[[50, 10, 2], [52.75, 14, 2], [60, 18, 2], [58, 30, 1]], bbox=[45, 5, 18, 30], id=2)
    crowd = []
    for i in range(12):
        pts = np.c_[rng.uniform(1, 79, 4), rng.uniform(1, 59, 4), rng.choice([1, 2], 4)]
        x0, y0 = pts[:, :2].min(0)
        x1, y1 = pts[:, :2].max(0)
        crowd.append(Instance(keypoints=pts, bbox=[x0, y0, x1 - x0, y1 - y0], id=10 + i, iscrowd=(i == 11)))
    images = [
        ImageRecord("bild_ä_猫.png", 64, 48, [a, b], id=1),
        ImageRecord("crowd.png", 80, 60, crowd, id=2),
        ImageRecord("empty.png", 32, 32, [], id=3),
    ]
    return KeypointDataset(spec=spec, images=images, root=root, categories=["toy"])


#: MediaPipe release whose models the mediapipe tests use
MEDIAPIPE_VERSION = "0.10.21"
#: a wheel downloaded beforehand on a developer machine (optional: CI fetches with pip)
_LOCAL_MEDIAPIPE_WHEEL = Path("/tmp/mpwheel/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl")


@pytest.fixture(scope="session")
def mediapipe_cache(request, tmp_path_factory) -> Path:
    """A posetune cache root holding verified MediaPipe 0.10.21 ``.tflite`` models.

    Reuses ``$POSETUNE_CACHE`` / ``~/.cache/posetune`` or the pytest cache when they already hold
    valid models; otherwise fills the pytest cache once, from a local wheel when one exists, else
    with a real ``posetune weights fetch mediapipe`` (pip download, ~10-20 s).
    """
    import os
    import subprocess
    import sys

    from posetune.errors import CheckpointError
    from posetune.models.hub import cache_root
    from posetune.models.mediapipe.fetch import fetch_mediapipe, verify_mediapipe_models

    cache = getattr(request.config, "cache", None)
    store = Path(cache.mkdir("posetune_mediapipe")) if cache is not None else tmp_path_factory.mktemp("mediapipe")
    for root in (cache_root(), store):
        try:
            verify_mediapipe_models(MEDIAPIPE_VERSION, cache=root)
            return root
        except CheckpointError:
            pass
    if _LOCAL_MEDIAPIPE_WHEEL.is_file():
        fetch_mediapipe(wheel=_LOCAL_MEDIAPIPE_WHEEL, cache=store, force=True)
    else:
        r = subprocess.run([sys.executable, "-m", "posetune.cli.main", "weights", "fetch", "mediapipe",
                            "--version", MEDIAPIPE_VERSION, "--force"], capture_output=True, text=True,
                           env={**os.environ, "POSETUNE_CACHE": str(store)})
        assert r.returncode == 0, r.stderr
    verify_mediapipe_models(MEDIAPIPE_VERSION, cache=store)
    return store


@pytest.fixture()
def torch_single_thread():
    """Run a test with one torch intra-op thread (restored afterwards).

    For small models on the shared 2-core machine a second thread mostly spin-waits: measured
    test_models.py at 25 s single-threaded vs 104 s with two threads under load.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
