"""Top-down samples for training: the torch Dataset and the Lightning DataModule.

:class:`TopDownDataset` makes one sample per labelled instance: the image is read, the
instance box cropped and augmented by a :class:`~posetune.data.transforms.TopDownTransform`
and the keypoints encoded by a :class:`~posetune.codecs.base.Codec`. A sample is a dict::

    image    uint8 (3, h, w) RGB (models normalise themselves)
    targets  dict of tensors from codec.encode (always with 'keypoint_weights' (K,))
    meta     image_index, instance_index, image_id, instance_id (-1 when unknown),
             warp (2, 3) float64 image -> input (includes the flip), bbox (4,) xywh,
             keypoints (K, 3) original image x, y, v, input_keypoints (K, 2) in the input frame,
             area, flipped, center (2,), scale (2,), rotation, image_size (W, H)

Reproducible randomness: sample ``i`` of epoch ``e`` draws its augmentation from
``numpy.random.default_rng([seed, e, i])`` only, so the same (seed, epoch, index) gives the
same crop whatever the worker, and a resumed run repeats the augmentations of the original.
The training sampler (:class:`EpochSampler`) shuffles with a torch Generator seeded from
(seed, epoch) and hands out ``(epoch, index)`` pairs, so the epoch reaches the dataset even in
persistent DataLoader workers (which hold their own copy of the dataset); Lightning calls its
``set_epoch`` at the start of every epoch.

DataLoader workers are forked with OpenCV's default threading left alone: calling
``cv2.setNumThreads`` in a forked worker after the parent used OpenCV's thread pool can hang
the worker (seen with OpenCV 4.x), so there is no worker_init_fn.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from posetune.codecs.base import Codec
from posetune.config.schema import DataConfig
from posetune.data.images import load_image
from posetune.data.records import KeypointDataset
from posetune.data.spec import KeypointSpec
from posetune.data.transforms import TopDownTransform, usable_box
from posetune.errors import ConfigError, DataError

#: why an instance gave no sample (keys of ``TopDownDataset.dropped``)
DROP_REASONS = {
    "crowd": "crowd regions",
    "no_box": "without a box or labelled keypoints",
    "too_few_keypoints": "with fewer labelled keypoints than data.min_keypoints",
}


def _seed_int(seed: int) -> int:
    return int(seed) % (2 ** 63)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from several integers (stable across runs and platforms)."""
    state = np.random.SeedSequence([_seed_int(v) for v in values]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def _int_id(value: object) -> int:
    return int(value) if isinstance(value, (int, np.integer)) else -1


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` pairs, shuffled with a torch Generator seeded by (seed, epoch).

    The same (seed, epoch) always gives the same order, so resuming at an epoch reproduces it.
    """

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True, epoch: int = 0):
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = range(self.num_samples)
        epoch = self.epoch
        for i in order:
            yield (epoch, i)

    def __len__(self) -> int:
        return self.num_samples


class TopDownDataset(Dataset):
    """One sample per instance of a :class:`KeypointDataset` (see the module docstring).

    ``evaluation`` (default: ``not transform.train``) keeps every non-crowd instance that has a
    box, whatever ``min_keypoints`` says, so metrics see the whole validation set; training
    also skips instances with fewer than ``min_keypoints`` labelled points. Crowd regions are
    always skipped. ``dropped`` counts the skipped instances by reason.
    Instances without a bbox get one around their labelled keypoints
    (:meth:`Instance.box` with ``keypoint_box_padding``).

    ``cache_images`` keeps decoded images in memory (call :meth:`preload` before starting
    DataLoader workers so they share it); ``images`` gives in-memory images aligned with
    ``data.images`` (then no file is read).
    """

    def __init__(self, data: KeypointDataset, codec: Codec, transform: TopDownTransform, *, min_keypoints: int = 1,
                 evaluation: bool | None = None, keypoint_box_padding: float = 0.1, cache_images: bool = False,
                 images: Sequence[np.ndarray] | None = None, seed: int = 0):
        if tuple(codec.input_size) != tuple(transform.input_size):
            raise ValueError(f"codec input size {codec.input_size} != transform input size {transform.input_size}")
        if transform.spec.num_keypoints != data.spec.num_keypoints:
            raise ValueError("the transform's spec and the dataset's spec have different keypoint counts")
        if images is not None and len(images) != len(data.images):
            raise ValueError(f"{len(images)} in-memory images for {len(data.images)} image records")
        self.data = data
        self.codec = codec
        self.transform = transform
        self.min_keypoints = int(min_keypoints)
        self.evaluation = (not transform.train) if evaluation is None else bool(evaluation)
        self.keypoint_box_padding = float(keypoint_box_padding)
        self.cache_images = bool(cache_images or images is not None)
        self._cache: dict[int, np.ndarray] = {i: im for i, im in enumerate(images)} if images is not None else {}
        self.seed = int(seed)
        self.epoch = 0
        samples: list[tuple[int, int]] = []
        boxes: list[np.ndarray] = []
        dropped: Counter[str] = Counter()
        for i, rec in enumerate(data.images):
            for j, inst in enumerate(rec.instances):
                if inst.iscrowd:
                    dropped["crowd"] += 1
                    continue
                box = usable_box(inst, self.keypoint_box_padding)
                if box is None:
                    dropped["no_box"] += 1
                    continue
                if not self.evaluation and inst.num_labelled < self.min_keypoints:
                    dropped["too_few_keypoints"] += 1
                    continue
                samples.append((i, j))
                boxes.append(box)
        self.samples = np.asarray(samples, dtype=np.int64).reshape(-1, 2)
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.dropped: dict[str, int] = dict(dropped)

    # ------------------------------------------------------------------ bookkeeping
    def __len__(self) -> int:
        return len(self.samples)

    @property
    def spec(self) -> KeypointSpec:
        return self.data.spec

    def set_epoch(self, epoch: int) -> None:
        """The epoch used for items indexed by a plain int (the sampler passes it otherwise)."""
        self.epoch = int(epoch)

    def dropped_summary(self) -> str:
        """'3 crowd regions, 1 with fewer labelled keypoints than data.min_keypoints' (or 'none')."""
        parts = [f"{n} {DROP_REASONS.get(k, k)}" for k, n in self.dropped.items() if n]
        return ", ".join(parts) if parts else "none"

    def image_indices(self) -> np.ndarray:
        """Indices (into ``data.images``) of the images that give at least one sample."""
        return np.unique(self.samples[:, 0])

    # ------------------------------------------------------------------ images
    def load(self, image_index: int) -> np.ndarray:
        """The decoded RGB image of ``data.images[image_index]`` (cached when enabled)."""
        cached = self._cache.get(image_index)
        if cached is not None:
            return cached
        rec = self.data.images[image_index]
        path = self.data.image_path(rec)
        try:
            image = load_image(path)
        except DataError as e:
            raise DataError(e.what, where=e.where or path,
                            hint=f"{e.hint + '; ' if e.hint else ''}run `posetune data check` on the labels "
                                 "to find every unreadable image before training") from None
        if self.cache_images:
            self._cache[image_index] = image
        return image

    def preload(self) -> None:
        """Decode every image that gives a sample into the cache (a no-op without caching)."""
        if not self.cache_images:
            return
        for i in self.image_indices().tolist():
            self.load(int(i))

    # ------------------------------------------------------------------ samples
    def rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The random generator of sample ``index`` in ``epoch`` (default: the current one)."""
        e = self.epoch if epoch is None else epoch
        return np.random.default_rng([_seed_int(self.seed), _seed_int(e), _seed_int(index)])

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(item, (tuple, list)):
            epoch, index = int(item[0]), int(item[1])
        else:
            epoch, index = self.epoch, int(item)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range 0..{len(self) - 1}")
        img_i, inst_i = (int(v) for v in self.samples[index])
        rec = self.data.images[img_i]
        inst = rec.instances[inst_i]
        box = self.boxes[index]
        image = self.load(img_i)
        rng = self.rng(index, epoch) if self.transform.augment else None
        s = self.transform(image, inst.keypoints, box, rng)
        targets = self.codec.encode(s.keypoints.astype(np.float32), s.weights)
        if hasattr(self.codec, "encode_mask"):  # multi-task codecs: a person mask that follows the crop
            targets.update(self.codec.encode_mask(inst, s.warp, (image.shape[1], image.shape[0])))
        area = inst.area if inst.area is not None else float(box[2] * box[3])
        meta = {
            "image_index": torch.tensor(img_i, dtype=torch.int64),
            "instance_index": torch.tensor(inst_i, dtype=torch.int64),
            "image_id": torch.tensor(_int_id(rec.id), dtype=torch.int64),
            "instance_id": torch.tensor(_int_id(inst.id), dtype=torch.int64),
            "warp": torch.from_numpy(np.ascontiguousarray(s.warp, dtype=np.float64)),
            "bbox": torch.from_numpy(np.asarray(box, dtype=np.float64).copy()),
            "keypoints": torch.from_numpy(inst.keypoints.astype(np.float64, copy=True)),
            "input_keypoints": torch.from_numpy(s.keypoints.astype(np.float32)),
            "area": torch.tensor(float(area), dtype=torch.float64),
            "flipped": torch.tensor(bool(s.flipped)),
            "center": torch.from_numpy(np.asarray(s.center, dtype=np.float64).copy()),
            "scale": torch.from_numpy(np.asarray(s.scale, dtype=np.float64).copy()),
            "rotation": torch.tensor(float(s.rotation), dtype=torch.float64),
            "image_size": torch.tensor([image.shape[1], image.shape[0]], dtype=torch.int64),
        }
        return {
            "image": torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1))),
            "targets": {k: torch.from_numpy(np.asarray(v)) for k, v in targets.items()},
            "meta": meta,
        }


# ============================================================================ datamodule
def _names_diff(a: Sequence[str], b: Sequence[str]) -> str:
    missing = [n for n in a if n not in b]
    extra = [n for n in b if n not in a]
    if not missing and not extra:
        return "same names in a different order"
    parts = []
    if missing:
        parts.append(f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    if extra:
        parts.append(f"extra {extra[:6]}{' ...' if len(extra) > 6 else ''}")
    return ", ".join(parts)


class KeypointDataModule(L.LightningDataModule):
    """Train / val / test top-down datasets and their DataLoaders from a :class:`DataConfig`.

    Labels are read when the module is made (so :attr:`spec` is known before the model is
    built); the torch datasets are made once a codec is known (constructor or
    :meth:`set_codec`). With no ``data.val``, ``data.val_fraction`` of the training images
    (grouped by ``data.split_by``, seeded by ``data.split_seed``) become the validation set.

    Build it from a config (:meth:`from_config`) or from in-memory datasets
    (:meth:`from_datasets`, for tests, the demo and the Python API).
    """

    def __init__(self, cfg: DataConfig | None = None, codec: Codec | None = None, *, seed: int = 0,
                 train_data: KeypointDataset | None = None, val_data: KeypointDataset | None = None,
                 test_data: KeypointDataset | None = None, check_images: bool = True):
        super().__init__()
        self.cfg = cfg if cfg is not None else DataConfig()
        self.seed = int(seed)
        self.batch_size = self.cfg.batch_size
        self.val_batch_size = self.cfg.val_batch_size or self.cfg.batch_size
        self.num_workers = self.cfg.workers
        self.check_images = check_images
        self.codec: Codec | None = None
        self.train_set: TopDownDataset | None = None
        self.val_set: TopDownDataset | None = None
        self.test_set: TopDownDataset | None = None
        self.train_sampler: EpochSampler | None = None
        self._epoch = 0
        self._where = {"train": "data.train", "val": "data.val", "test": "data.test"}
        if train_data is None:
            train_data = self._read("train")
            if val_data is None and self.cfg.val:
                val_data = self._read("val")
            if test_data is None and self.cfg.test:
                test_data = self._read("test")
        else:
            self._where = {"train": "train data", "val": "val data", "test": "test data"}
        spec = self._fix_spec(train_data.spec)
        train_data = self._with_spec(train_data, spec, "train")
        val_data = self._with_spec(val_data, spec, "val") if val_data is not None else None
        test_data = self._with_spec(test_data, spec, "test") if test_data is not None else None
        if val_data is None and self.cfg.val_fraction > 0:
            parts = self._split(train_data)
            train_data, val_data = parts["train"], parts.get("val")
            if val_data is not None and len(val_data.images) == 0:
                val_data = None
        self.train_data: KeypointDataset = train_data
        self.val_data: KeypointDataset | None = val_data
        self.test_data: KeypointDataset | None = test_data
        if codec is not None:
            self.set_codec(codec)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: DataConfig, codec: Codec | None = None, *, seed: int = 0) -> "KeypointDataModule":
        """Read the label files named in ``cfg`` (``data.train``, ``data.val``, ``data.test``)."""
        return cls(cfg, codec, seed=seed)

    @classmethod
    def from_datasets(cls, train: KeypointDataset, val: KeypointDataset | None = None,
                      test: KeypointDataset | None = None, *, codec: Codec | None = None,
                      cfg: DataConfig | None = None, seed: int = 0) -> "KeypointDataModule":
        """From in-memory datasets; ``cfg`` gives the loader/augmentation settings (its paths are
        ignored). With ``val=None`` and ``cfg.val_fraction > 0`` the train set is split."""
        return cls(cfg, codec, seed=seed, train_data=train, val_data=val, test_data=test)

    def _read(self, which: str) -> KeypointDataset:
        from posetune.data.formats import read_dataset

        key = f"data.{which}"
        value = getattr(self.cfg, which)
        if not value:
            raise ConfigError(f"{key} is not set", where=f"config key {key}",
                              hint=f"set {key} to your label file or folder (e.g. {key}=labels.json)")
        path = Path(value)
        if not path.exists():
            raise DataError(f"label path not found: {path}", where=f"config key {key}",
                            hint=f"check {key} (relative paths start from the current folder)")
        if self.cfg.image_root and not Path(self.cfg.image_root).is_dir():
            raise DataError(f"image folder not found: {self.cfg.image_root}", where="config key data.image_root",
                            hint="check data.image_root, or leave it out to find images next to the labels")
        return read_dataset(path, self.cfg.format, image_root=self.cfg.image_root,
                            spec=None if self.cfg.spec == "auto" else self.cfg.spec)

    def _fix_spec(self, spec: KeypointSpec) -> KeypointSpec:
        if self.cfg.sigmas is not None:
            if len(self.cfg.sigmas) != spec.num_keypoints:
                raise ConfigError(f"{len(self.cfg.sigmas)} sigmas for {spec.num_keypoints} keypoints",
                                  where="config key data.sigmas",
                                  hint=f"give one OKS sigma per keypoint ({', '.join(spec.keypoints[:6])}...)")
            spec = spec.with_sigmas(self.cfg.sigmas)
        return spec

    def _with_spec(self, data: KeypointDataset, spec: KeypointSpec, which: str) -> KeypointDataset:
        if tuple(data.spec.keypoints) != tuple(spec.keypoints):
            src = f" ({data.source})" if data.source else ""
            raise DataError(
                f"keypoint names of the {which} labels differ from the training labels: "
                f"{_names_diff(spec.keypoints, data.spec.keypoints)}",
                where=f"{self._where[which]}{src}",
                hint="label every split with the same keypoint set, or set data.spec to a preset both map to")
        if data.spec == spec:
            return data
        out = data.with_images(data.images)
        out.spec = spec
        out.problems = list(data.problems)
        return out

    def _split(self, data: KeypointDataset) -> dict[str, KeypointDataset]:
        from posetune.data.split import split_dataset

        try:
            return split_dataset(data, val=self.cfg.val_fraction, test=0.0, seed=self.cfg.split_seed,
                                 by=self.cfg.split_by)
        except DataError as e:
            src = f" ({data.source})" if data.source else ""
            raise DataError(f"cannot split a validation set off the training labels: {e.what}",
                            where=f"config key data.val_fraction{src}",
                            hint="give a separate data.val label file, lower data.val_fraction, use "
                                 "data.split_by=image, or label more images") from None

    # ------------------------------------------------------------------ datasets
    @property
    def spec(self) -> KeypointSpec:
        """The KeypointSpec of the data (after ``data.sigmas``)."""
        return self.train_data.spec

    def make_transform(self, train: bool) -> TopDownTransform:
        """The training (augmenting) or evaluation (deterministic) transform for the codec."""
        if self.codec is None:
            raise ValueError("set a codec first (set_codec)")
        return TopDownTransform(self.cfg.augment, self.codec.input_size, spec=self.spec,
                                use_udp=self.codec.use_udp, train=train, bbox_padding=self.cfg.bbox_padding)

    def make_dataset(self, data: KeypointDataset, train: bool) -> TopDownDataset:
        """A TopDownDataset over ``data`` with this module's codec and settings."""
        return TopDownDataset(data, self.codec, self.make_transform(train), min_keypoints=self.cfg.min_keypoints,
                              cache_images=self.cfg.cache_images, seed=self.seed)

    def set_codec(self, codec: Codec) -> None:
        """Make the train/val/test datasets for ``codec`` (its input size and UDP convention)."""
        self.codec = codec
        self.train_set = self.make_dataset(self.train_data, train=True)
        self._check_nonempty(self.train_set, "train")
        self.val_set = self.make_dataset(self.val_data, train=False) if self.val_data is not None else None
        if self.val_set is not None:
            self._check_nonempty(self.val_set, "val")
        self.test_set = self.make_dataset(self.test_data, train=False) if self.test_data is not None else None
        if self.check_images:
            for ds in (self.train_set, self.val_set, self.test_set):
                if ds is not None:
                    self._check_images_exist(ds)
        self.train_sampler = EpochSampler(len(self.train_set), seed=self.seed, shuffle=True, epoch=self._epoch)
        self.train_set.set_epoch(self._epoch)

    def _check_nonempty(self, ds: TopDownDataset, which: str) -> None:
        if len(ds) > 0:
            return
        n_inst = ds.data.num_instances
        src = f" ({ds.data.source})" if ds.data.source else ""
        if n_inst == 0:
            what = f"the {which} set has no labelled instances ({ds.data.num_images} images)"
        else:
            what = (f"the {which} set is empty after filtering: all {n_inst} instances were dropped "
                    f"({ds.dropped_summary()})")
        hint = "check the labels with `posetune data check`"
        if ds.dropped.get("too_few_keypoints"):
            hint = f"lower data.min_keypoints (now {self.cfg.min_keypoints}) or {hint}"
        if which == "val" and self.cfg.val is None:
            hint += "; or raise data.val_fraction"
        raise DataError(what, where=f"{self._where[which]}{src}", hint=hint)

    def _check_images_exist(self, ds: TopDownDataset) -> None:
        if ds._cache:
            return
        missing = [str(ds.data.image_path(ds.data.images[i])) for i in ds.image_indices().tolist()
                   if not ds.data.image_path(ds.data.images[i]).is_file()]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DataError(f"{len(missing)} image file(s) not found: {', '.join(missing[:3])}{more}",
                            where=str(ds.data.source or "labels"),
                            hint="check data.image_root; run `posetune data check` to list every problem")

    # ------------------------------------------------------------------ lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.codec is None:
            raise ValueError("KeypointDataModule.setup needs a codec: call set_codec(model.codec) first")
        if self.cfg.cache_images:
            for ds in (self.train_set, self.val_set, self.test_set):
                if ds is not None:
                    ds.preload()

    def set_epoch(self, epoch: int) -> None:
        """Seed the training order and augmentations for ``epoch`` (also done by Lightning)."""
        self._epoch = int(epoch)
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)
        if self.train_set is not None:
            self.train_set.set_epoch(epoch)

    def _loader(self, ds: TopDownDataset, batch_size: int, sampler: Sampler | None) -> DataLoader:
        workers = int(self.num_workers)
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=False,
                          num_workers=workers, persistent_workers=workers > 0,
                          pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None or self.train_sampler is None:
            raise ValueError("KeypointDataModule needs a codec: call set_codec(model.codec) first")
        return self._loader(self.train_set, self.batch_size, self.train_sampler)

    def val_dataloader(self) -> DataLoader | list:
        """The validation loader, or an empty list (Lightning then skips validation)."""
        if self.val_set is None:
            return []
        return self._loader(self.val_set, self.val_batch_size, None)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise DataError("no test set", where="config key data.test", hint="set data.test to a label file")
        return self._loader(self.test_set, self.val_batch_size, None)

    def summary(self) -> dict[str, Any]:
        """Images / instances / samples / dropped instances per split."""
        out: dict[str, Any] = {}
        for which, data, ds in (("train", self.train_data, self.train_set), ("val", self.val_data, self.val_set),
                                ("test", self.test_data, self.test_set)):
            if data is None:
                continue
            out[which] = {"images": data.num_images, "instances": data.num_instances,
                          "samples": len(ds) if ds is not None else None,
                          "dropped": dict(ds.dropped) if ds is not None else None}
        return out
