"""Procedural synthetic datasets (posetune.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.data.formats import read_dataset
from posetune.data.images import image_size, load_image
from posetune.data.synthetic import make_synthetic_dataset, render_synthetic_sample, synthetic_dataset
from posetune.errors import DataError


def test_written_dataset_reads_back_with_the_coco_reader(tmp_path):
    path = make_synthetic_dataset(tmp_path / "syn", n_images=6, seed=3)
    assert path.name == "annotations.json" and path.is_file()
    ds = read_dataset(path)
    assert ds.format == "coco" and ds.spec.name == "coco17" and ds.num_images == 6 and ds.num_instances == 6
    assert not ds.problems
    for rec in ds.images:
        assert image_size(ds.image_path(rec)) == (256, 256) == (rec.width, rec.height)
        inst = rec.instances[0]
        kp = inst.keypoints
        assert set(np.unique(kp[:, 2])) <= {1.0, 2.0}  # every point labelled, some occluded
        assert (kp[:, :2] >= 0).all() and (kp[:, :2] <= 255).all()
        x, y, w, h = inst.bbox
        assert x <= kp[:, 0].min() and kp[:, 0].max() <= x + w and y <= kp[:, 1].min() and kp[:, 1].max() <= y + h
        # "tight with margin": the box is not much larger than the figure's keypoint extent
        assert w * h < 4 * (np.ptp(kp[:, 0]) + 20) * (np.ptp(kp[:, 1]) + 20)


def test_keypoints_lie_on_the_drawn_figure():
    # the plain style draws on a flat grey (128) background without camera effects
    ds, images = synthetic_dataset(8, seed=5, style="plain")
    for rec, img in zip(ds.images, images):
        assert tuple(img[0, 0]) == (128, 128, 128)
        for inst in rec.instances:
            for (x, y, v), name in zip(inst.keypoints, ds.spec.keypoints):
                if v == 2:
                    px = img[int(round(y)), int(round(x))].astype(int)
                    assert np.abs(px - 128).max() > 3, f"{name} at ({x:.0f}, {y:.0f}) is on the background"


def test_mouse_dataset(tmp_path):
    path = make_synthetic_dataset(tmp_path / "mice", n_images=4, spec="mouse4", seed=1, size=(200, 160))
    ds = read_dataset(path)
    assert ds.spec.keypoints == ("snout", "leftear", "rightear", "tailbase")
    assert ds.spec.flip_pairs == ((1, 2),)
    assert ds.categories == ["mouse"]
    assert image_size(ds.image_path(ds.images[0])) == (200, 160)
    _, images = synthetic_dataset(4, spec="mouse4", seed=1, style="plain")
    ds_plain, _ = synthetic_dataset(4, spec="mouse4", seed=1, style="plain")
    for rec, img in zip(ds_plain.images, images):
        kp = rec.instances[0].keypoints
        assert (kp[:, 2] == 2).all()
        for x, y, _ in kp:
            assert np.abs(img[int(round(y)), int(round(x))].astype(int) - 128).max() > 3
        # seen from above the left ear is on the mouse's left: cross(heading, left) < 0 in image coords
        heading = kp[0, :2] - kp[3, :2]
        to_left = kp[1, :2] - kp[2, :2]
        assert heading[0] * to_left[1] - heading[1] * to_left[0] < 0


def test_deterministic_per_seed(tmp_path):
    a, ims_a = synthetic_dataset(3, seed=11)
    b, ims_b = synthetic_dataset(5, seed=11)  # the first images do not depend on n_images
    c, ims_c = synthetic_dataset(3, seed=12)
    for i in range(3):
        assert np.array_equal(ims_a[i], ims_b[i])
        assert np.array_equal(a.images[i].instances[0].keypoints, b.images[i].instances[0].keypoints)
    assert not np.array_equal(ims_a[0], ims_c[0])
    p1 = make_synthetic_dataset(tmp_path / "x", 2, seed=4)
    p2 = make_synthetic_dataset(tmp_path / "y", 2, seed=4)
    assert p1.read_text() == p2.read_text()
    assert np.array_equal(load_image(p1.parent / "images/000001.png"), load_image(p2.parent / "images/000001.png"))


def test_variation_and_occlusion():
    ds, images = synthetic_dataset(24, seed=0)
    kps = ds.keypoint_array()
    heights = np.ptp(kps[:, :, 1], axis=1)
    centres = kps[:, :, :2].mean(axis=1)
    assert heights.std() > 10 and centres.std(axis=0).min() > 5  # scale and position vary
    assert (kps[..., 2] == 1).any() and (kps[..., 2] == 2).mean() > 0.8  # mostly visible, some occluded
    assert len({tuple(img[0, 0]) for img in images}) > 20  # backgrounds differ
    # front-facing people: the left shoulder is on the image right of the right shoulder
    assert (kps[:, 5, 0] > kps[:, 6, 0]).mean() > 0.9


def test_several_people_per_image():
    rng = np.random.default_rng(0)
    img, instances = render_synthetic_sample(rng, "coco17", size=(384, 256), subjects=3)
    assert img.shape == (256, 384, 3) and len(instances) == 3
    xs = sorted(inst.keypoints[:, 0].mean() for inst in instances)
    assert xs[1] - xs[0] > 40 and xs[2] - xs[1] > 40  # side by side


def test_bad_arguments_are_data_errors():
    with pytest.raises(DataError, match="mouse4"):
        synthetic_dataset(2, spec="hand21")
    with pytest.raises(DataError):
        synthetic_dataset(0)
    with pytest.raises(DataError):
        synthetic_dataset(2, size=(8, 8))


def test_a_pretrained_pose_network_recognises_the_figures(mediapipe_cache):
    """BlazePose (MediaPipe, trained on real people) finds the synthetic joints far better than the
    dataset's mean pose does: the figures look enough like people for transfer learning demos."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from posetune.data.presets import COCO17_NAMES, MP_POSE33_NAMES
    from posetune.models.mediapipe.fetch import mediapipe_model_path

    net = Interpreter(model_path=str(mediapipe_model_path("pose_landmark_full", "0.10.21", cache=mediapipe_cache)))
    net.allocate_tensors()
    inp, out = net.get_input_details()[0], net.get_output_details()[0]
    to_coco = [MP_POSE33_NAMES.index(n) for n in COCO17_NAMES]
    ds, images = synthetic_dataset(24, seed=0)
    pred, gt = [], []
    for rec, img in zip(ds.images, images):
        inst = rec.instances[0]
        x, y, w, h = inst.bbox
        s = 256 / (1.25 * max(w, h))  # a person-centred 256x256 crop, as BlazePose expects
        m = np.array([[s, 0, 128 - (x + w / 2) * s], [0, s, 128 - (y + h / 2) * s]])
        crop = cv2.warpAffine(img, m, (256, 256))
        net.set_tensor(inp["index"], crop[None].astype(np.float32) / 255.0)
        net.invoke()
        pred.append(net.get_tensor(out["index"]).reshape(39, 5)[to_coco, :2])
        gt.append(inst.keypoints[:, :2] @ m[:, :2].T + m[:, 2])
    pred, gt = np.array(pred), np.array(gt)
    pck_model = (np.linalg.norm(pred - gt, axis=2) < 0.05 * 256).mean()
    pck_mean_pose = (np.linalg.norm(gt.mean(axis=0) - gt, axis=2) < 0.05 * 256).mean()
    assert pck_model > 0.6 and pck_model > pck_mean_pose + 0.3, (pck_model, pck_mean_pose)
