"""Per-frame keypoint track tables: the in-memory type and the CSV file the predictor writes.

:class:`TrackTable` holds the keypoints of every tracked subject in every frame of a video as
dense arrays (``NaN`` where a subject or point is missing):

* ``frames`` ``(T,)`` int frame indices (sorted, unique), ``times`` ``(T,)`` seconds or None;
* ``track_ids`` ``(N,)`` int track ids;
* ``xy`` ``(T, N, K, 2)`` pixel coordinates, ``scores`` ``(T, N, K)`` keypoint confidences;
* ``spec`` the :class:`~posetune.data.spec.KeypointSpec` (names give the K axis).

**Track CSV format** (:func:`write_track_csv` / :func:`read_track_csv`). UTF-8, comma
separated, one header line, then one row per (frame, track, keypoint) that was predicted:

=========  ==========================================================================
column     meaning
=========  ==========================================================================
frame      0-based frame index in the video (integer)
time       seconds from the first frame (optional column; empty when unknown)
track      track id of the subject (integer, from the tracker; 0 when single subject)
keypoint   keypoint *name* from the spec (e.g. ``left_knee``)
x, y       pixel coordinates in the original frame (origin top-left, y down)
score      keypoint confidence in [0, 1] (1.0 for labels / when the model gives none)
=========  ==========================================================================

Rows are written sorted by frame, track and keypoint order. Points that were not predicted
are simply absent (no NaN rows). Extra columns are ignored on reading. The spec is the smallest
preset (COCO-17, MediaPipe pose-33, ...) that holds every keypoint name of the file, else a
custom spec in the order of first appearance; pass ``spec=`` to be explicit.

:func:`read_tracks` also reads **COCO keypoint results** json (``image_id`` = frame index,
``keypoints`` = ``[x, y, score] * K``, optional ``track_id``); without track ids, frames with a
single detection form track 0 and several detections per frame are linked with
:class:`~posetune.inference.tracking.Tracker`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from posetune.data.spec import KeypointSpec
from posetune.errors import DataError
from posetune.io_utils import atomic_path

CSV_COLUMNS = ("frame", "time", "track", "keypoint", "x", "y", "score")
REQUIRED_COLUMNS = ("frame", "track", "keypoint", "x", "y", "score")


@dataclass
class TrackTable:
    """Keypoints of tracked subjects over the frames of one video (see the module docstring)."""

    spec: KeypointSpec
    frames: np.ndarray
    track_ids: list[int]
    xy: np.ndarray
    scores: np.ndarray
    times: np.ndarray | None = None
    fps: float | None = None
    source: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        self.track_ids = [int(t) for t in self.track_ids]
        t, n, k = len(self.frames), len(self.track_ids), self.spec.num_keypoints
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(t, n, k, 2)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(t, n, k)
        if self.times is not None:
            self.times = np.asarray(self.times, dtype=np.float64).reshape(t)
        if t > 1 and np.any(np.diff(self.frames) <= 0):
            raise ValueError("TrackTable frames must be sorted and unique")

    # ------------------------------------------------------------------ queries
    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def num_tracks(self) -> int:
        return len(self.track_ids)

    def time_of(self, row: int) -> float | None:
        """Seconds of table row ``row`` (from ``times`` or ``frame / fps``), None if unknown."""
        if self.times is not None and np.isfinite(self.times[row]):
            return float(self.times[row])
        if self.fps:
            return float(self.frames[row]) / float(self.fps)
        return None

    def frame_times(self) -> np.ndarray | None:
        """``(T,)`` seconds per row, or None when neither times nor fps are known."""
        if self.times is not None:
            return self.times
        if self.fps:
            return self.frames / float(self.fps)
        return None

    def track(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(xy (T, K, 2), scores (T, K))`` of one track."""
        try:
            j = self.track_ids.index(int(track_id))
        except ValueError:
            raise DataError(f"no track {track_id}", where=self.source or "track table",
                            hint=f"tracks present: {', '.join(map(str, self.track_ids)) or 'none'}") from None
        return self.xy[:, j], self.scores[:, j]

    def main_track_id(self, score_thr: float = 0.3) -> int:
        """The track with the most confident points (ties: the lowest id)."""
        if not self.track_ids:
            raise DataError("no tracked subject in the predictions", where=self.source or "track table",
                            hint="check that the model detected someone in the video")
        good = (np.nan_to_num(self.scores, nan=-1.0) >= score_thr) & np.isfinite(self.xy).all(-1)
        counts = good.sum(axis=(0, 2))
        return self.track_ids[int(np.argmax(counts))]

    def densify(self, max_span_factor: float = 20.0) -> "TrackTable":
        """A table with one row per frame from the first to the last (missing rows are NaN).

        Kept as is when the frames are already contiguous or when their span is more than
        ``max_span_factor`` times their count (e.g. arbitrary COCO image ids).
        """
        if self.num_frames == 0:
            return self
        f0, f1 = int(self.frames[0]), int(self.frames[-1])
        span = f1 - f0 + 1
        if span == self.num_frames or span > max_span_factor * self.num_frames + 100:
            return self
        frames = np.arange(f0, f1 + 1)
        rows = self.frames - f0
        xy = np.full((span,) + self.xy.shape[1:], np.nan)
        sc = np.full((span,) + self.scores.shape[1:], np.nan)
        xy[rows], sc[rows] = self.xy, self.scores
        times = None
        if self.times is not None:
            times = np.full(span, np.nan)
            times[rows] = self.times
            if self.fps:
                fill = ~np.isfinite(times)
                times[fill] = frames[fill] / float(self.fps)
            elif np.isfinite(times).sum() >= 2:
                ok = np.isfinite(times)
                times = np.interp(frames, frames[ok], times[ok])
        return replace(self, frames=frames, xy=xy, scores=sc, times=times, info=dict(self.info))

    def rows(self) -> Iterable[tuple[int, float | None, int, str, float, float, float]]:
        """``(frame, time, track, keypoint, x, y, score)`` for every point with finite coordinates."""
        names = self.spec.keypoints
        ti = self.frame_times()
        for r, frame in enumerate(self.frames):
            t = None if ti is None or not np.isfinite(ti[r]) else float(ti[r])
            for j, tid in enumerate(self.track_ids):
                pts, sc = self.xy[r, j], self.scores[r, j]
                for k in np.flatnonzero(np.isfinite(pts).all(axis=1)):
                    s = float(sc[k]) if np.isfinite(sc[k]) else 1.0
                    yield int(frame), t, tid, names[k], float(pts[k, 0]), float(pts[k, 1]), s


