"""Range of motion (ROM) of joints over a video: numbers, plots, keyframes and a report.

:func:`analyze_rom` takes a :class:`~posetune.analysis.tracks.TrackTable`, picks one subject
(``track``, default the track where the joints can be measured in the most frames), smooths
its keypoints (:func:`~posetune.inference.smoothing.smooth_track`; low-score points are gaps,
short gaps are bridged; the default ``'savgol'`` is centred, so extremes are not delayed as
with the causal One-Euro filter) and computes the preset joint angles of
:mod:`posetune.analysis.angles` per frame.
For every joint it reports the minimum, maximum and range (max - min) in degrees and the frame
(and time, when known) where each extreme occurs. The same input always gives the same numbers.

:func:`write_rom_report` writes, into one folder:

* ``angles.csv`` — ``frame, time, <joint>..., <joint>_raw...`` (smoothed and unsmoothed
  angles in degrees, empty where unknown);
* ``rom.json`` — the summary (settings and per-joint min / max / range / frames / times);
* ``plot_<joint>.png`` — the angle over time, extremes marked;
* ``keyframe_<joint>_min.png`` / ``_max.png`` and ``keyframes.png`` (a contact sheet) — the
  video frames at the extremes with the pose drawn, only when the video is available;
* ``report.md`` and ``report.html`` (self-contained: images embedded as base64 PNG).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from posetune.analysis.angles import AngleDef, compute_angle, resolve_angle
from posetune.analysis.tracks import TrackTable
from posetune.errors import DataError
from posetune.io_utils import write_bytes_atomic, write_json_atomic, write_text_atomic

SMOOTHING_METHODS = ("one_euro", "savgol", "none")


@dataclass
class JointRom:
    """Range of motion of one joint. Rows index the analysed table; NaN / None when no valid frame."""

    name: str
    title: str
    convention: str
    min: float
    max: float
    range: float
    min_row: int | None
    max_row: int | None
    min_frame: int | None
    max_frame: int | None
    min_time: float | None
    max_time: float | None
    valid_frames: int
    total_frames: int

    def to_dict(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(float(v), 6)

        return {
            "joint": self.name, "title": self.title, "convention": self.convention,
            "min_deg": num(self.min), "max_deg": num(self.max), "range_deg": num(self.range),
            "min_frame": self.min_frame, "max_frame": self.max_frame,
            "min_time_s": num(self.min_time), "max_time_s": num(self.max_time),
            "valid_frames": self.valid_frames, "total_frames": self.total_frames,
        }


@dataclass
class RomAnalysis:
    """Everything :func:`write_rom_report` needs: the selected track, angle series and results."""

    table: TrackTable
    track_id: int
    xy: np.ndarray  # (T, K, 2) keypoints used for the angles (smoothed unless smooth='none')
    angles: dict[str, np.ndarray]
    raw_angles: dict[str, np.ndarray]
    results: list[JointRom]
    smooth: str
    score_thr: float
    definitions: dict[str, AngleDef] = field(default_factory=dict)

    @property
    def frames(self) -> np.ndarray:
        return self.table.frames

    @property
    def times(self) -> np.ndarray | None:
        return self.table.frame_times()

    def to_dict(self) -> dict[str, Any]:
        t = self.table
        return {
            "source": str(t.source) if t.source else None,
            "spec": t.spec.name,
            "track": self.track_id,
            "frames": int(t.num_frames),
            "first_frame": int(t.frames[0]) if t.num_frames else None,
            "last_frame": int(t.frames[-1]) if t.num_frames else None,
            "fps": None if not t.fps else round(float(t.fps), 6),
            "smoothing": self.smooth,
            "score_thr": self.score_thr,
            "joints": [r.to_dict() for r in self.results],
        }


def _joint_rom(defn: AngleDef, series: np.ndarray, table: TrackTable) -> JointRom:
    ok = np.isfinite(series)
    n = int(ok.sum())
    if n == 0:
        return JointRom(defn.name, defn.title, defn.convention, math.nan, math.nan, math.nan, None, None, None,
                        None, None, None, 0, len(series))
    i_min, i_max = int(np.nanargmin(series)), int(np.nanargmax(series))
    lo, hi = float(series[i_min]), float(series[i_max])
    return JointRom(defn.name, defn.title, defn.convention, lo, hi, hi - lo, i_min, i_max,
                    int(table.frames[i_min]), int(table.frames[i_max]), table.time_of(i_min), table.time_of(i_max),
                    n, len(series))


def _best_track(table: TrackTable, joints: list[str], score_thr: float) -> int:
    """The track where the joints' angles can be measured in the most frames (ties: lowest id)."""
    if not table.track_ids:
        return table.main_track_id(score_thr)  # raises the "no subject" error
    counts = []
    for tid in table.track_ids:
        xy, sc = table.track(tid)
        counts.append(sum(int(np.isfinite(compute_angle(j, xy, table.spec, sc, score_thr)).sum()) for j in joints))
    return table.track_ids[int(np.argmax(counts))]


