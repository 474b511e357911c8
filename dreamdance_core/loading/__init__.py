"""Building models from weights users have: diffusers folders, single-file checkpoints, DreamDance weight files.

Only safetensors are read. Every failure names the file, the folder searched and what to do about it.
"""

from .common import WeightFileError, load_model_strict, read_safetensors, check_state_dict

__all__ = ["WeightFileError", "load_model_strict", "read_safetensors", "check_state_dict"]
