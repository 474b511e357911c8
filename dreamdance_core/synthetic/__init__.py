"""Procedural articulated mannequin with exact ground truth, for tests, demos, benchmarks and smoke training.

A character (body proportions, clothes: :mod:`.character`), posed by a procedural dance (:mod:`.motion`) through
forward kinematics (:mod:`.skeleton`), is ray cast analytically (:mod:`.raycast`) by a pinhole camera
(:mod:`.camera`) into RGB, exact depth, exact normals, a mask and OpenPose-18 keypoints (:mod:`.render`).
:func:`render_sample` returns a reference frame and a clip in memory; :func:`generate_dataset` writes the dataset
layout of :mod:`dreamdance_core.dataset`. Everything is deterministic from seeds; numpy only.
"""

from .character import Character, Part, random_character
from .generate import SyntheticSample, generate_dataset, render_sample, video_seeds, write_sample
from .motion import STYLES, Motion, random_motion, rest_angles
from .render import Frames, Scene, random_scene, render_frames

__all__ = [
    "STYLES",
    "Character",
    "Frames",
    "Motion",
    "Part",
    "Scene",
    "SyntheticSample",
    "generate_dataset",
    "random_character",
    "random_motion",
    "random_scene",
    "render_frames",
    "render_sample",
    "rest_angles",
    "video_seeds",
    "write_sample",
]
