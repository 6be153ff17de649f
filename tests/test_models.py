"""Top-down models: timm backbones x heads, config checks, stages, adapt_head, describe/rebuild."""

from __future__ import annotations

import pytest
import torch

from posetune.config.schema import ModelConfig
from posetune.data.spec import KeypointSpec, get_spec
from posetune.errors import ModelError, NetworkError
from posetune.models.build import build_from_description, build_model
from posetune.models.heads import DeconvHead, RegressionHead
from posetune.models.topdown import TopDownModel, adapt_head

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # see conftest.py

SPEC = KeypointSpec.from_names(["nose", "left_eye", "right_eye", "tail", "left_paw"], name="toy")
SIZE = (32, 64)  # (w, h), a multiple of 32; small keeps the matrix fast
HEAD_CODEC = {"deconv": "msra", "heatmap": "udp", "simcc": "simcc", "regression": "regression", "cnn": "regression"}


def make_cfg(backbone: str = "resnet18", head: str = "deconv", size=SIZE, **extra) -> ModelConfig:
    d = {"backbone": {"name": backbone}, "head": {"type": head}, "codec": {"type": HEAD_CODEC[head], "input_size": list(size)}}
    for key, value in extra.items():
        section, field = key.split("__")
        d[section][field] = value
    return ModelConfig.model_validate(d)


def expected_shapes(model, batch: int, k: int) -> list[tuple[int, ...]]:
    codec = model.codec
    if codec.name in ("msra", "udp"):
        w, h = codec.heatmap_size
        return [(batch, k, h, w)]
    if codec.name == "simcc":
        return [(batch, k, codec.bins[0]), (batch, k, codec.bins[1])]
    return [(batch, k, 2)]


