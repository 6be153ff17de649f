"""MediaPipe networks as posetune KeypointModels: outputs, codec, keypoint remapping, new heads,
stages, real-image accuracy, training (gradients, loss decreasing) and rebuilding."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from posetune.config.schema import LossConfig, ModelConfig
from posetune.data.images import load_image
from posetune.data.presets import COCO17, HAND21, MEDIAPIPE_FACE468, MEDIAPIPE_HAND21, MEDIAPIPE_POSE33
from posetune.data.spec import KeypointSpec
from posetune.engine.losses import build_loss
from posetune.errors import ConfigError, ModelError
from posetune.models.build import build_from_description, build_model
from posetune.models.mediapipe import (MediaPipeLandmarkCodec, MediaPipeModel, TFLiteModule, build_mediapipe_model,
                                       load_tflite_module)


#: these small nets run fastest single-threaded on a shared 2-core machine (conftest fixture)
pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # random inputs: the same numbers on every run


@pytest.fixture(autouse=True)
def _cache(mediapipe_cache, monkeypatch):
    monkeypatch.setenv("POSETUNE_CACHE", str(mediapipe_cache))


def _cfg(variant: str, new_head: bool = False) -> ModelConfig:
    cfg = ModelConfig(type="mediapipe")
    cfg.mediapipe.variant = variant
    cfg.mediapipe.new_head = new_head
    return cfg


_MODELS: dict = {}


def _model(variant: str, spec: KeypointSpec | None = None, new_head: bool = False) -> MediaPipeModel:
    """Models are cached per test session (conversion takes ~0.2 s, tests must not mutate them)."""
    key = (variant, spec.name if spec else None, new_head)
    if key not in _MODELS:
        _MODELS[key] = build_mediapipe_model(_cfg(variant, new_head), spec).eval()
    return _MODELS[key]


def _crop(path, bbox, size, pad=1.25):
    """Square crop around ``bbox`` resized to ``size`` (pixel centres mapped exactly) and the
    image -> crop map for keypoints."""
    img = load_image(path)
    x, y, w, h = bbox
    side = max(w, h) * pad
    s = side / size
    x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
    a = np.float32([[s, 0, x0 + 0.5 * s - 0.5], [0, s, y0 + 0.5 * s - 0.5]])  # crop px -> image px
    out = cv2.warpAffine(img, a, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    inv = np.linalg.inv(np.vstack([a, [0, 0, 1]]))
    return out, lambda kp: kp[:, :2] @ inv[:2, :2].T + inv[:2, 2]


def _annotated(shared_data, rel_json, rel_root, image_id, size):
    d = json.loads((shared_data / rel_json).read_text())
    files = {i["id"]: i["file_name"] for i in d["images"]}
    ann = next(a for a in d["annotations"] if a["image_id"] == image_id)
    kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
    img, to_crop = _crop(shared_data / rel_root / files[image_id], ann["bbox"], size)
    return img, to_crop(kp).astype(np.float32), (kp[:, 2] > 0).astype(np.float32)


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


# ----------------------------------------------------------------------------- outputs and codec
def test_pose_model_outputs_and_decoding_follow_the_native_landmarks():
    m = _model("pose_full")
    assert m.spec == MEDIAPIPE_POSE33 and m.input_size == (256, 256)
    assert isinstance(m.codec, MediaPipeLandmarkCodec) and m.codec.name == "mediapipe"
    x = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        out = m(x)
        raw = m.net.run(x.float() / 255, outputs=["Identity"])[0].reshape(2, 39, 5)
        kp, scores = m.predict(x)
    assert out.shape == (2, 33, 3)
    # normalised = MediaPipe pixels / size; decoded = MediaPipe pixels - 0.5 (pixel centres at integers)
    torch.testing.assert_close(out[..., :2], raw[:, :33, :2] / 256)
    torch.testing.assert_close(kp, raw[:, :33, :2] - 0.5, rtol=0, atol=1e-4)
    torch.testing.assert_close(scores, torch.sigmoid(raw[:, :33, 3]))
    # the raw vector decodes the same way
    kp2, scores2 = m.codec.decode(raw.reshape(2, -1))
    torch.testing.assert_close(kp2[:, :33], kp, rtol=0, atol=1e-4)
    torch.testing.assert_close(scores2[:, :33], scores)
    # batch rows are independent
    with torch.no_grad():
        torch.testing.assert_close(m(x[1:2]), out[1:2], rtol=0, atol=1e-4)


def test_wrong_input_size_is_a_model_error():
    with pytest.raises(ModelError, match=r"takes \(B, 3, 224, 224\).*got \(1, 3, 256, 192\)"):
        _model("hand_lite")(torch.rand(1, 3, 256, 192))


def test_codec_encode_decode_round_trip():
    codec = MediaPipeLandmarkCodec((256, 256), values=5)
    kp = np.array([[0.0, 0.0], [127.5, 64.25], [255.0, 255.0], [300.0, 10.0]], np.float32)
    t = codec.encode(kp, np.array([1, 1, 1, 1], np.float32))
    assert t["keypoint_weights"].tolist() == [1, 1, 1, 0]  # outside the input
    np.testing.assert_allclose(t["keypoints"][:3], kp[:3])
    np.testing.assert_allclose(t["keypoints_norm"][1], [(127.5 + 0.5) / 256, (64.25 + 0.5) / 256])
    out = torch.cat([torch.from_numpy(t["keypoints_norm"])[None], torch.full((1, 4, 1), 3.0)], dim=-1)
    dec, scores = codec.decode(out)
    np.testing.assert_allclose(dec[0, :3].numpy(), kp[:3], atol=1e-4)
    np.testing.assert_allclose(scores.numpy(), 1 / (1 + np.exp(-3.0)), atol=1e-6)
    flipped = codec.flip_back(out, np.array([0, 2, 1, 3]))
    assert torch.allclose(flipped[0, 1, 0], 1 - out[0, 2, 0])


@pytest.mark.parametrize("variant,native,size,presence_key", [
    ("hand_full", MEDIAPIPE_HAND21, 224, "handedness"),
    ("hand_lite", MEDIAPIPE_HAND21, 224, "handedness"),
    ("face", MEDIAPIPE_FACE468, 192, None),
])
def test_hand_and_face_models_score_with_the_presence_flag(variant, native, size, presence_key):
    m = _model(variant)
    assert m.spec == native and m.input_size == (size, size)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out = m(x)
        allo = m.forward_all(x)
    assert out.shape == (2, native.num_keypoints, 3)
    # every landmark's score logit is the presence logit; forward_all gives its probability
    torch.testing.assert_close(torch.sigmoid(out[:, 0, 2]), allo["presence"])
    assert torch.all(out[..., 2] == out[:, :1, 2])
    torch.testing.assert_close(allo["landmarks"][..., :2] / size, out[..., :2])
    if presence_key:
        assert allo[presence_key].shape == (2,) and allo["world_landmarks"].shape == (2, 21, 3)
        # hand presence: the TFLite output is the sigmoid of the logit the model uses
        flag = m.net.run(x, outputs=["Identity_1"])[0].reshape(2)
        torch.testing.assert_close(allo["presence"], flag, rtol=0, atol=1e-6)


def test_blazepose_forward_all_reaches_heatmaps_and_segmentation():
    m = _model("pose_full")
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        allo = m.forward_all(x)
        seg, heat, world = m.net.run(x, outputs=["Identity_2", "Identity_3", "Identity_4"])
    assert allo["heatmaps"].shape == (1, 39, 64, 64) and allo["segmentation"].shape == (1, 1, 256, 256)
    assert torch.equal(allo["heatmaps"], heat) and torch.equal(allo["segmentation"], seg)
    assert allo["world_landmarks"].shape == (1, 39, 3) and torch.equal(allo["world_landmarks"].reshape(1, -1), world)
    assert allo["landmarks"].shape == (1, 39, 5) and 0 <= float(allo["presence"]) <= 1
    # forward() runs only the landmark branch
    assert len(m.net.plan(m._main)) < len(m.net.plan())


# ----------------------------------------------------------------------------- keypoint sets
def test_coco17_keypoints_are_read_from_the_blazepose_landmarks():
    native, coco = _model("pose_full"), _model("pose_full", COCO17)
    assert coco.new_head is None and coco.spec == COCO17
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        a, b = native(x), coco(x)
    idx = [MEDIAPIPE_POSE33.index(n) for n in COCO17.keypoints]
    assert torch.equal(b, a[:, idx])
    assert sum(p.numel() for p in coco.parameters()) == sum(p.numel() for p in native.parameters())


def test_onehand10k_names_map_to_mediapipe_hand_landmarks():
    m = _model("hand_full", HAND21)
    assert m.new_head is None and m.sources == list(range(21))


def test_new_head_predicts_unknown_keypoints_from_penultimate_features():
    spec = KeypointSpec.from_names(["nose", "left_wrist", "tail_tip", "right_wrist", "horn"], name="mixed")
    m = build_mediapipe_model(_cfg("pose_full"), spec).eval()
    assert m.sources == [0, 15, None, 16, None]
    assert m.feature_tensor is not None and m.net.shape_of(m.feature_tensor) == (1, 288, 2, 2)
    x = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        out = m(x)
        native = _model("pose_full")(x)
    assert out.shape == (2, 5, 3)
    assert torch.equal(out[:, [0, 1, 3]], native[:, [0, 15, 16]])
    # new keypoints start in the middle of the crop with a neutral score
    torch.testing.assert_close(out[:, [2, 4]], torch.tensor([0.5, 0.5, 0.0]).expand(2, 2, 3))
    head_params = {id(p) for p in dict(m.stages())["head"].parameters()}
    assert all(id(p) in head_params for p in m.new_head.parameters())
    # new_head: true replaces every keypoint
    m2 = build_mediapipe_model(_cfg("pose_full", new_head=True), COCO17)
    assert m2.sources == [None] * 17 and m2.new_head[1].out_features == 51


def test_stages_cover_every_parameter_once_from_input_to_head():
    for variant in ("pose_full", "hand_lite", "face"):
        m = _model(variant)
        stages = m.stages()
        names = [n for n, _ in stages]
        assert names == ["stage1", "stage2", "stage3", "stage4", "stage5", "aux", "head"]
        ids = [id(p) for _, mod in stages for p in mod.parameters()]
        assert len(ids) == len(set(ids)) == len(list(m.parameters()))
        assert all(sum(1 for _ in mod.parameters()) > 0 for n, mod in stages if n != "aux" or variant != "face")
    pose = _model("pose_full")
    first = pose.net.layers["conv003"]
    assert any(p is first.weight for p in dict(pose.stages())["stage1"].parameters())


# ----------------------------------------------------------------------------- real images
def test_blazepose_finds_coco_keypoints_on_a_real_person(shared_data):
    m = _model("pose_full", COCO17)
    img, gt, vis = _annotated(shared_data, "mmpose_coco/coco/test_coco.json", "mmpose_coco/coco", 785, 256)
    kp, scores = m.predict(_tensor(img))
    err = np.linalg.norm(kp[0].numpy() - gt, axis=1)[vis > 0]
    assert err.mean() < 10.0 and np.median(err) < 8.0  # of a 256 px crop (measured: 5.4 / 4.2)
    assert float(scores.mean()) > 0.8


def test_hand_model_finds_onehand10k_keypoints(shared_data):
    m = _model("hand_full", HAND21)
    img, gt, vis = _annotated(shared_data, "mmpose_onehand10k/onehand10k/test_onehand10k.json",
                              "mmpose_onehand10k/onehand10k", 9, 224)
    kp, _ = m.predict(_tensor(img))
    err = np.linalg.norm(kp[0].numpy() - gt, axis=1)[vis > 0]
    assert err.mean() < 10.0  # measured 4.4 px of 224


# ----------------------------------------------------------------------------- training
def test_gradients_reach_the_first_converted_layers():
    m = build_mediapipe_model(_cfg("pose_full"), COCO17).train()
    x = torch.rand(2, 3, 256, 256)
    out = m(x)
    out[..., :2].sum().backward()
    stages = dict(m.stages())
    for name in ("stage1", "stage3", "stage5", "head"):
        grads = [p.grad for p in stages[name].parameters()]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name
    m.zero_grad()
    allo = m.forward_all(x)
    (allo["heatmaps"].mean() + allo["segmentation"].mean()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stages["aux"].parameters())


def test_a_few_optimizer_steps_reduce_the_landmark_loss(shared_data):
    m = build_mediapipe_model(_cfg("hand_lite"), HAND21).train()
    loss_fn = build_loss(LossConfig(type="l1"), m.codec, HAND21)
    images, targets = [], []
    for image_id in (9, 1402):
        img, gt, vis = _annotated(shared_data, "mmpose_onehand10k/onehand10k/test_onehand10k.json",
                                  "mmpose_onehand10k/onehand10k", image_id, 224)
        images.append(_tensor(img))
        targets.append(m.codec.encode(gt, vis))
    x = torch.cat(images)
    batch = {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss, parts = loss_fn(m(x), batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert set(parts) == {"l1"}
    assert losses[-1] < 0.7 * losses[0], losses


# ----------------------------------------------------------------------------- building
def test_build_model_dispatch_and_rebuild_from_description():
    m = build_model(_cfg("hand_lite"), HAND21)
    assert isinstance(m, MediaPipeModel)
    d = m.describe()
    assert d["type"] == "mediapipe" and d["config"]["codec"]["type"] == "mediapipe"
    assert d["config"]["codec"]["input_size"] == [224, 224]
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01)
    m2 = build_from_description(json.loads(json.dumps(d)))
    m2.load_state_dict(m.state_dict())
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), m2.eval()(x))


def test_load_tflite_module_converts_any_cached_model():
    det = load_tflite_module("pose_detection", output_layout="nhwc")
    assert isinstance(det, TFLiteModule) and det.output_names == ["Identity", "Identity_1"]
    with torch.no_grad():
        boxes, scores = det(torch.rand(2, 3, 224, 224))
    assert boxes.shape == (2, 2254, 12) and scores.shape == (2, 2254, 1)
    with pytest.raises(ModelError, match="no model 'nonexistent'"):
        load_tflite_module("nonexistent")


def test_bad_variant_and_version_are_config_errors(mediapipe_cache):
    with pytest.raises(Exception, match="variant"):
        _cfg("body_lite")
    cfg = _cfg("face")
    cfg.mediapipe.version = "0.10.21; rm -rf /"
    with pytest.raises(ConfigError, match="invalid mediapipe version"):
        build_mediapipe_model(cfg, None)


def test_corrupt_cached_model_is_reported_with_the_fix(mediapipe_cache, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "cache"
    shutil.copytree(mediapipe_cache / "mediapipe", root / "mediapipe")
    target = root / "mediapipe" / "0.10.21" / "face_landmark.tflite"
    data = bytearray(target.read_bytes())
    data[5000] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setenv("POSETUNE_CACHE", str(root))
    with pytest.raises(ModelError, match="corrupt.*--force"):
        build_mediapipe_model(_cfg("face"), None)
