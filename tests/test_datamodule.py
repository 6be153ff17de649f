"""TopDownDataset / KeypointDataModule: samples, targets, reproducible randomness, loaders, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posetune.codecs.base import Codec
from posetune.codecs.build import build_codec
from posetune.config.schema import AugmentConfig, CodecConfig, DataConfig
from posetune.data.datamodule import EpochSampler, KeypointDataModule, TopDownDataset
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.data.transforms import TopDownTransform, apply_affine
from posetune.errors import ConfigError, DataError

INPUT = (48, 64)
AUG = AugmentConfig(rotate_prob=1.0, shear=10, half_body_prob=0.0, blur_prob=0.3, noise_prob=0.3,
                    occlusion_prob=0.3)


class PointCodec(Codec):
    """The smallest codec: the target is the input-frame keypoints themselves."""

    name = "points"

    def encode(self, keypoints, weights):
        return {"keypoints": np.asarray(keypoints, np.float32), "keypoint_weights": np.asarray(weights, np.float32)}

    def decode(self, outputs):
        return outputs, torch.ones(outputs.shape[:2])

    def flip_back(self, outputs, flip_index):
        return outputs


def _dataset(data: KeypointDataset, codec: Codec | None = None, train: bool = True, aug: AugmentConfig = AUG,
             **kw) -> TopDownDataset:
    codec = codec or PointCodec(INPUT)
    tf = TopDownTransform(aug, codec.input_size, spec=data.spec, use_udp=codec.use_udp, train=train)
    return TopDownDataset(data, codec, tf, **kw)


def _cfg(**kw) -> DataConfig:
    base = dict(batch_size=4, workers=0, val_fraction=0.0, augment=AUG)
    base.update(kw)
    return DataConfig(**base)


# ----------------------------------------------------------------------------- dataset
def test_one_sample_per_usable_instance(keypoint_dataset):
    train = _dataset(keypoint_dataset, min_keypoints=4)
    # 14 instances: 1 crowd, 1 with only 3 labelled points; 'empty.png' gives none
    assert len(train) == 12
    assert train.dropped == {"crowd": 1, "too_few_keypoints": 1}
    assert "1 crowd regions" in train.dropped_summary()
    # evaluation keeps every non-crowd instance with a box, whatever min_keypoints says
    val = _dataset(keypoint_dataset, train=False, min_keypoints=4)
    assert len(val) == 13 and val.dropped == {"crowd": 1}
    # no bbox: a box around the keypoints is used; a single point has no extent -> dropped
    ds = keypoint_dataset.with_images([ImageRecord("bild_ä_猫.png", 64, 48, [
        Instance(keypoints=[[10, 10, 2], [20, 30, 2], [0, 0, 0], [0, 0, 0]]),
        Instance(keypoints=[[10, 10, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0]])])])
    ds2 = _dataset(ds, train=False)
    assert len(ds2) == 1 and ds2.dropped == {"no_box": 1}
    np.testing.assert_allclose(ds2.boxes[0], [9, 8, 12, 24])


def test_sample_layout_and_meta(keypoint_dataset):
    ds = _dataset(keypoint_dataset)
    for i in range(len(ds)):
        s = ds[i]
        img_i, inst_i = int(s["meta"]["image_index"]), int(s["meta"]["instance_index"])
        inst = keypoint_dataset.images[img_i].instances[inst_i]
        assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, INPUT[1], INPUT[0])
        assert set(s["targets"]) == {"keypoints", "keypoint_weights"}
        m = s["meta"]
        assert m["warp"].dtype == torch.float64 and m["warp"].shape == (2, 3)
        np.testing.assert_array_equal(m["keypoints"].numpy(), inst.keypoints)
        assert int(m["instance_id"]) == inst.id and int(m["image_id"]) == keypoint_dataset.images[img_i].id
        np.testing.assert_allclose(m["bbox"].numpy(), inst.bbox)
        # the warp maps the original keypoints to the targets (with the flip permutation)
        order = keypoint_dataset.spec.flip_index if bool(m["flipped"]) else np.arange(4)
        mapped = apply_affine(inst.keypoints[order, :2], m["warp"].numpy())
        np.testing.assert_allclose(s["targets"]["keypoints"].numpy(), mapped, atol=1e-3)
        labelled = inst.keypoints[order, 2] > 0
        assert (s["targets"]["keypoint_weights"].numpy()[~labelled] == 0).all()


@pytest.mark.parametrize("codec_type", ["msra", "udp"])
def test_real_heatmap_codec_peaks_at_the_transformed_keypoints(keypoint_dataset, codec_type):
    codec = build_codec(CodecConfig(type=codec_type, input_size=(96, 128), dark=True))
    ds = _dataset(keypoint_dataset, codec=codec)
    n_checked = 0
    for i in range(len(ds)):
        s = ds[i]
        hm = s["targets"]["heatmaps"]
        assert hm.shape == (4, 32, 24) and hm.dtype == torch.float32
        w = s["targets"]["keypoint_weights"].numpy()
        kp = s["meta"]["input_keypoints"].numpy()
        decoded, _ = codec.decode(hm[None])
        for k in np.flatnonzero(w > 0):
            # the argmax heatmap pixel is the one nearest the keypoint ...
            y, x = np.unravel_index(int(hm[k].argmax()), hm.shape[1:])
            centre = codec.from_heatmap(torch.tensor([[float(x), float(y)]], dtype=torch.float64))[0].numpy()
            corners = codec.from_heatmap(torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)).numpy()
            stride = corners[1] - corners[0]  # input px between heatmap pixel centres
            assert (np.abs(centre - kp[k]) <= stride / 2 + 1e-6).all()
            # ... and (DARK) decoding recovers it
            assert np.linalg.norm(decoded[0, k].numpy() - kp[k]) < 0.3
            n_checked += 1
        assert (hm[w == 0] == 0).all()
    assert n_checked > 30


def test_same_seed_and_epoch_same_sample_other_epoch_different(keypoint_dataset):
    ds = _dataset(keypoint_dataset, seed=3)
    a = [ds[(2, i)] for i in range(len(ds))]
    ds.set_epoch(2)
    for i in range(len(ds)):
        b = ds[i]
        assert torch.equal(a[i]["image"], b["image"])
        assert torch.equal(a[i]["meta"]["warp"], b["meta"]["warp"])
    c = [ds[(3, i)] for i in range(len(ds))]
    differ = sum(not torch.equal(x["meta"]["warp"], y["meta"]["warp"]) for x, y in zip(a, c))
    assert differ == len(ds)
    other_seed = _dataset(keypoint_dataset, seed=4)
    assert not torch.equal(other_seed[(2, 0)]["meta"]["warp"], a[0]["meta"]["warp"])
    # evaluation samples do not depend on the epoch
    val = _dataset(keypoint_dataset, train=False)
    assert torch.equal(val[(0, 1)]["image"], val[(7, 1)]["image"])


def test_sampler_order_depends_only_on_seed_and_epoch():
    s = EpochSampler(50, seed=1)
    first = list(s)
    assert sorted(i for _, i in first) == list(range(50)) and {e for e, _ in first} == {0}
    assert list(EpochSampler(50, seed=1)) == first
    s.set_epoch(1)
    second = list(s)
    assert [i for _, i in second] != [i for _, i in first] and {e for e, _ in second} == {1}
    assert list(EpochSampler(50, seed=1, epoch=1)) == second
    assert [i for _, i in EpochSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]


def test_dataloader_with_workers_collates_and_reproduces_single_process(keypoint_dataset):
    def batches(workers: int, epochs: tuple[int, ...]) -> list[list[dict]]:
        dm = KeypointDataModule.from_datasets(keypoint_dataset, val=keypoint_dataset, codec=PointCodec(INPUT),
                                              cfg=_cfg(workers=workers), seed=5)
        out = []
        loader = dm.train_dataloader()
        for e in epochs:
            dm.set_epoch(e)
            out.append(list(loader))
        return out

    multi = batches(2, (0, 1))
    single = batches(0, (0, 1))
    assert len(multi[0]) == 4  # 13 samples, batch 4, drop_last=False
    b = multi[0][0]
    assert b["image"].shape == (4, 3, INPUT[1], INPUT[0]) and b["image"].dtype == torch.uint8
    assert b["targets"]["keypoints"].shape == (4, 4, 2)
    assert b["meta"]["warp"].shape == (4, 2, 3) and b["meta"]["warp"].dtype == torch.float64
    assert b["meta"]["flipped"].dtype == torch.bool
    assert multi[0][-1]["image"].shape[0] == 1
    for e in range(2):  # persistent workers see the new epoch: identical to the single-process run
        for x, y in zip(multi[e], single[e]):
            assert torch.equal(x["image"], y["image"])
            assert torch.equal(x["meta"]["instance_index"], y["meta"]["instance_index"])
    order = [torch.cat([b["meta"]["image_index"] * 100 + b["meta"]["instance_index"] for b in ep]) for ep in multi]
    assert not torch.equal(order[0], order[1])


def test_broken_image_names_the_file_and_suggests_data_check(keypoint_dataset):
    bad = Path(keypoint_dataset.root) / "crowd.png"
    bad.write_bytes(b"not a png")
    ds = _dataset(keypoint_dataset, train=False)
    idx = int(np.flatnonzero(ds.samples[:, 0] == 1)[0])
    with pytest.raises(DataError, match=r"crowd\.png.*posetune data check"):
        ds[idx]


def test_in_memory_and_cached_images_skip_the_files(keypoint_dataset):
    from posetune.data.images import load_image

    images = [load_image(keypoint_dataset.image_path(r)) for r in keypoint_dataset.images]
    ref = _dataset(keypoint_dataset, seed=1)[(0, 3)]
    cached = _dataset(keypoint_dataset, seed=1, cache_images=True)
    cached.preload()
    for rec in keypoint_dataset.images:
        keypoint_dataset.image_path(rec).unlink()
    assert torch.equal(cached[(0, 3)]["image"], ref["image"])
    in_memory = _dataset(keypoint_dataset, seed=1, images=images)
    assert torch.equal(in_memory[(0, 3)]["image"], ref["image"])


# ----------------------------------------------------------------------------- datamodule
def test_datamodule_from_real_coco_labels(shared_data):
    labels = shared_data / "mmpose_coco" / "coco" / "test_coco.json"
    anns = json.loads(labels.read_text())["annotations"]
    for min_kp in (1, 15):
        expected = sum(1 for a in anns if not a["iscrowd"] and a["num_keypoints"] >= min_kp)
        cfg = DataConfig(train=str(labels), val=str(labels), min_keypoints=min_kp, batch_size=4, workers=0)
        dm = KeypointDataModule.from_config(cfg, seed=0)
        assert dm.spec.num_keypoints == 17 and dm.spec.name == "coco17"
        dm.set_codec(build_codec(CodecConfig(type="msra", input_size=(96, 128))))
        assert len(dm.train_set) == expected
        assert len(dm.val_set) == sum(1 for a in anns if not a["iscrowd"])  # evaluation keeps all 14
    assert expected < len(anns)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 128, 96) and batch["targets"]["heatmaps"].shape == (4, 17, 32, 24)
    boxes = {tuple(np.round(a["bbox"], 2)) for a in anns}
    assert all(tuple(np.round(b, 2)) in boxes for b in batch["meta"]["bbox"].numpy())
    assert len(next(iter(dm.val_dataloader()))["image"]) == 4


def test_datamodule_errors_are_one_line_and_name_the_key(keypoint_dataset, tmp_path):
    with pytest.raises(ConfigError, match="data.train"):
        KeypointDataModule.from_config(DataConfig())
    with pytest.raises(DataError, match=r"data\.train.*not found"):
        KeypointDataModule.from_config(DataConfig(train=str(tmp_path / "nope.json")))
    dm = KeypointDataModule.from_datasets(keypoint_dataset, cfg=_cfg(min_keypoints=100))
    with pytest.raises(DataError, match=r"empty after filtering: all 14 instances were dropped "
                                        r"\(13 with fewer .*data\.min_keypoints \(now 100\)"):
        dm.set_codec(PointCodec(INPUT))
    other = KeypointSpec.from_names(["head", "left_hand", "right_hand", "tail_tip"], name="other")
    val = KeypointDataset(spec=other, images=keypoint_dataset.images, root=keypoint_dataset.root)
    with pytest.raises(DataError, match=r"val.*differ.*tail"):
        KeypointDataModule.from_datasets(keypoint_dataset, val=val, cfg=_cfg())
    with pytest.raises(ConfigError, match="data.sigmas"):
        KeypointDataModule.from_datasets(keypoint_dataset, cfg=_cfg(sigmas=[0.1, 0.2]))
    (Path(keypoint_dataset.root) / "crowd.png").unlink()
    with pytest.raises(DataError, match=r"1 image file\(s\) not found: .*crowd\.png"):
        KeypointDataModule.from_datasets(keypoint_dataset, codec=PointCodec(INPUT), cfg=_cfg())


def test_datamodule_settings(keypoint_dataset):
    dm = KeypointDataModule.from_datasets(keypoint_dataset, codec=PointCodec(INPUT),
                                          cfg=_cfg(sigmas=[0.1, 0.2, 0.2, 0.3], batch_size=5, val_batch_size=2))
    assert dm.spec.sigmas == (0.1, 0.2, 0.2, 0.3) and dm.train_set.spec.sigmas == (0.1, 0.2, 0.2, 0.3)
    assert dm.val_set is None and dm.val_dataloader() == []
    loader = dm.train_dataloader()
    assert loader.batch_size == 5 and not loader.drop_last and loader.num_workers == 0
    assert isinstance(loader.sampler, EpochSampler)
    dm.batch_size = 3  # the OOM guard halves the batch size between fits
    assert dm.train_dataloader().batch_size == 3
    assert dm.summary()["train"] == {"images": 3, "instances": 14, "samples": 13, "dropped": {"crowd": 1}}
    with pytest.raises(DataError, match="data.test"):
        dm.test_dataloader()


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*", "ignore:.*does not have many workers.*",
                            "ignore:.*no `validation_step`.*")
def test_lightning_sets_the_epoch_so_a_resumed_epoch_repeats_its_batches(keypoint_dataset):
    import lightning as L

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)
            self.seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, batch["meta"]["instance_index"], batch["meta"]["warp"]))
            return self.lin(batch["targets"]["keypoints"]).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = KeypointDataModule.from_datasets(keypoint_dataset, codec=PointCodec(INPUT), cfg=_cfg(workers=0), seed=9)
    module = Recorder()
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, accelerator="cpu").fit(module, datamodule=dm)
    replay = KeypointDataModule.from_datasets(keypoint_dataset, codec=PointCodec(INPUT), cfg=_cfg(workers=0), seed=9)
    replay.set_epoch(1)  # what a run resumed at epoch 1 draws
    expected = list(replay.train_dataloader())
    got = [(idx, warp) for e, idx, warp in module.seen if e == 1]
    assert len(got) == len(expected) == 4
    for (idx, warp), b in zip(got, expected):
        assert torch.equal(idx, b["meta"]["instance_index"]) and torch.equal(warp, b["meta"]["warp"])
    first = torch.cat([idx for e, idx, _ in module.seen if e == 0])
    assert not torch.equal(first, torch.cat([idx for idx, _ in got]))


def test_val_split_off_the_training_labels_when_no_val_is_given(keypoint_dataset):
    # 10 images with one instance each, split 70/30 by image, reproducibly per split_seed
    inst = keypoint_dataset.images[0].instances[1]
    ds = keypoint_dataset.with_images([ImageRecord("bild_ä_猫.png", 64, 48, [Instance(inst.keypoints, inst.bbox)],
                                                   id=i + 1) for i in range(10)])
    dm = KeypointDataModule.from_datasets(ds, codec=PointCodec(INPUT), cfg=_cfg(val_fraction=0.3, split_seed=1))
    assert (dm.train_data.num_images, dm.val_data.num_images) == (7, 3)
    assert len(dm.train_set) == 7 and len(dm.val_set) == 3 and not dm.val_set.transform.train
    ids = lambda d: sorted(im.id for im in d.images)  # noqa: E731
    assert sorted(ids(dm.train_data) + ids(dm.val_data)) == list(range(1, 11))
    again = KeypointDataModule.from_datasets(ds, cfg=_cfg(val_fraction=0.3, split_seed=1))
    assert ids(again.val_data) == ids(dm.val_data)
    # one image cannot be split: the error names the config key
    with pytest.raises(DataError, match="data.val_fraction"):
        KeypointDataModule.from_datasets(ds.with_images(ds.images[:1]), cfg=_cfg(val_fraction=0.3))
