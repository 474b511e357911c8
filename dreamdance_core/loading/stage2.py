"""Everything Stage 2 needs, from the weights a user has: SVD plus the DreamDance controller and ControlNet.

A DreamDance Stage-2 weights folder (written by ``train/stage2.py``) holds ``controller/`` and ``controlnet/``; it may
also carry a whole diffusers SVD folder under ``svd/`` (as the small demo models do). Otherwise SVD comes from a
single-file checkpoint (``svd_xt_1_1.safetensors`` in ComfyUI's ``models/checkpoints``) or a diffusers folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..pipelines import SVDComponents, VideoPipeline
from ..weights import WeightFileError

__all__ = ["SVDComponents", "VideoPipeline", "load_svd", "load_video_pipeline"]


def load_svd(source: str | os.PathLike, *, dtype: torch.dtype | None = None) -> SVDComponents:
    """SVD from a diffusers folder or a single-file ``.safetensors`` checkpoint."""
    from .svd import load_svd_folder, load_svd_single_file

    source = Path(source)
    if source.is_dir():
        return load_svd_folder(source, dtype=dtype)
    return load_svd_single_file(source, dtype=dtype)


def load_video_pipeline(
    stage2: str | os.PathLike, svd: str | os.PathLike | None = None, *, dtype: torch.dtype | None = None
) -> VideoPipeline:
    """Build Stage 2 from a DreamDance Stage-2 weights folder and SVD (``svd=None``: the folder's own ``svd/``)."""
    from .svd import load_stage2_control

    stage2 = Path(stage2)
    if not stage2.is_dir():
        raise WeightFileError(
            f"DreamDance Stage-2 weights folder {stage2} does not exist. It holds controller/ and controlnet/ "
            "written by train/stage2.py."
        )
    if svd is None:
        if not (stage2 / "svd").is_dir():
            raise WeightFileError(
                f"{stage2} has no svd/ folder: also give Stable Video Diffusion (e.g. svd_xt_1_1.safetensors from "
                "ComfyUI/models/checkpoints, or a diffusers SVD folder)."
            )
        svd = stage2 / "svd"
    components = load_svd(svd, dtype=dtype)
    controller, controlnet = load_stage2_control(stage2, dtype=dtype)
    if tuple(controlnet.config.block_out_channels) != tuple(components.unet.config.block_out_channels):
        raise WeightFileError(
            f"the ControlNet in {stage2} was built for a UNet with blocks {controlnet.config.block_out_channels}, "
            f"but the SVD UNet has {components.unet.config.block_out_channels}: use the SVD it was trained on"
        )
    return VideoPipeline(components, controller.eval(), controlnet.eval())
