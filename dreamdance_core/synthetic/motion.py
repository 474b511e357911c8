"""Procedural dance motions: every joint angle is an offset plus a sum of sinusoids on a common beat.

A motion is deterministic from its seed and independent of the character, so a benchmark can hold out characters
and motions separately. Styles set which joints move and how strongly; left and right limbs are coupled in phase
(``same``) or in anti-phase (``opposite``) according to the style.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeleton import DOF_INDEX, DOF_LIMITS, DOFS

# Per style: amplitude (radians or metres) of each moving DOF, named without its side for limbs, and the limb coupling.
_STYLES: dict[str, tuple[dict[str, float], str]] = {
    "sway": (
        {"root_x": 0.08, "root_roll": 0.05, "spine_side": 0.25, "head_tilt": 0.15, "shoulder_abd": 0.9,
         "shoulder_flex": 0.3, "elbow": 0.6, "hip_abd": 0.12, "knee": 0.25, "hip_flex": 0.1},
        "opposite",
    ),
    "bounce": (
        {"knee": 0.55, "hip_flex": 0.35, "spine_bend": 0.15, "head_nod": 0.2, "shoulder_flex": 1.0,
         "elbow": 0.9, "shoulder_abd": 0.3},
        "same",
    ),
    "arms": (
        {"shoulder_flex": 1.4, "shoulder_abd": 1.2, "shoulder_twist": 0.5, "elbow": 0.8, "spine_twist": 0.2,
         "head_turn": 0.3, "knee": 0.15},
        "opposite",
    ),
    "twist": (
        {"root_yaw": 0.6, "spine_twist": 0.45, "head_turn": 0.3, "shoulder_flex": 0.8, "elbow": 0.7,
         "hip_flex": 0.45, "knee": 0.5, "root_z": 0.05},
        "opposite",
    ),
    "kick": (
        {"hip_flex": 0.9, "knee": 0.8, "shoulder_abd": 0.7, "shoulder_flex": 0.5, "elbow": 0.5,
         "spine_bend": 0.15, "root_pitch": 0.05},
        "opposite",
    ),
    "spin": (
        {"shoulder_abd": 0.8, "elbow": 0.5, "knee": 0.3, "head_nod": 0.1, "spine_side": 0.1},
        "same",
    ),
}
STYLES: tuple[str, ...] = tuple(_STYLES)

# Rest offsets: a relaxed stance with the arms a little away from the body.
_REST = {"r_shoulder_abd": 0.22, "l_shoulder_abd": 0.22, "r_elbow": 0.15, "l_elbow": 0.15}
# Offsets that keep the oscillating joints inside their limits (knees and elbows oscillate around a bent angle).
_CENTRES = {"knee": 0.45, "elbow": 0.8, "shoulder_abd": 0.6, "hip_flex": 0.2}
_HARMONICS = (1.0, 2.0, 0.5)
_HARMONIC_WEIGHTS = (1.0, 0.35, 0.25)


class MotionError(ValueError):
    """Invalid motion parameters (unknown style, non-positive frame rate, ...)."""


def rest_angles() -> np.ndarray:
    """The neutral standing pose facing the camera (used for reference frames): ``[len(DOFS)]``."""
    angles = np.zeros(len(DOFS))
    for name, value in _REST.items():
        angles[DOF_INDEX[name]] = value
    return angles


@dataclass(frozen=True)
class Motion:
    """A procedural dance: ``angles(times)`` gives ``[len(times), len(DOFS)]`` joint angles.

    ``offsets``, ``rates`` are ``[D]``; ``amplitudes`` and ``phases`` are ``[D, len(_HARMONICS)]``; ``tempo`` is the
    beat frequency in Hz.
    """

    seed: int
    style: str
    tempo: float
    offsets: np.ndarray
    rates: np.ndarray
    amplitudes: np.ndarray
    phases: np.ndarray

    def angles(self, times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, dtype=np.float64)
        freqs = 2.0 * np.pi * self.tempo * np.array(_HARMONICS)  # [K]
        waves = np.sin(times[:, None, None] * freqs + self.phases)  # [T, D, K]
        angles = self.offsets + times[:, None] * self.rates + np.einsum("tdk,dk->td", waves, self.amplitudes)
        low, high = np.array([DOF_LIMITS[name] for name in DOFS]).T
        return np.clip(angles, low, high)

    def frames(self, num_frames: int, fps: float) -> np.ndarray:
        """Angles of ``num_frames`` frames sampled at ``fps``: ``[num_frames, len(DOFS)]``."""
        if fps <= 0:
            raise MotionError(f"fps must be positive, got {fps}")
        return self.angles(np.arange(num_frames) / fps)


def _dof_names(key: str) -> list[str]:
    return [key] if key in DOF_INDEX else [f"r_{key}", f"l_{key}"]


def random_motion(seed: int, style: str | None = None) -> Motion:
    """The motion for ``seed`` (style drawn from :data:`STYLES` unless given)."""
    rng = np.random.default_rng([seed, 0x3071])
    picked = STYLES[rng.integers(len(STYLES))]
    style = picked if style is None else style
    if style not in _STYLES:
        raise MotionError(f"unknown motion style {style!r}; choose one of {', '.join(STYLES)}")
    amps_by_key, coupling = _STYLES[style]
    num_dofs, num_harmonics = len(DOFS), len(_HARMONICS)
    offsets = rest_angles()
    offsets[DOF_INDEX["root_yaw"]] = rng.uniform(-0.35, 0.35)
    rates = np.zeros(num_dofs)
    if style == "spin":
        rates[DOF_INDEX["root_yaw"]] = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6)
    amplitudes = np.zeros((num_dofs, num_harmonics))
    phases = rng.uniform(0.0, 2.0 * np.pi, (num_dofs, num_harmonics))
    for key, amp in amps_by_key.items():
        names = _dof_names(key)
        scale = amp * rng.uniform(0.5, 1.0) * np.array(_HARMONIC_WEIGHTS) * rng.uniform(0.5, 1.0, num_harmonics)
        for name in names:
            i = DOF_INDEX[name]
            amplitudes[i] = scale * rng.uniform(0.85, 1.15)
            offsets[i] = max(offsets[i], _CENTRES.get(key, offsets[i]))
        if len(names) == 2:
            shift = np.pi if coupling == "opposite" else 0.0
            phases[DOF_INDEX[names[1]]] = phases[DOF_INDEX[names[0]]] + shift + rng.normal(0.0, 0.15, num_harmonics)
    return Motion(
        seed=int(seed),
        style=style,
        tempo=float(rng.uniform(0.6, 1.4)),
        offsets=offsets,
        rates=rates,
        amplitudes=amplitudes,
        phases=phases,
    )
