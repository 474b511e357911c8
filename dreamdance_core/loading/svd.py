"""Loading Stable Video Diffusion (img2vid, SVD-XT 1.1) and the Stage-2 control weights.

* a diffusers folder (``unet/``, ``vae/``, ``image_encoder/``, ``scheduler/``), with full or only ``fp16`` variant
  weight files - :func:`load_svd_folder`;
* a single-file checkpoint as found in ComfyUI's ``models/checkpoints`` (``svd_xt_1_1.safetensors``, the original
  Stability ``generative-models`` key names) - :func:`load_svd_single_file`. diffusers has no ``from_single_file``
  for SVD, so the key conversion is here: one function per part maps each diffusers key to its original key
  (:func:`unet_original_key`, :func:`vae_original_key`, :func:`clip_original_key`), used in both directions;
  the architecture comes from the JSON configs shipped in ``dreamdance_core/configs/svd`` (works offline);
* the controller and the ControlNet, saved with ``save_pretrained`` and read back strictly -
  :func:`save_stage2_control`, :func:`load_stage2_control`.

Single-file layout (``sgm``, and ComfyUI's ``SVD_img2vid``): UNet under ``model.diffusion_model.``, VAE under
``first_stage_model.``, the ViT-H image encoder under ``conditioner.embedders.0.open_clip.model.visual.`` - in OpenCLIP
names in Stability's files, in transformers names (``vision_model.*``, ``visual_projection.weight``) in files that
ComfyUI writes (``ImageOnlyCheckpointSave``: ``process_clip_vision_state_dict_for_saving`` puts its
``CLIPVisionModelProjection`` state dict under ``clip_vision_prefix``). Both are read.

A single file is checked from its header alone (key names and shapes; another model family is named) before any
tensor is read; the models are built without weights and filled tensor by tensor, so loading needs about one copy
of the weights in memory (``bench/bench_load_memory.py`` measures it). Everything is strict: every weight of the
target models must be found, and unconsumed keys under those prefixes are reported (a different architecture).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch

from ..models.controller import CrossDomainController
from ..models.svd_controlnet import SVDControlNet
from ..models.unet_svd import ControlledSVDUNet
from ..pipelines import SVDComponents
from ..weights import SafetensorsFile, StateDict, WeightFileError, build_empty, fill_strict, load_model_strict, shorten
from .clip_vision import HOW_TO_GET_SVD_IMAGE_ENCODER, PATCH_EMBEDDING, POSITION_IDS, load_clip_image_encoder
from .ldm_names import RESBLOCK, UNET_PREFIX, VAE_ATTENTION, VAE_PREFIX, rename_first
from .sd15 import describe_family

SVD_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "svd"
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model.visual."
SCHEDULER_CONFIG = "scheduler/scheduler_config.json"
HOW_TO_GET_SVD = (
    "Use Stable Video Diffusion img2vid-xt 1.1: svd_xt_1_1.safetensors from huggingface.co/stabilityai/"
    "stable-video-diffusion-img2vid-xt-1-1 in ComfyUI/models/checkpoints (a file saved by ComfyUI's "
    "ImageOnlyCheckpointSave works too), or that repository's diffusers folder (unet/, vae/, image_encoder/, "
    "scheduler/; the fp16 variant files alone are enough)."
)


@dataclass(frozen=True)
class OriginalKey:
    """Where a diffusers weight lives in the original checkpoint.

    ``chunk``: index into a fused q/k/v tensor (split in 3 along dim 0); ``transpose``: stored transposed.
    Shapes that differ only by trailing singleton dims (1x1 convs vs linears) are reshaped.
    """

    key: str
    chunk: int | None = None
    transpose: bool = False


# ---------------------------------------------------------------------------------------------------------- key maps

def _video_resblock(rest: str, spatial: Mapping[str, str], mix_factor: str) -> str:
    """diffusers ``SpatioTemporalResBlock`` -> original ``VideoResBlock`` (spatial part, ``time_stack``, mixer)."""
    if rest.startswith("spatial_res_block."):
        return rename_first(rest[len("spatial_res_block."):], spatial, strict=False)
    if rest.startswith("temporal_res_block."):
        return "time_stack." + rename_first(rest[len("temporal_res_block."):], RESBLOCK, strict=False)
    if rest == "time_mixer.mix_factor":
        return mix_factor
    raise KeyError(rest)


def _video_transformer(rest: str) -> str:
    """diffusers ``TransformerSpatioTemporalModel`` -> original ``SpatialVideoTransformer``."""
    rest = rest.replace("temporal_transformer_blocks.", "time_stack.")
    rest = rest.replace("time_pos_embed.linear_1.", "time_pos_embed.0.")
    return rest.replace("time_pos_embed.linear_2.", "time_pos_embed.2.")


def unet_original_key(key: str, layers_per_block: int, up_blocks_with_attention: set[int]) -> OriginalKey:
    """Original (``model.diffusion_model.``-relative) key of a ``UNetSpatioTemporalConditionModel`` weight."""
    simple = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
              "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
              "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    for new, old in simple.items():
        if key.startswith(new):
            return OriginalKey(old + key[len(new):])
    per_level = layers_per_block + 1
    resblock = lambda rest: _video_resblock(rest, RESBLOCK, "time_mixer.mix_factor")  # noqa: E731
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * per_level + layer
        if kind == "resnets":
            return OriginalKey(f"input_blocks.{index}.0.{resblock(rest)}")
        return OriginalKey(f"input_blocks.{index}.1.{_video_transformer(rest)}")
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return OriginalKey(f"input_blocks.{(int(m[1]) + 1) * per_level}.0.op.{m[2]}")
    if m := re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", key):
        return OriginalKey(f"middle_block.{2 * int(m[1])}.{resblock(m[2])}")
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return OriginalKey(f"middle_block.1.{_video_transformer(m[1])}")
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = block * per_level + layer
        if kind == "resnets":
            return OriginalKey(f"output_blocks.{index}.0.{resblock(rest)}")
        return OriginalKey(f"output_blocks.{index}.1.{_video_transformer(rest)}")
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        slot = 2 if block in up_blocks_with_attention else 1
        return OriginalKey(f"output_blocks.{block * per_level + layers_per_block}.{slot}.conv.{m[2]}")
    raise KeyError(key)


def vae_original_key(key: str, num_blocks: int) -> OriginalKey | None:
    """Original (``first_stage_model.``-relative) key of an ``AutoencoderKLTemporalDecoder`` weight.

    ``None`` for ``quant_conv`` (SVD's autoencoder has none: it must be the identity).
    """
    if key.startswith("quant_conv."):
        return None
    vae_resnet = {"conv_shortcut": "nin_shortcut"}
    part, rest = key.split(".", 1)
    renamed = {"conv_norm_out.": "norm_out.", "time_conv_out.": "conv_out.time_mix_conv."}
    for new, old in renamed.items():
        if rest.startswith(new):
            return OriginalKey(f"{part}.{old}{rest[len(new):]}")
    if rest.startswith(("conv_in.", "conv_out.")):
        return OriginalKey(key)
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", rest):
        return OriginalKey(f"{part}.mid.attn_1.{rename_first(m[1], VAE_ATTENTION, strict=False)}")
    if m := re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", rest):
        inner = m[2] if part == "encoder" else _video_resblock(m[2], vae_resnet, "mix_factor")
        return OriginalKey(f"{part}.mid.block_{int(m[1]) + 1}.{rename_first(inner, vae_resnet, strict=False)}")
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        return OriginalKey(f"encoder.down.{m[1]}.block.{m[2]}.{rename_first(m[3], vae_resnet, strict=False)}")
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", rest):
        return OriginalKey(f"encoder.down.{m[1]}.downsample.conv.{m[2]}")
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        level = num_blocks - 1 - int(m[1])
        return OriginalKey(f"decoder.up.{level}.block.{m[2]}.{_video_resblock(m[3], vae_resnet, 'mix_factor')}")
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", rest):
        return OriginalKey(f"decoder.up.{num_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}")
    raise KeyError(key)


def clip_original_key(key: str) -> OriginalKey:
    """Original OpenCLIP (``...visual.``-relative) key of a ``CLIPVisionModelWithProjection`` weight."""
    table = {"vision_model.embeddings.class_embedding": "class_embedding",
             "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
             "vision_model.embeddings.position_embedding.weight": "positional_embedding",
             "vision_model.pre_layrnorm.": "ln_pre.", "vision_model.post_layernorm.": "ln_post."}
    for new, old in table.items():
        if key.startswith(new):
            return OriginalKey(old + key[len(new):])
    if key == "visual_projection.weight":
        return OriginalKey("proj", transpose=True)
    if m := re.fullmatch(r"vision_model\.encoder\.layers\.(\d+)\.(.+)", key):
        prefix, rest = f"transformer.resblocks.{m[1]}.", m[2]
        if q := re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest):
            return OriginalKey(f"{prefix}attn.in_proj_{q[2]}", chunk="qkv".index(q[1]))
        layer = {"layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.", "self_attn.out_proj.": "attn.out_proj.",
                 "mlp.fc1.": "mlp.c_fc.", "mlp.fc2.": "mlp.c_proj."}
        for new, old in layer.items():
            if rest.startswith(new):
                return OriginalKey(prefix + old + rest[len(new):])
    raise KeyError(key)


# ------------------------------------------------------------------------------------------------ conversion engine

KeyMap = Callable[[str], "OriginalKey | None"]


def _unet_key_map(unet: torch.nn.Module) -> KeyMap:
    layers = unet.config.layers_per_block
    if not isinstance(layers, int):
        if len(set(layers)) != 1:
            raise WeightFileError(f"single-file SVD conversion needs one layers_per_block for all levels, got {layers}")
        layers = layers[0]
    with_attention = {i for i, block in enumerate(unet.up_blocks) if hasattr(block, "attentions")}
    return lambda key: unet_original_key(key, layers, with_attention)


def _vae_key_map(vae: torch.nn.Module) -> KeyMap:
    return lambda key: vae_original_key(key, len(vae.config.block_out_channels))


def transformers_key(key: str) -> OriginalKey:
    """A ``CLIPVisionModelWithProjection`` weight under its own name (the layout ComfyUI saves SVD's encoder in)."""
    return OriginalKey(key)


def _identity(target: torch.Tensor) -> torch.Tensor:
    """What ``quant_conv`` must hold where the original layout has none: a 1x1 identity conv, zero bias."""
    if target.ndim > 1:
        return torch.eye(target.shape[0], dtype=target.dtype).reshape(target.shape)
    return torch.zeros(target.shape, dtype=target.dtype)


def _stored_shape(shape: tuple[int, ...], where: OriginalKey) -> tuple[int, ...]:
    """The shape that ``where`` yields from a stored tensor of ``shape`` (before any singleton reshape)."""
    if where.chunk is not None:
        shape = (shape[0] // 3, *shape[1:])
    return tuple(reversed(shape)) if where.transpose else shape


def _fits(stored: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Equal shapes, or shapes that differ only by singleton dims (1x1 convs stored for linears and back)."""
    return stored == target or [d for d in stored if d != 1] == [d for d in target if d != 1]


def _plan(
    model: torch.nn.Module,
    original: Mapping[str, torch.Tensor],
    prefix: str,
    key_map: KeyMap,
    source: str,
    ignored: tuple[str, ...] = (),
) -> dict[str, OriginalKey | None]:
    """Where each of ``model``'s weights is in ``original``, checked from names and shapes only (meta tensors do).

    Raises a :class:`WeightFileError` listing missing keys, keys under ``prefix`` that nothing uses (except
    ``ignored`` names) and shape mismatches.
    """
    plan, missing, mismatched, consumed = {}, [], [], set()
    for key, target in model.state_dict().items():
        where = plan[key] = key_map(key)
        if where is None:
            continue
        name = prefix + where.key
        if name not in original:
            missing.append(name)
            continue
        consumed.add(name)
        stored = _stored_shape(tuple(original[name].shape), where)
        if not _fits(stored, tuple(target.shape)):
            mismatched.append(f"{name}: file {stored} vs model {tuple(target.shape)}")
    unexpected = sorted(k for k in original if k.startswith(prefix) and k not in consumed and k not in ignored)
    titled = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", sorted(mismatched)))
    problems = [f"{len(keys)} {title}: {shorten(keys, 8)}" for title, keys in titled if keys]
    if problems:
        raise WeightFileError(
            f"{source} does not match the SVD {type(model).__name__} under {prefix!r}: " + "; ".join(problems)
            + f". The checkpoint is not an SVD img2vid model of the configured size. {HOW_TO_GET_SVD}"
        )
    return plan


def _read_planned(
    model: torch.nn.Module,
    plan: dict[str, OriginalKey | None],
    original: Mapping[str, torch.Tensor],
    prefix: str,
    dtype: torch.dtype,
) -> StateDict:
    """``model``'s weights read from ``original`` (each stored tensor once, cast to ``dtype`` as it is read)."""
    state, fused = {}, {}
    for key, target in model.state_dict().items():
        where = plan[key]
        if where is None:
            state[key] = _identity(target).to(dtype)
            continue
        name = prefix + where.key
        if where.chunk is not None:
            if name not in fused:
                fused[name] = original[name].to(dtype).chunk(3, dim=0)  # three views of one read
            tensor = fused[name][where.chunk]
        else:
            tensor = original[name].to(dtype)
        if where.transpose:
            tensor = tensor.T.contiguous()
        state[key] = tensor.reshape(target.shape)
    return state


def original_state_dict(model: torch.nn.Module, prefix: str, key_map: KeyMap) -> dict[str, torch.Tensor]:
    """The inverse of :func:`load_svd_single_file`'s conversion: ``model``'s weights under their original names."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[int, torch.Tensor]] = {}
    for key, tensor in model.state_dict().items():
        where = key_map(key)
        if where is None:
            if tensor.device.type != "meta" and not torch.equal(tensor, _identity(tensor)):
                raise ValueError(f"{key} is not the identity; the original SVD layout has no place for it")
            continue
        name = prefix + where.key
        if where.chunk is not None:
            fused.setdefault(name, {})[where.chunk] = tensor
            continue
        tensor = tensor.T if where.transpose else tensor
        if re.search(r"attentions\.0\.(to_[qkv]|to_out\.0)\.weight$", key) and prefix == VAE_PREFIX:
            tensor = tensor[:, :, None, None]  # LDM VAE attention uses 1x1 convs
        out[name] = tensor.contiguous()
    for name, parts in fused.items():
        out[name] = torch.cat([parts[i] for i in range(3)], dim=0)
    return out


# -------------------------------------------------------------------------------------------------- public loaders


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise WeightFileError(
            f"config file {path.name!r} not found in {path.parent}; point at a complete SVD config folder. "
            f"{HOW_TO_GET_SVD}"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise WeightFileError(f"{path} is not valid JSON ({error})") from error


def build_svd_models(config_dir: str | os.PathLike = SVD_CONFIG_DIR) -> SVDComponents:
    """Randomly initialised SVD parts from a config folder (``unet/``, ``vae/``, ``image_encoder/``, ``scheduler/``).

    Wrap in :func:`.common.build_empty` for weightless parts (what the single-file loader fills).
    """
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config_dir = Path(config_dir)
    unet = ControlledSVDUNet.from_config(ControlledSVDUNet.load_config(config_dir / "unet"))
    vae = AutoencoderKLTemporalDecoder.from_config(AutoencoderKLTemporalDecoder.load_config(config_dir / "vae"))
    clip_config = CLIPVisionConfig(**_read_json(config_dir / "image_encoder" / "config.json"))
    image_encoder = CLIPVisionModelWithProjection(clip_config)
    return SVDComponents(unet, vae, image_encoder, _read_json(config_dir / SCHEDULER_CONFIG))


def _frozen(components: SVDComponents) -> SVDComponents:
    for model in (components.unet, components.vae, components.image_encoder):
        model.eval().requires_grad_(False)
    return components


def _check_is_svd(header: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse, from key names alone, a file that is not an SVD checkpoint, naming what it is."""
    unet_keys = [key for key in header if key.startswith(UNET_PREFIX)]
    if any(".time_stack." in key for key in unet_keys):
        return
    if not unet_keys:
        groups = ", ".join(sorted({key.split(".")[0] for key in header})[:12])
        raise WeightFileError(
            f"{source} is not a single-file SVD checkpoint: it has no UNet under {UNET_PREFIX!r} (top-level key "
            f"groups: {groups}). {HOW_TO_GET_SVD}"
        )
    family = describe_family(dict(header)) or "Stable Diffusion 1.x"
    raise WeightFileError(
        f"{source} is a {family} checkpoint (an image model without SVD's temporal layers), not Stable Video "
        f"Diffusion img2vid; DreamDance Stage 2 is built on SVD. {HOW_TO_GET_SVD}"
    )


def _clip_key_map(header: Mapping[str, torch.Tensor]) -> KeyMap:
    """OpenCLIP names (Stability's files) or transformers names (files ComfyUI saved) under :data:`CLIP_PREFIX`."""
    return transformers_key if CLIP_PREFIX + PATCH_EMBEDDING in header else clip_original_key


def load_svd_single_file(
    path: str | os.PathLike, config_dir: str | os.PathLike = SVD_CONFIG_DIR, dtype: torch.dtype | None = None
) -> SVDComponents:
    """SVD from a single-file checkpoint with the original key names (ComfyUI ``models/checkpoints``), offline.

    Order of work: the header (names, shapes) is checked for every part; only then are tensors read, one at a time,
    cast to ``dtype`` (default float32) and assigned to weightless models.
    """
    source, target = str(path), dtype or torch.float32
    with SafetensorsFile(path) as file:
        header = file.meta()
        _check_is_svd(header, source)
        components = build_empty(lambda: build_svd_models(config_dir))
        parts = [
            (components.unet, UNET_PREFIX, _unet_key_map(components.unet), ()),
            (components.vae, VAE_PREFIX, _vae_key_map(components.vae), ()),
            (components.image_encoder, CLIP_PREFIX, _clip_key_map(header), (CLIP_PREFIX + POSITION_IDS,)),
        ]
        plans = [_plan(model, header, prefix, key_map, source, ignored) for model, prefix, key_map, ignored in parts]
        for (model, prefix, _, _), plan in zip(parts, plans):
            fill_strict(model, _read_planned(model, plan, file, prefix, target), source, target)
    return _frozen(components)


def svd_single_file_state_dict(components: SVDComponents) -> dict[str, torch.Tensor]:
    """The SVD parts in the original single-file layout (inverse of :func:`load_svd_single_file`)."""
    return {
        **original_state_dict(components.unet, UNET_PREFIX, _unet_key_map(components.unet)),
        **original_state_dict(components.vae, VAE_PREFIX, _vae_key_map(components.vae)),
        **original_state_dict(components.image_encoder, CLIP_PREFIX, clip_original_key),
    }


VAE_CLASSES = ("AutoencoderKLTemporalDecoder", "AutoencoderTiny")
"""What ``vae/config.json``'s ``_class_name`` may name: SVD's own VAE, or a TAESD-style one (the Stage-2 demo's)."""


def _vae_class(folder: Path) -> type:
    import diffusers

    name = _read_json(folder / "config.json").get("_class_name")
    if name not in VAE_CLASSES:
        raise WeightFileError(
            f"{folder / 'config.json'} names a {name!r}; an SVD VAE must be one of {', '.join(VAE_CLASSES)}"
        )
    return getattr(diffusers, name)


def load_svd_folder(folder: str | os.PathLike, dtype: torch.dtype | None = None) -> SVDComponents:
    """SVD from a diffusers folder (as ``StableVideoDiffusionPipeline.save_pretrained`` writes it), strictly.

    Its VAE is SVD's ``AutoencoderKLTemporalDecoder`` or an ``AutoencoderTiny`` (``vae/config.json`` says which).
    Each part may hold only its ``fp16`` variant file (``diffusion_pytorch_model.fp16.safetensors``,
    ``model.fp16.safetensors``), as some downloads of stabilityai's repositories do; the image encoder is read by
    :func:`.clip_vision.load_clip_image_encoder` (an old ``position_ids`` buffer is dropped).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightFileError(
            f"SVD folder {folder} not found; point at a diffusers SVD folder (unet/, vae/, image_encoder/). "
            f"{HOW_TO_GET_SVD}"
        )
    unet = load_model_strict(ControlledSVDUNet, folder / "unet", dtype=dtype, how_to_get=HOW_TO_GET_SVD)
    vae = load_model_strict(_vae_class(folder / "vae"), folder / "vae", dtype=dtype, how_to_get=HOW_TO_GET_SVD)
    encoder = load_clip_image_encoder(folder / "image_encoder", dtype=dtype, how_to_get=HOW_TO_GET_SVD_IMAGE_ENCODER)
    return _frozen(SVDComponents(unet, vae, encoder, _read_json(folder / SCHEDULER_CONFIG)))


def save_svd_folder(components: SVDComponents, folder: str | os.PathLike) -> Path:
    """Write ``components`` as a diffusers SVD folder (safetensors) that :func:`load_svd_folder` reads."""
    folder = Path(folder)
    components.unet.save_pretrained(folder / "unet")
    components.vae.save_pretrained(folder / "vae")
    components.image_encoder.save_pretrained(folder / "image_encoder")
    (folder / SCHEDULER_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (folder / SCHEDULER_CONFIG).write_text(json.dumps(dict(components.scheduler_config), indent=1))
    return folder


def save_stage2_control(
    folder: str | os.PathLike, controller: CrossDomainController, controlnet: SVDControlNet
) -> None:
    """Write ``controller/`` and ``controlnet/`` (config.json + safetensors each) under ``folder``."""
    folder = Path(folder)
    controller.save_pretrained(folder / "controller", safe_serialization=True)
    controlnet.save_pretrained(folder / "controlnet", safe_serialization=True)


def load_stage2_control(
    folder: str | os.PathLike, dtype: torch.dtype | None = None
) -> tuple[CrossDomainController, SVDControlNet]:
    """Read what :func:`save_stage2_control` wrote, strictly, and check the two parts fit together."""
    folder = Path(folder)
    controller = load_model_strict(CrossDomainController, folder / "controller", dtype=dtype)
    controlnet = load_model_strict(SVDControlNet, folder / "controlnet", dtype=dtype)
    if controller.config.out_channels != controlnet.conditioning_channels:
        raise WeightFileError(
            f"{folder}: the controller outputs {controller.config.out_channels} channels but the ControlNet expects "
            f"{controlnet.conditioning_channels}; the two folders come from different trainings"
        )
    return controller, controlnet
