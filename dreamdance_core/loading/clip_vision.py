"""The CLIP image encoder that embeds the reference image (``transformers.CLIPVisionModelWithProjection``).

Two kinds of ``source`` are accepted:

* a **transformers folder** holding ``config.json`` and ``model[.fp16].safetensors`` - e.g. the ``image_encoder/``
  folder of ``lambdalabs/sd-image-variations-diffusers`` (ViT-L/14, used by the AnimateAnyone family) or of Stable
  Video Diffusion (ViT-H/14) - or the pipeline folder above it;
* a **single file** ``.safetensors`` in transformers key names, as found in ComfyUI's ``models/clip_vision``
  (``vision_model.*`` plus ``visual_projection.weight``). A file carries no config: ViT-L/14 and ViT-H/14 are
  recognised from the tensor shapes and get the configs shipped in ``dreamdance_core/configs/clip_vision/``;
  anything else needs ``config`` (a folder with its ``config.json``).

Loading is strict (every weight present, none extra, same shapes) and safetensors-only; failures are
:class:`WeightFileError` naming the file and how to get the weights. The ``vision_model.embeddings.position_ids``
buffer that older transformers versions saved is dropped (it is recomputed, not learned).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from .common import CONFIG_NAME, WeightFileError, check_state_dict, read_safetensors
from .sd15 import component_folder, find_weights_file

CLIP_VISION_CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "clip_vision"
"""Shipped configs: ``vit_l14/`` (OpenAI ViT-L/14, quick_gelu) and ``vit_h14/`` (LAION ViT-H/14, gelu)."""

HOW_TO_GET_CLIP = (
    "Put a CLIP vision model into ComfyUI/models/clip_vision (e.g. CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors, the "
    "ViT-H/14 image encoder from huggingface.co/h94/IP-Adapter models/image_encoder/model.safetensors), or pass a "
    "transformers folder with config.json and model.safetensors (e.g. image_encoder/ of "
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1 or lambdalabs/sd-image-variations-diffusers)."
)
TRANSFORMERS_WEIGHT_NAMES = ("model.safetensors", "model.fp16.safetensors")
PATCH_EMBEDDING = "vision_model.embeddings.patch_embedding.weight"
LAYER_PREFIX = "vision_model.encoder.layers."
_DROPPED_KEYS = ("vision_model.embeddings.position_ids",)


def load_clip_image_encoder(
    source: str | os.PathLike, *, config: str | os.PathLike | None = None, dtype: torch.dtype | None = None
) -> CLIPVisionModelWithProjection:
    """A ``CLIPVisionModelWithProjection`` from a transformers folder or a single ``.safetensors`` file.

    Args:
        source: folder with ``config.json`` + ``model.safetensors`` (or with an ``image_encoder/`` subfolder holding
            them), or a single file in transformers key names.
        config: folder (or ``config.json``) describing the model; overrides the folder's own config or the
            shape-based detection of a single file.
        dtype: parameter dtype of the returned model; default float32.

    Raises:
        WeightFileError: missing/corrupt/pickle file, unknown architecture, or keys that do not match the config.
    """
    source = Path(source)
    if source.is_dir():
        folder = component_folder(source, "image_encoder", HOW_TO_GET_CLIP)
        weights = find_weights_file(folder, TRANSFORMERS_WEIGHT_NAMES, HOW_TO_GET_CLIP)
        state = read_safetensors(weights)
        vision_config = _read_config(Path(config) if config else folder)
    else:
        if not source.exists():
            raise WeightFileError(
                f"CLIP image encoder not found: no file or folder {source.name!r} in {source.parent}. "
                f"{HOW_TO_GET_CLIP}"
            )
        weights = source
        state = read_safetensors(source)
        vision_config = _read_config(Path(config)) if config else _detect_config(state, source)
    state = {key: value for key, value in state.items() if key not in _DROPPED_KEYS}
    return _build_strict(vision_config, state, str(weights), dtype)


def _read_config(path: Path) -> CLIPVisionConfig:
    """A ``CLIPVisionConfig`` from a folder or JSON file (a full ``CLIPConfig`` yields its vision part)."""
    if not (path.is_file() or (path / CONFIG_NAME).is_file()):
        raise WeightFileError(f"no CLIP vision config at {path}: expected {path / CONFIG_NAME}. {HOW_TO_GET_CLIP}")
    try:
        return CLIPVisionConfig.from_pretrained(path)
    except (OSError, ValueError, TypeError) as error:
        raise WeightFileError(f"{path} is not a readable CLIP vision config ({error}).") from error


def _detect_config(state: dict[str, torch.Tensor], source: Path) -> CLIPVisionConfig:
    """The shipped config whose width and depth match the file's tensors."""
    if PATCH_EMBEDDING not in state:
        groups = sorted({key.split(".")[0] for key in state})
        raise WeightFileError(
            f"{source} is not a CLIP vision model in transformers key names: it has no {PATCH_EMBEDDING} (top-level "
            f"key groups: {', '.join(groups[:12])}). {HOW_TO_GET_CLIP}"
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
        f"configs ({shipped}). Pass config= a folder holding its config.json, or use a ViT-L/14 or ViT-H/14 encoder. "
        f"{HOW_TO_GET_CLIP}"
    )


def _build_strict(
    config: CLIPVisionConfig, state: dict[str, torch.Tensor], source: str, dtype: torch.dtype | None
) -> CLIPVisionModelWithProjection:
    """Check ``state`` against a weightless (meta) model, then let transformers load it; eval mode."""
    with torch.device("meta"):
        skeleton = CLIPVisionModelWithProjection(config)
    check_state_dict(skeleton, state, source)
    model = CLIPVisionModelWithProjection.from_pretrained(
        None, config=config, state_dict=state, dtype=dtype or torch.float32
    )
    return model.eval()
