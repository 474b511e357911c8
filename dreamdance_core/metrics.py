"""Quality metrics against exact ground truth: geometry (Stage 1) and video frames (Stage 2).

Inputs are torch tensors; every metric is computed per frame and averaged over the frames.

* **Depth** - :func:`depth_abs_rel`: *scale-and-shift-invariant absolute relative error* (the MiDaS protocol). The
  prediction is a relative depth (any affine function of depth: our depth images put 1 at the nearest point, so the
  scale is negative). Per frame, over the ground-truth foreground ``M``, the scale ``s`` and shift ``t`` minimising
  ``sum_M (s * p + t - d)^2`` are fitted by least squares; the error is ``mean_M |s * p + t - d| / d``. It is 0 for
  any prediction that is an exact affine function of the true depth, and is dimensionless.
* **Normals** - :func:`normal_angular_error`: mean angle in degrees between predicted and true unit normals over the
  ground-truth foreground. A predicted vector shorter than ``eps`` (a "background" normal) counts as 90 degrees.
* **Silhouette** - :func:`silhouette_iou`: intersection over union of two masks; :func:`normal_foreground` takes the
  predicted mask from a normal image (vectors longer than :data:`NORMAL_FOREGROUND_THRESHOLD`). The normal image is
  the one map whose background value (the zero vector) no foreground pixel shares: the depth image gives the farthest
  body point of each frame the background's value, so a mask read from it is not exact even for the ground truth,
  and any speckle of a decoded background counts as body.
* **Images** - :func:`psnr` and :func:`ssim` on images in 0..1 (data range 1). SSIM is Wang et al. 2004 with an
  11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, per channel over the valid region (no padding),
  averaged over channels and pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import image_to_normal

# Length above which a normal-image vector counts as foreground: halfway between the background (the zero vector) and
# the body (unit normals).
NORMAL_FOREGROUND_THRESHOLD = 0.5
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


class MetricInputError(ValueError):
    """Metric inputs whose shapes or contents do not fit together."""


def _check_same_shape(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise MetricInputError(f"{name}: prediction {tuple(a.shape)} and ground truth {tuple(b.shape)} differ in shape")


def _check_frames(name: str, tensor: torch.Tensor, ndim: int) -> None:
    if tensor.ndim != ndim:
        raise MetricInputError(f"{name} must have {ndim} dimensions (frames first), got shape {tuple(tensor.shape)}")


def _check_foreground(mask: torch.Tensor) -> None:
    empty = ~mask.flatten(1).any(1)
    if empty.any():
        raise MetricInputError(
            f"ground-truth frames {empty.nonzero().flatten().tolist()} have no foreground pixel; "
            "these metrics are defined over the foreground, leave such frames out"
        )


def depth_abs_rel(prediction: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor) -> float:
    """Scale-and-shift-invariant AbsRel of a relative depth ``prediction`` ``[F, H, W]`` against the true metric
    ``depth`` ``[F, H, W]`` (positive on ``mask``; anything elsewhere) over the foreground ``mask`` ``[F, H, W]``."""
    _check_frames("depth prediction", prediction, 3)
    _check_same_shape("depth", prediction, depth)
    _check_same_shape("depth mask", prediction, mask)
    mask = mask.bool()
    _check_foreground(mask)
    errors = []
    for p, d, m in zip(prediction.double(), depth.double(), mask):
        p, d = p[m], d[m]
        if not (torch.isfinite(p).all() and torch.isfinite(d).all() and (d > 0).all()):
            raise MetricInputError("depth: prediction must be finite and ground truth positive over the foreground")
        # least squares d ~ s p + t in closed form; a constant prediction gets s = 0 (the best constant)
        p_centred = p - p.mean()
        variance = p_centred.pow(2).sum()
        scale = (p_centred * d).sum() / variance if variance > 0 else torch.zeros_like(variance)
        aligned = scale * p_centred + d.mean()
        errors.append(((aligned - d).abs() / d).mean())
    return float(torch.stack(errors).mean())


def normal_angular_error(prediction: torch.Tensor, normal: torch.Tensor, mask: torch.Tensor, eps: float = 0.1) -> float:
    """Mean angle (degrees) between ``prediction`` normals ``[F, 3, H, W]`` (any length: normalised here) and the
    true unit ``normal`` ``[F, 3, H, W]`` over the foreground ``mask`` ``[F, H, W]``."""
    _check_frames("normal prediction", prediction, 4)
    _check_same_shape("normal", prediction, normal)
    if mask.shape != (prediction.shape[0], *prediction.shape[-2:]):
        raise MetricInputError(f"normal mask must be [frames, H, W] = {(prediction.shape[0], *prediction.shape[-2:])}")
    mask = mask.bool()
    _check_foreground(mask)
    predicted, normal = image_to_normal(prediction.double(), eps), normal.double()
    # atan2(|a x b|, a . b): accurate near 0 and 180 degrees, where arccos is not
    sine = torch.linalg.cross(predicted, normal, dim=1).norm(dim=1)
    angles = torch.rad2deg(torch.atan2(sine, (predicted * normal).sum(1)))  # [F, H, W]
    angles = torch.where(predicted.abs().sum(1) > 0, angles, torch.full_like(angles, 90.0))
    return float(torch.stack([a[m].mean() for a, m in zip(angles, mask)]).mean())


def normal_foreground(normal_image: torch.Tensor, threshold: float = NORMAL_FOREGROUND_THRESHOLD) -> torch.Tensor:
    """Foreground mask ``[F, H, W]`` of a normal image ``[F, 3, H, W]`` in -1..1: vectors longer than ``threshold``."""
    _check_frames("normal image", normal_image, 4)
    return normal_image.norm(dim=1) > threshold


def silhouette_iou(prediction: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean per-frame intersection over union of boolean masks ``[F, H, W]`` (a frame where both are empty: 1)."""
    _check_frames("silhouette prediction", prediction, 3)
    _check_same_shape("silhouette", prediction, mask)
    prediction, mask = prediction.bool(), mask.bool()
    intersection = (prediction & mask).flatten(1).sum(1).double()
    union = (prediction | mask).flatten(1).sum(1).double()
    return float(torch.where(union > 0, intersection / union.clamp_min(1), torch.ones_like(union)).mean())


def _check_images(prediction: torch.Tensor, target: torch.Tensor) -> None:
    _check_frames("image prediction", prediction, 4)
    _check_same_shape("images", prediction, target)


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-frame PSNR (dB) of images ``[F, C, H, W]`` in 0..1: ``10 log10(1 / MSE)`` (identical frames: inf)."""
    _check_images(prediction, target)
    mse = (prediction.double() - target.double()).pow(2).flatten(1).mean(1)
    return float((10.0 * torch.log10(1.0 / mse)).mean())


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # [1, 1, size, size]


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM of images ``[F, C, H, W]`` in 0..1 (Gaussian window; see the module docstring)."""
    _check_images(prediction, target)
    if min(prediction.shape[-2:]) < SSIM_WINDOW:
        raise MetricInputError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(prediction.shape[-2:])}"
        )
    x = prediction.double().flatten(0, 1)[:, None]  # [F*C, 1, H, W]
    y = target.double().flatten(0, 1)[:, None]
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, torch.float64)

    def blur(image: torch.Tensor) -> torch.Tensor:  # Gaussian mean over the valid region
        return F.conv2d(image, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())

