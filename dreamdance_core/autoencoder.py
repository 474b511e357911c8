"""Encode and decode the same way with every VAE the pipelines take.

* diffusers' KL autoencoders - SD1.5's ``AutoencoderKL`` and SVD's ``AutoencoderKLTemporalDecoder``: the latent is the
  posterior's mean (= its mode; DreamDance encodes deterministically); the temporal decoder decodes ``num_frames``
  frames together.
* ``AutoencoderTiny`` (TAESD-style: convolutions and ReLUs, no normalisation, deterministic): the demo's Stage-2 VAE,
  because a *small* KL temporal decoder cannot keep a frame's colours (see ``train/README.md``).

Latents here are unscaled; each pipeline applies ``vae.config.scaling_factor`` by its own convention.
"""

from __future__ import annotations

import inspect

import torch


def encode(vae: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Images ``[N, 3, H, W]`` in -1..1 -> unscaled latents ``[N, c, H / s, W / s]``."""
    output = vae.encode(images)
    return output.latent_dist.mode() if hasattr(output, "latent_dist") else output.latents


def decode(vae: torch.nn.Module, latents: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
    """Unscaled latents ``[N, c, h, w]`` -> images ``[N, 3, H, W]`` (not clamped). ``num_frames``: a temporal decoder
    decodes that many consecutive frames together (``N`` must be a multiple); other decoders ignore it."""
    if num_frames is not None and "num_frames" in inspect.signature(vae.decode).parameters:
        return vae.decode(latents, num_frames=num_frames).sample
    return vae.decode(latents).sample
