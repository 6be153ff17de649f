"""Scale-out: CPU DDP with 2 processes (gloo) through the CLI.

``posetune train ... --devices 2 --strategy ddp`` in a subprocess: Lightning's ddp launcher
re-runs the same command line for rank 1. The validation metrics in metrics.csv must be those
of the gathered predictions of both processes: they equal a single-process evaluation of the
saved model on the whole validation set (and differ from an evaluation of one process's share).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine_setup import cnn_overrides, read_csv, write_data


@pytest.mark.slow
def test_cpu_ddp_two_processes(tmp_path, torch_single_thread):
    from posetune.config import load_config
    from posetune.data.formats import read_dataset
    from posetune.engine.evaluate import predict_dataset
    from posetune.evaluation.summary import evaluate
    from posetune.models.checkpoints import load_model

    train_json, val_json = write_data(tmp_path / "data")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "posetune.cli.main", "train", "--data", str(train_json), "--out", str(out),
           "--epochs", "2", "--batch-size", "2", "--workers", "0", "--devices", "2", "--strategy", "ddp",
           f"data.val={val_json}", "train.accelerator=cpu", "train.progress=false", "train.log_every=1",
           *cnn_overrides()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("run directory:") == 1  # printed by rank 0 only
    assert "Traceback" not in r.stderr
    for f in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv", "summary.json", "config.yaml"):
        assert (out / f).is_file(), f
    rows = read_csv(out / "metrics.csv")
    assert [row["epoch"] for row in rows] == [0, 1]
    # 8 samples / (2 processes x batch 2) = 2 optimizer steps per epoch
    assert [row["step"] for row in rows] == [2, 4]

    cfg = load_config(out / "config.yaml")
    assert cfg.train.devices == 2 and cfg.train.strategy == "ddp"
    model = load_model(out / "checkpoints" / "last.ckpt")
    val = read_dataset(val_json)
    pred = predict_dataset(model, val, batch_size=4)
    kw = dict(metrics=("pck", "epe", "coco"), pck_thresholds=tuple(cfg.eval.pck_thresholds), pck_norm=cfg.eval.pck_norm)
    full = evaluate(val, pred, **kw)
    last = rows[-1]
    for k in ("EPE", "PCK@0.05", "PCK@0.1", "AP"):
        assert last[f"val_{k}"] == pytest.approx(full[k], rel=1e-4, abs=1e-6), k
    # one process's share (DistributedSampler: every other sample) gives a different EPE
    share = evaluate(val.subset([0, 2]), pred.subset([0, 2]), **kw)
    assert share["EPE"] != pytest.approx(full["EPE"], rel=1e-3)
