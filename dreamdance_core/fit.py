"""One fit policy for everything placed on an output frame: reference images, pose / depth / normal maps, keypoints.

When a source (an image, or a pose canvas) has another aspect ratio than the output, the user picks one mode:

- ``"crop"`` (the default, "cover"): scale until the source covers the output, cut the overhang evenly from both
  sides. What ComfyUI's ``SVD_img2vid_Conditioning`` does with its init image (``common_upscale(..., "center")``)
  and what MimicMotion's ``preprocess`` does with the reference (resize, then ``center_crop``); the model sees a
  full frame, as in training.
- ``"pad"`` ("contain"): scale until the source fits inside the output, centre it, fill the rest with what "nothing
  there" is for the kind of image (:data:`PAD_VALUES`): black for the reference (letterbox bars), for pose maps (no
  person) and depth maps (background / far), mid-grey for normal maps (the zero vector: background, see
  :mod:`dreamdance_core.geometry`).
- ``"stretch"``: scale each axis on its own (what normalised coordinates do); kept for the Render Pose node's saved
  workflows, not offered where a reference image and poses must line up.

:func:`fit_transform` is the one place where a mode becomes numbers: the part of the source that is kept and where
it lands in the output, both whole pixels. Image fits (:func:`dreamdance_core.media.fit_images`) cut and resize
those boxes; pose rendering maps keypoints with the same boxes' scale and offset, so a keypoint on a body pixel of
the reference lands on the same body pixel of the fitted reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Fit = Literal["crop", "pad", "stretch", "contain"]
FIT_MODES = ("crop", "pad")  # what the nodes and the command line offer
LEGACY_FITS = {"contain": "pad"}  # Render Pose's name for "pad" before there was one policy (saved workflows hold it)
DEFAULT_FIT = "crop"
PAD_VALUES = {"pose": -1.0, "depth": -1.0, "normal": 0.0}  # per map, in the core's -1..1; the reference: black
FIT_HELP = ("How a reference image or pose canvas of another aspect ratio fits the output: crop = scale to cover it "
            "and centre-crop (like ComfyUI's SVD conditioning and MimicMotion); pad = scale to fit inside and centre, "
            "empty bars (black; mid-grey in normal maps).")


@dataclass(frozen=True)
class FitTransform:
    """``source_box`` (left, top, width, height in source pixels) is resized onto ``target_box`` of the output.

    A point in pixel coordinates (pixel ``i``'s centre at ``i``: OpenCV's and OpenPose's convention, what the pose
    renderer draws at) maps as ``output = source * scale + offset``, per axis, where a resize with pixel-area
    alignment (``align_corners=False``, PIL, OpenCV) puts that pixel. x and y scales differ only by the rounding of
    the boxes to whole pixels, or under ``"stretch"``.
    """

    source_box: tuple[int, int, int, int]
    target_box: tuple[int, int, int, int]

    @property
    def scale(self) -> tuple[float, float]:
        return self.target_box[2] / self.source_box[2], self.target_box[3] / self.source_box[3]

    @property
    def offset(self) -> tuple[float, float]:
        (sx, sy), (left, top), (out_left, out_top) = self.scale, self.source_box[:2], self.target_box[:2]
        # box corners map onto box corners: (x - left + 1/2) * s = x_out - out_left + 1/2
        return out_left - 0.5 + (0.5 - left) * sx, out_top - 0.5 + (0.5 - top) * sy


def fit_transform(source: tuple[int, int], target: tuple[int, int], mode: Fit = DEFAULT_FIT) -> FitTransform:
    """How a ``source`` of (width, height) fits a ``target`` of (width, height) in ``mode`` (see the module)."""
    (w, h), (width, height) = source, target
    mode = LEGACY_FITS.get(mode, mode)
    if min(w, h, width, height) <= 0:
        raise ValueError(f"fit sizes must be positive: source {w}x{h}, target {width}x{height}")
    if mode == "stretch":
        return FitTransform((0, 0, w, h), (0, 0, width, height))
    if mode == "crop":
        scale = max(width / w, height / h)
        crop_w, crop_h = min(w, max(1, round(width / scale))), min(h, max(1, round(height / scale)))
        return FitTransform(((w - crop_w) // 2, (h - crop_h) // 2, crop_w, crop_h), (0, 0, width, height))
    if mode == "pad":
        scale = min(width / w, height / h)
        inner_w, inner_h = min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale)))
        return FitTransform((0, 0, w, h), ((width - inner_w) // 2, (height - inner_h) // 2, inner_w, inner_h))
    raise ValueError(f"fit must be one of 'crop', 'pad' or 'stretch', got {mode!r}")
