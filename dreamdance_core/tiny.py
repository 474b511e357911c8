"""Tiny randomly initialised models of the real architectures, for the demo, benchmarks and tests.

They have SD1.5's structure (cross-attention and plain UNet blocks, an 8x VAE with 4 latent channels, a CLIP image
encoder at 224 px) at a few hundred thousand parameters, so a whole Stage-1 run takes seconds on a CPU. Random
weights prove shapes and plumbing, not the method: their images look like noise.
"""

from __future__ import annotations

import torch

CROSS_ATTENTION_DIM = 32


def tiny_unet(
    block_out_channels: tuple[int, ...] = (32, 64),
    layers_per_block: int = 1,
    cross_attention_blocks: int = 1,
):
    """SD1.5-shaped UNet: ``cross_attention_blocks`` cross-attention down blocks, then plain ones, mirrored up."""
    from diffusers import UNet2DConditionModel

    plain_blocks = len(block_out_channels) - cross_attention_blocks
    down = ("CrossAttnDownBlock2D",) * cross_attention_blocks + ("DownBlock2D",) * plain_blocks
    up = ("UpBlock2D",) * plain_blocks + ("CrossAttnUpBlock2D",) * cross_attention_blocks
    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=4,
        norm_num_groups=16,
    ).eval()


def tiny_vae():
    """8x-downsampling VAE with 4 latent channels, like SD's."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    ).eval()


def tiny_clip_vision(num_hidden_layers: int = 2):
    """CLIP image encoder at the real input size (224, patch 14) with a 32-wide transformer."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        image_size=224,
        patch_size=14,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        projection_dim=CROSS_ATTENTION_DIM,
    )
    return CLIPVisionModelWithProjection(config).eval()


def tiny_stage1(seed: int = 0):
    """A Stage-1 model built from :func:`tiny_unet` exactly as a real one is built from SD1.5."""
    from .models.stage1 import GeometryDiffusionModel

    torch.manual_seed(seed)
    return GeometryDiffusionModel.from_base_unet(tiny_unet(), pose_guider_channels=(8, 8, 16, 16), attention_heads=4).eval()
