"""SVD ControlNet (paper section 4.2): a trainable copy of the SVD UNet's encoder, linked by zero convolutions.

The copy holds the SVD UNet's ``conv_in``, time/added-time embeddings, down blocks and mid block (built with
:meth:`SVDControlNet.from_unet`, weights copied). The cross-domain controller's guidance feature is added right after
``conv_in`` (eq. 7); every skip connection and the mid block's output then pass through a zero-initialised 1x1 conv
and come out as residuals for :class:`~dreamdance_core.models.unet_svd.ControlledSVDUNet`. A freshly built ControlNet
therefore changes nothing; ``conditioning_scale`` (the overall control strength) scales all residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.controlnets.controlnet import zero_module
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_3d_blocks import UNetMidBlockSpatioTemporal, get_down_block
from diffusers.utils import BaseOutput
from torch import nn

from .unet_svd import embed_conditions, run_down_blocks

# config keys shared with UNetSpatioTemporalConditionModel (copied by from_unet)
UNET_CONFIG_KEYS: tuple[str, ...] = (
    "in_channels",
    "down_block_types",
    "block_out_channels",
    "addition_time_embed_dim",
    "projection_class_embeddings_input_dim",
    "layers_per_block",
    "cross_attention_dim",
    "transformer_layers_per_block",
    "num_attention_heads",
)
# modules copied from the UNet by from_unet
COPIED_MODULES: tuple[str, ...] = ("conv_in", "time_embedding", "add_embedding", "down_blocks", "mid_block")


def _per_block(value, count: int, name: str) -> list:
    values = [value] * count if isinstance(value, int) else list(value)
    if len(values) != count:
        raise ValueError(f"SVDControlNet: {name} has {len(values)} entries but there are {count} down blocks")
    return values


@dataclass
class SVDControlNetOutput(BaseOutput):
    """Residuals for the SVD UNet: one per skip connection (``[b*f, c, h, w]``) and one for the mid block."""

    down_block_res_samples: tuple[torch.Tensor, ...]
    mid_block_res_sample: torch.Tensor


class SVDControlNet(ModelMixin, ConfigMixin):
    """Trainable copy of the SVD UNet encoder whose zero-initialised links produce residuals for the frozen UNet.

    Args: the SVD UNet's config entries of the same names (see ``UNetSpatioTemporalConditionModel``);
    ``conditioning_channels`` must equal ``block_out_channels[0]`` (the controller's output width).
    """

    _supports_gradient_checkpointing = True  # the copied diffusers blocks recompute themselves when enabled

    @register_to_config
    def __init__(
        self,
        in_channels: int = 8,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        addition_time_embed_dim: int = 256,
        projection_class_embeddings_input_dim: int = 768,
        layers_per_block: int | tuple[int, ...] = 2,
        cross_attention_dim: int | tuple[int, ...] = 1024,
        transformer_layers_per_block: int | tuple[int, ...] = 1,
        num_attention_heads: int | tuple[int, ...] = (5, 10, 20, 20),
    ):
        super().__init__()
        count = len(down_block_types)
        if len(block_out_channels) != count:
            raise ValueError(
                f"SVDControlNet: block_out_channels {tuple(block_out_channels)} and down_block_types "
                f"{tuple(down_block_types)} must have the same length"
            )
        if projection_class_embeddings_input_dim != 3 * addition_time_embed_dim:
            raise ValueError(
                f"SVDControlNet: projection_class_embeddings_input_dim ({projection_class_embeddings_input_dim}) must "
                f"be 3 x addition_time_embed_dim ({addition_time_embed_dim}): SVD embeds fps, motion bucket and noise "
                f"augmentation"
            )
        heads = _per_block(num_attention_heads, count, "num_attention_heads")
        cross_dims = _per_block(cross_attention_dim, count, "cross_attention_dim")
        layers = _per_block(layers_per_block, count, "layers_per_block")
        transformer_layers = _per_block(transformer_layers_per_block, count, "transformer_layers_per_block")

        # input and embeddings, as in UNetSpatioTemporalConditionModel
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        time_embed_dim = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim)
        self.add_time_proj = Timesteps(addition_time_embed_dim, True, downscale_freq_shift=0)
        self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim)

        # down blocks + a zero conv per skip connection
        self.down_blocks = nn.ModuleList()
        link_channels = [block_out_channels[0]]
        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            is_final_block = i == count - 1
            self.down_blocks.append(
                get_down_block(
                    block_type,
                    num_layers=layers[i],
                    transformer_layers_per_block=transformer_layers[i],
                    in_channels=input_channel,
                    out_channels=output_channel,
                    temb_channels=time_embed_dim,
                    add_downsample=not is_final_block,
                    resnet_eps=1e-5,
                    cross_attention_dim=cross_dims[i],
                    num_attention_heads=heads[i],
                    resnet_act_fn="silu",
                )
            )
            link_channels += [output_channel] * (layers[i] + (0 if is_final_block else 1))
        self.controlnet_down_blocks = nn.ModuleList(zero_module(nn.Conv2d(c, c, kernel_size=1)) for c in link_channels)

        # mid block + its zero conv
        self.mid_block = UNetMidBlockSpatioTemporal(
            block_out_channels[-1],
            temb_channels=time_embed_dim,
            transformer_layers_per_block=transformer_layers[-1],
            cross_attention_dim=cross_dims[-1],
            num_attention_heads=heads[-1],
        )
        self.controlnet_mid_block = zero_module(nn.Conv2d(block_out_channels[-1], block_out_channels[-1], 1))

    @classmethod
    def from_unet(cls, unet: nn.Module) -> "SVDControlNet":
        """A ControlNet with the UNet's config whose encoder starts as an exact copy of the UNet's weights."""
        controlnet = cls(**{key: unet.config[key] for key in UNET_CONFIG_KEYS})
        for name in COPIED_MODULES:
            getattr(controlnet, name).load_state_dict(getattr(unet, name).state_dict(), strict=True)
        controlnet.to(device=unet.device)
        return controlnet if controlnet.dtype == unet.dtype else controlnet.to(dtype=unet.dtype)

    @property
    def conditioning_channels(self) -> int:
        """Channels of the guidance feature added after ``conv_in``."""
        return self.config.block_out_channels[0]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        controlnet_cond: torch.Tensor,
        conditioning_scale: float = 1.0,
        return_dict: bool = True,
    ) -> SVDControlNetOutput | tuple:
        """Residuals for the SVD UNet.

        Args:
            sample, timestep, encoder_hidden_states, added_time_ids: exactly what the SVD UNet receives
                (``sample``: ``[b, f, in_channels, h, w]``).
            controlnet_cond: the controller's guidance feature ``[b*f, block_out_channels[0], h, w]``.
            conditioning_scale: overall control strength; multiplies every residual (0 = no control).
        """
        expected = (sample.shape[0] * sample.shape[1], self.conditioning_channels, *sample.shape[-2:])
        if tuple(controlnet_cond.shape) != expected:
            raise ValueError(
                f"SVDControlNet: the guidance feature has shape {tuple(controlnet_cond.shape)}, expected {expected} "
                f"(frames x channels x latent size); check the controller's out_channels and downscale factor"
            )
        # 1. time and conditioning embeddings (same code as the SVD UNet)
        cond = embed_conditions(self, sample, timestep, encoder_hidden_states, added_time_ids)
        # 2. conv_in + guidance feature: [b, f, c, h, w] -> [b*f, c0, h, w]
        hidden = self.conv_in(sample.flatten(0, 1)) + controlnet_cond.to(sample.dtype)
        # 3. down blocks (same code as the SVD UNet)
        hidden, down_block_res_samples = run_down_blocks(self.down_blocks, hidden, cond)
        # 4. mid block
        hidden = self.mid_block(
            hidden_states=hidden,
            temb=cond.emb,
            encoder_hidden_states=cond.encoder_hidden_states,
            image_only_indicator=cond.image_only_indicator,
        )
        # 5. zero-initialised links, scaled by the overall strength
        down_residuals = tuple(
            link(res) * conditioning_scale for link, res in zip(self.controlnet_down_blocks, down_block_res_samples)
        )
        mid_residual = self.controlnet_mid_block(hidden) * conditioning_scale
        if not return_dict:
            return (down_residuals, mid_residual)
        return SVDControlNetOutput(down_block_res_samples=down_residuals, mid_block_res_sample=mid_residual)
