"""Render a posed mannequin: RGB (Lambert shading over a gradient background), exact depth, exact normals, mask
and the OpenPose-18 keypoints of its joints.

Keypoint confidence (our documented choice; positions are always the exact projection of the 3D joint):

- ``1.0``: the joint projects inside the canvas and is visible: the camera ray through the keypoint first hits a
  body part that belongs to the joint (for the elbow: upper arm or forearm); for the face points (nose, eyes,
  ears), which lie on the head surface, nothing may be in front of the point either.
- ``0.5``: a body joint (neck, shoulders, elbows, wrists, hips, knees, ankles) inside the canvas but occluded by
  another part, like a detector's confident guess through an occlusion.
- ``0.0``: a face point that is hidden (the head turned away or covered), or any joint outside the canvas. The
  coordinates are still the projection; consumers that treat confidence 0 as missing drop them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..pose.schema import BODY_NAMES
from .camera import Camera, Intrinsics
from .character import Character, Part
from .raycast import Hits, cast_image, cast_rays
from .skeleton import BodyPose, pose_body

OCCLUDED_CONFIDENCE = 0.5

_FACE_POINTS = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
_OWNERS: dict[str, tuple[Part, ...]] = {
    "nose": (Part.HEAD,),
    "right_eye": (Part.HEAD, Part.R_EYE),
    "left_eye": (Part.HEAD, Part.L_EYE),
    "right_ear": (Part.HEAD, Part.HAIR),
    "left_ear": (Part.HEAD, Part.HAIR),
    "neck": (Part.NECK, Part.SHOULDERS, Part.CHEST),
}
for _side, _s in (("right", "R"), ("left", "L")):
    _OWNERS.update({
        f"{_side}_shoulder": (Part.SHOULDERS, Part[f"{_s}_UPPER_ARM"], Part.CHEST),
        f"{_side}_elbow": (Part[f"{_s}_UPPER_ARM"], Part[f"{_s}_FOREARM"]),
        f"{_side}_wrist": (Part[f"{_s}_FOREARM"], Part[f"{_s}_HAND"]),
        f"{_side}_hip": (Part.PELVIS, Part[f"{_s}_THIGH"]),
        f"{_side}_knee": (Part[f"{_s}_THIGH"], Part[f"{_s}_SHIN"]),
        f"{_side}_ankle": (Part[f"{_s}_SHIN"], Part[f"{_s}_FOOT"]),
    })
# [18, NUM_PARTS] bool: which parts make a keypoint visible when its ray hits them first.
JOINT_OWNERS = np.zeros((len(BODY_NAMES), len(Part)), dtype=bool)
for _j, _name in enumerate(BODY_NAMES):
    JOINT_OWNERS[_j, list(_OWNERS[_name])] = True
_IS_FACE = np.array([name in _FACE_POINTS for name in BODY_NAMES])


@dataclass(frozen=True)
class Scene:
    """Everything around the character: camera, background gradient (top, bottom RGB in 0..1), light."""

    seed: int
    camera: Camera
    background_top: np.ndarray
    background_bottom: np.ndarray
    light_direction: np.ndarray  # camera space, unit, pointing toward the light
    ambient: float


def random_scene(seed: int, width: int, height: int) -> Scene:
    """Camera 2.6-4.2 m away at 0.7-1.4 m height, orbiting up to +-0.6 rad around the dancer; vertical field of
    view 32-44 degrees (framing adapts to the aspect ratio); random gradient background and light."""
    rng = np.random.default_rng([seed, 0x5CE7])
    distance, cam_height, yaw = rng.uniform(2.6, 4.2), rng.uniform(0.7, 1.4), rng.uniform(-0.6, 0.6)
    fov = rng.uniform(32.0, 44.0) * max(1.0, width / height)
    intrinsics = Intrinsics.from_fov(width, height, min(fov, 80.0))
    target = np.array([0.0, rng.uniform(0.8, 1.0), 0.0])
    position = np.array([distance * np.sin(yaw), cam_height, distance * np.cos(yaw)])
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.2, 0.8), 1.0])
    return Scene(
        seed=int(seed),
        camera=Camera.look_at(intrinsics, position, target),
        background_top=rng.uniform(0.0, 1.0, 3),
        background_bottom=rng.uniform(0.0, 1.0, 3),
        light_direction=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.3, 0.45)),
    )


@dataclass
class Frames:
    """Rendered frames with exact ground truth.

    ``rgb`` uint8 ``[F, H, W, 3]``; ``depth`` float32 ``[F, H, W]`` camera-space depth in metres, ``+inf`` on the
    background; ``normal`` float32 ``[F, H, W, 3]`` camera-space unit normals (x right, y up, z toward the camera),
    zero on the background; ``mask`` bool ``[F, H, W]``; ``part`` int32 ``[F, H, W]`` (:class:`Part`, -1 = background);
    ``keypoints`` float32 ``[F, 18, 3]`` OpenPose-18 ``(x, y, confidence)`` in pixels (see the module docstring);
    ``joints_camera`` float64 ``[F, 18, 3]`` the 3D joints in camera space.
    """

    rgb: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    mask: np.ndarray
    part: np.ndarray
    keypoints: np.ndarray
    joints_camera: np.ndarray

    @property
    def width(self) -> int:
        return int(self.rgb.shape[2])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[1])

    def pose_keypoints(self) -> list[dict]:
        """The keypoints as a ``POSE_KEYPOINT`` list (one dict per frame, one person, pixel coordinates)."""
        return [keypoints_to_pose_frame(kp, self.width, self.height) for kp in self.keypoints]


def keypoints_to_pose_frame(keypoints: np.ndarray, width: int, height: int) -> dict:
    """One frame of ``POSE_KEYPOINT`` (comfyui_controlnet_aux format) from ``[18, 3]`` pixel keypoints."""
    return {
        "people": [
            {
                "pose_keypoints_2d": [round(float(v), 3) for v in keypoints.reshape(-1)],
                "face_keypoints_2d": None,
                "hand_left_keypoints_2d": None,
                "hand_right_keypoints_2d": None,
            }
        ],
        "canvas_width": int(width),
        "canvas_height": int(height),
    }


def shade(hits: Hits, character: Character, scene: Scene) -> np.ndarray:
    """Lambert-shaded RGB uint8 ``[H, W, 3]`` over the scene's vertical background gradient."""
    height, width = hits.part.shape
    ramp = ((np.arange(height) + 0.5) / height)[:, None, None]
    background = (1.0 - ramp) * scene.background_top + ramp * scene.background_bottom  # [H, 1, 3]
    rgb = np.broadcast_to(_to_uint8(background), (height, width, 3)).copy()
    fg = hits.part >= 0
    lambert = np.clip(hits.normal[fg] @ scene.light_direction, 0.0, 1.0)
    rgb[fg] = _to_uint8(character.colours[hits.part[fg]] * (scene.ambient + (1.0 - scene.ambient) * lambert)[:, None])
    return rgb


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def joint_keypoints(joints_cam: np.ndarray, primitives: list, intrinsics: Intrinsics) -> np.ndarray:
    """``[18, 3]`` pixel keypoints with visibility confidences for camera-space joints and primitives."""
    xy, depth = intrinsics.project(joints_cam)
    hits = cast_rays(primitives, joints_cam / np.linalg.norm(joints_cam, axis=-1, keepdims=True))
    owned = JOINT_OWNERS[np.arange(len(joints_cam)), np.maximum(hits.part, 0)] & (hits.part >= 0)
    # A face point lies on the head surface: anything hit clearly in front of it hides it.
    in_front = hits.depth < depth - 0.02
    visible = owned & ~(_IS_FACE & in_front)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < intrinsics.width) & (xy[:, 1] >= 0) & (xy[:, 1] < intrinsics.height)
    inside &= depth > 0
    conf = np.where(visible, 1.0, np.where(_IS_FACE, 0.0, OCCLUDED_CONFIDENCE)) * inside
    return np.concatenate([xy, conf[:, None]], axis=1).astype(np.float32)


def render_pose(character: Character, scene: Scene, angles: np.ndarray) -> Frames:
    """Render one pose (``angles`` ``[len(DOFS)]``) as a one-frame :class:`Frames`."""
    camera = scene.camera
    world: BodyPose = pose_body(character.body, angles)
    prims = [p.transformed(camera.rotation, camera.translation) for p in world.primitives]
    joints_cam = camera.to_camera(world.joints)
    hits = cast_image(prims, camera.intrinsics)
    return Frames(
        rgb=shade(hits, character, scene)[None],
        depth=hits.depth.astype(np.float32)[None],
        normal=hits.normal.astype(np.float32)[None],
        mask=(hits.part >= 0)[None],
        part=hits.part.astype(np.int32)[None],
        keypoints=joint_keypoints(joints_cam, prims, camera.intrinsics)[None],
        joints_camera=joints_cam[None],
    )


def render_frames(character: Character, scene: Scene, angles: np.ndarray) -> Frames:
    """Render every row of ``angles`` (``[F, len(DOFS)]``)."""
    rendered = [render_pose(character, scene, a) for a in np.atleast_2d(angles)]
    return Frames(**{f.name: np.concatenate([getattr(r, f.name) for r in rendered]) for f in fields(Frames)})
