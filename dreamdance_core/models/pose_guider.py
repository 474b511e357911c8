"""Pose guider: a light convolutional encoder of rendered pose maps (AnimateAnyone / Champ style).

Its output has the channels of the denoising UNet's ``conv_in`` and the latent resolution, and is added right after
``conv_in``. The last convolution is zero-initialised, so a fresh guider changes nothing.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.controlnets.controlnet import zero_module
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class PoseGuider(ModelMixin, ConfigMixin):
    """Rendered pose maps ``[b, 3, H, W]`` -> features ``[b, embedding_channels, H / 2^(n-1), W / 2^(n-1)]``.

    Args:
        conditioning_channels: channels of the pose map (3 for a rendered RGB skeleton).
        block_out_channels: channels per stage; each stage after the first halves the resolution, so 4 stages give
            the 8x downsampling of the SD VAE.
        embedding_channels: output channels, equal to the UNet's ``block_out_channels[0]`` (320 for SD1.5).
    """

    @register_to_config
    def __init__(
        self,
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (16, 32, 96, 256),
        embedding_channels: int = 320,
    ):
        super().__init__()
        if len(block_out_channels) < 1:
            raise ValueError("PoseGuider needs at least one block in block_out_channels")
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], kernel_size=3, padding=1)
        blocks = []
        for channels_in, channels_out in zip(block_out_channels[:-1], block_out_channels[1:]):
            blocks.append(nn.Conv2d(channels_in, channels_in, kernel_size=3, padding=1))
            blocks.append(nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, stride=2))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = zero_module(nn.Conv2d(block_out_channels[-1], embedding_channels, kernel_size=3, padding=1))

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, pose_maps: torch.Tensor) -> torch.Tensor:
        # [b, 3, H, W] -> [b, c0, H, W]
        x = nn.functional.silu(self.conv_in(pose_maps))
        # each pair: same-resolution conv, then strided conv halving H and W
        for block in self.blocks:
            x = nn.functional.silu(block(x))
        # [b, c_last, H/f, W/f] -> [b, embedding_channels, H/f, W/f]
        return self.conv_out(x)
