"""Where a stage's models come from: the user's weights, the shipped demo checkpoint, or a tiny random model.

One choice for every front end - the loader nodes (whose combo values ``(demo: synthetic mannequins)`` and
``(tiny random demo)`` name :data:`DEMO` and :data:`TINY`), the command line and the benchmarks:

- :data:`WEIGHTS`: the user's files (:func:`~.loading.stage1.load_geometry_pipeline`,
  :func:`~.loading.stage2.load_video_pipeline`);
- :data:`DEMO`: the checkpoint shipped in :mod:`dreamdance_core.demo` (small models trained on synthetic mannequins);
- :data:`TINY`: :mod:`dreamdance_core.tiny`'s randomly initialised models (plumbing only: their outputs are noise).
"""

from __future__ import annotations

import os

import torch

from .pipelines import GeometryPipeline, VideoPipeline

WEIGHTS, DEMO, TINY = "weights", "demo", "tiny"
SOURCES: tuple[str, ...] = (WEIGHTS, DEMO, TINY)


def default_source(weights_given: bool, demo) -> str:
    """What runs when a user picks nothing: the weights given, else the shipped demo (``demo``: its
    :class:`~.demo.DemoInfo`, or None where this copy carries none), else the tiny random model."""
    return WEIGHTS if weights_given else DEMO if demo is not None else TINY


def _demo_folder(demo, folder) -> os.PathLike:
    if demo is None:
        raise FileNotFoundError(f"the demo checkpoint is missing from this copy of the pack ({folder}): "
                                "reinstall the pack, or choose other weights")
    return demo.path


def _check(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown model source {source!r}: choose one of {', '.join(SOURCES)}")


def geometry_pipeline(
    source: str,
    stage1: str | os.PathLike | None = None,
    base: str | os.PathLike | None = None,
    image_encoder: str | os.PathLike | None = None,
    *,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> GeometryPipeline:
    """Stage 1 from ``source``; ``stage1``/``base``/``image_encoder`` are read for :data:`WEIGHTS` only, ``seed`` for
    :data:`TINY` only (the tiny model is float32: ``dtype`` does not apply to it)."""
    _check(source)
    if source == TINY:
        from .tiny import tiny_geometry_pipeline

        return tiny_geometry_pipeline(seed)
    from . import demo
    from .loading.stage1 import load_geometry_pipeline

    if source == DEMO:
        return load_geometry_pipeline(_demo_folder(demo.stage1_demo(), demo.STAGE1_DIR), dtype=dtype)
    return load_geometry_pipeline(stage1, base, image_encoder, dtype=dtype)


def video_pipeline(
    source: str,
    stage2: str | os.PathLike | None = None,
    svd: str | os.PathLike | None = None,
    *,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> VideoPipeline:
    """Stage 2 from ``source``; ``stage2``/``svd`` are read for :data:`WEIGHTS` only, ``seed`` for :data:`TINY` only."""
    _check(source)
    if source == TINY:
        from .tiny import tiny_video_pipeline

        return tiny_video_pipeline(seed)
    from . import demo
    from .loading.stage2 import load_video_pipeline

    if source == DEMO:
        return load_video_pipeline(_demo_folder(demo.stage2_demo(), demo.STAGE2_DIR), dtype=dtype)
    if stage2 is None:
        raise ValueError("Stage 2 needs DreamDance Stage-2 weights (a folder written by train/stage2.py)")
    return load_video_pipeline(stage2, svd, dtype=dtype)
