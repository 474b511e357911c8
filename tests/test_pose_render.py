"""Rendering: joints land on the expected pixels in the OpenPose colours; unseen points are not drawn."""

from __future__ import annotations

import numpy as np
import pytest

from dreamdance_core.pose import PoseError, PoseSequence, RenderStyle, render_poses, sample_dance
from dreamdance_core.pose.schema import (
    BODY_BONES,
    BODY_COLORS,
    BODY_NAMES,
    BONE_COLOR_FACTOR,
    FACE_POINT_COLOR,
    HAND_POINT_COLOR,
)

NECK, R_SHOULDER, R_ELBOW = (BODY_NAMES.index(n) for n in ("neck", "right_shoulder", "right_elbow"))


def _one_person(canvas=(200, 100)) -> PoseSequence:
    seq = PoseSequence.empty(1, 1, canvas)
    seq.body[0, 0, NECK] = [100, 20, 1.0]
    seq.body[0, 0, R_SHOULDER] = [60, 20, 0.8]
    seq.body[0, 0, R_ELBOW] = [60, 80, 0.0]  # not seen
    return seq


def test_joints_and_bone_in_openpose_colours():
    image = render_poses(_one_person())[0]
    assert image.shape == (100, 200, 3) and image.dtype == np.uint8
    assert tuple(image[20, 100]) == BODY_COLORS[NECK]
    assert tuple(image[20, 60]) == BODY_COLORS[R_SHOULDER]
    bone = BODY_BONES.index((NECK, R_SHOULDER))
    assert tuple(image[20, 80]) == tuple(int(c * BONE_COLOR_FACTOR) for c in BODY_COLORS[bone])


def test_confidence_zero_points_and_their_bones_are_not_drawn():
    image = render_poses(_one_person())[0]
    assert not image[25:, :].any(), "the unseen elbow (and its bone) must leave the lower part black"
    seq = _one_person()
    seq.body[0, 0, R_ELBOW, 2] = 1.0
    assert render_poses(seq)[0][25:, :].any(), "seen, the same elbow is drawn"


def test_confidence_threshold_hides_weak_points():
    image = render_poses(_one_person(), style=RenderStyle(confidence_threshold=0.9))[0]
    assert tuple(image[20, 100]) == BODY_COLORS[NECK]
    assert not image[:, :90].any(), "the shoulder (confidence 0.8) and its bone are below the threshold"


def test_other_size_and_aspect():
    stretched = render_poses(_one_person(), width=400, height=400, fit="stretch")[0]
    assert tuple(stretched[80, 200]) == BODY_COLORS[NECK]  # x * 2, y * 4
    padded = render_poses(_one_person(), width=400, height=400, fit="pad")[0]
    assert tuple(padded[100 + 40, 200]) == BODY_COLORS[NECK]  # uniform x2, centred: 100 px bars above/below
    assert not padded[:100].any() and not padded[300:].any()
    cropped = render_poses(_one_person(), width=400, height=400)[0]  # the default: crop
    assert tuple(cropped[80, 200]) == BODY_COLORS[NECK]  # uniform x4 of the middle 100 columns: (100 - 50) * 4
    assert tuple(cropped[80, 40]) == BODY_COLORS[R_SHOULDER]  # (60 - 50) * 4


def test_hands_and_face_colours_and_switches():
    seq = PoseSequence.empty(1, 1, (100, 100))
    seq.hands[0, 0, 0, 8] = [20, 20, 1.0]
    seq.face[0, 0, 30] = [70, 70, 1.0]
    image = render_poses(seq)[0]
    assert tuple(image[20, 20]) == HAND_POINT_COLOR and tuple(image[70, 70]) == FACE_POINT_COLOR
    assert not render_poses(seq, style=RenderStyle(hands=False, face=False)).any()


def test_empty_frames_and_far_away_points_render_black():
    seq = PoseSequence.empty(2, 1, (64, 64))
    seq.people[1] = False
    seq.body[0, 0, :, :] = [1e12, -1e12, 1.0]
    assert not render_poses(seq).any()


def test_every_frame_is_rendered():
    frames = render_poses(sample_dance(4, 128, 192))
    assert frames.shape == (4, 192, 128, 3)
    assert all(frame.any() for frame in frames) and not np.array_equal(frames[0], frames[1])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": -4, "height": 10}, "positive whole numbers"),
    ({"fit": "cover"}, "fit must be"),
    ({"style": RenderStyle(confidence_threshold=float("nan"))}, "finite"),
])
def test_bad_render_arguments(kwargs, message):
    with pytest.raises(PoseError, match=message):
        render_poses(_one_person(), **kwargs)


def test_body_only_maps_decode_back_to_the_joints():
    from dreamdance_core.pose.decode import decode_body_images

    seq = sample_dance(3, 256, 384)
    seq.body[1, 0, 7] = 0.0  # a missing left wrist
    decoded = decode_body_images(render_poses(seq, style=RenderStyle(hands=False, face=False)))
    seen = seq.body[..., 2] > 0
    np.testing.assert_array_equal(decoded.body[..., 2] > 0, seen)
    assert np.abs(decoded.body[..., :2] - seq.body[..., :2])[seen].max() <= 0.5 + 1e-9
    with pytest.raises(PoseError, match="uint8 RGB"):
        decode_body_images(np.zeros((2, 8, 8), dtype=np.uint8))
