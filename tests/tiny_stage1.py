"""Tiny Stage-1 components for tests (random weights, CPU, milliseconds per forward)."""

from __future__ import annotations

import torch

from dreamdance_core.tiny import CROSS_ATTENTION_DIM, tiny_clip_vision, tiny_stage1, tiny_unet, tiny_vae

__all__ = ["CROSS_ATTENTION_DIM", "randomize_", "tiny_image_encoder", "tiny_stage1", "tiny_unet", "tiny_vae"]


def tiny_image_encoder():
    return tiny_clip_vision(num_hidden_layers=1)


def randomize_(module: torch.nn.Module, scale: float = 0.1, seed: int = 1) -> torch.nn.Module:
    """Give every parameter random values (so zero-initialised paths become active, as after training)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module
