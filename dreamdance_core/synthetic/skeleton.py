"""Forward kinematics of the mannequin: joint angles -> 3D OpenPose-18 joints and body primitives (world space).

Character frame: y up, the character faces +z, +x is the character's LEFT (so at yaw 0, facing a camera on the +z
axis, the character's right side appears on the image's left, as in OpenPose). The body is put on the ground plane
y = 0 by its lowest foot point; ``root_x`` / ``root_z`` move it on the ground.

Angles (radians) are one vector per frame in the order of :data:`DOFS`. Positive values mean: spine / head bend
forward, side-bend and tilt toward the character's left, twist / turn / yaw toward the character's left;
shoulder flexion raises the arm forward, abduction raises it sideways, elbow and knee bend the joint, hip flexion
lifts the thigh forward, hip abduction spreads the legs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose.schema import BODY_NAMES
from .character import Part, Proportions
from .raycast import Capsule, Ellipsoid, Primitive

DOFS: tuple[str, ...] = (
    "root_yaw", "root_pitch", "root_roll", "root_x", "root_z",
    "spine_bend", "spine_side", "spine_twist",
    "head_nod", "head_tilt", "head_turn",
    "r_shoulder_flex", "r_shoulder_abd", "r_shoulder_twist", "r_elbow",
    "l_shoulder_flex", "l_shoulder_abd", "l_shoulder_twist", "l_elbow",
    "r_hip_flex", "r_hip_abd", "r_knee",
    "l_hip_flex", "l_hip_abd", "l_knee",
)
DOF_INDEX = {name: i for i, name in enumerate(DOFS)}

# (low, high) limits in radians (metres for root_x / root_z); motions are clipped to them.
DOF_LIMITS: dict[str, tuple[float, float]] = {
    "root_yaw": (-np.inf, np.inf), "root_pitch": (-0.3, 0.3), "root_roll": (-0.3, 0.3),
    "root_x": (-0.6, 0.6), "root_z": (-0.6, 0.6),
    "spine_bend": (-0.4, 0.7), "spine_side": (-0.45, 0.45), "spine_twist": (-0.7, 0.7),
    "head_nod": (-0.5, 0.6), "head_tilt": (-0.4, 0.4), "head_turn": (-1.0, 1.0),
    "r_shoulder_flex": (-0.9, 3.0), "r_shoulder_abd": (0.05, 2.9), "r_shoulder_twist": (-1.0, 1.0),
    "r_elbow": (0.0, 2.4),
    "l_shoulder_flex": (-0.9, 3.0), "l_shoulder_abd": (0.05, 2.9), "l_shoulder_twist": (-1.0, 1.0),
    "l_elbow": (0.0, 2.4),
    "r_hip_flex": (-0.5, 1.9), "r_hip_abd": (-0.1, 0.9), "r_knee": (0.0, 2.2),
    "l_hip_flex": (-0.5, 1.9), "l_hip_abd": (-0.1, 0.9), "l_knee": (0.0, 2.2),
}

# Directions (head-ellipsoid frame, scaled by the radii onto its surface) of the facial keypoints.
_FACE_DIRECTIONS = {
    "nose": (0.0, -0.25, 1.0),
    "right_eye": (-0.38, 0.12, 1.0),
    "left_eye": (0.38, 0.12, 1.0),
    "right_ear": (-1.0, 0.0, 0.18),
    "left_ear": (1.0, 0.0, 0.18),
}


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class BodyPose:
    """One posed body in world space: ``joints`` ``[18, 3]`` in OpenPose-18 order (:data:`..pose.schema.BODY_NAMES`)
    and the ``primitives``."""

    joints: np.ndarray
    primitives: list[Primitive]


def _sphere(centre: np.ndarray, radius: float, part: Part) -> Ellipsoid:
    return Ellipsoid(centre, np.eye(3), np.full(3, radius), int(part))


def _ellipsoid_extent_y(e: Ellipsoid) -> float:
    """Half extent of an ellipsoid along world y."""
    return float(np.sqrt(np.sum((e.axes[1] * e.radii) ** 2)))


def _limb(
    start: np.ndarray, frame: np.ndarray, lengths: tuple[float, float], bend: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-bone chain hanging along -y of ``frame``: returns middle joint, end joint and the lower bone's frame."""
    middle = start + frame @ np.array([0.0, -lengths[0], 0.0])
    lower = frame @ bend
    return middle, middle + lower @ np.array([0.0, -lengths[1], 0.0]), lower


