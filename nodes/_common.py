"""The one place where ComfyUI types meet core types: tensor layouts, progress/interrupt, model folders.

ComfyUI ``IMAGE``: float ``[frames, H, W, 3]`` in 0..1.  Core images: float ``[frames, 3, H, W]`` in -1..1.
ComfyUI modules are imported inside the functions, so importing a node module stays cheap and works in tests
that stub ComfyUI.
"""

from __future__ import annotations


def comfy_to_core(image):
    """ComfyUI IMAGE ``[f, H, W, C]`` 0..1 -> core ``[f, 3, H, W]`` -1..1 (alpha dropped, grey expanded)."""
    if image.ndim == 3:  # a single frame without batch axis
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"expected an IMAGE batch [frames, H, W, C], got a tensor of shape {tuple(image.shape)}")
    channels = image.shape[-1]
    if channels == 1:
        image = image.expand(-1, -1, -1, 3)
    elif channels == 4:
        image = image[..., :3]
    elif channels != 3:
        raise ValueError(f"expected an IMAGE with 1, 3 or 4 channels, got {channels}")
    return image.permute(0, 3, 1, 2).float() * 2.0 - 1.0


def core_to_comfy(image):
    """Core ``[f, 3, H, W]`` -1..1 -> ComfyUI IMAGE ``[f, H, W, 3]`` 0..1 on the CPU."""
    return ((image.float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 1).contiguous().cpu()


def progress_callback(total: int):
    """A core callback ``(step, total, preview_or_None)`` that drives ComfyUI's progress bar and lets a cancel land.

    ``preview`` is a core image ``[3, H, W]`` in -1..1 (or None); it is shown on the node when given.
    """
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def callback(step: int, total_steps: int, preview=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if preview is not None:
            from PIL import Image

            array = ((preview.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
            bar.update_absolute(step, total_steps, ("JPEG", Image.fromarray(array), 512))
        else:
            bar.update_absolute(step, total_steps)

    return callback
