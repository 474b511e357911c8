"""Stage-2 sampler: SVD's EDM image-to-video sampling with the cross-domain controller and the SVD ControlNet.

Algorithm (as ``diffusers.StableVideoDiffusionPipeline`` 0.42, written as a function of its components):

1. the reference image's CLIP image embedding (zeros for the unconditional branch);
2. noise augmentation of the reference, its VAE latent (distribution mode), repeated over the frames and
   concatenated to the noisy latents on the channel axis (zeros for the unconditional branch);
3. added time ids ``(fps - 1, motion_bucket_id, noise_aug_strength)``;
4. the scheduler chosen in the options, built from SVD's config (Karras sigmas, v-prediction, continuous timesteps;
   default SVD's own ``EulerDiscreteScheduler``, see :mod:`.schedulers`); latents drawn from the seed and scaled by
   ``init_noise_sigma``;
5. at every step, every window of frames (:mod:`dreamdance_core.sampling.windows`) is denoised: the controller's
   guidance feature (of the window's frames only, computed when the window is denoised) goes through the ControlNet,
   whose residuals enter the UNet; the unconditional and conditional branches are combined with per-frame linear CFG
   from ``min_cfg`` (first frame) to ``max_cfg`` (last frame, global frame index); the blended prediction makes one
   scheduler step; latents and the blend stay in fp32 whatever the models' dtype;
6. VAE decoding in chunks of ``decode_chunk_size`` frames. A VAE held in fp16 whose config says ``force_upcast``
   encodes (step 2, as the pipeline does) and decodes in fp32 (:func:`~dreamdance_core.precision.upcast_vae`; the
   pipeline casts it back to fp16 before decoding).

Peak memory does not grow with the video's length beyond the latents, the blend and the output frames: everything
per frame (control maps on the device, controller, ControlNet, UNet, VAE) runs on one window or chunk at a time.

The reference image (CLIP embedding and latent) conditions every window. It may have any size: CLIP embeds it as
given and the VAE latent is taken from it resized to the video size, both exactly as the pipeline does it
(:mod:`dreamdance_core.models.clip_image`). With no control (``inputs=None``) or an overall control strength of 0
this is plain SVD sampling on the same code path (no controller, no ControlNet forward); ``tests/test_svd_peer.py``
holds it equal to the pipeline built from the same components.

Noise is drawn on the CPU from one generator seeded by ``seed``: first the noise augmentation of the reference
(the shape of the resized reference), then the initial latents - the order in which the pipeline draws them from its
``generator`` (it draws the augmentation noise with ``randn_tensor(image.shape, generator=...)``; pass it
``latents=`` to give the second draw), then any noise a stochastic scheduler draws at its steps, so results do not
depend on the device's random generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import PIL.Image
import torch

from ..autoencoder import decode, encode
from ..cancel import CancelCheck, cancel_hooks, check, release_on_error
from ..compile import compiled
from ..geometry import latent_preview
from ..models.clip_image import ReferenceImage, encode_clip_image, vae_reference_pixels
from ..models.controller import ControlMapError
from ..pipelines import SVDComponents, VideoPipeline
from ..precision import upcast_vae
from ..validation import (
    MAX_FPS,
    MAX_MOTION_BUCKET,
    MAX_NOISE_AUG,
    InputError,
    check_cfg,
    check_frames,
    check_images,
    check_int,
    check_number,
    check_size,
    check_steps,
    check_strength,
)
from .guidance import classifier_free_guidance, linear_frame_scales
from .schedulers import STAGE2_DEFAULT, STAGE2_SCHEDULERS, stage2_scheduler
from .windows import WindowOptions, blend_windows, window_indices

ProgressCallback = Callable[[int, int, "torch.Tensor | None"], None]


class Stage2InputError(InputError):
    """Inputs of the Stage-2 sampler that cannot work together (sizes, frame counts, options)."""


@dataclass
class Stage2Inputs:
    """Stage 2's per-frame inputs: the control maps ``{modality: [f, 3, H, W]}`` in -1..1 and their strengths.

    ``strength`` scales all ControlNet residuals; 0 is plain SVD and skips the controller and the ControlNet.
    ``modality_strengths`` blends each modality between its black map (0: as if the map were absent, what robust
    conditioning trained the model on) and the given map (1, the default for missing names); see
    :meth:`~dreamdance_core.models.controller.CrossDomainController.encode`.
    """

    maps: Mapping[str, torch.Tensor]
    strength: float = 1.0
    modality_strengths: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage2Options:
    """Sampling options; sizes are width x height (the paper: 512x768, 16-frame windows). ``seed``: all noise is drawn
    on the CPU from a generator seeded with it. ``scheduler``: a name of
    :data:`~dreamdance_core.sampling.schedulers.STAGE2_SCHEDULERS` (default SVD's Euler). ``compile``: run the SVD
    UNet and the ControlNet through ``torch.compile`` (:mod:`dreamdance_core.compile`; the first call compiles)."""

    width: int = 512
    height: int = 768
    num_frames: int = 16
    steps: int = 25
    min_cfg: float = 1.0
    max_cfg: float = 3.0
    fps: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    seed: int = 0
    decode_chunk_size: int = 8
    windows: WindowOptions | None = None
    scheduler: str = STAGE2_DEFAULT
    compile: bool = False

    def __post_init__(self):
        if self.scheduler not in STAGE2_SCHEDULERS:
            choices = list(STAGE2_SCHEDULERS)
            raise Stage2InputError(f"unknown Stage-2 scheduler {self.scheduler!r}; choose one of {choices}")
        try:
            fixed = self._checked()
        except InputError as error:  # one type for this sampler's refusals (a subclass of InputError)
            raise Stage2InputError(str(error)) from None
        for key, value in fixed.items():
            object.__setattr__(self, key, value)

    def _checked(self) -> dict:
        fixed = {
            "num_frames": check_frames("num_frames", self.num_frames),
            "steps": check_steps("steps", self.steps),
            "min_cfg": check_cfg("min_cfg", self.min_cfg),
            "max_cfg": check_cfg("max_cfg", self.max_cfg),
            "fps": check_int("fps", self.fps, 1, MAX_FPS, f"give 1..{MAX_FPS} (SVD is conditioned on fps - 1)"),
            "motion_bucket_id": check_int("motion_bucket_id", self.motion_bucket_id, 0, MAX_MOTION_BUCKET),
            "noise_aug_strength": check_number("noise_aug_strength", self.noise_aug_strength, 0.0, MAX_NOISE_AUG),
            "seed": check_int("seed", self.seed, -(2**63), 2**64 - 1, "give a whole-number seed"),
            "decode_chunk_size": check_int("decode_chunk_size", self.decode_chunk_size, 1, None,
                                           "give at least 1 frame per VAE decode"),
        }
        fixed["width"], fixed["height"] = check_size(self.width, self.height, "the video size")
        return fixed


def _check_reference(reference: ReferenceImage) -> ReferenceImage:
    """A PIL image, or a tensor ``[3, H, W]`` / ``[1, 3, H, W]`` (any size) -> the PIL image or ``[1, 3, H, W]``."""
    if isinstance(reference, PIL.Image.Image):
        return reference
    if not isinstance(reference, torch.Tensor):
        raise Stage2InputError(f"the reference image must be a tensor in -1..1 or a PIL image, got {type(reference)}")
    if reference.ndim == 3:
        reference = reference[None]
    if reference.ndim != 4 or reference.shape[:2] != (1, 3):
        raise Stage2InputError(
            f"the reference image must be [3, H, W] or [1, 3, H, W] in -1..1, got {tuple(reference.shape)}"
        )
    check_images("the reference image", reference)
    return reference


def _split_pipeline(pipeline: VideoPipeline | SVDComponents, inputs: Stage2Inputs | None):
    """-> (SVD components, controller, controlnet); plain SVD components take no control inputs."""
    if isinstance(pipeline, VideoPipeline):
        return pipeline.components, pipeline.controller, pipeline.controlnet
    if inputs is not None:
        raise Stage2InputError("control maps need a VideoPipeline (SVD + controller + ControlNet), got SVD components")
    return pipeline, None, None


def _check_control(inputs: Stage2Inputs, pipeline: VideoPipeline, options: Stage2Options) -> None:
    controller, controlnet, components = pipeline.controller, pipeline.controlnet, pipeline.components
    check_strength("the control strength", inputs.strength)
    for name, value in dict(inputs.modality_strengths).items():
        check_strength(f"the {name} strength", value)
    frames = controller.check_maps(inputs.maps, (options.width, options.height))
    for name, maps in inputs.maps.items():
        check_images(f"the {name} control maps", maps)
    if frames != options.num_frames:
        raise ControlMapError(
            f"the control maps hold {frames} frames but num_frames is {options.num_frames}; make them agree"
        )
    if controller.downscale_factor != components.vae_scale_factor:
        raise Stage2InputError(
            f"the controller downscales by {controller.downscale_factor} but the VAE by "
            f"{components.vae_scale_factor}; build the controller with len(block_channels) = "
            f"{components.vae_scale_factor.bit_length()}"
        )
    if controller.config.out_channels != controlnet.conditioning_channels:
        raise Stage2InputError(
            f"the controller outputs {controller.config.out_channels} channels but the ControlNet adds "
            f"{controlnet.conditioning_channels} after conv_in; build them for the same UNet"
        )


def decode_latents(
    vae: torch.nn.Module, latents: torch.Tensor, decode_chunk_size: int, cancel_check: CancelCheck | None = None
) -> torch.Tensor:
    """``[f, c, h, w]`` SVD latents -> frames ``[f, 3, H, W]`` in -1..1, ``decode_chunk_size`` frames at a time
    (``cancel_check``: called before every chunk and between the decoder's blocks, :mod:`dreamdance_core.cancel`)."""
    latents = latents / vae.config.scaling_factor
    frames = None  # [f, 3, H, W] fp32, filled chunk by chunk: one copy of the output, not the chunks plus their cat
    with cancel_hooks(cancel_check, [vae]), upcast_vae(vae):  # fp16 + force_upcast: fp32 (dreamdance_core.precision)
        for start in range(0, latents.shape[0], decode_chunk_size):
            check(cancel_check)
            chunk = latents[start:start + decode_chunk_size].to(vae.dtype)
            decoded = decode(vae, chunk, num_frames=chunk.shape[0])
            if frames is None:
                frames = decoded.new_empty((latents.shape[0], *decoded.shape[1:]), dtype=torch.float32)
            frames[start:start + chunk.shape[0]] = decoded.clamp(-1.0, 1.0)
    return frames


def edm_denoised(noisy: torch.Tensor, prediction: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """SVD's clean-latent estimate from a v-prediction at noise level ``sigma`` (broadcast against ``noisy``, the
    latent before ``c_in`` scaling): ``c_skip * noisy + c_out * prediction`` with ``c_skip = 1 / (sigma^2 + 1)`` and
    ``c_out = -sigma / sqrt(sigma^2 + 1)`` (the scheduler's ``pred_original_sample``; training's denoised latent)."""
    return noisy / (sigma**2 + 1) - prediction * sigma / torch.sqrt(sigma**2 + 1)


def clean_estimate(model_input: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SVD's clean-latent estimate from what the sampler gave the UNet: its noisy input ``model_input`` (after
    ``scale_model_input``: ``x / sqrt(sigma^2 + 1)``), the timestep ``t = 0.25 * log(sigma)`` (SVD's continuous noise
    conditioning) and the v-prediction. Needs no scheduler internals, so it holds for every Stage-2 scheduler."""
    sigma = torch.exp(4 * t.double()).to(model_input.device, torch.float32)
    noisy = model_input.float() * torch.sqrt(sigma**2 + 1)
    return edm_denoised(noisy, prediction.float(), sigma)


@release_on_error
@torch.no_grad()
def sample_stage2(
    pipeline: VideoPipeline | SVDComponents,
    reference: ReferenceImage,
    inputs: Stage2Inputs | None = None,
    options: Stage2Options | None = None,
    callback: ProgressCallback | None = None,
    *,
    cancel_check: CancelCheck | None = None,
) -> torch.Tensor:
    """Animate ``reference`` into frames ``[f, 3, height, width]`` in -1..1.

    ``reference``: ``[1, 3, H, W]`` / ``[3, H, W]`` in -1..1 or a PIL image, at any size - give the original: CLIP
    embeds it as given (``StableVideoDiffusionPipeline._encode_image``); the VAE latent is from it resized to the
    video size as the pipeline's ``video_processor.preprocess(image, height, width)`` does (PIL: lanczos; tensor:
    nearest; no resize when it already has the video size).

    The samplers of both stages share this shape: ``(pipeline, reference, per-frame inputs, options, callback)``.
    ``pipeline``: a :class:`~dreamdance_core.pipelines.VideoPipeline` (SVD + controller + ControlNet), or bare
    :class:`~dreamdance_core.pipelines.SVDComponents` for plain SVD. ``inputs=None`` (or ``inputs.strength == 0``) is
    plain SVD. ``options``: :class:`Stage2Options` (sizes, frames, steps, CFG, SVD conditioning, windows, seed,
    scheduler). ``callback(step, total, preview)`` is called after every window of every step (``total = steps x
    windows``; ``preview``: approximate RGB ``[3, h, w]`` of the window's middle frame as the step predicts it clean,
    for 4-channel SD latents with SVD's v-prediction and continuous timesteps, else None); raising from it cancels the
    run (the exception propagates). ``cancel_check`` is called between the blocks of every model forward (SVD UNet,
    ControlNet, controller, image encoder, VAE) and between VAE chunks; raising from it cancels within one block
    (:mod:`dreamdance_core.cancel`).
    """
    options = options or Stage2Options()
    components, controller, controlnet = _split_pipeline(pipeline, inputs)
    reference = _check_reference(reference)
    if inputs is not None:
        _check_control(inputs, pipeline, options)
    # compiled denoisers run without hooks (the check runs before each of their forwards: dreamdance_core.compile)
    denoisers = () if options.compile else (components.unet, controlnet)
    models = [m for m in (*denoisers, components.image_encoder, controller) if m is not None]
    with cancel_hooks(cancel_check, models):  # the VAE's come with its calls
        return _sample(components, controller, controlnet, reference, inputs, options, callback, cancel_check)


def _sample(components, controller, controlnet, reference, inputs, options, callback, cancel_check) -> torch.Tensor:
    """:func:`sample_stage2` after its checks, inside its cancel hooks."""
    unet, vae = components.unet, components.vae
    unet_forward = compiled(unet) if options.compile else unet
    controlnet_forward = compiled(controlnet) if options.compile and controlnet is not None else controlnet
    device, dtype = unet.device, unet.dtype
    config = components.scheduler_config
    previews = config.get("prediction_type") == "v_prediction" and config.get("timestep_type") == "continuous"
    num_frames, size = options.num_frames, (options.height, options.width)
    do_cfg = options.max_cfg > 1.0
    branches = 2 if do_cfg else 1
    generator = torch.Generator(device="cpu").manual_seed(options.seed)

    # 1. reference CLIP image embedding of the reference as given: [1, 1, d] (+ zeros for the unconditional branch)
    image_embeds = encode_clip_image(components.image_encoder, reference)[:, None].to(device=device, dtype=dtype)

    # 2. noise-augmented latent of the reference at the video size: [1, c, h, w]
    pixels = vae_reference_pixels(reference, *size).float().cpu()
    noise = torch.randn(pixels.shape, generator=generator)
    augmented = (pixels + options.noise_aug_strength * noise).to(device=device)
    with cancel_hooks(cancel_check, [vae]), upcast_vae(vae):  # fp16 + force_upcast: fp32, as the pipeline does
        image_latents = encode(vae, augmented.to(vae.dtype)).to(dtype)
    if do_cfg:
        image_embeds = torch.cat([torch.zeros_like(image_embeds), image_embeds])
        image_latents = torch.cat([torch.zeros_like(image_latents), image_latents])

    # 3. added time ids: [branches, 3]
    added_time_ids = torch.tensor(
        [[options.fps - 1, options.motion_bucket_id, options.noise_aug_strength]], dtype=dtype, device=device
    ).repeat(branches, 1)

    # 4. scheduler and initial latents: [1, f, c, h, w], kept in fp32 whatever the models' dtype (as the blend)
    scheduler = stage2_scheduler(options.scheduler, components.scheduler_config)
    scheduler.set_timesteps(options.steps, device=device)
    latent_shape = (1, num_frames, vae.config.latent_channels, *(s // components.vae_scale_factor for s in size))
    latents = torch.randn(latent_shape, generator=generator).to(device=device) * scheduler.init_noise_sigma
    cfg_scales = linear_frame_scales(num_frames, options.min_cfg, options.max_cfg).to(device=device, dtype=dtype)

    # 5. guidance feature of a window's frames, computed when the window is denoised: [n, c0, h, w] (strength 0: no
    # control path at all). The controller is per frame (module docstring), so this equals slicing the all-frames
    # feature, and neither the maps of all frames nor their feature are ever on the device at once.
    if inputs is not None and float(inputs.strength) == 0.0:
        inputs = None

    def window_guidance(index: torch.Tensor) -> torch.Tensor:
        maps = {name: m[index.to(m.device)].to(device) for name, m in inputs.maps.items()}
        return controller(maps, inputs.modality_strengths).to(dtype)

    # 6. denoising loop over steps and windows
    num_windows = len(window_indices(num_frames, options.windows))
    total = options.steps * num_windows
    calls = 0
    for t in scheduler.timesteps:

        def denoise(index: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            guidance = window_guidance(index) if inputs is not None else None
            index = index.to(device)
            n = index.numel()
            # [1, n, c, h, w] (fp32) -> [branches, n, 2c, h, w] (model dtype)
            noisy = scheduler.scale_model_input(latents[:, index].repeat(branches, 1, 1, 1, 1), t).to(dtype)
            model_input = torch.cat([noisy, image_latents[:, None].expand(-1, n, -1, -1, -1)], dim=2)
            residuals = {}
            check(cancel_check)
            if inputs is not None:
                down, mid = controlnet_forward(
                    model_input, t, image_embeds, added_time_ids,
                    controlnet_cond=guidance.repeat(branches, 1, 1, 1),  # [branches*n, c0, h, w]
                    conditioning_scale=inputs.strength, return_dict=False,
                )
                residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
            prediction = unet_forward(model_input, t, image_embeds, added_time_ids, return_dict=False, **residuals)[0]
            if do_cfg:
                uncond, cond = prediction.chunk(2)
                prediction = classifier_free_guidance(cond, uncond, cfg_scales[index].view(1, n, 1, 1, 1))
            calls += 1
            if callback is not None:
                middle = n // 2
                x0 = clean_estimate(noisy[0, middle], prediction[0, middle], t) if previews else None
                callback(calls, total, None if x0 is None else latent_preview(x0))
            return prediction.float()  # blended and stepped in fp32

        prediction = blend_windows(denoise, num_frames, options.windows, frame_dim=1)
        latents = scheduler.step(prediction, t, latents, generator=generator).prev_sample

    # 7. decode in chunks: [f, 3, H, W]
    return decode_latents(vae, latents[0], options.decode_chunk_size, cancel_check)
