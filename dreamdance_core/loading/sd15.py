"""Stable Diffusion 1.5 UNet and VAE, the base of Stage 1, from the weights users already have.

Two kinds of ``source`` are accepted:

* a **diffusers folder**: a whole SD1.5 pipeline folder (``model_index.json``, ``unet/``, ``vae/``; each component holds
  ``config.json`` and ``diffusion_pytorch_model[.fp16].safetensors``), or one component folder on its own (e.g. the
  ``stabilityai/sd-vae-ft-mse`` VAE that the AnimateAnyone family uses);
* a **single file** ``.safetensors`` in the original LDM layout, as found in ComfyUI's ``models/checkpoints``
  (``model.diffusion_model.*`` UNet, ``first_stage_model.*`` VAE, ``cond_stage_model.*`` text encoder), or, for the
  VAE, a standalone LDM VAE file as found in ``models/vae`` (``encoder.*`` / ``decoder.*``). A component's weights
  saved as one file with diffusers names (e.g. ``sd-vae-ft-mse``'s ``diffusion_pytorch_model.safetensors`` copied to
  ``models/vae``) are read as they are. A single file carries no architecture: ``config`` names a diffusers-style
  config folder (``unet/config.json``, ``vae/config.json``) that interprets it; by default the real SD1.5 configs
  shipped in ``dreamdance_core/configs/sd15/``.

Older diffusers folders and files name the VAE mid-block attention ``query/key/value/proj_attn`` (stock SD1.5 folders,
``stabilityai/sd-vae-ft-mse``); they are renamed as diffusers' ``from_pretrained`` does (:func:`.common.build_strict`).

Key conversion LDM -> diffusers is diffusers' own (``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint``,
what ``from_single_file`` runs); the difference is that loading here is **strict**: a missing, unexpected or wrongly
shaped weight is an error that lists the keys, where diffusers would warn and keep random weights. Only safetensors
are read; pickles (``.ckpt``, ``.bin``, ``.pt``) are refused. Every failure is a :class:`WeightFileError` that names
the file, the folder searched and how to get the weights.

Models come back in eval mode, on the CPU, in ``dtype`` (default float32) - move them with ``.to(device)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from diffusers import AutoencoderKL, ModelMixin, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    infer_diffusers_model_type,
)

from ..weights import (
    CONFIG_NAME,
    DIFFUSERS_WEIGHT_NAMES,
    WeightFileError,
    build_strict,
    component_folder,
    find_weights_file,
    read_safetensors,
    shorten,
)

SD15_CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "sd15"
"""The runwayml SD1.5 ``unet/``, ``vae/`` and ``scheduler/`` configs (JSON only, no weights)."""

HOW_TO_GET_SD15 = (
    "Put an SD1.5 checkpoint such as v1-5-pruned-emaonly.safetensors (from huggingface.co/stable-diffusion-v1-5/"
    "stable-diffusion-v1-5) into ComfyUI/models/checkpoints, or pass a diffusers SD1.5 folder holding unet/ and vae/."
)

# diffusers' names for the families its single-file detection recognises, in words, for error messages
_FAMILY_NAMES = {
    "v2": "Stable Diffusion 2.x",
    "xl_base": "SDXL base",
    "xl_refiner": "SDXL refiner",
    "xl_inpaint": "SDXL inpainting",
    "inpainting": "SD1.x inpainting (9 input channels)",
    "inpainting_v2": "SD2.x inpainting",
    "instruct-pix2pix": "InstructPix2Pix (8 input channels)",
    "upscale": "SD x4 upscaler",
    "playground-v2-5": "Playground v2.5",
}
_SVD_MARKERS = (".time_stack.", ".time_mixer.")  # temporal layers of Stable Video Diffusion's LDM UNet / VAE

M = TypeVar("M", bound=ModelMixin)
StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class _Component:
    """One SD1.5 component: its diffusers class, its pipeline subfolder and how to find and convert it in a file."""

    cls: type[ModelMixin]
    subfolder: str
    select: Callable[[StateDict], StateDict]  # the component's LDM keys of a single file ({} if absent)
    native: Callable[[StateDict], bool]  # the file holds this component alone, under diffusers names
    convert: Callable[[StateDict, dict[str, Any]], StateDict]  # LDM -> diffusers names


def _select_unet(state: StateDict) -> StateDict:
    return {k: v for k, v in state.items() if k.startswith("model.diffusion_model.")}


def _select_vae(state: StateDict) -> StateDict:
    prefixed = {k: v for k, v in state.items() if k.startswith("first_stage_model.")}
    if prefixed:
        return prefixed
    standalone = "encoder.conv_in.weight" in state and "decoder.conv_in.weight" in state  # models/vae file
    return dict(state) if standalone else {}


def _native_unet(state: StateDict) -> bool:
    return "conv_in.weight" in state and "time_embedding.linear_1.weight" in state


def _native_vae(state: StateDict) -> bool:
    return "encoder.down_blocks.0.resnets.0.conv1.weight" in state and "decoder.conv_in.weight" in state


_UNET = _Component(UNet2DConditionModel, "unet", _select_unet, _native_unet, convert_ldm_unet_checkpoint)
_VAE = _Component(AutoencoderKL, "vae", _select_vae, _native_vae, convert_ldm_vae_checkpoint)


def load_sd15_unet(
    source: str | os.PathLike, *, config: str | os.PathLike | None = None, dtype: torch.dtype | None = None
) -> UNet2DConditionModel:
    """The SD1.5 ``UNet2DConditionModel`` from a diffusers folder or an LDM single file (see the module docstring).

    Args:
        source: diffusers SD1.5 folder (or its ``unet/`` folder), or a single-file ``.safetensors`` checkpoint.
        config: for a single file, a diffusers-style config folder with ``unet/config.json``; default: shipped SD1.5.
        dtype: parameter dtype of the returned model; default float32.

    Raises:
        WeightFileError: missing/corrupt/pickle file, not an SD1.5 checkpoint, or keys that do not match the config.
    """
    return _load(_UNET, source, config, dtype)


def load_sd15_vae(
    source: str | os.PathLike, *, config: str | os.PathLike | None = None, dtype: torch.dtype | None = None
) -> AutoencoderKL:
    """The SD1.5 ``AutoencoderKL`` from a diffusers folder (or VAE folder), an LDM checkpoint or an LDM VAE file.

    Same arguments and errors as :func:`load_sd15_unet`; ``config`` must hold ``vae/config.json``. The latent
    ``scaling_factor`` (0.18215 for SD1.5) comes from that config.
    """
    return _load(_VAE, source, config, dtype)


def _load(
    component: _Component, source: str | os.PathLike, config: str | os.PathLike | None, dtype: torch.dtype | None
) -> ModelMixin:
    """Folder -> its component's config and weights; single file -> converted with ``config`` (default: shipped)."""
    source = Path(source)
    if source.is_dir():
        folder = component_folder(source, component.subfolder, HOW_TO_GET_SD15)
        weights = find_weights_file(folder, DIFFUSERS_WEIGHT_NAMES, HOW_TO_GET_SD15)
        model_config = _read_config(component.cls, folder)
        state = read_safetensors(weights)
    else:
        if not source.exists():
            raise WeightFileError(
                f"SD1.5 weights not found: no file or folder {source.name!r} in {source.parent}. {HOW_TO_GET_SD15}"
            )
        weights = source
        config_folder = component_folder(Path(config or SD15_CONFIGS), component.subfolder, HOW_TO_GET_SD15)
        model_config = _read_config(component.cls, config_folder)
        state = _convert_single_file(component, read_safetensors(source), model_config, source)
    return build_strict(component.cls, model_config, state, str(weights), dtype)


