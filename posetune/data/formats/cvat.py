"""CVAT for images 1.1 XML: skeletons, points shapes and boxes.

Reading (a task or project export: ``annotations.xml`` or any ``<annotations>`` xml, or a
folder holding them):

* ``<skeleton label="person">`` elements hold one ``<points label="nose" points="x,y"
  occluded outside/>`` per sub-label. The sub-labels are the ``<label>``s in ``<meta>`` whose
  ``<parent>`` is the skeleton label; the edges come from the skeleton label's ``<svg>``
  (``<line data-node-from data-node-to>`` between ``<circle data-node-id data-label-name>``);
* ``<points>`` shapes with one point: the label is the keypoint name; points sharing a
  ``group_id`` (or, without group ids, one instance per image; repeats start a new one, reported
  as ambiguous) form an instance;
* ``<points>`` shapes with several points ``"x1,y1;x2,y2;..."``: the label is the category and
  the points are the keypoints in order, named by the given spec (when the count fits), else by
  a ``keypoints`` / ``keypoint_names`` attribute of that label in ``<meta>`` (its values), else
  ``kp_0 ..``;
* ``outside="1"`` → v=0, ``occluded="1"`` → v=1, else v=2;
* ``<box>`` → bbox of the instance with the same ``group_id``, else of the one instance whose
  points it contains, else a box-only instance. A ``track_id`` attribute becomes
  ``Instance.track_id``;
* ``subset`` (project exports) → ``ImageRecord.group`` and ``extra['subset']``; images are
  looked up at ``name``, ``images/name`` and ``images/<subset>/name`` beside the xml (or under
  ``image_root``). Other shape types are ignored with one warning per type.

XML with DTD / entity declarations is refused (no entity expansion, no external fetches).

Writing: one xml (``dest`` ending in ``.xml``, else ``dest/annotations.xml``) with a skeleton
label per category in ``<meta>`` (sub-labels + svg edges from the spec, plus a ``track_id`` text
attribute when instances have track ids), one ``<skeleton>`` per instance (``outside`` for
unlabelled points) and a ``<box label="<category>_box">`` with the same ``group_id``. Flip
pairs and sigmas are not stored (CVAT has no place for them); they are re-inferred from names.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from posetune.data.formats._image_refs import checked_image_size, relative_to_root, size_for_writing
from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.data.spec import KeypointSpec
from posetune.errors import DataError
from posetune.io_utils import atomic_path

NAME = "cvat"
_NAME_ATTRIBUTES = ("keypoints", "keypoint_names", "names")
_TRACK_ATTRIBUTE = "track_id"
_BOX_SUFFIX = "_box"
_HINT_EXPORT = "export the task or project from CVAT as 'CVAT for images 1.1'"


# ----------------------------------------------------------------------------- detection
def _xml_head_is_cvat(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"<annotations" in head and b"<version>" in head


def _xml_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*.xml")) if _xml_head_is_cvat(p)]


def detect(path: Path) -> bool:
    """True for a CVAT for images xml, or a folder holding one at its top level."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".xml" and _xml_head_is_cvat(path)
    if path.is_dir():
        return bool(_xml_files(path))
    return False


# ----------------------------------------------------------------------------- parsing helpers
def _parse_xml(path: Path) -> ET.Element:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror})", where=path) from None
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise DataError("XML with DTD or entity declarations is refused (unsafe)", where=path,
                        hint="remove the <!DOCTYPE>/<!ENTITY> declarations or re-export from CVAT")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        line, col = getattr(e, "position", (0, 0))
        raise DataError(f"malformed XML ({e})", where=f"{path}:{line}:{col}",
                        hint="fix the XML at that line or re-export from CVAT") from None
    if root.tag != "annotations":
        raise DataError(f"not a CVAT XML file (root element is <{root.tag}>, expected <annotations>)",
                        where=path, hint=_HINT_EXPORT)
    if root.find("image") is None and root.find("track") is not None:
        raise DataError("this is a 'CVAT for video' export (tracks), not 'CVAT for images'", where=path,
                        hint=_HINT_EXPORT)
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _flag(el: ET.Element, name: str) -> bool:
    return (el.get(name) or "0").strip().lower() in ("1", "true", "yes")


