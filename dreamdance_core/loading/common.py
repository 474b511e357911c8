"""Strict, safetensors-only weight reading shared by every loader."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, TypeVar

import torch

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")

M = TypeVar("M", bound=torch.nn.Module)


class WeightFileError(ValueError):
    """A weight file or folder is missing, unreadable, unsafe or does not match the model."""


def read_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning every failure into an error that says which file and what to do."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightFileError(
            f"{path} is a pickle checkpoint ({path.suffix}); DreamDance only loads .safetensors files, because pickles "
            f"can run code when opened. Convert it to safetensors (e.g. with the safetensors library) or download the "
            f".safetensors release of the same model."
        )
    if not path.is_file():
        raise WeightFileError(
            f"weight file {path.name!r} not found in {path.parent} (looked for {path}). Check the path, or place the "
            f"file there."
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise WeightFileError(
            f"{path} could not be read as safetensors ({error}). The file is truncated or corrupt: download or "
            f"export it again."
        ) from error


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise if ``state_dict`` has missing, unexpected or wrongly shaped keys for ``model`` (lists them)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(expected[k].shape) != tuple(state_dict[k].shape)
    )
    problems = []
    for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
            problems.append(f"{len(keys)} {title}: {shown}")
    if problems:
        raise WeightFileError(
            f"{source} does not match {type(model).__name__}: " + "; ".join(problems)
            + ". The file was made for a different model or configuration; use the weights that belong with this "
            "config.json."
        )


def load_model_strict(cls: type[M], folder: str | os.PathLike, *, dtype: torch.dtype | None = None) -> M:
    """Load a diffusers ``ModelMixin`` saved with ``save_pretrained`` - strictly: every key must match.

    (diffusers' own ``from_pretrained`` initialises missing weights randomly with only a warning.)
    """
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise WeightFileError(
            f"{cls.__name__}: no {CONFIG_NAME} in {folder}. Point at the folder written by save_pretrained "
            f"(it holds {CONFIG_NAME} and {WEIGHTS_NAME})."
        )
    try:
        config = cls.load_config(folder)
    except (OSError, ValueError) as error:
        raise WeightFileError(f"{config_path} is not a valid model config ({error}).") from error
    try:
        model = cls.from_config(config)
    except (TypeError, ValueError) as error:
        raise WeightFileError(f"{config_path} does not describe a valid {cls.__name__}: {error}") from error
    state_dict = read_safetensors(folder / WEIGHTS_NAME)
    check_state_dict(model, state_dict, str(folder / WEIGHTS_NAME))
    model.load_state_dict(state_dict, strict=True)
    if dtype is not None:
        model.to(dtype=dtype)
    return model.eval()
