"""Ultralytics YOLO-pose datasets: a data yaml plus one label txt per image.

``data.yaml``: ``path`` (dataset root; default the yaml's folder), ``train`` / ``val`` / ``test``
(image folder, txt list of images, or a list of those), ``kpt_shape: [K, 2|3]``, ``flip_idx``,
``names`` and optionally ``kpt_names`` (per class, as newer ultralytics allows) and ``skeleton``
(0-based pairs; a posetune extension ultralytics ignores).

Label lines are ``cls cx cy w h x1 y1 [v1] ...`` normalised to [0, 1]; a label file is found by
replacing the last ``images`` path component of the image with ``labels`` and the extension
with ``.txt`` (the ultralytics rule). With ``kpt_shape [K, 2]`` points at (0, 0) are unlabelled.
Records get ``group`` = split name and ``extra['split']``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from posetune.data.formats.coco import generic_names, is_generic, match_spec, spec_from_names
from posetune.data.images import IMAGE_EXTENSIONS, image_size
from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError
from posetune.io_utils import write_text_atomic

NAME = "yolo"
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "testing": "test"}
_YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
_HEADER = "# YOLO-pose dataset written by posetune (ultralytics layout: images/<split>, labels/<split>)\n"


# ============================================================================ yaml and detection
def _load_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        raise DataError(f"malformed YAML: {e.problem}", where=where, hint="fix the YAML syntax at that line") from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read YAML ({e})", where=path) from None
    if not isinstance(data, dict):
        raise DataError("a YOLO data yaml must be a mapping with train/val/kpt_shape/names", where=path)
    return data


def _is_pose_yaml(path: Path) -> bool:
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        return "kpt_shape" in _load_yaml(path)
    except DataError:
        return False


def _find_yaml(folder: Path) -> Path | None:
    for name in _YAML_NAMES:
        if _is_pose_yaml(folder / name):
            return folder / name
    for p in sorted(folder.glob("*.y*ml")):
        if _is_pose_yaml(p):
            return p
    return None


def _pose_line_ok(tokens: list[str]) -> bool:
    if len(tokens) <= 5 or ((len(tokens) - 5) % 3 and (len(tokens) - 5) % 2):
        return False
    try:
        vals = [float(t) for t in tokens]
    except ValueError:
        return False
    return vals[0] >= 0 and float(vals[0]).is_integer()


def _sample_txt(folder: Path, limit: int = 5, max_dirs: int = 200) -> list[Path]:
    """Up to ``limit`` txt files under ``folder`` (visiting at most ``max_dirs`` folders: detection stays cheap)."""
    out: list[Path] = []
    for n, (dirpath, dirnames, filenames) in enumerate(os.walk(folder)):
        if n >= max_dirs:
            break
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(".txt") and not f.startswith("."):
                out.append(Path(dirpath) / f)
                if len(out) >= limit:
                    return out
    return out


def _labels_dir(folder: Path) -> Path | None:
    """``folder`` (or its ``labels`` subfolder) when its txt files are YOLO-pose label files."""
    labels = folder / "labels" if (folder / "labels").is_dir() else folder
    seen_line = False
    for txt in _sample_txt(labels):
        try:
            lines = [ln.split() for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError):
            return None
        if not all(_pose_line_ok(t) for t in lines):
            return None
        seen_line = seen_line or bool(lines)
    return labels if seen_line else None


def detect(path: Path) -> bool:
    """A data yaml with ``kpt_shape``, a folder holding one, or a folder of YOLO-pose label txt files."""
    path = Path(path)
    if path.is_file():
        return _is_pose_yaml(path)
    if path.is_dir():
        return _find_yaml(path) is not None or _labels_dir(path) is not None
    return False


# ============================================================================ reading
def label_path_for(image: Path) -> Path:
    """The ultralytics label path of an image: last ``images`` component -> ``labels``, suffix -> .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _list_images(entry: Any, root: Path, yaml_path: Path, key: str) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    out: list[Path] = []
    for item in entries:
        p = Path(str(item))
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXTENSIONS and q.is_file())
        elif p.is_file() and p.suffix.lower() == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line:
                    continue
                q = Path(line)
                if not q.is_absolute():
                    q = p.parent / line if line.startswith("./") or not (root / line).exists() else root / line
                out.append(q)
        elif p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            out.append(p)
        else:
            raise DataError(f"'{key}' points to {p}, which does not exist", where=yaml_path,
                            hint=f"fix '{key}' (relative to 'path' = {root}) or the dataset layout")
    return out


