"""Preset KeypointSpecs for the common keypoint sets.

Sigmas are the published OKS sigmas where they exist (COCO, COCO-WholeBody, MPII as used by
the MPII-to-COCO evaluations). MediaPipe sets have no official sigmas: body points reuse the
COCO value of the same joint and the rest take the closest COCO-WholeBody value (documented in
docs/metrics.md).
"""

from __future__ import annotations

from posetune.data.spec import KeypointSpec

# ----------------------------------------------------------------------------- COCO-17
COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO17_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)
# COCO's own skeleton, converted from 1-based to 0-based.
COCO17_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
                   (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
COCO17 = KeypointSpec.from_names(COCO17_NAMES, name="coco17", skeleton=COCO17_SKELETON, sigmas=COCO17_SIGMAS)

# ----------------------------------------------------------------------------- COCO-WholeBody-133
FOOT_NAMES = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
FOOT_SIGMAS = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
FACE68_SIGMAS = (
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043,
    0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
    0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011,
    0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
    0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.01, 0.008,
)
HAND21_SIGMAS = (0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026,
                 0.017, 0.021, 0.021, 0.032, 0.02, 0.019, 0.022, 0.031)
# 68-point (iBUG / 300-W) face: mirror partners.
FACE68_FLIP = (
    *[(i, 16 - i) for i in range(8)],
    *[(17 + i, 26 - i) for i in range(5)],
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),
    (60, 64), (61, 63), (65, 67),
)
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
HAND21_MMPOSE_NAMES = ("wrist",) + tuple(f"{f}{j}" for f in _FINGERS for j in range(1, 5))
# Hand links: each finger is a chain from the wrist (index 0) through 4 joints.
HAND21_SKELETON = tuple(
    link for f in range(5) for link in ((0, 1 + 4 * f), (1 + 4 * f, 2 + 4 * f), (2 + 4 * f, 3 + 4 * f), (3 + 4 * f, 4 + 4 * f))
)


def _wholebody() -> KeypointSpec:
    face = tuple(f"face-{i}" for i in range(68))
    lhand = ("left_hand_root",) + tuple(f"left_{f}{j}" for f in _FINGERS for j in range(1, 5))
    rhand = ("right_hand_root",) + tuple(f"right_{f}{j}" for f in _FINGERS for j in range(1, 5))
    names = COCO17_NAMES + FOOT_NAMES + face + lhand + rhand
    foot_links = ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))
    hand_links = tuple((a + 91, b + 91) for a, b in HAND21_SKELETON) + tuple((a + 112, b + 112) for a, b in HAND21_SKELETON)
    wrist_links = ((9, 91), (10, 112))
    flips = (
        tuple((a, b) for a, b in COCO17.flip_pairs)
        + ((17, 20), (18, 21), (19, 22))
        + tuple((23 + a, 23 + b) for a, b in FACE68_FLIP)
        + tuple((91 + i, 112 + i) for i in range(21))
    )
    return KeypointSpec(
        name="coco_wholebody133",
        keypoints=names,
        skeleton=COCO17_SKELETON + foot_links + wrist_links + hand_links,
        flip_pairs=flips,
        sigmas=COCO17_SIGMAS + FOOT_SIGMAS + FACE68_SIGMAS + HAND21_SIGMAS + HAND21_SIGMAS,
        parts=(("body", tuple(range(17))), ("foot", tuple(range(17, 23))), ("face", tuple(range(23, 91))),
               ("lefthand", tuple(range(91, 112))), ("righthand", tuple(range(112, 133)))),
    )


COCO_WHOLEBODY133 = _wholebody()

# ----------------------------------------------------------------------------- MPII-16
MPII16_NAMES = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
                "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
                "left_shoulder", "left_elbow", "left_wrist")
MPII16_SKELETON = ((0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11), (11, 12),
                   (12, 7), (13, 7), (13, 14), (14, 15))
MPII16_SIGMAS = (0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179,
                 0.179, 0.072, 0.062)
MPII16 = KeypointSpec.from_names(MPII16_NAMES, name="mpii16", skeleton=MPII16_SKELETON, sigmas=MPII16_SIGMAS)

# ----------------------------------------------------------------------------- MediaPipe pose-33
MP_POSE33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
MP_POSE33_SKELETON = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13), (13, 15),
    (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31),
    (30, 32), (27, 31), (28, 32),
)


def _mp_pose_sigmas() -> tuple[float, ...]:
    coco = dict(zip(COCO17_NAMES, COCO17_SIGMAS))
    approx = {
        "left_eye_inner": 0.025, "left_eye_outer": 0.025, "right_eye_inner": 0.025, "right_eye_outer": 0.025,
        "mouth_left": 0.025, "mouth_right": 0.025,
        "left_pinky": 0.031, "right_pinky": 0.031, "left_index": 0.031, "right_index": 0.031,
        "left_thumb": 0.047, "right_thumb": 0.047,
        "left_heel": 0.066, "right_heel": 0.094, "left_foot_index": 0.068, "right_foot_index": 0.092,
    }
    return tuple(coco.get(n, approx.get(n, 0.05)) for n in MP_POSE33_NAMES)


