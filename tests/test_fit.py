"""The one fit policy: reference images, maps and rendered keypoints are placed on the output identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdance_core.fit import DEFAULT_FIT, fit_transform
from dreamdance_core.media import fit_images, from_uint8, load_image, to_uint8
from dreamdance_core.pose import PoseError, RenderStyle, render_poses
from tests.fit_cases import CANVASES, OUTPUT, assert_joints_on_dots, dotted_reference

MODES = ("crop", "pad")


def test_crop_covers_and_pad_contains():
    crop = fit_transform((600, 300), (128, 192), "crop")  # scale 0.64: keep the middle 200 columns
    assert crop.source_box == (200, 0, 200, 300) and crop.target_box == (0, 0, 128, 192)
    pad = fit_transform((600, 300), (128, 192), "pad")  # scale 128/600: 64 rows, centred
    assert pad.source_box == (0, 0, 600, 300) and pad.target_box == (0, 64, 128, 64)
    assert fit_transform((256, 384), (512, 768), "crop") == fit_transform((256, 384), (512, 768), "pad")
    assert DEFAULT_FIT == "crop"
    with pytest.raises(ValueError, match="fit must be"):
        fit_transform((10, 10), (8, 8), "cover")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("canvas", CANVASES, ids=list(CANVASES))
def test_keypoints_land_on_their_body_pixels(canvas, mode):
    """Dots drawn on the reference where the keypoints are: after fitting the image and rendering the pose at the
    output size in the same mode, each joint is on its dot (crop cuts the corner joint away from both)."""
    image, pose = dotted_reference(CANVASES[canvas])
    reference = to_uint8(fit_images(from_uint8(image[None]), *OUTPUT, mode))[0]
    pose_map = render_poses(pose, *OUTPUT, style=RenderStyle(joint_radius=2), fit=mode)[0]
    assert_joints_on_dots(reference, pose_map, expect_edge_joint=mode == "pad" or canvas == "equal")


@pytest.mark.parametrize("canvas", ["wider", "taller"])
def test_pad_fills_the_bars_with_black(canvas):
    image = np.full((CANVASES[canvas][1], CANVASES[canvas][0], 3), 200, dtype=np.uint8)
    padded = fit_images(from_uint8(image[None]), *OUTPUT, "pad")[0]
    left, top, inner_w, inner_h = fit_transform(CANVASES[canvas], OUTPUT, "pad").target_box
    outside = torch.ones(OUTPUT[1], OUTPUT[0], dtype=torch.bool)
    outside[top : top + inner_h, left : left + inner_w] = False
    assert outside.sum() > 1000 and (padded[:, outside] == -1).all() and (padded[:, ~outside] > 0).all()


@pytest.mark.parametrize("mode", MODES)
def test_load_image_is_the_image_fit(tmp_path, mode):
    image, _ = dotted_reference(CANVASES["wider"])
    path = tmp_path / "reference.png"
    Image.fromarray(image).save(path)
    assert torch.equal(load_image(path, *OUTPUT, mode), fit_images(from_uint8(image[None]), *OUTPUT, mode))


def test_render_rejects_an_unknown_fit():
    _, pose = dotted_reference(CANVASES["equal"])
    with pytest.raises(PoseError, match="fit must be"):
        render_poses(pose, *OUTPUT, fit="cover")