class TrackTableBuilder:
    """Collects per-frame results (e.g. from a predictor + :class:`Tracker`) into a TrackTable.

    >>> b = TrackTableBuilder(spec, fps=30)
    >>> b.add(frame=0, track_id=ids[i], keypoints=kp_k3, time=0.0)   # per subject per frame
    >>> table = b.build()

    ``keypoints`` is ``(K, 2)`` or ``(K, 3)`` (third column = score) or an
    :class:`~posetune.data.records.Instance` (scores from ``keypoint_scores`` if set).
    Frames with no subject can be registered with :meth:`add_frame` so they appear as NaN rows.
    """

    def __init__(self, spec: KeypointSpec, fps: float | None = None, source: str | Path | None = None):
        self.spec = spec
        self.fps = float(fps) if fps else None
        self.source = Path(source) if source is not None else None
        self._frames: dict[int, float | None] = {}
        self._points: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def add_frame(self, frame: int, time: float | None = None) -> None:
        """Register a frame (even one without subjects)."""
        frame = int(frame)
        if time is not None or frame not in self._frames:
            self._frames[frame] = None if time is None else float(time)

    def add(self, frame: int, track_id: int, keypoints: Any, scores: Sequence[float] | None = None,
            time: float | None = None) -> None:
        """Add one subject's keypoints in one frame (a repeated (frame, track) replaces the old one)."""
        from posetune.data.records import Instance

        k = self.spec.num_keypoints
        if isinstance(keypoints, Instance):
            kp = keypoints.keypoints
            sc = keypoints.keypoint_scores if keypoints.keypoint_scores is not None else None
            xy = kp[:, :2].copy()
            xy[kp[:, 2] <= 0] = np.nan
            sc = np.ones(k) if sc is None else np.asarray(sc, dtype=np.float64)
        else:
            arr = np.asarray(keypoints, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] != k or arr.shape[1] not in (2, 3):
                raise ValueError(f"keypoints must be ({k}, 2) or ({k}, 3), got {arr.shape}")
            xy = arr[:, :2].copy()
            sc = arr[:, 2].copy() if arr.shape[1] == 3 else np.ones(k)
        if scores is not None:
            sc = np.asarray(scores, dtype=np.float64).reshape(k)
        self.add_frame(frame, time)
        self._points[(int(frame), int(track_id))] = (xy, sc)

    def build(self) -> TrackTable:
        frames = np.array(sorted(self._frames), dtype=np.int64)
        tids = sorted({t for _, t in self._points})
        k = self.spec.num_keypoints
        xy = np.full((len(frames), len(tids), k, 2), np.nan)
        sc = np.full((len(frames), len(tids), k), np.nan)
        row = {f: i for i, f in enumerate(frames)}
        col = {t: j for j, t in enumerate(tids)}
        for (f, t), (p, s) in self._points.items():
            xy[row[f], col[t]] = p
            sc[row[f], col[t]] = s
        times = None
        tlist = [self._frames[f] for f in frames]
        if any(t is not None for t in tlist):
            times = np.array([np.nan if t is None else t for t in tlist])
        return TrackTable(spec=self.spec, frames=frames, track_ids=tids, xy=xy, scores=sc, times=times,
                          fps=self.fps, source=self.source)


