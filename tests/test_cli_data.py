"""`posetune data check|convert|split|show|synth` through the real CLI entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posetune.cli.main import main
from posetune.data.formats import read_dataset
from posetune.data.images import image_size, load_image, save_image


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


@pytest.fixture(scope="module")
def synth_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    with pytest.raises(SystemExit) as e:
        main(["data", "synth", "--out", str(out), "--n", "10", "--seed", "1"])
    assert e.value.code == 0
    return out / "annotations.json"


def _coco(tmp_path, annotations, images=None):
    """A small COCO file with two real 64x48 images (a.png, b.png)."""
    for name in ("a.png", "b.png"):
        save_image(tmp_path / name, np.zeros((48, 64, 3), np.uint8))
    d = {
        "images": images or [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                             {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "toy", "keypoints": ["head", "left_hand", "right_hand"],
                        "skeleton": [[1, 2], [1, 3]]}],
    }
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(d))
    return path


def _ann(i, image_id, kps, bbox=(0, 0, 60, 40)):
    return {"id": i, "image_id": image_id, "category_id": 1, "keypoints": kps, "num_keypoints": 3,
            "bbox": list(bbox), "area": bbox[2] * bbox[3], "iscrowd": 0}


def test_synth_then_check_is_clean(synth_json, capsys):
    assert synth_json.is_file() and len(list((synth_json.parent / "images").glob("*.png"))) == 10
    code, out, err = run(["data", "check", synth_json], capsys)
    assert code == 0, out + err
    assert "no problems found" in out and "left_wrist" in out and "10" in out


def test_check_reports_errors_with_places_and_exit_1(tmp_path, capsys):
    path = _coco(tmp_path, [
        _ann(1, 1, [10, 10, 2, 20, 20, 2, 90, 20, 2]),  # right_hand outside the 64x48 image
        _ann(2, 2, [10, 10, 2, 20, 20, 2, 30, 20, 2]),
    ], images=[{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
               {"id": 2, "file_name": "b.png", "width": 64, "height": 48},
               {"id": 3, "file_name": "gone.png", "width": 64, "height": 48}])
    code, out, err = run(["data", "check", path], capsys)
    assert code == 1, out + err
    assert "keypoint_outside_image" in out and "a.png (image id 1), instance id 1, keypoint 'right_hand'" in out
    assert "gone.png" in out and "Traceback" not in out + err
    code, out, _ = run(["data", "check", path, "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["counts"]["error"] >= 2 and report["summary"]["images"] == 3
    assert {"keypoint_outside_image"} <= {p["code"] for p in report["problems"]}
    assert report["summary"]["keypoints"]["head"] == {"labelled": 2, "visible": 2}


def test_warnings_alone_exit_0_and_many_problems_are_truncated(tmp_path, capsys):
    anns = [_ann(i + 1, 1 + i % 2, [10, 10, 2, 20, 20, 2, 30, 20, 2], bbox=(40, 30, 5, 5)) for i in range(30)]
    path = _coco(tmp_path, anns)
    code, out, _ = run(["data", "check", path, "--max-per-code", "5"], capsys)
    assert code == 0
    assert "keypoint_outside_box" in out and "30 problems" in out and "... and 25 more" in out
    assert "warning" in out


@pytest.mark.parametrize("args", [["--from", "coco"], []])
def test_malformed_json_is_a_one_line_error(tmp_path, capsys, args):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [}')
    code, out, err = run(["data", "check", bad, *args], capsys)
    assert code == 2
    assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1 and "bad.json" in err


def test_bad_paths_and_options_exit_2(tmp_path, synth_json, capsys):
    for args in (["data", "check", tmp_path / "missing.json"],
                 ["data", "convert", synth_json, tmp_path / "o", "--to", "pdf"],
                 ["data", "split", synth_json, "--out", tmp_path / "s", "--val", "0.7", "--test", "0.5"],
                 ["data", "synth", "--out", tmp_path / "x", "--spec", "hand21"],
                 ["data", "check", synth_json, "--spec", "nonsense"]):
        code, out, err = run(args, capsys)
        assert code == 2, args
        assert "Traceback" not in out + err and err.startswith("error:"), (args, err)


def test_convert_round_trip(tmp_path, synth_json, capsys):
    code, out, _ = run(["data", "convert", synth_json, tmp_path / "simple.json", "--to", "simple"], capsys)
    assert code == 0 and "wrote" in out and "10 images" in out
    back = read_dataset(tmp_path / "simple.json")
    orig = read_dataset(synth_json)
    assert back.num_instances == orig.num_instances == 10
    a = np.stack([i.keypoints for _, i in orig.iter_instances()])
    b = np.stack([i.keypoints for _, i in back.iter_instances()])
    assert np.allclose(a, b, atol=1e-3)
    assert back.image_path(back.images[0]).resolve() == orig.image_path(orig.images[0]).resolve()


def test_split_writes_coco_files_that_find_the_images(tmp_path, synth_json, capsys):
    out_dir = tmp_path / "splits"
    code, out, _ = run(["data", "split", synth_json, "--out", out_dir, "--val", "0.2", "--test", "0.1",
                        "--seed", "3"], capsys)
    assert code == 0
    assert "train" in out and "val" in out and "test" in out
    sizes = {}
    for name in ("train", "val", "test"):
        ds = read_dataset(out_dir / f"{name}.json")
        sizes[name] = ds.num_images
        for rec in ds.images:
            assert image_size(ds.image_path(rec)) == (256, 256)
    assert sizes == {"train": 7, "val": 2, "test": 1}
    run(["data", "split", synth_json, "--out", tmp_path / "again", "--val", "0.2", "--test", "0.1", "--seed", "3"],
        capsys)
    assert (tmp_path / "again" / "val.json").read_text() == (out_dir / "val.json").read_text()


def test_show_draws_labels_and_a_grid(tmp_path, synth_json, capsys):
    out_dir = tmp_path / "show"
    code, out, _ = run(["data", "show", synth_json, "--out", out_dir, "--n", "4", "--names"], capsys)
    assert code == 0
    drawings = sorted(p for p in out_dir.glob("*.png") if p.name != "grid.png")
    assert len(drawings) == 4 and (out_dir / "grid.png").is_file()
    first = load_image(drawings[0])
    raw = load_image(synth_json.parent / "images" / "000000.png")
    assert first.shape == raw.shape and (first != raw).any(axis=2).sum() > 200  # labels were drawn
    grid = load_image(out_dir / "grid.png")
    assert grid.shape[0] > 2 * 256 and grid.shape[1] > 2 * 256
    # random picks are reproducible; a missing image is drawn on a placeholder, not a crash
    code, _, _ = run(["data", "show", synth_json, "--out", tmp_path / "r1", "--n", "3", "--pick", "random",
                      "--seed", "5"], capsys)
    names1 = sorted(p.name for p in (tmp_path / "r1").glob("*.png"))
    run(["data", "show", synth_json, "--out", tmp_path / "r2", "--n", "3", "--pick", "random", "--seed", "5"], capsys)
    assert code == 0 and names1 == sorted(p.name for p in (tmp_path / "r2").glob("*.png"))
    path = _coco(tmp_path, [_ann(1, 1, [10, 10, 2, 20, 20, 2, 30, 20, 2])],
                 images=[{"id": 1, "file_name": "gone.png", "width": 64, "height": 48}])
    code, out, err = run(["data", "show", path, "--out", tmp_path / "s2"], capsys)
    assert code == 0 and "placeholder" in err and (tmp_path / "s2" / "grid.png").is_file()
