"""LabelMe json (one file per image): point shapes are keypoints, rectangles are boxes.

Reading:

* a folder (searched recursively, in file-name order) or a single ``.json`` file;
* ``shape_type: point`` shapes named by keypoint label are keypoints; ``rectangle`` shapes are
  bounding boxes; ``group_id`` separates people/animals in one image (shapes sharing a
  ``group_id`` form one instance). Shapes with ``group_id: null`` form one instance per image —
  or several when the same keypoint label repeats (the n-th repeat goes to the n-th instance,
  reported as an ambiguity). Ungrouped rectangles attach to the one instance whose points they
  contain, else they become box-only instances;
* a point is occluded (v=1) when its ``flags`` hold ``{"occluded": true}`` or its
  ``description`` mentions "occluded"; otherwise it is visible (v=2). LabelMe cannot store
  unlabelled points: a missing point is v=0;
* other shape types (polygon, circle, line, linestrip, mask, ...) are ignored with one warning
  per type;
* ``imagePath`` is relative to the json. When that image is missing but ``imageData`` is
  embedded, it is decoded once into ``<cache>/labelme/<sha1>.<ext>`` (cache = ``$POSETUNE_CACHE``
  or ``~/.cache/posetune``);
* keypoint order: the given spec, else the ``_posetune_spec.json`` sidecar written by
  :func:`write`, else the order of first appearance across files sorted by name.

Writing: one json per image (LabelMe 5.x layout) plus the ``_posetune_spec.json`` sidecar that
keeps skeleton, flip pairs and sigmas, which LabelMe itself cannot hold. Track ids are not kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from posetune.data.formats._image_refs import checked_image_size, relative_to_root, size_for_writing
from posetune.data.images import IMAGE_EXTENSIONS
from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError
from posetune.io_utils import read_json, write_bytes_atomic, write_json_atomic

NAME = "labelme"
SPEC_SIDECAR = "_posetune_spec.json"
LABELME_VERSION = "5.5.0"
_DETECT_MAX_BYTES = 64 * 1024 * 1024


# ----------------------------------------------------------------------------- detection
def _looks_like_labelme(data: Any) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("shapes"), list)
            and ("imagePath" in data or "imageData" in data) and "annotations" not in data)


def _file_is_labelme(path: Path) -> bool:
    if path.suffix.lower() != ".json" or path.name == SPEC_SIDECAR:
        return False
    size = path.stat().st_size
    if size > _DETECT_MAX_BYTES:  # too big to parse just for a guess: look at the head only
        with open(path, "rb") as f:
            head = f.read(65536)
        return b'"shapes"' in head and b'"annotations"' not in head and b'"images"' not in head
    try:
        return _looks_like_labelme(json.loads(path.read_text(encoding="utf-8-sig")))
    except (ValueError, UnicodeDecodeError, OSError):
        return False


def detect(path: Path) -> bool:
    """True for a LabelMe json, or a folder whose first json files are LabelMe files."""
    path = Path(path)
    if path.is_file():
        return _file_is_labelme(path)
    if path.is_dir():
        candidates = [p for p in sorted(path.rglob("*.json")) if p.name != SPEC_SIDECAR][:5]
        return any(_file_is_labelme(p) for p in candidates)
    return False


# ----------------------------------------------------------------------------- helpers
def cache_dir() -> Path:
    """posetune's cache folder: ``$POSETUNE_CACHE`` or ``~/.cache/posetune``."""
    env = os.environ.get("POSETUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "posetune"


def _decode_image_data(data: str, image_path: str, where: str, problems: list[Problem]) -> Path | None:
    """Write embedded base64 image bytes into the cache once; return the cached file."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError, TypeError) as e:
        problems.append(Problem("bad_image_data", f"imageData is not valid base64 ({e})", where=where,
                                hint="re-save the file in LabelMe or put the image next to the json"))
        return None
    ext = Path(image_path).suffix.lower() if image_path else ""
    try:
        with Image.open(io.BytesIO(raw)) as im:
            fmt = (im.format or "").lower()
        ext = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp"}.get(fmt, ext or ".png")
    except (UnidentifiedImageError, OSError, ValueError):
        problems.append(Problem("bad_image_data", "imageData does not decode to an image", where=where,
                                hint="re-save the file in LabelMe or put the image next to the json"))
        return None
    target = cache_dir() / "labelme" / f"{hashlib.sha1(raw).hexdigest()}{ext}"
    if not target.exists():
        write_bytes_atomic(target, raw)
    return target


def _xy(point: Any) -> tuple[float, float] | None:
    if not isinstance(point, (list, tuple)) or len(point) < 2:
        return None
    try:
        x, y = float(point[0]), float(point[1])
    except (TypeError, ValueError):
        return None
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None


def _is_occluded(shape: dict) -> bool:
    flags = shape.get("flags")
    if isinstance(flags, dict) and any(bool(flags.get(k)) for k in ("occluded", "occlusion")):
        return True
    desc = shape.get("description")
    return isinstance(desc, str) and "occluded" in desc.lower()


# ----------------------------------------------------------------------------- reading
def _list_files(path: Path) -> tuple[list[Path], Path]:
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*.json"), key=lambda p: p.relative_to(path).as_posix())
                 if p.name != SPEC_SIDECAR and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        return files, path
    if path.is_file():
        return [path], path.parent
    raise DataError("path not found", where=path, hint="check the path to your LabelMe files")


def _spec_for(labels: list[str], label_dir: Path, spec: KeypointSpec | None,
              problems: list[Problem]) -> KeypointSpec:
    if spec is not None:
        return spec
    sidecar = label_dir / SPEC_SIDECAR
    if sidecar.is_file():
        side = KeypointSpec.from_dict(read_json(sidecar))
        unknown = [n for n in labels if not side.has(n)]
        if not unknown:
            return side
        problems.append(Problem("stale_spec", f"{SPEC_SIDECAR} does not list point label(s) {unknown}; ignoring it",
                                where=str(sidecar), severity="warning",
                                hint="delete the sidecar or add those keypoints to it"))
    return KeypointSpec.from_names(labels, name="labelme")


def _parse_shapes(data: dict, where: str, problems: list[Problem],
                  ignored: dict[str, list]) -> list[dict]:
    """Validated shapes of one file: dicts with kind ('point'|'rectangle'), label, xy, group, order."""
    out = []
    shapes = data.get("shapes")
    for i, shape in enumerate(shapes):
        here = f"{where}:shape {i}"
        if not isinstance(shape, dict):
            problems.append(Problem("bad_shape", "shape is not an object", where=here, hint="fix or delete the shape"))
            continue
        kind = shape.get("shape_type") or "polygon"  # LabelMe < 4 wrote no shape_type: polygons
        if kind not in ("point", "rectangle"):
            ignored.setdefault(str(kind), [here, 0])[1] += 1
            continue
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            problems.append(Problem("bad_shape", f"{kind} shape has no label", where=here,
                                    hint="name the shape in LabelMe"))
            continue
        pts = shape.get("points")
        xys = [_xy(p) for p in pts] if isinstance(pts, list) else []
        need = 1 if kind == "point" else 2
        if len(xys) < need or any(p is None for p in xys[:need]):
            problems.append(Problem("bad_shape", f"{kind} shape '{label}' needs {need} point(s) [x, y] with numbers",
                                    where=here, hint="fix or delete the shape"))
            continue
        group = shape.get("group_id")
        if group is not None and not isinstance(group, (int, str)):
            problems.append(Problem("bad_shape", f"group_id {group!r} is not a number", where=here,
                                    hint="use integer group ids"))
            continue
        out.append({"kind": kind, "label": label.strip(), "xy": xys[:need], "group": group, "order": i,
                    "occluded": _is_occluded(shape), "where": here})
    return out


def _assemble(shapes: list[dict], spec: KeypointSpec, where: str, problems: list[Problem]) -> list[Instance]:
    """Group one file's shapes into instances (see module docstring)."""
    k = spec.num_keypoints
    groups: dict[Any, dict] = {}  # key -> {"kp", "box", "category", "order", "group_id"}
    null_instances: list[dict] = []
    null_boxes: list[dict] = []
    ambiguous = False

    def new(order: int, group_id: Any) -> dict:
        return {"kp": np.zeros((k, 3)), "box": None, "category": None, "order": order, "group_id": group_id}

    for s in shapes:
        if s["kind"] == "rectangle":
            (x0, y0), (x1, y1) = s["xy"]
            box = {"bbox": np.array([min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)]),
                   "label": s["label"], "order": s["order"], "where": s["where"]}
            if s["group"] is None:
                null_boxes.append(box)
                continue
            inst = groups.setdefault(("g", s["group"]), new(s["order"], s["group"]))
            if inst["box"] is not None:
                problems.append(Problem("duplicate_box", f"group {s['group']} has more than one rectangle; "
                                        "keeping the first", where=s["where"], severity="warning"))
                continue
            inst["box"], inst["category"] = box["bbox"], box["label"]
            continue
        if not spec.has(s["label"]):
            problems.append(Problem("unknown_keypoint", f"point '{s['label']}' is not a keypoint of spec "
                                    f"'{spec.name}'", where=s["where"],
                                    hint=f"known keypoints: {', '.join(spec.keypoints)}"))
            continue
        j = spec.index(s["label"])
        v = 1.0 if s["occluded"] else 2.0
        (x, y), = s["xy"][:1]
        if s["group"] is None:
            slot = next((inst for inst in null_instances if inst["kp"][j, 2] == 0), None)
            if slot is None:
                if null_instances:
                    ambiguous = True
                slot = new(s["order"], None)
                null_instances.append(slot)
            slot["kp"][j] = (x, y, v)
            continue
        inst = groups.setdefault(("g", s["group"]), new(s["order"], s["group"]))
        if inst["kp"][j, 2] > 0:
            problems.append(Problem("duplicate_keypoint", f"point '{s['label']}' appears twice in group "
                                    f"{s['group']}; keeping the first", where=s["where"], severity="warning",
                                    hint="give each animal/person its own group_id"))
            continue
        inst["kp"][j] = (x, y, v)
    if ambiguous:
        problems.append(Problem("ambiguous_instances", f"point labels repeat without group_id: split into "
                                f"{len(null_instances)} instances by order of appearance", where=where,
                                severity="warning", hint="set a group_id per person/animal in LabelMe"))
    # ungrouped rectangles: attach to the single instance they contain, else keep them as box-only
    for box in null_boxes:
        free = [inst for inst in null_instances if inst["box"] is None]
        if len(null_boxes) == 1 and len(null_instances) == 1 and free:
            target = free[0]
        else:
            x, y, w, h = box["bbox"]
            inside = [inst for inst in free if _points_inside(inst["kp"], x, y, w, h)]
            target = inside[0] if len(inside) == 1 else None
        if target is None:
            target = new(box["order"], None)
            null_instances.append(target)
        target["box"], target["category"] = box["bbox"], box["label"]
    found = sorted([*groups.values(), *null_instances], key=lambda d: d["order"])
    instances = []
    for d in found:
        extra = {"group_id": d["group_id"]} if d["group_id"] is not None else {}
        instances.append(Instance(keypoints=d["kp"], bbox=d["box"], category=d["category"], extra=extra))
    return instances


