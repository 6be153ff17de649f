"""``posetune predict``: keypoints for an image, a folder, a glob, a video file or a webcam.

Thin: resolves the source, builds a :class:`~posetune.inference.predictor.Predictor` and writes
the outputs. Everything goes to ``--out DIR``:

* images (a file, a folder — not recursive — or a glob such as ``'shots/**/*.jpg'``):
  ``predictions.json`` (COCO keypoint results: ``image_id``, ``category_id``, ``keypoints``
  x, y, score per point, ``score``, ``bbox``, plus ``file_name`` and ``box_score``),
  ``images.json`` (``[{id, file_name, width, height}]``: the image-id map) and ``vis/<name>``
  (the drawn images). Image ids are the detection file's ids when ``--boxes`` matched the image,
  else the image's position in the sorted source list (1, 2, ...);
* a video file: ``predictions.json`` (``image_id`` = frame index, plus ``frame``, ``time``,
  ``track_id``), ``tracks.csv`` (:func:`posetune.analysis.tracks.write_track_csv`) and
  ``<stem>_pose.mp4`` (the skeleton overlay at the source frame rate, H.264 yuv420p faststart);
* a webcam (SOURCE ``0`` / ``--source 0``): the same as a video (``camera<N>_pose.mp4``), with a
  live window (``--show``, FPS shown; ``q`` or Esc stops) when OpenCV has GUI support.

Faults keep what came before them. A video that breaks while decoding, a camera that stops,
Ctrl-C: the predictions, tracks and overlay video of the frames processed so far are written
(atomically) and the command ends with a one-line error (exit 2). An unreadable image (0 bytes,
corrupt) does not stop a folder: the other images are processed and written, then the command
reports the unreadable file(s) on one line and exits with status 2.
"""

from __future__ import annotations

import glob as globlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from posetune.errors import ConfigError, InferenceError, PosetuneError


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("predict")(predict)


# ============================================================================ sources
@dataclass
class Source:
    """A resolved SOURCE: ``kind`` is images, video or camera."""

    kind: str
    images: list[Path] | None = None
    root: Path | None = None  # file names in the outputs are relative to it
    video: Path | None = None
    camera: int | str | None = None
    label: str = ""


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def resolve_source(source: str, camera_file: Path | None = None) -> Source:
    """What SOURCE names: an image, a folder of images, a glob, a video file or a camera index."""
    from posetune.data.images import IMAGE_EXTENSIONS
    from posetune.inference.video import VIDEO_SUFFIXES, is_video_path

    if camera_file is not None:
        if not camera_file.is_file():
            raise InferenceError("camera stand-in file not found", where=camera_file, hint="check the path")
        return Source("camera", camera=str(camera_file), label=f"camera_{camera_file.stem}")
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            videos = sorted(p.name for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            hint = (f"it holds videos ({', '.join(videos[:3])}): give a video file" if videos else
                    f"put {', '.join(IMAGE_EXTENSIONS)} images in it, or give a glob like '{path}/**/*.jpg'")
            raise InferenceError("folder holds no images", where=path, hint=hint)
        return Source("images", images=files, root=path, label=path.name)
    if path.is_file():
        if is_video_path(path):
            return Source("video", video=path, label=path.stem)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return Source("images", images=[path], root=path.parent, label=path.stem)
        raise InferenceError(f"not an image or video file (suffix '{path.suffix}')", where=path,
                             hint=f"images: {', '.join(IMAGE_EXTENSIONS)}; videos: {', '.join(VIDEO_SUFFIXES)}")
    if re.fullmatch(r"\d+", source.strip()):
        return Source("camera", camera=int(source), label=f"camera{int(source)}")
    if _is_glob(source):
        matches = sorted(Path(p) for p in globlib.glob(os.path.expanduser(source), recursive=True))
        files = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise InferenceError(f"the pattern matches no images ({len(matches)} other paths)", where=source,
                                 hint=f"image suffixes: {', '.join(IMAGE_EXTENSIONS)}; quote the pattern so the "
                                      "shell does not expand it")
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
        return Source("images", images=files, root=root, label=root.name or "images")
    raise InferenceError("source not found", where=source,
                         hint="give an image, a folder, a glob ('imgs/*.jpg'), a video file or a camera index (0)")


def gui_available() -> bool:
    """True when OpenCV was built with a GUI backend (cv2.imshow works)."""
    import cv2

    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.M)
    return bool(m) and m.group(1).upper() not in ("NONE", "NO", "OFF")


