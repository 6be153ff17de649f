"""BlazePose multi-task fine-tuning (keypoints + person mask, ``model.mediapipe.segmentation_weight``):
mask targets that follow the augmented crop, the mask sources (COCO polygons, RLE, fallback), the
loss wiring, a few optimisation steps on real COCO crops, and weight 0 leaving everything as before."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from posetune.config.schema import AugmentConfig, DataConfig, LossConfig, MediaPipeConfig, ModelConfig
from posetune.data.datamodule import KeypointDataModule, TopDownDataset
from posetune.data.formats import read_dataset
from posetune.data.presets import COCO17
from posetune.data.records import Instance
from posetune.data.transforms import TopDownTransform
from posetune.engine.losses import KeypointLoss, build_loss
from posetune.errors import ModelError
from posetune.models.build import build_from_description, build_model
from posetune.models.mediapipe import MediaPipeModel
from posetune.models.mediapipe.segmentation import (MediaPipeMultiTask, MultiTaskLoss, PersonMaskCodec, mask_bce,
                                                    person_mask)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(autouse=True)
def _env(mediapipe_cache, monkeypatch):
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def coco(shared_data):
    return read_dataset(shared_data / "mmpose_coco" / "coco" / "test_coco.json")


def _cfg(weight: float, variant: str = "pose_full") -> ModelConfig:
    return ModelConfig(type="mediapipe", mediapipe=MediaPipeConfig(variant=variant, segmentation_weight=weight))


def _dataset(data, codec, augment: bool, min_keypoints: int = 12) -> TopDownDataset:
    aug = (AugmentConfig(rotate=60, rotate_prob=1.0, flip_prob=1.0, scale=(0.9, 1.1), color_jitter_prob=0.0)
           if augment else AugmentConfig(enabled=False))
    tr = TopDownTransform(aug, codec.input_size, spec=data.spec, train=augment)
    return TopDownDataset(data, codec, tr, min_keypoints=min_keypoints, seed=3)


def _batch(items):
    x = torch.stack([it["image"] for it in items])
    return x, {k: torch.stack([it["targets"][k] for it in items]) for k in items[0]["targets"]}


# ----------------------------------------------------------------------------- targets
def test_mask_targets_follow_the_augmented_crop(coco):
    model = build_model(_cfg(0.1), COCO17).eval()
    assert isinstance(model, MediaPipeMultiTask) and isinstance(model.codec, PersonMaskCodec)
    ds = _dataset(coco, model.codec, augment=True)
    items = [ds[i] for i in range(len(ds))]
    assert any(bool(it["meta"]["flipped"]) for it in items) and all(it["targets"]["mask"].dtype == torch.uint8
                                                                    for it in items)
    x, targets = _batch(items)
    assert targets["mask"].shape == (len(items), 256, 256) and torch.all(targets["mask_weight"] == 1)
    # labelled joints lie on the person's mask (measured 0.93 of them; a mask that ignores the
    # crop's flip: 0.36) ...
    on_mask = []
    for it in items:
        mask = cv2.dilate(it["targets"]["mask"].numpy(), np.ones((7, 7), np.uint8))
        labelled = it["targets"]["keypoint_weights"].numpy() > 0
        q = np.clip(np.round(it["meta"]["input_keypoints"].numpy()[labelled]).astype(int), 0, 255)
        on_mask.append(mask[q[:, 1], q[:, 0]].mean())
    assert np.mean(on_mask) > 0.85, on_mask
    # ... and the pretrained BlazePose mask on the same crops agrees with the target (measured IoU 0.75)
    with torch.no_grad():
        pred = model.forward_all(x)["segmentation"][:, 0] > 0
    gt = targets["mask"].bool()
    iou = (pred & gt).flatten(1).sum(1) / (pred | gt).flatten(1).sum(1)
    assert iou.mean() > 0.65, iou


def test_mask_sources_polygon_rle_and_fallbacks(coco):
    from pycocotools import mask as mask_utils

    rec = coco.images[0]  # 000000000785.jpg, one skier
    inst = rec.instances[0]
    warp = np.array([[0.5, 0.0, -100.0], [0.0, 0.5, -10.0]])
    poly, w_poly = person_mask(inst, warp, (256, 256), (rec.width, rec.height))
    assert w_poly == 1.0 and 0.05 < poly.mean() < 0.5
    # the same outline as (compressed) RLE gives the same mask (up to rasterisation: measured IoU 0.95)
    polygons = inst.extra["coco"]["segmentation"]
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, rec.height, rec.width))
    as_rle = Instance(keypoints=inst.keypoints, bbox=inst.bbox, extra={"coco": {"segmentation": rle}})
    from_rle, w_rle = person_mask(as_rle, warp, (256, 256), (rec.width, rec.height))
    assert w_rle == 1.0 and (from_rle & poly).sum() / (from_rle | poly).sum() > 0.9
    # no segmentation: the box ellipse + keypoint hull ("shape"), or no mask loss ("ignore")
    bare = Instance(keypoints=inst.keypoints, bbox=inst.bbox)
    shape, w_shape = person_mask(bare, warp, (256, 256), (rec.width, rec.height))
    assert w_shape == 1.0 and (shape & poly).sum() / (shape | poly).sum() > 0.4
    x, y, bw, bh = inst.bbox
    cx, cy = 0.5 * (x + bw / 2) - 100, 0.5 * (y + bh / 2) - 10
    assert shape[int(cy), int(cx)] == 1 and shape[0, 0] == 0
    empty, w_empty = person_mask(bare, warp, (256, 256), (rec.width, rec.height), fallback="ignore")
    assert w_empty == 0.0 and empty.sum() == 0
    # the codec draws at the network's mask size, with the same geometry at another resolution
    codec = PersonMaskCodec((256, 256), mask_size=(64, 64))
    small = codec.encode_mask(inst, warp, (rec.width, rec.height))["mask"]
    up = cv2.resize(small, (256, 256), interpolation=cv2.INTER_NEAREST)
    assert (up & poly).sum() / (up | poly).sum() > 0.85


def test_mask_bce_weights_and_errors():
    logits = torch.tensor([[[[10.0, -10.0]]], [[[-10.0, 10.0]]]])  # (2, 1, 1, 2)
    mask = torch.tensor([[[1, 0]], [[1, 0]]], dtype=torch.uint8)  # sample 0 right, sample 1 wrong
    both = mask_bce(logits, mask)
    assert 4.9 < float(both) < 5.1
    assert float(mask_bce(logits, mask, torch.tensor([1.0, 0.0]))) < 1e-3
    assert float(mask_bce(logits, mask, torch.tensor([0.0, 0.0]))) == 0.0
    with pytest.raises(ModelError, match="do not match the mask target"):
        mask_bce(torch.zeros(2, 1, 4, 4), mask)


# ----------------------------------------------------------------------------- training
def test_a_few_steps_reduce_keypoint_and_mask_losses(coco):
    model = build_model(_cfg(0.1), COCO17)
    loss_fn = build_loss(LossConfig(type="l1"), model.codec, COCO17)
    assert isinstance(loss_fn, MultiTaskLoss) and loss_fn.weight == pytest.approx(0.1)
    ds = _dataset(coco, model.codec, augment=False, min_keypoints=15)
    x, targets = _batch([ds[i] for i in range(4)])
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    history = []
    for _ in range(5):
        opt.zero_grad()
        outputs = model(x)
        assert set(outputs) == {"keypoints", "segmentation"} and outputs["segmentation"].shape == (4, 1, 256, 256)
        loss, parts = loss_fn(outputs, targets)
        loss.backward()
        opt.step()
        assert float(loss.detach()) == pytest.approx(parts["l1"] + 0.1 * parts["mask_bce"], rel=1e-4)
        history.append((parts["l1"], parts["mask_bce"]))
    (kp0, bce0), (kp1, bce1) = history[0], history[-1]
    assert kp1 < 0.95 * kp0 and bce1 < 0.7 * bce0, history  # measured 0.029 -> 0.025, 6.4 -> 2.1
    # eval mode: plain keypoints, and the loss is the keypoint term alone
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (4, 17, 3)
    loss, parts = loss_fn(out, targets)
    assert set(parts) == {"l1"} and float(loss) == pytest.approx(parts["l1"])


def test_weight_zero_changes_nothing(coco):
    plain = build_model(_cfg(0.0), COCO17)
    multi = build_model(_cfg(0.5), COCO17)
    assert type(plain) is MediaPipeModel and not hasattr(plain.codec, "encode_mask")
    plain_loss = build_loss(LossConfig(), plain.codec, COCO17)
    assert isinstance(plain_loss, KeypointLoss)
    ds_plain = _dataset(coco, plain.codec, augment=True)
    ds_multi = _dataset(coco, multi.codec, augment=True)
    a, b = ds_plain[0], ds_multi[0]
    assert set(a["targets"]) == {"keypoints", "keypoints_norm", "keypoint_weights"}
    assert set(b["targets"]) == set(a["targets"]) | {"mask", "mask_weight"}
    for k in a["targets"]:
        assert torch.equal(a["targets"][k], b["targets"][k])
    assert torch.equal(a["image"], b["image"])
    x, targets = _batch([ds_plain[i] for i in range(2)])
    with torch.no_grad():
        out_plain = plain.train()(x)
        out_multi = multi.train()(x)
        assert torch.equal(plain.eval()(x), multi.eval()(x))
    assert isinstance(out_plain, torch.Tensor) and torch.equal(out_plain, out_multi["keypoints"])
    multi_loss = build_loss(LossConfig(), multi.codec, COCO17)
    l_plain, p_plain = plain_loss(out_plain, targets)
    _, p_multi = multi_loss(out_multi, {**targets, **_batch([ds_multi[i] for i in range(2)])[1]})
    assert p_multi["smooth_l1"] == pytest.approx(p_plain["smooth_l1"]) and "mask_bce" in p_multi


def test_datamodule_and_rebuild_keep_the_multitask_model(coco):
    model = build_model(_cfg(0.2), COCO17)
    dm = KeypointDataModule.from_datasets(coco, coco, codec=model.codec,
                                          cfg=DataConfig(batch_size=2, workers=0, min_keypoints=12))
    batch = next(iter(dm.train_dataloader()))
    assert batch["targets"]["mask"].shape == (2, 256, 256) and batch["targets"]["mask_weight"].shape == (2,)
    rebuilt = build_from_description(model.describe())
    assert isinstance(rebuilt, MediaPipeMultiTask) and rebuilt.segmentation_weight == pytest.approx(0.2)
    assert rebuilt.codec.mask_size == (256, 256)


def test_segmentation_weight_config_errors():
    with pytest.raises(ModelError, match="no segmentation output.*segmentation_weight"):
        build_model(_cfg(1.0, "hand_lite"), None)
    with pytest.raises(ValidationError):
        MediaPipeConfig(segmentation_weight=-1.0)
