"""Stage-1 sampler: reference image + rendered poses -> per-frame RGB, normal and depth (paper section 4.1).

Algorithm: DDIM by default (or another scheduler of :mod:`.schedulers`: Euler, Euler ancestral, DPM++ 2M) over
joint RGB/normal/depth latents laid out as ``[domains, frames, 4, h, w]``; at every step the frames are denoised in
overlapping windows (:mod:`.windows`) and each domain gets its own guidance scale (multi-domain CFG,
:mod:`.guidance`). The reference UNet runs once per call; the pose guider on each window's frames when the window is
denoised (it is per frame: equal to slicing its all-frames output); conditional and unconditional branches share one
forward (``cfg_batch=True``) unless memory asks otherwise. Latents and the window blend stay in fp32 whatever the
models' dtype; apart from them and the output frames, nothing held grows with the number of frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import PIL.Image
import torch

from ..cancel import CancelCheck, cancel_hooks, check, release_on_error
from ..compile import compiled
from ..geometry import decode_latents, encode_latents, latent_preview
from ..models.clip_image import ReferenceImage, encode_reference_image, vae_reference_pixels
from ..models.stage1 import NUM_DOMAINS, SD15_NOISE_SCHEDULE
from ..pipelines import GeometryPipeline
from ..validation import InputError, check_cfg, check_images, check_int, check_steps
from .guidance import multi_domain_cfg
from .schedulers import STAGE1_DEFAULT, STAGE1_SCHEDULERS, check_scheduler_name, stage1_scheduler
from .windows import WindowOptions, blend_windows, window_indices

Callback = Callable[[int, int, "torch.Tensor | None"], None]

SD15_DDIM_CONFIG = SD15_NOISE_SCHEDULE  # SD1.5's training noise schedule, "trailing" timestep spacing


def default_scheduler(noise_schedule: dict | None = None):
    """Stage 1's default scheduler (DDIM) over the model's training noise schedule (default SD1.5's)."""
    return stage1_scheduler(STAGE1_DEFAULT, noise_schedule)


@dataclass(frozen=True)
class Stage1Options:
    """Stage-1 sampling options (the size is the pose maps' size).

    ``guidance``: ordinary CFG scale per domain (RGB, normal, depth); the paper's eq. 6 scale ``s`` is ``w - 1``.
    ``seed``: noise is drawn on the CPU from a generator seeded with it (initial latents, then any noise a stochastic
    scheduler draws), so results do not depend on the device. ``scheduler``: a name of
    :data:`~dreamdance_core.sampling.schedulers.STAGE1_SCHEDULERS` (default DDIM). ``cfg_batch``: conditional and
    unconditional branches in one forward (faster, more memory). ``decode_chunk_size``: frames per VAE decode.
    ``compile``: run the denoiser through ``torch.compile`` (:mod:`dreamdance_core.compile`; the first call compiles).
    ``decode_rgb``: also VAE-decode the RGB domain (False: ``GeometryOutput.rgb`` is None and a third of the decoding
    is skipped; the RGB latents are still denoised, as the model needs them, so depth and normal are unchanged).
    """

    steps: int = 25
    guidance: tuple[float, float, float] = (3.5, 2.5, 3.5)
    windows: WindowOptions | None = None
    seed: int = 0
    scheduler: str = STAGE1_DEFAULT
    cfg_batch: bool = True
    decode_chunk_size: int = 8
    compile: bool = False
    decode_rgb: bool = True

    def __post_init__(self):
        if not isinstance(self.guidance, (tuple, list)) or len(self.guidance) != NUM_DOMAINS:
            raise InputError(f"guidance needs {NUM_DOMAINS} scales (rgb, normal, depth), got {self.guidance!r:.60}; "
                             "give three numbers")
        object.__setattr__(self, "guidance", tuple(check_cfg(f"Stage-1 cfg ({name})", w)
                                                   for name, w in zip(("rgb", "normal", "depth"), self.guidance)))
        object.__setattr__(self, "steps", check_steps("Stage-1 steps", self.steps))
        object.__setattr__(self, "seed", check_int("seed", self.seed, -(2**63), 2**64 - 1, "give a whole-number seed"))
        object.__setattr__(self, "decode_chunk_size", check_int("decode_chunk_size", self.decode_chunk_size, 1, None,
                                                                "give at least 1 frame per VAE decode"))
        check_scheduler_name(self.scheduler, STAGE1_SCHEDULERS, "Stage-1")


@dataclass
class GeometryOutput:
    """Stage-1 results, core images ``[frames, 3, H, W]`` in -1..1 (see :mod:`dreamdance_core.geometry`); ``rgb`` is
    None when ``Stage1Options.decode_rgb`` is False."""

    rgb: torch.Tensor | None
    normal: torch.Tensor
    depth: torch.Tensor


def _check_images(name: str, images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be images [frames, 3, H, W], got shape {tuple(images.shape)}")
    if images.shape[0] < 1:
        raise ValueError(f"{name} is empty: at least one frame is needed")
    height, width = images.shape[-2:]
    if height % 8 or width % 8:
        raise ValueError(
            f"{name} is {width}x{height} (W x H); both sides must be multiples of 8 for the VAE - resize to e.g. "
            f"{width // 8 * 8}x{height // 8 * 8}"
        )
    check_images(name, images)


def _check_reference(reference: ReferenceImage) -> ReferenceImage:
    """A PIL image, or one image ``[3, H, W]`` / ``[1, 3, H, W]`` of any size (the original: it is resized here)."""
    if isinstance(reference, PIL.Image.Image):
        return reference
    if reference.ndim == 3:
        reference = reference.unsqueeze(0)
    if reference.ndim != 4 or reference.shape[1] != 3:
        raise ValueError(f"reference image must be [1, 3, H, W] in -1..1 or a PIL image, got {tuple(reference.shape)}")
    if reference.shape[0] != 1:
        raise ValueError(f"one reference image per video, got {reference.shape[0]}")
    check_images("reference image", reference)
    return reference


def _check_inputs(reference: ReferenceImage, poses: torch.Tensor) -> ReferenceImage:
    reference = _check_reference(reference)
    _check_images("pose maps", poses)
    return reference


def training_sigmas(noise_schedule: dict) -> torch.Tensor:
    """``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)`` of the model's training schedule for ``t = 0 .. T-1``
    (float64; a zero terminal alpha_bar is held at 2**-24, as diffusers' Euler and DPM-Solver do)."""
    alphas = stage1_scheduler(STAGE1_DEFAULT, noise_schedule).alphas_cumprod.double().clamp(min=2.0**-24)
    return ((1 - alphas) / alphas).sqrt()


def clean_estimate(model_input: torch.Tensor, output: torch.Tensor, t, sigmas: torch.Tensor, prediction_type: str):
    """The clean latent the model predicts, from what the sampler gave it: ``model_input`` (the noisy latent at
    training timestep ``t``, ``sqrt(a) x0 + sqrt(1 - a) noise``, i.e. after ``scale_model_input``), ``t`` and the
    model ``output`` (epsilon or v). ``t`` between two training timesteps interpolates sigma linearly, as diffusers'
    discrete schedulers do. Needs no scheduler internals, so it holds for every scheduler."""
    t = float(t)
    low = min(int(t), len(sigmas) - 1)
    high = min(low + 1, len(sigmas) - 1)
    sigma = sigmas[low] + (t - low) * (sigmas[high] - sigmas[low])
    alpha = float(1.0 / (1.0 + sigma**2))
    x, out = model_input.float(), output.float()
    if prediction_type == "v_prediction":
        return alpha**0.5 * x - (1 - alpha) ** 0.5 * out
    return (x - (1 - alpha) ** 0.5 * out) / alpha**0.5


@release_on_error
@torch.no_grad()
def sample_geometry(
    pipeline: GeometryPipeline,
    reference: ReferenceImage,
    inputs: torch.Tensor,
    options: Stage1Options | None = None,
    callback: Callback | None = None,
    *,
    cancel_check: CancelCheck | None = None,
) -> GeometryOutput:
    """Generate RGB, normal and depth frames for the pose maps ``inputs`` in the appearance of ``reference``.

    The samplers of both stages share this shape: ``(pipeline, reference, per-frame inputs, options, callback)``.

    Args:
        pipeline: the Stage-1 :class:`~dreamdance_core.pipelines.GeometryPipeline` (model, SD ``AutoencoderKL``,
            ``CLIPVisionModelWithProjection`` whose projection matches the UNet's cross-attention dim).
        reference: reference image ``[1, 3, H, W]`` in -1..1 or a PIL image, at any size - give the original: the
            image encoder sees it as given through its ``CLIPImageProcessor`` (AnimateAnyone family, see
            :func:`~dreamdance_core.models.clip_image.encode_reference_image`); the VAE and the reference UNet see it
            resized to the pose maps' size as diffusers' ``VaeImageProcessor.preprocess`` does (no resize at that size).
        inputs: the per-frame inputs, rendered pose maps ``[F, 3, H, W]`` in -1..1 at the sampling size.
        options: :class:`Stage1Options` (steps, per-domain guidance, windows, seed, scheduler). The unconditional
            branch drops the reference image (no reference injection, zero CLIP embedding).
        callback: ``callback(step, total, preview)`` after every window of every step (``preview``: approximate RGB
            ``[3, h, w]`` of the window's middle frame, from its clean-latent estimate); raise in it to cancel.
        cancel_check: called between the blocks of every model forward and between VAE chunks; raise in it to cancel
            within one block (:mod:`dreamdance_core.cancel`).
    """
    options, poses = options or Stage1Options(), inputs
    reference = _check_inputs(reference, poses)
    model = pipeline.model
    # a compiled denoiser runs without hooks (the check runs before each of its forwards: dreamdance_core.compile)
    hooked = [model.reference_unet, model.pose_guider] if options.compile else [model]
    with cancel_hooks(cancel_check, [*hooked, pipeline.image_encoder]):  # the VAE's come with its calls
        return _sample(pipeline, reference, poses, options, callback, cancel_check)


def _sample(pipeline, reference, poses, options, callback, cancel_check) -> GeometryOutput:
    """:func:`sample_geometry` after its checks, inside its cancel hooks."""
    model, vae, image_encoder = pipeline.model, pipeline.vae, pipeline.image_encoder
    denoiser = compiled(model) if options.compile else model
    device, dtype = model.denoising_unet.device, model.denoising_unet.dtype
    scheduler = stage1_scheduler(options.scheduler, model.noise_schedule)
    scheduler.set_timesteps(options.steps, device=device)
    sigmas = training_sigmas(model.noise_schedule)
    prediction_type = model.noise_schedule["prediction_type"]
    generator = torch.Generator(device="cpu").manual_seed(options.seed)
    guidance, num_frames = options.guidance, poses.shape[0]
    guided = any(w != 1.0 for w in guidance)

    # 1. reference, once per video: CLIP embedding of it as given, VAE latents at the sampling size, reference-UNet
    image_embeds = encode_reference_image(image_encoder, reference).to(device=device, dtype=dtype)[:, None]  # [1, 1, C]
    pixels = vae_reference_pixels(reference, *poses.shape[-2:])
    reference_latents = encode_latents(vae, pixels, cancel_check=cancel_check)
    features = model.encode_reference(reference_latents.to(device=device, dtype=dtype), image_embeds)
    # 2. pose guider features: per window, when the window is denoised (see denoise_window)
    # 3. initial noise for all domains and frames, drawn on the CPU: [domains, frames, 4, h, w], kept in fp32
    latent_shape = (NUM_DOMAINS, num_frames, reference_latents.shape[1], *reference_latents.shape[-2:])
    latents = torch.randn(latent_shape, generator=generator, device="cpu", dtype=torch.float32)
    latents = (latents * scheduler.init_noise_sigma).to(device=device)

    num_windows = len(window_indices(num_frames, options.windows))
    total = options.steps * num_windows
    progress = 0

    def run_model(sample: torch.Tensor, t, groups: tuple[bool, ...], frame_pose: torch.Tensor) -> torch.Tensor:
        """sample: scaled model input [domains, f, 4, h, w]; one forward for the given branches (True = conditional)
        -> [g, domains, f, ...]."""
        f = sample.shape[1]
        per_group = NUM_DOMAINS * f
        sample = sample.flatten(0, 1).repeat(len(groups), 1, 1, 1).to(dtype)  # [(g m f), 4, h, w]
        embeds = torch.cat([image_embeds if cond else torch.zeros_like(image_embeds) for cond in groups])
        embeds = embeds.repeat_interleave(per_group, dim=0)  # [(g m f), 1, C]
        index = [0 if cond else -1 for cond in groups for _ in range(per_group)]  # host-side: no device sync
        domain = torch.arange(NUM_DOMAINS, device=device).repeat_interleave(f).repeat(len(groups))
        check(cancel_check)
        out = denoiser(
            sample,
            t,
            embeds,
            frame_pose.repeat(len(groups) * NUM_DOMAINS, 1, 1, 1),
            domain,
            num_modalities=NUM_DOMAINS,
            num_frames=f,
            reference=features,
            reference_index=index,
        )
        return out.view(len(groups), NUM_DOMAINS, f, *out.shape[1:])

    for t in scheduler.timesteps:

        def denoise_window(frame_index: torch.Tensor) -> torch.Tensor:
            nonlocal progress
            frame_pose = model.encode_pose(poses[frame_index.to(poses.device)].to(device=device, dtype=dtype))
            frame_index = frame_index.to(device)
            x = scheduler.scale_model_input(latents[:, frame_index], t)  # [domains, n, 4, h, w] fp32
            if not guided:
                eps = run_model(x, t, (True,), frame_pose)[0]
            elif options.cfg_batch:
                eps_cond, eps_uncond = run_model(x, t, (True, False), frame_pose)
                eps = multi_domain_cfg(eps_cond, eps_uncond, guidance, domain_dim=0)
            else:
                eps_cond = run_model(x, t, (True,), frame_pose)[0]
                eps_uncond = run_model(x, t, (False,), frame_pose)[0]
                eps = multi_domain_cfg(eps_cond, eps_uncond, guidance, domain_dim=0)
            progress += 1
            if callback is not None:
                middle = x.shape[1] // 2  # the RGB domain's middle frame
                x0 = clean_estimate(x[0, middle], eps[0, middle], t, sigmas, prediction_type)
                callback(progress, total, latent_preview(x0))
            return eps.float()  # blended and stepped in fp32

        eps = blend_windows(denoise_window, num_frames, options.windows, frame_dim=1)
        latents = scheduler.step(eps, t, latents, generator=generator).prev_sample

    # 4. decode the domains asked for (domain 0 is RGB)
    first = 0 if options.decode_rgb else 1
    decoded = decode_latents(vae, latents[first:].flatten(0, 1), options.decode_chunk_size, cancel_check)
    domains = decoded.view(NUM_DOMAINS - first, num_frames, *decoded.shape[1:]).unbind(0)
    rgb, normal, depth = (None, *domains) if first else domains
    return GeometryOutput(rgb=rgb, normal=normal, depth=depth)