def _check_show(show: Optional[bool], kind: str) -> bool:
    if show and kind == "images":
        raise ConfigError("--show is for videos and cameras", where="--show",
                          hint="the drawn images are written to OUT/vis; drop --show")
    if show and not gui_available():
        raise ConfigError("--show needs a window, but this OpenCV build has no GUI support "
                          "(opencv-python-headless)", where="--show",
                          hint="use --no-show to process and save without a window, or install opencv-python "
                               "(with GUI) in place of opencv-python-headless")
    if show is None:
        return kind == "camera" and gui_available()
    return bool(show)


# ============================================================================ the command
def predict(
    model: str = typer.Argument(..., metavar="CHECKPOINT_OR_MODEL",
                                help="A .ckpt from `posetune train`, or mediapipe-pose / mediapipe-hand / "
                                     "mediapipe-face."),
    source: Optional[str] = typer.Argument(None, metavar="SOURCE",
                                           help="Image, folder, glob ('imgs/*.jpg'), video file or webcam index (0)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    source_opt: Optional[str] = typer.Option(None, "--source", help="SOURCE as an option (e.g. --source 0)."),
    boxes: Optional[Path] = typer.Option(None, "--boxes",
                                         help="COCO detection results json (image_id, bbox, score); for a video "
                                              "image_id is the frame index."),
    detector: str = typer.Option("auto", "--detector",
                                 help="Detector when no --boxes: mediapipe (people), mediapipe-palm (hands), "
                                      "mediapipe-face, none (whole frame) or auto (the built-in model's own: "
                                      "people for mediapipe-pose, palms for mediapipe-hand, faces for "
                                      "mediapipe-face; none for checkpoints)."),
    box_mode: str = typer.Option("track", "--box-mode",
                                 help="Video crops: track (follow the previous frame's keypoints), frame (whole "
                                      "frame) or detector (detect every frame)."),
    flip_test: bool = typer.Option(False, "--flip-test", help="Average with the horizontally flipped crop."),
    rotate: bool = typer.Option(True, "--rotate/--no-rotate",
                                help="Crop lying or leaning people turned upright (body rotation from the "
                                     "detector, or from the hips and shoulders of the previous video frame)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    batch_size: int = typer.Option(16, "--batch-size", help="Crops per forward pass."),
    score_thr: float = typer.Option(0.3, "--score-thr",
                                    help="Keypoint score to draw / track a point; also the minimum --boxes score."),
    nms_thr: float = typer.Option(0.9, "--nms-thr", help="OKS above which two poses are one subject (1 = keep all)."),
    smooth: str = typer.Option("none", "--smooth", help="Video keypoint smoothing: one_euro, savgol or none."),
    show: Optional[bool] = typer.Option(None, "--show/--no-show",
                                        help="Show a live window (default: on for a webcam when OpenCV has a GUI)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after N frames (or N images)."),
    save_frames: bool = typer.Option(True, "--save-frames/--no-save-frames",
                                     help="Write the drawn images / the overlay video."),
    allow_unsafe_load: bool = typer.Option(False, "--allow-unsafe-load",
                                           help="Allow checkpoints that need full unpickling (trusted files only)."),
    camera_file: Optional[Path] = typer.Option(None, "--camera-file", hidden=True,
                                               help="Read this video through the camera code path (testing)."),
) -> None:
    """Predict keypoints on images, folders, globs, videos or a webcam; write COCO results json,
    track CSV, drawn images and an overlay video to --out."""
    from posetune.inference.predictor import BOX_MODES, SMOOTHING_METHODS

    text = source_opt if source_opt is not None else source
    if source is not None and source_opt is not None and source != source_opt:
        raise ConfigError("give SOURCE either as an argument or with --source, not both", where="--source")
    if text is None and camera_file is None:
        raise ConfigError("no SOURCE given", where="SOURCE",
                          hint="give an image, a folder, a glob, a video file or a webcam index (0)")
    if smooth not in SMOOTHING_METHODS:
        raise ConfigError(f"unknown smoothing '{smooth}'", where="--smooth",
                          hint=f"use one of: {', '.join(SMOOTHING_METHODS)}")
    if box_mode not in BOX_MODES:
        raise ConfigError(f"unknown box mode '{box_mode}'", where="--box-mode",
                          hint=f"use one of: {', '.join(BOX_MODES)}")
    from posetune.inference.detectors import DETECTORS

    if detector not in ("auto", "none", *DETECTORS):
        raise ConfigError(f"unknown detector '{detector}'", where="--detector",
                          hint=f"use {', '.join(DETECTORS)}, none or auto")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}", where="--batch-size")
    if not 0.0 <= score_thr <= 1.0:
        raise ConfigError(f"--score-thr must be between 0 and 1, got {score_thr}", where="--score-thr")
    if not 0.0 < nms_thr <= 1.0:
        raise ConfigError(f"--nms-thr must be in (0, 1], got {nms_thr}", where="--nms-thr")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {max_frames}", where="--max-frames")
    src = resolve_source(text or "", camera_file)
    show_window = _check_show(show, src.kind)
    dets = None
    if boxes is not None:
        from posetune.inference.detectors import boxes_from_coco_detections

        dets = boxes_from_coco_detections(boxes, score_thr=score_thr)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out is a file, not a folder", where=out, hint="give a folder for the outputs")
    predictor = _load_predictor(model, device, flip_test, batch_size, score_thr, nms_thr,
                                "none" if dets is not None else detector, allow_unsafe_load, rotate)
    out.mkdir(parents=True, exist_ok=True)
    if src.kind == "images":
        _run_images(predictor, src, out, dets, max_frames, save_frames)
    else:
        _run_video(predictor, src, out, dets, box_mode, smooth, max_frames, save_frames, show_window)


def _load_predictor(model: str, device: str, flip_test: bool, batch_size: int, score_thr: float, nms_thr: float,
                    detector: str, allow_unsafe: bool, rotate: bool = True):
    import torch

    from posetune.cli.console import err
    from posetune.inference.predictor import Predictor

    t0 = time.perf_counter()
    with err.status(f"loading {model} ..."):
        predictor = Predictor.from_checkpoint(model, device=device, flip_test=flip_test, batch_size=batch_size,
                                              score_thr=score_thr, detector=detector, allow_unsafe=allow_unsafe,
                                              nms_thr=nms_thr, rotate=rotate)
    det = type(predictor.detector).__name__ if predictor.detector is not None else "none"
    err.print(f"model {predictor.name}: {predictor.spec.num_keypoints} keypoints, input "
              f"{predictor.input_size[0]}x{predictor.input_size[1]}, detector {det}, device {predictor.device} "
              f"({torch.get_num_threads()} CPU threads), loaded in {time.perf_counter() - t0:.1f} s")
    return predictor


# ============================================================================ images
def _vis_names(paths: list[Path], root: Path) -> list[str]:
    """File names under vis/: the image's name (jpg/png kept, others as png); clashes get the
    relative folder in the name."""
    def name_of(p: Path, full: bool) -> str:
        ext = p.suffix.lower() if p.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
        rel = p.relative_to(root) if full and p.is_relative_to(root) else Path(p.name)
        return "__".join(rel.with_suffix("").parts) + ext

    names = [name_of(p, False) for p in paths]
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return [name_of(p, True) if seen[n] > 1 else n for p, n in zip(paths, names)]


def _run_images(predictor, src: Source, out: Path, dets, max_frames: Optional[int], save_frames: bool) -> None:
    import numpy as np

    from posetune.cli.console import err
    from posetune.data.images import load_image, save_image
    from posetune.errors import DataError
    from posetune.inference.predictor import FrameProgress
    from posetune.io_utils import write_json_atomic

    paths = list(src.images or [])
    if max_frames is not None:
        paths = paths[:max_frames]
    root = src.root or Path(".")
    rel_names = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths]
    # image ids: the detection file's id when it names the image, else the position in the list
    matched = [dets.image_id_for(file_name=p) for p in paths] if dets is not None else [None] * len(paths)
    if dets is not None and not any(m is not None for m in matched):
        raise InferenceError(f"none of the {len(paths)} images is in the detection file (by file name or image id)",
                             where=dets.source, hint="check that --boxes belongs to these images; COCO ids match "
                                                     "file names ending in the id (000000000785.jpg = 785)")
    used = {m for m in matched if m is not None}
    ids: list[Any] = []
    for i, m in enumerate(matched):
        if m is None:
            cand = i + 1
            while cand in used:
                cand += len(paths)
            used.add(cand)
            m = cand
        ids.append(m)
    vis_names = _vis_names(paths, root)
    records: list[dict[str, Any]] = []
    images_meta: list[dict[str, Any]] = []
    failures: list[tuple[Path, str]] = []
    unmatched = 0
    t0 = time.perf_counter()
    try:
        with FrameProgress(len(paths), "images", unit="images") as bar:
            for start in range(0, len(paths), predictor.batch_size):
                chunk = range(start, min(start + predictor.batch_size, len(paths)))
                arrays, idx = [], []
                for i in chunk:
                    try:
                        arrays.append(load_image(paths[i]))
                        idx.append(i)
                    except DataError as e:
                        failures.append((paths[i], e.what))
                if arrays:
                    if dets is not None:
                        box_lists, cats = [], []
                        for i in idx:
                            found = dets.lookup(file_name=paths[i])
                            unmatched += found is None
                            box_lists.append(np.zeros((0, 5)) if found is None else found[1])
                            cats.append(None if found is None else found[2])
                    else:
                        box_lists, cats = predictor.default_boxes(arrays), None
                    results = predictor.predict_boxes(arrays, box_lists, cats)
                    for i, img, preds in zip(idx, arrays, results):
                        images_meta.append({"id": ids[i], "file_name": rel_names[i], "width": int(img.shape[1]),
                                            "height": int(img.shape[0])})
                        records.extend(p.to_coco(ids[i], file_name=rel_names[i]) for p in preds)
                        if save_frames:
                            save_image(out / "vis" / vis_names[i], predictor.draw(img, preds))
                bar.advance(len(chunk))
    finally:
        write_json_atomic(out / "predictions.json", records)
        write_json_atomic(out / "images.json", images_meta)
    dt = time.perf_counter() - t0
    outputs = ["predictions.json", "images.json"] + (["vis/"] if save_frames else [])
    _summary("images", [("source", str(src.root if len(paths) > 1 else paths[0])),
                        ("images", f"{len(images_meta)} of {len(paths)}"), ("predictions", str(len(records))),
                        ("speed", f"{len(images_meta) / dt:.1f} images/s" if dt > 0 else "–"),
                        ("outputs", ", ".join(outputs))], out)
    if unmatched:
        err.print(f"[yellow]note:[/] {unmatched} image(s) have no boxes in {dets.source} (no predictions for them)")
    if failures:
        first, what = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise InferenceError(f"{len(failures)} of {len(paths)} images could not be read: {first.name}: {what}{more}",
                             where=first, hint=f"the predictions for the {len(images_meta)} readable images are in "
                                               f"{out}; replace or remove the unreadable file(s)")


