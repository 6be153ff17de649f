"""Video reading (real files, corrupt/truncated files), camera errors and H.264 mp4 writing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from posetune.errors import InferenceError
from posetune.inference.video import (
    VideoReader,
    VideoWriter,
    as_fps,
    dot_position,
    make_test_video,
    open_camera,
    pattern_frame,
)


@pytest.fixture(scope="module")
def mm_video(shared_data: Path) -> Path:
    return shared_data / "mmaction2_video" / "tests" / "data"


def test_real_mp4_and_avi_metadata_and_frames(mm_video: Path):
    with VideoReader(mm_video / "test.mp4") as r:
        assert (r.width, r.height, r.fps, r.frame_count) == (340, 256, Fraction(30), 300)
        assert not r.frame_count_is_estimate
        frames = list(r)
    assert len(frames) == 300 and r.error is None
    assert [f.index for f in frames[:3]] == [0, 1, 2]
    assert frames[0].image.shape == (256, 340, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].time == 0.0 and frames[-1].time == pytest.approx(299 / 30, abs=1e-6)

    with VideoReader(mm_video / "test.avi") as r:
        assert (r.width, r.height, r.fps, r.frame_count) == (320, 240, Fraction(25), 164)
        n = sum(1 for _ in r)
    assert n == 164


def test_large_file_reads_only_the_first_frames(shared_data: Path):
    path = shared_data / "dlc_openfield" / "openfield-Pranav-2018-10-30" / "videos" / "m3v1mp4.mp4"
    with VideoReader(path) as r:
        assert (r.width, r.height, r.frame_count) == (640, 480, 2330)
        assert float(r.fps) == pytest.approx(30.0, abs=0.01)
        got = [(f.index, f.image.shape) for f in r.frames(start=1, stop=7, step=2)]
        assert got == [(1, (480, 640, 3)), (3, (480, 640, 3)), (5, (480, 640, 3))]
        picked = r.read_frames([4, 0])
    assert sorted(picked) == [0, 4] and not np.array_equal(picked[0], picked[4])


def test_unreadable_files_are_one_line_inference_errors(tmp_path: Path, mm_video: Path):
    with pytest.raises(InferenceError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(InferenceError) as e:
        VideoReader(text)
    assert str(text) in str(e.value) and "\n" not in str(e.value)
    # an mp4 with its index (moov atom, at the end of test.mp4) cut off cannot be opened at all
    data = (mm_video / "test.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InferenceError, match="cannot open video"):
        VideoReader(cut)


def _faststart_copy(src: Path, dst: Path) -> None:
    """Stream-copy ``src`` into an mp4 with its index first (what a camera/streaming app writes)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        for pkt in inp.demux(s):
            if pkt.dts is not None:
                pkt.stream = o
                out.mux(pkt)


def test_truncated_mp4_yields_frames_then_error(tmp_path: Path, mm_video: Path):
    full = tmp_path / "faststart.mp4"
    _faststart_copy(mm_video / "test.mp4", full)
    data = full.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])
    reader = VideoReader(cut)
    assert reader.frame_count == 300  # the header still says so
    got = []
    with pytest.raises(InferenceError) as e:
        for fr in reader:
            got.append(fr.index)
    n = len(got)
    assert 50 < n < 300 and got == list(range(n))
    assert str(cut) in str(e.value) and f"frame {n}" in str(e.value)
    assert e.value.frame_index == n and reader.frames_read == n and reader.error is e.value

    # on_error='stop': same frames, no exception, the error is kept
    quiet = VideoReader(cut, on_error="stop")
    assert sum(1 for _ in quiet) == n and quiet.error is not None and quiet.error.frame_index == n


