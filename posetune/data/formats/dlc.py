"""DeepLabCut projects: ``config.yaml`` + ``labeled-data/<video>/CollectedData_<scorer>.csv|.h5``.

Reading accepts a project folder, its ``labeled-data`` folder, one ``labeled-data/<video>``
folder, or one CollectedData ``.csv`` / ``.h5`` file:

* CSV headers: single-animal 3 rows (``scorer`` / ``bodyparts`` / ``coords``), multi-animal 4
  rows (``scorer`` / ``individuals`` / ``bodyparts`` / ``coords``); the image column is either
  one relative path ``labeled-data/<video>/imgNNN.png`` or (newer DLC) three columns
  ``labeled-data, <video>, imgNNN.png``. ``.h5`` files are read with :func:`pandas.read_hdf`.
  When a folder holds both, the CSV is read and checked against the H5; if they disagree the H5
  (what DeepLabCut trains from) wins and a Problem says so;
* empty / NaN coordinates → unlabelled (v=0, x=y=0); labelled → v=2 (DLC has no occlusion flag);
* multi-animal: one Instance per labelled individual with ``track_id`` = the individual's name.
  Unique bodyparts (DLC's individual ``single``) form their own instance with track_id
  ``'single'``; every instance carries the full keypoint list (multi-animal bodyparts then
  unique bodyparts), the parts an instance cannot have stay v=0;
* ``ImageRecord.group`` = the video folder name; the spec = bodyparts from ``config.yaml`` (else
  from the header) with its ``skeleton`` (pairs of names); flip pairs are inferred from names.

Writing creates a DLC project under ``dest``: ``config.yaml`` (merged into an existing one),
``labeled-data/<group or 'images'>/CollectedData_<scorer>.csv`` and ``.h5`` (key
``df_with_missing``), and the images symlinked (copied where links fail) beside them, with the
image column ``labeled-data/<folder>/<image>`` as DeepLabCut writes it. Unlabelled points are
empty cells / NaN; occluded points become plain labelled points. Boxes are not stored.
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posetune.data.formats._image_refs import checked_image_size, relative_to_root
from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError
from posetune.io_utils import atomic_path, write_text_atomic

NAME = "dlc"
H5_KEY = "df_with_missing"
SINGLE = "single"  # DLC's individual name for unique bodyparts
_COORDS = ("x", "y", "likelihood")
_HEADER_HINT = ("a DeepLabCut CollectedData CSV starts with the header rows scorer / bodyparts / coords "
                "(multi-animal: scorer / individuals / bodyparts / coords)")


# ----------------------------------------------------------------------------- detection
def _is_table_file(path: Path) -> bool:
    if path.suffix.lower() == ".h5":
        return path.name.startswith("CollectedData")
    if path.suffix.lower() != ".csv":
        return False
    if path.name.startswith("CollectedData"):
        return True
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return f.readline().startswith("scorer,")
    except OSError:
        return False


def detect(path: Path) -> bool:
    """True for a DLC project folder, its labeled-data folders, or a CollectedData csv/h5."""
    path = Path(path)
    if path.is_file():
        return _is_table_file(path)
    if not path.is_dir():
        return False
    config = path / "config.yaml"
    if config.is_file():
        try:
            text = config.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return "bodyparts" in text and (path / "labeled-data").is_dir()
    if path.name == "labeled-data":
        return any(p.is_dir() and any(p.glob("CollectedData_*")) for p in path.iterdir())
    return any(path.glob("CollectedData_*.csv")) or any(path.glob("CollectedData_*.h5"))


# ----------------------------------------------------------------------------- tables
@dataclass
class _Table:
    """One CollectedData table: columns (individual | None, bodypart, coord), rows of values."""

    path: Path
    scorer: str
    columns: list[tuple[str | None, str, str]]
    index: list[str]
    values: np.ndarray  # (rows, columns) float, NaN = missing
    lines: list[int] = field(default_factory=list)  # file line (CSV) or row number (H5) per row

    @property
    def multi(self) -> bool:
        return any(ind is not None for ind, _, _ in self.columns)


def _norm_index(parts: Any) -> str:
    if isinstance(parts, (tuple, list)):
        parts = [str(p) for p in parts if p is not None and str(p) not in ("", "nan")]
        return "/".join(p.replace("\\", "/").strip("/") for p in parts)
    return str(parts).replace("\\", "/")


def _read_csv(path: Path, problems: list[Problem]) -> _Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", where=path,
                        hint="save the CSV as UTF-8") from None
    except csv.Error as e:
        raise DataError(f"malformed CSV ({e})", where=path, hint=_HEADER_HINT) from None
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror})", where=path) from None
    if len(rows) < 3 or not rows[0] or rows[0][0].strip() != "scorer":
        found = rows[0][0] if rows and rows[0] else "nothing"
        raise DataError(f"header row 1 should start with 'scorer', found '{found}'", where=f"{path}:1",
                        hint=_HEADER_HINT)
    levels = (["scorer", "individuals", "bodyparts", "coords"] if len(rows) > 1 and rows[1]
              and rows[1][0].strip() == "individuals" else ["scorer", "bodyparts", "coords"])
    if len(rows) < len(levels):
        raise DataError(f"only {len(rows)} rows: the header needs {len(levels)}", where=path, hint=_HEADER_HINT)
    width = len(rows[0])
    for i, level in enumerate(levels):
        row = rows[i]
        if not row or row[0].strip() != level:
            raise DataError(f"header row {i + 1} should start with '{level}', found '{row[0] if row else ''}'",
                            where=f"{path}:{i + 1}", hint=_HEADER_HINT)
        if len(row) != width:
            raise DataError(f"header row {i + 1} has {len(row)} cells, row 1 has {width}", where=f"{path}:{i + 1}",
                            hint=_HEADER_HINT)
    first = next((j for j in range(1, width) if rows[0][j].strip()), None)
    if first is None:
        raise DataError("header row 1 names no scorer", where=f"{path}:1", hint=_HEADER_HINT)
    columns: list[tuple[str | None, str, str]] = []
    for j in range(first, width):
        cells = [rows[i][j].strip() for i in range(len(levels))]
        if not all(cells):
            raise DataError(f"header column {j + 1} has an empty cell", where=f"{path}:{cells.index('') + 1}",
                            hint=_HEADER_HINT)
        if cells[-1] not in _COORDS:
            raise DataError(f"coords row has '{cells[-1]}' in column {j + 1} (expected x, y or likelihood)",
                            where=f"{path}:{len(levels)}", hint=_HEADER_HINT)
        columns.append((cells[1] if len(levels) == 4 else None, cells[-2], cells[-1]))
    index, values, lines = [], [], []
    for n, row in enumerate(rows[len(levels):], start=len(levels) + 1):
        if not any(c.strip() for c in row):
            continue
        if len(row) > width:
            problems.append(Problem("bad_row", f"row has {len(row)} cells, the header {width}; skipped",
                                    where=f"{path}:{n}", hint="fix the row"))
            continue
        row = row + [""] * (width - len(row))
        name = _norm_index([c.strip() for c in row[:first]])
        try:
            vals = [float(c) if c.strip() and c.strip().lower() != "nan" else math.nan for c in row[first:]]
        except ValueError:
            bad = next(c for c in row[first:] if c.strip() and not _is_number(c))
            problems.append(Problem("bad_row", f"'{bad}' is not a number; row skipped", where=f"{path}:{n}",
                                    hint="coordinates must be numbers or empty"))
            continue
        if not name:
            problems.append(Problem("bad_row", "row has no image path; skipped", where=f"{path}:{n}"))
            continue
        index.append(name)
        values.append(vals)
        lines.append(n)
    return _Table(path, rows[0][first].strip(), columns, index,
                  np.array(values, dtype=np.float64).reshape(len(values), len(columns)), lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_h5(path: Path) -> _Table:
    import pandas as pd

    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = [k.lstrip("/") for k in store.keys()]
            key = H5_KEY if H5_KEY in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataError(f"HDF5 file has keys {keys}, none is '{H5_KEY}'", where=path,
                                hint="save the labels from DeepLabCut (key 'df_with_missing')")
            df = store[key]
    except DataError:
        raise
    except ImportError as e:
        raise DataError(f"cannot read .h5 ({e})", where=path, hint="pip install tables, or use the CSV") from None
    except Exception as e:  # pandas/PyTables raise many types for corrupt files
        raise DataError(f"cannot read HDF5 labels ({type(e).__name__}: {e})", where=path,
                        hint="re-save the labels in DeepLabCut or use the CSV") from None
    if not isinstance(df, pd.DataFrame) or df.columns.nlevels not in (3, 4):
        raise DataError("HDF5 table does not have DeepLabCut's column levels (scorer, [individuals,] "
                        "bodyparts, coords)", where=path, hint=_HEADER_HINT)
    multi = df.columns.nlevels == 4
    columns = []
    for col in df.columns:
        col = tuple(str(c) for c in col)
        if col[-1] not in _COORDS:
            raise DataError(f"column {col} has coord '{col[-1]}' (expected x, y or likelihood)", where=path,
                            hint=_HEADER_HINT)
        columns.append((col[1] if multi else None, col[-2], col[-1]))
    index = [_norm_index(i) for i in df.index]
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    scorer = str(df.columns[0][0]) if len(df.columns) else ""
    return _Table(path, scorer, columns, index, values, list(range(1, len(index) + 1)))


def _tables_agree(a: _Table, b: _Table) -> bool:
    if a.index != b.index or a.columns != b.columns or a.values.shape != b.values.shape:
        return False
    return bool(np.allclose(a.values, b.values, rtol=0, atol=1e-6, equal_nan=True))


# ----------------------------------------------------------------------------- locating files
def _read_config(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DataError(f"malformed YAML ({getattr(e, 'problem', None) or e})", where=where,
                        hint="fix the YAML syntax of the DeepLabCut config") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read config ({e})", where=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError("config.yaml is not a mapping of keys", where=path, hint="use a DeepLabCut config.yaml")
    return data


def _pick_tables(folder: Path, scorer: str | None, problems: list[Problem]) -> tuple[Path | None, Path | None]:
    stems = sorted({p.stem for p in folder.glob("CollectedData_*") if p.suffix.lower() in (".csv", ".h5")})
    if not stems:
        return None, None
    stem = f"CollectedData_{scorer}" if scorer and f"CollectedData_{scorer}" in stems else stems[0]
    if len(stems) > 1:
        problems.append(Problem("several_scorers", f"several label files ({', '.join(stems)}); reading {stem}",
                                where=str(folder), severity="warning",
                                hint="keep one CollectedData file per folder or set scorer in config.yaml"))
    csv_path, h5_path = folder / f"{stem}.csv", folder / f"{stem}.h5"
    return (csv_path if csv_path.is_file() else None), (h5_path if h5_path.is_file() else None)


def _locate(path: Path) -> tuple[Path | None, list[Path] | None, Path | None]:
    """(project folder or None, video folders or None, single table file or None)."""
    if path.is_file():
        project = path.parent.parent.parent if path.parent.parent.name == "labeled-data" else None
        return project, None, path
    if (path / "config.yaml").is_file():
        labeled = path / "labeled-data"
        if not labeled.is_dir():
            raise DataError("DeepLabCut project has no labeled-data folder", where=path,
                            hint="label frames in DeepLabCut first (labeled-data/<video>/CollectedData_*.csv)")
        return path, sorted(p for p in labeled.iterdir() if p.is_dir()), None
    if path.name == "labeled-data":
        return path.parent, sorted(p for p in path.iterdir() if p.is_dir()), None
    project = path.parent.parent if path.parent.name == "labeled-data" else None
    return project, [path], None


# ----------------------------------------------------------------------------- reading
def _spec_from(config: dict, tables: list[_Table], config_path: Path | None,
               problems: list[Problem]) -> tuple[KeypointSpec, list[str]]:
    """Spec from config.yaml (else the headers); also returns the unique bodyparts."""
    multi = bool(config.get("multianimalproject"))
    uniques = [str(n) for n in (config.get("uniquebodyparts") or []) if isinstance(n, (str, int))]
    if multi:
        names = [str(n) for n in (config.get("multianimalbodyparts") or [])] + uniques
    else:
        bp = config.get("bodyparts")
        names = [str(n) for n in bp] if isinstance(bp, list) else []
    for table in tables:
        for ind, part, _ in table.columns:
            if part not in names:
                if config_path is not None and names:
                    problems.append(Problem("unknown_bodypart", f"bodypart '{part}' is not in config.yaml; added",
                                            where=str(table.path), severity="warning",
                                            hint="add it to bodyparts in config.yaml"))
                names.append(part)
            if ind == SINGLE and part not in uniques:
                uniques.append(part)
    skeleton = []
    for link in config.get("skeleton") or []:
        if (isinstance(link, (list, tuple)) and len(link) == 2 and all(str(n) in names for n in link)
                and str(link[0]) != str(link[1])):
            skeleton.append((str(link[0]), str(link[1])))
        else:
            problems.append(Problem("bad_skeleton", f"skeleton link {link!r} does not name two bodyparts; ignored",
                                    where=str(config_path), severity="warning", hint="fix skeleton in config.yaml"))
    task = str(config.get("Task") or "dlc")
    return KeypointSpec.from_names(names, name=task, skeleton=skeleton), uniques


def _find_image(index: str, bases: list[Path], table_dir: Path) -> Path | None:
    for base in bases:
        if (base / index).is_file():
            return base / index
    name = Path(index).name
    return table_dir / name if (table_dir / name).is_file() else None


def read(path: Path, *, image_root: Path | None = None, spec: KeypointSpec | None = None) -> KeypointDataset:
    """Read DeepLabCut labels (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError("path not found", where=path, hint="check the path to your DeepLabCut project")
    problems: list[Problem] = []
    project, folders, single = _locate(path)
    config_path = project / "config.yaml" if project is not None and (project / "config.yaml").is_file() else None
    config = _read_config(config_path) if config_path is not None else {}
    scorer = str(config.get("scorer")) if config.get("scorer") else None

    tables: list[tuple[Path, _Table]] = []  # (video folder, table)
    if single is not None:
        table = _read_h5(single) if single.suffix.lower() == ".h5" else _read_csv(single, problems)
        tables.append((single.parent, table))
    else:
        for folder in folders or []:
            csv_path, h5_path = _pick_tables(folder, scorer, problems)
            if csv_path is None and h5_path is None:
                continue
            table = _read_csv(csv_path, problems) if csv_path is not None else _read_h5(h5_path)
            if csv_path is not None and h5_path is not None:
                h5_table = _read_h5(h5_path)
                if not _tables_agree(table, h5_table):
                    problems.append(Problem("csv_h5_differ", "CSV and H5 labels differ; using the H5 (what "
                                            "DeepLabCut trains from)", where=str(csv_path), severity="warning",
                                            hint="re-save the labels in DeepLabCut so both files match"))
                    table = h5_table
            tables.append((folder, table))
    if not tables:
        raise DataError("no CollectedData_*.csv / .h5 label files found", where=path,
                        hint="label frames in DeepLabCut, or point to labeled-data/<video>/CollectedData_<scorer>.csv")

    own_spec, uniques = _spec_from(config, [t for _, t in tables], config_path, problems)
    if spec is None:
        spec = own_spec
    else:
        parts = list(dict.fromkeys(part for _, t in tables for _, part, _ in t.columns))
        if not any(spec.has(p) for p in parts):
            raise DataError(f"no bodypart matches spec '{spec.name}' (bodyparts: {', '.join(parts[:10])})",
                            where=path, hint=f"the spec's keypoints are: {', '.join(spec.keypoints)}")

    root = Path(image_root) if image_root is not None else (project or tables[0][0])
    images: list[ImageRecord] = []
    individuals: list[str] = []
    for folder, table in tables:
        bases = [b for b in (image_root, project, folder) if b is not None]
        slots: dict[str | None, list[tuple[int, int, int]]] = {}  # individual -> [(kp index, x col, y col)]
        reported: set[str] = set()
        for c, (ind, part, coord) in enumerate(table.columns):
            if coord != "x":
                continue
            ycol = next((d for d, col in enumerate(table.columns) if col == (ind, part, "y")), None)
            if ycol is None:
                raise DataError(f"bodypart '{part}' has an x column but no y column", where=table.path,
                                hint=_HEADER_HINT)
            if not spec.has(part):
                if part not in reported:
                    problems.append(Problem("unknown_keypoint", f"bodypart '{part}' is not a keypoint of spec "
                                            f"'{spec.name}'; its column is ignored", where=str(table.path),
                                            hint=f"known keypoints: {', '.join(spec.keypoints)}"))
                    reported.add(part)
                continue
            slots.setdefault(ind, []).append((spec.index(part), c, ycol))
        for ind in slots:
            if ind is not None and ind not in individuals:
                individuals.append(ind)
        for r, index in enumerate(table.index):
            where = f"{table.path}:{table.lines[r]}"
            image = _find_image(index, bases, folder)
            image_path = image if image is not None else bases[0] / index
            width, height = checked_image_size(image_path, None, None, where, problems)
            instances = []
            for ind, cols in slots.items():
                kp = np.zeros((spec.num_keypoints, 3))
                for k, xc, yc in cols:
                    x, y = table.values[r, xc], table.values[r, yc]
                    if math.isfinite(x) and math.isfinite(y):
                        kp[k] = (x, y, 2.0)
                if (kp[:, 2] > 0).any():
                    instances.append(Instance(keypoints=kp, track_id=ind if table.multi else None))
            group = index.split("/")[-2] if index.count("/") >= 1 else folder.name
            images.append(ImageRecord(file_name=relative_to_root(image_path, root), width=width, height=height,
                                      instances=instances, group=group, extra={"dlc_index": index}))
    info = {"dlc_scorer": tables[0][1].scorer or scorer, "dlc_task": config.get("Task"),
            "dlc_multianimal": any(t.multi for _, t in tables), "dlc_individuals": individuals,
            "dlc_uniquebodyparts": [u for u in uniques if spec.has(u)]}
    return KeypointDataset(spec=spec, images=images, root=root, source=path, format=NAME,
                           categories=[str(config.get("Task") or "animal")], problems=problems, info=info)


# ----------------------------------------------------------------------------- writing
def _safe_name(text: str, fallback: str) -> str:
    name = str(text).replace("\\", "/").rstrip("/").split("/")[-1].strip()
    name = "".join("_" if c in '<>:"|?*' or ord(c) < 32 else c for c in name)
    return name if name not in ("", ".", "..") else fallback


def _assign_individuals(dataset: KeypointDataset, uniques: list[str]) -> tuple[list[str], list[list[str]]]:
    """Individual names and, per image, the individual each instance is written as.

    ``'single'`` is DLC's holder of unique bodyparts only when there are unique bodyparts;
    otherwise it is an ordinary individual name.
    """
    special = SINGLE if uniques else None
    known = [str(n) for n in dataset.info.get("dlc_individuals") or [] if str(n) != special]
    individuals = list(known)
    per_image = []
    for record in dataset.images:
        used: set[str] = set()
        names: list[str | None] = []
        for inst in record.instances:
            name = str(inst.track_id) if inst.track_id is not None else None
            if name is not None and name not in used:
                used.add(name)
                if name != special and name not in individuals:
                    individuals.append(name)
                names.append(name)
            else:
                names.append(None)
        for i, name in enumerate(names):
            if name is None:
                free = next((n for n in individuals if n not in used), None)
                if free is None:
                    free = f"animal{len(individuals) + 1}"
                    individuals.append(free)
                used.add(free)
                names[i] = free
        per_image.append(names)
    return individuals, per_image


def _link_image(src: Path, dst: Path) -> None:
    """Symlink ``src`` at ``dst`` (copy when links are not possible); never clobber a real file."""
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        os.symlink(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _image_slot(folder: Path, src: Path, used: set[str]) -> str:
    """A file name in ``folder`` for image ``src``: its own name unless taken by another image."""
    stem, suffix = src.stem, src.suffix
    name, n = src.name, 1
    while True:
        dst = folder / name
        clash = name.lower() in used or (dst.exists() and not dst.is_symlink()
                                         and not (src.exists() and os.path.samefile(src, dst)))
        if not clash:
            used.add(name.lower())
            return name
        name = f"{stem}_{n}{suffix}"
        n += 1


def write(dataset: KeypointDataset, dest: Path) -> list[Path]:
    """Write ``dataset`` as a DeepLabCut project under folder ``dest`` (see the module docstring)."""
    import pandas as pd
    import yaml

    dest = Path(dest)
    if dest.is_file():
        raise DataError("DeepLabCut output must be a folder", where=dest, hint="pass a (new) project folder")
    spec = dataset.spec
    scorer = _safe_name(str(dataset.info.get("dlc_scorer") or "posetune"), "posetune")
    multi = bool(dataset.info.get("dlc_multianimal")) or any(
        inst.track_id is not None for _, inst in dataset.iter_instances()) or any(
        len(r.instances) > 1 for r in dataset.images)
    uniques = [u for u in dataset.info.get("dlc_uniquebodyparts") or [] if spec.has(u)] if multi else []
    bodyparts = [n for n in spec.keypoints if n not in uniques]
    individuals, assignment = _assign_individuals(dataset, uniques) if multi else ([], [[] for _ in dataset.images])

    if multi:
        cols = [(scorer, ind, bp, c) for ind in individuals for bp in bodyparts for c in ("x", "y")]
        cols += [(scorer, SINGLE, bp, c) for bp in uniques for c in ("x", "y")]
        names = ["scorer", "individuals", "bodyparts", "coords"]
    else:
        cols = [(scorer, bp, c) for bp in bodyparts for c in ("x", "y")]
        names = ["scorer", "bodyparts", "coords"]
    col_index = {c[1:]: i for i, c in enumerate(cols)}

    folders: dict[str, dict] = {}
    for record, owners in zip(dataset.images, assignment):
        folder = _safe_name(record.group, "images") if record.group else "images"
        entry = folders.setdefault(folder, {"index": [], "rows": [], "used": set(), "size": None})
        src = Path(os.path.abspath(dataset.image_path(record)))
        name = _image_slot(dest / "labeled-data" / folder, src, entry["used"])
        if src.is_file():
            _link_image(src, dest / "labeled-data" / folder / name)
        row = np.full(len(cols), np.nan)
        for i, inst in enumerate(record.instances):
            if not multi and i > 0:
                break
            owner = owners[i] if multi else None
            for k, bp in enumerate(spec.keypoints):
                x, y, v = inst.keypoints[k]
                if v <= 0:
                    continue
                if multi and (bp in uniques) != (owner == SINGLE):
                    continue  # a unique part on an animal (or an animal part on 'single') has no DLC column
                key = (owner, bp) if multi else (bp,)
                row[col_index[(*key, "x")]], row[col_index[(*key, "y")]] = x, y
        entry["index"].append(f"labeled-data/{folder}/{name}")
        entry["rows"].append(row)
        if entry["size"] is None and record.width and record.height:
            entry["size"] = (int(record.width), int(record.height))

    written: list[Path] = []
    for folder, entry in folders.items():
        df = pd.DataFrame(np.array(entry["rows"]).reshape(len(entry["rows"]), len(cols)), index=entry["index"],
                          columns=pd.MultiIndex.from_tuples(cols, names=names))
        base = dest / "labeled-data" / folder / f"CollectedData_{scorer}"
        with atomic_path(base.with_suffix(".csv")) as tmp:
            df.to_csv(tmp)
        with atomic_path(base.with_suffix(".h5")) as tmp:
            df.to_hdf(tmp, key=H5_KEY, mode="w", format="table")
        written += [base.with_suffix(".csv"), base.with_suffix(".h5")]

    config_path = dest / "config.yaml"
    config: dict[str, Any] = _default_config()
    if config_path.is_file():
        config.update(_read_config(config_path))
    video_sets = dict(config.get("video_sets") or {})
    for folder, entry in folders.items():
        if not any(Path(str(v)).stem == folder for v in video_sets):
            w, h = entry["size"] or (0, 0)
            video_sets[str(Path(os.path.abspath(dest)) / "videos" / f"{folder}.mp4")] = {"crop": f"0, {w}, 0, {h}"}
    config.update({
        "Task": str(dataset.info.get("dlc_task") or spec.name),
        "scorer": scorer,
        "date": config.get("date") or datetime.date.today().strftime("%b%d"),
        "multianimalproject": multi,
        "identity": bool(config.get("identity")) if multi else None,
        "project_path": str(Path(os.path.abspath(dest))),
        "video_sets": video_sets,
        "bodyparts": "MULTI!" if multi else list(bodyparts),
        "skeleton": [[spec.keypoints[a], spec.keypoints[b]] for a, b in spec.skeleton],
    })
    if multi:
        config.update({"individuals": individuals, "uniquebodyparts": uniques, "multianimalbodyparts": bodyparts})
    else:
        for key in ("individuals", "uniquebodyparts", "multianimalbodyparts"):
            config.pop(key, None)
    write_text_atomic(config_path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return [config_path, *written]


def _default_config() -> dict[str, Any]:
    """The DeepLabCut config keys a fresh project needs besides the labels."""
    return {
        "Task": "posetune", "scorer": "posetune", "date": None, "multianimalproject": False, "identity": None,
        "project_path": None, "engine": "pytorch", "video_sets": {}, "bodyparts": [],
        "start": 0, "stop": 1, "numframes2pick": 20,
        "skeleton": [], "skeleton_color": "black", "pcutoff": 0.6, "dotsize": 12, "alphavalue": 0.7,
        "colormap": "rainbow", "TrainingFraction": [0.95], "iteration": 0, "default_net_type": "resnet_50",
        "default_augmenter": "default", "snapshotindex": -1, "detector_snapshotindex": -1, "batch_size": 8,
        "detector_batch_size": 1, "cropping": False, "x1": 0, "x2": 640, "y1": 277, "y2": 624,
        "corner2move2": [50, 50], "move2corner": True,
    }
