"""Pose nodes: load, save, render, retarget, interpolate, smooth, sample, decode, and the in-graph skeleton editor.

Poses travel between nodes as ComfyUI's ``POSE_KEYPOINT`` (the list-of-frames format of comfyui_controlnet_aux), so
these nodes interoperate with its DWPose/OpenPose estimators. Every node converts to ``PoseSequence`` on entry and
back on exit; the work happens in ``dreamdance_core.pose``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..dreamdance_core.fit import LEGACY_FITS
from ..dreamdance_core.pose import (
    PoseError,
    RenderStyle,
    from_pose_keypoint,
    interpolate_keyframes,
    load_pose_file,
    parse_pose_json,
    render_poses,
    retarget,
    sample_dance,
    smooth_poses,
    to_pose_keypoint,
    write_openpose_files,
    write_pose_file,
)
from ..dreamdance_core.pose.decode import decode_body_images
from ..dreamdance_core.validation import check_filename_prefix
from ._common import fit_input, interrupt_check, uint8_to_comfy
from ._validate import check_pose_budget, queue_check

CATEGORY = "DreamDance/pose"
POSE = "POSE_KEYPOINT"
NO_FILE = "(none)"
MAX_SIZE = 8192


def _size_input(default: int, tooltip: str) -> tuple:
    return ("INT", {"default": default, "min": 0, "max": MAX_SIZE, "step": 8, "tooltip": tooltip})


def _canvas(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


def _pose_files() -> list[str]:
    """JSON files and folders of JSON files in ComfyUI's input folder (relative paths, sorted)."""
    import folder_paths

    root = Path(folder_paths.get_input_directory())
    if not root.is_dir():
        return []
    files = {str(p.relative_to(root)) for p in root.rglob("*.json")}
    folders = {str(Path(f).parent) + "/" for f in files if str(Path(f).parent) != "."}
    return sorted(files | folders)


