"""Stage-1 nodes: load the geometry model, window options, pose -> depth/normal, geometry preview.

Each node reads its inputs, converts them (``_common``), calls one core function and converts back.
"""

from __future__ import annotations

from ..dreamdance_core.fit import DEFAULT_FIT
from ..dreamdance_core.precision import DEFAULT_PRECISION, PRECISION_HELP, PRECISIONS
from ..dreamdance_core.sampling.schedulers import STAGE1_DEFAULT, STAGE1_SCHEDULERS
from ._common import (
    COMPILE_HELP,
    DEMO,
    KEEP_LOADED_HELP,
    TINY_DEMO,
    choices,
    comfy_to_core,
    core_to_comfy,
    fit_input,
    interrupt_check,
    model_file,
    progress_callback,
    run_on_device,
)
from ._validate import queue_check

GEOMETRY_MODEL = "DREAMDANCE_GEOMETRY_MODEL"
WINDOWS = "DREAMDANCE_WINDOWS"
STAGE1_MARKER = "adapter/config.json"
HOW_TO_GET_STAGE1 = (
    "Put a DreamDance Stage-1 weights folder (written by train/stage1.py: reference_unet/, denoising_unet/, "
    "pose_guider/, adapter/) into ComfyUI/models/dreamdance/."
)
PRECISION_INPUT = (list(PRECISIONS), {"default": DEFAULT_PRECISION, "tooltip": f"Weight precision. {PRECISION_HELP}"})


def model_dtype(precision: str):
    """The loaders' ``precision`` -> the models' dtype on ComfyUI's torch device (:mod:`dreamdance_core.precision`)."""
    import comfy.model_management as mm

    from ..dreamdance_core.precision import resolve_dtype

    return resolve_dtype(precision, mm.get_torch_device())


def prepare_models(pipeline) -> None:
    """On a CUDA device: TF32 for fp32 work, and channels_last when ComfyUI runs with ``--force-channels-last``."""
    import comfy.model_management as mm

    from ..dreamdance_core.precision import prepare_for_device

    channels_last = getattr(mm, "force_channels_last", lambda: False)()
    prepare_for_device(pipeline.modules(), mm.get_torch_device(), channels_last=channels_last)


def _stage1_choices() -> list[str]:
    from ..dreamdance_core.demo import stage1_demo
    from ._common import weight_choices

    return weight_choices(STAGE1_MARKER, stage1_demo())


class DreamDanceGeometryModelLoader:
    """Stage 1 (geometry diffusion): DreamDance weights + SD1.5 base + CLIP image encoder."""

    CATEGORY = "DreamDance/geometry"
    RETURN_TYPES = (GEOMETRY_MODEL,)
    RETURN_NAMES = ("geometry_model",)
    FUNCTION = "load"
    DESCRIPTION = "Loads the Stage-1 model that turns a reference image and skeletons into depth and normal maps."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "stage1_weights": (_stage1_choices(), {"tooltip": "DreamDance Stage-1 weights folder in "
                                   f"models/dreamdance. '{DEMO}' is the small model shipped with the pack, trained on "
                                   "synthetic mannequins at 64x96 (sample at that size; it carries its own VAE and "
                                   "image encoder, so base_checkpoint and clip_vision are not used). "
                                   f"'{TINY_DEMO}' builds a tiny untrained model: it runs the whole graph in "
                                   "seconds, but its maps are noise."}),
                "base_checkpoint": (choices("checkpoints"), {"tooltip": "SD1.5 checkpoint (models/checkpoints) "
                                    "supplying the VAE, and the UNets when the weights folder lacks them."}),
                "clip_vision": (choices("clip_vision"), {"tooltip": "CLIP image encoder for the reference image "
                                "(models/clip_vision); '(none)' if the weights folder carries image_encoder/."}),
                "precision": PRECISION_INPUT,
                "keep_loaded": ("BOOLEAN", {"default": False, "tooltip": KEEP_LOADED_HELP}),
            }
        }

    def load(self, stage1_weights, base_checkpoint, clip_vision, precision, keep_loaded):
        from ..dreamdance_core.sources import WEIGHTS, geometry_pipeline
        from ._common import resolve_weight_folder, weight_source

        source, folder, base, encoder = weight_source(stage1_weights), None, None, None
        if source == WEIGHTS:
            folder = resolve_weight_folder(stage1_weights, "DreamDance Stage-1 weights", HOW_TO_GET_STAGE1)
            base, encoder = model_file("checkpoints", base_checkpoint), model_file("clip_vision", clip_vision)
        pipeline = geometry_pipeline(source, folder, base, encoder, dtype=model_dtype(precision))
        prepare_models(pipeline)
        pipeline.keep_loaded = keep_loaded
        return (pipeline,)