def _names_list(names: Any) -> list[str]:
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=lambda x: int(x))]
    if isinstance(names, list):
        return [str(n) for n in names]
    return []


def _kpt_names(raw: Any, k: int, where: Path) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):  # per class: {0: [...], 1: [...]}
        lists = [list(map(str, raw[c])) for c in sorted(raw, key=lambda x: int(x))]
    elif isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
        lists = [list(map(str, x)) for x in raw]
    elif isinstance(raw, list):
        lists = [list(map(str, raw))]
    else:
        raise DataError("'kpt_names' must be a list of names or a {class: [names]} mapping", where=where)
    if any(names != lists[0] for names in lists):
        raise DataError("'kpt_names' differ between classes", where=where,
                        hint="posetune trains one keypoint set: give every class the same keypoint names")
    if len(lists[0]) != k:
        raise DataError(f"'kpt_names' has {len(lists[0])} names but kpt_shape says {k} keypoints", where=where)
    return lists[0]


def _flip_pairs(flip_idx: Any, k: int, where: Path, problems: list[Problem]) -> list[tuple[int, int]] | None:
    if flip_idx is None:
        return None
    try:
        idx = [int(i) for i in flip_idx]
    except (TypeError, ValueError):
        idx = []
    if len(idx) != k or sorted(idx) != list(range(k)) or any(idx[idx[i]] != i for i in range(k)):
        problems.append(Problem(code="bad_flip_idx", severity="warning", where=f"{where}:flip_idx",
                                message=f"flip_idx {str(flip_idx)[:60]} is not a mirror permutation of {k} "
                                        "keypoints; flip pairs inferred from names instead"))
        return None
    return sorted({(min(i, j), max(i, j)) for i, j in enumerate(idx) if i != j})


