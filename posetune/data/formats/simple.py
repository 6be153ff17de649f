"""The "simple" json list used by plain PyTorch scripts.

List form, one entry per instance (several entries with the same image = several instances)::

    [{"image_name": "a.jpg", "keypoints": [[x, y], [x, y, v], null, ...], "bbox": [x, y, w, h]}, ...]

The image key may also be ``image``, ``file_name`` or ``path``; an entry may carry
``keypoint_names``, ``width``/``height``. Points are ``[x, y]`` (labelled, v=2), ``[x, y, v]``
(COCO visibility) or ``null`` / NaN (missing, v=0); a ``[0, 0]`` pair without v counts as
missing too, as most scripts zero-fill missing points. Dict form (written when the keypoint
names are not the generic ``kp_0..``)::

    {"keypoint_names": [...], "skeleton": [[0, 1], ...], "items": [ ...entries... ]}

``skeleton`` pairs are 0-based indices or names. An entry with an empty keypoint list is an
image without instances.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from posetune.data.formats.coco import (
    fill_image_sizes,
    find_image_root,
    generic_names,
    is_generic,
    match_spec,
    relative_file_name,
    spec_from_names,
)
from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError
from posetune.io_utils import read_json, write_text_atomic

NAME = "simple"
IMAGE_KEYS = ("image_name", "image", "file_name", "path")
_DETECT_MAX_BYTES = 64 * 1024 * 1024


def _image_of(entry: dict) -> str | None:
    for key in IMAGE_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _looks_simple(d: Any) -> bool:
    if isinstance(d, dict):
        items = d.get("items")
        return isinstance(items, list) and "images" not in d and (
            "keypoint_names" in d or (bool(items) and _looks_simple(items)))
    if isinstance(d, list) and d:
        head = d[:20]
        return all(isinstance(e, dict) and "keypoints" in e and _image_of(e) is not None for e in head)
    return False


def detect(path: Path) -> bool:
    """A .json whose top level is a list of entries with an image name and ``keypoints``, or the dict form."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".json" or path.stat().st_size > _DETECT_MAX_BYTES:
        return False
    try:
        return _looks_simple(read_json(path))
    except DataError:
        return False


# ============================================================================ reading
def _points(raw: Any) -> np.ndarray:
    """(K, 3) array from a list of [x, y] / [x, y, v] / null points; ValueError on bad input."""
    if not isinstance(raw, list):
        raise ValueError(f"'keypoints' must be a list of [x, y] points, got {type(raw).__name__}")
    if raw and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in raw):
        raise ValueError("'keypoints' is a flat list of numbers; write one [x, y] or [x, y, v] list per point")
    out = np.zeros((len(raw), 3))
    for i, p in enumerate(raw):
        if p is None:
            continue
        if not isinstance(p, (list, tuple)) or len(p) not in (2, 3):
            raise ValueError(f"keypoint {i} is {str(p)[:40]}; expected [x, y], [x, y, v] or null")
        try:
            vals = [math.nan if q is None else float(q) for q in p]
        except (TypeError, ValueError):
            raise ValueError(f"keypoint {i} holds non-numbers: {str(p)[:40]}") from None
        x, y = vals[0], vals[1]
        if len(vals) == 3:
            v = vals[2]
            if not math.isfinite(v):
                raise ValueError(f"keypoint {i} has visibility {v}")
            if v > 0 and not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"keypoint {i} is labelled (v={v:g}) but has NaN coordinates")
            v = min(max(v, 0.0), 2.0)
        else:
            v = 2.0 if math.isfinite(x) and math.isfinite(y) and (x, y) != (0.0, 0.0) else 0.0
        if v > 0:
            out[i] = (x, y, v)
    return out


def _entries(data: Any, source: Path) -> tuple[list, list[str] | None, list]:
    if isinstance(data, dict):
        items = data.get("items")
        if not isinstance(items, list):
            raise DataError("dict form needs an 'items' list of entries", where=source,
                            hint='use {"keypoint_names": [...], "items": [{"image_name": ..., "keypoints": ...}]}')
        names = data.get("keypoint_names")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise DataError("'keypoint_names' must be a list of strings", where=source)
        return items, names, list(data.get("skeleton") or [])
    if isinstance(data, list):
        return data, None, []
    raise DataError(f"top level is a {type(data).__name__}; expected a list of entries or a dict with 'items'",
                    where=source, hint='entries look like {"image_name": "a.jpg", "keypoints": [[x, y], ...]}')


