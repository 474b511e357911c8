"""The frozen SVD UNet, extended in this one place to take the SVD ControlNet's residuals.

diffusers' ``UNetSpatioTemporalConditionModel.forward`` takes no ControlNet residuals. :class:`ControlledSVDUNet`
subclasses it without adding a single module or parameter, so SVD weights (diffusers folders, single files) load into
it unchanged, and overrides ``forward`` with a copy of diffusers' (0.42) forward in which only the lines marked
``# DreamDance:`` are new: the residuals are added to the skip connections and to the mid block's output, exactly as
``UNet2DConditionModel`` does for the image ControlNet. Everything else is marked ``# unchanged (diffusers)``.

Steps 1 (time, added-time-ids and conditioning embeddings) and 3 (down blocks) are shared with the ControlNet
(:mod:`dreamdance_core.models.svd_controlnet`), which holds modules of the same names: they live in the functions
:func:`embed_conditions` and :func:`run_down_blocks` below so that the two stay identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.unets.unet_spatio_temporal_condition import (
    UNetSpatioTemporalConditionModel,
    UNetSpatioTemporalConditionOutput,
)
from diffusers.utils.torch_utils import maybe_adjust_dtype_for_device
from torch import nn


@dataclass
class SVDConditions:
    """The per-call inputs every SVD block needs, flattened over (batch, frames)."""

    emb: torch.Tensor  # [b*f, time_embed_dim]
    encoder_hidden_states: torch.Tensor  # [b*f, 1, cross_attention_dim]
    image_only_indicator: torch.Tensor  # [b, f]
    batch_size: int
    num_frames: int


def embed_conditions(
    model: nn.Module,
    sample: torch.Tensor,
    timestep: torch.Tensor | float | int,
    encoder_hidden_states: torch.Tensor,
    added_time_ids: torch.Tensor,
) -> SVDConditions:
    """diffusers' SVD forward step 1, unchanged: time + added-time-id embeddings, repeated over the frames.

    ``model`` holds ``time_proj``, ``time_embedding``, ``add_time_proj`` and ``add_embedding`` (the SVD UNet or the
    ControlNet); ``sample`` is ``[b, f, c, h, w]``.
    """
    # 1. time  # unchanged (diffusers)
    timesteps = timestep
    if not torch.is_tensor(timesteps):
        dtype = maybe_adjust_dtype_for_device(
            torch.float64 if isinstance(timestep, float) else torch.int64, sample.device
        )
        timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
    elif len(timesteps.shape) == 0:
        timesteps = timesteps[None].to(sample.device)
    batch_size, num_frames = sample.shape[:2]
    timesteps = timesteps.expand(batch_size)
    t_emb = model.time_proj(timesteps).to(dtype=sample.dtype)
    emb = model.time_embedding(t_emb)
    time_embeds = model.add_time_proj(added_time_ids.flatten())
    time_embeds = time_embeds.reshape((batch_size, -1)).to(emb.dtype)
    emb = emb + model.add_embedding(time_embeds)
    # [b, c] -> [b*f, c]; [b, 1, c] -> [b*f, 1, c]
    emb = emb.repeat_interleave(num_frames, dim=0, output_size=emb.shape[0] * num_frames)
    encoder_hidden_states = encoder_hidden_states.repeat_interleave(
        num_frames, dim=0, output_size=encoder_hidden_states.shape[0] * num_frames
    )
    image_only_indicator = torch.zeros(batch_size, num_frames, dtype=sample.dtype, device=sample.device)
    return SVDConditions(emb, encoder_hidden_states, image_only_indicator, batch_size, num_frames)


def run_down_blocks(
    down_blocks: nn.ModuleList, sample: torch.Tensor, cond: SVDConditions
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """diffusers' SVD forward step 3, unchanged: the down blocks; returns the sample and every skip connection."""
    down_block_res_samples: tuple[torch.Tensor, ...] = (sample,)
    for downsample_block in down_blocks:
        kwargs = {}
        if getattr(downsample_block, "has_cross_attention", False):
            kwargs["encoder_hidden_states"] = cond.encoder_hidden_states
        sample, res_samples = downsample_block(
            hidden_states=sample, temb=cond.emb, image_only_indicator=cond.image_only_indicator, **kwargs
        )
        down_block_res_samples += res_samples
    return sample, down_block_res_samples


