"""How long `posetune metrics coco` takes next to calling pycocotools directly.

Generates a COCO keypoint ground truth of ``--images`` images × ``--people`` people (17 points,
some unlabelled, a few crowd regions) and a noisy results file in a temporary folder, then times

* ``posetune API``  — :func:`posetune.evaluation.evaluate_files` with ``metrics=('coco',)``: the
  function ``posetune metrics coco`` calls (reads both files, builds pycocotools' objects, runs
  COCOeval);
* ``pycocotools``   — ``COCO(gt)``, ``loadRes(results)``, ``COCOeval`` evaluate/accumulate/summarize;
* ``posetune CLI``  — one ``python -m posetune.cli.main metrics coco --json`` subprocess
  (includes interpreter start-up and imports).

After one warm-up call of each, runs API and pycocotools alternately ``--repeat`` times (who goes
first alternates too, so that load from other processes hits both alike), reports the median wall
and CPU time of each with the ratios and the per-round ratios, and checks that both give the
same AP. Usage::

    .venv/bin/python benchmarks/eval_speed.py [--images 1000] [--people 5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# a standing person in a unit box (COCO-17 order), x right, y down
TEMPLATE = np.array([
    [0.50, 0.08], [0.53, 0.06], [0.47, 0.06], [0.57, 0.08], [0.43, 0.08],
    [0.65, 0.22], [0.35, 0.22], [0.72, 0.40], [0.28, 0.40], [0.75, 0.56], [0.25, 0.56],
    [0.60, 0.55], [0.40, 0.55], [0.60, 0.76], [0.40, 0.76], [0.60, 0.96], [0.40, 0.96],
])


def make_files(folder: Path, n_images: int, n_people: int, seed: int = 0) -> tuple[Path, Path, int]:
    """Write gt.json and results.json; return their paths and the number of GT instances."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    ann_id = 1
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "width": 1280, "height": 960})
        for p in range(n_people):
            h = rng.uniform(60, 500)
            w = h * rng.uniform(0.35, 0.6)
            x0, y0 = rng.uniform(0, 1280 - w), rng.uniform(0, 960 - h)
            kp = TEMPLATE * [w, h] + [x0, y0] + rng.normal(0, 0.02 * h, (17, 2))
            v = np.where(rng.uniform(size=17) < 0.15, 0, 2)
            crowd = int(p == 0 and i % 50 == 0)
            if crowd:
                v[:] = 0
            gt_kp = np.column_stack([np.where(v[:, None] > 0, kp, 0), v])
            anns.append({"id": ann_id, "image_id": i, "category_id": 1, "iscrowd": crowd,
                         "keypoints": np.round(gt_kp, 2).ravel().tolist(), "num_keypoints": int((v > 0).sum()),
                         "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                         "area": round(0.55 * w * h, 2)})
            ann_id += 1
            if crowd or rng.uniform() < 0.05:
                continue  # a missed person
            noise = rng.normal(0, rng.uniform(0.005, 0.05) * h, (17, 2))
            pred = np.column_stack([kp + noise, rng.uniform(0.1, 1.0, 17)])
            results.append({"image_id": i, "category_id": 1, "keypoints": np.round(pred, 3).ravel().tolist(),
                            "score": round(float(rng.uniform(0.3, 1.0)), 4)})
        for _ in range(rng.integers(0, 2)):  # a false positive now and then
            x0, y0, s = rng.uniform(0, 1000), rng.uniform(0, 700), rng.uniform(60, 250)
            fp = np.column_stack([TEMPLATE * [s * 0.5, s] + [x0, y0], rng.uniform(0.05, 0.5, 17)])
            results.append({"image_id": i, "category_id": 1, "keypoints": np.round(fp, 3).ravel().tolist(),
                            "score": round(float(rng.uniform(0.05, 0.5)), 4)})
    categories = [{"id": 1, "name": "person", "supercategory": "person",
                   "keypoints": ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                                 "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                                 "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"],
                   "skeleton": []}]
    gt_path, res_path = folder / "gt.json", folder / "results.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    res_path.write_text(json.dumps(results))
    return gt_path, res_path, len(anns)


def run_pycocotools(gt_path: Path, res_path: Path) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(res_path))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def run_posetune(gt_path: Path, res_path: Path) -> float:
    from posetune.evaluation import evaluate_files

    return float(evaluate_files(gt_path, res_path, metrics=("coco",), per_keypoint=False)["AP"])


def timed(fn, *args) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, fn's value) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--people", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import posetune.evaluation  # noqa: F401  (imports are not part of the timing)
    import pycocotools.cocoeval  # noqa: F401
    from posetune.evaluation import read_ground_truth

    with tempfile.TemporaryDirectory() as tmp:
        gt_path, res_path, n_inst = make_files(Path(tmp), args.images, args.people)
        runs = {"ref": run_pycocotools, "api": run_posetune}
        wall: dict[str, list[float]] = {"ref": [], "api": []}
        cpu: dict[str, list[float]] = {"ref": [], "api": []}
        ap_of = {"ref": float("nan"), "api": float("nan")}
        for fn in runs.values():  # warm-up: file cache, lazy imports
            fn(gt_path, res_path)
        for i in range(args.repeat):  # alternate, and alternate who goes first, so that load drifts hit both
            for key in (("ref", "api") if i % 2 == 0 else ("api", "ref")):
                t, c, ap_of[key] = timed(runs[key], gt_path, res_path)
                wall[key].append(t)
                cpu[key].append(c)
        reading = [timed(read_ground_truth, gt_path)[0] for _ in range(args.repeat)]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "posetune.cli.main", "metrics", "coco", "--gt", str(gt_path),
                               "--pred", str(res_path), "--json"], capture_output=True, text=True)
        t_cli = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"CLI failed: {proc.stderr.strip()}")
        ap_cli = json.loads(proc.stdout)["AP"]

    med = statistics.median
    m_api, m_ref = med(wall["api"]), med(wall["ref"])
    c_api, c_ref = med(cpu["api"]), med(cpu["ref"])
    paired = [a / r for a, r in zip(wall["api"], wall["ref"])]
    ap_api, ap_ref = ap_of["api"], ap_of["ref"]
    print(f"{args.images} images, {n_inst} GT instances, {args.repeat} interleaved runs each (median)\n")
    print(f"| {'what':<40} | {'wall s':>7} | {'vs pycocotools':>14} | {'CPU s':>6} | {'vs pycocotools':>14} "
          f"| {'AP':>7} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 16}|{'-' * 8}|{'-' * 16}|{'-' * 9}|")
    print(f"| {'pycocotools (COCO, loadRes, COCOeval)':<40} | {m_ref:7.2f} | {1.0:13.2f}x | {c_ref:6.2f} | "
          f"{1.0:13.2f}x | {ap_ref:7.4f} |")
    print(f"| {'posetune API (evaluate_files, coco)':<40} | {m_api:7.2f} | {m_api / m_ref:13.2f}x | {c_api:6.2f} | "
          f"{c_api / c_ref:13.2f}x | {ap_api:7.4f} |")
    print(f"| {'posetune CLI subprocess (1 run)':<40} | {t_cli:7.2f} | {t_cli / m_ref:13.2f}x | {'':>6} | "
          f"{'':>14} | {ap_cli:7.4f} |")
    m_read = med(reading)
    print(f"| {'  of the API: reading GT labels':<40} | {m_read:7.2f} | {m_read / m_ref:13.2f}x | {'':>6} | "
          f"{'':>14} | {'':>7} |")
    print(f"\nAPI / pycocotools per round (wall): {', '.join(f'{r:.2f}' for r in paired)} "
          f"(median {med(paired):.2f}, max {max(paired):.2f})")
    print(f"goal: API <= 1.10x pycocotools -> {'met' if m_api / m_ref <= 1.10 else 'NOT met'}; "
          f"same AP: {abs(ap_api - ap_ref) < 1e-12 and abs(ap_cli - ap_ref) < 1e-9}")


if __name__ == "__main__":
    main()
