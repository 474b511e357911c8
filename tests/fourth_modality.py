"""A made-up fourth control modality for the tests: "silhouette", the person's mask, as a plug-in.

Everything a new map needs, and nothing else: a dataset codec (one 8-bit grey PNG per frame), an estimator for data
preparation (a brightness threshold: crude, but it is a real function of the video), and a synthetic renderer (the
mannequin's exact mask). ``register_modalities`` is what ``$DREAMDANCE_MODALITIES`` or an entry point names.
"""

from __future__ import annotations

import numpy as np

NAME = "silhouette"


def brightness_silhouette(video) -> np.ndarray:
    """Estimator: ``[F, H, W]`` bool, pixels brighter than a fixed threshold."""
    return video.frames.mean(axis=-1) > 60


def ramp_depth(video) -> np.ndarray:
    """A depth estimator for videos without a depth model: a ramp, nearest at the bottom."""
    f, h, w = video.frames.shape[:3]
    return np.broadcast_to(np.linspace(0.1, 1.0, h)[None, :, None], (f, h, w)).copy()


def _control(mask: np.ndarray) -> np.ndarray:
    """bool ``[F, H, W]`` -> ``[F, H, W, 3]`` in -1..1: white person on black."""
    return np.repeat(np.where(mask, 1.0, -1.0).astype(np.float32)[..., None], 3, axis=-1)


def register_modalities(registry) -> None:
    """Register "silhouette" in ``registry`` (a ``dreamdance_core.modalities`` module, under whatever name)."""
    codec = registry.ImageCodec(
        NAME, 1, np.uint8, encode=lambda mask: np.where(mask, 255, 0).astype(np.uint8),
        decode=lambda images: images > 127, control=_control, nearest=True,
    )
    registry.register(registry.Modality(
        NAME, codec, synthetic=lambda frames: frames.mask,
        estimators={"brightness": lambda argument, options: brightness_silhouette}, default_estimator="brightness",
        pad_value=-1.0, description="the person's mask, white on black",
    ), replace=True)
