"""Estimators for data preparation: a video's kept frames -> the values of one control modality.

Each registered modality (:mod:`dreamdance_core.modalities`) names its built-in estimators here or in its own
module. An estimator is ``fn(video: VideoFrames, *required) -> values`` where ``required`` are the values of the
modalities it builds on (normals from depth), in the shape its codec checks (:mod:`dreamdance_core.dataset`):

* pose: ``fn(video) -> POSE_KEYPOINT list`` of F frames in pixel coordinates (OpenPose COCO-18 body).
  Built-in ``json``: read ``<video stem>.json`` next to the video (a POSE_KEYPOINT list or an OpenPose file / folder,
  e.g. saved from comfyui_controlnet_aux's DWPose node over the whole video; one entry per source frame).
* depth: ``fn(video) -> float [F, H, W]`` relative depth in [0, 1], 1 = nearest, 0 = background / farthest.
  Built-in ``transformers:<model>``: a transformers ``depth-estimation`` model (Depth Anything, DPT, ...; a local
  folder, or a hub id when you allow downloads); its relative inverse depth is normalised per frame.
* normal: ``fn(video, depth) -> float [F, H, W, 3]`` unit camera-space normals (x right, y up, z to the camera),
  zero on the background. Built-in ``from-depth``: normals of the depth map's surface (coarse: relative depth has
  no metric scale; the ``normal_depth_scale`` option sets the relief).

No pose, depth or normal model ships inside a package index wheel with its weights, so nothing is downloaded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np


class PrepareError(ValueError):
    """A video, estimator or option problem; the message names the file or option and the fix."""


@dataclass(frozen=True)
class VideoFrames:
    """The kept frames of one video: ``frames`` uint8 ``[F, H, W, 3]`` RGB, their source ``indices``, ``fps``."""

    path: Path
    frames: np.ndarray
    indices: np.ndarray
    fps: float


# --- built-in estimators --------------------------------------------------------------------------------------------


def pose_from_json(video: VideoFrames) -> list[dict]:
    """Keypoints saved next to the video as ``<stem>.json`` (or a ``<stem>/`` folder of OpenPose files)."""
    from dreamdance_core.pose import PoseError, load_pose_file, to_pose_keypoint

    candidates = [video.path.with_suffix(".json"), video.path.with_suffix("")]
    source = next((c for c in candidates if c.exists()), None)
    if source is None:
        raise PrepareError(
            f"pose estimator 'json' found no {candidates[0].name} (or folder {candidates[1].name}/) next to "
            f"{video.path}; save the video's keypoints there (POSE_KEYPOINT or OpenPose JSON, one entry per frame)"
        )
    height, width = video.frames.shape[1:3]
    try:
        sequence = load_pose_file(source, canvas=(width, height))
    except PoseError as exc:
        raise PrepareError(f"pose file {source}: {exc}") from None
    if sequence.num_frames <= video.indices.max():
        raise PrepareError(
            f"pose file {source} has {sequence.num_frames} frames but the video needs frame {video.indices.max()}; "
            "the keypoints must cover every source frame"
        )
    return to_pose_keypoint(sequence.frames(video.indices).rescaled((width, height)))


def transformers_depth(model: str) -> Callable[[VideoFrames], np.ndarray]:
    """A transformers depth-estimation model (relative inverse depth, larger = nearer), normalised per frame."""
    from PIL import Image
    from transformers import pipeline

    estimator = pipeline("depth-estimation", model=model)

    def estimate(video: VideoFrames) -> np.ndarray:
        height, width = video.frames.shape[1:3]
        out = []
        for frame in video.frames:
            predicted = estimator(Image.fromarray(frame))["predicted_depth"].squeeze().float().numpy()
            near = cv2.resize(predicted, (width, height), interpolation=cv2.INTER_LINEAR)
            span = max(float(near.max() - near.min()), 1e-6)
            out.append((near - near.min()) / span)
        return np.stack(out).astype(np.float32)

    return estimate


def normals_from_depth(scale: float) -> Callable[[VideoFrames, np.ndarray], np.ndarray]:
    """Normals of the surface ``z = scale * depth`` (image rows point down, normal y points up)."""

    def estimate(video: VideoFrames, depth: np.ndarray) -> np.ndarray:
        normals = []
        for unit in depth.astype(np.float32):
            dz_dx = cv2.Sobel(unit, cv2.CV_32F, 1, 0, ksize=3) / 8.0 * scale
            dz_drow = cv2.Sobel(unit, cv2.CV_32F, 0, 1, ksize=3) / 8.0 * scale
            n = np.stack([-dz_dx, dz_drow, np.ones_like(unit)], axis=-1)
            n /= np.linalg.norm(n, axis=-1, keepdims=True)
            normals.append(np.where((unit > 0)[..., None], n, 0.0))
        return np.stack(normals).astype(np.float32)

    return estimate
