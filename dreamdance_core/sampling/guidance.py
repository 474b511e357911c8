"""Classifier-free guidance in the ordinary convention ``eps_u + w * (eps_c - eps_u)`` (what ComfyUI calls "cfg").

The DreamDance paper writes multi-domain CFG (eq. 6) as ``eps_c + s * (eps_c - eps_u)``; that is the ordinary form
with ``w = 1 + s`` (:func:`paper_scale_to_cfg`). ``w = 1`` means no guidance, and samplers then skip the
unconditional branch altogether.
"""

from __future__ import annotations

from typing import Sequence

import torch

DOMAINS: tuple[str, ...] = ("rgb", "normal", "depth")


def paper_scale_to_cfg(s: float) -> float:
    """The paper's MCFG scale ``s`` (eq. 6) as an ordinary CFG scale ``w = 1 + s``."""
    return 1.0 + s


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """``uncond + scale * (cond - uncond)``; ``scale`` is a number or a tensor that broadcasts against ``cond``."""
    return uncond + scale * (cond - uncond)


def multi_domain_cfg(
    cond: torch.Tensor, uncond: torch.Tensor, scales: Sequence[float], *, domain_dim: int = 0
) -> torch.Tensor:
    """Multi-domain CFG: one guidance scale per domain (RGB, normal, depth) along ``domain_dim``."""
    if len(scales) != cond.shape[domain_dim]:
        raise ValueError(
            f"multi-domain CFG needs one scale per domain: got {len(scales)} scales for "
            f"{cond.shape[domain_dim]} domains"
        )
    view = [1] * cond.ndim
    view[domain_dim] = len(scales)
    weights = torch.tensor([float(s) for s in scales], dtype=cond.dtype, device=cond.device).view(view)
    return classifier_free_guidance(cond, uncond, weights)


def linear_frame_scales(num_frames: int, min_scale: float, max_scale: float) -> torch.Tensor:
    """SVD's per-frame guidance: scales rising linearly from ``min_scale`` (first frame) to ``max_scale`` (last)."""
    return torch.linspace(min_scale, max_scale, num_frames)
