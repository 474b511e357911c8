"""Guidance arithmetic and the depth/normal image conventions."""

from __future__ import annotations

import pytest
import torch

from dreamdance_core.geometry import (
    decode_latents,
    depth_to_image,
    encode_latents,
    image_to_depth,
    image_to_normal,
    normal_to_image,
)
from dreamdance_core.sampling.guidance import (
    classifier_free_guidance,
    linear_frame_scales,
    multi_domain_cfg,
    paper_scale_to_cfg,
)
from tests.tiny_stage1 import tiny_vae


def test_mcfg_with_equal_scales_is_ordinary_cfg_and_unequal_scales_act_per_domain():
    cond, uncond = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    assert torch.equal(multi_domain_cfg(cond, uncond, [2.5] * 3), classifier_free_guidance(cond, uncond, 2.5))
    mixed = multi_domain_cfg(cond, uncond, [1.0, 2.0, 3.0])
    for domain, scale in enumerate([1.0, 2.0, 3.0]):
        torch.testing.assert_close(mixed[domain], uncond[domain] + scale * (cond[domain] - uncond[domain]))
    torch.testing.assert_close(mixed[0], cond[0])  # scale 1 is the conditional prediction itself


def test_paper_convention_maps_to_ordinary_cfg():
    cond, uncond, s = torch.randn(5), torch.randn(5), 1.5
    paper = cond + s * (cond - uncond)  # eq. 6
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, paper_scale_to_cfg(s)), paper)


def test_mcfg_needs_one_scale_per_domain():
    with pytest.raises(ValueError, match="one scale per domain"):
        multi_domain_cfg(torch.zeros(3, 2), torch.zeros(3, 2), [1.0, 2.0])


def test_linear_frame_scales():
    assert linear_frame_scales(3, 1.0, 3.0).tolist() == [1.0, 2.0, 3.0]


def test_depth_image_is_bright_near_and_dark_background():
    depth = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])  # 0 = background
    image = depth_to_image(depth)
    assert image.shape == (1, 3, 2, 2)
    assert image[0, 0, 0, 0] == 1.0  # nearest
    assert image[0, 0, 1, 0] == -1.0  # farthest foreground
    assert image[0, 0, 1, 1] == -1.0  # background
    assert image[0, 0, 0, 0] > image[0, 0, 0, 1] > image[0, 0, 1, 0]
    relative = image_to_depth(image)
    torch.testing.assert_close(relative[0], torch.tensor([[1.0, 0.5], [0.0, 0.0]]))


def test_depth_is_invariant_to_scale_and_shift():
    depth = torch.rand(2, 6, 5) + 1.0
    torch.testing.assert_close(depth_to_image(depth), depth_to_image(depth * 3.0 + 7.0))


def test_normal_round_trip_and_background():
    normal = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    normal[:, :, 0, 0] = 0.0
    back = image_to_normal(normal_to_image(normal))
    torch.testing.assert_close(back[:, :, 1:], normal[:, :, 1:])
    assert torch.equal(back[:, :, 0, 0], torch.zeros(2, 3))


def test_latents_round_trip_shapes_and_chunking_agree():
    vae = tiny_vae().eval()
    images = torch.rand(3, 3, 32, 24) * 2 - 1
    latents = encode_latents(vae, images, chunk_size=2)
    assert latents.shape == (3, 4, 4, 3)
    torch.testing.assert_close(latents, encode_latents(vae, images, chunk_size=3))
    decoded = decode_latents(vae, latents, chunk_size=1)
    assert decoded.shape == images.shape and decoded.abs().max() <= 1.0
    torch.testing.assert_close(decoded, decode_latents(vae, latents, chunk_size=3))