def pose_body(body: Proportions, angles: np.ndarray) -> BodyPose:
    """Forward kinematics for one frame of ``angles`` (``[len(DOFS)]``)."""
    a = {name: float(angles[i]) for name, i in DOF_INDEX.items()}
    pelvis_frame = rot_y(a["root_yaw"]) @ rot_x(a["root_pitch"]) @ rot_z(-a["root_roll"])
    chest_frame = pelvis_frame @ rot_y(a["spine_twist"]) @ rot_z(-a["spine_side"]) @ rot_x(a["spine_bend"])
    head_frame = chest_frame @ rot_y(a["head_turn"]) @ rot_z(-a["head_tilt"]) @ rot_x(a["head_nod"])
    pelvis = np.zeros(3)
    neck = chest_frame @ np.array([0.0, body.torso, 0.0])
    head_base = neck + head_frame @ np.array([0.0, body.neck_length, 0.0])
    head_radii = np.array(body.head_radii)
    head_centre = head_base + head_frame @ (np.array([0.0, 0.85, 0.08]) * head_radii)

    def face_point(name: str) -> np.ndarray:
        u = np.array(_FACE_DIRECTIONS[name])
        return head_centre + head_frame @ (head_radii * u / np.linalg.norm(u))

    joints = {name: face_point(name) for name in _FACE_DIRECTIONS}
    joints["neck"] = neck
    eye_radius = 0.12 * head_radii[0]
    prims: list[Primitive] = [
        Ellipsoid(head_centre, head_frame, head_radii, int(Part.HEAD)),
        Ellipsoid(
            head_centre + head_frame @ (np.array([0.0, 0.1, -0.12]) * head_radii),
            head_frame,
            head_radii * np.array([1.0, 1.0, 0.96]) * body.hair_scale,
            int(Part.HAIR),
        ),
        Capsule(neck, head_base + head_frame @ np.array([0.0, 0.3 * head_radii[1], 0.0]), body.r_neck, int(Part.NECK)),
        Ellipsoid(
            chest_frame @ np.array([0.0, 0.56 * body.torso, 0.0]),
            chest_frame,
            np.array([0.85 * body.shoulder_half_width, 0.46 * body.torso, body.chest_depth]),
            int(Part.CHEST),
        ),
        Ellipsoid(
            pelvis_frame @ np.array([0.0, 0.08 * body.torso, 0.0]),
            pelvis_frame,
            np.array([1.9 * body.hip_half_width + body.r_thigh * 0.5, 0.24 * body.torso, body.pelvis_depth]),
            int(Part.PELVIS),
        ),
    ]
    for side, name, s in (("r", "right", -1.0), ("l", "left", 1.0)):  # side: DOF prefix; name: joint prefix
        eye_surface = joints[f"{name}_eye"]
        prims.append(_sphere(eye_surface - 0.5 * eye_radius * (eye_surface - head_centre) /
                             np.linalg.norm(eye_surface - head_centre), eye_radius, Part[f"{side.upper()}_EYE"]))
        shoulder = neck + chest_frame @ np.array([s * body.shoulder_half_width, 0.0, 0.0])
        arm_frame = (chest_frame @ rot_z(s * a[f"{side}_shoulder_abd"]) @ rot_x(-a[f"{side}_shoulder_flex"])
                     @ rot_y(s * a[f"{side}_shoulder_twist"]))
        elbow, wrist, fore_frame = _limb(shoulder, arm_frame, (body.upper_arm, body.forearm),
                                         rot_x(-a[f"{side}_elbow"]))
        hip = pelvis + pelvis_frame @ np.array([s * body.hip_half_width, 0.0, 0.0])
        thigh_frame = pelvis_frame @ rot_z(s * a[f"{side}_hip_abd"]) @ rot_x(-a[f"{side}_hip_flex"])
        knee, ankle, shin_frame = _limb(hip, thigh_frame, (body.thigh, body.shin), rot_x(a[f"{side}_knee"]))
        # The foot stays level with the pelvis: undo the thigh's and shin's flexion.
        foot_frame = shin_frame @ rot_x(a[f"{side}_hip_flex"] - a[f"{side}_knee"])
        joints.update({f"{name}_shoulder": shoulder, f"{name}_elbow": elbow, f"{name}_wrist": wrist,
                       f"{name}_hip": hip, f"{name}_knee": knee, f"{name}_ankle": ankle})
        p = side.upper()
        prims += [
            Capsule(shoulder, elbow, body.r_upper_arm, int(Part[f"{p}_UPPER_ARM"])),
            Capsule(elbow, wrist, body.r_forearm, int(Part[f"{p}_FOREARM"])),
            _sphere(wrist + fore_frame @ np.array([0.0, -0.9 * body.r_hand, 0.0]), body.r_hand, Part[f"{p}_HAND"]),
            Capsule(hip, knee, body.r_thigh, int(Part[f"{p}_THIGH"])),
            Capsule(knee, ankle, body.r_shin, int(Part[f"{p}_SHIN"])),
            Ellipsoid(
                ankle + foot_frame @ np.array([0.0, -0.55 * body.ankle_height, 0.28 * body.foot_length]),
                foot_frame,
                np.array([body.foot_half_width, 0.6 * body.ankle_height, 0.5 * body.foot_length]),
                int(Part[f"{p}_FOOT"]),
            ),
        ]
    shoulders = (joints["right_shoulder"], joints["left_shoulder"])
    prims.append(Capsule(*shoulders, 1.1 * body.r_upper_arm, int(Part.SHOULDERS)))
    feet = [p for p in prims if p.part in (Part.R_FOOT, Part.L_FOOT)]
    ground = min(float(f.centre[1]) - _ellipsoid_extent_y(f) for f in feet)
    offset = np.array([a["root_x"], -ground, a["root_z"]])
    return BodyPose(
        joints=np.stack([joints[name] for name in BODY_NAMES]) + offset,
        primitives=[p.transformed(np.eye(3), offset) for p in prims],
    )
