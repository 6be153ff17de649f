"""`posetune analyze ...` commands: joint angles and range of motion from predictions or a video."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Movement analysis: joint angles and range of motion (rehab).", no_args_is_help=True)


def _parse_joints(text: str) -> list[str]:
    from posetune.analysis.angles import angle_definition
    from posetune.errors import ConfigError

    names = [j.strip() for j in text.split(",") if j.strip()]
    if not names:
        raise ConfigError("--joints is empty", where="--joints", hint="e.g. --joints left_knee,right_elbow")
    out: list[str] = []
    for n in names:
        try:
            d = angle_definition(n)
        except ConfigError as e:
            raise ConfigError(e.what, where="--joints", hint=e.hint) from None
        if d.name not in out:
            out.append(d.name)
    return out


def predict_video_tracks(video: Path, model: str, device: str = "cpu"):
    """Keypoint tracks of ``video`` predicted by ``model`` (needs posetune.inference.predictor).

    Expected API: ``Predictor.from_checkpoint(name_or_path, device=...)`` and
    ``Predictor.predict_video(path) -> TrackTable``.
    """
    from posetune.analysis.tracks import TrackTable
    from posetune.errors import ModelError

    try:
        from posetune.inference.predictor import Predictor
    except ModuleNotFoundError as e:
        if e.name not in ("posetune.inference.predictor",):
            raise
        raise ModelError("video prediction is not available in this version of posetune "
                         "(posetune.inference.predictor is missing)", where=str(video),
                         hint="predict the keypoints with another tool and pass the track CSV or COCO results "
                              "json instead (with --video for keyframe images)") from None
    predictor = Predictor.from_checkpoint(model, device=device)
    table = predictor.predict_video(video)
    if not isinstance(table, TrackTable):
        raise ModelError(f"the predictor returned a {type(table).__name__}, not a TrackTable", where=str(video))
    return table


@app.command("rom")
def rom(
    input: Path = typer.Argument(..., help="Predictions (track CSV or COCO results .json) or a video (with --model)."),
    joints: str = typer.Option(..., "--joints", "-j", help="Comma-separated joints, e.g. left_knee,right_elbow."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder [default: <input>_rom]."),
    smooth: str = typer.Option("savgol", "--smooth",
                               help="Keypoint smoothing: savgol (centred, no lag), one_euro (causal) or none."),
    score_thr: float = typer.Option(0.3, "--score-thr", help="Keypoints scoring below this are ignored."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Checkpoint or model name (video input)."),
    video: Optional[Path] = typer.Option(None, "--video", help="The video of a predictions file (keyframe images)."),
    track: Optional[int] = typer.Option(None, "--track", help="Track id to analyse [default: the most complete]."),
    spec: Optional[str] = typer.Option(None, "--spec", help="Keypoint spec of the predictions (e.g. coco17)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate when the predictions carry no times."),
    max_gap: int = typer.Option(10, "--max-gap", help="Bridge gaps of up to this many frames."),
    device: str = typer.Option("cpu", "--device", help="Device for --model (cpu, cuda, mps)."),
) -> None:
    """Range of motion of joints: min/max/range, plots, keyframes and a Markdown + HTML report."""
    from rich.table import Table

    from posetune.analysis.rom import SMOOTHING_METHODS, analyze_rom, write_rom_report
    from posetune.analysis.tracks import read_tracks
    from posetune.cli.console import out as console
    from posetune.errors import ConfigError, InferenceError
    from posetune.inference.video import VideoReader, is_video_path

    names = _parse_joints(joints)
    if smooth not in SMOOTHING_METHODS:
        raise ConfigError(f"unknown smoothing '{smooth}'", where="--smooth",
                          hint=f"use one of: {', '.join(SMOOTHING_METHODS)}")
    if not 0.0 <= score_thr <= 1.0:
        raise ConfigError(f"--score-thr must be between 0 and 1, got {score_thr}", where="--score-thr")
    if max_gap < 0:
        raise ConfigError("--max-gap must be >= 0", where="--max-gap")
    if not input.exists():
        raise ConfigError("input not found", where=input, hint="give a track CSV, COCO results json or video")
    if is_video_path(input):
        if model is None:
            raise ConfigError("a video input needs --model to predict the keypoints", where=input,
                              hint="add --model CHECKPOINT_OR_NAME, or pass a predictions file")
        if video is not None and video != input:
            raise ConfigError("--video is only for predictions files", where="--video",
                              hint="the input video is used for the keyframe images")
        video = input
        table = predict_video_tracks(input, model, device)
    else:
        table = read_tracks(input, spec=spec, fps=fps)
    if video is not None:
        if not video.exists():
            raise InferenceError("video not found", where=video, hint="check the --video path")
        if not table.fps:
            with VideoReader(video) as reader:
                table.fps = float(reader.fps)
    elif fps and not table.fps:
        table.fps = fps

    analysis = analyze_rom(table, names, track=track, smooth=smooth, score_thr=score_thr, max_gap=max_gap)
    out_dir = out if out is not None else input.parent / f"{input.stem}_rom"
    written = write_rom_report(analysis, out_dir, video=video)

    t = Table(title=f"Range of motion (track {analysis.track_id}, {analysis.table.num_frames} frames)")
    for col in ("joint", "min °", "at", "max °", "at", "range °", "valid"):
        t.add_column(col, justify="left" if col in ("joint", "at") else "right")
    for r in analysis.results:
        def at(frame, tm):
            return "–" if frame is None else f"{frame}" + (f" ({tm:.2f}s)" if tm is not None else "")

        def f1(v):
            return "–" if v != v else f"{v:.1f}"

        t.add_row(r.name, f1(r.min), at(r.min_frame, r.min_time), f1(r.max), at(r.max_frame, r.max_time),
                  f1(r.range), f"{r.valid_frames}/{r.total_frames}")
    console.print(t)
    console.print(f"report: {written['report.html']} ({len(written)} files in {out_dir})")


@app.command("joints")
def joints_cmd(
    spec: str = typer.Option("coco17", "--spec", help="Keypoint spec name (coco17, mpii16, mediapipe_pose33, ...)."),
) -> None:
    """List the joint angles available for a keypoint spec, with their conventions."""
    from rich.table import Table

    from posetune.analysis.angles import ANGLES, available_angles
    from posetune.cli.console import out as console
    from posetune.data.spec import get_spec

    s = get_spec(spec)
    avail = set(available_angles(s))
    t = Table(title=f"Joint angles for {s.name}")
    t.add_column("joint")
    t.add_column("available")
    t.add_column("convention")
    for name, d in ANGLES.items():
        t.add_row(name, "yes" if name in avail else "no", d.convention)
    console.print(t)