class DreamDanceLoadPose:
    """A pose from JSON text or from a file (or a folder of per-frame OpenPose files) in the input folder."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": ([NO_FILE, *_pose_files()], {"tooltip": "A POSE_KEYPOINT or OpenPose .json file, or a folder "
                         "of per-frame OpenPose files, in ComfyUI's input folder. '(none)' reads the text below."}),
                "pose_json": ("STRING", {"multiline": True, "default": "", "tooltip": "POSE_KEYPOINT JSON (a list "
                              "of frames), one frame, or an OpenPose file; used when no file is chosen."}),
                "canvas_width": _size_input(0, "Canvas width for poses that carry none (OpenPose files); 0 = infer."),
                "canvas_height": _size_input(0, "Canvas height for poses that carry none; 0 = infer."),
            }
        }

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads poses: pixel or normalised coordinates, 18-point or BODY_25 bodies, with or without a canvas."

    @classmethod
    def IS_CHANGED(cls, file, **_):
        if file == NO_FILE:
            return ""
        import folder_paths

        path = Path(folder_paths.get_annotated_filepath(file))
        stamps = [p.stat().st_mtime_ns for p in ([path] if path.is_file() else sorted(path.glob("*.json")))]
        return str(stamps)

    @classmethod
    def VALIDATE_INPUTS(cls, file, pose_json, canvas_width, canvas_height):
        def parse():
            if file == NO_FILE and isinstance(pose_json, str):
                cls._text(pose_json, _canvas(canvas_width, canvas_height))

        values = {"file": file, "canvas_width": canvas_width, "canvas_height": canvas_height}
        return queue_check(cls, values, parse)

    @staticmethod
    def _text(pose_json: str, canvas):
        if not pose_json.strip():
            raise PoseError("no pose given: choose a file or paste POSE_KEYPOINT / OpenPose JSON into pose_json")
        try:
            return parse_pose_json(pose_json, canvas)
        except PoseError as error:
            raise PoseError(f"pose_json: {error}") from None

    def execute(self, file: str, pose_json: str, canvas_width: int, canvas_height: int):
        canvas = _canvas(canvas_width, canvas_height)
        if file != NO_FILE:
            import folder_paths

            return (to_pose_keypoint(load_pose_file(folder_paths.get_annotated_filepath(file), canvas)),)
        return (to_pose_keypoint(self._text(pose_json, canvas)),)


class DreamDanceSavePose:
    """Writes a pose to the output folder as one POSE_KEYPOINT file or one OpenPose file per frame."""

    DESCRIPTION = __doc__  # the docstring is the description ComfyUI shows

    FORMATS = ("POSE_KEYPOINT (one file)", "OpenPose (one file per frame)")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pose": (POSE, {"tooltip": "The pose sequence to save."}),
                "filename_prefix": ("STRING", {"default": "dreamdance/pose", "tooltip": "Path under the output folder; "
                                    "a counter is added so nothing is overwritten."}),
                "format": (cls.FORMATS, {"tooltip": "One POSE_KEYPOINT JSON list (pixel coordinates), or a folder of "
                           "OpenPose per-frame files (<name>_000000000000_keypoints.json)."}),
            }
        }

    RETURN_TYPES = ()
    FUNCTION = "execute"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix, format):
        return queue_check(cls, {"format": format}, lambda: check_filename_prefix(filename_prefix))

    def execute(self, pose, filename_prefix: str, format: str):
        import folder_paths

        check_filename_prefix(filename_prefix)
        seq = from_pose_keypoint(pose)
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), seq.canvas[0], seq.canvas[1]
        )
        stem = f"{name}_{counter:05}"
        if format == self.FORMATS[1]:
            paths = write_openpose_files(seq, Path(folder) / stem, prefix=name)
        else:
            paths = [write_pose_file(seq, Path(folder) / f"{stem}.json")]
        root = Path(folder_paths.get_output_directory())
        return {"ui": {"text": [str(Path(p).relative_to(root)) for p in paths[:1]]}}


class DreamDanceRenderPose:
    """Draws the skeletons as OpenPose maps (IMAGE batch), only points whose confidence passes the threshold."""

    DESCRIPTION = __doc__  # the docstring is the description ComfyUI shows

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pose": (POSE, {"tooltip": "The poses to draw, one image per frame."}),
                "width": _size_input(0, "Output width; 0 = the pose's canvas width."),
                "height": _size_input(0, "Output height; 0 = the pose's canvas height."),
                "fit": fit_input("stretch", *LEGACY_FITS),
                "draw_body": ("BOOLEAN", {"default": True, "tooltip": "Draw the 18-point body."}),
                "draw_hands": ("BOOLEAN", {"default": True, "tooltip": "Draw both hands."}),
                "draw_face": ("BOOLEAN", {"default": True, "tooltip": "Draw the 70 face points."}),
                "confidence_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                         "tooltip": "Points with this confidence or less are not drawn."}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("pose_images",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, width, height, fit, confidence_threshold):
        values = {"width": width, "height": height, "fit": fit, "confidence_threshold": confidence_threshold}
        return queue_check(cls, values)

    def execute(self, pose, width, height, fit, draw_body, draw_hands, draw_face, confidence_threshold):
        from ..dreamdance_core.validation import check_frames_budget

        frames = len(pose) if isinstance(pose, list) else 1
        canvas = (pose[0] if isinstance(pose, list) and pose else pose) if isinstance(pose, (list, dict)) else {}
        size = (width or _int(canvas, "canvas_width"), height or _int(canvas, "canvas_height"))
        # uint8 maps from the core + this IMAGE in float32: 5 bytes per channel and pixel
        check_frames_budget("Render Pose's images", frames, *size, copies=5 / 4)
        style = RenderStyle(body=draw_body, hands=draw_hands, face=draw_face, confidence_threshold=confidence_threshold)
        cancel_check = interrupt_check()
        images = render_poses(from_pose_keypoint(pose), width or None, height or None, style=style, fit=fit,
                              cancel_check=cancel_check)
        return (uint8_to_comfy(images, cancel_check),)


def _int(frame, key: str) -> int:
    """A frame's canvas side for the up-front memory estimate (0 when absent or not a number)."""
    value = frame.get(key) if isinstance(frame, dict) else None
    return int(value) if isinstance(value, (int, float)) and 0 < value < float("inf") else 0


