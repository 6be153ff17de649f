"""Comparing two keypoint datasets label by label, shared by the format round-trip tests.

Not a test module: ``from label_checks import assert_same_labels`` (pytest puts ``tests/`` on sys.path).
"""

from __future__ import annotations

import numpy as np


def assert_same_labels(a, b, *, groups: bool = False, boxes: bool = False, track_ids: bool = False,
                       occluded_becomes_visible: bool = False) -> None:
    """Same images (files, sizes; ``groups`` too) and instances: visibility, labelled keypoints to
    1e-6, and with ``boxes`` the boxes to 1e-6, with ``track_ids`` the track ids (``b``'s as
    strings, the way DeepLabCut names individuals). ``occluded_becomes_visible``: ``b`` comes from
    a format without an occlusion flag, so every labelled point of ``a`` reads as visible (2)."""
    assert len(a.images) == len(b.images)
    for ra, rb in zip(a.images, b.images):
        assert a.image_path(ra).resolve() == b.image_path(rb).resolve()
        assert (ra.width, ra.height) == (rb.width, rb.height)
        if groups:
            assert ra.group == rb.group
        assert len(ra.instances) == len(rb.instances)
        for ia, ib in zip(ra.instances, rb.instances):
            v = ia.keypoints[:, 2]
            np.testing.assert_array_equal(ib.keypoints[:, 2], np.where(v > 0, 2, 0) if occluded_becomes_visible else v)
            m = ia.labelled
            np.testing.assert_allclose(ib.keypoints[m, :2], ia.keypoints[m, :2], rtol=0, atol=1e-6)
            if boxes:
                if ia.bbox is None:
                    assert ib.bbox is None
                else:
                    np.testing.assert_allclose(ib.bbox, ia.bbox, rtol=0, atol=1e-6)
            if track_ids:
                assert ib.track_id == (None if ia.track_id is None else str(ia.track_id))
