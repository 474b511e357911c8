"""Retargeting: bone lengths become the reference's, joint directions follow the driving pose, gaps are handled."""

from __future__ import annotations

import numpy as np
import pytest

from dreamdance_core.pose import PoseError, bone_lengths, retarget, sample_dance
from dreamdance_core.pose.schema import BODY_BONES, BODY_NAMES, NECK

R_ELBOW, R_WRIST = BODY_NAMES.index("right_elbow"), BODY_NAMES.index("right_wrist")


def _reference():
    """The sample body with other proportions: long legs, short arms, on another canvas."""
    reference = sample_dance(1, 300, 500)
    body = reference.body[0, 0]
    for bone, (a, b) in enumerate(BODY_BONES):  # parents come first, so moving a child moves its subtree later
        name = BODY_NAMES[b]
        factor = 1.4 if "knee" in name or "ankle" in name else 0.7 if "wrist" in name else 1.0
        offset = (body[b, :2] - body[a, :2]) * (factor - 1.0)
        subtree = [b] + [c for _, c in BODY_BONES[bone + 1:] if _descends(c, b)]
        body[subtree, :2] += offset
    return reference


def _descends(child: int, ancestor: int) -> bool:
    parents = {c: p for p, c in BODY_BONES}
    while child in parents:
        child = parents[child]
        if child == ancestor:
            return True
    return False


def _directions(body: np.ndarray) -> np.ndarray:
    a, b = (np.array(i) for i in zip(*BODY_BONES))
    step = body[..., b, :2] - body[..., a, :2]
    return step / np.linalg.norm(step, axis=-1, keepdims=True)


def test_bone_lengths_follow_the_reference_and_directions_the_driving_pose():
    driving, reference = sample_dance(30, 512, 768), _reference()
    result = retarget(driving, reference)
    assert result.canvas == reference.canvas and result.people.all()
    np.testing.assert_allclose(bone_lengths(result.body[:, 0]), np.broadcast_to(bone_lengths(reference.body[0, 0]),
                               (30, 17)), atol=1e-6)
    cosines = (_directions(result.body[:, 0]) * _directions(driving.body[:, 0])).sum(-1)
    np.testing.assert_allclose(cosines, 1.0, atol=1e-9)
    np.testing.assert_allclose(result.body[0, 0, NECK, :2], reference.body[0, 0, NECK, :2], atol=1e-9)


def test_without_per_bone_scaling_the_shape_is_the_driving_one_scaled():
    driving, reference = sample_dance(5, 512, 768), _reference()
    result = retarget(driving, reference, per_bone=False)
    ratio = bone_lengths(result.body[:, 0]) / bone_lengths(driving.body[:, 0])
    np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-9)


def test_linear_fit_maps_a_scaled_copy_exactly():
    reference = sample_dance(1, 512, 768)
    driving = reference.replace(body=reference.body * [0.5, 0.5, 1.0] + [40, 10, 0], canvas=(300, 400))
    result = retarget(driving, reference, alignment="linear", per_bone=False)
    np.testing.assert_allclose(result.body[0, 0], reference.body[0, 0], atol=1e-9)


def test_frames_without_a_person_repeat_or_stay_empty():
    driving, reference = sample_dance(6, 512, 768), _reference()
    driving.people[2:4] = False
    driving.body[2:4] = 0.0
    repeated = retarget(driving, reference, missing="repeat")
    assert repeated.people.all()
    np.testing.assert_array_equal(repeated.body[2], repeated.body[1])
    np.testing.assert_array_equal(repeated.body[3], repeated.body[1])
    empty = retarget(driving, reference, missing="empty")
    assert empty.people[:, 0].tolist() == [True, True, False, False, True, True]
    assert not empty.body[2:4].any()


def test_missing_joint_repeats_its_previous_offset_or_stays_missing():
    driving, reference = sample_dance(3, 512, 768), _reference()
    driving.body[1, 0, R_WRIST] = 0.0
    repeated = retarget(driving, reference, missing="repeat")
    offset = repeated.body[0, 0, R_WRIST, :2] - repeated.body[0, 0, R_ELBOW, :2]
    np.testing.assert_allclose(repeated.body[1, 0, R_WRIST, :2] - repeated.body[1, 0, R_ELBOW, :2], offset)
    assert repeated.body[1, 0, R_WRIST, 2] > 0
    assert retarget(driving, reference, missing="empty").body[1, 0, R_WRIST, 2] == 0


def test_missing_neck_is_placed_between_the_shoulders():
    driving, reference = sample_dance(2, 512, 768), _reference()
    driving.body[1, 0, NECK] = 0.0
    result = retarget(driving, reference, missing="empty")
    assert result.people[1, 0] and result.body[1, 0, NECK, 2] > 0


def test_no_person_anywhere_gives_an_empty_sequence():
    driving = sample_dance(4, 512, 768)
    driving.people[:] = False
    driving.body[:] = 0.0
    result = retarget(driving, _reference())
    assert result.num_frames == 4 and not result.people.any()


def test_hands_and_face_move_with_their_joints():
    driving, reference = sample_dance(2, 512, 768), _reference()
    result = retarget(driving, reference)
    for h, wrist in enumerate((BODY_NAMES.index("left_wrist"), R_WRIST)):
        np.testing.assert_allclose(result.hands[:, 0, h, 0, :2], result.body[:, 0, wrist, :2], atol=1e-9)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"missing": "crash"}, "missing must be"),
    ({"alignment": "affine"}, "alignment must be"),
    ({"reference_person": 3}, "does not exist"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(PoseError, match=message):
        retarget(sample_dance(2), _reference(), **kwargs)


def test_reference_without_torso_is_refused():
    reference = _reference()
    reference.body[0, 0, :8] = 0.0
    with pytest.raises(PoseError, match="no neck"):
        retarget(sample_dance(2), reference)