class DreamDanceRetargetPose:
    """Fits a driving pose sequence to the reference person's body (bone lengths, position and size)."""

    DESCRIPTION = __doc__  # the docstring is the description ComfyUI shows

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "driving_pose": (POSE, {"tooltip": "The motion: poses detected on the driving video."}),
                "reference_pose": (POSE, {"tooltip": "The pose of the person in the reference image; the result is "
                                   "drawn on its canvas."}),
                "reference_frame": ("INT", {"default": 0, "min": 0, "max": 100_000, "tooltip": "Which frame of the "
                                    "reference pose holds the reference body."}),
                "reference_person": ("INT", {"default": 0, "min": 0, "max": 63, "tooltip": "Which person of that "
                                     "frame."}),
                "per_bone": ("BOOLEAN", {"default": True, "tooltip": "Give every bone the reference's length (the "
                             "driving pose keeps only its joint directions)."}),
                "alignment": (("root", "linear", "none"), {"tooltip": "root: put the driving neck on the reference "
                              "neck and scale by body size; linear: least-squares scale + shift over all joints; "
                              "none: only adapt to the reference canvas."}),
                "missing": (("repeat", "empty"), {"tooltip": "Frames without a person and missing joints: repeat "
                            "the last known pose, or leave them empty."}),
            }
        }

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY

    def execute(self, driving_pose, reference_pose, reference_frame, reference_person, per_bone, alignment, missing):
        result = retarget(
            from_pose_keypoint(driving_pose), from_pose_keypoint(reference_pose), reference_frame=reference_frame,
            reference_person=reference_person, per_bone=per_bone, alignment=alignment, missing=missing,
        )
        return (to_pose_keypoint(result),)


def parse_frame_list(text: str, num_keys: int, num_frames: int, name: str = "key_frame_indices") -> list[int]:
    """``"0, 12, 30"`` -> [0, 12, 30], each in ``0..num_frames-1`` and increasing; an empty text spreads ``num_keys``
    keys evenly over ``num_frames``. Errors name the input (``name``) and what to type instead."""
    if not text.strip():
        if num_keys > num_frames:
            raise PoseError(f"{num_keys} key poses do not fit into {num_frames} frame(s): give num_frames >= "
                            f"{num_keys}, or fewer key poses")
        if num_keys == 1:
            return [0]
        return [round(k * (num_frames - 1) / (num_keys - 1)) for k in range(num_keys)]
    try:
        keys = [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise PoseError(
            f"{name} must be whole numbers separated by commas, like '0, 12, 30'; got {text[:80]!r}"
        ) from None
    outside = [k for k in keys if not 0 <= k < num_frames]
    if outside:
        raise PoseError(f"{name}: frame {outside[0]} is outside the {num_frames} frame(s) (0..{num_frames - 1}); "
                        f"give indices in that range")
    if any(b <= a for a, b in zip(keys, keys[1:])):
        raise PoseError(f"{name} must increase, each frame once, like '0, 12, 30'; got {text[:80]!r}")
    return keys


class DreamDanceInterpolatePoses:
    """Turns a few key poses into a smooth sequence of any length."""

    DESCRIPTION = __doc__  # the docstring is the description ComfyUI shows

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "keyframes": (POSE, {"tooltip": "The key poses, one frame each, in time order."}),
                "num_frames": ("INT", {"default": 48, "min": 1, "max": 100_000, "tooltip": "Length of the result."}),
                "key_frame_indices": ("STRING", {"default": "", "tooltip": "Where each key pose sits, e.g. '0, 12, "
                                      "47'; empty = spread evenly from the first to the last frame."}),
                "method": (("cubic", "linear"), {"tooltip": "cubic: smooth motion through every key; linear: "
                           "straight lines between keys."}),
            }
        }

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, num_frames, key_frame_indices, method):
        def frames():
            if isinstance(num_frames, int) and isinstance(key_frame_indices, str):
                parse_frame_list(key_frame_indices, 1, num_frames)

        return queue_check(cls, {"num_frames": num_frames, "method": method}, frames)

    def execute(self, keyframes, num_frames, key_frame_indices, method):
        keys = from_pose_keypoint(keyframes)
        indices = parse_frame_list(key_frame_indices, keys.num_frames, num_frames)
        return (to_pose_keypoint(interpolate_keyframes(keys, indices, num_frames, method=method)),)


