"""Stage-2 nodes: load the video model, animate a reference image from pose / depth / normal maps."""

from __future__ import annotations

from ..dreamdance_core.fit import DEFAULT_FIT
from ..dreamdance_core.sampling.schedulers import STAGE2_DEFAULT, STAGE2_SCHEDULERS
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
from .control import CONTROL_MAPS
from .geometry import PRECISION_INPUT, WINDOWS, model_dtype, prepare_models

VIDEO_MODEL = "DREAMDANCE_VIDEO_MODEL"
STAGE2_MARKER = "controller/config.json"
HOW_TO_GET_STAGE2 = (
    "Put a DreamDance Stage-2 weights folder (written by train/stage2.py: controller/, controlnet/) into "
    "ComfyUI/models/dreamdance/."
)


def _stage2_choices() -> list[str]:
    from ..dreamdance_core.demo import stage2_demo
    from ._common import weight_choices

    return weight_choices(STAGE2_MARKER, stage2_demo())


class DreamDanceVideoModelLoader:
    """Stage 2 (cross-domain controlled SVD): DreamDance controller + ControlNet weights and SVD."""

    CATEGORY = "DreamDance/video"
    RETURN_TYPES = (VIDEO_MODEL,)
    RETURN_NAMES = ("video_model",)
    FUNCTION = "load"
    DESCRIPTION = "Loads Stable Video Diffusion with the DreamDance cross-domain controller and SVD ControlNet."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "stage2_weights": (_stage2_choices(), {"tooltip": "DreamDance Stage-2 weights folder in "
                                   f"models/dreamdance. '{DEMO}' is the small model shipped with the pack, trained on "
                                   "synthetic mannequins at 64x96 over a small SVD of its own (sample at that size; "
                                   "svd_checkpoint is not used). "
                                   f"'{TINY_DEMO}' builds a tiny untrained model: it runs the whole graph in "
                                   "seconds, but its frames are noise."}),
                "svd_checkpoint": (choices("checkpoints"), {"tooltip": "Stable Video Diffusion img2vid 1.1 "
                                   "checkpoint (e.g. svd_xt_1_1.safetensors); '(none)' if the weights folder "
                                   "carries svd/."}),
                "precision": PRECISION_INPUT,
                "keep_loaded": ("BOOLEAN", {"default": False, "tooltip": KEEP_LOADED_HELP}),
            }
        }

    def load(self, stage2_weights, svd_checkpoint, precision, keep_loaded):
        from ..dreamdance_core.sources import WEIGHTS, video_pipeline
        from ._common import resolve_weight_folder, weight_source

        source, folder, svd = weight_source(stage2_weights), None, None
        if source == WEIGHTS:
            folder = resolve_weight_folder(stage2_weights, "DreamDance Stage-2 weights", HOW_TO_GET_STAGE2)
            svd = model_file("checkpoints", svd_checkpoint)
        pipeline = video_pipeline(source, folder, svd, dtype=model_dtype(precision))
        prepare_models(pipeline)
        pipeline.keep_loaded = keep_loaded
        return (pipeline,)


