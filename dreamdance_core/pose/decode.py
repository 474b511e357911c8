"""Rendered OpenPose maps -> keypoints, where that is lossless: the body joints of one person.

Each body joint is drawn as a disc in its own colour (BODY_COLORS) and no bone shares a joint colour, so a joint
is found as the largest blob of exactly its colour (a hand edge may share the colour elsewhere). Hands (all blue)
and face points (all white) carry no identity, and several people share colours, so those are not recovered. A
joint partly covered by a later one is found within about its radius; a joint whose colour is absent is missing.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..cancel import CancelCheck, check
from .schema import BODY_COLORS, NUM_BODY
from .sequence import PoseError, PoseSequence


def decode_body_images(
    images: np.ndarray, min_pixels: int = 3, cancel_check: CancelCheck | None = None
) -> PoseSequence:
    """``uint8 [F, H, W, 3]`` RGB OpenPose maps -> one person's body per frame (confidence 1 where found);
    ``cancel_check`` is called before every frame (:mod:`dreamdance_core.cancel`)."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise PoseError(f"expected uint8 RGB images [frames, H, W, 3], got {images.dtype} {images.shape}")
    frames, height, width, _ = images.shape
    seq = PoseSequence.empty(frames, 1, (width, height))
    colors = np.array(BODY_COLORS, dtype=np.int32)
    keys = (colors * [65536, 256, 1]).sum(-1)
    for f in range(frames):
        check(cancel_check)
        packed = (images[f].astype(np.int32) * [65536, 256, 1]).sum(-1)  # one integer per colour: [H, W]
        for joint in range(NUM_BODY):
            count, _, stats, _ = cv2.connectedComponentsWithStats((packed == keys[joint]).astype(np.uint8))
            if count < 2:
                continue
            x, y, w, h, area = stats[1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])]
            if area >= min_pixels:
                # Centre of the bounding box: robust to a neighbour's disc covering one side of this one.
                seq.body[f, 0, joint] = [x + (w - 1) / 2, y + (h - 1) / 2, 1.0]
    seq.people[:, 0] = seq.body[..., 2].any(axis=-1)[:, 0]
    return seq