class DreamDanceSmoothPoses:
    """Removes jitter from detected poses (Gaussian over time; only seen points count)."""

    DESCRIPTION = __doc__  # the docstring is the description ComfyUI shows

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pose": (POSE, {"tooltip": "The pose sequence to smooth."}),
                "sigma": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip": "Strength in "
                          "frames (Gaussian standard deviation); 0 = unchanged."}),
            }
        }

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, sigma):
        return queue_check(cls, {"sigma": sigma})

    def execute(self, pose, sigma):
        return (to_pose_keypoint(smooth_poses(from_pose_keypoint(pose), sigma)),)


class DreamDanceSamplePose:
    """A built-in procedural dance, to try the pipeline without a driving video."""

    DESCRIPTION = __doc__  # the docstring is the description ComfyUI shows

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "num_frames": ("INT", {"default": 24, "min": 1, "max": 100_000, "tooltip": "Number of frames (the "
                               "dance loops every 24)."}),
                "width": ("INT", {"default": 512, "min": 8, "max": MAX_SIZE, "step": 8, "tooltip": "Canvas width."}),
                "height": ("INT", {"default": 768, "min": 8, "max": MAX_SIZE, "step": 8, "tooltip": "Canvas height."}),
            }
        }

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, num_frames, width, height):
        values = {"num_frames": num_frames, "width": width, "height": height}
        return queue_check(cls, values, lambda: check_pose_budget("Sample Pose's POSE_KEYPOINT", num_frames))

    def execute(self, num_frames, width, height):
        check_pose_budget("Sample Pose's POSE_KEYPOINT", num_frames)
        return (to_pose_keypoint(sample_dance(num_frames, width, height)),)


class DreamDancePoseFromImage:
    """Reads the body joints back from body-only OpenPose maps (one person; exact to the pixel)."""

    DESCRIPTION = __doc__  # the docstring is the description ComfyUI shows

    @classmethod
    def INPUT_TYPES(cls):
        tooltip = ("OpenPose maps drawn with the standard colours, body only (hands and face drawn over wrists and "
                   "nose hide them).")
        return {"required": {"pose_images": ("IMAGE", {"tooltip": tooltip})}}

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY

    def execute(self, pose_images):
        images = (pose_images[..., :3].clamp(0, 1) * 255).round().byte().cpu().numpy()
        return (to_pose_keypoint(decode_body_images(images, cancel_check=interrupt_check())),)


def default_editor_pose() -> str:
    """The editor's starting pose: 24 frames of the sample dance, body only, rounded to 0.1 px (small to store)."""
    seq = sample_dance(24, 512, 768)
    seq.face[:] = 0.0
    seq.hands[:] = 0.0
    seq.body[..., :2] = seq.body[..., :2].round(1)
    return json.dumps(to_pose_keypoint(seq), separators=(",", ":"))


