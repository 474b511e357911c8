"""The pipeline types: what the loaders build and the samplers take (plain dataclasses of modules, no logic).

They live here, below both ``loading/`` and ``sampling/``, so loaders never import samplers (and the reverse):

- :class:`GeometryPipeline` - Stage 1: the geometry model, the SD VAE and the CLIP image encoder;
- :class:`SVDComponents` - the pretrained SVD parts (UNet, VAE, CLIP image encoder, scheduler config);
- :class:`VideoPipeline` - Stage 2: SVD plus the DreamDance controller and ControlNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import torch

if TYPE_CHECKING:  # annotations only: importing this module builds no model
    from .models.controller import CrossDomainController
    from .models.stage1 import GeometryDiffusionModel
    from .models.svd_controlnet import SVDControlNet


def _move(modules, device=None, dtype=None) -> None:
    kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
    for module in modules:
        module.to(**kwargs)


@dataclass
class GeometryPipeline:
    """Stage-1 components. ``random_weights`` marks the tiny random demo model (its outputs mean nothing)."""

    model: GeometryDiffusionModel
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    random_weights: bool = False

    def modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.model, self.vae, self.image_encoder)

    def to(self, device=None, dtype=None) -> "GeometryPipeline":
        _move(self.modules(), device, dtype)
        return self


@dataclass
class SVDComponents:
    """The pretrained SVD parts: ``ControlledSVDUNet``, ``AutoencoderKLTemporalDecoder`` (or ``AutoencoderTiny``),
    ``CLIPVisionModelWithProjection`` and the ``EulerDiscreteScheduler`` config (a dict)."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    scheduler_config: Mapping

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


@dataclass
class VideoPipeline:
    """Stage-2 components. ``random_weights`` marks the tiny random demo model (its frames mean nothing)."""

    components: SVDComponents
    controller: CrossDomainController
    controlnet: SVDControlNet
    random_weights: bool = False

    def modules(self) -> tuple[torch.nn.Module, ...]:
        c = self.components
        return (c.unet, c.vae, c.image_encoder, self.controller, self.controlnet)

    def to(self, device=None, dtype=None) -> "VideoPipeline":
        _move(self.modules(), device, dtype)
        return self