def _points_inside(kp: np.ndarray, x: float, y: float, w: float, h: float) -> bool:
    pts = kp[kp[:, 2] > 0, :2]
    return len(pts) > 0 and bool(((pts[:, 0] >= x) & (pts[:, 0] <= x + w)
                                  & (pts[:, 1] >= y) & (pts[:, 1] <= y + h)).all())


def _locate_image(data: dict, json_path: Path, image_root: Path | None, where: str,
                  problems: list[Problem]) -> Path | None:
    image_path = data.get("imagePath")
    image_path = image_path.replace("\\", "/") if isinstance(image_path, str) and image_path.strip() else ""
    candidates = []
    if image_path:
        candidates.append(Path(os.path.normpath(json_path.parent / image_path)))
        if image_root is not None:
            candidates += [image_root / image_path, image_root / Path(image_path).name]
        candidates.append(json_path.parent / Path(image_path).name)  # e.g. a stale absolute Windows path
    else:
        for ext in IMAGE_EXTENSIONS:
            candidates += [json_path.with_suffix(ext), json_path.with_suffix(ext.upper())]
    for c in candidates:
        if c.is_file():
            return c
    if isinstance(data.get("imageData"), str) and data["imageData"]:
        cached = _decode_image_data(data["imageData"], image_path, where, problems)
        if cached is not None:
            return cached
    if not image_path:
        problems.append(Problem("no_image", "no imagePath, no imageData and no image of the same name",
                                where=where, hint="set imagePath to the image file"))
        return None
    return candidates[0]


