"""Tiny randomly initialised models of the real architectures: the "(tiny random demo)" of the nodes and the command
line (:func:`tiny_geometry_pipeline`, :func:`tiny_video_pipeline`), and the models tests and benchmarks build on.

They have SD1.5's structure (cross-attention and plain UNet blocks, an 8x VAE with 4 latent channels, a CLIP image
encoder at 224 px) and SVD's at a few hundred thousand parameters, so a whole run takes seconds on a CPU. Random
weights prove shapes and plumbing, not the method: their images look like noise.

The loaders never import this module (it stands above them); :mod:`dreamdance_core.sources` picks between a user's
weights, the shipped demo checkpoints and these. The small bases the demos are trained from are built by
:mod:`dreamdance_core.training.demo_base`.
"""

from __future__ import annotations

import torch

CROSS_ATTENTION_DIM = 32


def tiny_unet(
    block_out_channels: tuple[int, ...] = (32, 64),
    layers_per_block: int = 1,
    cross_attention_blocks: int = 1,
    latent_channels: int = 4,
    first_attention_level: int = 0,
):
    """SD1.5-shaped UNet: ``first_attention_level`` plain down blocks, ``cross_attention_blocks`` cross-attention
    ones, then plain ones, mirrored up; ``latent_channels`` in and out (SD's 4 by default). Starting the attention
    one level down keeps attention off the full latent resolution (much cheaper on a CPU)."""
    from diffusers import UNet2DConditionModel

    down, up = block_types(len(block_out_channels), cross_attention_blocks, first_attention_level, "2D")
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=latent_channels,
        out_channels=latent_channels,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=4,
        norm_num_groups=16,
    ).eval()


def block_types(levels: int, attention_blocks: int, first_attention_level: int, kind: str):
    """(down, up) diffusers block type names: ``attention_blocks`` cross-attention levels from
    ``first_attention_level``, plain levels elsewhere, mirrored up; ``kind`` "2D" (SD) or "SpatioTemporal" (SVD)."""
    if not 0 <= first_attention_level <= levels - attention_blocks:
        raise ValueError(f"{attention_blocks} attention blocks from level {first_attention_level} do not fit in "
                         f"{levels} levels")
    attention = [first_attention_level <= i < first_attention_level + attention_blocks for i in range(levels)]
    down = tuple(f"CrossAttnDownBlock{kind}" if a else f"DownBlock{kind}" for a in attention)
    up = tuple(f"CrossAttnUpBlock{kind}" if a else f"UpBlock{kind}" for a in reversed(attention))
    return down, up


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
    return GeometryDiffusionModel.from_base_unet(
        tiny_unet(), pose_guider_channels=(8, 8, 16, 16), attention_heads=4
    ).eval()


# ---------------------------------------------------------------------------------------------------------------------
# Stage 2: tiny SVD parts. Constraints: projection_class_embeddings_input_dim = 3 * addition_time_embed_dim; the UNet's
# cross_attention_dim = CLIP projection_dim. The tiny VAE downscales by 2, so the tiny controller has two levels.

TINY_SVD_UNET = dict(
    sample_size=8,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(32, 64),
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    layers_per_block=1,
    cross_attention_dim=CROSS_ATTENTION_DIM,
    num_attention_heads=(2, 4),
    num_frames=4,
)
TINY_SVD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    latent_channels=4,
    sample_size=32,
)
TINY_CONTROLLER = dict(block_channels=(8, 16), out_channels=32, attention_heads=4)


def tiny_svd_unet(seed: int = 0):
    from .models.unet_svd import ControlledSVDUNet

    torch.manual_seed(seed)
    return ControlledSVDUNet(**TINY_SVD_UNET).eval()


def svd_vae(block_out_channels: tuple[int, ...] = (32, 64), latent_channels: int = 4, sample_size: int = 32):
    """``AutoencoderKLTemporalDecoder`` (downscale ``2^(len(channels) - 1)``; channels multiples of 32, its group
    norm's size) with an identity ``quant_conv``, as in SVD, which has none."""
    from diffusers import AutoencoderKLTemporalDecoder

    vae = AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        block_out_channels=tuple(block_out_channels), layers_per_block=1, latent_channels=latent_channels,
        sample_size=sample_size,
    ).eval()
    with torch.no_grad():
        vae.quant_conv.weight.copy_(torch.eye(vae.quant_conv.weight.shape[0])[:, :, None, None])
        vae.quant_conv.bias.zero_()
    return vae


def tiny_svd_vae(seed: int = 1):
    """Tiny :func:`svd_vae` (2x downscale, 4 latent channels)."""
    torch.manual_seed(seed)
    return svd_vae(TINY_SVD_VAE["block_out_channels"], TINY_SVD_VAE["latent_channels"], TINY_SVD_VAE["sample_size"])


def tiny_svd_components(seed: int = 0):
    """UNet, temporal VAE, CLIP vision and SVD's scheduler config, all tiny."""
    import json

    from .loading.svd import SCHEDULER_CONFIG, SVD_CONFIG_DIR
    from .pipelines import SVDComponents

    torch.manual_seed(seed + 2)
    encoder = tiny_clip_vision()
    scheduler = json.loads((SVD_CONFIG_DIR / SCHEDULER_CONFIG).read_text())
    return SVDComponents(tiny_svd_unet(seed), tiny_svd_vae(seed + 1), encoder, scheduler)


def tiny_controller(geometry_attention: bool = True, seed: int = 3, **overrides):
    from .models.controller import CrossDomainController

    torch.manual_seed(seed)
    return CrossDomainController(**{**TINY_CONTROLLER, "geometry_attention": geometry_attention, **overrides}).eval()


def tiny_geometry_pipeline(seed: int = 0):
    """The tiny randomly initialised Stage 1 (plumbing demos only): a :class:`~.pipelines.GeometryPipeline`."""
    from .pipelines import GeometryPipeline

    model = tiny_stage1(seed)
    return GeometryPipeline(model, tiny_vae(), tiny_clip_vision(), random_weights=True)


def tiny_video_pipeline(seed: int = 0):
    """The tiny randomly initialised Stage 2 (plumbing demos only): a :class:`~.pipelines.VideoPipeline`."""
    from .models.svd_controlnet import SVDControlNet
    from .pipelines import VideoPipeline

    components = tiny_svd_components(seed)
    controlnet = SVDControlNet.from_unet(components.unet).eval()
    return VideoPipeline(components, tiny_controller(), controlnet, random_weights=True)
