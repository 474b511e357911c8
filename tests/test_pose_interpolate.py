"""Keyframe interpolation and temporal smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from dreamdance_core.pose import PoseError, interpolate_keyframes, sample_dance, smooth_poses


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_keyframes_are_reproduced_and_the_ends_held(method):
    dance = sample_dance(30, 256, 384)
    keys = [3, 10, 20, 26]
    result = interpolate_keyframes(dance.frames(keys), keys, 30, method=method)
    assert result.num_frames == 30 and result.canvas == dance.canvas
    for k in keys:
        np.testing.assert_allclose(result.points()[k], dance.points()[k], atol=1e-9)
    points = dance.points()
    np.testing.assert_allclose(result.points()[:3], np.broadcast_to(points[3], (3, *points.shape[1:])))
    np.testing.assert_allclose(result.points()[27:], np.broadcast_to(points[26], (3, *points.shape[1:])))


def test_linear_midpoint_and_cubic_smoothness():
    dance = sample_dance(30, 256, 384)
    keys = [0, 10, 20, 29]
    linear = interpolate_keyframes(dance.frames(keys), keys, 30, method="linear")
    np.testing.assert_allclose(linear.body[5], (dance.body[0] + dance.body[10]) / 2, atol=1e-9)
    cubic = interpolate_keyframes(dance.frames(keys), keys, 30, method="cubic").body[..., :2]
    jumps = lambda xy: np.abs(np.diff(xy, 2, axis=0)).max()  # noqa: E731  largest change of velocity
    assert jumps(cubic) < jumps(linear.body[..., :2])


def test_visibility_follows_both_neighbouring_keys():
    keys = sample_dance(3, 128, 128)
    keys.body[1, 0, 4, 2] = 0.0  # right wrist hidden in the middle key
    result = interpolate_keyframes(keys, [0, 10, 20], 21)
    seen = result.body[:, 0, 4, 2] > 0
    assert seen[0] and not seen[1:20].any() and seen[20]
    assert np.all(result.body[:, 0, 0, 2] == 1.0)


def test_person_missing_in_a_key():
    keys = sample_dance(2, 128, 128)
    keys.people[1] = False
    keys.body[1] = 0.0
    result = interpolate_keyframes(keys, [0, 4], 6)
    assert result.people[:, 0].tolist() == [True, False, False, False, False, False]


@pytest.mark.parametrize(("key_frames", "num_frames", "message"), [
    ([0, 5], 3, "must lie in 0..2"),
    ([5, 0], 10, "increasing order"),
    ([0], 10, "one frame index per key pose"),
    ([0.5, 2], 10, "whole numbers"),
    ([0, 1], 0, "num_frames must be"),
])
def test_bad_keyframes(key_frames, num_frames, message):
    with pytest.raises(PoseError, match=message):
        interpolate_keyframes(sample_dance(2), key_frames, num_frames)


def test_smoothing_removes_jitter_and_keeps_visibility():
    rng = np.random.default_rng(0)
    clean = sample_dance(40, 256, 384)
    noisy = clean.replace()
    noisy.body[..., :2] += rng.normal(0, 4.0, noisy.body[..., :2].shape)
    noisy.body[7, 0, 3, 2] = 0.0
    smoothed = smooth_poses(noisy, sigma=1.5)
    error = lambda s: np.abs(s.body[..., :2] - clean.body[..., :2])[noisy.body[..., 2] > 0].mean()  # noqa: E731
    assert error(smoothed) < 0.6 * error(noisy)
    assert smoothed.body[7, 0, 3, 2] == 0.0
    np.testing.assert_array_equal(smoothed.body[7, 0, 3, :2], noisy.body[7, 0, 3, :2])
    assert smooth_poses(noisy, 0).equals(noisy)
    with pytest.raises(PoseError, match="sigma"):
        smooth_poses(noisy, -1)
