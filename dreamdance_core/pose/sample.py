"""A small procedural dance: one person with body, hands and face, looping every ``PERIOD`` frames.

Used by the command-line demo, the shipped workflows and tests when no real pose is at hand.
"""

from __future__ import annotations

import numpy as np

from .schema import BODY_NAMES, NUM_HAND
from .sequence import PoseError, PoseSequence, check_canvas

PERIOD = 24  # frames per dance loop
_J = {name: i for i, name in enumerate(BODY_NAMES)}
# Body proportions in units of the person's height.
_TORSO, _SHOULDER, _HIP = 0.30, 0.11, 0.07
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.17, 0.15, 0.24, 0.23
_FACE = 0.06


def _direction(angle: np.ndarray) -> np.ndarray:
    """Unit vectors ``[F, 2]`` for angles measured from straight down, positive towards +x."""
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)


def _body(phase: np.ndarray, height: float, center: np.ndarray) -> np.ndarray:
    """``[F, 18, 2]`` joint positions."""
    frames = len(phase)
    body = np.zeros((frames, 18, 2))
    sway = np.stack([0.05 * np.sin(phase / 2), 0.02 * np.sin(2 * phase)], axis=-1) * height
    body[:, _J["neck"]] = center + np.array([0.0, -0.37 * height]) + sway
    neck = body[:, _J["neck"]]
    for side, sign, shift in (("right", -1.0, 0.0), ("left", 1.0, np.pi)):
        lift = 0.4 + 0.9 * (0.5 + 0.5 * np.sin(phase + shift))
        elbow_bend = 0.8 * np.sin(phase + shift + 1.0)
        shoulder = neck + np.array([sign * _SHOULDER * height, 0.0])
        elbow = shoulder + _direction(sign * lift) * _UPPER_ARM * height
        wrist = elbow + _direction(sign * (lift + elbow_bend)) * _FOREARM * height
        thigh = 0.1 + 0.25 * np.sin(phase + shift)
        knee_bend = 0.3 * (0.5 + 0.5 * np.sin(phase + shift + np.pi / 2))
        hip = neck + np.array([sign * _HIP * height, _TORSO * height])
        knee = hip + _direction(sign * 0.05 + thigh) * _THIGH * height
        ankle = knee + _direction(sign * 0.05 + thigh - knee_bend) * _SHIN * height
        for joint, value in zip(("shoulder", "elbow", "wrist", "hip", "knee", "ankle"),
                                (shoulder, elbow, wrist, hip, knee, ankle)):
            body[:, _J[f"{side}_{joint}"]] = value
        body[:, _J[f"{side}_eye"]] = neck + np.array([sign * 0.025, -0.11]) * height
        body[:, _J[f"{side}_ear"]] = neck + np.array([sign * 0.05, -0.095]) * height
    body[:, _J["nose"]] = neck + np.array([0.0, -0.09]) * height
    return body


def _hand(wrist: np.ndarray, elbow: np.ndarray, height: float) -> np.ndarray:
    """``[F, 21, 2]``: five fingers fanned along the forearm direction."""
    forearm = wrist - elbow
    base_angle = np.arctan2(forearm[:, 0], forearm[:, 1])
    hand = np.zeros((len(wrist), NUM_HAND, 2))
    hand[:, 0] = wrist
    for finger, spread in enumerate((-0.7, -0.3, 0.0, 0.25, 0.5)):
        for joint, reach in enumerate((0.02, 0.035, 0.047, 0.056)):
            hand[:, 1 + 4 * finger + joint] = wrist + _direction(base_angle + spread) * reach * height
    return hand


def _face_template() -> np.ndarray:
    """``[70, 2]`` OpenPose face layout in face units (nose tip at 0,0): jaw, brows, nose, eyes, mouth, pupils."""
    arc = lambda a0, a1, n, rx, ry, cx=0.0, cy=0.0: np.stack(  # noqa: E731
        [cx + rx * np.cos(np.linspace(a0, a1, n)), cy + ry * np.sin(np.linspace(a0, a1, n))], axis=1
    )
    eye = lambda cx: arc(np.pi, 3 * np.pi, 7, 0.18, 0.07, cx, -0.35)[:6]  # noqa: E731
    return np.concatenate([
        arc(np.pi, 0.0, 17, 0.8, 1.0, 0.0, -0.3),                                # 0-16 jaw
        arc(np.pi * 1.2, np.pi * 1.45, 5, 0.9, 0.9, 0.0, -0.1),                  # 17-21 right brow
        arc(np.pi * 1.55, np.pi * 1.8, 5, 0.9, 0.9, 0.0, -0.1),                  # 22-26 left brow
        np.stack([np.zeros(4), np.linspace(-0.45, -0.05, 4)], axis=1),           # 27-30 nose ridge
        np.stack([np.linspace(-0.2, 0.2, 5), np.full(5, 0.05)], axis=1),         # 31-35 nostrils
        eye(-0.35), eye(0.35),                                                   # 36-47 eyes
        arc(np.pi, 3 * np.pi, 13, 0.35, 0.12, 0.0, 0.35)[:12],                   # 48-59 outer lips
        arc(np.pi, 3 * np.pi, 9, 0.22, 0.05, 0.0, 0.35)[:8],                     # 60-67 inner lips
        np.array([[-0.35, -0.35], [0.35, -0.35]]),                               # 68-69 pupils
    ])


def sample_dance(num_frames: int = PERIOD, width: int = 512, height: int = 768) -> PoseSequence:
    """A looping dance of one person filling ~80 % of the canvas height, with hands and face, all confidences 1."""
    if not 0 < num_frames <= 100_000:
        raise PoseError(f"num_frames must be between 1 and 100000, got {num_frames}")
    check_canvas((width, height))
    phase = 2 * np.pi * np.arange(num_frames) / PERIOD
    person = 0.8 * min(height, 1.25 * width)
    body = _body(phase, person, np.array([width / 2, height / 2]))
    hands = np.stack([_hand(body[:, _J[f"{s}_wrist"]], body[:, _J[f"{s}_elbow"]], person) for s in ("left", "right")])
    hands = hands.transpose(1, 0, 2, 3)  # [2, F, 21, 2] -> [F, 2, 21, 2]
    face = body[:, None, _J["nose"]] + _face_template()[None] * _FACE * person
    seq = PoseSequence.empty(num_frames, 1, (width, height))
    for part, xy in ((seq.body, body), (seq.face, face), (seq.hands, hands)):
        part[:, 0, ..., :2] = xy
        part[:, 0, ..., 2] = 1.0
    return seq
