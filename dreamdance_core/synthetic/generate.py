"""Synthetic dance videos: one character + one motion + one scene, in memory or written as a dataset folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..dataset import write_index, write_video
from .character import Character, random_character
from .motion import Motion, random_motion, rest_angles
from .render import Frames, Scene, random_scene, render_frames

DEFAULT_WIDTH, DEFAULT_HEIGHT, DEFAULT_FPS = 256, 384, 15.0


@dataclass
class SyntheticSample:
    """A character's ``reference`` frame (the neutral pose, one frame) and a ``clip`` of a motion, with exact
    ground truth (see :class:`~dreamdance_core.synthetic.render.Frames`), plus what made them."""

    character: Character
    motion: Motion
    scene: Scene
    fps: float
    reference: Frames
    clip: Frames


def render_sample(
    character_seed: int,
    motion_seed: int,
    scene_seed: int,
    num_frames: int,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    fps: float = DEFAULT_FPS,
    style: str | None = None,
) -> SyntheticSample:
    """Render one character (``character_seed``: body, clothes) dancing one motion (``motion_seed``, optionally a
    forced ``style``) in one scene (``scene_seed``: camera, background, light), fully in memory."""
    if num_frames < 1 or width < 1 or height < 1:
        raise ValueError(f"num_frames, width and height must be >= 1, got {num_frames}, {width}, {height}")
    character, motion = random_character(character_seed), random_motion(motion_seed, style)
    scene = random_scene(scene_seed, width, height)
    return SyntheticSample(
        character=character,
        motion=motion,
        scene=scene,
        fps=fps,
        reference=render_frames(character, scene, rest_angles()[None]),
        clip=render_frames(character, scene, motion.frames(num_frames, fps)),
    )


def video_seeds(seed: int, num_videos: int) -> list[tuple[int, int, int]]:
    """(character, motion, scene) seeds of the videos of :func:`generate_dataset` with this master ``seed``."""
    children = np.random.SeedSequence(seed).spawn(num_videos)
    return [tuple(int(v) for v in child.generate_state(3, dtype=np.uint32)) for child in children]


def write_sample(
    root: str | Path, video_id: str, sample: SyntheticSample, write_mask: bool = True, modalities: Sequence[str] = ()
) -> Path:
    """Write a sample's clip as one video item of the dataset layout (:mod:`dreamdance_core.dataset`): RGB, mask,
    pose, depth and normal, plus the maps of more registered ``modalities`` (:mod:`dreamdance_core.modalities`), each
    from the registry's synthetic renderer and stored by its codec."""
    from ..modalities import DEFAULT_MODALITIES, get

    clip = sample.clip
    values = {name: get(name).synthetic(clip) for name in (*DEFAULT_MODALITIES, *modalities)}
    extra = [(get(name).codec, values[name]) for name in modalities if name not in DEFAULT_MODALITIES]
    return write_video(
        root,
        video_id,
        clip.rgb,
        values["depth"],
        values["normal"],
        values["pose"],
        fps=sample.fps,
        source="synthetic",
        mask=clip.mask if write_mask else None,
        meta={
            "character_seed": sample.character.seed,
            "motion_seed": sample.motion.seed,
            "scene_seed": sample.scene.seed,
            "motion_style": sample.motion.style,
        },
        extra_maps=extra,
    )


def generate_dataset(
    root: str | Path,
    num_videos: int,
    num_frames: int,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    seed: int = 0,
    fps: float = DEFAULT_FPS,
    write_mask: bool = True,
    modalities: Sequence[str] = (),
) -> list[str]:
    """Write ``num_videos`` synthetic videos (ids ``synth_00000`` ...) and ``dataset.json`` under ``root``; more
    registered ``modalities`` than pose, depth and normal are rendered and stored too (:func:`write_sample`).

    Each video draws its own character, motion and scene seeds from ``seed`` (:func:`video_seeds`); they are
    recorded in its meta.json so a benchmark can pick held-out ones. Returns the video ids."""
    if num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}")
    ids = []
    for i, (character_seed, motion_seed, scene_seed) in enumerate(video_seeds(seed, num_videos)):
        sample = render_sample(character_seed, motion_seed, scene_seed, num_frames, width, height, fps)
        ids.append(f"synth_{i:05d}")
        write_sample(root, ids[-1], sample, write_mask, modalities)
    write_index(root, ids)
    return ids
