"""The reference image's preprocessing: its CLIP image embedding (one convention per stage) and its VAE input.

Each convention is its reference implementation's, run on the reference *as given* (not first resized to the video):

* Stage 2, :func:`encode_clip_image` (SVD): diffusers' ``StableVideoDiffusionPipeline._encode_image`` - the image in
  -1..1 through the pipeline's ``_resize_with_antialiasing`` to ``image_size`` x ``image_size`` (a gaussian blur, then
  bicubic with ``align_corners=True``; the aspect ratio is not kept), back to 0..1 and normalised with OpenAI's CLIP
  mean/std, without clamping (the feature extractor's ``do_normalize`` only).
* Stage 1, :func:`encode_reference_image` (AnimateAnyone family: Moore-AnimateAnyone's training datasets,
  sd-image-variations' own pipeline): the encoder's standard ``CLIPImageProcessor`` on the image - shortest edge to
  ``image_size`` (PIL bicubic), centre crop ``image_size`` x ``image_size``, rescale, OpenAI mean/std.
* VAE input, :func:`vae_reference_pixels`: the reference resized to the sampling size the way diffusers'
  ``VaeImageProcessor.preprocess(image, height, width)`` does it (PIL: lanczos; tensor: ``F.interpolate``'s default).

Reference images are core tensors ``[3, H, W]`` / ``[b, 3, H, W]`` in -1..1 or PIL images (RGB).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor

# diffusers' own resize of the SVD pipeline (reused, not rewritten): gaussian blur + bicubic, align_corners=True
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

ReferenceImage = Union[torch.Tensor, PIL.Image.Image]

# OpenAI CLIP normalisation (transformers.utils.constants.OPENAI_CLIP_MEAN / _STD)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def reference_tensor(image: ReferenceImage) -> torch.Tensor:
    """A reference image as a core tensor ``[b, 3, H, W]`` in -1..1; a PIL image is converted as the SVD pipeline
    does it (``pil_to_numpy``, ``numpy_to_pt``, ``* 2 - 1``)."""
    if isinstance(image, PIL.Image.Image):
        return VaeImageProcessor.numpy_to_pt(VaeImageProcessor.pil_to_numpy(image.convert("RGB"))) * 2.0 - 1.0
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"a reference image must be a tensor [3, H, W] / [b, 3, H, W] in -1..1 or a PIL image, got {type(image)}"
        )
    return image[None] if image.ndim == 3 else image


def svd_clip_pixel_values(images: torch.Tensor, size: int) -> torch.Tensor:
    """Core images ``[b, 3, H, W]`` in -1..1 -> CLIP ``pixel_values`` ``[b, 3, size, size]`` as the SVD pipeline's
    ``_encode_image`` computes them (see the module docstring; no clamping)."""
    images = _resize_with_antialiasing(images.float(), (size, size))
    images = (images + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def _embed(image_encoder, pixels: torch.Tensor) -> torch.Tensor:
    pixels = pixels.to(device=image_encoder.device, dtype=image_encoder.dtype)
    return image_encoder(pixel_values=pixels).image_embeds


@torch.no_grad()
def encode_clip_image(image_encoder, images: ReferenceImage) -> torch.Tensor:
    """Stage 2 (SVD): ``image_embeds`` ``[b, projection_dim]`` of a ``CLIPVisionModelWithProjection`` for reference
    images as given, preprocessed as ``StableVideoDiffusionPipeline._encode_image`` does (``image_size`` is 224 in
    SVD, where the pipeline hard-codes 224)."""
    pixels = svd_clip_pixel_values(reference_tensor(images), image_encoder.config.image_size)
    return _embed(image_encoder, pixels)


def clip_image_processor(size: int = 224):
    """The standard CLIP ``CLIPImageProcessor`` (OpenAI mean/std, bicubic shortest edge ``size``, centre crop ``size``)
    in its PIL implementation - the one AnimateAnyone-family code ran with (transformers 4's ``CLIPImageProcessor``;
    transformers 5 names it ``CLIPImageProcessorPil`` and would otherwise pick a torchvision backend when installed)."""
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4: CLIPImageProcessor is the PIL/numpy one
        from transformers import CLIPImageProcessor as Processor
    return Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def to_pil_images(images: ReferenceImage | Sequence[PIL.Image.Image]) -> list[PIL.Image.Image]:
    """Core images in -1..1 (or PIL images) -> RGB PIL images; tensors are rounded to 8 bits (exact for images that
    came from 8-bit files)."""
    if isinstance(images, PIL.Image.Image):
        return [images.convert("RGB")]
    if isinstance(images, (list, tuple)):
        return [image.convert("RGB") for image in images]
    pixels = ((reference_tensor(images).detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return [PIL.Image.fromarray(np.ascontiguousarray(p.permute(1, 2, 0).numpy())) for p in pixels]


@torch.no_grad()
def encode_reference_image(image_encoder, images: ReferenceImage | Sequence[PIL.Image.Image]) -> torch.Tensor:
    """Stage 1 (AnimateAnyone family): ``image_embeds`` ``[b, projection_dim]`` of
    ``image_encoder(**CLIPImageProcessor(...)(images=pil_images))`` on the reference images as given, the processor
    configured from ``image_encoder.config.image_size`` (sd-image-variations' ViT-L/14: 224)."""
    processor = clip_image_processor(image_encoder.config.image_size)
    pixels = processor(images=to_pil_images(images), return_tensors="pt").pixel_values
    return _embed(image_encoder, pixels)


def vae_reference_pixels(image: ReferenceImage, height: int, width: int) -> torch.Tensor:
    """The reference at ``height`` x ``width`` for the VAE, ``[b, 3, height, width]`` in -1..1, resized as diffusers'
    ``VaeImageProcessor.preprocess(image, height, width)`` does (PIL: lanczos; tensor: ``F.interpolate`` with its
    default mode, nearest); a tensor already at that size is returned as it is."""
    processor = VaeImageProcessor(vae_scale_factor=8)
    if isinstance(image, PIL.Image.Image):
        return processor.preprocess(image.convert("RGB"), height=height, width=width)
    image = reference_tensor(image)
    if tuple(image.shape[-2:]) == (height, width):
        return image
    # resize only: preprocess() would guess the value range of a tensor (it re-normalises one whose minimum is >= 0)
    return processor.resize(image.float(), height, width)
