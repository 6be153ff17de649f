"""Reading and writing video: files (PyAV), cameras (OpenCV), browser-playable H.264 mp4 output.

* :class:`VideoReader` iterates a file's frames as :class:`VideoFrame` (``index``, ``time`` in
  seconds from the first frame, ``image`` RGB uint8 ``(H, W, 3)``) and exposes ``fps`` (a
  :class:`~fractions.Fraction`), ``frame_count`` (from the container; an estimate from the
  duration when the container has no count, see ``frame_count_is_estimate``), ``width`` and
  ``height``.

  **Faults.** A file that cannot be opened raises :class:`~posetune.errors.InferenceError` at
  construction. A file that breaks while decoding (corrupt or truncated) yields every frame
  decoded before the fault and then raises ``InferenceError`` naming the file and the index of
  the first frame that could not be read; the same error is kept in ``reader.error`` and
  ``reader.frames_read`` counts the good frames. A file that simply ends earlier than its header
  says (a truncated AVI) is reported the same way. With ``on_error="stop"`` iteration ends
  quietly instead of raising and the caller checks ``reader.error`` — so a predictor keeps the
  results for the frames processed before the fault either way.

  **Rotation.** Phones store portrait video as landscape frames plus a display-matrix rotation.
  The reader turns every frame upright the way players show it (``autorotate=True``, like
  FFmpeg), so ``width``/``height`` and the keypoints predicted on the frames are in the displayed
  orientation; ``rotation`` keeps the stored counter-clockwise angle (0, 90, 180 or -90).

* :func:`open_camera` opens a webcam (or a stream URL) with OpenCV; iteration yields the same
  ``VideoFrame`` objects with wall-clock times.

* :class:`VideoWriter` encodes H.264 (libx264, yuv420p, ``+faststart``) mp4 without audio, the
  format every browser plays, at an exact fractional frame rate. Odd frame sizes are padded by
  one edge-replicated pixel to even ones (yuv420p needs even sizes). The file is written to a
  temporary name beside the target and renamed on :meth:`VideoWriter.close`, so a crash never
  leaves half a video under the final name.

* :func:`make_test_video` writes a small synthetic clip (moving coloured dots) for tests/demos.
"""

from __future__ import annotations

import time as _time
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Literal, NamedTuple, Sequence

import numpy as np

from posetune.errors import InferenceError
from posetune.io_utils import atomic_path

#: Suffixes treated as video files by the CLI and the predictor.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")


class VideoFrame(NamedTuple):
    """One decoded frame: 0-based ``index``, ``time`` in seconds, ``image`` RGB uint8 (H, W, 3)."""

    index: int
    time: float
    image: np.ndarray