def read(path: Path, *, image_root: Path | None = None, spec: KeypointSpec | None = None) -> KeypointDataset:
    """Read a simple json list (or its dict form) into a KeypointDataset."""
    path = Path(path)
    items, names, skeleton = _entries(read_json(path), path)
    problems: list[Problem] = []

    def problem(code: str, msg: str, i: int, hint: str | None = None) -> None:
        problems.append(Problem(code=code, message=msg, where=f"{path}:entry {i}", hint=hint))

    parsed: list[tuple[int, str, dict, np.ndarray]] = []
    for i, e in enumerate(items):
        if not isinstance(e, dict):
            problem("bad_entry", f"entry is a {type(e).__name__}, not an object; skipped", i)
            continue
        image = _image_of(e)
        if image is None:
            problem("no_image", f"entry has no image name (one of {', '.join(IMAGE_KEYS)}); skipped", i)
            continue
        try:
            kps = _points(e.get("keypoints"))
        except ValueError as err:
            problem("bad_keypoints", f"{err}; skipped", i)
            continue
        entry_names = e.get("keypoint_names")
        if entry_names is not None:
            if names is None:
                names = [str(n) for n in entry_names]
            elif list(entry_names) != list(names):
                problem("keypoint_names", "entry's 'keypoint_names' differ from the first ones; skipped", i,
                        hint="all entries must use the same keypoint list")
                continue
        parsed.append((i, image.replace("\\", "/"), e, kps))

    counts = [len(k) for _, _, _, k in parsed if len(k)]
    k = len(names) if names is not None else (max(set(counts), key=counts.count) if counts else
                                              (spec.num_keypoints if spec is not None else 0))
    if spec is not None:
        order = match_spec(spec, names, k, path)
        the_spec = spec
    else:
        order = None
        label_names = names if names is not None else generic_names(k)
        links = _links(skeleton, label_names, path)
        the_spec = spec_from_names(label_names, name=path.stem, skeleton=links)

    records: dict[str, ImageRecord] = {}
    for i, image, e, kps in parsed:
        rec = records.get(image)
        if rec is None:
            rec = records[image] = ImageRecord(file_name=image, width=_size(e.get("width")),
                                               height=_size(e.get("height")))
        if len(kps) == 0:
            continue  # an image without instances
        if len(kps) != k:
            problem("keypoints_length", f"{len(kps)} keypoints, expected {k}; skipped", i)
            continue
        bbox = e.get("bbox")
        try:
            bbox = None if bbox is None else np.asarray(bbox, dtype=np.float64).reshape(4)
            if bbox is not None and not np.isfinite(bbox).all():
                raise ValueError
        except (TypeError, ValueError):
            problem("bad_bbox", f"'bbox' {str(e.get('bbox'))[:40]} is not [x, y, w, h]; ignored", i)
            bbox = None
        rec.instances.append(Instance(keypoints=kps[order] if order is not None else kps, bbox=bbox,
                                      category=e.get("category") if isinstance(e.get("category"), str) else None,
                                      track_id=e.get("track_id")))

    root, root_problem = find_image_root(path, list(records), image_root)
    ds = KeypointDataset(spec=the_spec, images=list(records.values()), root=root, source=path, format=NAME,
                         problems=([root_problem] if root_problem else []) + problems)
    cats = sorted({inst.category for _, inst in ds.iter_instances() if inst.category})
    if cats:
        ds.categories = cats
    fill_image_sizes(ds, path)
    return ds


def _size(x: Any) -> int | None:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 else None


def _links(skeleton: list, names: list[str], source: Path) -> list[tuple[int, int]]:
    index = {n: i for i, n in enumerate(names)}
    links = []
    for pair in skeleton:
        try:
            a, b = pair
            links.append(tuple(index[p] if isinstance(p, str) else int(p) for p in (a, b)))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"skeleton link {str(pair)[:40]} is not a pair of keypoint indices or names",
                            where=source, hint=f"known keypoints: {', '.join(names)}") from None
    return links  # type: ignore[return-value]


# ============================================================================ writing
def _num(x: float) -> int | float:
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def write(dataset: KeypointDataset, dest: Path) -> list[Path]:
    """Write the simple json: ``dest`` is the .json file or a folder (-> ``labels.json``).

    Points are ``[x, y]`` when every labelled point is visible (v=2), else ``[x, y, v]``;
    missing points are ``null``. Image names are relative to the json's folder.
    """
    dest = Path(dest)
    path = dest if dest.suffix.lower() == ".json" else dest / "labels.json"
    labelled = [inst.keypoints[inst.labelled, 2] for _, inst in dataset.iter_instances()]
    with_v = any(((v != 2).any() for v in labelled))
    items: list[dict[str, Any]] = []
    for rec in dataset.images:
        base: dict[str, Any] = {"image_name": relative_file_name(dataset, rec, path.parent)}
        if rec.width and rec.height:
            base["width"], base["height"] = int(rec.width), int(rec.height)
        if not rec.instances:
            items.append({**base, "keypoints": []})
        for inst in rec.instances:
            pts: list[Any] = []
            for x, y, v in inst.keypoints.tolist():
                if v <= 0:
                    pts.append(None)
                else:
                    pts.append([_num(x), _num(y), _num(v)] if with_v else [_num(x), _num(y)])
            item = {**base, "keypoints": pts}
            if inst.bbox is not None:
                item["bbox"] = [_num(b) for b in inst.bbox]
            if inst.category is not None and list(dataset.categories) != ["person"]:
                item["category"] = inst.category
            if inst.track_id is not None:
                item["track_id"] = inst.track_id
            items.append(item)
    spec = dataset.spec
    body = "[\n" + ",\n".join(_dumps(item) for item in items) + ("\n]" if items else "]")
    if not (is_generic(spec.keypoints) and not spec.skeleton):
        body = (f'{{"keypoint_names": {_dumps(list(spec.keypoints))},\n'
                f' "skeleton": {_dumps([list(p) for p in spec.skeleton])},\n'
                f' "items": {body}}}')
    write_text_atomic(path, body + "\n")
    return [path]


def _dumps(obj: Any) -> str:
    """Compact one-line JSON (one entry per line keeps big files readable and diffable)."""
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
