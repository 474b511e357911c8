"""A random mannequin character: body proportions and clothing colours, deterministic from a seed."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Part(IntEnum):
    """Body parts; each rendered primitive carries one (the ``part`` buffer of a render)."""

    HEAD = 0
    HAIR = 1
    R_EYE = 2
    L_EYE = 3
    NECK = 4
    SHOULDERS = 5
    CHEST = 6
    PELVIS = 7
    R_UPPER_ARM = 8
    R_FOREARM = 9
    R_HAND = 10
    L_UPPER_ARM = 11
    L_FOREARM = 12
    L_HAND = 13
    R_THIGH = 14
    R_SHIN = 15
    R_FOOT = 16
    L_THIGH = 17
    L_SHIN = 18
    L_FOOT = 19


NUM_PARTS = len(Part)

_SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.78, 0.57, 0.44], [0.62, 0.43, 0.30], [0.45, 0.30, 0.20]]
)
_HAIR_TONES = np.array([[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.55, 0.38, 0.20], [0.85, 0.75, 0.50]])


@dataclass(frozen=True)
class Proportions:
    """Body measurements in metres (``r_*`` are capsule radii, ``head_radii`` the head ellipsoid's x, y, z)."""

    height: float
    head_radii: tuple[float, float, float]
    neck_length: float
    r_neck: float
    torso: float
    shoulder_half_width: float
    hip_half_width: float
    chest_depth: float
    pelvis_depth: float
    upper_arm: float
    forearm: float
    r_upper_arm: float
    r_forearm: float
    r_hand: float
    thigh: float
    shin: float
    r_thigh: float
    r_shin: float
    ankle_height: float
    foot_length: float
    foot_half_width: float
    hair_scale: float


@dataclass(frozen=True)
class Character:
    """Proportions plus one albedo colour (RGB in 0..1) per :class:`Part`: ``colours`` is ``[NUM_PARTS, 3]``."""

    seed: int
    body: Proportions
    colours: np.ndarray


def random_proportions(rng: np.random.Generator) -> Proportions:
    """Heights 1.5-1.95 m, every length jittered independently, a shared girth factor 0.8-1.35."""
    h = rng.uniform(1.5, 1.95)
    g = rng.uniform(0.8, 1.35)

    def u(scale: float, spread: float = 0.1) -> float:
        return float(scale * h * rng.uniform(1.0 - spread, 1.0 + spread))

    head_ry = u(0.062, 0.08)
    return Proportions(
        height=float(h),
        head_radii=(head_ry * 0.8, head_ry, head_ry * 0.88),
        neck_length=u(0.035, 0.2),
        r_neck=u(0.03) * g**0.5,
        torso=u(0.29),
        shoulder_half_width=u(0.115, 0.12),
        hip_half_width=u(0.055, 0.15),
        chest_depth=u(0.062) * g,
        pelvis_depth=u(0.06) * g,
        upper_arm=u(0.165),
        forearm=u(0.15),
        r_upper_arm=u(0.026) * g,
        r_forearm=u(0.021) * g,
        r_hand=u(0.028),
        thigh=u(0.245),
        shin=u(0.235),
        r_thigh=u(0.042) * g,
        r_shin=u(0.031) * g,
        ankle_height=u(0.04),
        foot_length=u(0.15),
        foot_half_width=u(0.028),
        hair_scale=float(rng.uniform(1.0, 1.08)),
    )


def _random_cloth(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.95)))


def random_colours(rng: np.random.Generator) -> np.ndarray:
    """Skin, hair, top, trousers and shoes colours; random short or long sleeves and trousers or shorts."""
    skin = np.clip(_SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.normal(0, 0.03, 3), 0, 1)
    hair = np.clip(_HAIR_TONES[rng.integers(len(_HAIR_TONES))] + rng.normal(0, 0.03, 3), 0, 1)
    top, bottom, shoes = _random_cloth(rng), _random_cloth(rng), _random_cloth(rng) * 0.6
    sleeve = top if rng.uniform() < 0.5 else skin
    shin = bottom if rng.uniform() < 0.7 else skin
    colours = np.empty((NUM_PARTS, 3))
    colours[[Part.HEAD, Part.NECK, Part.R_HAND, Part.L_HAND]] = skin
    colours[Part.HAIR] = hair
    colours[[Part.R_EYE, Part.L_EYE]] = (0.05, 0.04, 0.04)
    colours[[Part.SHOULDERS, Part.CHEST, Part.R_UPPER_ARM, Part.L_UPPER_ARM]] = top
    colours[[Part.R_FOREARM, Part.L_FOREARM]] = sleeve
    colours[[Part.PELVIS, Part.R_THIGH, Part.L_THIGH]] = bottom
    colours[[Part.R_SHIN, Part.L_SHIN]] = shin
    colours[[Part.R_FOOT, Part.L_FOOT]] = shoes
    return colours


def random_character(seed: int) -> Character:
    """The character for ``seed``: same seed, same body and clothes."""
    rng = np.random.default_rng([seed, 0xC4A2])
    return Character(seed=int(seed), body=random_proportions(rng), colours=random_colours(rng))
