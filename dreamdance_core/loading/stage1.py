"""Everything Stage 1 needs, from the weights a user has: the model, the VAE and the CLIP image encoder.

A DreamDance Stage-1 weights folder (written by ``train/stage1.py``) holds ``reference_unet/``, ``denoising_unet/``,
``pose_guider/`` and ``adapter/``; it may also carry its own ``vae/`` (a diffusers AutoencoderKL folder) and
``image_encoder/`` (a transformers CLIP vision folder), as the small demo models do. Whatever it lacks comes from
the SD1.5 base (diffusers folder or single-file checkpoint) and the CLIP vision model given separately.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..models.stage1 import GeometryDiffusionModel
from ..pipelines import GeometryPipeline
from ..weights import WeightFileError

__all__ = ["GeometryPipeline", "load_geometry_pipeline"]


def load_geometry_pipeline(
    stage1: str | os.PathLike | None = None,
    base: str | os.PathLike | None = None,
    image_encoder: str | os.PathLike | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> GeometryPipeline:
    """Build Stage 1 from a DreamDance weights folder and/or an SD1.5 base and a CLIP vision model.

    Args:
        stage1: DreamDance Stage-1 weights folder. Without it the DreamDance parts start untrained from ``base``
            (useful only to begin training).
        base: SD1.5 diffusers folder or single-file ``.safetensors``; needed for whatever ``stage1`` lacks.
        image_encoder: CLIP vision folder or ``.safetensors``; needed unless ``stage1`` has ``image_encoder/``.
        dtype: parameter dtype (default float32).
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    from ..weights import load_model_strict
    from .clip_vision import HOW_TO_GET_CLIP, load_clip_image_encoder
    from .sd15 import load_sd15_unet, load_sd15_vae

    stage1 = Path(stage1) if stage1 else None
    if stage1 is None and base is None:
        raise WeightFileError(
            "Stage 1 needs weights: a DreamDance Stage-1 folder (from train/stage1.py) and/or an SD1.5 base "
            "(diffusers folder or a checkpoint such as v1-5-pruned-emaonly.safetensors)."
        )
    if stage1 is not None:
        model = GeometryDiffusionModel.from_pretrained(stage1, dtype=dtype)
    else:
        model = GeometryDiffusionModel.from_base_unet(load_sd15_unet(base, dtype=dtype))

    if stage1 is not None and (stage1 / "vae").is_dir():
        vae = load_model_strict(AutoencoderKL, stage1 / "vae", dtype=dtype)
    elif base is not None:
        vae = load_sd15_vae(base, dtype=dtype)
    else:
        raise WeightFileError(
            f"{stage1} has no vae/ folder: also give the SD1.5 base (diffusers folder or single-file checkpoint) "
            "whose VAE Stage 1 was trained with."
        )

    if image_encoder is not None:
        encoder = load_clip_image_encoder(image_encoder, dtype=dtype)
    elif stage1 is not None and (stage1 / "image_encoder").is_dir():
        encoder = load_clip_image_encoder(stage1 / "image_encoder", dtype=dtype)
    else:
        raise WeightFileError(
            "Stage 1 needs a CLIP image encoder for the reference image: pass a CLIP vision folder or .safetensors "
            f"(e.g. from ComfyUI/models/clip_vision). {HOW_TO_GET_CLIP}"
        )
    encoder_source = image_encoder if image_encoder is not None else stage1 / "image_encoder"
    if not isinstance(encoder, CLIPVisionModelWithProjection):
        raise WeightFileError(f"{encoder_source} is not a CLIP vision model with projection. {HOW_TO_GET_CLIP}")
    width = model.denoising_unet.config.cross_attention_dim
    if encoder.config.projection_dim != width:
        raise WeightFileError(
            f"the CLIP image encoder {encoder_source} projects to {encoder.config.projection_dim} dims but the "
            f"Stage-1 UNet's cross-attention takes {width}: use the image encoder Stage 1 was trained with. "
            f"{HOW_TO_GET_CLIP}"
        )
    return GeometryPipeline(model.eval(), vae.eval(), encoder.eval())
