"""Quality metrics: known answers derived by hand."""

import math

import pytest
import torch

from dreamdance_core.geometry import depth_to_image, image_to_depth, normal_to_image
from dreamdance_core.metrics import (
    NORMAL_FOREGROUND_THRESHOLD,
    MetricInputError,
    depth_abs_rel,
    normal_angular_error,
    normal_foreground,
    psnr,
    silhouette_iou,
    ssim,
)
from dreamdance_core.synthetic import render_sample


def _scene(frames: int = 2, height: int = 24, width: int = 16):
    """Random positive depth on a random foreground (the first pixel always foreground)."""
    g = torch.Generator().manual_seed(0)
    depth = 2.0 + torch.rand(frames, height, width, generator=g)
    mask = torch.rand(frames, height, width, generator=g) > 0.4
    mask[:, 0, 0] = True
    return depth, mask


def _unit_normals(frames: int = 2, height: int = 12, width: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    n = torch.randn(frames, 3, height, width, generator=g)
    return n / n.norm(dim=1, keepdim=True)


# --- depth ------------------------------------------------------------------------------------------------------------


def test_depth_error_is_zero_for_exact_depth_and_any_affine_map_of_it():
    depth, mask = _scene()
    assert depth_abs_rel(depth, depth, mask) == pytest.approx(0.0, abs=1e-12)
    assert depth_abs_rel(-3.0 * depth + 7.0, depth, mask) == pytest.approx(0.0, abs=1e-6)  # float32 input
    # our depth images are an affine map of depth per frame (1 = nearest), so they score 0 too
    assert depth_abs_rel(depth_to_image(depth, mask)[:, 0], depth, mask) == pytest.approx(0.0, abs=1e-6)


def test_depth_error_ignores_the_background_and_is_the_mean_relative_error():
    depth, mask = _scene()
    noisy = torch.where(mask, depth, torch.full_like(depth, 1e6))  # garbage off the foreground changes nothing
    assert depth_abs_rel(noisy, depth, mask) == pytest.approx(0.0, abs=1e-9)
    # two pixels at depths 1 and 3 predicted constant: best fit = 2 everywhere -> errors 1/1 and 1/3 -> mean 2/3
    depth = torch.tensor([[[1.0, 3.0]]])
    assert depth_abs_rel(torch.zeros(1, 1, 2), depth, torch.ones(1, 1, 2, dtype=torch.bool)) == pytest.approx(2 / 3)


# --- normals ----------------------------------------------------------------------------------------------------------


def test_normal_error_identical_is_zero_and_a_quarter_turn_is_90_degrees():
    normal = _unit_normals()
    mask = torch.ones(normal.shape[0], *normal.shape[-2:], dtype=torch.bool)
    assert normal_angular_error(normal, normal, mask) == pytest.approx(0.0, abs=1e-5)
    assert normal_angular_error(3.0 * normal, normal, mask) == pytest.approx(0.0, abs=1e-5)  # length does not matter
    # rotate every normal by 90 degrees about an axis perpendicular to it: n x a, a random unit axis orthogonalised
    axis = torch.tensor([0.3, -0.5, 0.8]).view(1, 3, 1, 1).expand_as(normal)
    perpendicular = torch.linalg.cross(normal, axis, dim=1)
    assert normal_angular_error(perpendicular, normal, mask) == pytest.approx(90.0, abs=1e-5)
    assert normal_angular_error(-normal, normal, mask) == pytest.approx(180.0, abs=1e-4)


def test_normal_error_counts_background_predictions_as_90_degrees_over_the_true_foreground_only():
    normal = _unit_normals(1, 2, 2)
    mask = torch.tensor([[[True, True], [False, False]]])
    prediction = normal.clone()
    prediction[:, :, 0, 1] = 0.0  # one foreground pixel predicted as background: 90 degrees
    prediction[:, :, 1, :] = -normal[:, :, 1, :]  # wrong off the foreground: ignored
    assert normal_angular_error(prediction, normal, mask) == pytest.approx(45.0, abs=1e-5)


# --- silhouette -------------------------------------------------------------------------------------------------------


def test_iou_of_half_overlapping_squares_is_one_third():
    a = torch.zeros(1, 8, 8, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[:, 0:4, 0:4] = True
    b[:, 0:4, 2:6] = True  # overlap 8 pixels, union 24
    assert silhouette_iou(a, b) == pytest.approx(1 / 3)
    assert silhouette_iou(a, a) == 1.0
    assert silhouette_iou(a, ~a) == 0.0


def test_normal_foreground_thresholds_the_vector_length():
    lengths = torch.tensor([0.0, NORMAL_FOREGROUND_THRESHOLD / 2, 2 * NORMAL_FOREGROUND_THRESHOLD, 1.0])
    direction = torch.tensor([0.6, 0.0, -0.8]).view(1, 3, 1, 1)  # unit length
    image = direction * lengths.view(1, 1, 1, -1)
    assert normal_foreground(image).tolist() == [[[False, False, True, True]]]


def test_a_rendered_normal_map_gives_the_exact_silhouette_where_a_depth_map_cannot():
    sample = render_sample(11, 12, 13, num_frames=2, width=32, height=48)
    normal = torch.from_numpy(sample.clip.normal).permute(0, 3, 1, 2)
    mask = torch.from_numpy(sample.clip.mask)
    assert silhouette_iou(normal_foreground(normal_to_image(normal)), mask) == 1.0
    # the depth image gives each frame's farthest body point the background's value
    depth_image = depth_to_image(torch.from_numpy(sample.clip.depth), mask)
    assert silhouette_iou(image_to_depth(depth_image) > 0, mask) < 1.0


# --- images -----------------------------------------------------------------------------------------------------------


def test_psnr_of_a_known_mse():
    target = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert psnr(target + 0.1, target) == pytest.approx(20.0)  # MSE 0.01 -> 10 log10(100)
    assert psnr(target + 0.01, target) == pytest.approx(40.0)
    assert psnr(target, target) == math.inf


def test_ssim_identical_images_is_one_and_constant_images_follow_the_luminance_term():
    image = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(3))
    assert ssim(image, image) == pytest.approx(1.0)
    # constant images a and b: variances and covariance vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.2, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)) == pytest.approx(expected)
    assert ssim(image, 1.0 - image) < 0.0  # anti-correlated structure


def test_metrics_reject_inputs_that_do_not_fit():
    depth, mask = _scene()
    with pytest.raises(MetricInputError, match="differ in shape"):
        depth_abs_rel(depth[:1], depth, mask)
    with pytest.raises(MetricInputError, match="no foreground"):
        depth_abs_rel(depth, depth, torch.zeros_like(mask))
    with pytest.raises(MetricInputError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(MetricInputError, match="4 dimensions"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))
