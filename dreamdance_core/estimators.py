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

The paper's estimators (DWPose poses, Depth Anything depth, DSINE normals; Marigold normals stand in for DSINE,
which cannot be loaded from the hub without its own code) are built in too, each through a well-kept library:

* pose ``dwpose:<folder>``: DWPose's ONNX models (a YOLOX person detector ``yolox*.onnx`` and the whole-body pose
  model ``dw-ll_ucoco*.onnx``, as comfyui_controlnet_aux keeps them) run by rtmlib on onnxruntime (``pip install
  onnxruntime`` and ``pip install --no-deps rtmlib``: its own pins would add a second OpenCV); COCO-WholeBody is
  turned into OpenPose-18 body, 70 face points and two 21-point hands, people ordered by body confidence.
* depth ``depth-anything:<folder>``: transformers' ``DepthAnythingForDepthEstimation`` and its image processor
  (any Depth Anything v1/v2 folder); the relative inverse depth is normalised per frame like ``transformers:``.
* normal ``marigold:<folder>``: diffusers' ``MarigoldNormalsPipeline`` (e.g. prs-eth/marigold-normals-v1-1); its
  normals are already x right, y up, z toward the viewer; options ``marigold_steps``, ``marigold_ensemble``,
  ``marigold_resolution``.

A ``<folder>`` may instead be ``owner/name@<40-hex commit>`` when downloads are allowed (``allow_download``): it is
fetched once with ``huggingface_hub.snapshot_download`` at that pinned revision. Without that permission nothing is
downloaded here; a missing folder is an error that says how to obtain it.
"""

from __future__ import annotations

import re
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


# --- the paper's estimators (local folders; a pinned hub revision only when downloads are allowed) ------------------

_PINNED = re.compile(r"^([\w.-]+/[\w.-]+)@([0-9a-f]{40})$")


def resolve_model(argument: str | None, what: str, allow_download: bool = False) -> Path:
    """The local folder of an estimator model: ``argument`` itself, or ``owner/name@<commit>`` fetched with
    ``huggingface_hub.snapshot_download(repo, revision=commit)`` when ``allow_download`` (never otherwise)."""
    if not argument:
        raise PrepareError(f"the {what} estimator needs a model folder: '<name>:<folder>'")
    folder = Path(argument).expanduser()
    if folder.is_dir():
        return folder
    pinned = _PINNED.match(argument)
    if pinned and allow_download:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(pinned.group(1), revision=pinned.group(2)))
    how = ("pass --allow_download to fetch it" if pinned else
           "give a local folder, or owner/name@<40-hex commit> with --allow_download to fetch a pinned revision")
    raise PrepareError(f"{what} model folder {argument!r} does not exist; {how}")


def _torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _normalise_inverse_depth(predicted: np.ndarray, width: int, height: int) -> np.ndarray:
    near = cv2.resize(predicted.astype(np.float64), (width, height), interpolation=cv2.INTER_LINEAR)
    span = float(near.max() - near.min())
    return (near - near.min()) / span if span > 0 else np.zeros_like(near)  # a flat prediction: all background


def depth_anything(folder: Path, batch_size: int = 8) -> Callable[[VideoFrames], np.ndarray]:
    """Depth Anything (v1/v2) through transformers: relative inverse depth, normalised per frame to [0, 1]."""
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

    device = _torch_device()
    processor = AutoImageProcessor.from_pretrained(folder)
    model = DepthAnythingForDepthEstimation.from_pretrained(folder).to(device).eval()

    @torch.no_grad()
    def estimate(video: VideoFrames) -> np.ndarray:
        height, width = video.frames.shape[1:3]
        out = []
        for start in range(0, len(video.frames), batch_size):
            images = [Image.fromarray(frame) for frame in video.frames[start : start + batch_size]]
            inputs = processor(images=images, return_tensors="pt").to(device)
            predicted = model(**inputs).predicted_depth  # [b, h, w], larger = nearer
            out += [_normalise_inverse_depth(p.float().cpu().numpy(), width, height) for p in predicted]
        return np.stack(out).astype(np.float32)

    return estimate


def marigold_normals(folder: Path, steps: int | None = None, ensemble: int = 1, resolution: int | None = None,
                     seed: int = 0) -> Callable[[VideoFrames, np.ndarray], np.ndarray]:
    """Marigold normals through diffusers (x right, y up, z toward the viewer: the dataset's convention), unit
    length, at the video's size."""
    import torch
    from diffusers import MarigoldNormalsPipeline

    device = _torch_device()
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = MarigoldNormalsPipeline.from_pretrained(folder, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)

    def estimate(video: VideoFrames, depth: np.ndarray | None = None) -> np.ndarray:
        out = []
        for frame in video.frames:
            generator = torch.Generator(device=device).manual_seed(seed)  # the same noise for every frame
            image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0  # [1, 3, H, W] in 0..1
            result = pipe(image, num_inference_steps=steps, ensemble_size=ensemble,
                          processing_resolution=resolution, match_input_resolution=True, generator=generator,
                          output_type="np")
            normal = np.asarray(result.prediction[0], dtype=np.float32)  # [H, W, 3] in -1..1
            out.append(normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6))
        return np.stack(out).astype(np.float32)

    return estimate