def analyze_rom(table: TrackTable, joints: Sequence[str], *, track: int | None = None, smooth: str = "savgol",
                score_thr: float = 0.3, max_gap: int = 10,
                smooth_params: dict[str, float] | None = None) -> RomAnalysis:
    """Range of motion of ``joints`` (angle preset names) for one track of ``table``."""
    from posetune.inference.smoothing import smooth_track

    if smooth not in SMOOTHING_METHODS:
        from posetune.errors import ConfigError

        raise ConfigError(f"unknown smoothing '{smooth}'", hint=f"use one of: {', '.join(SMOOTHING_METHODS)}")
    if not joints:
        from posetune.errors import ConfigError

        raise ConfigError("no joints given", hint="name at least one joint, e.g. --joints left_knee")
    defs = {}
    for j in joints:
        d, _ = resolve_angle(j, table.spec)
        defs[d.name] = d
    table = table.densify()
    if table.num_frames == 0:
        raise DataError("the predictions contain no frame", where=table.source or "track table",
                        hint="check the predictions file")
    if track is None:
        tid = _best_track(table, list(defs), score_thr)
    else:
        tid = int(track)
    xy, scores = table.track(tid)
    raw = {n: compute_angle(n, xy, table.spec, scores, score_thr) for n in defs}
    if smooth == "none":
        used = np.where((np.nan_to_num(scores, nan=-1.0) >= score_thr)[..., None], xy, np.nan)
        angles = raw
    else:
        times = table.frame_times()
        if times is not None and not np.isfinite(times).all():
            times = None
        used = smooth_track(xy, scores, smooth, score_thr=score_thr, max_gap=max_gap,
                            fps=table.fps or None, timestamps=times, **(smooth_params or {}))
        angles = {n: compute_angle(n, used, table.spec) for n in defs}
    if all(not np.isfinite(a).any() for a in angles.values()):
        raise DataError(f"no frame of track {tid} has the keypoints for {', '.join(defs)} with score >= {score_thr}",
                        where=table.source or "track table",
                        hint="lower --score-thr, pick another --track, or check the predictions")
    results = [_joint_rom(defs[n], angles[n], table) for n in defs]
    return RomAnalysis(table=table, track_id=tid, xy=used, angles=angles, raw_angles=raw, results=results,
                       smooth=smooth, score_thr=score_thr, definitions=defs)


# ---------------------------------------------------------------------- report
def _fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _at(frame: int | None, t: float | None) -> str:
    if frame is None:
        return "–"
    return f"frame {frame}" + (f" ({t:.2f} s)" if t is not None else "")


def angles_csv(analysis: RomAnalysis) -> str:
    """The per-frame angle table as CSV text (see the module docstring)."""
    names = list(analysis.angles)
    times = analysis.times
    header = ["frame", "time"] + names + ([f"{n}_raw" for n in names] if analysis.smooth != "none" else [])
    lines = [",".join(header)]
    for r, frame in enumerate(analysis.frames):
        t = "" if times is None or not np.isfinite(times[r]) else f"{times[r]:.6f}"
        vals = [_csv_num(analysis.angles[n][r]) for n in names]
        if analysis.smooth != "none":
            vals += [_csv_num(analysis.raw_angles[n][r]) for n in names]
        lines.append(",".join([str(int(frame)), t] + vals))
    return "\n".join(lines) + "\n"


def _csv_num(v: float) -> str:
    return f"{v:.3f}" if np.isfinite(v) else ""


