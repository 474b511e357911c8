"""The CLIP image encoder that embeds the reference image (``transformers.CLIPVisionModelWithProjection``).

Which encoder goes where: **Stage 1** (SD1.5, cross-attention width 768) needs a **ViT-L/14** with projection 768
(``openai/clip-vit-large-patch14``, or ``image_encoder/`` of ``lambdalabs/sd-image-variations-diffusers``, as the
AnimateAnyone family uses). **Stage 2** (SVD) uses the ViT-H/14 (projection 1024) that SVD carries inside its own
checkpoint or folder; no separate file is needed. :data:`HOW_TO_GET_CLIP` and :data:`HOW_TO_GET_SVD_IMAGE_ENCODER`
say so in error messages.

Two kinds of ``source`` are accepted:

* a **transformers folder** holding ``config.json`` and ``model[.fp16].safetensors`` - e.g. the ``image_encoder/``
  folder of ``lambdalabs/sd-image-variations-diffusers`` (ViT-L/14) or of Stable Video Diffusion (ViT-H/14), or the
  pipeline folder above it, or a whole ``CLIPModel`` folder such as ``openai/clip-vit-large-patch14``;
* a **single file** ``.safetensors`` in transformers key names, as found in ComfyUI's ``models/clip_vision``
  (``vision_model.*`` plus ``visual_projection.weight``). A file carries no config: ViT-L/14 and ViT-H/14 are
  recognised from the tensor shapes and get the configs shipped in ``dreamdance_core/configs/clip_vision/``;
  anything else needs ``config`` (a folder with its ``config.json``).

A full ``CLIPModel`` file (``model.safetensors`` of ``openai/clip-vit-large-patch14``: ``text_model.*``,
``text_projection.weight``, ``logit_scale`` besides the image tower) loads as its image tower, the text tower
dropped - what ``CLIPVisionModelWithProjection.from_pretrained`` does with that repository. The
``vision_model.embeddings.position_ids`` buffer that older transformers versions saved is dropped too (it is
recomputed, not learned). Loading is otherwise strict (every weight present, none extra, same shapes) and
safetensors-only; failures are :class:`WeightFileError` naming the file and how to get the weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..weights import (
    CONFIG_NAME,
    WeightFileError,
    build_empty,
    component_folder,
    fill_strict,
    find_weights_file,
    read_safetensors,
)

CLIP_VISION_CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "clip_vision"
"""Shipped configs: ``vit_l14/`` (OpenAI ViT-L/14, quick_gelu) and ``vit_h14/`` (LAION ViT-H/14, gelu)."""

HOW_TO_GET_CLIP = (
    "Stage 1 needs a CLIP ViT-L/14 image encoder (projection 768, the width of SD1.5's cross-attention): put "
    "model.safetensors of huggingface.co/openai/clip-vit-large-patch14 into ComfyUI/models/clip_vision (the full CLIP "
    "file works, its text tower is dropped), or pass a transformers folder with config.json and model.safetensors "
    "such as image_encoder/ of lambdalabs/sd-image-variations-diffusers. A ViT-H/14 (projection 1024, such as "
    "CLIP-ViT-H-14-laion2B-s32B-b79K or SVD's own encoder) does not fit Stage 1."
)
HOW_TO_GET_SVD_IMAGE_ENCODER = (
    "Stage 2 needs no separate CLIP file: Stable Video Diffusion carries its own ViT-H/14 image encoder, inside "
    "svd_xt_1_1.safetensors or as image_encoder/ (config.json + model.safetensors) of a diffusers SVD folder such as "
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1; download that folder or file again if it is incomplete."
)
TRANSFORMERS_WEIGHT_NAMES = ("model.safetensors", "model.fp16.safetensors")
PATCH_EMBEDDING = "vision_model.embeddings.patch_embedding.weight"
LAYER_PREFIX = "vision_model.encoder.layers."
POSITION_IDS = "vision_model.embeddings.position_ids"  # a buffer older transformers saved; recomputed, not learned
TEXT_TOWER = ("text_model.", "text_projection.", "logit_scale")  # the rest of a full CLIPModel file


def load_clip_image_encoder(
    source: str | os.PathLike,
    *,
    config: str | os.PathLike | None = None,
    dtype: torch.dtype | None = None,
    how_to_get: str = HOW_TO_GET_CLIP,
) -> CLIPVisionModelWithProjection:
    """A ``CLIPVisionModelWithProjection`` from a transformers folder or a single ``.safetensors`` file.

    Args:
        source: folder with ``config.json`` + ``model.safetensors`` (or with an ``image_encoder/`` subfolder holding
            them), or a single file in transformers key names; a full ``CLIPModel`` gives its image tower.
        config: folder (or ``config.json``) describing the model; overrides the folder's own config or the
            shape-based detection of a single file.
        dtype: parameter dtype of the returned model; default float32.
        how_to_get: the advice that ends every error (default: Stage 1's, :data:`HOW_TO_GET_CLIP`).

    Raises:
        WeightFileError: missing/corrupt/pickle file, unknown architecture, or keys that do not match the config.
    """
    source = Path(source)
    if source.is_dir():
        folder = component_folder(source, "image_encoder", how_to_get)
        weights = find_weights_file(folder, TRANSFORMERS_WEIGHT_NAMES, how_to_get)
        state = image_tower(read_safetensors(weights))
        vision_config = _read_config(Path(config) if config else folder, how_to_get)
    else:
        if not source.exists():
            raise WeightFileError(
                f"CLIP image encoder not found: no file or folder {source.name!r} in {source.parent}. {how_to_get}"
            )
        weights = source
        state = image_tower(read_safetensors(source))
        vision_config = _read_config(Path(config), how_to_get) if config else _detect_config(state, source, how_to_get)
    return build_clip_image_encoder(vision_config, state, str(weights), dtype)


def image_tower(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keys of a ``CLIPVisionModelWithProjection``: without a full ``CLIPModel``'s text tower (when the image
    tower is there) and without the ``position_ids`` buffer older transformers saved."""
    has_image_tower = any(key.startswith("vision_model.") for key in state)
    return {
        key: value
        for key, value in state.items()
        if key != POSITION_IDS and not (has_image_tower and key.startswith(TEXT_TOWER))
    }


def build_clip_image_encoder(
    config: CLIPVisionConfig, state: dict[str, torch.Tensor], source: str, dtype: torch.dtype | None
) -> CLIPVisionModelWithProjection:
    """A weightless ``CLIPVisionModelWithProjection(config)`` filled strictly with ``state``, in eval mode."""
    return fill_strict(build_empty(lambda: CLIPVisionModelWithProjection(config)), state, source, dtype)


def _read_config(path: Path, how_to_get: str) -> CLIPVisionConfig:
    """A ``CLIPVisionConfig`` from a folder or JSON file (a full ``CLIPConfig`` yields its vision part)."""
    if not (path.is_file() or (path / CONFIG_NAME).is_file()):
        raise WeightFileError(f"no CLIP vision config at {path}: expected {path / CONFIG_NAME}. {how_to_get}")
    try:
        return CLIPVisionConfig.from_pretrained(path)
    except (OSError, ValueError, TypeError) as error:
        raise WeightFileError(f"{path} is not a readable CLIP vision config ({error}).") from error


def _detect_config(
    state: dict[str, torch.Tensor], source: Path, how_to_get: str = HOW_TO_GET_CLIP
) -> CLIPVisionConfig:
    """The shipped config whose width and depth match the file's tensors."""
    if PATCH_EMBEDDING not in state:
        groups = sorted({key.split(".")[0] for key in state})
        raise WeightFileError(
            f"{source} is not a CLIP vision model in transformers key names: it has no {PATCH_EMBEDDING} (top-level "
            f"key groups: {', '.join(groups[:12])}). {how_to_get}"
        )
    hidden = state[PATCH_EMBEDDING].shape[0]
    layers = len({key[len(LAYER_PREFIX):].split(".")[0] for key in state if key.startswith(LAYER_PREFIX)})
    known = {path.name: CLIPVisionConfig.from_pretrained(path) for path in sorted(CLIP_VISION_CONFIGS.iterdir())}
    for candidate in known.values():
        if (candidate.hidden_size, candidate.num_hidden_layers) == (hidden, layers):
            return candidate
    shipped = ", ".join(f"{name}: width {c.hidden_size} x {c.num_hidden_layers} layers" for name, c in known.items())
    raise WeightFileError(
        f"{source} is a CLIP vision model of width {hidden} with {layers} layers, which matches none of the shipped "
        f"configs ({shipped}). Pass config= a folder holding its config.json. {how_to_get}"
    )