# COCO-WholeBody as rtmlib's ``to_openpose`` orders it (134 points): OpenPose-18 body, 6 feet, 68 face, 2 x 21 hands
_BODY, _FACE, _LEFT_HAND, _RIGHT_HAND = slice(0, 18), slice(24, 92), slice(92, 113), slice(113, 134)


def _onnx_input_size(path: Path) -> tuple[int, int]:
    """(height, width) of an ONNX image model's input ``[1, 3, H, W]``."""
    import onnxruntime

    shape = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    if len(shape) != 4 or not all(isinstance(v, int) for v in shape[2:]):
        raise PrepareError(f"{path}: expected an image model with a fixed input [1, 3, H, W], got {shape}")
    return int(shape[2]), int(shape[3])


def _find_onnx(folder: Path, prefixes: tuple[str, ...], what: str) -> Path:
    found = sorted(p for p in folder.glob("*.onnx") if p.name.lower().startswith(prefixes))
    if not found:
        raise PrepareError(f"no {what} ONNX model ({' / '.join(p + '*.onnx' for p in prefixes)}) in {folder}; DWPose "
                           "needs yolox_l.onnx and dw-ll_ucoco_384.onnx (as comfyui_controlnet_aux keeps them)")
    return found[0]


def dwpose(folder: Path, threshold: float = 0.3) -> Callable[[VideoFrames], list[dict]]:
    """DWPose (YOLOX person detector + DWPose whole-body model) through rtmlib on onnxruntime -> POSE_KEYPOINT
    frames in pixels (points under ``threshold`` confidence are missing, ``0,0,0``), people by body confidence."""
    try:
        import onnxruntime
        from rtmlib import YOLOX, RTMPose
    except ImportError as exc:
        raise PrepareError(f"the dwpose estimator needs onnxruntime and rtmlib ({exc}): pip install onnxruntime; "
                           "pip install --no-deps rtmlib") from None
    from dreamdance_core.pose import from_pose_keypoint, to_pose_keypoint

    device = "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"
    det_path = _find_onnx(folder, ("yolox",), "person detector")
    pose_path = _find_onnx(folder, ("dw-ll", "dw-", "rtmw", "rtmpose"), "whole-body pose")
    det_h, det_w = _onnx_input_size(det_path)
    pose_h, pose_w = _onnx_input_size(pose_path)
    detector = YOLOX(str(det_path), model_input_size=(det_h, det_w), backend="onnxruntime", device=device)
    pose_model = RTMPose(str(pose_path), model_input_size=(pose_w, pose_h), to_openpose=True, backend="onnxruntime",
                         device=device)

    def points(keypoints: np.ndarray, scores: np.ndarray) -> list[float] | None:
        kept = scores >= threshold
        if not kept.any():
            return None
        values = np.concatenate([keypoints, scores[:, None]], axis=1) * kept[:, None]
        return [float(v) for v in values.reshape(-1)]

    def estimate(video: VideoFrames) -> list[dict]:
        height, width = video.frames.shape[1:3]
        frames = []
        for frame in video.frames:
            bgr = np.ascontiguousarray(frame[..., ::-1])  # rtmlib takes OpenCV's BGR frames
            boxes = detector(bgr)
            people = []
            if len(boxes):
                keypoints, scores = pose_model(bgr, bboxes=boxes)  # [people, 134, 2], [people, 134]
                for k, s in sorted(zip(keypoints, scores), key=lambda ks: -float(ks[1][_BODY].sum())):
                    body = points(k[_BODY], s[_BODY]) or [0.0] * 54
                    face_k = np.concatenate([k[_FACE], k[[14, 15]]])  # 68 + the two eyes = OpenPose's 70
                    face_s = np.concatenate([s[_FACE], s[[14, 15]]])
                    people.append({"pose_keypoints_2d": body, "face_keypoints_2d": points(face_k, face_s),
                                   "hand_left_keypoints_2d": points(k[_LEFT_HAND], s[_LEFT_HAND]),
                                   "hand_right_keypoints_2d": points(k[_RIGHT_HAND], s[_RIGHT_HAND])})
            frames.append({"people": people, "canvas_width": width, "canvas_height": height})
        return to_pose_keypoint(from_pose_keypoint(frames, canvas=(width, height)))

    return estimate
