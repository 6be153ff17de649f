"""Exact resume and reproducibility.

A run interrupted after epoch 2 of 4 (StopAfterEpochs) and continued with ``train.resume``
writes the same metrics.csv as an uninterrupted 4-epoch run — with augmentation, shuffling and
dropout on, so it needs the per-(seed, epoch, index) augmentation seeds, the per-epoch sampler
order, the per-epoch torch reseeding in PoseModule and Lightning's restored optimizer,
scheduler and loop state. Two runs with the same seed give identical metrics.csv.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_setup import assert_rows_close, comparable, make_cfg, read_csv, write_data
from posetune.engine.callbacks import StopAfterEpochs
from posetune.engine.fit import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: dropout in the head makes the torch RNG matter; cosine makes the lr differ every step
RESUME = ("train.epochs=4", "model.head.dropout=0.3", "train.scheduler.type=cosine",
          "train.scheduler.warmup=2", "data.augment.enabled=true")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return write_data(tmp_path_factory.mktemp("engine_resume_data"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> list[dict]:
    """metrics.csv of the uninterrupted 4-epoch run (workers 0)."""
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("reference") / "run"
    train(make_cfg(out, data, *RESUME), progress=False, quiet=True)
    return read_csv(out / "metrics.csv")


def interrupted_then_resumed(out: Path, data, *extra: str) -> list[dict]:
    first = train(make_cfg(out, data, *RESUME, *extra), extra_callbacks=[StopAfterEpochs(2)], progress=False,
                  quiet=True)
    assert [r["epoch"] for r in first.rows] == [0, 1]
    last = out / "checkpoints" / "last.ckpt"
    resumed = train(make_cfg(out, data, *RESUME, *extra, f"train.resume={last}"), progress=False, quiet=True)
    assert [r["epoch"] for r in resumed.rows] == [0, 1, 2, 3]
    return read_csv(out / "metrics.csv")


def test_resume_continues_exactly(tmp_path, data, reference):
    rows = interrupted_then_resumed(tmp_path / "resumed", data)
    assert [r["epoch"] for r in reference] == [0, 1, 2, 3]
    assert len({r["lr"] for r in reference}) == 4  # the schedule moves every epoch
    assert_rows_close(rows, reference, rel=1e-6)


def test_resume_continues_exactly_with_worker_processes(tmp_path, data, reference):
    rows = interrupted_then_resumed(tmp_path / "resumed_workers", data, "data.workers=2")
    assert_rows_close(rows, reference, rel=1e-6)


def test_same_seed_gives_identical_metrics(tmp_path, data, reference):
    again = train(make_cfg(tmp_path / "again", data, *RESUME), progress=False, quiet=True)
    assert comparable(read_csv(again.run_dir / "metrics.csv")) == comparable(reference)
    other = train(make_cfg(tmp_path / "other_seed", data, *RESUME, "seed=1"), progress=False, quiet=True)
    assert comparable(other.rows)[0]["train_loss"] != comparable(reference)[0]["train_loss"]
