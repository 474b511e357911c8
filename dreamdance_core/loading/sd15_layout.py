"""SD1.x weights under their original (LDM) names: the inverse of diffusers' ``convert_ldm_unet_checkpoint`` /
``convert_ldm_vae_checkpoint``, for any number of blocks and any ``layers_per_block``.

diffusers ships only the other direction (``diffusers.loaders.single_file_utils``). These write what a single-file SD1.x
checkpoint (ComfyUI's ``models/checkpoints``) holds, for the tests of :mod:`.sd15` (a bit-exact round trip through
``from_single_file``) and for ``bench/bench_load_memory.py`` (a full-size SD1.5 file to refuse).
"""

from __future__ import annotations

import re

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from .ldm_names import RESBLOCK, UNET_PREFIX, VAE_ATTENTION, VAE_PREFIX, rename_first

StateDict = dict[str, torch.Tensor]


_UNET_TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _unet_layer(kind: str, rest: str) -> str:
    """Inside an LDM input/output block: slot 0 is the resnet (renamed parts), slot 1 the transformer (same names)."""
    return f"0.{rename_first(rest, RESBLOCK)}" if kind == "resnets" else f"1.{rest}"


def _unet_key_to_ldm(key: str, unet: UNet2DConditionModel) -> str:
    """One diffusers UNet key -> its LDM name (``input_blocks`` / ``middle_block`` / ``output_blocks``)."""
    per_block = unet.config.layers_per_block + 1  # resnets (+ attentions) then one downsampler / upsampler
    has_attention = [hasattr(block, "attentions") for block in unet.up_blocks]
    if match := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, layer, rest = int(match[1]), match[2], int(match[3]), match[4]
        return f"input_blocks.{1 + block * per_block + layer}.{_unet_layer(kind, rest)}"
    if match := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{1 + int(match[1]) * per_block + unet.config.layers_per_block}.0.op.{match[2]}"
    if match := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(match[1])}.{rename_first(match[2], RESBLOCK)}"
    if match := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{match[1]}"
    if match := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, layer, rest = int(match[1]), match[2], int(match[3]), match[4]
        return f"output_blocks.{block * per_block + layer}.{_unet_layer(kind, rest)}"
    if match := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        block = int(match[1])
        slot = 2 if has_attention[block] else 1
        return f"output_blocks.{block * per_block + unet.config.layers_per_block}.{slot}.conv.{match[2]}"
    return rename_first(key, _UNET_TOP_LEVEL)


def unet_to_ldm(unet: UNet2DConditionModel) -> StateDict:
    """The UNet's weights under LDM names, prefixed ``model.diffusion_model.`` (as in SD1.x single files)."""
    return {UNET_PREFIX + _unet_key_to_ldm(k, unet): v.clone() for k, v in unet.state_dict().items()}


def _vae_key_to_ldm(key: str, num_blocks: int) -> str:
    """One diffusers AutoencoderKL key -> its LDM name (the decoder's up blocks are numbered in reverse)."""
    key = re.sub(r"\.conv_norm_out\.", ".norm_out.", key)
    key = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", key)
    key = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", key)
    key = re.sub(r"^decoder\.up_blocks\.(\d+)\.", lambda m: f"decoder.up_blocks.{num_blocks - 1 - int(m[1])}.", key)
    key = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.", r"decoder.up.\1.block.", key)
    key = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", r"decoder.up.\1.upsample.", key)
    key = re.sub(r"\.mid_block\.resnets\.(\d+)\.", lambda m: f".mid.block_{int(m[1]) + 1}.", key)
    if match := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        return f"{match[1]}.mid.attn_1.{rename_first(match[2], VAE_ATTENTION)}"
    return key.replace(".conv_shortcut.", ".nin_shortcut.")


def vae_to_ldm(vae: AutoencoderKL, prefix: str = VAE_PREFIX) -> StateDict:
    """The VAE's weights under LDM names; attention projections as 1x1 convs ``[c, c, 1, 1]`` like the originals."""
    num_blocks = len(vae.config.block_out_channels)
    ldm = {}
    for key, value in vae.state_dict().items():
        name = _vae_key_to_ldm(key, num_blocks)
        if re.search(r"\.attn_1\.(q|k|v|proj_out)\.weight$", name):
            value = value[:, :, None, None]
        ldm[prefix + name] = value.clone()
    return ldm
