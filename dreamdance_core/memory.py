"""How much device memory one sampling run needs besides the weights (activations), for a memory manager that must
make room before it: the nodes pass it to ComfyUI as ``load_models_gpu(..., memory_required=...)``.

ComfyUI estimates its own sampling the same way (``comfy/sampler_helpers.py`` ``estimate_memory``, and
``BaseModel.memory_required`` in ``comfy/model_base.py``): bytes = latent batch x latent pixels x dtype size x a
per-model factor (with PyTorch attention: ``0.01 MiB x memory_usage_factor`` per latent pixel, i.e. about 10 500
elements for SD1.5 and 21 000 for SVD), the batch doubled for CFG.

Ours: the peak of one window's denoiser forward (the batch: window frames x CFG branches, x the three domains in
Stage 1) or of one VAE decode chunk, whichever is larger (they never overlap). The factors are elements per latent
pixel per batch item, measured by ``bench/bench_activation_memory.py`` at the real layouts (SD1.5-layout Stage 1 with
reference UNet and pose guider; SVD-XT UNet + ControlNet + controller; SD and SVD VAE decoders) as the peak of live
tensors, with memory-efficient attention (what CUDA's SDPA runs); the peak is linear in frames and pixels within 1 %
from 256x384 up (a few % above the factor at 64x96). :data:`MARGIN` is headroom for the allocator's fragmentation and
kernel workspaces, chosen, not measured (no GPU was at hand). The estimate depends on the window, not on the video's
length; what grows with the video is not counted: the fp32 latents (16 bytes per latent pixel, frame and domain) and
the decoded frames the samplers fill on the device (fp32, 12 bytes per pixel and frame: 1.2 GB for 256 frames at
512x768). The factors are the real layouts': smaller models (the demo and tiny ones) need less than estimated.
"""

from __future__ import annotations

import torch

STAGE1_DENOISER = 8_700
"""Stage 1: elements per latent pixel per batch item (domain x frame x CFG branch) of one window forward, reference
UNet features and the window's pose-guider features included."""
STAGE2_DENOISER = 11_050
"""Stage 2: elements per latent pixel per batch item (frame x CFG branch) of controller + ControlNet + SVD UNet."""
SD_VAE_DECODE = 49_200
"""SD1.5 VAE decoder: elements per latent pixel per decoded image."""
SVD_VAE_DECODE = 65_600
"""SVD temporal VAE decoder: elements per latent pixel per decoded frame."""
MARGIN = 1.2
"""Headroom over the measured peak of live tensors."""
VAE_SCALE = 8  # both VAEs downscale 8x


def _bytes(factor: int, items: int, width: int, height: int, dtype: torch.dtype) -> int:
    latent_pixels = (height // VAE_SCALE) * (width // VAE_SCALE)
    return round(MARGIN * factor) * items * latent_pixels * torch.empty((), dtype=dtype).element_size()


def vae_decode_dtype(vae: torch.nn.Module) -> torch.dtype:
    """The dtype ``vae`` decodes in: fp32 when it upcasts (:func:`~dreamdance_core.precision.needs_upcast`)."""
    from .precision import needs_upcast

    return torch.float32 if needs_upcast(vae) else vae.dtype


def window_frames(num_frames: int, windows) -> int:
    """Frames in the largest window (:class:`~dreamdance_core.sampling.windows.WindowOptions`; None: all frames)."""
    return num_frames if windows is None else min(num_frames, windows.length)


def stage1_memory(options, num_frames: int, width: int, height: int, dtype: torch.dtype,
                  decode_dtype: torch.dtype | None = None) -> int:
    """Activation bytes of :func:`~dreamdance_core.sampling.stage1.sample_geometry` (``options``: its
    :class:`~dreamdance_core.sampling.stage1.Stage1Options`) at ``width x height`` for ``num_frames`` pose maps, with
    models in ``dtype`` and the VAE decoding in ``decode_dtype`` (default ``dtype``; fp32 when it upcasts)."""
    from .models.stage1 import NUM_DOMAINS

    groups = 2 if options.cfg_batch and any(w != 1.0 for w in options.guidance) else 1
    denoise = _bytes(STAGE1_DENOISER, groups * NUM_DOMAINS * window_frames(num_frames, options.windows), width, height,
                     dtype)
    decoded = min(options.decode_chunk_size, NUM_DOMAINS * num_frames)  # the decode runs over domains x frames
    decode = _bytes(SD_VAE_DECODE, decoded, width, height, decode_dtype or dtype)
    return max(denoise, decode)


def stage2_memory(options, dtype: torch.dtype, decode_dtype: torch.dtype | None = None) -> int:
    """Activation bytes of :func:`~dreamdance_core.sampling.stage2.sample_stage2` (``options``: its
    :class:`~dreamdance_core.sampling.stage2.Stage2Options`, which carry size and frames) with models in ``dtype``
    and the VAE decoding in ``decode_dtype`` (default ``dtype``; fp32 when it upcasts)."""
    branches = 2 if options.max_cfg > 1.0 else 1
    frames = window_frames(options.num_frames, options.windows)
    denoise = _bytes(STAGE2_DENOISER, branches * frames, options.width, options.height, dtype)
    decoded = min(options.decode_chunk_size, options.num_frames)
    decode = _bytes(SVD_VAE_DECODE, decoded, options.width, options.height, decode_dtype or dtype)
    return max(denoise, decode)