MEDIAPIPE_POSE33 = KeypointSpec.from_names(MP_POSE33_NAMES, name="mediapipe_pose33", skeleton=MP_POSE33_SKELETON,
                                           sigmas=_mp_pose_sigmas())

# ----------------------------------------------------------------------------- MediaPipe hand-21
MP_HAND21_NAMES = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_finger_mcp", "index_finger_pip",
    "index_finger_dip", "index_finger_tip", "middle_finger_mcp", "middle_finger_pip", "middle_finger_dip",
    "middle_finger_tip", "ring_finger_mcp", "ring_finger_pip", "ring_finger_dip", "ring_finger_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
MP_HAND21_SKELETON = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
                      (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19),
                      (19, 20))
MEDIAPIPE_HAND21 = KeypointSpec.from_names(MP_HAND21_NAMES, name="mediapipe_hand21", skeleton=MP_HAND21_SKELETON,
                                           sigmas=HAND21_SIGMAS)
HAND21 = KeypointSpec.from_names(HAND21_MMPOSE_NAMES, name="hand21", skeleton=HAND21_SKELETON, sigmas=HAND21_SIGMAS)

# ----------------------------------------------------------------------------- MediaPipe face-468
# Mirror pairs of the face mesh are not published with the model: flipping is disabled.
MEDIAPIPE_FACE468 = KeypointSpec(name="mediapipe_face468", keypoints=tuple(f"face_{i}" for i in range(468)),
                                 sigmas=(0.01,) * 468, can_flip=False)


# ----------------------------------------------------------------------------- MediaPipe holistic-543
def _mp_holistic() -> KeypointSpec:
    """Pose-33, left hand-21, right hand-21 and face mesh-468 in MediaPipe Holistic's order.

    Hands are the subject's left / right hand (the hand at BlazePose's ``left_wrist`` /
    ``right_wrist``). Mirror pairs: the pose's and left <-> right hand points; the face mesh has
    none (see MEDIAPIPE_FACE468), so flipping is disabled as for the face set.
    """
    pose = MEDIAPIPE_POSE33
    k_pose, k_hand = pose.num_keypoints, len(MP_HAND21_NAMES)
    left, right = k_pose, k_pose + k_hand
    face = right + k_hand
    names = (pose.keypoints + tuple(f"left_hand_{n}" for n in MP_HAND21_NAMES)
             + tuple(f"right_hand_{n}" for n in MP_HAND21_NAMES) + MEDIAPIPE_FACE468.keypoints)
    hand_links = tuple((a + o, b + o) for o in (left, right) for a, b in MP_HAND21_SKELETON)
    return KeypointSpec(
        name="mediapipe_holistic543",
        keypoints=names,
        skeleton=pose.skeleton + hand_links,
        flip_pairs=pose.flip_pairs + tuple((left + i, right + i) for i in range(k_hand)),
        sigmas=pose.sigmas + HAND21_SIGMAS + HAND21_SIGMAS + MEDIAPIPE_FACE468.sigmas,
        can_flip=False,
        parts=(("pose", tuple(range(k_pose))), ("left_hand", tuple(range(left, right))),
               ("right_hand", tuple(range(right, face))), ("face", tuple(range(face, len(names))))),
    )


MEDIAPIPE_HOLISTIC543 = _mp_holistic()

# ----------------------------------------------------------------------------- top-view rodent (DeepLabCut names)
MOUSE4 = KeypointSpec.from_names(
    ("snout", "leftear", "rightear", "tailbase"), name="mouse4",
    skeleton=(("snout", "leftear"), ("snout", "rightear"), ("leftear", "rightear"),
              ("leftear", "tailbase"), ("rightear", "tailbase")),
)

PRESETS: dict[str, KeypointSpec] = {
    s.name: s for s in (COCO17, COCO_WHOLEBODY133, MPII16, MEDIAPIPE_POSE33, MEDIAPIPE_HAND21, HAND21,
                        MEDIAPIPE_FACE468, MEDIAPIPE_HOLISTIC543, MOUSE4)
}
ALIASES = {
    "coco": "coco17",
    "coco_17": "coco17",
    "wholebody": "coco_wholebody133",
    "coco_wholebody": "coco_wholebody133",
    "wholebody133": "coco_wholebody133",
    "mpii": "mpii16",
    "mediapipe_pose": "mediapipe_pose33",
    "blazepose": "mediapipe_pose33",
    "mediapipe_hand": "mediapipe_hand21",
    "mediapipe_face": "mediapipe_face468",
    "holistic": "mediapipe_holistic543",
    "mediapipe_holistic": "mediapipe_holistic543",
    "hand": "hand21",
    "onehand10k": "hand21",
    "mouse": "mouse4",
}