class DreamDanceWindowOptions:
    """Overlapping windows for long videos, shared by the geometry and animate nodes."""

    CATEGORY = "DreamDance/video"
    RETURN_TYPES = (WINDOWS,)
    RETURN_NAMES = ("windows",)
    FUNCTION = "build"
    DESCRIPTION = "At every denoising step, denoise overlapping windows of frames and blend the overlaps."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "length": ("INT", {"default": 16, "min": 2, "max": 256, "tooltip": "Frames per window (the models "
                           "are trained on 16)."}),
                "overlap": ("INT", {"default": 4, "min": 0, "max": 255, "tooltip": "Frames shared by neighbouring "
                            "windows; must be smaller than the length."}),
                "weighting": (["flat", "pyramid"], {"default": "flat", "tooltip": "flat: plain average of the "
                              "overlaps (the paper). pyramid: weights taper towards window edges (smoother "
                              "hand-offs)."}),
                "retain_first_frame": ("BOOLEAN", {"default": False, "tooltip": "Put frame 0 into every window so "
                                       "each window sees the frame closest to the reference."}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, length, overlap):
        def smaller():
            if isinstance(length, int) and isinstance(overlap, int) and overlap >= length:
                raise ValueError(f"overlap ({overlap}) must be smaller than length ({length}); lower overlap to at "
                                 f"most {length - 1}")

        return queue_check(cls, {"length": length, "overlap": overlap}, smaller)

    def build(self, length, overlap, weighting, retain_first_frame):
        from ..dreamdance_core.sampling.windows import WindowOptions

        return (WindowOptions(length=length, overlap=overlap, weighting=weighting, retain_first=retain_first_frame),)


def _pose_maps(pose_keypoint, pose_images, width: int, height: int, fit: str, cancel_check=None):
    """Core pose maps ``[F, 3, H, W]`` from either a POSE_KEYPOINT or rendered pose IMAGEs (exactly one), placed by
    the fit policy like the reference image."""
    from ..dreamdance_core.media import fit_images, from_uint8
    from ..dreamdance_core.pose import from_pose_keypoint, render_poses

    if (pose_keypoint is None) == (pose_images is None):
        raise ValueError("connect exactly one pose input: pose_keypoint (skeleton keypoints) or pose_images (rendered)")
    if pose_keypoint is not None:
        poses = render_poses(from_pose_keypoint(pose_keypoint), width, height, fit=fit, cancel_check=cancel_check)
        return from_uint8(poses)
    return fit_images(comfy_to_core(pose_images), width, height, fit)


class DreamDancePoseToGeometry:
    """Stage 1: reference image + skeletons -> depth, normal (and low-res RGB) per frame."""

    CATEGORY = "DreamDance/geometry"
    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "IMAGE")
    RETURN_NAMES = ("depth", "normal", "rgb", "pose_images")
    FUNCTION = "generate"
    DESCRIPTION = ("Generates mutually aligned depth and normal maps for every pose, in the body shape of the "
                   "reference person (DreamDance Stage 1, multi-domain CFG).")

    @classmethod
    def INPUT_TYPES(cls):
        scale = {"min": 1.0, "max": 20.0, "step": 0.1}
        return {
            "required": {
                "geometry_model": (GEOMETRY_MODEL, {"tooltip": "From DreamDance Geometry Model Loader."}),
                "reference": ("IMAGE", {"tooltip": "The person to animate (first image of the batch is used)."}),
                "width": ("INT", {"default": 256, "min": 64, "max": 2048, "step": 8, "tooltip": "Sampling width "
                          "(multiple of 8; the paper trains Stage 1 at 256x384)."}),
                "height": ("INT", {"default": 384, "min": 64, "max": 2048, "step": 8, "tooltip": "Sampling height "
                           "(multiple of 8)."}),
                "steps": ("INT", {"default": 25, "min": 1, "max": 200, "tooltip": "Denoising steps (trailing "
                          "spacing). The demo checkpoint: 1 (its clean estimate from pure noise scores best)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": "Noise seed."}),
                "cfg_rgb": ("FLOAT", {"default": 3.5, **scale, "tooltip": "Guidance for the RGB domain (ordinary "
                            "CFG; the paper's s = cfg - 1; 1 = no guidance)."}),
                "cfg_normal": ("FLOAT", {"default": 2.5, **scale, "tooltip": "Guidance for the normal maps; the "
                               "paper reports normals over-saturate at high guidance, so keep it lower."}),
                "cfg_depth": ("FLOAT", {"default": 3.5, **scale, "tooltip": "Guidance for the depth maps."}),
            },
            "optional": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "Skeleton keypoints (DWPose/OpenPose nodes, the "
                                  "DreamDance pose nodes or editor). Connect this or pose_images."}),
                "pose_images": ("IMAGE", {"tooltip": "Rendered OpenPose skeleton images, one per frame. Connect "
                                "this or pose_keypoint."}),
                "windows": (WINDOWS, {"tooltip": "Window options for long sequences (default: all frames at once)."}),
                "fit": fit_input(),
                "scheduler": (list(STAGE1_SCHEDULERS), {"default": STAGE1_DEFAULT, "tooltip": "Sampler: ddim (the "
                              "default; the AnimateAnyone family's), euler, euler ancestral (fresh noise every step, "
                              "from the seed) or dpm++ 2m; all over the model's own noise schedule."}),
                "compile": ("BOOLEAN", {"default": False, "tooltip": COMPILE_HELP}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, cfg_rgb, cfg_normal, cfg_depth):
        # ComfyUI's own FLOAT check lets NaN through (NaN < min is False): a NaN scale gave blank maps
        return queue_check(cls, {"cfg_rgb": cfg_rgb, "cfg_normal": cfg_normal, "cfg_depth": cfg_depth})

    def generate(self, geometry_model, reference, width, height, steps, seed, cfg_rgb, cfg_normal, cfg_depth,
                 pose_keypoint=None, pose_images=None, windows=None, fit=DEFAULT_FIT, scheduler=STAGE1_DEFAULT,
                 compile=False):
        from ..dreamdance_core.media import fit_images
        from ..dreamdance_core.memory import stage1_memory, vae_decode_dtype
        from ..dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry
        from ..dreamdance_core.sampling.windows import window_indices

        cancel_check = interrupt_check()
        poses = _pose_maps(pose_keypoint, pose_images, width, height, fit, cancel_check)
        reference = fit_images(comfy_to_core(reference)[:1], width, height, fit)
        callback = progress_callback(steps * len(window_indices(max(1, poses.shape[0]), windows)))
        pipeline = geometry_model
        dtype = pipeline.model.denoising_unet.dtype
        options = Stage1Options(steps=steps, guidance=(cfg_rgb, cfg_normal, cfg_depth), windows=windows, seed=seed,
                                scheduler=scheduler, compile=compile)
        memory = stage1_memory(options, poses.shape[0], width, height, dtype, vae_decode_dtype(pipeline.vae))
        with run_on_device(pipeline, getattr(pipeline, "keep_loaded", False), memory) as device:
            result = sample_geometry(pipeline, reference.to(device, dtype), poses.to(device, dtype), options, callback,
                                     cancel_check=cancel_check)
        return tuple(core_to_comfy(x) for x in (result.depth, result.normal, result.rgb, poses))


