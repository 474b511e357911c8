"""POSE_KEYPOINT / OpenPose JSON io: round trips (hypothesis), both coordinate forms, BODY_25, malformed input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dreamdance_core.pose import (
    MAX_PEOPLE,
    PoseError,
    PoseSequence,
    from_pose_keypoint,
    load_pose_file,
    parse_pose_json,
    sample_dance,
    to_openpose_frames,
    to_pose_keypoint,
    write_openpose_files,
    write_pose_file,
)
from dreamdance_core.pose.schema import BODY25_TO_BODY18


@st.composite
def pose_sequences(draw, off_canvas: bool = True) -> PoseSequence:
    """Random sequences in POSE_KEYPOINT's own shape (each frame's people listed first, slots = the most people):
    varying people per frame, missing points, hidden points (x, y kept, confidence 0), missing parts, points off
    the canvas (unless ``off_canvas`` is False)."""
    counts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    frames, people = len(counts), max(counts)
    canvas = (draw(st.integers(2, 4096)), draw(st.integers(2, 4096)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seq = PoseSequence.empty(frames, people, canvas)
    seq.people[:] = np.arange(people) < np.array(counts)[:, None]
    for part in seq.parts().values():
        low, high = (-0.2, 1.2) if off_canvas else (0.0, 1.0)
        xy = rng.uniform(low, high, part.shape[:-1] + (2,)) * canvas
        confidence = rng.uniform(0.01, 1.0, part.shape[:-1])
        state = rng.choice(3, part.shape[:-1], p=[0.7, 0.2, 0.1])  # seen, missing (0,0,0), hidden
        part[..., :2] = np.where(state[..., None] == 1, 0.0, xy)
        part[..., 2] = np.where(state == 0, confidence, 0.0)
        missing_part = rng.random(part.shape[:2]) < 0.2
        part[missing_part | ~seq.people] = 0.0
    # A frame whose points all lie in 0..1 would read as normalised (documented); such draws carry no pose.
    for f in range(frames):
        points = seq.points()[f].reshape(-1, 3)
        used = points[np.any(points != 0, axis=1), :2]
        assume(used.size == 0 or np.any((used < 0) | (used > 1)))
    return seq


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pose_sequences())
def test_pose_keypoint_round_trip_preserves_every_point(seq):
    through_json = json.loads(json.dumps(to_pose_keypoint(seq)))
    assert from_pose_keypoint(through_json).equals(seq)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pose_sequences())
def test_pose_keypoint_written_form_is_stable(seq):
    written = to_pose_keypoint(seq)
    assert to_pose_keypoint(from_pose_keypoint(written)) == written
    for frame in written:
        assert (frame["canvas_width"], frame["canvas_height"]) == seq.canvas
        for person in frame["people"]:
            assert person["pose_keypoints_2d"] is None or len(person["pose_keypoints_2d"]) == 54


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pose_sequences(off_canvas=False))
def test_normalised_input_gives_the_same_sequence(seq):
    normalised = to_pose_keypoint(seq)
    width, height = seq.canvas
    for frame in normalised:
        for person in frame["people"]:
            for key, values in person.items():
                if values is not None:
                    scale = np.tile([1 / width, 1 / height, 1.0], len(values) // 3)
                    person[key] = list(np.array(values) * scale)
    assert from_pose_keypoint(normalised).equals(seq, atol=1e-9 * max(seq.canvas))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pose_sequences())
def test_openpose_files_round_trip(tmp_path_factory, seq):
    folder = tmp_path_factory.mktemp("openpose")
    paths = write_openpose_files(seq, folder, prefix="clip")
    assert [p.name for p in paths] == [f"clip_{f:012d}_keypoints.json" for f in range(seq.num_frames)]
    assert load_pose_file(folder).equals(seq)


def test_pose_file_round_trip(tmp_path):
    seq = sample_dance(5, 320, 480)
    assert load_pose_file(write_pose_file(seq, tmp_path / "dance.json")).equals(seq)


def test_openpose_frames_use_empty_lists_for_missing_parts():
    seq = sample_dance(1, 64, 96)
    seq.face[:] = 0
    person = to_openpose_frames(seq)[0]["people"][0]
    assert person["face_keypoints_2d"] == [] and person["person_id"] == [-1]
    assert to_pose_keypoint(seq)[0]["people"][0]["face_keypoints_2d"] is None


def _body25_person(body18: np.ndarray) -> list[float]:
    body25 = np.zeros((25, 3))
    body25[list(BODY25_TO_BODY18)] = body18
    body25[8] = [11.0, 22.0, 0.9]  # mid-hip, dropped
    body25[19:] = [[5.0, 6.0, 0.8]] * 6  # feet, dropped
    return body25.reshape(-1).tolist()


def test_openpose_program_file_body25_without_canvas(tmp_path):
    """A real OpenPose output file: BODY_25, version, person_id, [] parts, no canvas size."""
    body = sample_dance(1, 640, 480).body[0, 0]
    frame = {
        "version": 1.3,
        "people": [{"person_id": [-1], "pose_keypoints_2d": _body25_person(body), "face_keypoints_2d": [],
                    "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [], "pose_keypoints_3d": []}],
    }
    (tmp_path / "video_000000000000_keypoints.json").write_text(json.dumps(frame))
    seq = load_pose_file(tmp_path / "video_000000000000_keypoints.json", canvas=(640, 480))
    assert seq.canvas == (640, 480)
    np.testing.assert_array_equal(seq.body[0, 0], body)
    assert not seq.face.any() and not seq.hands.any()
    inferred = from_pose_keypoint(frame)  # no canvas given: the smallest canvas holding the points
    assert inferred.canvas == tuple(int(np.ceil(v)) + 1 for v in body[:, :2].max(axis=0))
    np.testing.assert_array_equal(inferred.body[0, 0], body)


def test_dwpose_68_point_face_is_padded():
    face68 = [[10.0 + i, 20.0, 1.0] for i in range(68)]
    frame = {"people": [{"face_keypoints_2d": sum(face68, [])}], "canvas_width": 100, "canvas_height": 100}
    seq = from_pose_keypoint([frame])
    np.testing.assert_array_equal(seq.face[0, 0, :68], face68)
    assert not seq.face[0, 0, 68:].any()


def test_frames_with_other_canvas_are_rescaled_to_the_first():
    seq = sample_dance(2, 200, 100)
    frames = to_pose_keypoint(seq)
    frames[1] = to_pose_keypoint(seq.rescaled((400, 300)))[1]
    assert from_pose_keypoint(frames).equals(seq, atol=1e-9)


def test_frame_without_people_is_kept():
    frames = [{"people": [], "canvas_width": 64, "canvas_height": 32}, to_pose_keypoint(sample_dance(1, 64, 32))[0]]
    seq = from_pose_keypoint(frames)
    assert seq.num_frames == 2 and seq.people.tolist() == [[False], [True]]
    assert to_pose_keypoint(seq)[0]["people"] == []


def test_nan_and_negative_confidence_are_cleaned():
    body = np.ones((18, 3)) * 50
    body[3] = [np.nan, 5, 1]
    body[4] = [7, 8, -0.5]
    text = json.dumps([{"people": [{"pose_keypoints_2d": body.reshape(-1).tolist()}], "canvas_width": 100,
                        "canvas_height": 100}])
    seq = parse_pose_json(text)  # json allows NaN tokens
    assert seq.body[0, 0, 3].tolist() == [0, 0, 0]
    assert seq.body[0, 0, 4].tolist() == [7, 8, 0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "non-empty list"),
        ('"text"', "non-empty list"),
        ('[{"people": 3}]', "'people' must be a list"),
        ('[{"people": [[1, 2, 3]]}]', "person 0: a person must be a JSON object"),
        ('[{"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}]', "expected 54 or 75 numbers"),
        ('[{"people": [{"hand_left_keypoints_2d": [1, 2]}]}]', "expected 63 numbers"),
        ('[{"people": [{"pose_keypoints_2d": "abc"}]}]', "expected a flat list"),
        ('[{"people": [{"face_keypoints_2d": [' + ",".join(['"a"'] * 210) + "]}]}]", "every value must be a number"),
        ('[{"people": [], "canvas_width": -5, "canvas_height": 10}]', "positive whole numbers"),
        ('[{"people": [], "canvas_width": 0, "canvas_height": 10}]', "positive whole numbers"),
        ('[{"people": [], "canvas_width": 1e300, "canvas_height": 10}]', "canvas"),
        ('[{"people": [], "canvas_width": "wide", "canvas_height": 10}]', "must be numbers"),
        ('[{"people": [], "canvas_width": 10.5, "canvas_height": 10}]', "whole numbers"),
        ('[{"people": []}]', "no canvas size"),
        ('[{"people": [{"pose_keypoints_2d": [' + ",".join(["0.5"] * 54) + "]}]}]", "normalised coordinates but no"),
        ('[{"people": [{"pose_keypoints_2d": [1e9, 1e9, 1' + ",0" * 51 + "]}]}]", "give the canvas"),
        ('[5]', "a frame must be a JSON object"),
    ],
)
def test_malformed_input_gives_a_clear_error(data, message):
    with pytest.raises(PoseError, match=message):
        parse_pose_json(data)


def test_thousands_of_people_are_refused():
    frame = {"people": [{}] * 5000, "canvas_width": 10, "canvas_height": 10}
    with pytest.raises(PoseError, match=f"5000 people; at most {MAX_PEOPLE}"):
        from_pose_keypoint([frame])


def test_pose_error_is_a_value_error_and_names_the_place():
    frames = to_pose_keypoint(sample_dance(3, 64, 64))
    frames[2]["people"][0]["hand_right_keypoints_2d"] = [1.0] * 10
    with pytest.raises(ValueError, match="frame 2 person 0 hand_right_keypoints_2d"):
        from_pose_keypoint(frames)


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(PoseError, match="not found"):
        load_pose_file(tmp_path / "nope.json")
    with pytest.raises(PoseError, match="no .json files"):
        load_pose_file(tmp_path)
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PoseError, match="not valid JSON"):
        load_pose_file(tmp_path / "bad.json")
