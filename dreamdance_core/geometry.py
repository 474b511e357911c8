"""Depth / normal maps <-> 3-channel images <-> VAE latents: the one place for these conventions.

Core images are float ``[frames, 3, H, W]`` in -1..1.

* **Depth image**: relative depth, per frame normalised over the foreground: ``d_norm = (d_max - d) / (d_max - d_min)``
  in 0..1 (1 = nearest), background 0; as an image ``2 * d_norm - 1`` on all three channels (so +1 = nearest,
  -1 = background / farthest). This is the ControlNet "depth" look (near is bright).
* **Normal image**: camera-space unit normals, x right, y up, z toward the camera (OpenGL convention), written
  directly as the three channels in -1..1; background is the zero vector (mid grey).
* **Latents**: ``vae.encode(image).latent_dist.mean * scaling_factor`` (the distribution mean, so encoding is
  deterministic; :mod:`dreamdance_core.autoencoder`); decoding divides by the scaling factor and clamps to -1..1.
"""

from __future__ import annotations

import torch

from .autoencoder import decode, encode
from .cancel import CancelCheck, cancel_hooks, check
from .precision import upcast_vae


def depth_to_image(depth: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Depth ``[F, H, W]`` or ``[F, 1, H, W]`` (larger = farther) -> depth image ``[F, 3, H, W]`` in -1..1.

    ``mask`` (bool, same shape) marks the foreground; default: every finite, positive depth.
    """
    if depth.ndim == 4:
        depth = depth[:, 0]
    if depth.ndim != 3:
        raise ValueError(f"depth must be [frames, H, W] or [frames, 1, H, W], got {tuple(depth.shape)}")
    if mask is None:
        mask = torch.isfinite(depth) & (depth > 0)
    elif mask.ndim == 4:
        mask = mask[:, 0]
    mask = mask.bool()
    big = torch.finfo(depth.dtype).max
    d_min = torch.where(mask, depth, torch.full_like(depth, big)).flatten(1).amin(1).view(-1, 1, 1)
    d_max = torch.where(mask, depth, torch.full_like(depth, -big)).flatten(1).amax(1).view(-1, 1, 1)
    span = (d_max - d_min).clamp_min(1e-6)
    normalised = torch.where(mask, (d_max - depth) / span, torch.zeros_like(depth))
    normalised = torch.where(mask & (d_max - d_min < 1e-6), torch.ones_like(depth), normalised)  # flat foreground
    return (normalised * 2.0 - 1.0).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def image_to_depth(image: torch.Tensor) -> torch.Tensor:
    """Depth image ``[F, 3, H, W]`` in -1..1 -> relative depth ``[F, H, W]`` in 0..1 (1 = nearest, 0 = background)."""
    return ((image.mean(dim=1) + 1.0) / 2.0).clamp(0.0, 1.0)


def normal_to_image(normal: torch.Tensor) -> torch.Tensor:
    """Unit normals ``[F, 3, H, W]`` (zero vector = background) -> normal image ``[F, 3, H, W]`` in -1..1."""
    if normal.ndim != 4 or normal.shape[1] != 3:
        raise ValueError(f"normals must be [frames, 3, H, W], got {tuple(normal.shape)}")
    return normal.clamp(-1.0, 1.0)


def image_to_normal(image: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """Normal image -> unit normals ``[F, 3, H, W]``; pixels whose vector is shorter than ``eps`` become zero."""
    length = image.norm(dim=1, keepdim=True)
    return torch.where(length > eps, image / length.clamp_min(1e-6), torch.zeros_like(image))


@torch.no_grad()
def encode_latents(
    vae, images: torch.Tensor, chunk_size: int = 8, cancel_check: CancelCheck | None = None
) -> torch.Tensor:
    """Images ``[N, 3, H, W]`` in -1..1 -> scaled latents ``[N, 4, H/8, W/8]``, encoded ``chunk_size`` at a time
    (``cancel_check``: called before every chunk and between the encoder's blocks, :mod:`dreamdance_core.cancel`)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    latents = []  # images go to the device a chunk at a time
    with cancel_hooks(cancel_check, [vae]), upcast_vae(vae):  # fp16 + force_upcast: fp32 (dreamdance_core.precision)
        for chunk in images.split(chunk_size):
            check(cancel_check)
            latents.append(encode(vae, chunk.to(device=vae.device, dtype=vae.dtype)))
    return torch.cat(latents) * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(
    vae, latents: torch.Tensor, chunk_size: int = 8, cancel_check: CancelCheck | None = None
) -> torch.Tensor:
    """Scaled latents ``[N, 4, h, w]`` -> images ``[N, 3, 8h, 8w]`` in -1..1, decoded ``chunk_size`` at a time
    (``cancel_check``: called before every chunk and between the decoder's blocks, :mod:`dreamdance_core.cancel`)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    latents = latents.to(device=vae.device) / vae.config.scaling_factor
    images = None  # [N, 3, H, W] fp32, filled chunk by chunk: one copy of the output, not the chunks plus their cat
    with cancel_hooks(cancel_check, [vae]), upcast_vae(vae):  # fp16 + force_upcast: fp32 (dreamdance_core.precision)
        for start in range(0, latents.shape[0], chunk_size):
            check(cancel_check)
            decoded = decode(vae, latents[start:start + chunk_size].to(vae.dtype))
            if images is None:
                images = decoded.new_empty((latents.shape[0], *decoded.shape[1:]), dtype=torch.float32)
            images[start:start + decoded.shape[0]] = decoded.clamp(-1.0, 1.0)
    return images


# SD1.x latent -> approximate RGB (the linear factors ComfyUI's latent previews use for SD1.5)
SD15_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


def latent_preview(latent: torch.Tensor) -> torch.Tensor | None:
    """A cheap preview ``[3, h, w]`` in -1..1 of one scaled SD latent ``[4, h, w]`` (None for other latent sizes)."""
    if latent.ndim != 3 or latent.shape[0] != len(SD15_LATENT_RGB):
        return None
    factors = torch.tensor(SD15_LATENT_RGB, dtype=torch.float32, device=latent.device)
    return torch.einsum("chw,cr->rhw", latent.float(), factors).clamp(-1.0, 1.0)
