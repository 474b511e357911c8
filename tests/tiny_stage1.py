"""Tiny Stage-1 components for tests (random weights, CPU, milliseconds per forward)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from dreamdance_core.models.stage1 import GeometryDiffusionModel

CROSS_ATTENTION_DIM = 32


def tiny_unet() -> UNet2DConditionModel:
    """SD1.5-shaped UNet: a cross-attention down block, a plain down block, mirrored up blocks."""
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=4,
        norm_num_groups=16,
    )


def tiny_vae() -> AutoencoderKL:
    """8x-downsampling VAE with 4 latent channels, like SD's."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )


def tiny_image_encoder() -> CLIPVisionModelWithProjection:
    config = CLIPVisionConfig(
        image_size=224,
        patch_size=14,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=4,
        projection_dim=CROSS_ATTENTION_DIM,
    )
    return CLIPVisionModelWithProjection(config).eval()


def tiny_stage1(seed: int = 0) -> GeometryDiffusionModel:
    torch.manual_seed(seed)
    return GeometryDiffusionModel.from_base_unet(tiny_unet(), pose_guider_channels=(8, 8, 16, 16), attention_heads=4).eval()


def randomize_(module: torch.nn.Module, scale: float = 0.1, seed: int = 1) -> torch.nn.Module:
    """Give every parameter random values (so zero-initialised paths become active, as after training)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module