def is_video_path(path: str | Path) -> bool:
    """True when ``path`` has a common video-file suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def as_fps(fps: float | int | str | Fraction) -> Fraction:
    """A frame rate as an exact Fraction: 30 -> 30, 29.97 / '30000/1001' -> 30000/1001, 25.0 -> 25."""
    try:
        f = Fraction(fps) if not isinstance(fps, float) else Fraction(fps).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError):
        raise InferenceError(f"invalid frame rate {fps!r}",
                             hint="give a positive number such as 30 or 30000/1001") from None
    if f <= 0:
        raise InferenceError(f"invalid frame rate {fps!r}", hint="give a positive number such as 30 or 30000/1001")
    return f


def _av():
    import av

    return av


class VideoReader:
    """Frames of a video file, decoded with PyAV (FFmpeg).

    Iterate the reader (or call :meth:`frames`) to get :class:`VideoFrame` objects. Use it as a
    context manager, or call :meth:`close`, to release the file. See the module docstring for
    how corrupt and truncated files are reported.
    """

    def __init__(self, path: str | Path, *, on_error: Literal["raise", "stop"] = "raise", threads: bool = True,
                 autorotate: bool = True):
        self.path = Path(path)
        if on_error not in ("raise", "stop"):
            raise ValueError("on_error must be 'raise' or 'stop'")
        self.on_error = on_error
        self.threads = threads
        self.error: InferenceError | None = None
        self.frames_read = 0
        if not self.path.exists():
            raise InferenceError("video file not found", where=self.path, hint="check the path")
        if self.path.is_dir():
            raise InferenceError("is a folder, not a video file", where=self.path, hint="give a video file")
        av = _av()
        try:
            container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise InferenceError(f"cannot open video ({_short(e)})", where=self.path,
                                 hint="the file is not a video, or it is corrupt or truncated "
                                      "(an mp4 whose index was cut off cannot be read)") from None
        if not container.streams.video:
            container.close()
            raise InferenceError("file has no video stream", where=self.path, hint="give a video file")
        stream = container.streams.video[0]
        self._container = container
        self._stream = stream
        self.width = int(stream.codec_context.width or stream.width or 0)
        self.height = int(stream.codec_context.height or stream.height or 0)
        if self.width <= 0 or self.height <= 0:
            container.close()
            raise InferenceError("video stream has no frame size", where=self.path,
                                 hint="the file is corrupt or uses an unsupported codec")
        self.rotation = _display_rotation(container, stream)
        self._turns = (round(self.rotation / 90) % 4) if autorotate else 0
        if self._turns % 2:
            self.width, self.height = self.height, self.width
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps_is_guess = not rate or rate <= 0
        self.fps: Fraction = Fraction(30) if self.fps_is_guess else Fraction(rate)
        declared = int(stream.frames or 0)
        self.declared_frame_count = declared
        if declared > 0:
            self.frame_count, self.frame_count_is_estimate = declared, False
        else:
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            self.frame_count = int(round(duration * float(self.fps))) if duration else 0
            self.frame_count_is_estimate = True
        self._used = True  # the rotation probe decoded from the container: frames() reopens it

    # ------------------------------------------------------------------ properties
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def duration(self) -> float:
        """Approximate length in seconds (frame_count / fps)."""
        return self.frame_count / float(self.fps) if self.frame_count else 0.0

    def __repr__(self) -> str:
        approx = "~" if self.frame_count_is_estimate else ""
        return (f"VideoReader({str(self.path)!r}, {self.width}x{self.height}, {float(self.fps):.3f} fps, "
                f"{approx}{self.frame_count} frames)")

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ decoding
    def _reopen(self) -> None:
        av = _av()
        self.close()
        self._container = av.open(str(self.path), mode="r")
        self._stream = self._container.streams.video[0]

    def __iter__(self) -> Iterator[VideoFrame]:
        return self.frames()

    def frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[VideoFrame]:
        """Decode frames ``start, start+step, ...`` up to (not including) ``stop``.

        Frames are decoded sequentially from the beginning (exact, no seeking). Raises
        :class:`InferenceError` after the last good frame when the file is corrupt or truncated
        (or stops quietly with ``on_error='stop'``, leaving the error in ``self.error``).
        """
        if step < 1 or start < 0:
            raise ValueError("start must be >= 0 and step >= 1")
        av = _av()
        if self._used or self._container is None:
            self._reopen()
        self._used = True
        self.error = None
        self.frames_read = 0
        stream = self._stream
        if self.threads:
            stream.thread_type = "AUTO"
        first_pts: int | None = None
        index = 0
        decoder = self._container.decode(stream)
        while True:
            if stop is not None and index >= stop:
                return
            try:
                frame = next(decoder)
            except StopIteration:
                break
            except (av.FFmpegError, OSError, ValueError) as e:
                self._fail(f"cannot decode frame {index} ({_short(e)}); {index} frame(s) were read before it",
                           index)
                return
            if frame.pts is not None and first_pts is None:
                first_pts = frame.pts
            if frame.pts is not None and frame.time_base is not None:
                t = float((frame.pts - first_pts) * frame.time_base)
            else:
                t = index / float(self.fps)
            if index >= start and (index - start) % step == 0:
                image = frame.to_ndarray(format="rgb24")
                if self._turns:
                    image = np.ascontiguousarray(np.rot90(image, self._turns))
                self.frames_read += 1
                yield VideoFrame(index, t, image)
            index += 1
        if self.declared_frame_count and index < self.declared_frame_count - 1:
            self._fail(f"video ends after {index} frames but its header declares {self.declared_frame_count} "
                       f"(file truncated?); frame {index} could not be read", index)

    def _fail(self, what: str, index: int) -> None:
        self.error = InferenceError(what, where=f"{self.path}: frame {index}",
                                    hint="the frames before it are usable; re-encode or re-copy the file "
                                         "to read the rest")
        self.error.frame_index = index  # type: ignore[attr-defined]
        self.error.path = self.path  # type: ignore[attr-defined]
        if self.on_error == "raise":
            raise self.error

    def read_frames(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        """RGB images of the frames at ``indices`` (decoded sequentially; stops after the last).

        Frames beyond the end of the video are missing from the returned dict.
        """
        wanted = sorted({int(i) for i in indices if int(i) >= 0})
        out: dict[int, np.ndarray] = {}
        if not wanted:
            return out
        want = set(wanted)
        for fr in self.frames(stop=wanted[-1] + 1):
            if fr.index in want:
                out[fr.index] = fr.image
        return out


def _display_rotation(container, stream) -> int:
    """The counter-clockwise display rotation of a video stream in degrees (0 when it has none).

    It lives in the frames' display-matrix side data, so the first frame is decoded to read it;
    a file whose first frame does not decode has no usable rotation and reports 0 (the decoding
    error is raised later, by the frame loop, with its place).
    """
    av = _av()
    try:
        for frame in container.decode(stream):
            degrees = int(round(float(getattr(frame, "rotation", 0) or 0)))
            return -((180 - degrees) % 360 - 180)  # in (-180, 180]: a half turn reads 180
    except (av.FFmpegError, OSError, ValueError):
        pass
    return 0


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."


# ---------------------------------------------------------------------- cameras
class CameraReader:
    """Frames from a camera (OpenCV ``VideoCapture``) as :class:`VideoFrame` objects.

    ``time`` is wall-clock seconds since the first frame. Iteration ends when :meth:`close` is
    called; a camera that stops delivering frames raises :class:`InferenceError` (kept in
    ``self.error``) after the frames already read.
    """

    def __init__(self, capture, source: int | str):
        import cv2

        self._cap = capture
        self.source = source
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps_is_guess = not (fps and np.isfinite(fps) and fps > 0)
        self.fps: Fraction = Fraction(30) if self.fps_is_guess else as_fps(float(fps))
        self.error: InferenceError | None = None
        self.frames_read = 0

    def __iter__(self) -> Iterator[VideoFrame]:
        import cv2

        t0 = None
        index = 0
        while self._cap is not None:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                if self._cap is None:  # closed while waiting
                    return
                self.error = InferenceError(f"camera {self.source} stopped delivering frames after {index} frame(s)",
                                            where=f"camera {self.source}: frame {index}",
                                            hint="check the cable / that no other program uses the camera")
                self.error.frame_index = index  # type: ignore[attr-defined]
                raise self.error
            now = _time.monotonic()
            t0 = now if t0 is None else t0
            self.frames_read += 1
            yield VideoFrame(index, now - t0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def close(self) -> None:
        if self._cap is not None:
            cap, self._cap = self._cap, None
            cap.release()

    def __enter__(self) -> "CameraReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_camera(index: int | str = 0, *, width: int | None = None, height: int | None = None) -> CameraReader:
    """Open camera ``index`` (or a stream URL) with OpenCV; InferenceError when it cannot be opened."""
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        cap.release()
        raise InferenceError(f"cannot open camera {index}", where=f"camera {index}",
                             hint="check that the camera is connected and not in use; try another index "
                                  "(0, 1, ...) or pass a video file instead")
    if width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
    if height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
    return CameraReader(cap, index)


# ---------------------------------------------------------------------- writing
class VideoWriter:
    """Write RGB frames to a browser-playable H.264 mp4 (libx264, yuv420p, +faststart, no audio).

    ``fps`` is kept exactly (pass the reader's ``fps`` Fraction to keep the source rate);
    ``size`` is ``(width, height)`` of the frames you will write. Frames go to a temporary file
    beside ``path`` that is renamed onto ``path`` by :meth:`close` (or on leaving the ``with``
    block without an exception; with an exception the temporary file is deleted).
    """

    def __init__(self, path: str | Path, fps: float | int | str | Fraction, size: tuple[int, int], *,
                 crf: int = 20, preset: str = "veryfast"):
        av = _av()
        self.path = Path(path)
        self.fps = as_fps(fps)
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise InferenceError(f"invalid video size {size!r}", where=self.path, hint="give (width, height) > 0")
        self.size = (w, h)
        self.encoded_size = (w + (w % 2), h + (h % 2))
        self.frames_written = 0
        self._atomic = atomic_path(self.path, suffix=".mp4")
        tmp = self._atomic.__enter__()
        try:
            fmt = "mov" if self.path.suffix.lower() == ".mov" else "mp4"
            self._container = av.open(str(tmp), mode="w", format=fmt, options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = self.encoded_size
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = Fraction(1) / self.fps
            stream.options = {"crf": str(int(crf)), "preset": preset}
            self._stream = stream
        except Exception as e:  # could not set up the encoder: clean up the temporary file
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise InferenceError(f"cannot create video writer ({_short(e)})", where=self.path,
                                 hint="check the folder is writable") from None
        self._closed = False

    def write(self, image_rgb: np.ndarray) -> None:
        """Append one RGB uint8 ``(H, W, 3)`` (or grey ``(H, W)``) frame of the writer's size."""
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        av = _av()
        img = np.asarray(image_rgb)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"frames must be RGB uint8 (H, W, 3), got {img.dtype} {img.shape}")
        w, h = self.size
        if img.shape[:2] != (h, w):
            raise ValueError(f"frame is {img.shape[1]}x{img.shape[0]} but the writer was opened for {w}x{h}")
        ew, eh = self.encoded_size
        if (ew, eh) != (w, h):
            img = np.pad(img, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = Fraction(1) / self.fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it onto ``path``."""
        if self._closed:
            return self.path
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Discard the video: close the encoder and delete the temporary file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except Exception:
            pass
        err = InferenceError("video writing aborted", where=self.path)
        self._atomic.__exit__(InferenceError, err, None)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ---------------------------------------------------------------------- test clips
def pattern_frame(index: int, size: tuple[int, int] = (160, 120), num_dots: int = 3) -> np.ndarray:
    """Frame ``index`` of a deterministic synthetic clip: coloured dots moving on a grey gradient."""
    import cv2

    w, h = size
    x = np.linspace(40, 90, w, dtype=np.float32)
    img = np.repeat(np.repeat(x[None, :, None], h, axis=0), 3, axis=2).astype(np.uint8)
    colors = ((230, 40, 40), (40, 200, 40), (40, 80, 230), (230, 200, 30), (200, 40, 200))
    for d in range(num_dots):
        cx, cy = dot_position(index, d, size)
        cv2.circle(img, (int(round(cx)), int(round(cy))), max(3, min(w, h) // 12), colors[d % len(colors)], -1,
                   cv2.LINE_AA)
    return img


def dot_position(index: int, dot: int, size: tuple[int, int] = (160, 120)) -> tuple[float, float]:
    """Centre (x, y) of dot ``dot`` in frame ``index`` of :func:`pattern_frame`."""
    w, h = size
    phase = 2 * np.pi * (index / 40.0 + dot / 3.0)
    return (w / 2 + 0.35 * w * np.cos(phase), h / 2 + 0.3 * h * np.sin(phase * (1 + dot % 2)))


def make_test_video(path: str | Path, frames: int | Sequence[np.ndarray] = 30,
                    fps: float | int | str | Fraction = 30, size: tuple[int, int] = (160, 120)) -> Path:
    """Write a small H.264 mp4: ``frames`` RGB images, or that many :func:`pattern_frame` frames."""
    if isinstance(frames, (int, np.integer)):
        images: Iterable[np.ndarray] = (pattern_frame(i, size) for i in range(int(frames)))
    else:
        images = list(frames)
        if not images:
            raise ValueError("make_test_video needs at least one frame")
        size = (images[0].shape[1], images[0].shape[0])
    with VideoWriter(path, fps, size) as writer:
        for img in images:
            writer.write(img)
    return Path(path)