# ---------------------------------------------------------------------- CSV
def _fmt(v: float | None, digits: int) -> str:
    if v is None or not math.isfinite(v):
        return ""
    return f"{v:.{digits}f}"


def write_track_csv(table: TrackTable, path: str | Path) -> Path:
    """Write ``table`` as a track CSV (format in the module docstring), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for frame, t, tid, name, x, y, s in table.rows():
                w.writerow([frame, _fmt(t, 6), tid, name, _fmt(x, 3), _fmt(y, 3), _fmt(s, 4)])
    return path


def _spec_for_names(names: Sequence[str], where: str | Path) -> KeypointSpec:
    from posetune.data import presets

    wanted = set(names)
    supersets = [s for s in presets.PRESETS.values() if wanted <= set(s.keypoints)]
    if supersets:  # the smallest preset holding every name (points never predicted are just absent)
        return min(supersets, key=lambda s: s.num_keypoints)
    return KeypointSpec.from_names(list(names), name="custom")


def read_track_csv(path: str | Path, spec: KeypointSpec | str | None = None, fps: float | None = None) -> TrackTable:
    """Read a track CSV (format in the module docstring) into a :class:`TrackTable`."""
    import pandas as pd

    from posetune.data.spec import get_spec

    path = Path(path)
    if not path.exists():
        raise DataError("track file not found", where=path, hint="check the path")
    try:
        df = pd.read_csv(path, dtype={"keypoint": str}, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DataError("empty file", where=path,
                        hint="a track CSV has a header line: " + ",".join(CSV_COLUMNS)) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"cannot parse CSV ({str(e).splitlines()[0]})", where=path,
                        hint="write it with posetune.analysis.tracks.write_track_csv") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}", where=path,
                        hint=f"a track CSV has the columns {', '.join(CSV_COLUMNS)} (time is optional)")
    if len(df) == 0:
        raise DataError("no predictions in the file (only a header)", where=path,
                        hint="check that the model detected someone in the video")
    numeric = {}
    for col in ("frame", "track", "x", "y", "score") + (("time",) if "time" in df.columns else ()):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna() if col == "time" else values.isna()
        if col in ("frame", "track"):
            bad |= values.notna() & (values != np.round(values))
        if col == "frame":
            bad |= values < 0
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"column '{col}' has the invalid value {df[col].iloc[i]!r}", where=f"{path}:{i + 2}",
                            hint="frame and track are integers (frame >= 0); x, y, score are numbers")
        numeric[col] = values.to_numpy(dtype=np.float64)
    names = df["keypoint"].fillna("").astype(str).str.strip().to_numpy()
    if (names == "").any():
        i = int(np.flatnonzero(names == "")[0])
        raise DataError("empty keypoint name", where=f"{path}:{i + 2}", hint="name every keypoint")
    order = list(dict.fromkeys(names.tolist()))
    if spec is None:
        kspec = _spec_for_names(order, path)
    else:
        kspec = get_spec(spec)
        unknown = [n for n in order if not kspec.has(n)]
        if unknown:
            raise DataError(f"keypoint name(s) {unknown[:5]} are not in spec '{kspec.name}'", where=path,
                            hint=f"known keypoints: {', '.join(kspec.keypoints)}")
    kidx = np.array([kspec.index(n) for n in names], dtype=np.int64) if len(names) else np.zeros(0, np.int64)
    frame = numeric["frame"].astype(np.int64)
    track = numeric["track"].astype(np.int64)
    frames = np.unique(frame)
    tids = np.unique(track)
    r = np.searchsorted(frames, frame)
    c = np.searchsorted(tids, track)
    key = (r * len(tids) + c) * kspec.num_keypoints + kidx
    uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup_key = uniq[np.flatnonzero(counts > 1)[0]]
        lines = np.flatnonzero(key == dup_key)[:2] + 2
        raise DataError(f"the same (frame, track, keypoint) appears twice (lines {lines[0]} and {lines[1]})",
                        where=f"{path}:{lines[1]}", hint="keep one row per frame, track and keypoint")
    xy = np.full((len(frames), len(tids), kspec.num_keypoints, 2), np.nan)
    sc = np.full((len(frames), len(tids), kspec.num_keypoints), np.nan)
    xy[r, c, kidx, 0] = numeric["x"]
    xy[r, c, kidx, 1] = numeric["y"]
    sc[r, c, kidx] = numeric["score"]
    times = None
    if "time" in numeric and np.isfinite(numeric["time"]).any():
        times = np.full(len(frames), np.nan)
        times[r] = numeric["time"]
        if not fps:
            fps = _fps_from_times(frames, times)
    return TrackTable(spec=kspec, frames=frames, track_ids=tids.tolist(), xy=xy, scores=sc, times=times,
                      fps=float(fps) if fps else None, source=path)


def _fps_from_times(frames: np.ndarray, times: np.ndarray) -> float | None:
    """Frame rate implied by frame numbers and their times (median seconds per frame), or None."""
    ok = np.isfinite(times)
    if ok.sum() < 2:
        return None
    dt = np.diff(times[ok]) / np.diff(frames[ok])
    dt = dt[np.isfinite(dt) & (dt > 0)]
    if not len(dt):
        return None
    return round(1.0 / float(np.median(dt)), 3)


# ---------------------------------------------------------------------- COCO results
_SPECS_BY_K = {17: "coco17", 16: "mpii16", 33: "mediapipe_pose33", 133: "coco_wholebody133"}


def read_coco_results_tracks(path: str | Path, spec: KeypointSpec | str | None = None,
                             fps: float | None = None, score_thr: float = 0.3) -> TrackTable:
    """COCO keypoint results json (one ``image_id`` per video frame) as a :class:`TrackTable`."""
    from posetune.data.spec import get_spec
    from posetune.io_utils import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise DataError("COCO results must be a non-empty json list", where=path,
                        hint="write a list of {image_id, keypoints: x, y, score per keypoint, score}")
    flat: list[np.ndarray] = []
    for n, rec in enumerate(data):
        w = f"{path}: record {n}"
        if not isinstance(rec, dict) or "image_id" not in rec or "keypoints" not in rec:
            raise DataError("not a COCO result (needs image_id and keypoints)", where=w,
                            hint="write a list of {image_id, keypoints: x, y, score per keypoint, score}")
        iid = rec["image_id"]
        if isinstance(iid, bool) or not isinstance(iid, int) or iid < 0:
            raise DataError(f"image_id {iid!r} is not a frame index (integer >= 0)", where=w,
                            hint="use the frame index as image_id")
        try:
            kp = np.asarray(rec["keypoints"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError("keypoints is not a list of numbers", where=w,
                            hint="give x, y, score for each keypoint (3 * K numbers)") from None
        if kp.size % 3 or (flat and kp.size != flat[0].size):
            raise DataError(f"{kp.size} keypoint values (expected 3 * K, same K in every record)", where=w,
                            hint="give x, y, score for each keypoint (3 * K numbers)")
        flat.append(kp)
    k = flat[0].size // 3
    if spec is not None:
        kspec = get_spec(spec)
        if kspec.num_keypoints != k:
            raise DataError(f"results have {k} keypoints but spec '{kspec.name}' has {kspec.num_keypoints}",
                            where=path, hint="pass the spec the model was trained with")
    elif k in _SPECS_BY_K:
        kspec = get_spec(_SPECS_BY_K[k])
    else:
        kspec = KeypointSpec.from_names([f"kp{i}" for i in range(k)], name=f"custom{k}")
    per_frame: dict[int, list[tuple[int | None, np.ndarray]]] = {}
    has_tracks = all("track_id" in r for r in data)
    for rec, kp in zip(data, flat):
        tid = rec.get("track_id") if has_tracks else None
        per_frame.setdefault(int(rec["image_id"]), []).append((tid, kp.reshape(k, 3)))
    builder = TrackTableBuilder(kspec, fps=fps, source=path)
    if has_tracks or max(len(v) for v in per_frame.values()) == 1:
        for frame, items in sorted(per_frame.items()):
            for tid, kp in items:
                try:
                    t = 0 if tid is None else int(tid)
                except (TypeError, ValueError):
                    raise DataError(f"track_id {tid!r} is not an integer", where=f"{path}: image_id {frame}",
                                    hint="use integer track ids") from None
                builder.add(frame, t, kp)
    else:
        from posetune.inference.tracking import Tracker

        tracker = Tracker(kspec, kp_thr=score_thr)
        for frame, items in sorted(per_frame.items()):
            ids = tracker.update([kp for _, kp in items])
            builder.add_frame(frame)
            for tid, (_, kp) in zip(ids, items):
                builder.add(frame, tid, kp)
    table = builder.build()
    table.info["format"] = "coco_results"
    return table


def read_tracks(path: str | Path, spec: KeypointSpec | str | None = None, fps: float | None = None) -> TrackTable:
    """A predictions file as a TrackTable: a track CSV (``.csv``) or COCO results (``.json``)."""
    path = Path(path)
    if not path.exists():
        raise DataError("predictions file not found", where=path, hint="check the path")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_track_csv(path, spec=spec, fps=fps)
    if suffix == ".json":
        return read_coco_results_tracks(path, spec=spec, fps=fps)
    raise DataError(f"unsupported predictions file type '{suffix}'", where=path,
                    hint="give a track CSV (.csv), COCO keypoint results (.json) or a video with --model")
