"""``posetune data check``: find what is wrong in a keypoint dataset before training on it.

:func:`check_dataset` returns a :class:`CheckReport`: the summary (images, instances,
labelled / visible counts per keypoint) and a list of :class:`~posetune.data.records.Problem`
each naming its place (file name, image id, instance id, keypoint name). Problem codes:

======================  ========  ==========================================================
code                    severity  meaning
======================  ========  ==========================================================
missing_image           error     the image file does not exist
empty_image             error     the image file is 0 bytes
unreadable_image        error     the image file cannot be decoded
size_mismatch           error     width/height in the labels differ from the image file
duplicate_image_id      error     two images share an id
duplicate_file_name     error     the same image file is listed twice
duplicate_instance_id   error     two instances share an id
keypoint_count          error     an instance has more/fewer keypoints than the spec
keypoint_not_finite     error     a labelled keypoint has a NaN/inf coordinate
keypoint_outside_image  error     a labelled keypoint lies outside the image
invalid_box             warning   a box with non-positive or non-finite size
box_outside_image       warning   a box reaching well beyond the image
keypoint_outside_box    warning   a labelled keypoint lies outside its instance's box
empty_instance          warning   no labelled keypoint and no box (and not a crowd region)
swapped_left_right      warning   most left/right pairs are mirrored relative to the dataset
outlier_keypoint        warning   a keypoint far from where it usually is relative to the rest
======================  ========  ==========================================================

Problems found while reading (``dataset.problems``) are included as they are, except the
readers' notes about image files (``image_missing``, ``image_unreadable``) when the images
are checked here anyway.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
from posetune.errors import DataError

#: A 2-D Gaussian's median distance to its centre is sqrt(2 ln 2) sigma = 1.1774 sigma.
_MEDIAN_TO_SIGMA = 1.0 / np.sqrt(2.0 * np.log(2.0))
_PIXEL_TOLERANCE = 1.0
#: codes readers use for image files; check_dataset reports those itself when it opens the images
_READER_IMAGE_CODES = {"image_missing", "image_unreadable"}


@dataclass
class CheckReport:
    """What :func:`check_dataset` found: summary numbers and the problems with their places."""

    source: str | None
    format: str | None
    spec_name: str
    keypoint_names: list[str]
    num_images: int
    num_instances: int
    labelled_per_keypoint: list[int]
    visible_per_keypoint: list[int]
    images_without_instances: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        """True when no error-level problem was found (warnings allowed)."""
        return not self.errors

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def by_code(self) -> dict[str, list[Problem]]:
        """Problems grouped by code, errors first, then by decreasing count."""
        groups: dict[str, list[Problem]] = defaultdict(list)
        for p in self.problems:
            groups[p.code].append(p)
        order = sorted(groups, key=lambda c: (groups[c][0].severity != "error", -len(groups[c]), c))
        return {c: groups[c] for c in order}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (used by ``posetune data check --json``)."""
        return {
            "source": self.source,
            "format": self.format,
            "spec": self.spec_name,
            "summary": {
                "images": self.num_images,
                "instances": self.num_instances,
                "images_without_instances": self.images_without_instances,
                "keypoints": {
                    name: {"labelled": lab, "visible": vis}
                    for name, lab, vis in zip(self.keypoint_names, self.labelled_per_keypoint,
                                              self.visible_per_keypoint)
                },
            },
            "counts": {"error": len(self.errors), "warning": len(self.warnings),
                       "by_code": {c: len(ps) for c, ps in self.by_code().items()}},
            "problems": [
                {"code": p.code, "severity": p.severity, "where": p.where, "message": p.message, "hint": p.hint}
                for p in self.problems
            ],
        }


# ----------------------------------------------------------------------------- places
def _image_where(rec: ImageRecord, index: int) -> str:
    ident = f"image id {rec.id}" if rec.id is not None else f"image #{index}"
    return f"{rec.file_name} ({ident})"


def _instance_where(rec: ImageRecord, index: int, inst: Instance, j: int) -> str:
    ident = f"instance id {inst.id}" if inst.id is not None else f"instance #{j}"
    return f"{_image_where(rec, index)}, {ident}"


