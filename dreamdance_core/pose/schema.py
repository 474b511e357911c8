"""Keypoint schema of OpenPose-style skeletons: point names, bones, drawing colours, BODY_25 mapping.

Indices are 0-based. The body is the 18-point COCO layout that ControlNet/OpenPose maps use; the face has 70
points and each hand 21 (OpenPose's face and hand models). Colours are RGB, exactly those of the OpenPose
drawing code that ControlNet's pose maps (and comfyui_controlnet_aux) use.
"""

from __future__ import annotations

BODY_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_BODY = len(BODY_NAMES)  # 18
NUM_FACE = 70
NUM_HAND = 21
HAND_SIDES: tuple[str, str] = ("left", "right")  # axis 2 of PoseSequence.hands; the person's own left/right

NECK = BODY_NAMES.index("neck")
NOSE = BODY_NAMES.index("nose")
WRISTS: tuple[int, int] = (BODY_NAMES.index("left_wrist"), BODY_NAMES.index("right_wrist"))  # same order as hands

# The 17 bones of the body tree, (parent, child), ordered so that every parent is placed before its children
# (root: the neck). This is also OpenPose's drawing order of limbs, so BODY_LIMB_COLORS[i] colours BODY_BONES[i].
BODY_BONES: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# OpenPose's 18 colours: joint i is drawn in BODY_COLORS[i]; bone i in BODY_COLORS[i] at 60 % intensity.
BODY_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
BONE_COLOR_FACTOR = 0.6

HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    pair for finger in range(5) for pair in ((0 if i == 0 else 4 * finger + i, 4 * finger + i + 1) for i in range(4))
)  # wrist -> thumb (1..4), index (5..8), middle, ring, little (17..20)
HAND_POINT_COLOR: tuple[int, int, int] = (0, 0, 255)
FACE_POINT_COLOR: tuple[int, int, int] = (255, 255, 255)


def _hand_edge_colors() -> tuple[tuple[int, int, int], ...]:
    """OpenPose's hand edge colours: hue ``i / 20`` at full saturation and value, as RGB 0..255."""
    import colorsys

    return tuple(
        tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))  # type: ignore[misc]
        for i in range(len(HAND_EDGES))
    )


# The OpenPose program writes BODY_25 by default: COCO-18 plus mid-hip (8) and six foot points, reordered.
# BODY25_TO_BODY18[i] is the BODY_25 index of body-18 point i.
BODY25_TO_BODY18: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
NUM_BODY25 = 25


HAND_EDGE_COLORS = _hand_edge_colors()
