"""The shared windowing module: schedules, weights and blending."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamdance_core.sampling.windows import WindowOptions, blend_windows, window_indices, window_weights


@settings(max_examples=200, deadline=None)
@given(
    num_frames=st.integers(1, 80),
    length=st.integers(2, 24),
    overlap_fraction=st.floats(0, 0.9),
    retain_first=st.booleans(),
)
def test_windows_cover_every_frame_with_the_requested_length(num_frames, length, overlap_fraction, retain_first):
    limit = length - 1 - (1 if retain_first else 0)
    options = WindowOptions(
        length=length, overlap=min(limit, int(overlap_fraction * length)), retain_first=retain_first
    )
    windows = window_indices(num_frames, options)
    covered = sorted({i for w in windows for i in w})
    assert covered == list(range(num_frames))
    for window in windows:
        assert len(window) == min(length, num_frames)
        assert window == sorted(set(window))
        if retain_first:
            assert window[0] == 0
    if num_frames > length:
        assert len(windows) > 1


def test_known_schedule():
    assert window_indices(10, WindowOptions(length=4, overlap=1)) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    # the last window is pulled back to end on the last frame
    assert window_indices(9, WindowOptions(length=4, overlap=1)) == [[0, 1, 2, 3], [3, 4, 5, 6], [5, 6, 7, 8]]
    assert window_indices(7, WindowOptions(length=3, overlap=0, retain_first=True)) == [
        [0, 1, 2], [0, 3, 4], [0, 5, 6]
    ]
    assert window_indices(3, WindowOptions(length=16, overlap=4)) == [[0, 1, 2]]
    assert window_indices(5, None) == [[0, 1, 2, 3, 4]]


def test_one_window_is_exactly_the_unwindowed_call():
    calls = []
    out = torch.randn(2, 5, 3)

    def denoise(index):
        calls.append(index.tolist())
        return out

    assert blend_windows(denoise, 5, WindowOptions(length=8, overlap=2), frame_dim=1) is out
    assert calls == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("weighting", ["flat", "pyramid"])
@pytest.mark.parametrize("num_frames", [1, 5, 7, 11, 16])
def test_every_frame_is_the_weighted_mean_of_its_windows(weighting, num_frames):
    options = WindowOptions(length=4, overlap=2, weighting=weighting)
    predictions = {}

    def denoise(index):
        value = torch.randn(2, len(index), 3)  # a different prediction for every window
        predictions[tuple(index.tolist())] = value
        return value

    blended = blend_windows(denoise, num_frames, options, frame_dim=1)
    assert blended.shape == (2, num_frames, 3)
    for frame in range(num_frames):
        total, weight_sum = torch.zeros(2, 3), 0.0
        for window, value in predictions.items():
            if frame in window:
                position = window.index(frame)
                w = float(window_weights(len(window), weighting)[position])
                total += w * value[:, position]
                weight_sum += w
        torch.testing.assert_close(blended[:, frame], total / weight_sum)


def test_pyramid_weights_taper_and_flat_weights_do_not():
    assert window_weights(5, "pyramid").tolist() == [1, 2, 3, 2, 1]
    assert window_weights(4, "flat").tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(length=0), "at least 1"),
        (dict(length=4, overlap=4), "smaller than the window length"),
        (dict(length=4, overlap=-1), "overlap"),
        (dict(weighting="gaussian"), "unknown window weighting"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowOptions(**kwargs)


def test_empty_sequence_is_an_error():
    with pytest.raises(ValueError, match="at least 1 frame"):
        window_indices(0, WindowOptions())
