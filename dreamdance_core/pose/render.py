"""Confidence-aware rendering of OpenPose skeletons in the standard OpenPose colours (body, hands, face).

The drawing follows OpenPose/ControlNet's pose maps: each bone is a filled ellipse in its limb colour at 60 %
intensity, each joint a filled circle in its full colour; hand edges are lines in hues around the colour wheel with
blue joints; face points are white dots. Only points with confidence above ``confidence_threshold`` (default 0) are
drawn, and a bone only when both its ends are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..cancel import CancelCheck, check
from ..fit import DEFAULT_FIT, Fit, fit_transform
from ..validation import check_budget, estimate_bytes
from .schema import (
    BODY_BONES,
    BODY_COLORS,
    BONE_COLOR_FACTOR,
    FACE_POINT_COLOR,
    HAND_EDGE_COLORS,
    HAND_EDGES,
    HAND_POINT_COLOR,
)
from .sequence import PoseError, PoseSequence, check_canvas

REFERENCE_SIDE = 512  # OpenPose's line widths (stick 4, joint 4, hand 2, face 3 px) are for a 512 px short side


@dataclass(frozen=True)
class RenderStyle:
    """What to draw and how thick; sizes in pixels of the output (None: OpenPose's sizes scaled to the output)."""

    body: bool = True
    hands: bool = True
    face: bool = True
    confidence_threshold: float = 0.0
    stick_width: int | None = None
    joint_radius: int | None = None


def _sizes(style: RenderStyle, width: int, height: int) -> tuple[int, int, int, int]:
    """(stick half-width, joint radius, hand line width, face dot radius) for this output size."""
    scale = min(width, height) / REFERENCE_SIDE
    stick = style.stick_width or max(1, round(4 * scale))
    joint = style.joint_radius or max(1, round(4 * scale))
    return stick, joint, max(1, round(2 * scale)), max(1, round(3 * scale))


def render_poses(
    seq: PoseSequence,
    width: int | None = None,
    height: int | None = None,
    style: RenderStyle = RenderStyle(),
    fit: Fit = DEFAULT_FIT,
    *,
    cancel_check: CancelCheck | None = None,
) -> np.ndarray:
    """Render every frame: ``uint8 [F, height, width, 3]`` RGB on black (size defaults to the sequence's canvas).
    ``cancel_check`` is called before every frame (:mod:`dreamdance_core.cancel`).

    The canvas is placed on the output by the fit policy (:mod:`dreamdance_core.fit`: ``"crop"``, ``"pad"`` or
    ``"stretch"``), exactly as :func:`dreamdance_core.media.fit_images` places an image of the canvas's size, so the
    skeleton stays on the body of the reference image it was detected on.
    """
    width, height = (width or seq.canvas[0]), (height or seq.canvas[1])
    check_canvas((width, height))
    check_budget(f"rendering {seq.num_frames} pose frames at {width}x{height}",
                 estimate_bytes((seq.num_frames, height, width, 3), "uint8"),
                 f"render fewer frames ({seq.num_frames}) or a smaller size ({width}x{height})")
    if not math.isfinite(style.confidence_threshold):
        raise PoseError(f"confidence_threshold must be a finite number, got {style.confidence_threshold}")
    try:
        transform = fit_transform(seq.canvas, (width, height), fit)
    except ValueError as error:
        raise PoseError(str(error)) from None
    scale, offset = np.array(transform.scale), np.array(transform.offset)
    images = np.zeros((seq.num_frames, height, width, 3), dtype=np.uint8)
    for f in range(seq.num_frames):
        check(cancel_check)
        for p in np.flatnonzero(seq.people[f]):
            _draw_person(images[f], seq, f, p, scale, offset, style)
    return images


def _pixels(points: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float):
    """``[n, 3]`` -> (int pixel coordinates ``[n, 2]``, visible mask ``[n]``)."""
    visible = points[:, 2] > threshold
    xy = points[:, :2] * scale + offset
    visible &= np.all(np.abs(xy) < 2**20, axis=1)  # far off-canvas points would overflow OpenCV's int coordinates
    return np.round(np.where(visible[:, None], xy, 0)).astype(np.int64), visible


def _draw_person(image, seq, f, p, scale, offset, style: RenderStyle) -> None:
    stick, joint, hand_width, face_radius = _sizes(style, image.shape[1], image.shape[0])
    threshold = style.confidence_threshold
    if style.body:
        xy, visible = _pixels(seq.body[f, p], scale, offset, threshold)
        for (a, b), color in zip(BODY_BONES, BODY_COLORS):
            if visible[a] and visible[b]:
                _draw_bone(image, xy[a], xy[b], stick, tuple(int(c * BONE_COLOR_FACTOR) for c in color))
        for i in np.flatnonzero(visible):
            cv2.circle(image, tuple(int(v) for v in xy[i]), joint, BODY_COLORS[i], thickness=-1)
    if style.hands:
        for hand in seq.hands[f, p]:
            xy, visible = _pixels(hand, scale, offset, threshold)
            for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS):
                if visible[a] and visible[b]:
                    cv2.line(image, tuple(int(v) for v in xy[a]), tuple(int(v) for v in xy[b]), color, hand_width)
            for i in np.flatnonzero(visible):
                cv2.circle(image, tuple(int(v) for v in xy[i]), joint, HAND_POINT_COLOR, thickness=-1)
    if style.face:
        xy, visible = _pixels(seq.face[f, p], scale, offset, threshold)
        for i in np.flatnonzero(visible):
            cv2.circle(image, tuple(int(v) for v in xy[i]), face_radius, FACE_POINT_COLOR, thickness=-1)


def _draw_bone(image: np.ndarray, a: np.ndarray, b: np.ndarray, half_width: int, color: tuple[int, int, int]) -> None:
    """OpenPose's limb: a filled ellipse from ``a`` to ``b`` with the given half width."""
    center = tuple(int(v) for v in (a + b) // 2)
    length = float(np.hypot(*(a - b)))
    angle = math.degrees(math.atan2(float(a[1] - b[1]), float(a[0] - b[0])))
    polygon = cv2.ellipse2Poly(center, (int(length / 2), half_width), int(round(angle)), 0, 360, 1)
    cv2.fillConvexPoly(image, polygon, color)