def _parse_labels(txt: Path, k: int, ndim: int, w: int, h: int, names: list[str],
                  problems: list[Problem]) -> list[Instance]:
    out: list[Instance] = []
    try:
        text = txt.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(code="label_unreadable", message=f"cannot read label file ({e})", where=str(txt)))
        return out
    scale = np.array([w, h], dtype=np.float64)
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{txt}:{lineno}"
        if len(tokens) != 5 + k * ndim:
            problems.append(Problem(code="keypoints_length", where=where,
                                    message=f"{len(tokens)} values, expected {5 + k * ndim} "
                                            f"(cls cx cy w h + {k} x {ndim}); line skipped"))
            continue
        try:
            vals = np.array([float(t) for t in tokens])
        except ValueError:
            problems.append(Problem(code="bad_line", where=where, message="non-numeric value; line skipped"))
            continue
        if not np.isfinite(vals).all():
            problems.append(Problem(code="nan_keypoints", where=where, message="NaN/inf value; line skipped"))
            continue
        cls = int(vals[0])
        cx, cy, bw, bh = vals[1:5]
        pts = vals[5:].reshape(k, ndim)
        kps = np.zeros((k, 3))
        kps[:, :2] = pts[:, :2] * scale
        if ndim == 3:
            kps[:, 2] = np.clip(pts[:, 2], 0, 2)
        else:
            kps[:, 2] = np.where((pts[:, 0] == 0) & (pts[:, 1] == 0), 0.0, 2.0)
        bbox = np.array([(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h])
        category = names[cls] if 0 <= cls < len(names) else str(cls)
        out.append(Instance(keypoints=kps, bbox=bbox, category=category))
    return out


def read(path: Path, *, image_root: Path | None = None, spec: KeypointSpec | None = None) -> KeypointDataset:
    """Read a YOLO-pose dataset from its data yaml, a folder holding one, or a labels folder."""
    path = Path(path)
    if path.is_dir():
        yaml_path = _find_yaml(path)
        if yaml_path is None and path.name == "labels" and image_root is None:
            yaml_path = _find_yaml(path.parent)  # dataset/labels given: its dataset's yaml knows names and splits
        if yaml_path is None:
            labels = _labels_dir(path)
            if labels is None:
                raise DataError("no YOLO data yaml (with kpt_shape) and no pose label txt files here", where=path,
                                hint="pass the data.yaml of the dataset")
            return _read_labels_folder(labels, image_root=image_root, spec=spec)
        path = yaml_path
    cfg = _load_yaml(path)
    problems: list[Problem] = []
    k, ndim = _kpt_shape(cfg.get("kpt_shape"), path)
    root = _dataset_root(cfg, path, image_root)
    splits: list[tuple[str, list[Path]]] = []
    for key in SPLITS:
        if cfg.get(key):
            splits.append((key, _list_images(cfg[key], root, path, key)))
    if not splits:
        raise DataError("the yaml names no 'train' / 'val' / 'test' images", where=path,
                        hint="add e.g. 'train: images/train' and 'val: images/val'")
    names = _names_list(cfg.get("names")) or ["object"]
    spec_obj, order = _spec(cfg, k, path, spec, problems)
    ds = KeypointDataset(spec=spec_obj, root=root, source=path, format=NAME, categories=names, problems=problems)
    seen: dict[str, str] = {}
    for split, images in splits:
        repeated = 0
        for img in images:
            key = os.path.abspath(img)
            if key in seen:  # e.g. 'val: images/train' when a dataset has no validation split
                repeated += 1
                continue
            seen[key] = split
            _add_image(ds, img, label_path_for(img), split, k, ndim, names, order)
        if repeated:
            ds.problems.append(Problem(
                code="split_overlap", severity="warning", where=f"{path}:{split}",
                message=f"{repeated} of {len(images)} '{split}' images are already in an earlier split; "
                        "each image is read once, with its first split",
                hint="give the split its own images for an honest validation score"))
    return ds


def _kpt_shape(raw: Any, where: Path) -> tuple[int, int]:
    try:
        k, ndim = (int(x) for x in raw)
    except (TypeError, ValueError):
        raise DataError(f"'kpt_shape' must be [K, 2] or [K, 3], got {raw!r}", where=where,
                        hint="a YOLO-pose data yaml needs e.g. 'kpt_shape: [17, 3]'") from None
    if k <= 0 or ndim not in (2, 3):
        raise DataError(f"'kpt_shape' must be [K, 2] or [K, 3], got {raw!r}", where=where)
    return k, ndim


def _dataset_root(cfg: dict, yaml_path: Path, image_root: Path | None) -> Path:
    if image_root is not None:
        return Path(image_root)
    raw = cfg.get("path")
    if not raw:
        return yaml_path.parent
    p = Path(str(raw))
    if p.is_absolute():
        return p
    for cand in (yaml_path.parent / p, Path.cwd() / p):
        if cand.is_dir():
            return cand
    return yaml_path.parent / p


def _spec(cfg: dict, k: int, where: Path, spec: KeypointSpec | None,
          problems: list[Problem]) -> tuple[KeypointSpec, np.ndarray | None]:
    names = _kpt_names(cfg.get("kpt_names"), k, where)
    if spec is not None:
        return spec, match_spec(spec, names, k, where)
    label_names = names or generic_names(k)
    pairs = _flip_pairs(cfg.get("flip_idx"), k, where, problems)
    skeleton = []
    for pair in cfg.get("skeleton") or []:
        try:
            a, b = (int(x) for x in pair)
        except (TypeError, ValueError):
            continue
        if 0 <= a < k and 0 <= b < k:
            skeleton.append((a, b))
    return spec_from_names(label_names, name=where.parent.name or "custom", skeleton=skeleton, flip_pairs=pairs), None


def _add_image(ds: KeypointDataset, img: Path, label: Path, split: str | None, k: int, ndim: int,
               names: list[str], order: np.ndarray | None) -> None:
    try:
        w, h = image_size(img)
    except DataError as e:
        ds.problems.append(Problem(code="image_unreadable", where=str(img), hint=e.hint,
                                   message=f"{e.what}; its labels cannot be de-normalised, image skipped"))
        return
    instances = _parse_labels(label, k, ndim, w, h, ds.categories, ds.problems) if label.is_file() else []
    if order is not None:
        for inst in instances:
            inst.keypoints = inst.keypoints[order]
    try:
        rel = Path(os.path.relpath(os.path.abspath(img), os.path.abspath(ds.root))).as_posix()
    except ValueError:
        rel = img.as_posix()
    rec = ImageRecord(file_name=rel, width=w, height=h, instances=instances, group=split)
    if split is not None:
        rec.extra["split"] = split
    ds.images.append(rec)


def _image_for_label(txt: Path) -> Path | None:
    parts = list(txt.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "labels":
            parts[i] = "images"
            break
    stem = Path(*parts).with_suffix("")
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        cand = stem.with_name(stem.name + ext)
        if cand.is_file():
            return cand
    return None


def _read_labels_folder(labels: Path, *, image_root: Path | None, spec: KeypointSpec | None) -> KeypointDataset:
    txts = sorted(p for p in labels.rglob("*.txt") if not p.name.startswith("."))
    first = next((ln.split() for t in txts for ln in t.read_text(encoding="utf-8").splitlines() if ln.strip()), None)
    if first is None:
        raise DataError("label files are all empty: cannot tell the number of keypoints", where=labels,
                        hint="pass the dataset's data.yaml instead")
    n = len(first) - 5
    if spec is not None and n % spec.num_keypoints == 0 and n // spec.num_keypoints in (2, 3):
        k, ndim = spec.num_keypoints, n // spec.num_keypoints
    else:
        ndim = 3 if n % 3 == 0 else 2
        k = n // ndim
    problems: list[Problem] = [Problem(
        code="no_yaml", severity="warning", where=str(labels),
        message=f"no data yaml: read {k} keypoints x {ndim} values per point, keypoint names kp_0..",
        hint="pass the data.yaml (kpt_shape, flip_idx, names) to get names and flip pairs")]
    spec_obj, order = (spec, match_spec(spec, None, k, labels)) if spec is not None else \
        (spec_from_names(generic_names(k), name=labels.parent.name or "custom"), None)
    root = Path(image_root) if image_root is not None else labels.parent
    ds = KeypointDataset(spec=spec_obj, root=root, source=labels, format=NAME, categories=["object"], problems=problems)
    max_cls = -1
    for t in txts:
        img = _image_for_label(t)
        if img is None:
            ds.problems.append(Problem(code="image_not_found", where=str(t),
                                       message="no image for this label file (labels/ -> images/ with an image "
                                               "extension); skipped"))
            continue
        rel = t.relative_to(labels).parts
        split = _SPLIT_ALIASES.get(rel[0].lower()) if len(rel) > 1 else None
        _add_image(ds, img, t, split, k, ndim, ds.categories, order)
    for _, inst in ds.iter_instances():
        if inst.category is not None and inst.category.isdigit():
            max_cls = max(max_cls, int(inst.category))
    if max_cls >= 1:  # several classes and no names: call them by their index
        ds.categories = ["object"] + [str(i) for i in range(1, max_cls + 1)]
    return ds


# ============================================================================ writing
def _split_of(rec: ImageRecord) -> str:
    raw = str(rec.extra.get("split") or rec.group or "train").lower()
    return _SPLIT_ALIASES.get(raw, _SPLIT_ALIASES.get(raw.rstrip("0123456789_-"), "train"))  # val2017 -> val


def _visibility(v: float) -> int:
    return 0 if v <= 0 else (2 if v >= 2 else 1)


def _label_lines(ds: KeypointDataset, rec: ImageRecord, class_index: dict[str, int]) -> str:
    w, h = float(rec.width), float(rec.height)  # type: ignore[arg-type]
    lines = []
    for inst in rec.instances:
        box = inst.box(padding=0.1)
        if box is None:
            continue  # neither a box nor a labelled point: YOLO cannot express it
        x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
        x1, y1 = min(box[0] + box[2], w), min(box[1] + box[3], h)
        cx, cy, bw, bh = ((x0 + x1) / 2 / w, (y0 + y1) / 2 / h, max(x1 - x0, 0.0) / w, max(y1 - y0, 0.0) / h)
        fields = [str(class_index.get(inst.category or "", 0)), f"{cx:.6f}", f"{cy:.6f}", f"{bw:.6f}", f"{bh:.6f}"]
        for x, y, v in inst.keypoints.tolist():
            vis = _visibility(v)
            if vis == 0:
                fields += ["0.000000", "0.000000", "0"]
            else:
                fields += [f"{min(max(x / w, 0.0), 1.0):.6f}", f"{min(max(y / h, 0.0), 1.0):.6f}", str(vis)]
        lines.append(" ".join(fields))
    return "\n".join(lines) + ("\n" if lines else "")


def _link_image(src: Path, dst: Path) -> None:
    """Symlink ``dst`` -> ``src`` (a copy where symlinks are not allowed), replacing an old entry."""
    if dst.is_symlink() and os.path.abspath(os.readlink(dst)) == os.path.abspath(src):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.posetune-tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(os.path.abspath(src), tmp)
    except (OSError, NotImplementedError):
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _yaml_text(ds: KeypointDataset, splits: list[str], names: list[str]) -> str:
    import yaml

    spec = ds.spec
    cfg: dict[str, Any] = {
        "train": "images/train" if "train" in splits else f"images/{splits[0]}",
        "val": "images/val" if "val" in splits else ("images/train" if "train" in splits else f"images/{splits[0]}"),
    }
    if "test" in splits:
        cfg["test"] = "images/test"
    cfg["kpt_shape"] = [spec.num_keypoints, 3]
    cfg["flip_idx"] = [int(i) for i in spec.flip_index]
    cfg["names"] = {i: n for i, n in enumerate(names)}
    if not is_generic(spec.keypoints):
        cfg["kpt_names"] = {i: list(spec.keypoints) for i in range(len(names))}
    if spec.skeleton:
        cfg["skeleton"] = [list(p) for p in spec.skeleton]
    return _HEADER + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, default_flow_style=None, width=4096)


def write(dataset: KeypointDataset, dest: Path) -> list[Path]:
    """Write an ultralytics YOLO-pose dataset into folder ``dest`` (or ``dest`` = the yaml path).

    Writes ``data.yaml`` (``kpt_shape [K, 3]``, ``flip_idx``, ``names``, ``kpt_names``),
    ``labels/<split>/<stem>.txt`` and ``images/<split>/<file>`` as symlinks to the original
    images (copies where symlinks fail). Splits come from ``extra['split']`` / ``group``
    (train/val/test, else train). Colliding stems get ``_1``, ``_2`` ... suffixes. Boxes and
    points are clipped to the image, as ultralytics rejects coordinates outside [0, 1].
    """
    dest = Path(dest)
    yaml_path = dest if dest.suffix.lower() in (".yaml", ".yml") else dest / "data.yaml"
    folder = yaml_path.parent
    names = list(dataset.categories) or ["object"]
    for _, inst in dataset.iter_instances():
        if inst.category is not None and inst.category not in names:
            names.append(inst.category)
    class_index = {n: i for i, n in enumerate(names)}
    used: dict[str, set[str]] = {}
    written: list[Path] = []
    for rec in dataset.images:
        src = dataset.image_path(rec)
        if not (rec.width and rec.height):
            rec.width, rec.height = image_size(src)  # DataError names the image when unreadable
        split = _split_of(rec)
        taken = used.setdefault(split, set())
        stem, suffix = Path(rec.file_name).stem, Path(rec.file_name).suffix
        unique, n = stem, 0
        while unique.casefold() in taken:
            n += 1
            unique = f"{stem}_{n}"
        taken.add(unique.casefold())
        label = folder / "labels" / split / f"{unique}.txt"
        written.append(write_text_atomic(label, _label_lines(dataset, rec, class_index)))
        if src.is_file():
            link = folder / "images" / split / f"{unique}{suffix}"
            _link_image(src, link)
            written.append(link)
    splits = sorted(used, key=lambda s: SPLITS.index(s)) or ["train"]
    for split in splits:
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
    written.insert(0, write_text_atomic(yaml_path, _yaml_text(dataset, splits, names)))
    return written
