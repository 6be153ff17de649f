"""Frames per second of ``posetune predict`` on a video against the model's bare forward rate.

For each model — a ResNet-18 + deconv head (SimpleBaseline) at 256x192 (random weights: speed
does not depend on them) and MediaPipe's BlazePose full (``mediapipe-pose``, with its person
detector) — and each video box mode, three rates are measured in one run:

* ``bare``: ``model.predict`` (normalisation, network, decoding) on pre-made uint8 tensors of the
  batch size the pipeline uses, on the chosen device — the ceiling;
* ``predict_video``: :meth:`Predictor.predict_video` on the video (decoding, boxes, crops, batching,
  network, mapping back, tracking, the TrackTable), no drawing;
* ``+ draw & mp4``: the ``posetune predict`` path: :meth:`Predictor.iter_video` with every frame
  drawn and encoded to an H.264 mp4 by the CLI's
  :class:`~posetune.cli.predict_cmd.OverlayWriter` (a background thread).

``ratio`` = pipeline rate / bare rate (goal >= 0.8); ``crops/frame`` and ``detector/frame`` count
the network's and the detector's work per frame (track mode re-crops a frame when the subject is
lost), and ``ratio per crop`` = ratio x crops/frame is the pipeline's efficiency per network input.
Box modes: ``frame`` (the whole frame every
frame, ``--batch-size`` frames per forward) and ``track`` (each frame cropped around the previous
frame's keypoints: one frame per forward, so its bare rate is measured at batch 1; for
``mediapipe-pose`` the detector runs on the first frame, whenever the subject is lost and every
30 frames, and that cost is part of the pipeline rate). Every rate is the best of ``--rounds``
rounds, the three measurements interleaved within a round: on a machine shared with other jobs,
interference only ever slows a run down, so the fastest run is the least disturbed one.

Videos: the MMAction2 ``test.mp4`` (340x256, 30 fps, a pair of legs by a pool) from
``../shared/data`` when present, else a generated 340x256 clip; for ``mediapipe-pose`` also
``skier.mp4``, a 480x360 clip panning and zooming over the COCO skier image (a whole person to
track). Usage::

    .venv/bin/python benchmarks/predict_fps.py [--frames 48] [--device cpu] [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from posetune.cli.predict_cmd import OverlayWriter
from posetune.config.schema import ModelConfig
from posetune.data.presets import COCO17
from posetune.inference.predictor import Predictor
from posetune.inference.video import make_test_video
from posetune.models.build import build_model


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _video(tmp: Path, frames: int) -> Path:
    shared = SHARED / "mmaction2_video" / "tests" / "data"
    if (shared / "test.mp4").exists():
        return shared / "test.mp4"
    return make_test_video(tmp / "bench.mp4", max(frames, 30), fps=30, size=(340, 256))


def _person_clip(tmp: Path, frames: int) -> Path | None:
    """A 480x360 clip panning and zooming over the COCO skier (000000000785.jpg), when present: a
    whole person to follow (test.mp4 only shows a pair of legs, which BlazePose keeps losing)."""
    import cv2

    from posetune.data.images import load_image

    src = SHARED / "mmpose_coco" / "coco" / "000000000785.jpg"
    if not src.exists():
        return None
    img = load_image(src)
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        m = np.array([[0.7 + 0.3 * t, 0, -150 + 120 * t], [0, 0.7 + 0.3 * t, -20 + 10 * t]])
        out.append(cv2.warpAffine(img, m, (480, 360), borderMode=cv2.BORDER_REFLECT))
    return make_test_video(tmp / "skier.mp4", out, fps=30)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_rate(model, device: torch.device, batch: int, frames: int) -> float:
    """Frames/s of model.predict on pre-made uint8 batches (as many frames as the pipeline sees)."""
    w, h = model.codec.input_size
    x = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, device=device)
    steps = max(1, frames // batch)
    with torch.inference_mode():
        model.predict(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            kp, sc = model.predict(x)
            kp.cpu(), sc.cpu()
        _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def pipeline_rate(pred: Predictor, video: Path, mode: str, frames: int) -> tuple[float, float, float]:
    """(frames/s, crops per frame, detector runs per frame) of predict_video."""
    crops, dets = pred.stats["crops"], pred.stats["detector_images"]
    t0 = time.perf_counter()
    table = pred.predict_video(video, boxes=mode, max_frames=frames)
    _sync(pred.device)
    n = table.num_frames
    return (n / (time.perf_counter() - t0), (pred.stats["crops"] - crops) / n,
            (pred.stats["detector_images"] - dets) / n)


def draw_write_rate(pred: Predictor, video: Path, mode: str, frames: int, out: Path) -> float:
    """Frames/s of the ``posetune predict`` video path: predictions, the overlay drawn and encoded
    by :class:`~posetune.cli.predict_cmd.OverlayWriter` (background thread), file finished."""
    t0 = time.perf_counter()
    writer = OverlayWriter(out, 30, pred.draw)
    n = 0
    for fr in pred.iter_video(video, boxes=mode, max_frames=frames):
        writer.write(fr.image, fr.predictions)
        n += 1
    writer.close()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48, help="video frames per measurement")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="resnet18,mediapipe-pose")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    models = {}
    for name in args.models.split(","):
        if name == "resnet18":
            cfg = ModelConfig.model_validate({"backbone": {"name": "resnet18"}, "head": {"type": "deconv"},
                                              "codec": {"type": "msra", "input_size": [192, 256]}})
            models["resnet18 deconv 256x192"] = Predictor(build_model(cfg, COCO17), device=device,
                                                          batch_size=args.batch_size, name="resnet18")
        else:
            models[f"{name} 256x256"] = Predictor.from_checkpoint(name, device=device, batch_size=args.batch_size)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = _video(Path(tmp), args.frames)
        person = _person_clip(Path(tmp), args.frames)
        for label, pred in models.items():
            runs = [(video, "frame"), (video, "track")]
            if label.startswith("mediapipe-pose") and person is not None:
                runs.append((person, "track"))
            for clip, mode in runs:
                batch = args.batch_size if mode == "frame" else 1
                pred.redetect_every = 30
                # warm-up (allocations, oneDNN kernels, the detector's first call)
                pipeline_rate(pred, clip, mode, min(args.frames, 2 * batch))
                bare_rate(pred.model, device, batch, batch)
                b, p, d = [], [], []
                for _ in range(args.rounds):
                    b.append(bare_rate(pred.model, device, batch, args.frames))
                    rate, crops, dets = pipeline_rate(pred, clip, mode, args.frames)
                    p.append(rate)
                    d.append(draw_write_rate(pred, clip, mode, args.frames, Path(tmp) / "out.mp4"))
                bm, pm, dm = max(b), max(p), max(d)
                rows.append((label, clip.name, mode, batch, bm, pm, pm / bm, dm, dm / bm, crops, dets))
                print(f"  {label} / {clip.name} / {mode}: bare {bm:.1f}, predict_video {pm:.1f}, "
                      f"+draw&mp4 {dm:.1f} frames/s; {crops:.2f} crops and {dets:.2f} detector runs per frame",
                      flush=True)

    print()
    print(f"{args.frames} frames per run; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f" ({platform.processor() or platform.machine()}, {args.threads} torch thread(s), "
             f"{os.cpu_count()} CPUs)")
          + f"; torch {torch.__version__}; best of {args.rounds} rounds")
    head = ("model", "video", "boxes", "batch", "bare fps", "predict_video fps", "ratio", "+draw&mp4 fps", "ratio",
            "crops/frame", "detector/frame", "ratio per crop")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for label, clip_name, mode, batch, bm, pm, pr, dm, dr, crops, dets in rows:
        print(f"| {label} | {clip_name} | {mode} | {batch} | {bm:.1f} | {pm:.1f} | {pr:.2f} | {dm:.1f} | {dr:.2f} | "
              f"{crops:.2f} | {dets:.2f} | {pr * crops:.2f} |")


if __name__ == "__main__":
    main()
