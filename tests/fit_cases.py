"""Test material for the fit policy: a reference image with small coloured dots on "body pixels" and a pose whose
keypoints sit on those dots (same canvas), and the check that after fitting each keypoint is drawn on its dot.

Each dot has its joint's OpenPose colour. The joints are ones no bone joins (nose, wrists, ankles, an ear), so each
joint's colour appears only in its dot and its drawn circle. The ear sits near the top-left corner, outside what
``"crop"`` keeps of a canvas that is wider or taller than the output; the other joints are inside every crop.
"""

from __future__ import annotations

import numpy as np

from dreamdance_core.pose import PoseSequence
from dreamdance_core.pose.schema import BODY_COLORS, BODY_NAMES

OUTPUT = (128, 192)  # width, height (the Stage-1 aspect 2:3)
CANVASES = {"wider": (600, 300), "taller": (200, 600), "equal": (192, 288)}
EDGE_JOINT = BODY_NAMES.index("right_ear")
JOINTS = {
    BODY_NAMES.index("nose"): (0.5, 0.32),
    BODY_NAMES.index("right_wrist"): (0.42, 0.5),
    BODY_NAMES.index("left_wrist"): (0.58, 0.5),
    BODY_NAMES.index("right_ankle"): (0.44, 0.68),
    BODY_NAMES.index("left_ankle"): (0.56, 0.68),
    EDGE_JOINT: (0.1, 0.1),
}  # joint -> (x, y) as fractions of the canvas
DOT = 21  # source pixels


def dotted_reference(canvas: tuple[int, int]) -> tuple[np.ndarray, PoseSequence]:
    """(``uint8 [H, W, 3]`` black image with one dot per joint, the pose with each keypoint at its dot's centre)."""
    width, height = canvas
    image = np.zeros((height, width, 3), dtype=np.uint8)
    pose = PoseSequence.empty(1, 1, canvas)
    for joint, (fx, fy) in JOINTS.items():
        left, top = round(fx * width) - DOT // 2, round(fy * height) - DOT // 2
        image[top : top + DOT, left : left + DOT] = BODY_COLORS[joint]
        pose.body[0, 0, joint] = [left + DOT // 2, top + DOT // 2, 1.0]  # pixel centres at whole numbers
    return image, pose


def _centroid(image: np.ndarray, color, tolerance: int) -> np.ndarray | None:
    """Mean (row, column) of the pixels within ``tolerance`` of ``color`` on every channel (None: no such pixel)."""
    pixels = np.argwhere(np.abs(image.astype(int) - np.array(color)).max(axis=-1) <= tolerance)
    return pixels.mean(axis=0) if len(pixels) else None


def assert_joints_on_dots(reference: np.ndarray, pose_map: np.ndarray, expect_edge_joint: bool) -> None:
    """Every joint drawn on ``pose_map`` lies on its dot in ``reference`` (both ``uint8 [H, W, 3]`` of the output),
    within a pixel; a dot cut away by the fit has no joint drawn, and the edge joint is there iff expected."""
    assert reference.shape == pose_map.shape, (reference.shape, pose_map.shape)
    for joint in JOINTS:
        dot = _centroid(reference, BODY_COLORS[joint], 40)  # the dot's core, not its blended rim
        drawn = _centroid(pose_map, BODY_COLORS[joint], 40)
        expected = joint != EDGE_JOINT or expect_edge_joint
        assert (dot is not None) == expected, f"joint {BODY_NAMES[joint]}: dot {'missing' if expected else 'kept'}"
        assert (drawn is not None) == expected, f"joint {BODY_NAMES[joint]}: {'not ' if expected else ''}drawn"
        if expected:
            offset = np.abs(drawn - dot).max()
            assert offset <= 0.75, f"{BODY_NAMES[joint]} drawn at {drawn} (row, col), its dot at {dot}: {offset:.2f} px"
