"""Retargeting: fit a driving pose sequence to the body of the reference person.

1. Alignment maps driving pixels into the reference canvas with one transform ``x -> s * x + t`` for the whole
   sequence, taken from the first frame where a driving person has a root (neck):
   ``"root"``: ``s`` = ratio of the summed lengths of the bones seen in both, the driving root lands on the
   reference root; ``"linear"``: least-squares fit of ``s`` and ``t`` over the joints seen in both (the global linear
   fit); ``"none"``: only the canvas change (stretch).
2. Per-bone scaling (``per_bone=True``) rebuilds each body from its root outwards: every bone keeps the driving
   direction and takes the reference length (bones the reference lacks keep their aligned driving length).
   Without it, bones keep their aligned driving lengths. Face and hands move rigidly with the nose and wrists.
3. Missing data, ``missing="repeat"``: a frame without the driving person repeats that person's previous result
   (nothing before its first appearance), and a joint missing in a frame takes its previous offset from its parent
   joint; ``"empty"``: both stay missing.
   A driving neck that is missing is placed between the shoulders when both are seen.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .schema import BODY_BONES, BODY_NAMES, NECK, NOSE, WRISTS
from .sequence import PoseError, PoseSequence

Alignment = Literal["root", "linear", "none"]
MissingPolicy = Literal["repeat", "empty"]
_SHOULDERS = (BODY_NAMES.index("right_shoulder"), BODY_NAMES.index("left_shoulder"))
_EPS = 1e-9


def bone_lengths(body: np.ndarray) -> np.ndarray:
    """``[..., 18, 3]`` -> ``[..., 17]`` lengths of BODY_BONES (NaN where an end is missing)."""
    a, b = (np.array(index) for index in zip(*BODY_BONES))
    length = np.linalg.norm(body[..., b, :2] - body[..., a, :2], axis=-1)
    return np.where((body[..., a, 2] > 0) & (body[..., b, 2] > 0), length, np.nan)


def _with_root(body: np.ndarray) -> np.ndarray:
    """A copy of ``[18, 3]`` with the neck placed between the shoulders when it is missing and both are seen."""
    body = body.copy()
    right, left = body[list(_SHOULDERS)]
    if body[NECK, 2] <= 0 and right[2] > 0 and left[2] > 0:
        body[NECK] = [*(right[:2] + left[:2]) / 2, min(right[2], left[2])]
    return body


def _alignment(driving: np.ndarray, reference: np.ndarray, mode: Alignment, canvas_scale: np.ndarray):
    """(scale ``[2]``, offset ``[2]``) mapping driving pixels of ``driving [18, 3]`` onto ``reference [18, 3]``."""
    if mode == "none":
        return canvas_scale, np.zeros(2)
    if mode == "root":
        shared = ~np.isnan(bone_lengths(driving) + bone_lengths(reference))
        drv_size, ref_size = bone_lengths(driving)[shared].sum(), bone_lengths(reference)[shared].sum()
        scale = ref_size / drv_size if drv_size > _EPS else float(canvas_scale.mean())
        return np.full(2, scale), reference[NECK, :2] - scale * driving[NECK, :2]
    common = (driving[:, 2] > 0) & (reference[:, 2] > 0)
    if common.sum() < 2:
        raise PoseError("the global linear fit needs at least 2 joints seen in both poses; use alignment 'root'")
    drv, ref = driving[common, :2], reference[common, :2]
    drv_c, ref_c = drv - drv.mean(axis=0), ref - ref.mean(axis=0)
    spread = (drv_c**2).sum()
    scale = (drv_c * ref_c).sum() / spread if spread > _EPS else float(canvas_scale.mean())
    return np.full(2, scale), ref.mean(axis=0) - scale * drv.mean(axis=0)


def _rebuild_body(aligned: np.ndarray, previous: np.ndarray | None, lengths: np.ndarray | None, repeat: bool):
    """Place every bone from the root outwards; returns the new ``[18, 3]`` body."""
    new = np.zeros_like(aligned)
    new[NECK] = aligned[NECK]
    for bone, (a, b) in enumerate(BODY_BONES):
        if new[a, 2] <= 0:
            new[b] = aligned[b]  # no placed parent: keep the aligned point (if any)
            continue
        if aligned[b, 2] > 0 and aligned[a, 2] > 0:
            step = aligned[b, :2] - aligned[a, :2]
            norm = np.linalg.norm(step)
            if lengths is not None and not np.isnan(lengths[bone]):
                step = step / norm * lengths[bone] if norm > _EPS else np.array([0.0, lengths[bone]])
            new[b] = [*(new[a, :2] + step), aligned[b, 2]]
        elif aligned[b, 2] > 0:
            new[b] = aligned[b]
        elif repeat and previous is not None and previous[a, 2] > 0 and previous[b, 2] > 0:
            new[b] = [*(new[a, :2] + previous[b, :2] - previous[a, :2]), previous[b, 2]]
    return new


def _shift(points: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Move the seen points of ``[..., 3]`` by ``offset [2]``."""
    moved = points.copy()
    moved[..., :2] += np.where(points[..., 2:] > 0, offset, 0.0)
    return moved