class DreamDanceGeometryPreview:
    """Reference, pose, normal and colour-mapped depth side by side, per frame."""

    CATEGORY = "DreamDance/geometry"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("preview",)
    FUNCTION = "preview"
    OUTPUT_NODE = True
    DESCRIPTION = "Shows the generated geometry next to the pose and reference, one row per frame."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "depth": ("IMAGE", {"tooltip": "Depth maps (bright = near)."}),
                "normal": ("IMAGE", {"tooltip": "Normal maps."}),
            },
            "optional": {
                "pose_images": ("IMAGE", {"tooltip": "Rendered poses, one per frame (or one for all)."}),
                "reference": ("IMAGE", {"tooltip": "Reference image (shown in every row)."}),
            },
        }

    def preview(self, depth, normal, pose_images=None, reference=None):
        import torch

        from ..dreamdance_core.media import geometry_panels

        panels = geometry_panels(
            comfy_to_core(depth), comfy_to_core(normal),
            None if pose_images is None else comfy_to_core(pose_images),
            None if reference is None else comfy_to_core(reference[:1]),
        )
        return {"ui": {"images": _save_temp(panels, "dreamdance_geometry")},
                "result": (torch.from_numpy(panels).float() / 255.0,)}


def _save_temp(frames, prefix: str) -> list[dict]:
    """Write ``uint8 [F, H, W, 3]`` frames to ComfyUI's temp folder and describe them for the UI."""
    import uuid
    from pathlib import Path

    import folder_paths
    from PIL import Image

    folder = Path(folder_paths.get_temp_directory())
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}_{uuid.uuid4().hex[:8]}"
    results = []
    for index, frame in enumerate(frames):
        name = f"{stem}_{index:05d}.png"
        Image.fromarray(frame).save(folder / name, compress_level=1)
        results.append({"filename": name, "subfolder": "", "type": "temp"})
    return results


NODE_CLASS_MAPPINGS = {
    "DreamDanceGeometryModelLoader": DreamDanceGeometryModelLoader,
    "DreamDanceWindowOptions": DreamDanceWindowOptions,
    "DreamDancePoseToGeometry": DreamDancePoseToGeometry,
    "DreamDanceGeometryPreview": DreamDanceGeometryPreview,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamDanceGeometryModelLoader": "DreamDance Geometry Model Loader",
    "DreamDanceWindowOptions": "DreamDance Window Options",
    "DreamDancePoseToGeometry": "DreamDance Pose to Geometry",
    "DreamDanceGeometryPreview": "DreamDance Geometry Preview",
}
