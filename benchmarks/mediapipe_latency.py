"""Latency of the converted BlazePose (pose_landmark_full) next to the TFLite runtime, on this CPU.

Times one 256x256 image (batch 1), median of ``--runs`` calls after ``--warmup`` calls, with the
backends called in turn inside each round so that load from other processes hits all of them
alike:

* ``TFLite runtime``       — ai_edge_litert Interpreter (default XNNPACK delegate), all 5 outputs;
* ``PyTorch eager``        — the converted :class:`TFLiteModule`, all 5 outputs (NCHW);
* ``PyTorch eager (CL)``   — the same with ``channels_last`` weights and input;
* ``PyTorch eager, lmk``   — only the landmark branch (what ``MediaPipeModel.forward`` runs);
* ``TorchScript (opt)``    — ``torch.jit.trace`` + ``torch.jit.optimize_for_inference``;
* ``ONNXRuntime``          — ``torch.onnx.export`` (TorchScript exporter) of the converted module.

Each row also reports the largest difference of its landmark output (pixels) from the TFLite
runtime on the same image. Usage::

    .venv/bin/python benchmarks/mediapipe_latency.py [--threads 1] [--runs 30] [--warmup 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from posetune.models.mediapipe.converter import convert_graph
from posetune.models.mediapipe.fetch import DEFAULT_VERSION, mediapipe_model_path
from posetune.models.mediapipe.tflite_reader import read_tflite

MODEL = "pose_landmark_full"
SIZE = 256


def _input() -> np.ndarray:
    """A real person crop (COCO image 785) when the test data is beside the repo, else noise."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmpose_coco" / "coco" / "000000000785.jpg"
    if path.exists():
        import cv2

        from posetune.data.images import load_image

        img = load_image(path)[40:400, 220:560]  # around the skier
        return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
    return np.random.default_rng(0).random((1, SIZE, SIZE, 3), dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="threads for every backend (default 1)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--version", default=DEFAULT_VERSION)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    from ai_edge_litert.interpreter import Interpreter
    import onnxruntime as ort

    path = mediapipe_model_path(MODEL, args.version)
    t0 = time.perf_counter()
    module = convert_graph(read_tflite(path)).eval()
    convert_s = time.perf_counter() - t0
    module_cl = convert_graph(read_tflite(path)).eval().to(memory_format=torch.channels_last)
    x_nhwc = _input()
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous()
    x_cl = x.contiguous(memory_format=torch.channels_last)

    interp = Interpreter(model_path=str(path), num_threads=args.threads)
    interp.allocate_tensors()
    in_index = interp.get_input_details()[0]["index"]
    lmk_index = next(d["index"] for d in interp.get_output_details() if d["name"] == "Identity")

    def tflite() -> np.ndarray:
        interp.set_tensor(in_index, x_nhwc)
        interp.invoke()
        return interp.get_tensor(lmk_index)

    with torch.inference_mode():
        scripted = torch.jit.optimize_for_inference(torch.jit.trace(module, (x,), check_trace=False))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "pose.onnx")
        with torch.no_grad():
            torch.onnx.export(module, (x,), onnx_path, input_names=["image"], output_names=module.output_names,
                              opset_version=17, dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    x_np = x.numpy()

    backends: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
        "TFLite runtime (XNNPACK)": ("all 5", tflite),
        "PyTorch eager": ("all 5", lambda: module(x)[0].numpy()),
        "PyTorch eager (channels_last)": ("all 5", lambda: module_cl(x_cl)[0].numpy()),
        "PyTorch eager, landmarks only": ("landmarks", lambda: module.run(x, outputs=["Identity"])[0].numpy()),
        "TorchScript optimize_for_inference": ("all 5", lambda: scripted(x)[0].numpy()),
        "ONNXRuntime": ("all 5", lambda: session.run(["Identity"], {"image": x_np})[0]),
    }
    times: dict[str, list[float]] = {k: [] for k in backends}
    outputs: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for name, (_, fn) in backends.items():
            for _ in range(args.warmup):
                outputs[name] = fn()
        for _ in range(args.runs):
            for name, (_, fn) in backends.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)

    ref = outputs["TFLite runtime (XNNPACK)"]
    base = statistics.median(times["TFLite runtime (XNNPACK)"])
    print(f"{MODEL} (mediapipe {args.version}), input 1x{SIZE}x{SIZE}x3, {args.threads} thread(s), "
          f"median of {args.runs} runs; conversion took {convert_s:.2f} s")
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}, load average {os.getloadavg()[0]:.1f}")
    cols = [("backend", 36, "<"), ("outputs", 9, "<"), ("ms/image", 8, ">"), ("p90 ms", 7, ">"),
            ("vs TFLite", 9, ">"), ("landmarks max diff px", 21, ">")]
    print("| " + " | ".join(f"{c:{a}{w}}" for c, w, a in cols) + " |")
    print("|" + "|".join("-" * (w + 2) for _, w, _ in cols) + "|")
    for name, (what, _) in backends.items():
        med = statistics.median(times[name]) * 1000
        p90 = float(np.percentile(times[name], 90)) * 1000
        diff = float(np.abs(outputs[name].reshape(-1) - ref.reshape(-1)).max())
        print(f"| {name:<36} | {what:<9} | {med:8.1f} | {p90:7.1f} | {med / (base * 1000):8.2f}x | {diff:21.2e} |")
    # ONNX export parity with the PyTorch module on every output
    with torch.no_grad():
        want = module(x)
    got = session.run(None, {"image": x_np})
    diffs = {n: (float(np.abs(g - w.numpy()).max()), float(w.abs().max()))
             for n, g, w in zip(module.output_names, got, want)}
    print("ONNXRuntime vs PyTorch eager, max abs diff (output range): "
          + ", ".join(f"{n} {d:.1e} ({r:.3g})" for n, (d, r) in diffs.items()))
    if any(d > 1e-4 * max(1.0, r) for d, r in diffs.values()):
        raise SystemExit("ONNX parity check failed")
    worst = max(float(np.abs(outputs[n].reshape(-1) - ref.reshape(-1)).max()) for n in backends)
    if worst > 2e-3:
        raise SystemExit(f"parity check failed: a backend differs from TFLite by {worst:.2e} px")


if __name__ == "__main__":
    main()
