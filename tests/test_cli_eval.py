"""`posetune eval` and `posetune compare` on real COCO-style fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from posetune.cli.main import main
from posetune.config.schema import CodecConfig, HeadConfig, ModelConfig
from posetune.data.formats import read_dataset
from posetune.engine.metadata import checkpoint_metadata
from posetune.models.build import build_model

STABLE_KEYS = {"AP", "AP50", "AR", "PCK@0.05", "PCK@0.1", "AUC", "EPE", "RMSE", "NME", "per_keypoint"}


def save_checkpoint(model, path: Path) -> Path:
    """A checkpoint the way the training engine writes one (weights under 'model.' + metadata)."""
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "posetune": checkpoint_metadata(model)}, path)
    return path


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture
def hand_data(shared_data):
    return shared_data / "mmpose_onehand10k" / "onehand10k" / "test_onehand10k.json"


@pytest.fixture
def tiny_checkpoint(tmp_path, hand_data, torch_single_thread):
    spec = read_dataset(hand_data).spec
    torch.manual_seed(0)
    model = build_model(ModelConfig(head=HeadConfig(type="deconv", deconv_layers=1, deconv_channels=16),
                                    codec=CodecConfig(type="msra", input_size=(64, 64))), spec)
    return save_checkpoint(model, tmp_path / "tiny.ckpt")


def test_eval_json_has_stable_keys_and_per_keypoint(tiny_checkpoint, hand_data, capsys, tmp_path):
    pred_file = tmp_path / "pred.json"
    code, out, err = run(["eval", str(tiny_checkpoint), "--data", str(hand_data), "--json", "--device", "cpu",
                          "--save-predictions", str(pred_file)], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert STABLE_KEYS <= set(result)
    assert set(result["per_keypoint"]) == set(read_dataset(hand_data).spec.keypoints)
    assert 0.0 <= result["PCK@0.1"] <= 1.0 and result["EPE"] > 0
    # the saved predictions evaluate to the same AP through `posetune metrics coco`
    rows = json.loads(pred_file.read_text())
    assert len(rows) == 4 and len(rows[0]["keypoints"]) == 21 * 3
    code, out, err = run(["metrics", "coco", "--gt", str(hand_data), "--pred", str(pred_file), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["AP"] == pytest.approx(result["AP"], abs=1e-9)


def test_eval_rejects_a_checkpoint_with_other_keypoints(tiny_checkpoint, shared_data, capsys):
    coco = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    code, out, err = run(["eval", str(tiny_checkpoint), "--data", str(coco), "--device", "cpu"], capsys)
    assert code == 2 and "Traceback" not in err and "21 keypoints" in err


def test_eval_missing_checkpoint_is_one_line(hand_data, capsys, tmp_path):
    code, _, err = run(["eval", str(tmp_path / "nope.ckpt"), "--data", str(hand_data)], capsys)
    assert code == 2 and "mediapipe-pose" in err and len(err.strip().splitlines()) == 1


def test_compare_pretrained_vs_checkpoint_writes_the_report(tiny_checkpoint, hand_data, mediapipe_cache, capsys,
                                                             tmp_path):
    out_dir = tmp_path / "report"
    code, out, err = run(["compare", "mediapipe-hand", str(tiny_checkpoint), "--data", str(hand_data),
                          "--out", str(out_dir), "--device", "cpu", "--n-images", "2"], capsys)
    assert code == 0, err
    for name in ("report.md", "report.html", "metrics.json", "per_keypoint.png", "grid.png"):
        assert (out_dir / name).is_file(), name
    metrics = json.loads((out_dir / "metrics.json").read_text())
    rows = {r["metric"]: r for r in metrics["rows"]}
    a, b = metrics["models"]
    # the real pretrained hand network beats an untrained one, and the report says by how much
    assert rows["PCK@0.1"][a] > rows["PCK@0.1"][b]
    assert rows["EPE"]["difference"] == pytest.approx(rows["EPE"][b] - rows["EPE"][a])
    assert rows["EPE"]["better"] is False
    html = (out_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "PCK@0.1" in html
