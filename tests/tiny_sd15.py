"""Tiny SD1.5-shaped models and the weight formats users have, written to disk for loader tests.

* builders: :func:`tiny_unet`, :func:`tiny_vae`, :func:`tiny_clip_vision` (random weights, CPU, milliseconds);
* formats: :func:`write_diffusers_folder` (a diffusers SD1.5 folder), :func:`write_ldm_single_file` (a single-file
  checkpoint in the original LDM layout, as in ComfyUI's ``models/checkpoints``), :func:`write_clip_vision_folder`;
* the converters diffusers -> LDM (:func:`unet_to_ldm`, :func:`vae_to_ldm`) live in
  :mod:`dreamdance_core.loading.sd15_layout` (a benchmark writes SD1.5 files with them too);
  ``tests/test_loading_sd15.py`` checks them by a bit-exact round trip through ``from_single_file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPVisionModelWithProjection

from dreamdance_core.loading.sd15_layout import unet_to_ldm, vae_to_ldm
from dreamdance_core.tiny import CROSS_ATTENTION_DIM, tiny_clip_vision, tiny_unet, tiny_vae  # noqa: F401 (re-exported)

# ----------------------------------------------------------------------------------------------------------------
# files on disk
# ----------------------------------------------------------------------------------------------------------------


def write_diffusers_folder(
    folder: Path, unet: UNet2DConditionModel, vae: AutoencoderKL, *, configs_only: bool = False
) -> Path:
    """A diffusers SD1.5 folder: ``model_index.json``, ``unet/`` and ``vae/`` (``config.json`` + safetensors).

    ``configs_only`` writes just the JSON configs: the form of the ``config=`` folder that interprets a single file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, model in (("unet", unet), ("vae", vae)):
        if configs_only:
            model.save_config(folder / name)
        else:
            model.save_pretrained(folder / name, safe_serialization=True)
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def write_ldm_single_file(
    path: Path, unet: UNet2DConditionModel, vae: AutoencoderKL, extra: Mapping[str, torch.Tensor] | None = None
) -> Path:
    """A single-file SD1.x checkpoint in the LDM layout (``model.diffusion_model.*``, ``first_stage_model.*``).

    ``extra`` adds tensors (a text encoder, marker keys of other model families, stray keys).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {**unet_to_ldm(unet), **vae_to_ldm(vae), **(extra or {})}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def write_clip_vision_folder(folder: Path, encoder: CLIPVisionModelWithProjection) -> Path:
    """A transformers folder (``config.json`` + ``model.safetensors``), like SVD's or sd-image-variations' encoder."""
    encoder.save_pretrained(folder, safe_serialization=True)
    return folder


def state_dicts_equal(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Same keys, and every tensor bitwise equal (dtype and shape included)."""
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a
    )
