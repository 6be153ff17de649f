"""``posetune data ...``: check, convert, split, show and synthesise keypoint datasets.

Thin: each command parses its options, calls the API (posetune.data.*, posetune.inference.
visualize) and prints. Bad input raises PosetuneError, which the root CLI prints on one line
(exit status 2).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from posetune.cli.console import err, out
from posetune.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from posetune.data.check import CheckReport
    from posetune.data.records import ImageRecord, Instance, KeypointDataset, Problem
    from posetune.data.spec import KeypointSpec

app = typer.Typer(help="Check, convert, split, show and synthesise keypoint datasets.", no_args_is_help=True)

FROM = typer.Option("auto", "--from", help="Label format of the input (coco, labelme, cvat, dlc, yolo, simple); "
                                           "default: detect.")
IMAGE_ROOT = typer.Option(None, "--image-root", help="Folder the image paths in the labels are relative to.")
SPEC = typer.Option(None, "--spec", help="Keypoint spec (preset name, e.g. coco17); default: from the labels.")


def _read(path: Path, from_: str, image_root: Optional[Path], spec: Optional[str]) -> "KeypointDataset":
    from posetune.data.formats import read_dataset

    return read_dataset(path, format=from_ or "auto", image_root=image_root, spec=spec)


def _print_problems(problems: "list[Problem]", max_per_code: int = 20) -> None:
    """Problems grouped by code (errors first), at most ``max_per_code`` places each."""
    from collections import defaultdict

    groups: dict[str, list] = defaultdict(list)
    for p in problems:
        groups[p.code].append(p)
    for code in sorted(groups, key=lambda c: (groups[c][0].severity != "error", -len(groups[c]), c)):
        items = groups[code]
        sev = items[0].severity
        style = "bold red" if sev == "error" else "yellow"
        out.print(f"[{style}]{sev}[/] [bold]{escape(code)}[/] — {len(items)} problem{'s' if len(items) > 1 else ''}")
        for p in items[:max_per_code]:
            out.print(f"  {escape(p.where)}: {escape(p.message)}")
        if len(items) > max_per_code:
            out.print(f"  [dim]... and {len(items) - max_per_code} more[/]")
        hints = {p.hint for p in items if p.hint}
        if len(hints) == 1:
            out.print(f"  [dim]hint: {escape(hints.pop())}[/]")


def _print_check_report(report: "CheckReport", path: Path, max_per_code: int) -> None:
    from rich.table import Table

    table = Table(title=f"{path} ({report.format or '?'}, spec {report.spec_name})", title_justify="left")
    table.add_column("images", justify="right")
    table.add_column("instances", justify="right")
    table.add_column("images without instances", justify="right")
    table.add_row(str(report.num_images), str(report.num_instances), str(report.images_without_instances))
    out.print(table)
    names = report.keypoint_names
    kt = Table(title="labelled / visible keypoints", title_justify="left")
    kt.add_column("keypoint")
    kt.add_column("labelled", justify="right")
    kt.add_column("visible", justify="right")
    rows = list(zip(names, report.labelled_per_keypoint, report.visible_per_keypoint))
    shown = rows if len(rows) <= 40 else sorted(rows, key=lambda r: r[1])[:15]
    for name, lab, vis in shown:
        kt.add_row(escape(name), str(lab), str(vis))
    if len(rows) > 40:
        kt.caption = f"the 15 least labelled of {len(rows)} keypoints (--json for all)"
    out.print(kt)
    if report.problems:
        _print_problems(report.problems, max_per_code)
    n_err, n_warn = len(report.errors), len(report.warnings)
    if n_err:
        out.print(f"[bold red]{n_err} error(s)[/], {n_warn} warning(s)")
    elif n_warn:
        out.print(f"[green]no errors[/], [yellow]{n_warn} warning(s)[/]")
    else:
        out.print("[green]no problems found[/]")


@app.command("check")
def check(
    path: Path = typer.Argument(..., help="Label file or folder (COCO json, LabelMe, CVAT xml, DeepLabCut, ...)."),
    from_: str = FROM,
    image_root: Optional[Path] = IMAGE_ROOT,
    spec: Optional[str] = SPEC,
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable JSON report."),
    no_images: bool = typer.Option(False, "--no-images", help="Do not open the image files."),
    outlier_sigma: float = typer.Option(4.0, "--outlier-sigma",
                                        help="Flag keypoints further than this many robust SDs from usual."),
    max_per_code: int = typer.Option(20, "--max-per-code", help="Places shown per problem kind."),
) -> None:
    """Find problems in a dataset: missing images, bad sizes, keypoints outside, duplicates,
    swapped left/right labels, outliers. Exit 1 when errors were found (warnings alone: 0)."""
    from posetune.data.check import check_dataset

    ds = _read(path, from_, image_root, spec)
    report = check_dataset(ds, check_images=not no_images, outlier_sigma=outlier_sigma)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        _print_check_report(report, path, max_per_code)
    if not report.ok:
        raise typer.Exit(1)


@app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="Labels to read (any supported format)."),
    dst: Path = typer.Argument(..., help="Where to write: a file or folder, as the output format needs."),
    to: str = typer.Option(..., "--to", help="Output format: coco, labelme, cvat, dlc, yolo, simple."),
    from_: str = FROM,
    image_root: Optional[Path] = IMAGE_ROOT,
    spec: Optional[str] = SPEC,
) -> None:
    """Convert labels between formats (images are referenced, never copied)."""
    from posetune.data.formats import FORMAT_NAMES, write_dataset

    if to not in FORMAT_NAMES:
        raise DataError(f"unknown output format '{to}'", where="--to", hint=f"use one of: {', '.join(FORMAT_NAMES)}")
    ds = _read(src, from_, image_root, spec)
    written = write_dataset(ds, dst, to)
    out.print(f"read {ds.num_images} images, {ds.num_instances} instances ({ds.format}, spec {escape(ds.spec.name)}) "
              f"from {escape(str(src))}")
    for p in written[:10]:
        out.print(f"wrote {escape(str(p))}")
    if len(written) > 10:
        out.print(f"... and {len(written) - 10} more files (in {escape(str(Path(written[-1]).parent))})")
    if ds.problems:
        out.print(f"[yellow]{len(ds.problems)} problem(s) while reading[/]:")
        _print_problems(ds.problems, max_per_code=10)


@app.command("split")
def split(
    src: Path = typer.Argument(..., help="Labels to split (any supported format)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for train.json / val.json / test.json (COCO)."),
    val: float = typer.Option(0.2, "--val", help="Fraction of images for validation."),
    test: float = typer.Option(0.0, "--test", help="Fraction of images for testing."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed gives the same split)."),
    by: str = typer.Option("image", "--by", help="Keep together: image (none), video, folder."),
    from_: str = FROM,
    image_root: Optional[Path] = IMAGE_ROOT,
    spec: Optional[str] = SPEC,
) -> None:
    """Split a dataset into train/val(/test) COCO files whose image paths point to the original images."""
    from rich.table import Table

    from posetune.data.formats import write_dataset
    from posetune.data.split import group_key, split_dataset

    ds = _read(src, from_, image_root, spec)
    parts = split_dataset(ds, val=val, test=test, seed=seed, by=by)  # type: ignore[arg-type]
    table = Table(title=f"{src} split by {by} (seed {seed})", title_justify="left")
    for col in ("split", "images", "instances", "groups", "file"):
        table.add_column(col, justify="left" if col in ("split", "file") else "right")
    for name, part in parts.items():
        if name == "val" and val <= 0:
            continue
        path = out_dir / f"{name}.json"
        write_dataset(part, path, "coco")
        groups = len({group_key(rec, i, by) for i, rec in enumerate(part.images)})
        table.add_row(name, str(part.num_images), str(part.num_instances), str(groups), escape(str(path)))
    out.print(table)


def pick_indices(total: int, n: int, pick: str = "even", seed: int = 0) -> list[int]:
    """``n`` of ``total`` indices: spread evenly, or a random sample (sorted) from ``seed``."""
    import numpy as np

    n = max(0, min(int(n), total))
    if n == 0:
        return []
    if pick == "random":
        return sorted(np.random.default_rng(seed).choice(total, size=n, replace=False).tolist())
    if pick != "even":
        raise DataError(f"unknown --pick '{pick}'", hint="use even or random")
    return sorted({int(round(x)) for x in np.linspace(0, total - 1, n)})


def load_sample(ds: "KeypointDataset", rec: "ImageRecord") -> "tuple[np.ndarray, list[Instance], str | None]":
    """The image (RGB) and instances of one record; a grey placeholder (and a note) when the
    image cannot be read, so one bad file does not stop the drawing of the others."""
    import numpy as np

    from posetune.data.images import load_image

    try:
        return load_image(ds.image_path(rec)), list(rec.instances), None
    except DataError as e:
        w, h = int(rec.width or 256), int(rec.height or 256)
        return np.full((h, w, 3), 96, np.uint8), list(rec.instances), e.what


def render_sample(image: "np.ndarray", instances: "list[Instance]", spec: "KeypointSpec", *,
                  names: bool = False, note: str | None = None) -> "np.ndarray":
    """Draw one (image, instances) sample: skeleton, visibility, boxes, optional names."""
    import cv2

    from posetune.inference.visualize import draw_instances

    drawn = draw_instances(image, instances, spec, draw_names=names)
    if note:
        cv2.putText(drawn, note[:60], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 80, 80), 1, cv2.LINE_AA)
    return drawn


@app.command("show")
def show(
    src: Path = typer.Argument(..., help="Labels to draw (any supported format)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the drawings and grid.png."),
    n: int = typer.Option(16, "--n", help="Number of images to draw."),
    names: bool = typer.Option(False, "--names", help="Write keypoint names next to the points."),
    pick: str = typer.Option("even", "--pick", help="even (spread over the dataset) or random."),
    seed: int = typer.Option(0, "--seed", help="Seed for --pick random and the --augment draws."),
    from_: str = FROM,
    image_root: Optional[Path] = IMAGE_ROOT,
    spec: Optional[str] = SPEC,
    augment: bool = typer.Option(False, "--augment", help="Draw augmented training crops (what the model sees) "
                                                          "of --n instances instead of the labelled images."),
    variants: int = typer.Option(5, "--variants", help="With --augment: augmented crops per instance."),
    config: Optional[Path] = typer.Option(None, "--config", help="With --augment: run config whose data.augment, "
                                                                 "data.bbox_padding and model.codec are used."),
) -> None:
    """Draw the labels (skeleton, visibility, boxes) on some images; save PNGs and a contact sheet grid.png.
    With --augment: draw augmented training crops of some instances instead."""
    from posetune.data.images import save_image
    from posetune.inference.visualize import draw_grid

    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}", where="--n")
    ds = _read(src, from_, image_root, spec)
    if not ds.images:
        raise DataError("the dataset has no images", where=src, hint="check the label file")
    if augment:
        _show_augmented(ds, src, out_dir, n=n, variants=variants, config=config, pick=pick, seed=seed, names=names)
        return
    drawn, titles, notes = [], [], 0
    for k, i in enumerate(pick_indices(len(ds.images), n, pick, seed)):
        rec = ds.images[i]
        image, instances, note = load_sample(ds, rec)
        notes += note is not None
        picture = render_sample(image, instances, ds.spec, names=names, note=note)
        stem = Path(rec.file_name).stem or f"image{i}"
        save_image(out_dir / f"{k:03d}_{stem}.png", picture)
        drawn.append(picture)
        titles.append(rec.file_name)
    grid = draw_grid(drawn, ncols=math.ceil(math.sqrt(len(drawn))), titles=titles)
    grid_path = save_image(out_dir / "grid.png", grid)
    out.print(f"drew {len(drawn)} of {ds.num_images} images into {escape(str(out_dir))} "
              f"(contact sheet: {escape(str(grid_path))})")
    if notes:
        err.print(f"[yellow]{notes} image(s) could not be read and were drawn on a grey placeholder[/]")


def _show_augmented(ds: "KeypointDataset", src: Path, out_dir: Path, *, n: int, variants: int,
                    config: Optional[Path], pick: str, seed: int, names: bool) -> None:
    """``data show --augment``: per instance, one row of the deterministic crop and ``variants``
    augmented crops (augmentation ``[seed, variant, instance]``), keypoints drawn on top."""
    import numpy as np

    from posetune.config import load_config
    from posetune.data.images import save_image
    from posetune.data.records import Instance
    from posetune.data.transforms import TopDownTransform, usable_box
    from posetune.inference.visualize import draw_grid, draw_instances

    if variants < 1:
        raise DataError(f"--variants must be at least 1, got {variants}", where="--variants")
    cfg = load_config(config)
    input_size, use_udp = cfg.model.codec.input_size, cfg.model.codec.type == "udp"
    kw = dict(spec=ds.spec, use_udp=use_udp, bbox_padding=cfg.data.bbox_padding)
    plain = TopDownTransform(cfg.data.augment, input_size, train=False, **kw)
    train = TopDownTransform(cfg.data.augment, input_size, train=True, **kw)
    samples = [(i, j) for i, rec in enumerate(ds.images) for j, inst in enumerate(rec.instances)
               if not inst.iscrowd and usable_box(inst) is not None]
    if not samples:
        raise DataError("no instance with a box or labelled keypoints to crop", where=src,
                        hint="check the labels with `posetune data check`")
    rows, titles = [], []
    for k, s_idx in enumerate(pick_indices(len(samples), n, pick, seed)):
        i, j = samples[s_idx]
        rec = ds.images[i]
        image, instances, note = load_sample(ds, rec)
        inst = instances[j]
        crops, row_titles = [], []
        for v in range(variants + 1):
            tf = plain if v == 0 else train
            s = tf(image, inst.keypoints, usable_box(inst), np.random.default_rng([seed, v, s_idx]))
            order = ds.spec.flip_index if s.flipped else np.arange(ds.spec.num_keypoints)
            vis = np.where(s.weights > 0, inst.keypoints[order, 2], 0)
            crops.append(draw_instances(s.image, [Instance(np.c_[s.keypoints, vis])], ds.spec, draw_names=names,
                                        draw_boxes=False))
            flags = [f for f, on in (("flip", s.flipped), ("half", s.half_body)) if on]
            if v and abs(s.rotation) >= 1:
                flags.append(f"rot {s.rotation:.0f}")
            row_titles.append("crop" + (f" ({note})" if note else "") if v == 0 else " ".join(flags) or f"aug {v}")
        strip = draw_grid(crops, ncols=len(crops), titles=row_titles)
        stem = Path(rec.file_name).stem or f"image{i}"
        save_image(out_dir / f"{k:03d}_{stem}_{j}.png", strip)
        rows.extend(crops)
        titles.extend(f"{rec.file_name} #{j}" if v == 0 else t for v, t in enumerate(row_titles))
    grid_path = save_image(out_dir / "grid.png", draw_grid(rows, ncols=variants + 1, titles=titles))
    out.print(f"drew {len(rows) // (variants + 1)} of {len(samples)} instances with {variants} augmented crops each "
              f"({input_size[0]}x{input_size[1]}) into {escape(str(out_dir))} "
              f"(contact sheet: {escape(str(grid_path))})")


@app.command("synth")
def synth(
    out_dir: Path = typer.Option(..., "--out", help="Folder for images/ and annotations.json."),
    n: int = typer.Option(64, "--n", help="Number of images."),
    spec: str = typer.Option("coco17", "--spec", help="coco17 (human figures) or mouse4 (top-view mice)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed gives the same images)."),
    size: int = typer.Option(256, "--size", help="Image width and height in pixels."),
    people: int = typer.Option(1, "--per-image", help="Subjects per image."),
) -> None:
    """Write a procedural synthetic keypoint dataset (PNG images + COCO json)."""
    from posetune.data.synthetic import make_synthetic_dataset

    path = make_synthetic_dataset(out_dir, n_images=n, spec=spec, size=(size, size), seed=seed,
                                  people_per_image=people)
    out.print(f"wrote {n} synthetic {escape(spec)} images and {escape(str(path))}")
