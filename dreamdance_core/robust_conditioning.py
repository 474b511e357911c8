"""Robust conditioning (paper section 4.2): a training-time transform that drops control maps.

Stage 1's depth and normal maps may carry artefacts; to keep Stage 2 from trusting any single map blindly, training
replaces control signals, independently per modality and per frame, by zero images. A "zero image" is black in pixel
terms, i.e. ``fill_value = -1`` in the core's -1..1 convention (also "background / far" in the depth convention);
change ``fill_value`` if your maps use another neutral value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

ABSENT_VALUE = -1.0
"""A dropped ("zero", black) control map's value in the core's -1..1 convention: what the model learns as absent."""


@dataclass(frozen=True)
class RobustConditioning:
    """Replace each modality's map in each frame by a zero image with that modality's probability.

    Args:
        probabilities: per modality name, the probability that one frame's map is dropped (0..1). Modalities not
            listed are never dropped.
        fill_value: the value of a dropped ("zero") image in the -1..1 convention.

    Call it on ``{name: maps}`` with maps ``[..., frames, C, H, W]`` (``[f, C, H, W]`` or batched ``[b, f, C, H, W]``);
    each (sample, frame) draws independently.
    """

    probabilities: Mapping[str, float] = field(default_factory=dict)
    fill_value: float = ABSENT_VALUE

    def __post_init__(self):
        for name, p in self.probabilities.items():
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"robust conditioning: the drop probability of {name!r} must be in 0..1, got {p}")

    def drop_masks(
        self, controls: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Per modality, a bool tensor of shape ``maps.shape[:-3]`` (True = this frame's map is dropped)."""
        unknown = set(self.probabilities) - set(controls)
        if unknown:
            raise ValueError(
                f"robust conditioning: probabilities given for {sorted(unknown)} but the control maps are "
                f"{sorted(controls)}; fix the names"
            )
        masks = {}
        for name, maps in controls.items():
            if maps.ndim < 4:
                raise ValueError(
                    f"robust conditioning: {name} maps must be [..., frames, C, H, W], got {tuple(maps.shape)}"
                )
            p = float(self.probabilities.get(name, 0.0))
            draws = torch.rand(maps.shape[:-3], generator=generator, device=generator.device if generator else "cpu")
            masks[name] = (draws < p).to(maps.device)
        return masks

    def __call__(
        self, controls: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """The control maps with the dropped frames replaced by ``fill_value`` images (inputs are not modified)."""
        masks = self.drop_masks(controls, generator)
        return {
            name: torch.where(masks[name][..., None, None, None], torch.full_like(maps, self.fill_value), maps)
            for name, maps in controls.items()
        }
