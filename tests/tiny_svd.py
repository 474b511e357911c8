"""Tiny random SVD parts for tests: the core's tiny builders plus test-only helpers (maps, folders, "trained" weights).

Constraints (LIBRARY_FACTS.md): ``projection_class_embeddings_input_dim = 3 * addition_time_embed_dim``; the UNet's
``cross_attention_dim`` = CLIP ``projection_dim``; CLIP ``image_size`` 224 (patch 14 keeps it small). The tiny VAE
downscales by 2, so the tiny controller has two levels (``block_channels`` of length 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dreamdance_core.loading.svd import save_svd_folder as save_diffusers_folder  # noqa: F401 (re-exported)
from dreamdance_core.models.svd_controlnet import SVDControlNet
from dreamdance_core.models.unet_svd import ControlledSVDUNet
from dreamdance_core.sampling.stage2 import SVDComponents
from dreamdance_core.tiny import TINY_SVD_UNET as TINY_UNET  # noqa: F401 (re-exported)
from dreamdance_core.tiny import TINY_SVD_VAE as TINY_VAE  # noqa: F401
from dreamdance_core.tiny import tiny_clip_vision, tiny_controller, tiny_svd_components  # noqa: F401
from dreamdance_core.tiny import tiny_svd_unet as tiny_unet  # noqa: F401
from dreamdance_core.tiny import tiny_svd_vae as tiny_vae  # noqa: F401
from tests.tiny_stage1 import randomize_ as randomize_parameters


def scheduler_config() -> dict:
    """SVD's shipped EulerDiscreteScheduler config."""
    return tiny_svd_components().scheduler_config


def tiny_image_encoder(seed: int = 2):
    torch.manual_seed(seed)
    return tiny_clip_vision()


def tiny_components() -> SVDComponents:
    return tiny_svd_components()


def tiny_controlnet(unet: ControlledSVDUNet) -> SVDControlNet:
    return SVDControlNet.from_unet(unet).eval()


def randomize_(module: torch.nn.Module, seed: int = 4, scale: float = 0.05) -> torch.nn.Module:
    """Overwrite every parameter with small random values ("trained" weights: zero links no longer zero)."""
    return randomize_parameters(module, scale=scale, seed=seed)


def control_maps(num_frames: int, width: int = 32, height: int = 48, seed: int = 5, names=("pose", "depth", "normal")):
    """Random control maps ``{name: [f, 3, H, W]}`` in -1..1."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(num_frames, 3, height, width, generator=generator) * 2 - 1 for name in names}


def reference_image(width: int = 32, height: int = 48, seed: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, height, width, generator=generator) * 2 - 1


def write_config_dir(components: SVDComponents, folder: Path) -> Path:
    """Write the configs (no weights) of ``components`` as a config folder like ``dreamdance_core/configs/svd``."""
    components.unet.save_config(folder / "unet")
    components.vae.save_config(folder / "vae")
    (folder / "image_encoder").mkdir(parents=True, exist_ok=True)
    components.image_encoder.config.to_json_file(str(folder / "image_encoder" / "config.json"))
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(dict(components.scheduler_config)))
    return folder
