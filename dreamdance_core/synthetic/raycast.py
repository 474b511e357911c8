"""Analytic ray casting of capsules and ellipsoids with a z-buffer (numpy, vectorised over rays).

All geometry is in camera space (x right, y up, z toward the viewer). Every ray starts at the camera origin and has
a unit direction ``d``; a hit at ray parameter ``t`` is the point ``t * d`` and its depth is ``t * -d_z``.
Normals are outward unit normals of the primitive surface, so visible surfaces face the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .camera import Intrinsics


@dataclass(frozen=True)
class Capsule:
    """All points within ``radius`` of the segment ``a``-``b``."""

    a: np.ndarray
    b: np.ndarray
    radius: float
    part: int

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Capsule":
        """The capsule under the rigid map ``p -> rotation @ p + translation``."""
        return Capsule(rotation @ self.a + translation, rotation @ self.b + translation, self.radius, self.part)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return (self.a + self.b) / 2.0, float(np.linalg.norm(self.b - self.a)) / 2.0 + self.radius

    def intersect(self, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter of the first hit for unit directions ``[..., 3]``; ``inf`` where the ray misses.

        Cylinder body first (the ray against the infinite cylinder, kept where the hit projects inside the
        segment), otherwise the sphere cap at the nearer end.
        """
        ba = self.b - self.a
        oa = -self.a
        baba = ba @ ba
        bard = dirs @ ba
        baoa = oa @ ba
        rdoa = dirs @ oa
        qa = baba - bard * bard
        qb = baba * rdoa - baoa * bard
        qc = baba * (oa @ oa) - baoa * baoa - self.radius**2 * baba
        disc = qb * qb - qa * qc
        with np.errstate(divide="ignore", invalid="ignore"):
            t_body = (-qb - np.sqrt(np.maximum(disc, 0.0))) / qa
            y = baoa + t_body * bard
        on_body = (disc >= 0.0) & (y > 0.0) & (y < baba)
        # Sphere cap at a (y <= 0) or b (y >= baba): |t d - centre|^2 = r^2 with |d| = 1.
        cap_centre = np.where((y <= 0.0)[..., None], self.a, self.b)
        oc = -cap_centre
        cb = np.einsum("...i,...i->...", dirs, oc)
        cc = np.einsum("...i,...i->...", oc, oc) - self.radius**2
        cap_disc = cb * cb - cc
        t_cap = -cb - np.sqrt(np.maximum(cap_disc, 0.0))
        t = np.where(on_body, t_body, np.where((disc >= 0.0) & (cap_disc >= 0.0), t_cap, np.inf))
        return np.where(t > 0.0, t, np.inf)

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normals at surface points ``[N, 3]``."""
        ba = self.b - self.a
        h = np.clip(((points - self.a) @ ba) / max(ba @ ba, 1e-30), 0.0, 1.0)
        n = points - (self.a + h[:, None] * ba)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid with ``centre``, orthonormal ``axes`` (columns: its local x, y, z in the embedding space) and
    semi-axis lengths ``radii`` along them. A sphere is an ellipsoid with equal radii."""

    centre: np.ndarray
    axes: np.ndarray
    radii: np.ndarray
    part: int

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Ellipsoid":
        return Ellipsoid(rotation @ self.centre + translation, rotation @ self.axes, self.radii, self.part)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return self.centre, float(np.max(self.radii))

    def intersect(self, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter of the first hit; ``inf`` where the ray misses. Solved in the unit-sphere frame."""
        origin = (-self.centre @ self.axes) / self.radii
        local = (dirs @ self.axes) / self.radii
        qa = np.einsum("...i,...i->...", local, local)
        qb = local @ origin
        qc = origin @ origin - 1.0
        disc = qb * qb - qa * qc
        t = (-qb - np.sqrt(np.maximum(disc, 0.0))) / qa
        return np.where((disc >= 0.0) & (t > 0.0), t, np.inf)

    def normal_at(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normals at surface points ``[N, 3]`` (gradient of the implicit function)."""
        local = ((points - self.centre) @ self.axes) / self.radii**2
        n = local @ self.axes.T
        return n / np.linalg.norm(n, axis=-1, keepdims=True)


Primitive = Union[Capsule, Ellipsoid]


@dataclass
class Hits:
    """First hits of a set of rays: ``t`` (``inf`` = miss), ``index`` into the primitive list (-1 = miss),
    ``part`` id of the hit primitive (-1 = miss), ``depth`` (``inf`` = miss) and outward unit ``normal``
    (zero vector on a miss). Shapes: the ray array's shape without the last axis (``[..., 3]`` for normals)."""

    t: np.ndarray
    index: np.ndarray
    part: np.ndarray
    depth: np.ndarray
    normal: np.ndarray


def _finish(primitives: list[Primitive], dirs: np.ndarray, t: np.ndarray, index: np.ndarray) -> Hits:
    """Depth, part ids and normals for the winning primitive of every ray (normals computed per primitive on its
    own hit rays only)."""
    flat_index, flat_dirs = index.reshape(-1), dirs.reshape(-1, 3)
    hit = np.flatnonzero(flat_index >= 0)
    order = hit[np.argsort(flat_index[hit], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat_index[hit], minlength=len(primitives)))])
    points = t.reshape(-1)[order, None] * flat_dirs[order]
    normal = np.zeros_like(flat_dirs)
    for i, prim in enumerate(primitives):
        if bounds[i + 1] > bounds[i]:
            rows = order[bounds[i] : bounds[i + 1]]
            normal[rows] = prim.normal_at(points[bounds[i] : bounds[i + 1]])
    parts = np.array([p.part for p in primitives] + [-1], dtype=np.int32)
    depth = np.where(index >= 0, t * -dirs[..., 2], np.inf)
    return Hits(t=t, index=index, part=parts[index], depth=depth, normal=normal.reshape(dirs.shape))


def cast_rays(primitives: list[Primitive], dirs: np.ndarray) -> Hits:
    """First hits of arbitrary unit rays ``[..., 3]`` from the origin against all primitives (no culling)."""
    t = np.full(dirs.shape[:-1], np.inf)
    index = np.full(dirs.shape[:-1], -1, dtype=np.int64)
    for i, prim in enumerate(primitives):
        ti = prim.intersect(dirs)
        closer = ti < t
        t[closer] = ti[closer]
        index[closer] = i
    return _finish(primitives, dirs, t, index)


def cast_image(primitives: list[Primitive], intrinsics: Intrinsics) -> Hits:
    """First hits through every pixel centre (``[H, W]`` arrays), testing each primitive only inside the pixel box
    of its bounding sphere."""
    dirs = intrinsics.ray_directions()
    t = np.full(dirs.shape[:-1], np.inf)
    index = np.full(dirs.shape[:-1], -1, dtype=np.int64)
    for i, prim in enumerate(primitives):
        x0, x1, y0, y1 = intrinsics.sphere_pixel_box(*prim.bounding_sphere())
        if x0 >= x1 or y0 >= y1:
            continue
        ti = prim.intersect(dirs[y0:y1, x0:x1])
        t_box = t[y0:y1, x0:x1]
        closer = ti < t_box
        t_box[closer] = ti[closer]
        index[y0:y1, x0:x1][closer] = i
    return _finish(primitives, dirs, t, index)
