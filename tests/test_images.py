"""Image reading: phone photos stored sideways with an EXIF orientation tag.

Labelling tools (LabelMe, CVAT in a browser, DeepLabCut through OpenCV) show such a photo turned
upright and label it there, so the size posetune reports and the pixels it decodes must both be
the displayed ones, or `data check` flags every phone photo and crops land in the wrong place.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posetune.data.check import check_dataset
from posetune.data.images import image_size, load_image
from posetune.data.records import ImageRecord, Instance, KeypointDataset
from posetune.data.spec import KeypointSpec


def _sideways_jpeg(path, orientation: int) -> np.ndarray:
    """A 40x20 stored image (white left quarter) tagged with an EXIF orientation."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :10] = 255
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, exif=exif, quality=98)
    return stored


@pytest.mark.parametrize("orientation, displayed", [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))])
def test_size_and_pixels_are_the_displayed_ones(tmp_path, orientation, displayed):
    path = tmp_path / "phone.jpg"
    _sideways_jpeg(path, orientation)
    img = load_image(path)
    assert image_size(path) == displayed
    assert (img.shape[1], img.shape[0]) == displayed
    if orientation == 6:  # turned clockwise for display: the stored left edge becomes the top
        assert img[:5].mean() > 200 and img[-5:].mean() < 50
    if orientation == 8:  # turned counter-clockwise: the stored left edge becomes the bottom
        assert img[-5:].mean() > 200 and img[:5].mean() < 50


def test_check_accepts_labels_made_on_the_upright_photo(tmp_path):
    _sideways_jpeg(tmp_path / "phone.jpg", 6)
    spec = KeypointSpec(name="two", keypoints=("a", "b"))
    kps = np.array([[5.0, 30.0, 2], [15.0, 35.0, 2]])  # inside the displayed 20x40 image only
    rec = ImageRecord(file_name="phone.jpg", width=20, height=40, id=1, instances=[Instance(kps)])
    report = check_dataset(KeypointDataset(spec=spec, images=[rec], root=tmp_path))
    codes = {p.code for p in report.problems}
    assert "size_mismatch" not in codes and "keypoint_outside_image" not in codes, report.problems
