"""``posetune train`` / ``lr-find`` / ``tune`` end to end through the CLI (in-process), and the
one-line errors (exit 2, no traceback) for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_setup import cnn_overrides, csv_header, resnet_overrides, write_data
from posetune.cli.main import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = ["data.workers=0", "train.progress=false", "train.accelerator=cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return write_data(tmp_path_factory.mktemp("engine_cli_data"))


def cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)


def test_train_flag_form_end_to_end(tmp_path, data, capsys, monkeypatch):
    """`posetune data split` then `posetune train --data DIR --model resnet18 ...` with overrides
    after the flags (no config file)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["data", "split", data[0], "--out", tmp_path / "split", "--val", "0.25"], capsys)
    assert code == 0, err
    out = tmp_path / "runs" / "x"
    code, stdout, err = cli(["train", "--data", tmp_path / "split", "--model", "resnet18", "--epochs", "1",
                             "--batch-size", "4", "--workers", "0", "--out", out, *resnet_overrides(64), *FAST],
                            capsys)
    assert code == 0, err
    assert f"run directory: {out}" in stdout and "best (epoch 0)" in stdout
    for f in ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv", "summary.json",
              "curves.png"):
        assert (out / f).is_file(), f
    from posetune.config import load_config

    cfg = load_config(out / "config.yaml")
    assert cfg.model.backbone.name == "resnet18" and cfg.model.head.type == "deconv"
    split = tmp_path / "split"
    assert cfg.data.train == str(split / "train.json") and cfg.data.val == str(split / "val.json")
    assert cfg.train.epochs == 1 and cfg.data.batch_size == 4 and list(cfg.model.codec.input_size) == [64, 64]
    assert "val_PCK@0.05" in csv_header(out / "metrics.csv")


# ----------------------------------------------------------------------------- one-line errors
def test_missing_data_path_is_one_line(tmp_path, capsys):
    code, _, err = cli(["train", "--data", tmp_path / "nope.json", "--out", tmp_path / "r", *FAST], capsys)
    assert_one_line_error(code, err, "nope.json", "data.train")


def test_empty_validation_set_is_one_line(tmp_path, data, capsys):
    # no data.val and no split: nothing to validate on
    code, _, err = cli(["train", "--data", data[0], "--out", tmp_path / "r", "data.val_fraction=0", *FAST,
                        *cnn_overrides()], capsys)
    assert_one_line_error(code, err, "validation set is empty", "validate_every=0")
    # a validation label file without any labelled instance
    from posetune.data.formats import read_dataset, write_dataset

    empty = read_dataset(data[1])
    for rec in empty.images:
        rec.instances.clear()
    write_dataset(empty, data[1].parent / "empty.json", "coco")
    code, _, err = cli(["train", "--data", data[0], "--out", tmp_path / "r2",
                        f"data.val={data[1].parent / 'empty.json'}", *FAST, *cnn_overrides()], capsys)
    assert_one_line_error(code, err, "empty.json", "no labelled instances")


def test_divergence_is_one_line(tmp_path, data, capsys):
    code, _, err = cli(["train", "--data", data[0], "--out", tmp_path / "r", f"data.val={data[1]}", "--lr", "1e6",
                        "--epochs", "5", "--batch-size", "4", "train.optimizer.type=sgd",
                        "train.scheduler.type=constant", "--no-validate", *FAST, *cnn_overrides()], capsys)
    assert_one_line_error(code, err, "loss is nan", "train.optimizer.lr", "train.amp=false")


def test_missing_resume_checkpoint_is_one_line(tmp_path, data, capsys):
    code, _, err = cli(["train", "--data", data[0], "--resume", tmp_path / "last.ckpt", *FAST], capsys)
    assert_one_line_error(code, err, "last.ckpt", "not found")


# ----------------------------------------------------------------------------- lr-find, tune
def test_lr_find_writes_plot_and_suggestion(tmp_path, data, capsys):
    """Few batches per epoch and train.epochs=2 still give the requested number of steps."""
    out = tmp_path / "lr"
    code, stdout, err = cli(["lr-find", "--data", data[0], "--steps", "20", "--out", out, "train.epochs=2",
                             "data.batch_size=8", "data.augment.enabled=false", *FAST, *cnn_overrides()], capsys)
    assert code == 0, err
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    import json

    res = json.loads((out / "lr_find.json").read_text())
    assert len(res["lr"]) == 20 and min(res["lr"]) < res["suggestion"] < max(res["lr"])
    assert "suggested learning rate" in stdout and "train.optimizer.lr=" in stdout


def test_tune_two_trials_writes_trials_and_best_config(tmp_path, data, capsys):
    import pandas as pd

    from posetune.config import load_config

    cfg = tmp_path / "tune.yaml"
    cfg.write_text(
        f"data: {{train: {data[0]}, val: {data[1]}, batch_size: 4, workers: 0}}\n"
        "model: {head: {type: cnn, hidden_dim: 16}, codec: {type: regression, input_size: [32, 32]}}\n"
        "train: {epochs: 7, accelerator: cpu, progress: false}\n"
        "tune:\n  n_trials: 5\n  epochs: 1\n  search_space:\n"
        "    train.optimizer.lr: {type: loguniform, low: 1.0e-5, high: 1.0e-2}\n")
    out = tmp_path / "study"
    code, stdout, err = cli(["tune", cfg, "--trials", "2", "--out", out], capsys)
    assert code == 0, err
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    lrs = trials["params_train.optimizer.lr"].tolist()
    assert all(1e-5 <= v <= 1e-2 for v in lrs) and lrs[0] != lrs[1]
    best = load_config(out / "best_config.yaml")  # validates
    assert best.train.optimizer.lr == pytest.approx(trials.loc[trials["value"].idxmin(), "params_train.optimizer.lr"])
    assert best.train.epochs == 7  # the full-run settings, not the trial ones
    for t in (0, 1):
        assert (out / f"trial_{t:03d}" / "metrics.csv").is_file()
    assert "best config" in stdout
