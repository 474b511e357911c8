"""``PoseSequence``: frames x people x keypoints, as numpy arrays in pixel coordinates of one canvas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import InputError
from .schema import NUM_BODY, NUM_FACE, NUM_HAND

MAX_PEOPLE = 64
MAX_CANVAS_SIDE = 16384


class PoseError(InputError):
    """Bad pose input or arguments; the message names the problem and how to fix it."""


@dataclass(frozen=True, eq=False)
class PoseSequence:
    """A pose sequence; every point is ``(x, y, confidence)`` in pixels of ``canvas`` (origin top-left).

    Arrays (float64): ``body [F, P, 18, 3]``, ``face [F, P, 70, 3]``, ``hands [F, P, 2, 21, 3]`` (hand 0 is the
    person's left, 1 the right). ``people [F, P]`` (bool) marks the person slots used in each frame: frames may hold
    different numbers of people, unused slots are all zeros. (POSE_KEYPOINT lists a frame's people without gaps:
    writing drops unused slots, so a person keeps its slot only while the slots before it are used.) A missing point
    has confidence 0 (its x, y are kept, so a point hidden in the editor keeps its place); a missing part is all
    zeros. ``canvas`` is ``(width, height)``.
    """

    body: np.ndarray
    face: np.ndarray
    hands: np.ndarray
    canvas: tuple[int, int]
    people: np.ndarray

    def __post_init__(self) -> None:
        frames, persons = self.people.shape if self.people.ndim == 2 else (-1, -1)
        expected = {
            "people": (frames, persons),
            "body": (frames, persons, NUM_BODY, 3),
            "face": (frames, persons, NUM_FACE, 3),
            "hands": (frames, persons, 2, NUM_HAND, 3),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise PoseError(f"PoseSequence.{name} must have shape {shape}, got {getattr(self, name).shape}")
        check_canvas(self.canvas)
        if persons > MAX_PEOPLE:
            raise PoseError(f"{persons} people in one frame; at most {MAX_PEOPLE} are accepted (split the sequence)")

    @classmethod
    def empty(cls, num_frames: int, num_people: int, canvas: tuple[int, int]) -> PoseSequence:
        """All points missing; ``num_people`` slots used in every frame."""
        shape = (num_frames, num_people)
        return cls(
            body=np.zeros((*shape, NUM_BODY, 3)),
            face=np.zeros((*shape, NUM_FACE, 3)),
            hands=np.zeros((*shape, 2, NUM_HAND, 3)),
            canvas=canvas,
            people=np.ones(shape, dtype=bool),
        )

    @property
    def num_frames(self) -> int:
        return self.people.shape[0]

    @property
    def num_people(self) -> int:
        """Person slots (the most people in any frame)."""
        return self.people.shape[1]

    def parts(self) -> dict[str, np.ndarray]:
        """The keypoint arrays by name, for code that treats all parts alike."""
        return {"body": self.body, "face": self.face, "hands": self.hands}

    def replace(self, **changes) -> PoseSequence:
        """A copy with some fields replaced (arrays are copied, so the result never aliases ``self``)."""
        fields = {**self.parts(), "canvas": self.canvas, "people": self.people, **changes}
        return PoseSequence(**{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in fields.items()})

    def points(self) -> np.ndarray:
        """All points of a person side by side: ``[F, P, 18 + 70 + 42, 3]`` (body, face, left hand, right hand)."""
        hands = self.hands.reshape(*self.hands.shape[:2], 2 * NUM_HAND, 3)
        return np.concatenate([self.body, self.face, hands], axis=2)

    def with_points(self, points: np.ndarray, people: np.ndarray | None = None) -> PoseSequence:
        """The inverse of ``points()``: a sequence on the same canvas from ``[F, P, 130, 3]`` (and a people mask)."""
        body, face, hands = np.split(points, [NUM_BODY, NUM_BODY + NUM_FACE], axis=2)
        return PoseSequence(
            body=body.copy(), face=face.copy(), hands=hands.reshape(*points.shape[:2], 2, NUM_HAND, 3),
            canvas=self.canvas, people=self.people.copy() if people is None else people,
        )

    def frames(self, indices) -> PoseSequence:
        """The frames at ``indices`` (a list, array or slice), in that order."""
        return PoseSequence(
            body=self.body[indices], face=self.face[indices], hands=self.hands[indices],
            canvas=self.canvas, people=self.people[indices],
        )

    def rescaled(self, canvas: tuple[int, int]) -> PoseSequence:
        """The same poses on another canvas, coordinates scaled per axis (stretch, like normalised coordinates)."""
        check_canvas(canvas)
        scale = np.array([canvas[0] / self.canvas[0], canvas[1] / self.canvas[1], 1.0])
        return self.replace(**{name: part * scale for name, part in self.parts().items()}, canvas=tuple(canvas))

    def equals(self, other: PoseSequence, atol: float = 0.0) -> bool:
        """Same canvas, people and every point (within ``atol``)."""
        return (
            self.canvas == other.canvas
            and np.array_equal(self.people, other.people)
            and all(
                np.allclose(a, b, rtol=0.0, atol=atol)
                for a, b in zip(self.parts().values(), other.parts().values())
            )
        )


def check_canvas(canvas: tuple[int, int]) -> None:
    """Raise a PoseError unless ``canvas`` is ``(width, height)`` with positive sides up to MAX_CANVAS_SIDE."""
    valid = isinstance(canvas, (tuple, list)) and len(canvas) == 2
    if not valid or not all(isinstance(v, (int, np.integer)) and 0 < v <= MAX_CANVAS_SIDE for v in canvas):
        raise PoseError(
            f"canvas size must be (width, height), positive whole numbers up to {MAX_CANVAS_SIDE}, got {canvas!r}"
        )