class DreamDanceAnimate:
    """Stage 2: reference image + control maps (pose / depth / normal inputs, a control-map list) -> video frames."""

    CATEGORY = "DreamDance/video"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    FUNCTION = "animate"
    DESCRIPTION = ("Animates the reference image with Stable Video Diffusion guided by pose, depth and normal maps "
                   "through the cross-domain controller (DreamDance Stage 2). One output frame per control frame.")

    @classmethod
    def INPUT_TYPES(cls):
        strength = {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05}
        absent = " in the controller: 0 = as if they were absent (black maps), 1 = as given."
        return {
            "required": {
                "video_model": (VIDEO_MODEL, {"tooltip": "From DreamDance Video Model Loader."}),
                "reference": ("IMAGE", {"tooltip": "The person to animate (first image of the batch is used)."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8, "tooltip": "Video width "
                          "(multiple of 8; the paper trains Stage 2 at 512x768)."}),
                "height": ("INT", {"default": 768, "min": 64, "max": 2048, "step": 8, "tooltip": "Video height "
                           "(multiple of 8)."}),
                "steps": ("INT", {"default": 25, "min": 1, "max": 200, "tooltip": "Denoising steps (EDM, Karras "
                          "sigmas)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": "Noise seed."}),
                "min_cfg": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 20.0, "step": 0.1, "tooltip": "Guidance "
                            "of the first frame; it rises linearly to max_cfg at the last frame (SVD's linear CFG)."}),
                "max_cfg": ("FLOAT", {"default": 3.0, "min": 1.0, "max": 20.0, "step": 0.1, "tooltip": "Guidance "
                            "of the last frame (1 = no guidance: the unconditional branch is skipped)."}),
                "fps": ("INT", {"default": 7, "min": 1, "max": 60, "tooltip": "Frame-rate conditioning of SVD."}),
                "motion_bucket_id": ("INT", {"default": 127, "min": 0, "max": 1023, "tooltip": "SVD's motion "
                                     "amount conditioning (127 is SVD's default)."}),
                "noise_aug_strength": ("FLOAT", {"default": 0.02, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                       "Noise added to the reference latent; more lets the video drift from it."}),
                "strength": ("FLOAT", {**strength, "tooltip": "Overall control strength (0 = plain SVD, the control "
                             "path is skipped)."}),
                "pose_strength": ("FLOAT", {**strength, "tooltip": f"Weight of the pose maps{absent}"}),
                "depth_strength": ("FLOAT", {**strength, "tooltip": f"Weight of the depth maps{absent}"}),
                "normal_strength": ("FLOAT", {**strength, "tooltip": f"Weight of the normal maps{absent}"}),
                "decode_chunk_size": ("INT", {"default": 8, "min": 1, "max": 64, "tooltip": "Frames decoded by the "
                                      "VAE at once; lower it if decoding runs out of memory."}),
            },
            "optional": {
                "pose_images": ("IMAGE", {"tooltip": "Rendered pose skeletons, one per frame."}),
                "depth": ("IMAGE", {"tooltip": "Depth maps, one per frame (from Pose to Geometry or any estimator)."}),
                "normal": ("IMAGE", {"tooltip": "Normal maps, one per frame (from Pose to Geometry or any "
                                     "estimator)."}),
                "windows": (WINDOWS, {"tooltip": "Window options for long videos (default: all frames at once)."}),
                "fit": fit_input(),
                "scheduler": (list(STAGE2_SCHEDULERS), {"default": STAGE2_DEFAULT, "tooltip": "Sampler: euler (the "
                              "default; SVD's own), dpm++ 2m karras or dpm++ 2m sde karras (fresh noise every step, "
                              "from the seed); all on SVD's Karras sigmas and v-prediction."}),
                "control_maps": (CONTROL_MAPS, {"tooltip": "Control maps of any registered modality, each with its "
                                 "strength, from DreamDance Control Map nodes; with or instead of pose_images, depth "
                                 "and normal (each modality once). A modality the model was trained on but not given "
                                 "is black (absent)."}),
                "compile": ("BOOLEAN", {"default": False, "tooltip": COMPILE_HELP}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, min_cfg, max_cfg, noise_aug_strength, strength, pose_strength, depth_strength,
                        normal_strength):
        # ComfyUI's own FLOAT check lets NaN through: a NaN scale gave blank frames, a NaN max_cfg no guidance
        values = {"min_cfg": min_cfg, "max_cfg": max_cfg, "noise_aug_strength": noise_aug_strength,
                  "strength": strength, "pose_strength": pose_strength, "depth_strength": depth_strength,
                  "normal_strength": normal_strength}
        return queue_check(cls, values)

    def animate(self, video_model, reference, width, height, steps, seed, min_cfg, max_cfg, fps, motion_bucket_id,
                noise_aug_strength, strength, pose_strength, depth_strength, normal_strength, decode_chunk_size,
                pose_images=None, depth=None, normal=None, windows=None, fit=DEFAULT_FIT, scheduler=STAGE2_DEFAULT,
                control_maps=None, compile=False):
        from ..dreamdance_core.media import fit_images
        from ..dreamdance_core.memory import stage2_memory, vae_decode_dtype
        from ..dreamdance_core.modalities import ControlMap, control_inputs
        from ..dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2
        from ..dreamdance_core.sampling.windows import window_indices

        pipeline = video_model
        own = (("pose", pose_images, pose_strength), ("depth", depth, depth_strength),
               ("normal", normal, normal_strength))
        given = [ControlMap(name, comfy_to_core(image), s) for name, image, s in own if image is not None]
        maps, strengths = control_inputs(pipeline.controller.modalities, [*given, *(control_maps or ())], width, height,
                                         fit)
        frames = next(iter(maps.values())).shape[0]
        options = Stage2Options(
            width=width, height=height, num_frames=frames, steps=steps, min_cfg=min_cfg, max_cfg=max_cfg, fps=fps,
            motion_bucket_id=motion_bucket_id, noise_aug_strength=noise_aug_strength, seed=seed,
            decode_chunk_size=decode_chunk_size, windows=windows, scheduler=scheduler, compile=compile,
        )
        callback = progress_callback(steps * len(window_indices(frames, windows)))
        dtype = pipeline.components.unet.dtype
        memory = stage2_memory(options, dtype, vae_decode_dtype(pipeline.components.vae))
        with run_on_device(pipeline, getattr(pipeline, "keep_loaded", False), memory) as device:
            inputs = Stage2Inputs({k: v.to(device, dtype) for k, v in maps.items()}, strength, strengths)
            reference = fit_images(comfy_to_core(reference)[:1], width, height, fit).to(device)  # at the video size
            video = sample_stage2(pipeline, reference, inputs, options, callback, cancel_check=interrupt_check())
        return (core_to_comfy(video),)


NODE_CLASS_MAPPINGS = {
    "DreamDanceVideoModelLoader": DreamDanceVideoModelLoader,
    "DreamDanceAnimate": DreamDanceAnimate,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamDanceVideoModelLoader": "DreamDance Video Model Loader",
    "DreamDanceAnimate": "DreamDance Animate",
}
