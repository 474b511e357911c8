"""The original (LDM, Stability ``generative-models``) names that SD1.x and SVD single-file checkpoints share, written
once: the part prefixes, the ResBlock and VAE-attention renames, and the helper that applies such a rename.

Used in both directions: :mod:`.svd` maps diffusers keys to the original ones to read SVD files, :mod:`.sd15_layout`
writes SD1.x files under the original names.
"""

from __future__ import annotations

from typing import Mapping

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

# diffusers ResnetBlock2D -> LDM ResBlock (UNets); the VAE's resnets keep norm1/conv1/... but nin_shortcut
RESBLOCK = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
# diffusers VAE mid-block Attention -> LDM AttnBlock (q/k/v/proj_out are 1x1 convs there)
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def rename_first(name: str, table: Mapping[str, str], *, strict: bool = True) -> str:
    """Replace the leading module path of ``name`` (e.g. ``conv1`` in ``conv1.weight``) by its entry in ``table``
    (exact dotted-prefix match); no entry: ``KeyError`` if ``strict``, else ``name`` unchanged."""
    for old, new in table.items():
        if name.startswith(old + "."):
            return new + name[len(old) :]
    if strict:
        raise KeyError(name)
    return name
