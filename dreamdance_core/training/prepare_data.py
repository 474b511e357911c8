"""Turn a folder of videos into the DreamDance dataset layout, and validate dataset folders.

    python train/prepare_data.py convert <videos> <dataset> --pose_estimator json \\
        --depth_estimator transformers:<depth model folder or hub id> --normal_estimator from-depth
    python train/prepare_data.py validate <dataset> [--decode]

``convert`` reads every video (``.mp4 .mov .avi .mkv .webm``) with OpenCV, keeps every ``--every``-th frame (at
most ``--max_frames``), runs the three estimators and writes ``<dataset>/<video stem>/`` plus ``dataset.json`` in the
layout of :mod:`dreamdance_core.dataset`. ``validate`` prints the report of broken items (each with its path) and
exits with status 1 when anything is broken.

Estimators are pluggable. Give a built-in name or ``package.module:function``; every estimator gets a
:class:`VideoFrames` (``frames`` uint8 ``[F, H, W, 3]`` RGB, the source ``path``, the kept frame ``indices``, ``fps``):

* pose: ``fn(video) -> POSE_KEYPOINT list`` of F frames in pixel coordinates (OpenPose COCO-18 body).
  Built-in ``json``: read ``<video stem>.json`` next to the video (a POSE_KEYPOINT list or an OpenPose file / folder,
  e.g. saved from comfyui_controlnet_aux's DWPose node over the whole video; one entry per source frame).
* depth: ``fn(video) -> float [F, H, W]`` relative depth in [0, 1], 1 = nearest, 0 = background / farthest.
  Built-in ``transformers:<model>``: a transformers ``depth-estimation`` model (Depth Anything, DPT, ...; a local
  folder, or a hub id when you allow downloads); its relative inverse depth is normalised per frame.
* normal: ``fn(video, depth) -> float [F, H, W, 3]`` unit camera-space normals (x right, y up, z to the camera),
  zero on the background. Built-in ``from-depth``: normals of the depth map's surface (coarse: relative depth has
  no metric scale; ``--normal_depth_scale`` sets the relief).

No pose, depth or normal model ships inside a package index wheel with its weights, so nothing is downloaded here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from dreamdance_core.dataset import DatasetError, validate_dataset, write_index, write_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")


class PrepareError(ValueError):
    """A video, estimator or option problem; the message names the file or option and the fix."""


@dataclass(frozen=True)
class VideoFrames:
    """The kept frames of one video: ``frames`` uint8 ``[F, H, W, 3]`` RGB, their source ``indices``, ``fps``."""

    path: Path
    frames: np.ndarray
    indices: np.ndarray
    fps: float


def read_video(path: Path, every: int = 1, max_frames: int | None = None) -> VideoFrames:
    """Every ``every``-th frame of a video file (at most ``max_frames``), decoded by OpenCV."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PrepareError(f"cannot open video {path}; is it a video file OpenCV can decode (mp4/avi/mkv/...)?")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    frames, indices, index = [], [], 0
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(frame[..., ::-1])  # BGR -> RGB
            indices.append(index)
        index += 1
    capture.release()
    if not frames:
        raise PrepareError(f"no frames could be decoded from {path}")
    return VideoFrames(path, np.ascontiguousarray(np.stack(frames)), np.asarray(indices), fps / every)


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


HOW_TO_PLUG = (
    "pass a built-in ({builtins}) or 'package.module:function' (see the estimator signatures in "
    "train/prepare_data.py's docstring)"
)


def load_estimator(kind: str, spec: str | None, options: argparse.Namespace) -> Callable:
    """The estimator named by ``spec``: a built-in, ``transformers:<model>`` (depth) or ``module:function``."""
    builtins = {
        "pose": {"json": lambda: pose_from_json},
        "depth": {},
        "normal": {"from-depth": lambda: normals_from_depth(options.normal_depth_scale)},
    }[kind]
    names = ", ".join([*builtins, *(["transformers:<model>"] if kind == "depth" else [])])
    if spec is None:
        raise PrepareError(f"no {kind} estimator given: " + HOW_TO_PLUG.format(builtins=names))
    if spec in builtins:
        return builtins[spec]()
    if kind == "depth" and spec.startswith("transformers:"):
        return transformers_depth(spec.split(":", 1)[1])
    module_name, _, function = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError, ValueError) as exc:
        raise PrepareError(f"{kind} estimator {spec!r} cannot be loaded ({exc}); " +
                           HOW_TO_PLUG.format(builtins=names)) from None  # fmt: skip