def read(path: Path, *, image_root: Path | None = None, spec: KeypointSpec | None = None) -> KeypointDataset:
    """Read a LabelMe json file or a folder of them (see the module docstring)."""
    path = Path(path)
    files, label_dir = _list_files(path)
    problems: list[Problem] = []
    parsed: list[tuple[Path, dict, list[dict]]] = []
    ignored: dict[str, list] = {}
    for f in files:
        data = read_json(f)
        if not _looks_like_labelme(data):
            if path.is_file():
                raise DataError("not a LabelMe file (no 'shapes' list / 'imagePath')", where=f,
                                hint="pass a LabelMe .json or choose the right --from format")
            problems.append(Problem("not_labelme", "not a LabelMe file; skipped", where=str(f), severity="warning"))
            continue
        parsed.append((f, data, _parse_shapes(data, str(f), problems, ignored)))
    if not parsed:
        raise DataError("no LabelMe .json files found", where=path,
                        hint="point to a LabelMe .json or a folder holding them")
    for kind, (first, count) in ignored.items():
        problems.append(Problem("ignored_shape", f"{count} '{kind}' shape(s) ignored (posetune reads point and "
                                "rectangle shapes)", where=first, severity="warning"))

    labels: list[str] = []
    for _, _, shapes in parsed:
        for s in shapes:
            if s["kind"] == "point" and s["label"] not in labels:
                labels.append(s["label"])
    if spec is not None and labels and not any(spec.has(n) for n in labels):
        raise DataError(f"no point label matches spec '{spec.name}' (labels: {', '.join(labels[:10])})",
                        where=path, hint=f"the spec's keypoints are: {', '.join(spec.keypoints)}")
    if spec is None and not labels:
        raise DataError("no keypoints: the LabelMe files hold no 'point' shapes", where=path,
                        hint="label keypoints with LabelMe's point tool, one point per keypoint name")
    spec = _spec_for(labels, label_dir, spec, problems)

    root = Path(image_root) if image_root is not None else label_dir
    images: list[ImageRecord] = []
    categories: list[str] = []
    for f, data, shapes in parsed:
        where = str(f)
        image = _locate_image(data, f, Path(image_root) if image_root else None, where, problems)
        if image is None:
            continue
        width, height = checked_image_size(image, data.get("imageWidth"), data.get("imageHeight"), where, problems)
        instances = _assemble(shapes, spec, where, problems)
        for inst in instances:
            if inst.category and inst.category not in categories:
                categories.append(inst.category)
        rel_dir = f.parent.relative_to(label_dir).as_posix() if f.parent != label_dir else None
        images.append(ImageRecord(file_name=relative_to_root(image, root), width=width, height=height,
                                  instances=instances, group=rel_dir,
                                  extra={"label_file": relative_to_root(f, label_dir)}))
    return KeypointDataset(spec=spec, images=images, root=root, source=path, format=NAME,
                           categories=categories or ["object"], problems=problems)


