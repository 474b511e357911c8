"""Keyframe interpolation (a few edited poses -> a smooth sequence) and confidence-aware temporal smoothing.

Points are tracked by their slot: person ``p``'s point ``n`` in one frame is the same point in every frame. A point
only counts where it is seen (confidence > 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..validation import check_budget, estimate_bytes
from .schema import NUM_BODY, NUM_FACE, NUM_HAND
from .sequence import PoseError, PoseSequence

_POINTS = NUM_BODY + NUM_FACE + 2 * NUM_HAND  # points per person

Method = Literal["linear", "cubic"]


def _hermite(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cubic Hermite (Catmull-Rom tangents for uneven times) through ``values [K, D]`` at ``times [K]``.

    Held constant outside the key range; with two keys it is a straight line.
    """
    if len(times) == 1:
        return np.repeat(values, len(query), axis=0)
    tangents = np.gradient(values, times, axis=0, edge_order=1)
    query = np.clip(query, times[0], times[-1])
    k = np.clip(np.searchsorted(times, query, side="right") - 1, 0, len(times) - 2)
    span = (times[k + 1] - times[k])[:, None]
    u = (query - times[k])[:, None] / span
    h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
    return h00 * values[k] + h10 * span * tangents[k] + h01 * values[k + 1] + h11 * span * tangents[k + 1]


def _linear(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(query, times, values[:, d]) for d in range(values.shape[1])], axis=1)


def spread_key_frames(num_keys: int, num_frames: int) -> list[int]:
    """``num_keys`` key poses spread evenly over ``num_frames`` frames (first on frame 0, last on the last frame)."""
    if num_keys < 1:
        raise PoseError("no key poses given; give at least one key pose")
    if num_keys > num_frames:
        raise PoseError(f"{num_keys} key poses do not fit into {num_frames} frame(s), one frame each: give at least "
                        f"{num_keys} frames, or fewer key poses")
    if num_keys == 1:
        return [0]
    return [round(k * (num_frames - 1) / (num_keys - 1)) for k in range(num_keys)]


def check_key_frames(key_frames: Sequence[int], num_keys: int, num_frames: int) -> np.ndarray:
    """Validate keyframe positions: one per key pose, strictly increasing, inside ``0..num_frames-1``."""
    if num_keys > num_frames:
        raise PoseError(f"{num_keys} key poses do not fit into {num_frames} frame(s), one frame each: give at least "
                        f"{num_keys} frames, or fewer key poses")
    keys = np.asarray(key_frames)
    if keys.ndim != 1 or len(keys) != num_keys or num_keys == 0:
        raise PoseError(f"give one frame index per key pose: {num_keys} key pose(s), {len(keys)} index(es)")
    if not np.issubdtype(keys.dtype, np.integer) or np.any(np.diff(keys) <= 0):
        raise PoseError(f"keyframe indices must be whole numbers in increasing order, got {list(key_frames)}")
    if keys[0] < 0 or keys[-1] >= num_frames:
        raise PoseError(f"keyframe indices must lie in 0..{num_frames - 1}, got {list(key_frames)}")
    return keys


def interpolate_keyframes(
    keys: PoseSequence, key_frames: Sequence[int] | None, num_frames: int, method: Method = "cubic"
) -> PoseSequence:
    """Key poses placed at ``key_frames`` (None: spread evenly, :func:`spread_key_frames`) -> ``num_frames`` poses.

    Positions follow a ``"cubic"`` (smooth, through every key) or ``"linear"`` curve through the keys where each point
    is seen; a point is seen at frame ``t`` when it is seen at the keys on both sides of ``t`` (the nearest key
    outside the key range), and its confidence is interpolated linearly between them. A person is present where
    present at both neighbouring keys. Frames before the first key and after the last hold those keys.
    """
    if method not in ("linear", "cubic"):
        raise PoseError(f"method must be 'linear' or 'cubic', got {method!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or not 0 < num_frames <= 100_000:
        raise PoseError(f"num_frames must be a whole number between 1 and 100000, got {num_frames!r:.40}")
    if key_frames is None:
        key_frames = spread_key_frames(keys.num_frames, num_frames)
    times = check_key_frames(key_frames, keys.num_frames, num_frames).astype(np.float64)
    check_budget(f"interpolating {keys.num_people} people over {num_frames} frames",
                 estimate_bytes((num_frames, keys.num_people, _POINTS, 3), "float64") * 4,
                 "give fewer frames or fewer people")
    query = np.arange(num_frames, dtype=np.float64)
    before = np.clip(np.searchsorted(times, query, side="right") - 1, 0, len(times) - 1)
    after = np.clip(np.searchsorted(times, query, side="left"), 0, len(times) - 1)
    span = np.maximum(times[after] - times[before], 1.0)
    weight = np.clip((query - times[before]) / span, 0.0, 1.0)[:, None, None]

    points = keys.points()  # [K, P, N, 3]
    seen = points[..., 2] > 0
    people = keys.people[before] & keys.people[after]
    visible = seen[before] & seen[after] & people[:, :, None]
    result = np.zeros((num_frames, *points.shape[1:]))
    result[..., 2] = np.where(visible, (1 - weight) * points[before, ..., 2] + weight * points[after, ..., 2], 0.0)
    curve = _hermite if method == "cubic" else _linear
    for p, n in zip(*np.nonzero(visible.any(axis=0))):
        track = seen[:, p, n]
        xy = curve(times[track], points[track, p, n, :2], query)
        result[:, p, n, :2] = np.where(visible[:, p, n, None], xy, 0.0)
    return keys.with_points(result, people)


def smooth_poses(seq: PoseSequence, sigma: float) -> PoseSequence:
    """Gaussian temporal smoothing of positions (``sigma`` in frames; 0 returns a copy).

    Only frames where a point is seen contribute to it, and a point unseen in a frame stays unseen there.
    """
    if not np.isfinite(sigma) or sigma < 0:
        raise PoseError(f"sigma must be a finite number >= 0 (frames), got {sigma}")
    if sigma == 0 or seq.num_frames == 0:
        return seq.replace()
    # beyond num_frames - 1 the window only reaches padding, which carries no weight: the same result, bounded memory
    radius = int(min(np.ceil(3 * sigma), seq.num_frames - 1))
    check_budget(f"smoothing {seq.num_frames} frames of {seq.num_people} people with sigma {sigma:g}",
                 estimate_bytes((seq.num_frames, seq.num_people, _POINTS, 2 * radius + 1), "float64") * 2,
                 "lower sigma or smooth fewer frames at a time")
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    points = seq.points()
    seen = ((points[..., 2] > 0) & seq.people[..., None]).astype(np.float64)
    pad = [(radius, radius)] + [(0, 0)] * (points.ndim - 1)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(points[..., :2], pad), 2 * radius + 1, axis=0)
    weights = np.lib.stride_tricks.sliding_window_view(np.pad(seen, pad[:-1]), 2 * radius + 1, axis=0) * kernel
    total = weights.sum(axis=-1)
    smoothed = np.einsum("fpncw,fpnw->fpnc", windows, weights) / np.maximum(total, 1e-12)[..., None]
    result = points.copy()
    result[..., :2] = np.where(seen[..., None] > 0, smoothed, points[..., :2])
    return seq.with_points(result)