class DreamDancePoseEditor:
    """Skeleton editor in the graph: drag joints, add/remove people, hide points, step through frames, mark keys.

    The edited pose is this node's ``pose_json`` widget (plain POSE_KEYPOINT JSON), saved with the workflow.
    """

    DESCRIPTION = ("Skeleton editor in the graph: drag joints, add or remove people, hide points, step through frames, "
                   "mark keyframes; the edited pose is saved with the workflow.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pose_json": ("STRING", {"multiline": True, "default": default_editor_pose(), "tooltip": "The edited "
                              "pose (POSE_KEYPOINT JSON), written by the editor; empty = take the input pose."}),
                "keyframes": ("STRING", {"default": "", "tooltip": "Frames marked as keys in the editor, e.g. "
                              "'0, 12'."}),
                "fill_between_keyframes": ("BOOLEAN", {"default": False, "tooltip": "Replace the frames between keys "
                                           "by a smooth interpolation of the key poses."}),
            },
            "optional": {
                "pose": (POSE, {"tooltip": "A pose to start from (e.g. from DWPose), used while the editor is empty; "
                         "the editor can load it after a run."}),
                "background": ("IMAGE", {"tooltip": "Shown behind the skeleton in the editor after a run."}),
            },
        }

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "execute"
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, pose_json, keyframes):
        def check():
            if not isinstance(pose_json, str) or pose_json.strip() in ("", "[]"):
                return  # the connected pose is used (checked when the node runs)
            seq = _editor_pose(pose_json)
            if isinstance(keyframes, str) and keyframes.strip():
                parse_frame_list(keyframes, 0, seq.num_frames, "keyframes")

        return queue_check(cls, {}, check)

    def execute(self, pose_json: str, keyframes: str, fill_between_keyframes: bool, pose=None, background=None):
        if pose_json.strip() in ("", "[]"):
            if pose is None:
                raise PoseError("the editor is empty and no pose is connected: edit a pose or connect one")
            seq = from_pose_keypoint(pose)
        else:
            seq = _editor_pose(pose_json)
        if fill_between_keyframes and keyframes.strip():
            keys = parse_frame_list(keyframes, 0, seq.num_frames, "keyframes")
            seq = interpolate_keyframes(seq.frames(keys), keys, seq.num_frames)
        ui = {"input_pose": [json.dumps(pose)] if pose is not None else []}
        if background is not None:
            ui["background"] = [_save_preview(background[0])]
        return {"ui": ui, "result": (to_pose_keypoint(seq),)}


def _editor_pose(pose_json: str):
    """The editor's pose_json -> PoseSequence; errors say where the text comes from."""
    try:
        return parse_pose_json(pose_json)
    except PoseError as error:
        raise PoseError(f"the Pose Editor's pose (pose_json): {error}") from None


def _save_preview(image) -> dict:
    """One IMAGE frame -> a PNG in ComfyUI's temp folder, as the ``/view`` reference the frontend loads."""
    import uuid

    import folder_paths
    from PIL import Image

    folder = Path(folder_paths.get_temp_directory())
    folder.mkdir(parents=True, exist_ok=True)
    name = f"dreamdance_pose_background_{uuid.uuid4().hex[:12]}.png"
    Image.fromarray((image[..., :3].clamp(0, 1) * 255).round().byte().cpu().numpy()).save(folder / name)
    return {"filename": name, "subfolder": "", "type": "temp"}


NODE_CLASS_MAPPINGS = {
    "DreamDanceLoadPose": DreamDanceLoadPose,
    "DreamDanceSavePose": DreamDanceSavePose,
    "DreamDanceRenderPose": DreamDanceRenderPose,
    "DreamDanceRetargetPose": DreamDanceRetargetPose,
    "DreamDanceInterpolatePoses": DreamDanceInterpolatePoses,
    "DreamDanceSmoothPoses": DreamDanceSmoothPoses,
    "DreamDanceSamplePose": DreamDanceSamplePose,
    "DreamDancePoseFromImage": DreamDancePoseFromImage,
    "DreamDancePoseEditor": DreamDancePoseEditor,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamDanceLoadPose": "Load Pose (DreamDance)",
    "DreamDanceSavePose": "Save Pose (DreamDance)",
    "DreamDanceRenderPose": "Render Pose (DreamDance)",
    "DreamDanceRetargetPose": "Retarget Pose to Reference (DreamDance)",
    "DreamDanceInterpolatePoses": "Interpolate Key Poses (DreamDance)",
    "DreamDanceSmoothPoses": "Smooth Poses (DreamDance)",
    "DreamDanceSamplePose": "Sample Dance Pose (DreamDance)",
    "DreamDancePoseFromImage": "Pose from Rendered Image (DreamDance)",
    "DreamDancePoseEditor": "Pose Editor (DreamDance)",
}