class ControlledSVDUNet(UNetSpatioTemporalConditionModel):
    """``UNetSpatioTemporalConditionModel`` whose forward also adds ControlNet residuals (same weights, same config)."""

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        down_block_additional_residuals: tuple[torch.Tensor, ...] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNetSpatioTemporalConditionOutput | tuple:
        """diffusers' SVD UNet forward plus the ControlNet residuals.

        Args:
            sample: ``[b, f, in_channels, h, w]`` noisy latents concatenated with the image latents.
            timestep: the EDM-preconditioned timestep (``0.25 * log(sigma)``).
            encoder_hidden_states: ``[b, 1, cross_attention_dim]`` image CLIP embedding.
            added_time_ids: ``[b, 3]`` (fps - 1, motion bucket, noise augmentation strength).
            down_block_additional_residuals: one ``[b*f, c, h', w']`` tensor per skip connection (ControlNet output).
            mid_block_additional_residual: ``[b*f, c, h'', w'']`` added to the mid block's output.
        """
        # 0. upsample size for odd latent sizes  # unchanged (diffusers)
        default_overall_up_factor = 2**self.num_upsamplers
        forward_upsample_size = any(s % default_overall_up_factor != 0 for s in sample.shape[-2:])
        upsample_size = None

        # 1. time and conditioning embeddings  # unchanged (diffusers), shared with the ControlNet
        cond = embed_conditions(self, sample, timestep, encoder_hidden_states, added_time_ids)
        # [b, f, c, h, w] -> [b*f, c, h, w]
        sample = sample.flatten(0, 1)

        # 2. pre-process  # unchanged (diffusers)
        sample = self.conv_in(sample)

        # 3. down  # unchanged (diffusers), shared with the ControlNet
        sample, down_block_res_samples = run_down_blocks(self.down_blocks, sample, cond)

        # DreamDance: add the ControlNet residuals to the skip connections
        if down_block_additional_residuals is not None:
            if len(down_block_additional_residuals) != len(down_block_res_samples):
                raise ValueError(
                    f"the SVD UNet has {len(down_block_res_samples)} skip connections but got "
                    f"{len(down_block_additional_residuals)} ControlNet residuals; the ControlNet was built for a "
                    f"different UNet config"
                )
            down_block_res_samples = tuple(
                res + extra for res, extra in zip(down_block_res_samples, down_block_additional_residuals)
            )

        # 4. mid  # unchanged (diffusers)
        sample = self.mid_block(
            hidden_states=sample,
            temb=cond.emb,
            encoder_hidden_states=cond.encoder_hidden_states,
            image_only_indicator=cond.image_only_indicator,
        )
        # DreamDance: add the ControlNet's mid-block residual
        if mid_block_additional_residual is not None:
            sample = sample + mid_block_additional_residual

        # 5. up  # unchanged (diffusers)
        for i, upsample_block in enumerate(self.up_blocks):
            is_final_block = i == len(self.up_blocks) - 1
            res_samples = down_block_res_samples[-len(upsample_block.resnets) :]
            down_block_res_samples = down_block_res_samples[: -len(upsample_block.resnets)]
            if not is_final_block and forward_upsample_size:
                upsample_size = down_block_res_samples[-1].shape[2:]
            kwargs = {}
            if getattr(upsample_block, "has_cross_attention", False):
                kwargs["encoder_hidden_states"] = cond.encoder_hidden_states
            sample = upsample_block(
                hidden_states=sample,
                temb=cond.emb,
                res_hidden_states_tuple=res_samples,
                upsample_size=upsample_size,
                image_only_indicator=cond.image_only_indicator,
                **kwargs,
            )

        # 6. post-process  # unchanged (diffusers)
        sample = self.conv_norm_out(sample)
        sample = self.conv_act(sample)
        sample = self.conv_out(sample)

        # 7. [b*f, c, h, w] -> [b, f, c, h, w]  # unchanged (diffusers)
        sample = sample.reshape(cond.batch_size, cond.num_frames, *sample.shape[1:])
        if not return_dict:
            return (sample,)
        return UNetSpatioTemporalConditionOutput(sample=sample)