# ----------------------------------------------------------------------------- writing
def _json_name(record: ImageRecord, used: set[str]) -> str:
    p = Path(record.file_name)
    parts = p.parts
    rel = p.with_suffix(".json") if not p.is_absolute() and ".." not in parts else Path(p.with_suffix(".json").name)
    name, n = rel.as_posix(), 1
    while name.lower() in used:
        name = rel.with_name(f"{rel.stem}_{n}.json").as_posix()
        n += 1
    used.add(name.lower())
    return name


def write(dataset: KeypointDataset, dest: Path) -> list[Path]:
    """Write one LabelMe json per image under folder ``dest`` plus the ``_posetune_spec.json`` sidecar."""
    dest = Path(dest)
    if dest.is_file():
        raise DataError("LabelMe output must be a folder, not a file", where=dest,
                        hint="pass a folder; one .json per image is written into it")
    spec = dataset.spec
    default_category = dataset.categories[0] if dataset.categories else "object"
    written: list[Path] = []
    used: set[str] = {SPEC_SIDECAR.lower()}
    for record in dataset.images:
        json_path = dest / _json_name(record, used)
        image = Path(os.path.abspath(dataset.image_path(record)))
        width, height = size_for_writing(image, record.width, record.height)
        shapes: list[dict] = []
        for i, inst in enumerate(record.instances):
            for j, name in enumerate(spec.keypoints):
                x, y, v = inst.keypoints[j]
                if v <= 0:
                    continue
                shapes.append({"label": name, "points": [[float(x), float(y)]], "group_id": i, "description": "",
                               "shape_type": "point", "flags": {"occluded": True} if v < 2 else {}, "mask": None})
            if inst.bbox is not None:
                bx, by, bw, bh = (float(c) for c in inst.bbox)
                shapes.append({"label": inst.category or default_category, "points": [[bx, by], [bx + bw, by + bh]],
                               "group_id": i, "description": "", "shape_type": "rectangle", "flags": {},
                               "mask": None})
        data = {
            "version": LABELME_VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": Path(os.path.relpath(image, os.path.abspath(json_path.parent))).as_posix(),
            "imageData": None,
            "imageHeight": int(height) if height else None,
            "imageWidth": int(width) if width else None,
        }
        written.append(write_json_atomic(json_path, data))
    written.append(write_json_atomic(dest / SPEC_SIDECAR, spec.to_dict()))
    return written
