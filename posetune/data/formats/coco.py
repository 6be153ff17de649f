"""COCO keypoint json (and COCO-WholeBody) reader and writer.

Reads ``images`` / ``annotations`` / ``categories`` into one :class:`KeypointDataset`:
multi-person, ``iscrowd``, ``bbox``, ``area``, ids, ``track_id``, ``score``; the 1-based COCO
``skeleton`` becomes the 0-based ``KeypointSpec.skeleton``. COCO-WholeBody annotations
(``foot_kpts``/``face_kpts``/``lefthand_kpts``/``righthand_kpts``) are read into the 133-point
spec and written back in the same split-field form. Fields posetune does not use (segmentation,
licenses, urls, ...) ride along in ``extra['coco']`` / ``KeypointDataset.info`` so that a file
read and written again keeps them.

Soft errors (unknown image id, wrong keypoint count, NaN coordinates) skip the annotation and
add a :class:`Problem`; structural errors raise :class:`DataError` naming file and key.

The image-root search (:func:`find_image_root`), relative-path helper (:func:`relative_file_name`)
and spec matching (:func:`match_spec`) are shared with the other json/txt formats.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError
from posetune.io_utils import read_json, write_json_atomic

NAME = "coco"

#: COCO-WholeBody split fields in the order they follow the 17 body points.
WHOLEBODY_PARTS: tuple[tuple[str, int], ...] = (
    ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21),
)
WHOLEBODY_EXTRA_KEYS = ("face_box", "lefthand_box", "righthand_box",
                        "face_valid", "lefthand_valid", "righthand_valid", "foot_valid")
_PART_VALID = {"foot_kpts": "foot_valid", "face_kpts": "face_valid",
               "lefthand_kpts": "lefthand_valid", "righthand_kpts": "righthand_valid"}
_PART_BOX = {"face_kpts": "face_box", "lefthand_kpts": "lefthand_box", "righthand_kpts": "righthand_box"}

_ANN_KEYS = {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "area", "iscrowd",
             "score", "track_id", *(k for k, _ in WHOLEBODY_PARTS), *WHOLEBODY_EXTRA_KEYS}
_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_DETECT_FULL_PARSE_BYTES = 32 * 1024 * 1024
_ROOT_SAMPLE = 20
_EXACT_INT = 2**53  # ints up to this size survive float(); larger ones are read as _int_or_none always did


# ============================================================================ shared helpers
def generic_names(k: int) -> list[str]:
    """Placeholder keypoint names ``kp_0 .. kp_{k-1}`` for labels that carry none."""
    return [f"kp_{i}" for i in range(k)]


def is_generic(names: Sequence[str]) -> bool:
    """True when ``names`` are the placeholders made by :func:`generic_names`."""
    return list(names) == generic_names(len(names))


def spec_from_names(names: Sequence[str], name: str = "custom",
                    skeleton: Iterable[tuple[int, int]] = (),
                    flip_pairs: Iterable[tuple[int, int]] | None = None) -> KeypointSpec:
    """The spec for keypoint ``names`` read from labels.

    Names equal to a preset's (e.g. the COCO-17 names) give that preset, keeping the labels'
    own skeleton when they have one; other names give ``KeypointSpec.from_names`` (flip pairs
    inferred from left/right names unless ``flip_pairs`` is given).
    """
    from posetune.data import presets

    names = [str(n) for n in names]
    skeleton = tuple((int(a), int(b)) for a, b in skeleton)
    for preset in presets.PRESETS.values():
        if list(preset.keypoints) == names:
            changes: dict[str, Any] = {}
            if skeleton and set(map(frozenset, skeleton)) != set(map(frozenset, preset.skeleton)):
                changes["skeleton"] = skeleton
            if flip_pairs is not None and set(map(frozenset, flip_pairs)) != set(map(frozenset, preset.flip_pairs)):
                changes["flip_pairs"] = tuple(flip_pairs)
            return preset.replace(**changes) if changes else preset
    return KeypointSpec.from_names(names, name=name, skeleton=skeleton, flip_pairs=flip_pairs)


def match_spec(spec: KeypointSpec, names: Sequence[str] | None, k: int, where: str | Path) -> np.ndarray | None:
    """Check labels with keypoint ``names`` (None: unnamed) and ``k`` points against ``spec``.

    Returns None when the labels are already in the spec's order, else the index array that
    reorders label keypoints into spec order (same names, other order). Raises a DataError
    naming ``where`` and the mismatching names otherwise.
    """
    hint = "pass the spec these labels were made with (or 'auto' to take it from the labels), or rename the keypoints"
    if names is None or is_generic(names):
        if k != spec.num_keypoints:
            raise DataError(f"labels have {k} keypoints but spec '{spec.name}' has {spec.num_keypoints}",
                            where=where, hint=hint)
        return None
    names = list(names)
    if names == list(spec.keypoints):
        return None
    if len(set(names)) == len(names) and set(names) == set(spec.keypoints):
        return np.array([names.index(n) for n in spec.keypoints])
    extra = [n for n in names if not spec.has(n)]
    missing = [n for n in spec.keypoints if n not in set(names)]
    parts = []
    if extra:
        parts.append(f"labels have {_short(extra)} not in the spec")
    if missing:
        parts.append(f"spec has {_short(missing)} not in the labels")
    raise DataError(f"keypoint names do not match spec '{spec.name}': " + "; ".join(parts), where=where, hint=hint)


def _short(names: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return f"[{shown}{', ...' if len(names) > n else ''}] ({len(names)})"


def _split_tokens(stem: str) -> list[str]:
    """Split names guessed from a label file name: person_keypoints_val2017 -> val2017, val."""
    tokens = [t for t in re.split(r"[_\-.\s]+", stem) if t]
    out: list[str] = []
    for t in reversed(tokens):
        for cand in (t, re.sub(r"\d+$", "", t)):
            if cand and cand not in out and cand.lower() not in ("person", "keypoints", "annotations", "coco"):
                out.append(cand)
    return out


def find_image_root(label_file: Path, file_names: Sequence[str], image_root: Path | None = None,
                    ) -> tuple[Path, Problem | None]:
    """The folder the label file's image ``file_names`` are relative to.

    Tries ``image_root`` (when given), the label file's folder, then common layouts:
    ``<dir>/images``, ``<dir>/../images/<split>``, ``<dir>/../images``, ``<dir>/../<split>``,
    ``<dir>/..`` (split guessed from the file name, e.g. ``person_keypoints_val2017`` -> ``val2017``).
    Checks a sample of up to 20 images per candidate and takes the first one where all are
    found (else the one with most). Returns the root and a warning Problem when none is found.
    """
    label_file = Path(label_file)
    base = label_file.parent
    rel = [f for f in file_names if f and not (os.path.isabs(f) and Path(f).is_absolute())]
    default = Path(image_root) if image_root is not None else base
    if not rel:
        return default, None
    step = max(1, len(rel) // _ROOT_SAMPLE)
    sample = rel[::step][:_ROOT_SAMPLE]
    splits = _split_tokens(label_file.stem)
    candidates: list[Path] = [Path(image_root)] if image_root is not None else []
    candidates += [base, base / "images"]
    candidates += [base.parent / "images" / s for s in splits]
    candidates += [base.parent / "images"]
    candidates += [base.parent / s for s in splits]
    candidates += [base.parent]
    best, best_hits = default, 0
    seen: set[str] = set()
    for cand in candidates:
        key = os.path.abspath(cand)
        if key in seen or not os.path.isdir(cand):
            continue
        seen.add(key)
        hits = sum(os.path.exists(os.path.join(cand, f)) for f in sample)
        if hits > best_hits:
            best, best_hits = cand, hits
        if hits == len(sample):
            break
    if best_hits:
        if image_root is not None and best != Path(image_root):
            return best, Problem(
                code="image_root_ignored", severity="warning", where=str(label_file),
                message=f"images are not under the given image_root {image_root}; found them under {best}",
                hint="fix or drop image_root")
        return best, None
    tried = ", ".join(str(c) for c in candidates[:4])
    return default, Problem(
        code="images_not_found", severity="warning", where=str(label_file),
        message=f"none of {len(sample)} sampled images (e.g. '{sample[0]}') found next to the labels "
                f"(tried {tried}, ...)",
        hint="pass image_root (--image-root / data.image_root) pointing to the image folder",
    )


def relative_file_name(dataset: KeypointDataset, record: ImageRecord, dest_dir: Path | None) -> str:
    """``record``'s image path as written into a label file in ``dest_dir``.

    Relative to ``dest_dir`` (POSIX separators) so that the written file still finds its images
    wherever it was written; absolute when no relative path exists (another drive); unchanged
    when the dataset has no root or ``dest_dir`` is None.
    """
    p = Path(record.file_name)
    if dest_dir is None:
        return p.as_posix()
    if not p.is_absolute():
        if dataset.root is None:
            return p.as_posix()
        p = Path(dataset.root) / p
    abs_p = os.path.abspath(p)
    try:
        return Path(os.path.relpath(abs_p, os.path.abspath(dest_dir))).as_posix()
    except ValueError:  # different drive on Windows
        return Path(abs_p).as_posix()


def fill_image_sizes(dataset: KeypointDataset, where: str | Path) -> None:
    """Read width/height from image headers where the labels lack them (Problem when unreadable)."""
    from posetune.data.images import image_size

    for rec in dataset.images:
        if rec.width and rec.height:
            continue
        try:
            rec.width, rec.height = image_size(dataset.image_path(rec))
        except DataError as e:
            dataset.problems.append(Problem(
                code="image_unreadable", severity="warning", where=f"{where}:image '{rec.file_name}'",
                message=f"image size unknown: {e.what} ({e.where})", hint=e.hint))


def _num(x: float) -> int | float:
    """JSON number: integral values as int (367, not 367.0)."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _flat_keypoints(kps: np.ndarray) -> list[int | float]:
    out: list[int | float] = []
    for x, y, v in kps.tolist():
        out.extend((_num(x), _num(y), _num(v)))
    return out