def _attributes(el: ET.Element) -> dict[str, str]:
    return {a.get("name", ""): (a.text or "").strip() for a in el.findall("attribute") if a.get("name")}


def _parse_points(text: str | None) -> list[tuple[float, float]] | None:
    """``"x1,y1;x2,y2"`` → [(x1, y1), (x2, y2)]; None when malformed."""
    if not text or not text.strip():
        return None
    out = []
    for pair in text.strip().split(";"):
        parts = pair.split(",")
        if len(parts) != 2:
            return None
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            return None
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        out.append((x, y))
    return out


class _Meta:
    """Labels declared in ``<meta>``: skeletons, their sub-labels and edges, attribute values."""

    def __init__(self, root: ET.Element, where: str, problems: list[Problem]):
        self.skeletons: dict[str, list[str]] = {}  # skeleton label -> sub-label names (meta order)
        self.edges: list[tuple[str, str]] = []
        self.attribute_values: dict[str, dict[str, list[str]]] = {}  # label -> attribute -> values
        svgs: dict[str, ET.Element] = {}
        ids: dict[str, str] = {}
        for lab in root.iterfind("./meta//labels/label"):
            name = (lab.findtext("name") or "").strip()
            if not name:
                continue
            parent = (lab.findtext("parent") or "").strip()
            kind = (lab.findtext("type") or "").strip()
            if lab.findtext("id"):
                ids[lab.findtext("id").strip()] = name
            if parent:
                subs = self.skeletons.setdefault(parent, [])
                if name not in subs:
                    subs.append(name)
                continue
            if kind == "skeleton":
                self.skeletons.setdefault(name, [])
                if lab.find("svg") is not None:
                    svgs[name] = lab.find("svg")
            values = {}
            for att in lab.iterfind("attributes/attribute"):
                att_name = (att.findtext("name") or "").strip()
                text = att.findtext("values") or ""
                values[att_name] = [v for v in (text.splitlines() if "\n" in text.strip() else text.split()) if v]
            self.attribute_values[name] = values
        for skel, svg in svgs.items():
            self.edges += self._svg_edges(svg, self.skeletons.get(skel, []), ids, f"{where}:label '{skel}'", problems)

    @staticmethod
    def _svg_edges(svg: ET.Element, subs: list[str], ids: dict[str, str], where: str,
                   problems: list[Problem]) -> list[tuple[str, str]]:
        text = (svg.text or "") + "".join(ET.tostring(c, encoding="unicode") for c in svg)
        if not text.strip():
            return []
        try:
            frag = ET.fromstring(f"<svg>{text}</svg>")
        except ET.ParseError as e:
            problems.append(Problem("bad_svg", f"skeleton svg cannot be parsed ({e}); no edges read", where=where,
                                    severity="warning", hint="re-save the skeleton in CVAT's label editor"))
            return []
        nodes: dict[str, str] = {}
        for el in frag.iter():
            if _local(el.tag) != "circle" or el.get("data-node-id") is None:
                continue
            nid = el.get("data-node-id")
            name = el.get("data-label-name") or ids.get(el.get("data-label-id") or "")
            if not name and nid.isdigit() and 0 < int(nid) <= len(subs):
                name = subs[int(nid) - 1]  # CVAT numbers nodes 1..K in sub-label order
            if name:
                nodes[nid] = name
        edges = []
        for el in frag.iter():
            if _local(el.tag) == "line" and el.get("data-node-from") is not None:
                a, b = nodes.get(el.get("data-node-from")), nodes.get(el.get("data-node-to"))
                if a and b and a != b:
                    edges.append((a, b))
        return edges

    def keypoint_names_for(self, label: str, count: int) -> list[str] | None:
        for att in _NAME_ATTRIBUTES:
            values = self.attribute_values.get(label, {}).get(att)
            if values and len(values) == count:
                return values
        return None


# ----------------------------------------------------------------------------- reading
def _raw_instance(category: str | None, group: str | None, order: int, where: str,
                  attributes: dict[str, str] | None = None) -> dict:
    return {"points": {}, "category": category, "group": group, "box": None, "order": order, "where": where,
            "track_id": (attributes or {}).get(_TRACK_ATTRIBUTE) or None, "attributes": attributes or {}}


