"""The reference image's CLIP embedding, shared by both stages (as diffusers' SVD pipeline computes it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# OpenAI CLIP normalisation (transformers.utils.constants.OPENAI_CLIP_MEAN / _STD)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_pixel_values(images: torch.Tensor, size: int) -> torch.Tensor:
    """Core images ``[b, 3, H, W]`` in -1..1 -> CLIP ``pixel_values`` ``[b, 3, size, size]`` (antialiased resize)."""
    images = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    images = ((images + 1.0) / 2.0).clamp(0.0, 1.0)
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


@torch.no_grad()
def encode_clip_image(image_encoder, images: torch.Tensor) -> torch.Tensor:
    """``image_embeds`` ``[b, projection_dim]`` of a ``CLIPVisionModelWithProjection`` for core images in -1..1."""
    pixels = clip_pixel_values(images, image_encoder.config.image_size)
    pixels = pixels.to(device=image_encoder.device, dtype=image_encoder.dtype)
    return image_encoder(pixel_values=pixels).image_embeds
