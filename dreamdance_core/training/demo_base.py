"""The small SD-/SVD-shaped bases the shipped demo checkpoints are trained from (``train/vae.py``).

:func:`dreamdance_core.tiny.tiny_unet` (its attention layout) and :func:`dreamdance_core.tiny.svd_vae` build the rest;
these two are used by the demo-base training alone.
"""

from __future__ import annotations

from ..tiny import TINY_SVD_UNET, block_types


def small_svd_unet(
    block_out_channels: tuple[int, ...] = (32, 64),
    cross_attention_blocks: int = 1,
    first_attention_level: int = 0,
    latent_channels: int = 4,
    attention_head_dim: int = 16,
):
    """SVD-shaped UNet (spatio-temporal blocks, the reference latent concatenated to the input, CLIP cross-attention
    at :data:`~dreamdance_core.tiny.CROSS_ATTENTION_DIM`) with the attention layout of
    :func:`~dreamdance_core.tiny.tiny_unet`."""
    from ..models.unet_svd import ControlledSVDUNet

    down, up = block_types(len(block_out_channels), cross_attention_blocks, first_attention_level, "SpatioTemporal")
    return ControlledSVDUNet(**{
        **TINY_SVD_UNET, "in_channels": 2 * latent_channels, "out_channels": latent_channels,
        "down_block_types": down, "up_block_types": up, "block_out_channels": tuple(block_out_channels),
        "num_attention_heads": tuple(max(1, c // attention_head_dim) for c in block_out_channels),
    }).eval()


def tiny_autoencoder(channels: int = 48, blocks: tuple[int, ...] = (1, 2), latent_channels: int = 4):
    """TAESD-style ``AutoencoderTiny`` (convolutions and ReLUs, no normalisation) with ``len(blocks)`` levels of
    ``channels`` each (downscale ``2^(len(blocks) - 1)``); ``blocks``: residual blocks per encoder level, from full
    resolution down (the decoder mirrors them)."""
    from diffusers import AutoencoderTiny

    widths = (channels,) * len(blocks)
    return AutoencoderTiny(
        encoder_block_out_channels=widths, decoder_block_out_channels=widths, num_encoder_blocks=tuple(blocks),
        num_decoder_blocks=tuple(blocks)[::-1], latent_channels=latent_channels,
    ).eval()
