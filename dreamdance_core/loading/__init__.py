"""Building models from weights users have: diffusers folders, single-file checkpoints, DreamDance weight files.

Only safetensors are read. Every failure names the file, the folder searched and what to do about it.
Submodules: :mod:`.sd15` (SD1.5 UNet/VAE), :mod:`.clip_vision` (reference-image encoder), :mod:`.stage1`
(the whole Stage-1 pipeline), :mod:`.svd` (Stable Video Diffusion + DreamDance Stage-2 control weights).
Strict safetensors reading and :class:`WeightFileError` live one level down, in :mod:`dreamdance_core.weights`.
"""

from ..weights import WeightFileError, check_state_dict, load_model_strict, read_safetensors

__all__ = ["WeightFileError", "check_state_dict", "load_model_strict", "read_safetensors"]