def _kp_where(rec: ImageRecord, index: int, inst: Instance, j: int, name: str) -> str:
    return f"{_instance_where(rec, index, inst, j)}, keypoint '{name}'"


def _list(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# ----------------------------------------------------------------------------- per-record checks
def _check_image_file(ds: KeypointDataset, rec: ImageRecord, i: int, problems: list[Problem]
                      ) -> tuple[int, int] | None:
    """Actual (w, h) of the image file, or None with a problem recorded."""
    from posetune.data.images import image_size

    path = ds.image_path(rec)
    where = _image_where(rec, i)
    if not path.exists():
        problems.append(Problem("missing_image", f"image file not found at {path}", where, "error",
                                "fix the file name or pass --image-root with the folder that holds the images"))
        return None
    try:
        if path.stat().st_size == 0:
            problems.append(Problem("empty_image", f"image file is empty (0 bytes): {path}", where, "error",
                                    "replace or remove this image"))
            return None
        size = image_size(path)
    except DataError as e:
        problems.append(Problem("unreadable_image", f"cannot read image: {e.what}", where, "error",
                                "replace or remove this image"))
        return None
    except OSError as e:
        problems.append(Problem("unreadable_image", f"cannot read image ({e.strerror})", where, "error",
                                "check the file's permissions"))
        return None
    if rec.width is not None and rec.height is not None and (int(rec.width), int(rec.height)) != size:
        problems.append(Problem(
            "size_mismatch", f"labels say {rec.width}x{rec.height} but the image is {size[0]}x{size[1]}",
            where, "error", "fix width/height in the labels (or the labels were made for a resized image)"))
    return size


def _check_duplicates(ds: KeypointDataset, problems: list[Problem]) -> None:
    ids: dict[Any, list[int]] = defaultdict(list)
    names: dict[str, list[int]] = defaultdict(list)
    inst_ids: dict[Any, list[str]] = defaultdict(list)
    for i, rec in enumerate(ds.images):
        if rec.id is not None:
            ids[rec.id].append(i)
        names[str(PurePosixPath(str(rec.file_name).replace("\\", "/")))].append(i)
        for j, inst in enumerate(rec.instances):
            if inst.id is not None:
                inst_ids[inst.id].append(_instance_where(rec, i, inst, j))
    for image_id, idx in ids.items():
        if len(idx) > 1:
            files = [ds.images[k].file_name for k in idx]
            problems.append(Problem("duplicate_image_id", f"image id {image_id} is used by {len(idx)} images: "
                                    f"{_list(files)}", f"image id {image_id}", "error",
                                    "give every image a unique id"))
    for name, idx in names.items():
        if len(idx) > 1:
            which = [str(ds.images[k].id) if ds.images[k].id is not None else f"#{k}" for k in idx]
            problems.append(Problem("duplicate_file_name", f"the image is listed {len(idx)} times "
                                    f"(image ids {_list(which)})", name, "error",
                                    "merge its instances into one image record"))
    for inst_id, places in inst_ids.items():
        if len(places) > 1:
            problems.append(Problem("duplicate_instance_id", f"instance id {inst_id} is used {len(places)} times: "
                                    f"{_list(places, 3)}", f"instance id {inst_id}", "error",
                                    "give every instance (annotation) a unique id"))


def _check_instance(ds: KeypointDataset, rec: ImageRecord, i: int, inst: Instance, j: int,
                    size: tuple[int, int] | None, problems: list[Problem]) -> bool:
    """Per-instance checks; True when the instance can enter the dataset statistics."""
    spec = ds.spec
    where = _instance_where(rec, i, inst, j)
    if inst.num_keypoints != spec.num_keypoints:
        problems.append(Problem("keypoint_count", f"{inst.num_keypoints} keypoints, the spec "
                                f"'{spec.name}' has {spec.num_keypoints}", where, "error",
                                "relabel the instance or pick the right keypoint spec (--spec)"))
        return False
    kp = inst.keypoints
    labelled = kp[:, 2] > 0
    finite = np.isfinite(kp[:, :2]).all(axis=1)
    for k in np.flatnonzero(labelled & ~finite):
        problems.append(Problem("keypoint_not_finite", "labelled keypoint has a NaN/inf coordinate",
                                _kp_where(rec, i, inst, j, spec.keypoints[k]), "error",
                                "set its visibility to 0 or fix the coordinate"))
    good = labelled & finite
    box = inst.bbox
    has_box = box is not None and bool(np.isfinite(box).all()) and box[2] > 0 and box[3] > 0
    if box is not None and not has_box:
        problems.append(Problem("invalid_box", f"box {np.round(box, 2).tolist()} has a non-positive or "
                                "non-finite size", where, "warning",
                                "fix the box; posetune will use the keypoints' extent instead"))
    if not good.any() and not has_box and not inst.iscrowd:
        problems.append(Problem("empty_instance", "no labelled keypoint and no box", where, "warning",
                                "label it or delete it"))
    if size is None and rec.width is not None and rec.height is not None:
        size = (int(rec.width), int(rec.height))
    if size is not None:
        w, h = size
        tol = _PIXEL_TOLERANCE + 0.5
        x, y = kp[:, 0], kp[:, 1]
        with np.errstate(invalid="ignore"):
            outside = good & ((x < -tol) | (y < -tol) | (x > w - 1 + tol) | (y > h - 1 + tol))
        for k in np.flatnonzero(outside):
            problems.append(Problem("keypoint_outside_image",
                                    f"at ({x[k]:.1f}, {y[k]:.1f}), outside the {w}x{h} image",
                                    _kp_where(rec, i, inst, j, spec.keypoints[k]), "error",
                                    "move it inside the image or mark it unlabelled (v=0)"))
        if has_box:
            bx, by, bw, bh = box
            slack = max(2.0, 0.05 * max(bw, bh))
            if bx < -slack or by < -slack or bx + bw > w + slack or by + bh > h + slack:
                problems.append(Problem("box_outside_image", f"box {np.round(box, 1).tolist()} reaches beyond "
                                        f"the {w}x{h} image", where, "warning", "clip the box to the image"))
    if has_box:
        bx, by, bw, bh = box
        slack = max(2.0, 0.05 * max(bw, bh))
        x, y = kp[:, 0], kp[:, 1]
        with np.errstate(invalid="ignore"):
            out_box = good & ((x < bx - slack) | (y < by - slack) | (x > bx + bw + slack) | (y > by + bh + slack))
        if out_box.any():
            names = [spec.keypoints[k] for k in np.flatnonzero(out_box)]
            problems.append(Problem("keypoint_outside_box",
                                    f"{len(names)} labelled keypoint(s) outside the box "
                                    f"{np.round(box, 1).tolist()}: {_list(names)}", where, "warning",
                                    "grow the box to cover the keypoints, or fix the keypoints"))
    return not inst.iscrowd and int(good.sum()) >= 3


# ----------------------------------------------------------------------------- shape statistics
def _similarity_fit(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Batched weighted similarity (rotation, scale, translation; no reflection) src -> dst.

    ``src`` (N, K, 2), ``dst`` (K, 2), ``w`` (N, K). Returns ``src`` transformed, (N, K, 2).
    """
    wsum = w.sum(axis=1, keepdims=True)[..., None] + 1e-12  # (N,1,1)
    ww = w[..., None]
    mu_s = (ww * src).sum(axis=1, keepdims=True) / wsum
    mu_d = (ww * dst[None]).sum(axis=1, keepdims=True) / wsum
    sc = src - mu_s
    dc = dst[None] - mu_d
    cov = np.einsum("nk,nki,nkj->nij", w, dc, sc)  # (N,2,2) = sum w * d s^T
    u, s, vt = np.linalg.svd(cov)
    det = np.sign(np.linalg.det(u @ vt))
    dmat = np.zeros_like(cov)
    dmat[:, 0, 0] = 1.0
    dmat[:, 1, 1] = det
    rot = u @ dmat @ vt
    var = (w * (sc ** 2).sum(axis=2)).sum(axis=1) + 1e-12
    scale = (s[:, 0] + det * s[:, 1]) / var
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rot, sc) + mu_d


def _normalise(shape: np.ndarray) -> np.ndarray:
    centred = shape - np.nanmean(shape, axis=0)
    rms = np.sqrt(np.nanmean((centred ** 2).sum(axis=1)))
    return centred / (rms + 1e-12)


def procrustes_align(points: np.ndarray, mask: np.ndarray, iterations: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Procrustes analysis with missing points, robust to a few wrong points.

    ``points`` (N, K, 2), ``mask`` (N, K) labelled. Returns (aligned (N, K, 2), mean shape (K, 2))
    in the mean shape's frame (centred, unit RMS size). Unlabelled points are carried through
    the same transform (meaningless, mask them). After the plain fit, points further than 2.5x
    the instance's median residual are down-weighted and the fit repeated, so a single wrong
    keypoint does not drag the whole instance.
    """
    pts = np.where(mask[..., None], points, 0.0)
    w = mask.astype(np.float64)
    # start from each instance centred and scaled, mean of those
    counts = w.sum(axis=1, keepdims=True)[..., None] + 1e-12
    centred = pts - (w[..., None] * pts).sum(axis=1, keepdims=True) / counts
    rms = np.sqrt((w * (centred ** 2).sum(axis=2)).sum(axis=1) / counts[:, 0, 0])[:, None, None] + 1e-12
    aligned = centred / rms
    ref = int(np.argmax(w.sum(axis=1)))
    mean = np.where(mask[ref][:, None], aligned[ref], np.nan)
    weights = w
    for it in range(iterations):
        target = np.where(np.isnan(mean), 0.0, mean)
        fit_w = weights * (~np.isnan(mean).any(axis=1))[None, :]
        aligned = _similarity_fit(pts, target, fit_w)
        num = (w[..., None] * aligned).sum(axis=0)
        den = w.sum(axis=0)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = _normalise(np.where(den > 0, num / den, np.nan))
        if it == iterations // 2:  # robust re-weighting once the mean has settled
            res = np.linalg.norm(aligned - np.nan_to_num(mean)[None], axis=2)
            res_m = np.where(mask, res, np.nan)
            with warnings.catch_warnings():  # instances with no labelled point left: all-NaN rows
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(res_m, axis=1, keepdims=True)
            keep = mask & (res <= np.maximum(2.5 * med, 0.05))
            enough = keep.sum(axis=1) >= 3
            weights = np.where(enough[:, None], keep, mask).astype(np.float64)
    return aligned, mean


def keypoint_outlier_scores(aligned: np.ndarray, mean: np.ndarray, mask: np.ndarray, min_instances: int = 8,
                            neighbours: int = 4) -> np.ndarray:
    """Robust z-score of every keypoint relative to its neighbours, shape (N, K) (NaN = not scored).

    For keypoint k, its ``neighbours`` nearest keypoints in the mean shape define a local
    frame: each instance's neighbours are aligned (similarity) to the mean shape's, and k's
    position in that frame is compared with its median position over the dataset. The
    distance is divided by a robust standard deviation: the largest of the estimates from the
    median (``/1.1774``, the 2-D Gaussian's median radius), the 75th (``/1.665``) and, with
    30+ instances, the 90th percentile (``/2.146``) of the distances — so articulated joints
    with heavy-tailed spread are not flagged for ordinary poses — inflated by
    ``1 + 1.5 / sqrt(n)`` for small samples.
    """
    n_inst, k_num = mask.shape
    scores = np.full((n_inst, k_num), np.nan)
    dist_mean = np.linalg.norm(mean[:, None] - mean[None], axis=2)
    np.fill_diagonal(dist_mean, np.inf)
    dist_mean[np.isnan(dist_mean)] = np.inf
    for k in range(k_num):
        if np.isnan(mean[k]).any():
            continue
        nb = np.argsort(dist_mean[k])[:min(neighbours, k_num - 1)]
        nb = nb[np.isfinite(dist_mean[k, nb])]
        if len(nb) < 2:
            continue
        w = mask[:, nb].astype(np.float64)
        sel = (w.sum(axis=1) >= 2) & mask[:, k]
        count = int(sel.sum())
        if count < min_instances:
            continue
        pts = np.concatenate([aligned[:, nb], aligned[:, k:k + 1]], axis=1)
        weights = np.concatenate([w, np.zeros((n_inst, 1))], axis=1)
        local = _similarity_fit(pts, np.concatenate([mean[nb], mean[k:k + 1]]), weights)[:, -1]
        centre = np.median(local[sel], axis=0)
        dist = np.linalg.norm(local - centre, axis=1)
        d = dist[sel]
        estimates = [np.median(d) * _MEDIAN_TO_SIGMA, np.quantile(d, 0.75) / 1.665]
        if count >= 30:
            estimates.append(np.quantile(d, 0.9) / 2.146)
        sigma = max(max(estimates), 0.01) * (1.0 + 1.5 / np.sqrt(count))
        scores[sel, k] = d / sigma
    return scores


def find_outliers(points: np.ndarray, mask: np.ndarray, sigma: float = 4.0, min_instances: int = 8,
                  rounds: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Flag keypoints whose robust z-score (:func:`keypoint_outlier_scores`) exceeds ``sigma``.

    ``points`` (N, K, 2), ``mask`` (N, K). Works in rounds: the worst point of each instance
    above the limit is flagged and left out, and the scores are recomputed, so one wrong point
    does not make its neighbours look wrong. Returns (flags (N, K) bool, scores (N, K)).
    """
    mask = mask.copy()
    flags = np.zeros_like(mask)
    final = np.full(mask.shape, np.nan)
    for _ in range(rounds):
        aligned, mean = procrustes_align(points, mask)
        scores = np.where(mask, keypoint_outlier_scores(aligned, mean, mask, min_instances), np.nan)
        final = np.where(flags, final, scores)
        filled = np.nan_to_num(scores, nan=-1.0)
        worst = filled.argmax(axis=1)
        rows = np.flatnonzero(filled[np.arange(len(filled)), worst] > sigma)
        if len(rows) == 0:
            break
        flags[rows, worst[rows]] = True
        mask[rows, worst[rows]] = False
    return flags, final


def _swap_and_outliers(ds: KeypointDataset, entries: list[tuple[int, int]], outlier_sigma: float,
                       min_instances: int, problems: list[Problem]) -> None:
    """Left/right swap and keypoint outlier checks on the instances in ``entries``."""
    spec = ds.spec
    if len(entries) < 6:
        return
    kps = np.stack([ds.images[i].instances[j].keypoints for i, j in entries])
    mask = (kps[..., 2] > 0) & np.isfinite(kps[..., :2]).all(axis=2)
    points = np.where(mask[..., None], kps[..., :2], 0.0)
    aligned, mean = procrustes_align(points, mask)
    swapped = _find_swaps(spec, aligned, mean, mask)
    for n in np.flatnonzero(swapped["flag"]):
        i, j = entries[n]
        rec, inst = ds.images[i], ds.images[i].instances[j]
        problems.append(Problem(
            "swapped_left_right",
            f"left/right labels look swapped: {swapped['disagree'][n]} of {swapped['counted'][n]} left/right "
            "pairs are mirrored compared with the rest of the dataset",
            _instance_where(rec, i, inst, j), "warning",
            "check the left/right labels of this instance (ignore if the subject really faces the other way)"))
    keep = ~swapped["flag"]
    if keep.sum() < min_instances:
        return
    flags, scores = find_outliers(points[keep], mask[keep], outlier_sigma, min_instances)
    rows = np.flatnonzero(keep)
    for r, k in zip(*np.nonzero(flags)):
        i, j = entries[rows[r]]
        rec, inst = ds.images[i], ds.images[i].instances[j]
        problems.append(Problem(
            "outlier_keypoint",
            f"far from where it usually is relative to the neighbouring keypoints "
            f"({scores[r, k]:.1f} robust SD, limit {outlier_sigma:g})",
            _kp_where(rec, i, inst, j, spec.keypoints[k]), "warning",
            "check this keypoint's position (wrong click, or the label of another keypoint?)"))


def _find_swaps(spec, aligned: np.ndarray, mean: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per instance: how many consistent left/right pairs disagree with the dataset's majority.

    See :func:`check_dataset` for the rule.
    """
    n = aligned.shape[0]
    out = {"flag": np.zeros(n, bool), "disagree": np.zeros(n, int), "counted": np.zeros(n, int)}
    if not spec.flip_pairs or np.isnan(mean).all():
        return out
    defined = ~np.isnan(mean).any(axis=1)
    centred = mean[defined] - mean[defined].mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    body_axis = vt[0]
    across = np.array([-body_axis[1], body_axis[0]])
    min_offset = 0.05  # in mean-shape units (unit RMS size): smaller offsets are ambiguous
    for a, b in spec.flip_pairs:
        both = mask[:, a] & mask[:, b]
        offset = (aligned[:, a] - aligned[:, b]) @ across
        clear = both & (np.abs(offset) >= min_offset)
        if clear.sum() < 5:
            continue
        signs = np.sign(offset[clear])
        majority = 1.0 if signs.sum() >= 0 else -1.0
        if (signs == majority).mean() < 0.75:  # orientation of this pair varies: no evidence
            continue
        out["counted"] += clear
        out["disagree"] += clear & (np.sign(offset) == -majority)
    out["flag"] = (out["counted"] > 0) & (out["disagree"] * 2 > out["counted"])
    return out


# ----------------------------------------------------------------------------- entry point
def check_dataset(ds: KeypointDataset, *, check_images: bool = True, outlier_sigma: float = 4.0,
                  min_instances_for_stats: int = 8) -> CheckReport:
    """Check ``ds`` for the problems listed in this module's docstring.

    Image files are opened (header only) when ``check_images``. The two statistical checks
    work on the instances with the spec's keypoint count, at least 3 labelled points and not
    crowd, aligned to their mean shape by a similarity transform (generalised Procrustes,
    :func:`procrustes_align`); they never decide on small datasets.

    * **Swapped left/right** (needs ≥ 6 such instances and ``spec.flip_pairs``): the body axis
      is the principal axis of the mean shape (head–feet for people, snout–tail for animals);
      for each flip pair and instance, the signed offset left − right projected across that
      axis says on which side of the body the "left" point lies. Rotation of the subject in
      the image does not matter because instances are compared in the aligned frame. A pair is
      used only when at least 75 % of the instances with a clear offset (≥ 5 % of the shape
      size) agree on the sign — so datasets where subjects face both ways give no evidence and
      nothing is flagged. An instance is flagged when more than half of its usable pairs
      disagree with the majority sign. On a clean dataset where everyone faces the same way
      all pairs agree and nothing fires.
    * **Outlier keypoints** (needs ≥ ``min_instances_for_stats`` labelled instances of that
      keypoint): each keypoint's position relative to its nearest keypoints (a local
      similarity alignment to the mean shape), compared with its median over the dataset, in
      robust standard deviations (MAD-based, see :func:`keypoint_outlier_scores`); flagged
      above ``outlier_sigma``. A global Procrustes fit alone is not enough for articulated
      bodies: a whole arm or head moving would make every point on it look wrong. Instances
      flagged as swapped are left out of this test.
    """
    spec = ds.spec
    # image files are re-checked below, more precisely: drop the readers' notes about them
    problems: list[Problem] = [p for p in ds.problems
                               if not (check_images and p.code in _READER_IMAGE_CODES)]
    _check_duplicates(ds, problems)
    entries: list[tuple[int, int]] = []
    labelled = np.zeros(spec.num_keypoints, int)
    visible = np.zeros(spec.num_keypoints, int)
    sizes: dict[str, tuple[int, int] | None] = {}
    for i, rec in enumerate(ds.images):
        size = None
        if check_images:
            key = str(ds.image_path(rec))
            if key in sizes:
                size = sizes[key]
            else:
                size = sizes[key] = _check_image_file(ds, rec, i, problems)
        for j, inst in enumerate(rec.instances):
            if _check_instance(ds, rec, i, inst, j, size, problems):
                entries.append((i, j))
            if inst.num_keypoints == spec.num_keypoints:
                labelled += inst.keypoints[:, 2] > 0
                visible += inst.keypoints[:, 2] >= 2
    _swap_and_outliers(ds, entries, outlier_sigma, min_instances_for_stats, problems)
    return CheckReport(
        source=str(ds.source) if ds.source is not None else None,
        format=ds.format,
        spec_name=spec.name,
        keypoint_names=list(spec.keypoints),
        num_images=ds.num_images,
        num_instances=ds.num_instances,
        labelled_per_keypoint=labelled.tolist(),
        visible_per_keypoint=visible.tolist(),
        images_without_instances=sum(1 for rec in ds.images if not rec.instances),
        problems=problems,
    )
