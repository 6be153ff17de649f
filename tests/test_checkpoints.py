"""Weight loading (posetune, plain, timm/torchvision, MMPose, MMAction2), safety and the hub cache."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from posetune.config.schema import ModelConfig
from posetune.data.spec import KeypointSpec, get_spec
from posetune.errors import CheckpointError, NetworkError
from posetune.models import hub
from posetune.models.build import build_model
from posetune.models.checkpoints import (LoadReport, load_model, load_weights, mmaction_tsn_to_timm_resnet,
                                         mmpose_key_to_posetune)

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # see conftest.py

SPEC = KeypointSpec.from_names(["nose", "left_ear", "right_ear", "neck", "tail"], name="toy")


class Payload:
    """A custom class: unpickling it needs more than weights_only allows."""

    def __init__(self) -> None:
        self.note = "not a tensor"


def small_model(backbone: str = "resnet18", head: str = "deconv", spec: KeypointSpec = SPEC, **head_kw):
    codec = {"deconv": "msra", "heatmap": "msra", "regression": "regression"}[head]
    if head == "deconv":
        head_kw.setdefault("deconv_channels", 32)  # small head: fast tests, same layer names
    cfg = ModelConfig.model_validate({"backbone": {"name": backbone}, "head": {"type": head, **head_kw},
                                      "codec": {"type": codec, "input_size": [32, 32]}})
    return build_model(cfg, spec)


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every float weight and BN statistic a distinct random value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g).abs() + 0.1)
    return model


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys=None) -> None:
    for k in keys if keys is not None else a:
        assert torch.equal(a[k], b[k]), k


def posetune_ckpt(model, extra: dict | None = None) -> dict:
    sd = {"model." + k: v for k, v in model.state_dict().items()}
    sd["loss.keypoint_weights"] = torch.ones(3)  # other LightningModule buffers are ignored
    return {"state_dict": sd, "epoch": 3,
            "posetune": {"format_version": 1, "model": model.describe(), "spec": model.spec.to_dict(),
                         "config": None, "versions": {"torch": str(torch.__version__)}, **(extra or {})}}


# ----------------------------------------------------------------------------- posetune / plain
def test_posetune_checkpoint_round_trip_and_load_model(tmp_path: Path) -> None:
    src = randomize(small_model(), 1).eval()
    path = tmp_path / "best.ckpt"
    torch.save(posetune_ckpt(src), path)
    dst = small_model()
    report = load_weights(dst, path, strict=True)
    assert report.kind == "posetune" and report.ok
    assert len(report.matched) == len(src.state_dict())
    assert_same_weights(src.state_dict(), dst.state_dict())

    rebuilt = load_model(path).eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), src(x))
    assert rebuilt.spec == src.spec


def test_plain_state_dict_round_trip(tmp_path: Path) -> None:
    src = randomize(small_model(head="regression"), 2)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = small_model(head="regression")
    report = load_weights(dst, tmp_path / "w.pth", strict=True)
    assert report.ok and report.kind == "state_dict"
    assert_same_weights(src.state_dict(), dst.state_dict())


def test_keypoint_names_in_checkpoint_adapt_the_head(tmp_path: Path) -> None:
    src = randomize(small_model(), 3)
    torch.save(posetune_ckpt(src), tmp_path / "a.ckpt")
    new_spec = KeypointSpec.from_names(["tail", "chin", "nose"], name="other")
    dst = small_model(spec=new_spec)
    before = dst.head.final_layer.weight.detach().clone()
    report = load_weights(dst, tmp_path / "a.ckpt", strict=True)  # handled by name: no error even when strict
    assert set(report.adapted) == {"head.final_layer.weight", "head.final_layer.bias"}
    w_src, w_dst = src.head.final_layer.weight, dst.head.final_layer.weight
    assert torch.equal(w_dst[0], w_src[4]) and torch.equal(w_dst[2], w_src[0])  # tail, nose by name
    assert torch.equal(w_dst[1], before[1])  # chin keeps its fresh initialisation
    assert_same_weights(src.state_dict(), dst.state_dict(), [k for k in src.state_dict() if k.startswith("backbone.")])


# ----------------------------------------------------------------------------- safety / corrupt files
def test_unsafe_pickle_is_refused_unless_allowed(tmp_path: Path) -> None:
    src = randomize(small_model(), 4)
    ckpt = posetune_ckpt(src)
    ckpt["callbacks"] = {"note": Payload()}
    torch.save(ckpt, tmp_path / "unsafe.ckpt")
    dst = small_model()
    with pytest.raises(CheckpointError) as e:
        load_weights(dst, tmp_path / "unsafe.ckpt")
    msg = str(e.value)
    assert "Payload" in msg and "allow_unsafe" in msg and "--allow-unsafe-load" in msg
    assert not torch.equal(dst.head.final_layer.weight, src.head.final_layer.weight)  # nothing loaded
    assert load_weights(dst, tmp_path / "unsafe.ckpt", allow_unsafe=True).ok
    assert_same_weights(src.state_dict(), dst.state_dict())


def test_numpy_metadata_loads_without_unsafe(tmp_path: Path) -> None:
    src = randomize(small_model(), 5)
    ckpt = {"state_dict": dict(src.state_dict()),
            "meta": {"dataset_meta": {"sigmas": np.array([0.1, 0.2], dtype=np.float32), "n": np.int64(2)}}}
    torch.save(ckpt, tmp_path / "np.pth")
    dst = small_model()
    assert load_weights(dst, tmp_path / "np.pth").ok


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint", "truncated"])
def test_corrupt_files_are_checkpoint_errors(tmp_path: Path, content) -> None:
    path = tmp_path / "bad.pth"
    if content == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        content = path.read_bytes()[:500]
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_weights(small_model(), path)
    assert str(path) in str(e.value)


def test_missing_file_is_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(small_model(), tmp_path / "nope.pth")


def test_strict_lists_unmatched_keys_and_report_renders(tmp_path: Path) -> None:
    src = small_model()
    sd = dict(src.state_dict())
    sd.pop("backbone.layer4.1.bn2.weight")
    sd["backbone.extra.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as e:
        load_weights(small_model(), tmp_path / "w.pth", strict=True)
    assert "backbone.layer4.1.bn2.weight" in str(e.value) and "backbone.extra.weight" in str(e.value)
    report = load_weights(small_model(), tmp_path / "w.pth")
    assert report.missing == ["backbone.layer4.1.bn2.weight"] and report.unexpected == ["backbone.extra.weight"]
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(report)
    text = console.export_text()
    assert "missing" in text and "backbone.extra.weight" in text and isinstance(report, LoadReport)


# ----------------------------------------------------------------------------- MMPose
def to_mmpose(sd: dict[str, torch.Tensor], version: int) -> dict[str, torch.Tensor]:
    """Rename a posetune state dict the way MMPose 0.x / 1.x names the same network."""
    head = "keypoint_head." if version == 0 else "head."
    out = {}
    for k, v in sd.items():
        if k.startswith("head."):
            k = head + k[len("head."):]
        out[k] = v
    return out


@pytest.mark.parametrize("version", [0, 1])
def test_mmpose_resnet_simplebaseline_loads_bit_identical(tmp_path: Path, version: int) -> None:
    src = randomize(small_model(), 6)
    torch.save({"meta": {"epoch": 210}, "state_dict": to_mmpose(src.state_dict(), version)}, tmp_path / "mm.pth")
    dst = small_model()
    report = load_weights(dst, tmp_path / "mm.pth", strict=True)
    assert report.kind == "mmpose" and report.ok
    assert_same_weights(src.state_dict(), dst.state_dict())


def test_mmpose_hrnet_loads_bit_identical(tmp_path: Path) -> None:
    src = randomize(small_model("hrnet_w18_small", "heatmap"), 7)
    sd = to_mmpose(src.state_dict(), 1)
    # MMPose's last HRNet module only fuses into the stride-4 branch: the same keys as posetune's
    last = f"backbone.stage4.{len(src.backbone.stage4) - 1}.fuse_layers."
    assert last + "0.1.0.weight" in sd and not any(k.startswith(last) and not k.startswith(last + "0.") for k in sd)
    assert "head.final_layer.weight" in sd and "backbone.transition1.1.0.0.weight" in sd
    torch.save({"state_dict": sd}, tmp_path / "hr.pth")
    dst = small_model("hrnet_w18_small", "heatmap")
    assert load_weights(dst, tmp_path / "hr.pth", strict=True).ok
    assert_same_weights(src.state_dict(), dst.state_dict())


def test_mmpose_resnetv1d_deep_stem_mapping(tmp_path: Path) -> None:
    src = randomize(small_model("resnet18d"), 8)
    stem = {"conv1.0.": "stem.0.conv.", "conv1.1.": "stem.0.bn.", "conv1.3.": "stem.1.conv.",
            "conv1.4.": "stem.1.bn.", "conv1.6.": "stem.2.conv.", "bn1.": "stem.2.bn."}
    sd = {}
    for k, v in src.state_dict().items():
        if k.startswith("backbone."):
            rest = k[len("backbone."):]
            for new, old in stem.items():
                if rest.startswith(new):
                    rest = old + rest[len(new):]
                    break
            k = "backbone." + rest
        sd[k] = v
    assert "backbone.stem.2.bn.running_var" in sd and mmpose_key_to_posetune("backbone.stem.1.conv.weight") == \
        "backbone.conv1.3.weight"
    torch.save({"state_dict": to_mmpose(sd, 0)}, tmp_path / "v1d.pth")
    dst = small_model("resnet18d")
    assert load_weights(dst, tmp_path / "v1d.pth", strict=True).ok
    assert_same_weights(src.state_dict(), dst.state_dict())


def test_mmpose_keypoint_count_mismatch(tmp_path: Path) -> None:
    coco = randomize(small_model(spec=get_spec("coco17")), 9)
    torch.save({"state_dict": to_mmpose(coco.state_dict(), 0)}, tmp_path / "coco.pth")
    dst = small_model()  # 5 keypoints
    with pytest.raises(CheckpointError) as e:
        load_weights(dst, tmp_path / "coco.pth", strict=True)
    msg = str(e.value)
    assert "17 keypoints" in msg and "has 5" in msg and "load_strict: false" in msg
    report = load_weights(dst, tmp_path / "coco.pth", strict=False)
    assert {k for k, _, _ in report.mismatched} == {"keypoint_head.final_layer.weight", "keypoint_head.final_layer.bias"}
    keep = [k for k in coco.state_dict() if not k.startswith("head.final_layer")]
    assert_same_weights(coco.state_dict(), dst.state_dict(), keep)  # everything but the last layer


def test_mmpose_dataset_meta_names_adapt_the_head(tmp_path: Path) -> None:
    coco = randomize(small_model(spec=get_spec("coco17")), 10)
    names = list(get_spec("coco17").keypoints)
    meta = {"dataset_meta": {"keypoint_id2name": dict(enumerate(names)),
                             "sigmas": np.asarray(get_spec("coco17").sigmas, dtype=np.float32)}}
    torch.save({"meta": meta, "state_dict": to_mmpose(coco.state_dict(), 1)}, tmp_path / "coco1.pth")
    sub = get_spec("coco17").subset(["right_hip", "nose"])
    dst = small_model(spec=sub)
    report = load_weights(dst, tmp_path / "coco1.pth", strict=True)
    assert report.adapted and not report.mismatched
    w = coco.head.final_layer.weight
    assert torch.equal(dst.head.final_layer.weight[0], w[names.index("right_hip")])
    assert torch.equal(dst.head.final_layer.weight[1], w[0])


# ----------------------------------------------------------------------------- timm / torchvision / MMAction2
def test_torchvision_resnet18_as_backbone_pretrained(tmp_path: Path) -> None:
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    randomize(tv, 11)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    cfg = ModelConfig.model_validate({"backbone": {"name": "resnet18", "pretrained": str(tmp_path / "tv.pth")},
                                      "codec": {"input_size": [32, 32]}})
    model = build_model(cfg, SPEC)
    report = model.backbone.posetune_load_report
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"] and not report.missing and not report.mismatched
    tv_sd = tv.state_dict()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, tv_sd[k]), k


def test_timm_convnext_state_dict_into_feature_backbone(tmp_path: Path) -> None:
    import timm

    net = randomize(timm.create_model("convnext_atto"), 12)
    torch.save(net.state_dict(), tmp_path / "cx.pth")
    model = small_model("convnext_atto")
    report = load_weights(model, tmp_path / "cx.pth")
    # timm's features_only model flattens 'stages.0' to 'stages_0': mapped, nothing of the backbone missing
    assert not [k for k in report.missing if k.startswith("backbone.")]
    assert {k for k in report.unexpected} == {k for k in net.state_dict() if k.startswith("head.")}
    sd = net.state_dict()
    assert torch.equal(model.backbone.stages_1.blocks[0].conv_dw.weight, sd["stages.1.blocks.0.conv_dw.weight"])
    assert torch.equal(model.backbone.stem_0.weight, sd["stem.0.weight"])


def to_mmaction(key: str) -> str:
    if key.startswith("fc."):
        return "cls_head.fc_cls." + key[3:]
    key = re.sub(r"^conv1\.", "conv1.conv.", key)
    key = re.sub(r"^bn1\.", "conv1.bn.", key)
    key = re.sub(r"\.conv(\d)\.", r".conv\1.conv.", key)
    key = re.sub(r"\.bn(\d)\.", r".conv\1.bn.", key)
    key = key.replace(".downsample.0.", ".downsample.conv.").replace(".downsample.1.", ".downsample.bn.")
    return "backbone." + key


def test_mmaction_tsn_r50_converts_to_timm_resnet50() -> None:
    import timm

    net = randomize(timm.create_model("resnet50", num_classes=7), 13)
    mm = {to_mmaction(k): v for k, v in net.state_dict().items()}
    assert "backbone.layer1.0.conv3.bn.running_mean" in mm and "backbone.layer2.0.downsample.conv.weight" in mm
    backbone_sd, head_sd = mmaction_tsn_to_timm_resnet(mm)
    assert set(head_sd) == {"fc.weight", "fc.bias"}
    other = timm.create_model("resnet50", num_classes=7)
    other.load_state_dict({**backbone_sd, **head_sd}, strict=True)
    assert_same_weights(net.state_dict(), other.state_dict())


def test_mmaction_checkpoint_into_pose_backbone(tmp_path: Path) -> None:
    import timm

    net = randomize(timm.create_model("resnet18", num_classes=4), 14)
    torch.save({"state_dict": {to_mmaction(k): v for k, v in net.state_dict().items()}}, tmp_path / "tsn.pth")
    model = small_model()
    report = load_weights(model, tmp_path / "tsn.pth")
    assert report.kind == "mmaction" and sorted(report.unexpected) == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert all(k.startswith("head.") for k in report.missing)
    sd = net.state_dict()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, sd[k]), k


# ----------------------------------------------------------------------------- hub
def test_download_file_url_into_cache_with_checksum(tmp_path: Path) -> None:
    src = tmp_path / "src" / "weights.pth"
    src.parent.mkdir()
    src.write_bytes(b"0123456789" * 1000)
    digest = hub.sha256_of(src)
    cache = tmp_path / "cache"
    got = hub.download(src.as_uri(), sha256=digest, cache_dir=cache)
    assert got.parent == cache and got.read_bytes() == src.read_bytes() and got.name.endswith("weights.pth")
    assert hub.download(src.as_uri(), sha256=digest[:12], cache_dir=cache) == got  # prefix accepted


def test_checksum_mismatch_removes_the_bad_file(tmp_path: Path) -> None:
    src = tmp_path / "w.pth"
    src.write_bytes(b"abc")
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(CheckpointError) as e:
        hub.download(src.as_uri(), sha256=wrong, cache_dir=cache)
    assert wrong in str(e.value) and hub.sha256_of(src) in str(e.value)
    assert list(cache.iterdir()) == []  # neither the file nor a temp file is left behind
    # a plain local path with a wrong checksum is an error too, but the user's file is kept
    with pytest.raises(CheckpointError):
        hub.download(str(src), sha256=wrong)
    assert src.exists()


def test_cache_hit_does_not_download_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSETUNE_CACHE", str(tmp_path / "pc"))
    src = tmp_path / "w.pth"
    src.write_bytes(b"weights")
    first = hub.download(src.as_uri())
    assert first.parent == tmp_path / "pc" / "hub"
    old = time.time() - 1000
    os.utime(first, (old, old))
    src.unlink()  # a second download would now fail
    second = hub.download(src.as_uri())
    assert second == first and first.stat().st_mtime == pytest.approx(old)


def test_unreachable_host_is_a_quick_network_error(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(NetworkError) as e:
        hub.download("http://127.0.0.1:9/x.pth", cache_dir=tmp_path)
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert "cannot reach 127.0.0.1:9" in msg and "offline" in msg and "local path" in msg
    assert list(tmp_path.iterdir()) == []


def test_load_weights_from_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSETUNE_CACHE", str(tmp_path / "pc"))
    src = randomize(small_model(), 15)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = small_model()
    assert load_weights(dst, (tmp_path / "w.pth").as_uri(), strict=True).ok
    assert_same_weights(src.state_dict(), dst.state_dict())


def test_http_download_with_progress_and_404(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "w.pth").write_bytes(os.urandom(300_000))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        got = hub.download(f"{base}/w.pth", sha256=hub.sha256_of(served / "w.pth"), cache_dir=tmp_path / "c")
        assert got.read_bytes() == (served / "w.pth").read_bytes()
        with pytest.raises(NetworkError, match="HTTP 404"):
            hub.download(f"{base}/missing.pth", cache_dir=tmp_path / "c")
        assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [got.name]
    finally:
        server.shutdown()
        server.server_close()


def test_safetensors_backbone_weights(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    net = randomize(timm.create_model("mobilenetv3_large_100"), 16)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "m.safetensors"))
    cfg = ModelConfig.model_validate({
        "backbone": {"name": "mobilenetv3_large_100", "pretrained": str(tmp_path / "m.safetensors")},
        "codec": {"input_size": [32, 32]}})
    model = build_model(cfg, SPEC)
    report = model.backbone.posetune_load_report
    assert not report.missing and not report.mismatched and len(report.matched) == len(model.backbone.state_dict())
    sd = net.state_dict()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, sd[k]), k