# ============================================================================ detection
def _looks_coco(d: Any) -> bool:
    return isinstance(d, dict) and isinstance(d.get("images"), list) and isinstance(d.get("annotations"), list)


def _is_coco_file(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    size = path.stat().st_size
    if size <= _DETECT_FULL_PARSE_BYTES:
        try:
            return _looks_coco(read_json(path))
        except DataError:
            return False
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(1 << 20)
    return head.lstrip().startswith("{") and ('"annotations"' in head or '"images"' in head)


def _coco_files_in(folder: Path) -> list[Path]:
    found: list[Path] = []
    for sub in (folder, folder / "annotations"):
        if not sub.is_dir():
            continue
        jsons = sorted(p for p in sub.iterdir() if p.suffix.lower() == ".json")
        if len(jsons) > 20:  # a folder of per-image json files (LabelMe) is not a COCO folder
            continue
        found += [p for p in jsons if _is_coco_file(p)]
    return found


def detect(path: Path) -> bool:
    """True for a COCO json (top-level ``images`` and ``annotations`` lists) or a folder holding some."""
    path = Path(path)
    if path.is_dir():
        return bool(_coco_files_in(path))
    return _is_coco_file(path)


# ============================================================================ reading
def read(path: Path, *, image_root: Path | None = None, spec: KeypointSpec | None = None) -> KeypointDataset:
    """Read a COCO keypoint json (or a folder of them, e.g. ``annotations/person_keypoints_{train,val}.json``)."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, image_root=image_root, spec=spec)
    data = read_json(path)
    file_names = []
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        file_names = [str(im.get("file_name", "")) for im in data["images"] if isinstance(im, dict)]
    root, problem = find_image_root(path, file_names, image_root)
    ds = coco_dict_to_dataset(data, root=root, source=path, spec=spec)
    if problem is not None:
        ds.problems.insert(0, problem)
    fill_image_sizes(ds, path)
    return ds


def _read_folder(folder: Path, *, image_root: Path | None, spec: KeypointSpec | None) -> KeypointDataset:
    files = _coco_files_in(folder)
    if not files:
        raise DataError("no COCO json found in this folder or its annotations/ subfolder", where=folder,
                        hint="pass the COCO json file itself")
    if len(files) == 1:
        return read(files[0], image_root=image_root, spec=spec)
    parts = [read(f, image_root=image_root, spec=spec) for f in files]
    first = parts[0]
    for f, ds in zip(files[1:], parts[1:]):
        if ds.spec.keypoints != first.spec.keypoints:
            raise DataError(f"keypoints differ from those in {files[0].name}", where=f,
                            hint="read the files one by one, or give them the same keypoint list")
    common = Path(os.path.commonpath([os.path.abspath(ds.root or f.parent) for f, ds in zip(files, parts)]))
    merged = KeypointDataset(spec=first.spec, root=common, source=folder, format=NAME, categories=[],
                             info=dict(first.info))
    for f, ds in zip(files, parts):
        split = _split_tokens(f.stem)
        group = split[0] if split else f.stem
        for rec in ds.images:
            p = Path(rec.file_name)
            if not p.is_absolute() and ds.root is not None:
                rec.file_name = Path(os.path.relpath(os.path.abspath(Path(ds.root) / p), common)).as_posix()
            rec.group = group
            rec.extra["split"] = group
            merged.images.append(rec)
        merged.problems += ds.problems
        merged.categories += [c for c in ds.categories if c not in merged.categories]
    merged.categories = merged.categories or first.categories
    merged.ensure_ids()  # ids restart in every split file
    return merged


class _Reader:
    """Turns one COCO dict into a KeypointDataset (kept small: one method per concern)."""

    def __init__(self, d: Any, root: Path | None, source: str, spec: KeypointSpec | None):
        self.d, self.root, self.source, self.user_spec = d, root, source, spec
        self.problems: list[Problem] = []
        # (field, K) -> per-annotation arrays checked in one go (see _checked_rows); None: check one by one
        self.ready: dict[tuple[str, int], list[np.ndarray | None]] = {}

    def problem(self, code: str, message: str, where: str, severity: str = "error", hint: str | None = None) -> None:
        self.problems.append(Problem(code=code, message=message, where=f"{self.source}:{where}",
                                     severity=severity, hint=hint))  # type: ignore[arg-type]

    # ---------------------------------------------------------------- structure
    def check_structure(self) -> None:
        if not isinstance(self.d, dict):
            raise DataError(f"top level is a {type(self.d).__name__}, expected a COCO object with "
                            "'images', 'annotations' and 'categories'", where=self.source,
                            hint="a plain list of keypoint entries is the 'simple' format (--from simple)")
        for key in ("images", "annotations"):
            if key not in self.d:
                raise DataError(f"missing top-level key '{key}'", where=self.source,
                                hint="a COCO keypoint file needs 'images', 'annotations' and 'categories'")
            if not isinstance(self.d[key], list):
                raise DataError(f"'{key}' must be a list, got {type(self.d[key]).__name__}", where=self.source)
        cats = self.d.get("categories", [])
        if not isinstance(cats, list) or not all(isinstance(c, dict) for c in cats):
            raise DataError("'categories' must be a list of objects", where=self.source)

    # ---------------------------------------------------------------- categories and spec
    def categories(self) -> dict[Any, dict]:
        return {c.get("id"): c for c in self.d.get("categories", [])}

    def keypoint_layout(self, cats: dict[Any, dict]) -> tuple[list[str] | None, int, bool, list, str]:
        """(names or None, K, wholebody, skeleton as in file, category name) from categories + annotations."""
        anns = [a for a in self.d["annotations"] if isinstance(a, dict)]
        wholebody = any(any(k in a for k, _ in WHOLEBODY_PARTS) for a in anns[:1000])
        named = [c for c in cats.values() if c.get("keypoints")]
        lists = {tuple(map(str, c["keypoints"])) for c in named}
        if len(lists) > 1:
            desc = "; ".join(f"'{c.get('name')}' ({len(c['keypoints'])} keypoints)" for c in named)
            raise DataError(f"categories have different keypoint lists: {desc}", where=self.source,
                            hint="split the file into one file per category (or give them the same keypoint list) "
                                 "and train one model per keypoint set")
        names = list(lists.pop()) if lists else None
        cat = named[0] if named else next(iter(cats.values()), {})
        skeleton = list(cat.get("skeleton") or [])
        cat_name = str(cat.get("name") or "custom")
        lengths = [len(a["keypoints"]) for a in anns if isinstance(a.get("keypoints"), list) and a["keypoints"]]
        if wholebody:
            return names, 133, True, skeleton, cat_name
        if names is not None:
            k = len(names)
            if lengths and not any(n == 3 * k for n in lengths):
                common = max(set(lengths), key=lengths.count)
                if common == 3 * 133 and names == list(_coco17_names()):
                    return names, 133, True, skeleton, cat_name  # whole-body merged into one keypoints array
                raise DataError(f"categories list {k} keypoint names but annotations hold {common // 3} points "
                                f"({common} numbers)", where=self.source,
                                hint="fix the category's 'keypoints' names or the annotations")
            return names, k, False, skeleton, cat_name
        if not lengths:
            if self.user_spec is not None:
                return None, self.user_spec.num_keypoints, False, skeleton, cat_name
            if anns:
                raise DataError("no annotation has keypoints and the categories name none", where=self.source,
                                hint="this looks like a detection-only COCO file; keypoint labels are needed")
            return None, 0, False, skeleton, cat_name
        common = max(set(lengths), key=lengths.count)
        return None, common // 3, False, skeleton, cat_name

    def skeleton_0based(self, skeleton: list, k: int) -> tuple[tuple[int, int], ...]:
        try:
            links = [(int(a), int(b)) for a, b in skeleton]
        except (TypeError, ValueError):
            self.problem("bad_skeleton", "category 'skeleton' is not a list of index pairs; ignored", "categories",
                         severity="warning")
            return ()
        if not links:
            return ()
        lo = min(min(p) for p in links)
        hi = max(max(p) for p in links)
        if lo >= 1 and hi <= k:
            return tuple((a - 1, b - 1) for a, b in links)
        if lo >= 0 and hi < k:
            self.problem("skeleton_0based", "category 'skeleton' uses 0-based indices (COCO is 1-based); "
                         "read as 0-based", "categories", severity="warning")
            return tuple(links)
        self.problem("bad_skeleton", f"category 'skeleton' refers to keypoints outside 1..{k}; ignored", "categories",
                     severity="warning")
        return ()

    def build_spec(self, names: list[str] | None, k: int, wholebody: bool, skeleton: list,
                   cat_name: str) -> tuple[KeypointSpec, np.ndarray | None]:
        from posetune.data.presets import COCO_WHOLEBODY133

        if wholebody:
            label_spec, label_names = COCO_WHOLEBODY133, list(COCO_WHOLEBODY133.keypoints)
        elif names is not None:
            label_spec, label_names = spec_from_names(names, cat_name, self.skeleton_0based(skeleton, k)), names
        else:
            label_names = None
            label_spec = None
        if self.user_spec is not None:
            order = match_spec(self.user_spec, label_names, k, self.source)
            return self.user_spec, order
        if label_spec is None:
            if k:
                self.problem("generated_names", f"categories name no keypoints; using kp_0 .. kp_{k - 1}",
                             "categories", severity="warning",
                             hint="add the keypoint names to the category's 'keypoints' list, or pass a spec")
            label_spec = spec_from_names(generic_names(k), cat_name, self.skeleton_0based(skeleton, k))
        return label_spec, None

    # ---------------------------------------------------------------- images
    def images(self) -> dict[Any, ImageRecord]:
        out: dict[Any, ImageRecord] = {}
        for i, im in enumerate(self.d["images"]):
            where = f"image #{i}" if not isinstance(im, dict) or "id" not in im else f"image id {im['id']}"
            if not isinstance(im, dict) or not im.get("file_name"):
                self.problem("bad_image", "image entry without 'file_name'; skipped", where)
                continue
            raw_id = im.get("id")
            if raw_id in out:
                self.problem("duplicate_image_id", f"image id repeats ('{im['file_name']}'); skipped", where)
                continue
            extra = {k: v for k, v in im.items() if k not in _IMAGE_KEYS}
            out[raw_id] = ImageRecord(
                file_name=str(im["file_name"]).replace("\\", "/"),
                width=_int_or_none(im.get("width")), height=_int_or_none(im.get("height")),
                id=_int_or_none(raw_id), extra={"coco": extra} if extra else {},
            )
        return out

    # ---------------------------------------------------------------- annotations
    def keypoint_array(self, values: Any, k: int, where: str, field: str) -> np.ndarray | None:
        """(k, 3) array from a flat list, or None after recording a Problem."""
        if values is None or (isinstance(values, list) and len(values) == 0):
            return np.zeros((k, 3))
        if not isinstance(values, list):
            self.problem("bad_keypoints", f"'{field}' is not a list; annotation skipped", where)
            return None
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            try:
                arr = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            except (TypeError, ValueError):
                self.problem("bad_keypoints", f"'{field}' holds non-numbers; annotation skipped", where)
                return None
        if arr.ndim != 1 or arr.size != 3 * k:
            self.problem("keypoints_length", f"'{field}' has {arr.size} numbers, expected {3 * k} "
                         f"({k} keypoints x 3); annotation skipped", where,
                         hint="every annotation needs x, y, v for each keypoint of its category")
            return None
        kps = arr.reshape(k, 3)
        v = kps[:, 2]
        bad = ~np.isfinite(kps[:, :2]).all(axis=1) & ((v > 0) | ~np.isfinite(v))
        if bad.any() or not np.isfinite(v).all():
            idx = np.flatnonzero(bad | ~np.isfinite(v))
            self.problem("nan_keypoints", f"'{field}' has NaN/inf values at keypoint(s) {idx[:10].tolist()}; "
                         "annotation skipped", where, hint="mark missing points with x=y=v=0")
            return None
        kps[~np.isfinite(kps)] = 0.0  # unlabelled points with NaN coordinates
        # COCO flags 0/1/2; COCO-WholeBody also has fractional v (annotator confidence) for some
        # hand/face points: kept as read (v > 0 = labelled), so files round-trip unchanged.
        kps[:, 2] = np.clip(v, 0, 2)
        return kps

    def checked(self, field: str, k: int, i: int | None) -> np.ndarray | None:
        """Annotation ``i``'s ``field`` as read by :meth:`prepare` (None: not read in bulk)."""
        rows = self.ready.get((field, k))
        return None if rows is None or i is None else rows[i]

    def prepare(self, anns: list, k: int, wholebody: bool) -> None:
        """Read and check the keypoints (and boxes) of all annotations at once, field by field.

        What passes the bulk checks is exactly what :meth:`keypoint_array` accepts without a
        Problem; everything else is left to the per-annotation path, which reports it.
        """
        fields = [("keypoints", 17), ("keypoints", 133), *WHOLEBODY_PARTS] if wholebody else [("keypoints", k)]
        for field, n in fields:
            self.ready[(field, n)] = _checked_rows(anns, field, n, _keypoint_rows)
        self.ready[("bbox", 4)] = _checked_rows(anns, "bbox", 4, None)

    def instance(self, a: dict, k: int, wholebody: bool, where: str, i: int | None = None) -> Instance | None:
        if wholebody:
            n_body = 133 if _merged_len(a) else 17
            body = self.checked("keypoints", n_body, i)
            if body is None:
                body = self.keypoint_array(a.get("keypoints"), n_body, where, "keypoints")
            if body is None:
                return None
            if body.shape[0] == 133:
                kps = body
            else:
                arrays = [body]
                for field, n in WHOLEBODY_PARTS:
                    part = self.checked(field, n, i)
                    if part is None:
                        part = self.keypoint_array(a.get(field), n, where, field)
                    if part is None:
                        return None
                    arrays.append(part)
                kps = np.concatenate(arrays)
        else:
            kps = self.checked("keypoints", k, i)
            if kps is None:
                kps = self.keypoint_array(a.get("keypoints"), k, where, "keypoints")
            if kps is None:
                return None
        bbox = a.get("bbox")
        checked_box = self.checked("bbox", 4, i)
        if checked_box is not None:
            bbox = checked_box
        elif bbox is not None:
            try:
                bbox = np.asarray(bbox, dtype=np.float64).reshape(4)
                if not np.isfinite(bbox).all():
                    raise ValueError
            except (TypeError, ValueError):
                self.problem("bad_bbox", f"'bbox' {str(a.get('bbox'))[:60]} is not 4 finite numbers; ignored", where,
                             severity="warning")
                bbox = None
        extra: dict[str, Any] = {k2: a[k2] for k2 in WHOLEBODY_EXTRA_KEYS if k2 in a}
        if not a.keys() <= _ANN_KEYS:
            extra["coco"] = {k2: v for k2, v in a.items() if k2 not in _ANN_KEYS}
        return Instance(
            keypoints=kps, bbox=bbox, iscrowd=bool(a.get("iscrowd", 0)), id=_int_or_none(a.get("id")),
            area=_float_or_none(a.get("area")), score=_float_or_none(a.get("score")), track_id=a.get("track_id"),
            extra=extra,
        )

    def run(self) -> KeypointDataset:
        self.check_structure()
        cats = self.categories()
        names, k, wholebody, skeleton, cat_name = self.keypoint_layout(cats)
        spec, order = self.build_spec(names, k, wholebody, skeleton, cat_name)
        images = self.images()
        cat_names = {cid: str(c.get("name", cid)) for cid, c in cats.items()}
        self.prepare(self.d["annotations"], k, wholebody)
        for i, a in enumerate(self.d["annotations"]):
            if not isinstance(a, dict):
                self.problem("bad_annotation", f"annotation is a {type(a).__name__}, not an object; skipped",
                             f"annotation #{i}")
                continue
            where = f"annotation id {a['id']}" if "id" in a else f"annotation #{i}"
            rec = images.get(a.get("image_id"))
            if rec is None:
                self.problem("unknown_image_id", f"image_id {a.get('image_id')!r} is not in 'images'; "
                             "annotation skipped", where, hint="add the image entry or remove the annotation")
                continue
            inst = self.instance(a, k, wholebody, where, i)
            if inst is None:
                continue
            if order is not None:
                inst.keypoints = inst.keypoints[order]
            cid = a.get("category_id")
            inst.category = cat_names.get(cid, str(cid) if cid is not None else None)
            rec.instances.append(inst)
        categories = [cat_names[c] for c in sorted(cats, key=_sort_key)] or ["person"]
        info: dict[str, Any] = {}
        for key in ("info", "licenses"):
            if key in self.d:
                info[key] = self.d[key]
        if cats:
            info["coco_categories"] = [{k2: v for k2, v in c.items() if k2 not in ("keypoints", "skeleton")}
                                       for c in cats.values()]
        return KeypointDataset(spec=spec, images=list(images.values()), root=self.root,
                               source=Path(self.source) if self.source != "<coco dict>" else None, format=NAME,
                               categories=categories, problems=self.problems, info=info)


def _keypoint_rows(block: np.ndarray) -> np.ndarray:
    """(M, 3K) keypoint rows that are all finite -> (M, K, 3) with v clipped as :meth:`_Reader.keypoint_array` does."""
    kps = block.reshape(len(block), -1, 3)
    np.clip(kps[:, :, 2], 0, 2, out=kps[:, :, 2])
    return kps


def _checked_rows(anns: list, field: str, k: int,
                  finish: Callable[[np.ndarray], np.ndarray] | None) -> list[np.ndarray | None]:
    """One entry per annotation: its ``field`` read as floats when it is a list of ``k`` x 3 (boxes:
    ``k`` = 4, ``finish`` None) finite numbers, else None.

    Reads all such lists with one ``np.asarray`` (row by row only when some row will not
    convert); the arrays are views into one block. ``finish`` reshapes the block of good rows.
    """
    out: list[np.ndarray | None] = [None] * len(anns)
    width = k if finish is None else 3 * k
    if width == 0:
        return out
    pos = [i for i, a in enumerate(anns)
           if isinstance(a, dict) and isinstance(v := a.get(field), list) and len(v) == width]
    if not pos:
        return out
    lists = [anns[i][field] for i in pos]
    try:
        block = np.asarray(lists, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        block = None
    if block is None or block.shape != (len(pos), width):  # an odd row: keep the rows that convert cleanly
        rows, kept = [], []
        for i, values in zip(pos, lists):
            try:
                row = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                continue
            if row.shape == (width,):
                rows.append(row)
                kept.append(i)
        if not rows:
            return out
        pos, block = kept, np.stack(rows)
    good = np.flatnonzero(np.isfinite(block).all(axis=1))
    if not len(good):
        return out
    if len(good) < len(block):
        block = block[good]
        pos = [pos[j] for j in good.tolist()]
    arrays = finish(block) if finish is not None else block
    for i, arr in zip(pos, arrays):
        out[i] = arr
    return out


def _coco17_names() -> tuple[str, ...]:
    from posetune.data.presets import COCO17_NAMES

    return COCO17_NAMES


def _merged_len(a: dict) -> bool:
    kp = a.get("keypoints")
    return isinstance(kp, list) and len(kp) == 3 * 133


def _sort_key(x: Any) -> tuple[int, Any]:
    return (0, x) if isinstance(x, (int, float)) else (1, str(x))


def _int_or_none(x: Any) -> int | None:
    if type(x) is int and -_EXACT_INT <= x <= _EXACT_INT:  # the common case, without the float round trip
        return x
    try:
        if x is None or isinstance(x, bool):
            return None
        f = float(x)
        return int(f) if math.isfinite(f) and f.is_integer() else None
    except (TypeError, ValueError):
        return None


def _float_or_none(x: Any) -> float | None:
    if type(x) is float:
        return x if math.isfinite(x) else None
    if x is None:
        return None
    try:
        f = float(x)
        return f if math.isfinite(f) else None
    except (TypeError, ValueError):
        return None


def coco_dict_to_dataset(d: dict, root: Path | str | None = None, source: Path | str | None = None, *,
                         spec: KeypointSpec | None = None) -> KeypointDataset:
    """A KeypointDataset from an in-memory COCO dict (no file access; image sizes as in the dict).

    ``root`` is the folder image ``file_name``s are relative to; ``source`` names the file in
    problems and errors. Soft errors are in ``dataset.problems``.
    """
    reader = _Reader(d, Path(root) if root is not None else None, str(source) if source else "<coco dict>", spec)
    return reader.run()


# ============================================================================ writing
def _category_table(ds: KeypointDataset) -> list[dict[str, Any]]:
    names = list(ds.categories) or ["person"]
    for _, inst in ds.iter_instances():
        if inst.category is not None and inst.category not in names:
            names.append(inst.category)
    known = {c.get("name"): c for c in ds.info.get("coco_categories", []) if isinstance(c, dict)}
    used_ids = {c.get("id") for c in known.values() if isinstance(c.get("id"), int)}
    out, next_id = [], 1
    for name in names:
        c = dict(known.get(name, {}))
        if not isinstance(c.get("id"), int):
            while next_id in used_ids:
                next_id += 1
            c["id"] = next_id
            used_ids.add(next_id)
        c["name"] = name
        c.setdefault("supercategory", name)
        out.append(c)
    return out


def _is_wholebody(spec: KeypointSpec) -> bool:
    from posetune.data.presets import COCO_WHOLEBODY133

    return spec.keypoints == COCO_WHOLEBODY133.keypoints


def _annotation(inst: Instance, rec: ImageRecord, cat_id: int, split_wholebody: bool) -> dict[str, Any]:
    kps = inst.keypoints
    bbox = inst.bbox if inst.bbox is not None else inst.keypoint_bbox(0.0)
    bbox = np.zeros(4) if bbox is None else bbox
    body = kps[:17] if split_wholebody else kps
    a: dict[str, Any] = {
        "id": inst.id, "image_id": rec.id, "category_id": cat_id,
        "keypoints": _flat_keypoints(body),
        "num_keypoints": int((body[:, 2] > 0).sum()),
        "bbox": [_num(v) for v in bbox],
        "area": _num(inst.area if inst.area is not None else float(bbox[2] * bbox[3])),
        "iscrowd": int(bool(inst.iscrowd)),
    }
    coco_extra = inst.extra.get("coco")
    if isinstance(coco_extra, dict):
        for k, v in coco_extra.items():
            a.setdefault(k, v)
    if inst.score is not None:
        a["score"] = float(inst.score)
    if inst.track_id is not None:
        a["track_id"] = inst.track_id
    if split_wholebody:
        start = 17
        for field, n in WHOLEBODY_PARTS:
            part = kps[start:start + n]
            start += n
            a[field] = _flat_keypoints(part)
            valid = _PART_VALID[field]
            a[valid] = bool(inst.extra[valid]) if valid in inst.extra else bool((part[:, 2] > 0).any())
            if field in _PART_BOX:
                box_key = _PART_BOX[field]
                if box_key in inst.extra:
                    a[box_key] = inst.extra[box_key]
                else:
                    pts = part[part[:, 2] > 0, :2]
                    lo, hi = (pts.min(0), pts.max(0)) if len(pts) else (np.zeros(2), np.zeros(2))
                    a[box_key] = [_num(lo[0]), _num(lo[1]), _num(hi[0] - lo[0]), _num(hi[1] - lo[1])]
    return a


def dataset_to_coco_dict(ds: KeypointDataset, relative_to: Path | str | None = None, *,
                         split_wholebody: bool = True) -> dict[str, Any]:
    """A standard COCO keypoint dict of ``ds`` (in memory).

    Fills missing image/instance ids in ``ds`` (:meth:`KeypointDataset.ensure_ids`), so ids in the
    dict and the dataset agree. ``file_name``s are rewritten relative to ``relative_to`` (the folder
    the json will live in) when given. A 133-point COCO-WholeBody spec is written in the split form
    (``keypoints`` 17 + ``foot_kpts`` / ``face_kpts`` / ``lefthand_kpts`` / ``righthand_kpts``) unless
    ``split_wholebody`` is False (then all 133 points go into ``keypoints``).
    """
    ds.ensure_ids()
    split = split_wholebody and _is_wholebody(ds.spec)
    spec = ds.spec
    cats = _category_table(ds)
    cat_ids = {c["name"]: c["id"] for c in cats}
    default_cat = cats[0]["id"]
    names = list(spec.keypoints[:17]) if split else list(spec.keypoints)
    links = [(a, b) for a, b in spec.skeleton if a < len(names) and b < len(names)]
    for c in cats:
        c["keypoints"] = names
        c["skeleton"] = [[a + 1, b + 1] for a, b in links]
    dest = Path(relative_to) if relative_to is not None else None
    images, annotations = [], []
    for rec in ds.images:
        im: dict[str, Any] = {"id": rec.id, "file_name": relative_file_name(ds, rec, dest)}
        if rec.width and rec.height:
            im["width"], im["height"] = int(rec.width), int(rec.height)
        extra = rec.extra.get("coco")
        if isinstance(extra, dict):
            for k, v in extra.items():
                im.setdefault(k, v)
        images.append(im)
        for inst in rec.instances:
            if inst.num_keypoints != spec.num_keypoints:
                raise DataError(f"instance {inst.id} has {inst.num_keypoints} keypoints, spec has {spec.num_keypoints}",
                                where=f"image '{rec.file_name}'", hint="all instances must follow the dataset's spec")
            annotations.append(_annotation(inst, rec, cat_ids.get(inst.category, default_cat), split))
    out: dict[str, Any] = {}
    for key in ("info", "licenses"):
        if key in ds.info:
            out[key] = ds.info[key]
    out.update({"images": images, "annotations": annotations, "categories": cats})
    return out


def write_coco(ds: KeypointDataset, path: Path | str) -> Path:
    """Write ``ds`` as one COCO json at ``path`` (atomically); image paths relative to its folder."""
    path = Path(path)
    _fill_missing_sizes(ds)
    write_json_atomic(path, dataset_to_coco_dict(ds, relative_to=path.parent), indent=None)
    return path


def _fill_missing_sizes(ds: KeypointDataset) -> None:
    from posetune.data.images import image_size

    for rec in ds.images:
        if not (rec.width and rec.height):
            try:
                rec.width, rec.height = image_size(ds.image_path(rec))
            except DataError:
                pass  # written without width/height; readers take them from the image later


def write(dataset: KeypointDataset, dest: Path) -> list[Path]:
    """Write ``dataset`` as COCO json: ``dest`` is the .json file, or a folder (-> ``annotations.json``)."""
    dest = Path(dest)
    path = dest if dest.suffix.lower() == ".json" else dest / "annotations.json"
    return [write_coco(dataset, path)]