def plot_angle(analysis: RomAnalysis, joint: str) -> bytes:
    """PNG bytes of one joint's angle over time (raw in grey, smoothed in colour, extremes marked)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg is used for PNG

    res = next(r for r in analysis.results if r.name == joint)
    times = analysis.times
    x = times if times is not None and np.isfinite(times).all() else analysis.frames.astype(float)
    xlabel = "time (s)" if x is times else "frame"
    fig = Figure(figsize=(7.0, 3.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if analysis.smooth != "none":
        ax.plot(x, analysis.raw_angles[joint], color="0.7", lw=1.0, label="raw")
    ax.plot(x, analysis.angles[joint], color="tab:blue", lw=1.8,
            label="smoothed" if analysis.smooth != "none" else "angle")
    for row, val, color, tag in ((res.min_row, res.min, "tab:green", "min"), (res.max_row, res.max, "tab:red", "max")):
        if row is not None:
            ax.plot([x[row]], [val], "o", color=color, ms=7)
            ax.annotate(f"{tag} {val:.1f}°", (x[row], val), textcoords="offset points", xytext=(6, 6), fontsize=8,
                        color=color)
    ax.set_title(f"{res.title}: range {_fmt(res.range)}°", fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("degrees")
    ax.margins(y=0.15)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _encode_png(image_rgb: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", image_rgb[:, :, ::-1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def keyframe_images(analysis: RomAnalysis, video: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """``{(joint, 'min'|'max'): RGB image}`` — video frames at each joint's extremes with the pose drawn."""
    import cv2

    from posetune.inference.video import VideoReader
    from posetune.inference.visualize import draw_instances

    wanted: dict[int, list[tuple[JointRom, str, int]]] = {}
    for r in analysis.results:
        for tag, frame, row in (("min", r.min_frame, r.min_row), ("max", r.max_frame, r.max_row)):
            if frame is not None:
                wanted.setdefault(frame, []).append((r, tag, row))
    if not wanted:
        return {}
    with VideoReader(video, on_error="stop") as reader:
        images = reader.read_frames(wanted)
    spec = analysis.table.spec
    out: dict[tuple[str, str], np.ndarray] = {}
    for frame, items in sorted(wanted.items()):
        if frame not in images:
            continue
        for r, tag, row in items:
            pose = analysis.xy[row]
            kp = np.concatenate([pose, np.where(np.isfinite(pose).all(1), 1.0, 0.0)[:, None]], axis=1)
            img = draw_instances(images[frame], [kp], spec, score_thr=0.5, draw_boxes=False)
            _, points = resolve_angle(r.name, spec)
            centres = [pose[ids].mean(axis=0) for ids in points]
            if all(np.isfinite(c).all() for c in centres):
                thick = max(2, min(img.shape[:2]) // 150)
                pts = [tuple(int(round(v)) for v in c) for c in centres]
                for a, b in zip(pts[:-1], pts[1:]):
                    cv2.line(img, a, b, (255, 255, 255), thick + 2, cv2.LINE_AA)
                    cv2.line(img, a, b, (220, 30, 30), thick, cv2.LINE_AA)
            value = r.min if tag == "min" else r.max
            label = f"{r.name} {tag} {value:.1f} deg (frame {frame})"
            scale = max(0.4, min(img.shape[:2]) / 700)
            while scale > 0.25 and cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > img.shape[1] - 16:
                scale *= 0.9
            cv2.putText(img, label, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                        max(1, int(3 * scale)) + 2, cv2.LINE_AA)
            cv2.putText(img, label, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                        max(1, int(3 * scale)), cv2.LINE_AA)
            out[(r.name, tag)] = img
    return out


def write_rom_report(analysis: RomAnalysis, out_dir: str | Path, *, video: str | Path | None = None,
                     title: str | None = None) -> dict[str, Path]:
    """Write the ROM report files (see the module docstring) into ``out_dir``; returns name -> path."""
    from posetune.inference.visualize import draw_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["angles.csv"] = write_text_atomic(out / "angles.csv", angles_csv(analysis))
    summary = analysis.to_dict()
    if video is not None:
        summary["video"] = str(video)
    written["rom.json"] = write_json_atomic(out / "rom.json", summary)
    pngs: dict[str, bytes] = {}
    for r in analysis.results:
        pngs[f"plot_{r.name}.png"] = plot_angle(analysis, r.name)
    keyframes: dict[tuple[str, str], np.ndarray] = {}
    keyframe_note = None
    if video is not None:
        keyframes = keyframe_images(analysis, video)
        for (joint, tag), img in keyframes.items():
            pngs[f"keyframe_{joint}_{tag}.png"] = _encode_png(img)
        if keyframes:
            keys = sorted(keyframes)
            sheet = draw_grid([keyframes[k] for k in keys], ncols=2, titles=[f"{j} {t}" for j, t in keys])
            pngs["keyframes.png"] = _encode_png(sheet)
        missing = [f"{r.name} {t}" for r in analysis.results for t in ("min", "max")
                   if (r.name, t) not in keyframes and (r.min_frame if t == "min" else r.max_frame) is not None]
        if missing:
            keyframe_note = f"frames not found in the video for: {', '.join(missing)}"
    for name, data in pngs.items():
        written[name] = write_bytes_atomic(out / name, data)
    source = analysis.table.source
    title = title or f"Range of motion — {Path(str(source)).name if source else 'track'}"
    written["report.md"] = write_text_atomic(out / "report.md", _markdown(analysis, title, pngs, keyframes,
                                                                         video, keyframe_note))
    written["report.html"] = write_text_atomic(out / "report.html", _html(analysis, title, pngs, keyframes,
                                                                         video, keyframe_note))
    return written


def _settings_lines(a: RomAnalysis, video: str | Path | None) -> list[str]:
    t = a.table
    lines = [
        f"Input: {t.source}" if t.source else "Input: in-memory track table",
        f"Keypoints: {t.spec.name} ({t.spec.num_keypoints}); track {a.track_id} of {t.num_tracks}",
        f"Frames: {t.num_frames} ({int(t.frames[0])}–{int(t.frames[-1])})"
        + (f", {float(t.fps):.3f} fps" if t.fps else ""),
        f"Smoothing: {a.smooth}; keypoint score threshold {a.score_thr}",
    ]
    if video is not None:
        lines.append(f"Video: {video}")
    return lines


_CAVEAT = ("Angles are measured on the 2-D image: they match clinical angles only when the movement is in a plane "
           "facing the camera (side view for flexion/extension, front view for abduction and tilt). Compare "
           "sessions filmed from the same viewpoint.")


def _markdown(a: RomAnalysis, title: str, pngs: dict[str, bytes], keyframes: dict, video, note: str | None) -> str:
    out = [f"# {title}", ""]
    out += [f"- {line}" for line in _settings_lines(a, video)]
    out += ["", "| Joint | Min (°) | at | Max (°) | at | Range (°) | Valid frames |",
            "|---|---:|---|---:|---|---:|---:|"]
    for r in a.results:
        out.append(f"| {r.title} | {_fmt(r.min)} | {_at(r.min_frame, r.min_time)} | {_fmt(r.max)} | "
                   f"{_at(r.max_frame, r.max_time)} | {_fmt(r.range)} | {r.valid_frames}/{r.total_frames} |")
    out += ["", f"> {_CAVEAT}", "", "## Conventions", ""]
    out += [f"- **{r.name}**: {r.convention}" for r in a.results]
    out += ["", "## Angles over time", ""]
    for r in a.results:
        out += [f"![{r.title}](plot_{r.name}.png)", ""]
    if keyframes:
        out += ["## Frames at the extremes", ""]
        for r in a.results:
            for tag in ("min", "max"):
                if (r.name, tag) in keyframes:
                    out += [f"![{r.name} {tag}](keyframe_{r.name}_{tag}.png)", ""]
    if note:
        out += [f"_Note: {note}_", ""]
    out += ["Per-frame angles: [angles.csv](angles.csv); summary: [rom.json](rom.json).", ""]
    return "\n".join(out)


def _img_tag(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _html(a: RomAnalysis, title: str, pngs: dict[str, bytes], keyframes: dict, video, note: str | None) -> str:
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(r.title)}</td><td>{_fmt(r.min)}</td><td>{e(_at(r.min_frame, r.min_time))}</td>"
        f"<td>{_fmt(r.max)}</td><td>{e(_at(r.max_frame, r.max_time))}</td><td><b>{_fmt(r.range)}</b></td>"
        f"<td>{r.valid_frames}/{r.total_frames}</td></tr>" for r in a.results)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}"
        ".note{color:#555;font-size:.9em}</style></head><body>",
        f"<h1>{e(title)}</h1>", "<ul>" + "".join(f"<li>{e(x)}</li>" for x in _settings_lines(a, video)) + "</ul>",
        "<table><thead><tr><th>Joint</th><th>Min (°)</th><th>at</th><th>Max (°)</th><th>at</th><th>Range (°)</th>"
        "<th>Valid frames</th></tr></thead><tbody>", rows, "</tbody></table>",
        f'<p class="note">{e(_CAVEAT)}</p>', "<h2>Conventions</h2><ul>",
        "".join(f"<li><b>{e(r.name)}</b>: {e(r.convention)}</li>" for r in a.results), "</ul>",
        "<h2>Angles over time</h2>",
    ]
    parts += [_img_tag(pngs[f"plot_{r.name}.png"], r.title) for r in a.results]
    if keyframes:
        parts.append("<h2>Frames at the extremes</h2>")
        for r in a.results:
            for tag in ("min", "max"):
                key = f"keyframe_{r.name}_{tag}.png"
                if key in pngs:
                    parts.append(_img_tag(pngs[key], f"{r.name} {tag}"))
    if note:
        parts.append(f'<p class="note">Note: {e(note)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def summary_json(analysis: RomAnalysis) -> str:
    """The summary as a JSON string (what ``rom.json`` holds, without the video path)."""
    return json.dumps(analysis.to_dict(), indent=2)
