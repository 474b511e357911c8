"""Skeleton poses: schema, ``PoseSequence``, POSE_KEYPOINT / OpenPose JSON io, rendering, retargeting, keyframes.

Plain numpy + OpenCV; never imports ComfyUI.
"""

from .interpolate import interpolate_keyframes, smooth_poses
from .io import (
    from_pose_keypoint,
    load_pose_file,
    parse_pose_json,
    to_openpose_frames,
    to_pose_keypoint,
    write_openpose_files,
    write_pose_file,
)
from .render import RenderStyle, render_poses
from .retarget import bone_lengths, retarget
from .sample import sample_dance
from .sequence import MAX_PEOPLE, PoseError, PoseSequence

__all__ = [
    "MAX_PEOPLE", "PoseError", "PoseSequence", "RenderStyle", "bone_lengths", "from_pose_keypoint",
    "interpolate_keyframes", "load_pose_file", "parse_pose_json", "render_poses", "retarget", "sample_dance",
    "smooth_poses", "to_openpose_frames", "to_pose_keypoint", "write_openpose_files", "write_pose_file",
]