def _visibility(el: ET.Element) -> float:
    if _flag(el, "outside"):
        return 0.0
    return 1.0 if _flag(el, "occluded") else 2.0


def _read_image(img: ET.Element, meta: _Meta, spec: KeypointSpec | None, where: str,
                problems: list[Problem], ignored: dict[str, list]) -> list[dict]:
    """Raw instances (keypoints by name) of one ``<image>``."""
    instances: list[dict] = []
    groups: dict[str, dict] = {}
    loose: list[dict] = []  # single points without group_id
    boxes: list[dict] = []
    ambiguous = False
    for order, el in enumerate(img):
        tag = el.tag
        here = f"{where}:{tag} {order}"
        label = (el.get("label") or "").strip()
        group = el.get("group_id")
        if tag == "skeleton":
            inst = _raw_instance(label or None, group, order, here, _attributes(el))
            for pt in el.findall("points"):
                name = (pt.get("label") or "").strip()
                xy = _parse_points(pt.get("points"))
                if not name or not xy:
                    problems.append(Problem("bad_shape", f"skeleton point '{name}' has no label or bad points "
                                            f"{pt.get('points')!r}", where=here, hint="fix or delete the point"))
                    continue
                v = 0.0 if _flag(el, "outside") else _visibility(pt)
                inst["points"].setdefault(name, (*xy[0], v))
            instances.append(inst)
            if group:
                groups.setdefault(group, inst)
        elif tag == "points":
            xy = _parse_points(el.get("points"))
            if not label or not xy:
                problems.append(Problem("bad_shape", f"points shape '{label}' has no label or bad points "
                                        f"{el.get('points')!r}", where=here, hint="fix or delete the shape"))
                continue
            v = _visibility(el)
            named = meta.keypoint_names_for(label, len(xy))
            if len(xy) > 1 or named is not None:
                if named is None:
                    named = (list(spec.keypoints) if spec is not None and spec.num_keypoints == len(xy)
                             else [f"kp_{i}" for i in range(len(xy))])
                inst = _raw_instance(label, group, order, here, _attributes(el))
                inst["points"] = {n: (x, y, v) for n, (x, y) in zip(named, xy)}
                instances.append(inst)
                if group:
                    groups.setdefault(group, inst)
                continue
            (x, y), = xy
            if group:
                inst = groups.get(group)
                if inst is None:
                    inst = groups[group] = _raw_instance(None, group, order, here)
                    instances.append(inst)
                if label in inst["points"]:
                    problems.append(Problem("duplicate_keypoint", f"point '{label}' appears twice in group {group}; "
                                            "keeping the first", where=here, severity="warning"))
                    continue
            else:
                inst = next((i for i in loose if label not in i["points"]), None)
                if inst is None:
                    ambiguous = ambiguous or bool(loose)
                    inst = _raw_instance(None, None, order, here)
                    loose.append(inst)
                    instances.append(inst)
            if _TRACK_ATTRIBUTE in _attributes(el) and inst["track_id"] is None:
                inst["track_id"] = _attributes(el)[_TRACK_ATTRIBUTE] or None
            inst["points"][label] = (x, y, v)
        elif tag == "box":
            try:
                x0, y0, x1, y1 = (float(el.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
            except (TypeError, ValueError):
                problems.append(Problem("bad_shape", "box needs numeric xtl, ytl, xbr, ybr", where=here,
                                        hint="fix or delete the box"))
                continue
            boxes.append({"bbox": np.array([min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)]), "label": label,
                          "group": group, "order": order, "where": here, "attributes": _attributes(el)})
        elif tag != "tag":
            ignored.setdefault(tag, [here, 0])[1] += 1
    if ambiguous:
        problems.append(Problem("ambiguous_instances", f"point labels repeat without group_id: split into "
                                f"{len(loose)} instances by order of appearance", where=where, severity="warning",
                                hint="group the points of each person/animal (or use a skeleton label) in CVAT"))
    for box in boxes:
        target = groups.get(box["group"]) if box["group"] else None
        if target is not None and target["box"] is not None:
            target = None
        if target is None and not box["group"]:
            free = [i for i in instances if i["box"] is None and i["group"] is None]
            inside = [i for i in free if _contains(box["bbox"], i["points"])]
            target = inside[0] if len(inside) == 1 else None
        if target is None:
            category = box["label"][:-len(_BOX_SUFFIX)] if box["label"].endswith(_BOX_SUFFIX) else box["label"]
            target = _raw_instance(category or None, box["group"], box["order"], box["where"], box["attributes"])
            instances.append(target)
        target["box"] = box["bbox"]
        if target["category"] is None:
            target["category"] = box["label"] or None
        if target["track_id"] is None:
            target["track_id"] = box["attributes"].get(_TRACK_ATTRIBUTE) or None
    return sorted(instances, key=lambda i: i["order"])


def _contains(bbox: np.ndarray, points: dict[str, tuple[float, float, float]]) -> bool:
    x, y, w, h = bbox
    pts = [(px, py) for px, py, v in points.values() if v > 0]
    return bool(pts) and all(x <= px <= x + w and y <= py <= y + h for px, py in pts)


def _find_image(name: str, subset: str | None, bases: list[Path]) -> Path | None:
    for base in bases:
        candidates = [base / name, base / "images" / name]
        if subset:
            candidates += [base / "images" / subset / name, base / subset / name]
        for c in candidates:
            if c.is_file():
                return c
    return None


def _display_name(img: ET.Element) -> str:
    name = img.get("name") or f"id {img.get('id')}"
    return f"{img.get('subset')}/{name}" if img.get("subset") else name


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def read(path: Path, *, image_root: Path | None = None, spec: KeypointSpec | None = None) -> KeypointDataset:
    """Read a CVAT for images 1.1 xml (or the CVAT xml files at the top of a folder)."""
    path = Path(path)
    if path.is_dir():
        files = _xml_files(path)
        if not files:
            raise DataError("no CVAT xml (<annotations> with <version>) in this folder", where=path,
                            hint=_HINT_EXPORT)
        xml_dir = path
    elif path.is_file():
        files, xml_dir = [path], path.parent
    else:
        raise DataError("path not found", where=path, hint="check the path to your CVAT xml")
    problems: list[Problem] = []
    ignored: dict[str, list] = {}
    names: list[str] = []
    edges: list[tuple[str, str]] = []
    raw_images: list[tuple[Path, ET.Element, list[dict]]] = []
    for f in files:
        root = _parse_xml(f)
        meta = _Meta(root, str(f), problems)
        for subs in meta.skeletons.values():
            names += [n for n in subs if n not in names]
        edges += [e for e in meta.edges if e not in edges]
        for img in root.findall("image"):
            where = f"{f}:image '{_display_name(img)}'"
            raw_images.append((f, img, _read_image(img, meta, spec, where, problems, ignored)))
    for tag, (first, count) in ignored.items():
        problems.append(Problem("ignored_shape", f"{count} <{tag}> shape(s) ignored (posetune reads skeleton, "
                                "points and box)", where=first, severity="warning"))
    for _, _, insts in raw_images:
        for inst in insts:
            names += [n for n in inst["points"] if n not in names]

    if spec is None:
        if not names:
            raise DataError("no keypoints: the xml holds no <skeleton> labels or <points> shapes", where=path,
                            hint="label keypoints with a skeleton or points in CVAT, then " + _HINT_EXPORT)
        spec = KeypointSpec.from_names(names, name="cvat", skeleton=edges)
    elif names and not any(spec.has(n) for n in names):
        raise DataError(f"no keypoint label matches spec '{spec.name}' (labels: {', '.join(names[:10])})",
                        where=path, hint=f"the spec's keypoints are: {', '.join(spec.keypoints)}")

    root_dir = Path(image_root) if image_root is not None else xml_dir
    bases = [root_dir] + ([xml_dir] if image_root is not None else [])
    images: list[ImageRecord] = []
    categories: list[str] = []
    for f, img, insts in raw_images:
        name = (img.get("name") or "").replace("\\", "/")
        where = f"{f}:image '{_display_name(img)}'"
        if not name:
            problems.append(Problem("bad_image", "image without a name; skipped", where=f"{f}:image id "
                                    f"{img.get('id')}", hint="re-export from CVAT"))
            continue
        subset = img.get("subset") or None
        found = _find_image(name, subset, bases)
        image_path = found if found is not None else root_dir / name
        width, height = checked_image_size(image_path, _int_or_none(img.get("width")),
                                           _int_or_none(img.get("height")), where, problems)
        instances = []
        for raw in insts:
            kp = np.zeros((spec.num_keypoints, 3))
            for kname, xyv in raw["points"].items():
                if not spec.has(kname):
                    problems.append(Problem("unknown_keypoint", f"point '{kname}' is not a keypoint of spec "
                                            f"'{spec.name}'", where=raw["where"],
                                            hint=f"known keypoints: {', '.join(spec.keypoints)}"))
                    continue
                kp[spec.index(kname)] = xyv
            extra: dict[str, Any] = {}
            if raw["group"] is not None:
                extra["group_id"] = raw["group"]
            attrs = {k: v for k, v in raw["attributes"].items() if k != _TRACK_ATTRIBUTE}
            if attrs:
                extra["attributes"] = attrs
            instances.append(Instance(keypoints=kp, bbox=raw["box"], category=raw["category"],
                                      track_id=raw["track_id"], extra=extra))
            if raw["category"] and raw["category"] not in categories:
                categories.append(raw["category"])
        extra = {k: img.get(k) for k in ("id", "task_id") if img.get(k) is not None}
        if subset:
            extra["subset"] = subset
        images.append(ImageRecord(file_name=relative_to_root(image_path, root_dir), width=width, height=height,
                                  instances=instances,
                                  group=subset, extra=extra))
    return KeypointDataset(spec=spec, images=images, root=root_dir, source=path, format=NAME,
                           categories=categories or ["object"], problems=problems)


# ----------------------------------------------------------------------------- writing
def _node_positions(dataset: KeypointDataset) -> list[tuple[float, float]]:
    """Where to draw each keypoint in CVAT's skeleton editor (0..100 box): the mean position
    relative to the instance boxes, or a circle when the data cannot tell."""
    k = dataset.spec.num_keypoints
    sums, counts = np.zeros((k, 2)), np.zeros(k)
    for _, inst in dataset.iter_instances():
        box = inst.box(0.0)
        if box is None or box[2] <= 0 or box[3] <= 0:
            continue
        m = inst.labelled
        sums[m] += (inst.keypoints[m, :2] - box[:2]) / box[2:]
        counts[m] += 1
    out = []
    for i in range(k):
        if counts[i]:
            x, y = sums[i] / counts[i]
            out.append((float(10 + 80 * np.clip(x, 0, 1)), float(10 + 80 * np.clip(y, 0, 1))))
        else:
            angle = 2 * math.pi * i / max(k, 1)
            out.append((50 + 40 * math.cos(angle), 50 + 40 * math.sin(angle)))
    return out


def _skeleton_svg(spec: KeypointSpec, positions: list[tuple[float, float]]) -> str:
    parts = []
    for a, b in spec.skeleton:
        (x1, y1), (x2, y2) = positions[a], positions[b]
        parts.append(f'<line x1="{x1:.3f}" y1="{y1:.3f}" x2="{x2:.3f}" y2="{y2:.3f}" stroke="black" '
                     f'data-type="edge" data-node-from="{a + 1}" stroke-width="0.5" data-node-to="{b + 1}"></line>')
    for i, name in enumerate(spec.keypoints):
        x, y = positions[i]
        label = name.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        parts.append(f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x:.3f}" cy="{y:.3f}" stroke-width="0.1" '
                     f'data-type="element node" data-element-id="{i + 1}" data-node-id="{i + 1}" '
                     f'data-label-name="{label}"></circle>')
    return "".join(parts)


