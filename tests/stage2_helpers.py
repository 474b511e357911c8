"""Test helper: a Stage-2 control path as one mutable bundle (models + maps + strengths), run through the sampler's
one shape ``sample_stage2(pipeline, reference, inputs, options, callback)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from dreamdance_core.models.controller import CrossDomainController
from dreamdance_core.models.svd_controlnet import SVDControlNet
from dreamdance_core.pipelines import SVDComponents, VideoPipeline
from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2


@dataclass
class Control:
    controller: CrossDomainController
    controlnet: SVDControlNet
    maps: Mapping[str, torch.Tensor]
    strength: float = 1.0
    modality_strengths: Mapping[str, float] = field(default_factory=dict)


def sample(components: SVDComponents, reference, options: Stage2Options, control: Control | None = None,
           callback=None) -> torch.Tensor:
    """Plain SVD (``control=None``: bare components, no inputs) or the controlled pipeline."""
    if control is None:
        return sample_stage2(components, reference, None, options, callback)
    pipeline = VideoPipeline(components, control.controller, control.controlnet)
    inputs = Stage2Inputs(control.maps, control.strength, control.modality_strengths)
    return sample_stage2(pipeline, reference, inputs, options, callback)