def _read_config(cls: type[ModelMixin], folder: Path) -> dict[str, Any]:
    """``folder/config.json`` as a config dict for ``cls``, checked to describe that class."""
    path = folder / CONFIG_NAME
    try:
        config = dict(cls.load_config(folder))
    except (OSError, ValueError) as error:
        raise WeightFileError(f"{path} is not a readable {cls.__name__} config ({error}).") from error
    found = config.get("_class_name", cls.__name__)
    if found != cls.__name__:
        raise WeightFileError(f"{path} describes a {found}, not a {cls.__name__}: point at the {cls.__name__} config.")
    return config


def describe_family(state: StateDict) -> str | None:
    """Words for the model family of a non-SD1.x single file, ``None`` for SD1.x (diffusers' "v1")."""
    if any(marker in key for key in state for marker in _SVD_MARKERS):
        return "Stable Video Diffusion"
    try:
        family = infer_diffusers_model_type(state)
    except (KeyError, ValueError, IndexError):  # some detectors index keys of their own family
        return None
    return None if family == "v1" else _FAMILY_NAMES.get(family, f"a {family!r} model (diffusers' name)")


def _convert_single_file(component: _Component, state: StateDict, config: dict[str, Any], source: Path) -> StateDict:
    """The component's weights of a single file under diffusers names; nothing in the file may go unused.

    A file already in diffusers names (one component saved alone) is returned as it is; LDM files are converted.
    """
    family = describe_family(state)
    if family is not None:
        raise WeightFileError(
            f"{source} is a {family} checkpoint, not Stable Diffusion 1.5. DreamDance Stage 1 is built on SD1.5. "
            f"{HOW_TO_GET_SD15}"
        )
    if component.native(state):
        return state
    ldm = component.select(state)
    if not ldm:
        prefixes = sorted({key.split(".")[0] for key in state})
        raise WeightFileError(
            f"{source} holds no SD1.5 {component.subfolder} weights in the LDM layout (found top-level key groups: "
            f"{', '.join(prefixes[:12])}). {HOW_TO_GET_SD15}"
        )
    try:
        converted = component.convert(ldm, config)
    except (KeyError, IndexError, AttributeError, RuntimeError) as error:
        raise WeightFileError(
            f"{source}: the {component.subfolder} weights could not be converted from the LDM layout ({error!r}); the "
            f"file is incomplete or made for another architecture. {HOW_TO_GET_SD15}"
        ) from error
    # diffusers' converters silently skip keys they do not recognise; every converted tensor is the file's tensor
    # or a view of it starting at the same address, so the skipped ones are those whose memory nothing references
    used = {tensor.data_ptr() for tensor in converted.values()}
    unused = sorted(key for key, tensor in ldm.items() if tensor.data_ptr() not in used)
    if unused:
        raise WeightFileError(
            f"{source}: {len(unused)} unexpected {component.subfolder} keys that SD1.5 does not have: "
            f"{shorten(unused)}. The checkpoint is not a plain SD1.5 model."
        )
    return converted