def retarget(
    driving: PoseSequence,
    reference: PoseSequence,
    *,
    reference_frame: int = 0,
    reference_person: int = 0,
    per_bone: bool = True,
    alignment: Alignment = "root",
    missing: MissingPolicy = "repeat",
) -> PoseSequence:
    """Fit ``driving`` to the body of one person of ``reference``; the result lives on the reference canvas."""
    if missing not in ("repeat", "empty"):
        raise PoseError(f"missing must be 'repeat' or 'empty', got {missing!r}")
    if alignment not in ("root", "linear", "none"):
        raise PoseError(f"alignment must be 'root', 'linear' or 'none', got {alignment!r}")
    if not (0 <= reference_frame < reference.num_frames and 0 <= reference_person < reference.num_people):
        raise PoseError(
            f"reference frame {reference_frame} / person {reference_person} does not exist: the reference has "
            f"{reference.num_frames} frame(s) with up to {reference.num_people} person(s)"
        )
    ref_body = _with_root(reference.body[reference_frame, reference_person])
    if ref_body[NECK, 2] <= 0:
        raise PoseError("the reference person has no neck (nor both shoulders); pick a reference pose with a torso")
    lengths = bone_lengths(ref_body) if per_bone else None
    result = PoseSequence.empty(driving.num_frames, driving.num_people, reference.canvas)
    result.people[:] = False
    bodies = np.array([_with_root(b) for b in driving.body.reshape(-1, *driving.body.shape[2:])])
    bodies = bodies.reshape(driving.body.shape)
    anchor = next((b for b in bodies.reshape(-1, *bodies.shape[2:]) if b[NECK, 2] > 0), None)
    if anchor is None:
        return result  # no driving person in any frame: nothing to retarget
    canvas_scale = np.array(reference.canvas) / np.array(driving.canvas)
    transform = _alignment(anchor, ref_body, alignment, canvas_scale)
    for p in range(driving.num_people):
        previous: int | None = None
        for f in range(driving.num_frames):
            if driving.people[f, p] and bodies[f, p, NECK, 2] > 0:
                _retarget_person(driving, bodies, result, f, p, previous, transform, lengths, missing == "repeat")
                previous = f
            elif missing == "repeat" and previous is not None:
                for part in result.parts().values():
                    part[f, p] = part[previous, p]
                result.people[f, p] = True
    return result


def _apply(points: np.ndarray, transform: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``x -> scale * x + offset`` on the seen points of ``[..., 3]``; unseen points become ``0,0,0``."""
    scale, offset = transform
    seen = points[..., 2:] > 0
    return np.where(seen, np.concatenate([points[..., :2] * scale + offset, points[..., 2:]], axis=-1), 0.0)


def _retarget_person(
    driving: PoseSequence,
    bodies: np.ndarray,
    result: PoseSequence,
    f: int,
    p: int,
    previous: int | None,
    transform: tuple[np.ndarray, np.ndarray],
    lengths: np.ndarray | None,
    repeat: bool,
) -> None:
    """Write frame ``f`` of person ``p`` into ``result`` (``previous``: that person's last retargeted frame)."""
    aligned = _apply(bodies[f, p], transform)
    body = _rebuild_body(aligned, result.body[previous, p] if previous is not None else None, lengths, repeat)
    head = NOSE if aligned[NOSE, 2] > 0 and body[NOSE, 2] > 0 else NECK
    result.body[f, p] = body
    result.face[f, p] = _shift(_apply(driving.face[f, p], transform), body[head, :2] - aligned[head, :2])
    for h, wrist in enumerate(WRISTS):
        moved = body[wrist, :2] - aligned[wrist, :2] if aligned[wrist, 2] > 0 and body[wrist, 2] > 0 else 0.0
        result.hands[f, p, h] = _shift(_apply(driving.hands[f, p, h], transform), moved)
    result.people[f, p] = True
