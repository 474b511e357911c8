"""Tiny random SVD parts for tests (CPU, seconds): UNet, temporal VAE, CLIP vision, controller, ControlNet.

Constraints (LIBRARY_FACTS.md): ``projection_class_embeddings_input_dim = 3 * addition_time_embed_dim``; the UNet's
``cross_attention_dim`` = CLIP ``projection_dim``; CLIP ``image_size`` 224 (patch 14 keeps it small). The tiny VAE
downscales by 2, so the tiny controller has two levels (``block_channels`` of length 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dreamdance_core.models.controller import CrossDomainController
from dreamdance_core.models.svd_controlnet import SVDControlNet
from dreamdance_core.models.unet_svd import ControlledSVDUNet
from dreamdance_core.sampling.stage2 import SVDComponents

SCHEDULER_CONFIG_PATH = Path(__file__).resolve().parents[1] / "dreamdance_core/configs/svd/scheduler/scheduler_config.json"

TINY_UNET = dict(
    sample_size=8,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(32, 64),
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    layers_per_block=1,
    cross_attention_dim=32,
    num_attention_heads=(2, 4),
    num_frames=4,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    latent_channels=4,
    sample_size=32,
)
TINY_CLIP = dict(
    hidden_size=32,
    intermediate_size=37,
    num_attention_heads=4,
    num_hidden_layers=2,
    image_size=224,
    patch_size=14,
    projection_dim=32,
)


@pytest.fixture(autouse=True, scope="module")
def single_threaded():
    """Run a test module on one torch thread (restored afterwards).

    On the shared 2-core machine, tiny models are 10-20x faster on one thread than on two competing with other
    processes (thread spin-waits); importing this fixture into a test module turns it on for that module.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scheduler_config() -> dict:
    """SVD's shipped EulerDiscreteScheduler config."""
    return json.loads(SCHEDULER_CONFIG_PATH.read_text())


def tiny_unet(seed: int = 0) -> ControlledSVDUNet:
    torch.manual_seed(seed)
    return ControlledSVDUNet(**TINY_UNET).eval()


def tiny_vae(seed: int = 1):
    """Tiny ``AutoencoderKLTemporalDecoder`` with an identity ``quant_conv`` (as in SVD, which has none)."""
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(**TINY_VAE).eval()
    with torch.no_grad():
        vae.quant_conv.weight.copy_(torch.eye(vae.quant_conv.weight.shape[0])[:, :, None, None])
        vae.quant_conv.bias.zero_()
    return vae


def tiny_image_encoder(seed: int = 2):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).eval()


def tiny_components() -> SVDComponents:
    return SVDComponents(tiny_unet(), tiny_vae(), tiny_image_encoder(), scheduler_config())


def tiny_controller(geometry_attention: bool = True, seed: int = 3, **overrides) -> CrossDomainController:
    torch.manual_seed(seed)
    config = dict(block_channels=(8, 16), out_channels=32, attention_heads=4, geometry_attention=geometry_attention)
    config.update(overrides)
    return CrossDomainController(**config).eval()


def tiny_controlnet(unet: ControlledSVDUNet) -> SVDControlNet:
    return SVDControlNet.from_unet(unet).eval()


def randomize_(module: torch.nn.Module, seed: int = 4, scale: float = 0.05) -> torch.nn.Module:
    """Overwrite every parameter with small random values ("trained" weights: zero links no longer zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module


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


def save_diffusers_folder(components: SVDComponents, folder: Path) -> Path:
    """Write ``components`` as a diffusers SVD folder (weights as safetensors)."""
    components.unet.save_pretrained(folder / "unet")
    components.vae.save_pretrained(folder / "vae")
    components.image_encoder.save_pretrained(folder / "image_encoder")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(dict(components.scheduler_config)))
    return folder