def check_model(model, batch: int = 2) -> None:
    """Forward/backward on uint8 input, output shapes the codec expects, decode, stages coverage."""
    k = SPEC.num_keypoints
    w, h = model.input_size
    images = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8)
    model.train()
    out = model(images)
    outs = list(out) if isinstance(out, tuple) else [out]
    assert [tuple(o.shape) for o in outs] == expected_shapes(model, batch, k)
    sum(o.float().square().mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient (unused layers): {no_grad[:5]}"
    model.eval()
    kp, scores = model.predict(images)
    assert kp.shape == (batch, k, 2) and scores.shape == (batch, k)
    assert torch.isfinite(kp).all()
    stages = model.stages()
    ids = [id(p) for _, m in stages for p in m.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert stages[-1][0] == "head" and all(n.startswith("backbone.") for n, _ in stages[:-1])


LIGHT = ["resnet18", "mobilenetv2_100", "mobilenetv3_large_100", "convnext_atto", "hrnet_w18_small"]
HEADS = ["deconv", "heatmap", "simcc", "regression"]


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backbone", LIGHT)
def test_backbone_head_matrix(backbone: str, head: str) -> None:
    model = build_model(make_cfg(backbone, head), SPEC)
    assert isinstance(model, TopDownModel)
    check_model(model)


@pytest.mark.parametrize("backbone", ["resnet50", "convnext_tiny", "hrnet_w18_small_v2"])
def test_medium_backbones(backbone: str) -> None:
    # one head each keeps this fast; the head code paths are covered by the matrix above
    head = "heatmap" if backbone.startswith("hrnet") else "deconv"
    check_model(build_model(make_cfg(backbone, head, size=(32, 32)), SPEC))


@pytest.mark.parametrize("backbone", ["hrnet_w32", "hrnet_w48"])
def test_big_hrnets_build_and_run(backbone: str) -> None:
    model = build_model(make_cfg(backbone, "heatmap", size=(32, 32)), SPEC).eval()
    # the HRNet head reads the raw stride-4 branch: 32 / 48 channels, not timm's 128 'incre' features
    assert model.head.final_layer.in_channels == int(backbone[-2:])
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    assert out.shape == (1, SPEC.num_keypoints, 8, 8)


def test_cnn_baseline_ignores_backbone_section() -> None:
    from posetune.models.backbones import PlainCNN

    model = build_model(make_cfg("no-such-net", "cnn"), SPEC)  # model.backbone is ignored for 'cnn'
    assert isinstance(model.backbone, PlainCNN)
    check_model(model)
    assert [n for n, _ in model.stages()] == ["backbone.block1", "backbone.block2", "backbone.block3",
                                              "backbone.block4", "head"]


def test_hrnet_uses_raw_high_resolution_branch_and_matches_timm() -> None:
    import timm

    model = build_model(make_cfg("hrnet_w18_small", "heatmap"), SPEC).eval()
    assert model.backbone.posetune_info.reduction == 4
    assert model.head.final_layer.in_channels == 16  # hrnet_w18_small's stride-4 branch width
    ref = timm.create_model("hrnet_w18_small", features_only=True, feature_location="").eval()
    ref.load_state_dict(model.backbone.state_dict(), strict=False)  # pruned fuse layers are unused
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.backbone(x)[0], ref(x)[1])


def test_resnet_stage_names_and_contents() -> None:
    model = build_model(make_cfg("resnet18", "deconv"), SPEC)
    stages = dict(model.stages())
    assert list(stages) == ["backbone.stem", "backbone.layer1", "backbone.layer2", "backbone.layer3",
                            "backbone.layer4", "head"]
    stem_ids = {id(p) for p in stages["backbone.stem"].parameters()}
    assert stem_ids == {id(p) for m in (model.backbone.conv1, model.backbone.bn1) for p in m.parameters()}
    assert stages["backbone.layer3"] is model.backbone.layer3


def test_unknown_backbone_names_key_and_close_match() -> None:
    with pytest.raises(ModelError) as e:
        build_model(make_cfg("resnet-18"), SPEC)
    assert e.value.where == "model.backbone.name"
    assert "resnet18" in str(e.value)


def test_heatmap_size_mismatch_names_key_and_expected_value() -> None:
    cfg = make_cfg("resnet18", "deconv", codec__heatmap_size=[32, 32])
    with pytest.raises(ModelError) as e:
        build_model(cfg, SPEC)
    assert e.value.where == "model.codec.heatmap_size"
    assert "[8, 16]" in str(e.value)  # 32x64 / stride 4


def test_heatmap_size_is_derived_from_deconv_layers() -> None:
    model = build_model(make_cfg("resnet18", "deconv", head__deconv_layers=2), SPEC)
    assert model.codec.heatmap_size == (4, 8)  # stride 32 / 2^2 = 8
    assert model.eval()(torch.zeros(1, 3, 64, 32, dtype=torch.uint8)).shape == (1, 5, 8, 4)
    assert model.describe()["config"]["codec"]["heatmap_size"] == [4, 8]


def test_heatmap_head_without_stride4_feature_names_head_type() -> None:
    with pytest.raises(ModelError) as e:
        build_model(make_cfg("vit_tiny_patch16_224", "heatmap", size=(224, 224)), SPEC)
    assert e.value.where == "model.head.type" and "deconv" in str(e.value)


def test_head_codec_pairing_and_input_size_checks() -> None:
    cfg = make_cfg("resnet18", "simcc").model_copy(update={"codec": make_cfg().codec})
    with pytest.raises(ModelError) as e:
        build_model(cfg, SPEC)
    assert e.value.where == "model.codec.type"
    with pytest.raises(ModelError) as e:
        build_model(make_cfg("resnet18", "deconv", size=(64, 48)), SPEC)
    assert e.value.where == "model.codec.input_size" and "32" in str(e.value)


def test_pretrained_true_offline_is_a_network_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import huggingface_hub.constants

    # the real timm download path, made to fail fast instead of retrying for a minute
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(NetworkError) as e:
        build_model(make_cfg("resnet18", "deconv", backbone__pretrained=True), SPEC)
    assert e.value.where == "model.backbone.pretrained" and "local file" in str(e.value)


def test_adapt_head_copies_matching_channels() -> None:
    model = build_model(make_cfg("resnet18", "deconv"), SPEC).eval()
    with torch.no_grad():
        model.head.final_layer.weight.normal_()
        model.head.final_layer.bias.normal_()
    images = torch.randint(0, 256, (1, 3, 64, 32), dtype=torch.uint8)
    with torch.no_grad():
        before = model(images)
    old_w = model.head.final_layer.weight.detach().clone()
    new_spec = KeypointSpec.from_names(["tail", "chin", "nose"], name="other")
    adapt_head(model, new_spec)
    assert model.spec is new_spec and model.head.final_layer.out_channels == 3
    w = model.head.final_layer.weight
    assert torch.equal(w[0], old_w[3]) and torch.equal(w[2], old_w[0])  # tail, nose copied
    assert not torch.equal(w[1], old_w[1])  # chin is new
    with torch.no_grad():
        after = model(images)
    # same weights; a different channel count may change the conv kernel's summation order
    assert torch.allclose(after[:, 0], before[:, 3], atol=1e-5) and torch.allclose(after[:, 2], before[:, 0], atol=1e-5)
    assert not torch.allclose(after[:, 1], before[:, 1], atol=1e-3)


def test_adapt_regression_head_copies_xy_rows() -> None:
    head = RegressionHead(8, 3, hidden_dim=4)
    with torch.no_grad():
        head.fc.weight.normal_()
    old = head.fc.weight.detach().clone()
    assert head.resize_keypoints([2, None]) == 1
    assert head.fc.out_features == 4 and torch.equal(head.fc.weight[0:2], old[4:6])
    assert head(torch.randn(2, 8, 3, 3)).shape == (2, 2, 2)


@pytest.mark.parametrize("kernel", [2, 3, 4])
def test_deconv_kernels_double_the_size(kernel: int) -> None:
    head = DeconvHead(16, 3, num_layers=2, channels=8, kernel=kernel)
    assert head(torch.randn(1, 16, 3, 5)).shape == (1, 3, 12, 20)


def test_describe_rebuilds_the_same_architecture() -> None:
    cfg = make_cfg("mobilenetv3_large_100", "simcc", head__hidden_dim=64)
    model = build_model(cfg, get_spec("coco17"))
    d = model.describe()
    assert d["type"] == "topdown" and d["spec"]["keypoints"] == list(get_spec("coco17").keypoints)
    again = build_from_description(d)
    assert again.spec == model.spec and again.describe() == d
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert list(again.pixel_mean.flatten()) == list(model.pixel_mean.flatten())