def _text_attribute(parent: ET.Element, name: str) -> None:
    att = ET.SubElement(parent, "attribute")
    for key, value in (("name", name), ("mutable", "False"), ("input_type", "text"),
                       ("default_value", ""), ("values", "")):
        ET.SubElement(att, key).text = value


def _fmt(x: float) -> str:
    return repr(float(x))


def write(dataset: KeypointDataset, dest: Path) -> list[Path]:
    """Write ``dataset`` as one CVAT for images 1.1 xml (see the module docstring)."""
    dest = Path(dest)
    xml_path = dest if dest.suffix.lower() == ".xml" else dest / "annotations.xml"
    spec = dataset.spec
    default_category = dataset.categories[0] if dataset.categories else "object"
    categories: list[str] = []
    for _, inst in dataset.iter_instances():
        cat = inst.category or default_category
        if cat not in categories:
            categories.append(cat)
    categories = categories or [default_category]
    has_tracks = any(inst.track_id is not None for _, inst in dataset.iter_instances())

    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "name").text = str(dataset.info.get("name") or spec.name)
    ET.SubElement(task, "size").text = str(len(dataset.images))
    ET.SubElement(task, "mode").text = "annotation"
    labels = ET.SubElement(task, "labels")
    svg = _skeleton_svg(spec, _node_positions(dataset))
    for cat in categories:
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = cat
        ET.SubElement(lab, "type").text = "skeleton"
        atts = ET.SubElement(lab, "attributes")
        if has_tracks:
            _text_attribute(atts, _TRACK_ATTRIBUTE)
        ET.SubElement(lab, "svg").text = svg
        for name in spec.keypoints:
            sub = ET.SubElement(labels, "label")
            ET.SubElement(sub, "name").text = name
            ET.SubElement(sub, "type").text = "points"
            ET.SubElement(sub, "attributes")
            ET.SubElement(sub, "parent").text = cat
        box_lab = ET.SubElement(labels, "label")
        ET.SubElement(box_lab, "name").text = cat + _BOX_SUFFIX
        ET.SubElement(box_lab, "type").text = "rectangle"
        atts = ET.SubElement(box_lab, "attributes")
        if has_tracks:
            _text_attribute(atts, _TRACK_ATTRIBUTE)

    xml_dir = Path(os.path.abspath(xml_path.parent))
    for idx, record in enumerate(dataset.images):
        image = Path(os.path.abspath(dataset.image_path(record)))
        width, height = size_for_writing(image, record.width, record.height)
        attrib = {"id": str(idx), "name": Path(os.path.relpath(image, xml_dir)).as_posix()}
        if width and height:
            attrib.update(width=str(int(width)), height=str(int(height)))
        subset = record.extra.get("subset") or record.group
        if subset:
            attrib["subset"] = str(subset)
        img = ET.SubElement(root, "image", attrib)
        for i, inst in enumerate(record.instances):
            cat = inst.category or default_category
            group = str(i + 1)
            if inst.bbox is not None:
                x, y, w, h = (float(c) for c in inst.bbox)
                box = ET.SubElement(img, "box", {"label": cat + _BOX_SUFFIX, "source": "manual", "occluded": "0",
                                                 "xtl": _fmt(x), "ytl": _fmt(y), "xbr": _fmt(x + w),
                                                 "ybr": _fmt(y + h), "z_order": "0", "group_id": group})
                if has_tracks and inst.track_id is not None:
                    ET.SubElement(box, "attribute", {"name": _TRACK_ATTRIBUTE}).text = str(inst.track_id)
            skel = ET.SubElement(img, "skeleton", {"label": cat, "source": "manual", "z_order": "0",
                                                   "group_id": group})
            for j, name in enumerate(spec.keypoints):
                x, y, v = inst.keypoints[j]
                ET.SubElement(skel, "points", {"label": name, "source": "manual",
                                               "outside": "1" if v <= 0 else "0",
                                               "occluded": "1" if 0 < v < 2 else "0",
                                               "points": f"{_fmt(x)},{_fmt(y)}"})
            if has_tracks and inst.track_id is not None:
                ET.SubElement(skel, "attribute", {"name": _TRACK_ATTRIBUTE}).text = str(inst.track_id)
    ET.indent(root, space="  ")
    with atomic_path(xml_path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    return [xml_path]