# ============================================================================ video and camera
def _open(src: Source):
    if src.kind == "video":
        from posetune.inference.video import VideoReader

        return VideoReader(src.video)
    import cv2

    from posetune.inference.video import open_camera

    level = cv2.getLogLevel() if hasattr(cv2, "getLogLevel") else None
    if hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)  # errors only: a missing camera is reported on one line below
    try:
        return open_camera(src.camera)  # type: ignore[arg-type]
    finally:
        if level is not None:
            cv2.setLogLevel(level)


class _Window:
    """The live view: frames with an FPS counter in an OpenCV window; q / Esc asks to stop."""

    def __init__(self, title: str):
        import cv2

        self.cv2 = cv2
        self.title = title
        self.times: list[float] = []
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, rgb) -> bool:
        cv2 = self.cv2
        now = time.perf_counter()
        self.times = [t for t in self.times if now - t < 2.0] + [now]
        fps = (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cv2.putText(bgr, f"{fps:.1f} FPS", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(bgr, f"{fps:.1f} FPS", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.imshow(self.title, bgr)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        try:
            self.cv2.destroyWindow(self.title)
        except Exception:  # noqa: BLE001 - the window may already be gone
            pass


class OverlayWriter:
    """The overlay video of ``posetune predict``: draws the predictions on each frame and encodes it
    (H.264 mp4, :class:`~posetune.inference.video.VideoWriter`) in a background thread, so drawing
    and encoding overlap the network. ``draw(image, predictions)`` draws; None means the images
    arrive drawn. The file is created with the first frame's size; :meth:`close` finishes it (the
    frames written so far are kept) and re-raises an error of the thread."""

    def __init__(self, path: Path, fps: Any, draw: Any = None, queue_size: int = 8):
        import queue
        import threading

        self.path = Path(path)
        self.fps = fps
        self.draw = draw
        self.frames = 0
        self._writer = None
        self._error: BaseException | None = None
        self._queue: Any = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from posetune.inference.video import VideoWriter

        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so that write() never blocks
            image, preds = item
            try:
                drawn = self.draw(image, preds) if self.draw is not None else image
                if self._writer is None:
                    self._writer = VideoWriter(self.path, self.fps, (drawn.shape[1], drawn.shape[0]))
                self._writer.write(drawn)
                self.frames += 1
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = e

    def write(self, image: Any, predictions: Any = None) -> None:
        """Queue one RGB frame (and its predictions when the writer draws)."""
        if self._error is not None:
            raise self._error
        self._queue.put((image, predictions))

    def close(self) -> int:
        """Wait for the queued frames, finish the file; the number of frames written."""
        self._queue.put(None)
        self._thread.join()
        if self._writer is not None:
            self._writer.close()
        if self._error is not None:
            raise self._error
        return self.frames


def _apply_table(frames: list[tuple[int, float, list]], table) -> None:
    """Put the (smoothed) keypoints of ``table`` into the per-frame predictions."""
    import numpy as np

    row = {int(f): r for r, f in enumerate(table.frames)}
    col = {int(t): j for j, t in enumerate(table.track_ids)}
    for index, _, preds in frames:
        r = row.get(int(index))
        for p in preds:
            j = col.get(int(p.track_id or 0))
            if r is None or j is None:
                continue
            xy = table.xy[r, j]
            p.keypoints = np.where(np.isfinite(xy), xy, p.keypoints)


def _run_video(predictor, src: Source, out: Path, dets, box_mode: str, smooth: str, max_frames: Optional[int],
               save_frames: bool, show_window: bool) -> None:
    from posetune.analysis.tracks import TrackTableBuilder, write_track_csv
    from posetune.inference.predictor import FrameProgress, smooth_table
    from posetune.io_utils import write_json_atomic

    reader = _open(src)
    fps = reader.fps
    is_camera = src.kind == "camera"
    video_path = out / f"{src.label}_pose.mp4"
    smoothing = smooth != "none"
    draw_live = show_window  # the overlay writer draws in its own thread otherwise
    total = getattr(reader, "frame_count", 0) or None
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    builder = TrackTableBuilder(predictor.spec, fps=float(fps), source=src.video)
    frames: list[tuple[int, float, list]] = []
    writer = OverlayWriter(video_path, fps, None if show_window else predictor.draw) \
        if save_frames and not smoothing else None
    window = _Window(f"posetune: {src.label}") if show_window else None
    fault: PosetuneError | None = None
    interrupted = False
    t0 = time.perf_counter()
    table = None
    try:
        with FrameProgress(total, src.label, unit="frames") as bar:
            for fr in predictor.iter_video(reader, boxes=dets if dets is not None else box_mode,
                                           max_frames=max_frames, draw=draw_live, realtime=is_camera):
                builder.add_frame(fr.index, fr.time)
                for p in fr.predictions:
                    builder.add(fr.index, int(p.track_id or 0), p.as_array(), time=fr.time)
                frames.append((fr.index, fr.time, fr.predictions))
                if writer is not None:
                    writer.write(fr.drawn if show_window else fr.image, fr.predictions)
                bar.advance()
                if window is not None and not window.show(fr.drawn):
                    break
    except InferenceError as e:
        fault = e
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if window is not None:
            window.close()
        reader.close()
        table = smooth_table(builder.build(), smooth, predictor.score_thr)
        if smoothing:
            _apply_table(frames, table)
        records = [p.to_coco(index, frame=index, time=round(float(t), 6)) for index, t, preds in frames for p in preds]
        write_json_atomic(out / "predictions.json", records)
        write_track_csv(table, out / "tracks.csv")
        if writer is not None:
            writer.close()  # keeps the frames written before a fault
            if not writer.frames:
                video_path.unlink(missing_ok=True)
    dt = time.perf_counter() - t0
    if smoothing and save_frames and frames:
        if is_camera:
            from posetune.cli.console import err

            err.print("[yellow]note:[/] the overlay video of a camera is not written with --smooth "
                      "(the frames are not kept); tracks.csv and predictions.json are smoothed")
        else:
            _write_overlay(predictor, src.video, video_path, fps, frames)
    outputs = ["predictions.json", "tracks.csv"] + ([video_path.name] if video_path.exists() else [])
    _summary(src.kind, [("source", str(src.video or src.camera)), ("frames", str(len(frames))),
                        ("fps (source)", f"{float(fps):.2f}"), ("tracks", str(table.num_tracks if table else 0)),
                        ("predictions", str(sum(len(p) for _, _, p in frames))),
                        ("speed", f"{len(frames) / dt:.1f} frames/s" if dt > 0 else "–"),
                        ("outputs", ", ".join(outputs))], out)
    if interrupted:
        raise KeyboardInterrupt
    if fault is not None:
        kept = f"the outputs for the {len(frames)} frame(s) before it are in {out}"
        raise type(fault)(fault.what, where=fault.where, hint=kept + (f"; {fault.hint}" if fault.hint else ""))


def _write_overlay(predictor, video: Path, path: Path, fps, frames: list[tuple[int, float, list]]) -> None:
    """Second pass for smoothed tracks: decode the frames again and draw the smoothed keypoints."""
    from posetune.inference.video import VideoReader

    by_index = {index: preds for index, _, preds in frames}
    writer = OverlayWriter(path, fps, predictor.draw)
    try:
        with VideoReader(video, on_error="stop") as reader:
            for fr in reader.frames(stop=max(by_index) + 1):
                writer.write(fr.image, by_index.get(fr.index, []))
    finally:
        writer.close()


def _summary(kind: str, rows: list[tuple[str, str]], out: Path) -> None:
    from rich.table import Table

    from posetune.cli.console import out as console

    t = Table(title=f"posetune predict ({kind})", title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    for k, v in rows:
        t.add_row(k, v)
    t.add_row("folder", str(out))
    console.print(t)