# --- conversion -----------------------------------------------------------------------------------------------------


def check_shape(kind: str, array: Any, shape: tuple[int, ...], path: Path) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.shape != shape:
        raise PrepareError(f"{kind} estimator returned shape {array.shape} for {path}, expected {shape}")
    return array


def convert_video(path: Path, root: Path, pose, depth, normal, every: int, max_frames: int | None) -> str:
    """Read, estimate and write one video; returns its id (the file stem)."""
    video = read_video(path, every, max_frames)
    num_frames, height, width = video.frames.shape[:3]
    keypoints = pose(video)
    if len(keypoints) != num_frames:
        raise PrepareError(f"pose estimator returned {len(keypoints)} frames for {path}, which has {num_frames}")
    unit_depth = np.clip(check_shape("depth", depth(video), (num_frames, height, width), path), 0.0, 1.0)
    normals = check_shape("normal", normal(video, unit_depth), (num_frames, height, width, 3), path)
    write_video(root, path.stem, video.frames, unit_depth, normals, keypoints, fps=video.fps, source=str(path))
    return path.stem


def convert(videos: Path, root: Path, pose, depth, normal, every: int = 1, max_frames: int | None = None) -> list[str]:
    """Convert every video of a folder; ``dataset.json`` lists those that converted (failures are reported)."""
    files = sorted(p for p in videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise PrepareError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {videos}")
    done = []
    for path in files:
        try:
            done.append(convert_video(path, root, pose, depth, normal, every, max_frames))
            print(f"ok      {path}")
        except (PrepareError, DatasetError) as exc:
            print(f"FAILED  {path}: {exc}", file=sys.stderr)
    write_index(root, done)
    return done


# --- command line ---------------------------------------------------------------------------------------------------


def parse_args(input_args: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("convert", help="videos -> dataset layout")
    make.add_argument("videos", type=Path, help="folder of video files")
    make.add_argument("output", type=Path, help="dataset folder to write")
    make.add_argument("--pose_estimator", help="'json' or module:function")
    make.add_argument("--depth_estimator", help="'transformers:<model>' or module:function")
    make.add_argument("--normal_estimator", help="'from-depth' or module:function")
    make.add_argument("--normal_depth_scale", type=float, default=20.0, help="relief of 'from-depth' normals")
    make.add_argument("--every", type=int, default=1, help="keep every n-th frame")
    make.add_argument("--max_frames", type=int, default=None, help="keep at most n frames per video")
    check = commands.add_parser("validate", help="report broken items of a dataset folder")
    check.add_argument("dataset", type=Path, help="dataset folder")
    check.add_argument("--decode", action=argparse.BooleanOptionalAction, default=True,
                       help="decode every image (--no-decode: only check that files exist)")  # fmt: skip
    return parser.parse_args(input_args)


def main(args: argparse.Namespace) -> int:
    if args.command == "validate":
        report = validate_dataset(args.dataset, decode=args.decode)
        print(report.summary())
        return 0 if report.ok else 1
    if args.every < 1:
        raise PrepareError(f"--every must be at least 1, got {args.every}")
    estimators = [load_estimator(kind, getattr(args, f"{kind}_estimator"), args) for kind in ("pose", "depth", "normal")]
    done = convert(args.videos, args.output, *estimators, every=args.every, max_frames=args.max_frames)
    print(f"{len(done)} video(s) written to {args.output}")
    return 0 if done else 1


def cli(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (``python train/prepare_data.py``): option and video problems end with a message."""
    try:
        return main(parse_args(argv))
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
