"""KeypointSpec presets, flip-pair inference and serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from posetune.data import presets
from posetune.data.spec import KeypointSpec, get_spec, infer_flip_pairs
from posetune.errors import DataError


def names(spec, pairs):
    return {(spec.keypoints[a], spec.keypoints[b]) for a, b in pairs}


def test_preset_sizes():
    assert get_spec("coco17").num_keypoints == 17
    assert get_spec("coco-wholebody").num_keypoints == 133
    assert get_spec("mpii").num_keypoints == 16
    assert get_spec("mediapipe_pose33").num_keypoints == 33
    assert get_spec("mediapipe_hand21").num_keypoints == 21
    assert get_spec("mediapipe_face468").num_keypoints == 468


def test_coco_flip_pairs_and_sigmas():
    s = presets.COCO17
    assert names(s, s.flip_pairs) == {("left_eye", "right_eye"), ("left_ear", "right_ear"),
                                      ("left_shoulder", "right_shoulder"), ("left_elbow", "right_elbow"),
                                      ("left_wrist", "right_wrist"), ("left_hip", "right_hip"),
                                      ("left_knee", "right_knee"), ("left_ankle", "right_ankle")}
    assert s.sigmas[0] == 0.026 and s.sigmas[-1] == 0.089
    fi = s.flip_index
    assert fi[s.index("left_wrist")] == s.index("right_wrist") and fi[0] == 0
    assert np.array_equal(fi[fi], np.arange(17))


def test_wholebody_parts_and_flips():
    s = presets.COCO_WHOLEBODY133
    assert [p for p, _ in s.parts] == ["body", "foot", "face", "lefthand", "righthand"]
    assert sum(len(idx) for _, idx in s.parts) == 133
    fi = s.flip_index
    assert np.array_equal(fi[fi], np.arange(133))
    assert fi[23 + 0] == 23 + 16  # face jaw mirrors
    assert fi[91] == 112  # left hand root <-> right hand root


@pytest.mark.parametrize("kps,expected", [
    (["snout", "leftear", "rightear", "tailbase"], {("leftear", "rightear")}),
    (["L_Eye", "R_Eye", "Nose", "L_F_Paw", "R_F_Paw"], {("L_Eye", "R_Eye"), ("L_F_Paw", "R_F_Paw")}),
    (["left_ear", "right_ear", "lip", "rib"], {("left_ear", "right_ear")}),
    (["ear_l", "ear_r", "paw_left", "paw_right"], {("ear_l", "ear_r"), ("paw_left", "paw_right")}),
    (["LEar", "REar"], {("LEar", "REar")}),
    (["front_left_paw", "front_right_paw"], {("front_left_paw", "front_right_paw")}),
])
def test_infer_flip_pairs(kps, expected):
    assert names(KeypointSpec.from_names(kps), infer_flip_pairs(kps)) == expected


def test_from_names_uses_preset_sigmas_and_default():
    s = KeypointSpec.from_names(presets.COCO17_NAMES)
    assert s.sigmas == presets.COCO17_SIGMAS
    c = KeypointSpec.from_names(["a", "b"])
    assert c.sigmas == (0.05, 0.05)
    c2 = c.with_sigmas({"b": 0.1})
    assert c2.sigmas == (0.05, 0.1)


def test_roundtrip_dict_and_subset():
    s = presets.MEDIAPIPE_POSE33
    assert KeypointSpec.from_dict(s.to_dict()) == s
    sub = s.subset(list(presets.COCO17_NAMES), name="coco-from-blazepose")
    assert sub.keypoints == presets.COCO17_NAMES
    assert names(sub, sub.flip_pairs) == names(presets.COCO17, presets.COCO17.flip_pairs)


def test_spec_errors():
    with pytest.raises(DataError, match="repeat"):
        KeypointSpec(name="x", keypoints=("a", "a"))
    with pytest.raises(DataError, match="outside"):
        KeypointSpec(name="x", keypoints=("a", "b"), skeleton=((0, 5),))
    with pytest.raises(DataError, match="unknown keypoint spec"):
        get_spec("nope")
    with pytest.raises(DataError, match="unknown keypoint"):
        presets.COCO17.index("tail")
    with pytest.raises(DataError, match="unknown keypoint"):
        KeypointSpec.from_names(["a", "b"], skeleton=[("a", "c")])