def test_truncated_avi_is_reported_after_its_frames(tmp_path: Path, mm_video: Path):
    data = (mm_video / "test.avi").read_bytes()
    cut = tmp_path / "truncated.avi"
    cut.write_bytes(data[: len(data) // 2])
    reader = VideoReader(cut, on_error="stop")
    n = sum(1 for _ in reader)
    assert 20 < n < 164
    assert reader.error is not None and "164" in str(reader.error) and reader.error.frame_index == n


def _top_level_atoms(data: bytes) -> list[str]:
    names, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        names.append(data[i + 4:i + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[i + 8:i + 16], "big")
        if size < 8:
            break
        i += size
    return names


def test_writer_round_trip_fps_count_pixels(tmp_path: Path):
    fps = Fraction(30000, 1001)
    path = make_test_video(tmp_path / "out" / "clip.mp4", 40, fps=fps, size=(160, 120))
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # no temporary file left
    atoms = _top_level_atoms(path.read_bytes())
    assert atoms.index("moov") < atoms.index("mdat")  # +faststart: the index comes first
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert not c.streams.audio
    with VideoReader(path) as r:
        assert r.fps == fps and r.frame_count == 40 and (r.width, r.height) == (160, 120)
        frames = list(r)
    assert len(frames) == 40
    assert frames[-1].time == pytest.approx(39 * 1001 / 30000, abs=1e-4)
    for i in (0, 17, 39):
        diff = np.abs(frames[i].image.astype(int) - pattern_frame(i, (160, 120)).astype(int))
        assert diff.mean() < 4.0
    # the red dot is where it was drawn (pixels, not just statistics)
    x, y = dot_position(17, 0, (160, 120))
    r_, g, b = frames[17].image[int(round(y)), int(round(x))].astype(int)
    assert r_ > 150 and g < 100 and b < 100


def _phone_video(path: Path, stored: list[np.ndarray], rotation: int) -> Path:
    """Landscape frames plus a display-matrix rotation, the way phones store portrait video."""
    h, w = stored[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "12"}
        s.set_display_rotation(rotation)
        for img in stored:
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_phone_video_is_turned_upright(tmp_path: Path, rotation: int):
    upright = [pattern_frame(i, (96, 160)) for i in range(6)]  # portrait 96x160, as the phone showed it
    turns = round(rotation / 90) % 4
    stored = [np.ascontiguousarray(np.rot90(img, -turns)) for img in upright]  # what the phone wrote
    path = _phone_video(tmp_path / "phone.mp4", stored, rotation)
    with VideoReader(path) as r:
        assert r.rotation == rotation
        assert (r.width, r.height) == (96, 160)
        frames = list(r)
    assert len(frames) == 6
    for fr, want in zip(frames, upright):
        assert fr.image.shape == (160, 96, 3)
        assert np.abs(fr.image.astype(int) - want.astype(int)).mean() < 3.0
    # the stored orientation stays available
    with VideoReader(path, autorotate=False) as r:
        assert (r.width, r.height) == (stored[0].shape[1], stored[0].shape[0])
        assert next(iter(r)).image.shape == stored[0].shape


def test_writer_pads_odd_sizes_and_is_atomic(tmp_path: Path):
    target = tmp_path / "odd.mp4"
    with VideoWriter(target, 25, (99, 51)) as w:
        for i in range(5):
            w.write(np.full((51, 99, 3), 40 * i, np.uint8))
        with pytest.raises(ValueError, match="99x51"):
            w.write(np.zeros((50, 99, 3), np.uint8))
        assert not target.exists()  # nothing under the final name until closed
    with VideoReader(target) as r:
        assert (r.width, r.height, r.frame_count, r.fps) == (100, 52, 5, 25)
        last = list(r)[-1].image
    assert abs(int(last[25, 50, 0]) - 160) < 6
    # an exception inside the with-block leaves no file and keeps an existing one intact
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with VideoWriter(target, 25, (32, 32)) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_fps_parsing():
    assert as_fps(30) == 30 and as_fps(29.97002997) == Fraction(30000, 1001) and as_fps("25/1") == 25
    with pytest.raises(InferenceError):
        as_fps(0)


def test_missing_camera_is_a_clear_error():
    with pytest.raises(InferenceError, match="cannot open camera 97"):
        open_camera(97)
