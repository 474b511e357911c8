"""Pinhole camera: intrinsics, world -> camera transform, pixel rays and projection.

Conventions (shared with the rest of ``dreamdance_core``):

- Camera space is OpenGL-like: x right, y up, z toward the viewer; the camera sits at the origin and looks down -z.
  The depth of a point is ``-z`` (metres, positive in front of the camera).
- Pixel coordinates: x to the right, y down, origin at the top-left *corner* of the top-left pixel, so pixel
  ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)`` and its centre is ``(col + 0.5, row + 0.5)``.
  With this convention resizing an image by ``s`` scales keypoint coordinates by exactly ``s``.
- Sizes are width x height.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_CUBE_CORNERS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))

@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (see the module docstring for the pixel convention)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, fov_y_degrees: float) -> "Intrinsics":
        """Square pixels, principal point at the image centre, vertical field of view ``fov_y_degrees``."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got width={width} height={height}")
        if not 1.0 < fov_y_degrees < 179.0:
            raise ValueError(f"fov_y_degrees must lie in (1, 179), got {fov_y_degrees}")
        focal = 0.5 * height / np.tan(np.radians(fov_y_degrees) / 2.0)
        return cls(width, height, float(focal), float(focal), width / 2.0, height / 2.0)

    def ray_directions(self) -> np.ndarray:
        """Unit camera-space ray directions through every pixel centre: float64 ``[H, W, 3]`` (read-only)."""
        return _ray_directions(self)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space points ``[..., 3]`` -> pixel coordinates ``[..., 2]`` and depth ``[...]`` (``-z``)."""
        depth = -points[..., 2]
        x = self.cx + self.fx * points[..., 0] / depth
        y = self.cy - self.fy * points[..., 1] / depth
        return np.stack([x, y], axis=-1), depth

    def sphere_pixel_box(self, centre: np.ndarray, radius: float, near: float = 1e-3) -> tuple[int, int, int, int]:
        """Conservative pixel box ``(x0, x1, y0, y1)`` (half-open, clipped) covering a camera-space sphere.

        The sphere's bounding cube is projected; the box of its 8 projected corners contains the sphere's image.
        A sphere reaching behind ``near`` gets the whole image. An off-screen sphere gets an empty box.
        """
        corners = centre + radius * _CUBE_CORNERS
        if np.any(-corners[:, 2] <= near):
            return 0, self.width, 0, self.height
        xy, _ = self.project(corners)
        x0 = int(np.clip(np.floor(xy[:, 0].min()), 0, self.width))
        x1 = int(np.clip(np.ceil(xy[:, 0].max()) + 1, 0, self.width))
        y0 = int(np.clip(np.floor(xy[:, 1].min()), 0, self.height))
        y1 = int(np.clip(np.ceil(xy[:, 1].max()) + 1, 0, self.height))
        return x0, x1, y0, y1


@lru_cache(maxsize=8)
def _ray_directions(intrinsics: Intrinsics) -> np.ndarray:
    cols = (np.arange(intrinsics.width) + 0.5 - intrinsics.cx) / intrinsics.fx
    rows = -(np.arange(intrinsics.height) + 0.5 - intrinsics.cy) / intrinsics.fy
    x, y = np.meshgrid(cols, rows)
    dirs = np.stack([x, y, -np.ones_like(x)], axis=-1)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    dirs.setflags(write=False)
    return dirs


@dataclass(frozen=True)
class Camera:
    """A pinhole camera placed in the world (world: y up, metres).

    ``rotation`` maps world directions to camera space; a world point ``p`` has camera coordinates
    ``rotation @ (p - position)``.
    """

    intrinsics: Intrinsics
    rotation: np.ndarray
    position: np.ndarray

    @classmethod
    def look_at(cls, intrinsics: Intrinsics, position: np.ndarray, target: np.ndarray) -> "Camera":
        """Camera at ``position`` looking at ``target`` with the world's +y as up."""
        position = np.asarray(position, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - position
        norm = np.linalg.norm(forward)
        if norm == 0.0:
            raise ValueError("camera position and target coincide; move the camera away from the target")
        forward /= norm
        right = np.cross(forward, [0.0, 1.0, 0.0])
        if np.linalg.norm(right) < 1e-9:
            raise ValueError("camera looks straight up or down; the world up vector is undefined for look_at")
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        return cls(intrinsics, np.stack([right, up, -forward]), position)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``[..., 3]`` -> camera-space points ``[..., 3]``."""
        return (np.asarray(points) - self.position) @ self.rotation.T

    @property
    def translation(self) -> np.ndarray:
        """``t`` of the world -> camera map ``p_cam = rotation @ p + t``."""
        return -self.rotation @ self.position
