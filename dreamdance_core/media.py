"""Images in and out of the core: loading a reference image, writing frames, contact sheets, depth colour maps.

Core images are float ``[frames, 3, H, W]`` in -1..1; arrays here are ``uint8 [frames, H, W, 3]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .fit import DEFAULT_FIT, Fit, fit_transform


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Core images ``[F, 3, H, W]`` in -1..1 -> ``uint8 [F, H, W, 3]``."""
    array = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """``uint8 [F, H, W, 3]`` -> core images ``[F, 3, H, W]`` in -1..1."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def load_image(path: str | os.PathLike, width: int, height: int, fit: Fit = DEFAULT_FIT) -> torch.Tensor:
    """An image file as a core image ``[1, 3, height, width]``, fitted to the size by :func:`fit_images`."""
    from PIL import Image, UnidentifiedImageError

    from .validation import MAX_SIDE, InputError, check_size

    check_size(width, height, "the image size", multiple=1)
    try:
        with Image.open(path) as opened:
            if max(opened.size) > MAX_SIDE:  # before decoding: a huge image is refused without reading its pixels
                raise InputError(f"image {path} is {opened.size[0]}x{opened.size[1]} pixels, larger than {MAX_SIDE} on "
                                 "a side; resize it first")
            image = opened.convert("RGB")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"reference image {path} not found; check the path") from error
    except Image.DecompressionBombError:
        raise InputError(f"image {path} declares more pixels than PIL's safety limit (a decompression bomb, or a "
                         "huge image); give a normal-sized image") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not an image file; give a PNG, JPEG or WebP file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path} is not a readable image ({error}); give a PNG, JPEG or WebP file") from error
    return fit_images(from_uint8(np.asarray(image)[None]), width, height, fit)


def colorize_depth(depth_images: torch.Tensor) -> np.ndarray:
    """Depth images (see :mod:`dreamdance_core.geometry`) -> ``uint8 [F, H, W, 3]`` TURBO colour map, background
    black."""
    import cv2

    grey = to_uint8(depth_images)[..., 0]
    coloured = np.stack([cv2.applyColorMap(frame, cv2.COLORMAP_TURBO)[..., ::-1] for frame in grey])
    coloured[grey == 0] = 0
    return coloured


def contact_sheet(rows: Sequence[np.ndarray], max_columns: int = 8, gap: int = 2) -> np.ndarray:
    """Rows of frame strips (each ``uint8 [F_i, H, W, 3]``, same H and W) -> one ``uint8`` image.

    At most ``max_columns`` frames per row, evenly picked; shorter rows (e.g. a single reference) start left.
    """
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    height, width = rows[0].shape[1:3]
    if any(row.shape[1:3] != (height, width) for row in rows):
        raise ValueError(f"all rows must have {width}x{height} frames: {[r.shape[1:3] for r in rows]}")
    columns = min(max_columns, max(len(row) for row in rows))
    sheet = np.full(((height + gap) * len(rows) - gap, (width + gap) * columns - gap, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        picks = np.linspace(0, len(row) - 1, min(columns, len(row))).round().astype(int)
        for c, index in enumerate(picks):
            y, x = r * (height + gap), c * (width + gap)
            sheet[y : y + height, x : x + width] = row[index]
    return sheet


def save_frames(frames: np.ndarray, folder: str | os.PathLike) -> list[Path]:
    """Write ``uint8 [F, H, W, 3]`` frames as ``folder/000000.png`` ...; returns the paths."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f"{index:06d}.png"
        Image.fromarray(frame).save(path)
        paths.append(path)
    return paths


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def fit_images(
    images: torch.Tensor, width: int, height: int, fit: Fit = DEFAULT_FIT, pad: float = -1.0
) -> torch.Tensor:
    """Core images ``[F, 3, h, w]`` -> ``[F, 3, height, width]`` by the fit policy (:mod:`dreamdance_core.fit`):
    the kept part is resized (bilinear, antialiased) onto its place; the rest is ``pad`` (black; for normal maps
    ``PAD_VALUES["normal"]``)."""
    if width < 8 or height < 8:
        raise ValueError(f"target size {width}x{height} is too small (at least 8x8)")
    h, w = images.shape[-2:]
    transform = fit_transform((w, h), (width, height), fit)
    left, top, crop_w, crop_h = transform.source_box
    out_left, out_top, inner_w, inner_h = transform.target_box
    images = images[..., top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) != (inner_h, inner_w):
        images = torch.nn.functional.interpolate(images.float(), size=(inner_h, inner_w), mode="bilinear",
                                                 antialias=True, align_corners=False).clamp(-1, 1)
    if (inner_h, inner_w) == (height, width):
        return images
    padded = images.new_full((*images.shape[:-2], height, width), pad)
    padded[..., out_top : out_top + inner_h, out_left : out_left + inner_w] = images
    return padded


def geometry_panels(
    depth: torch.Tensor,
    normal: torch.Tensor,
    pose: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
) -> np.ndarray:
    """Per frame, side by side: reference, pose, normal, colour-mapped depth -> ``uint8 [F, H, k * W, 3]``.

    All inputs are core images; every panel is fitted to the depth maps' size; a single reference or pose frame is
    repeated for every frame.
    """
    frames, _, height, width = depth.shape
    if normal.shape[0] != frames:
        raise ValueError(f"depth has {frames} frames but normal has {normal.shape[0]}: give maps of the same video")
    panels = []
    for extra, name in ((reference, "reference"), (pose, "pose")):
        if extra is None:
            continue
        if extra.shape[0] not in (1, frames):
            raise ValueError(f"{name} has {extra.shape[0]} frames; give 1 or as many as the depth maps ({frames})")
        panels.append(to_uint8(fit_images(extra, width, height)).repeat(frames // extra.shape[0], axis=0))
    panels.append(to_uint8(fit_images(normal, width, height)))
    panels.append(colorize_depth(depth))
    return np.concatenate(panels, axis=2)


def save_video(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """Write ``uint8 [F, H, W, 3]`` frames as an animated WebP (lossless, looping) with Pillow."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, lossless=True)
    return path
