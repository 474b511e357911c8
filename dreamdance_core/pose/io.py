"""Reading and writing poses: ComfyUI's ``POSE_KEYPOINT`` (comfyui_controlnet_aux) and OpenPose JSON files.

``POSE_KEYPOINT`` is a list of frames ``{"people": [person, ...], "canvas_width": W, "canvas_height": H}``; a person
is ``{"pose_keypoints_2d": [x, y, c, ...], "face_keypoints_2d", "hand_left_keypoints_2d",
"hand_right_keypoints_2d"}``. OpenPose program files hold one such frame without a canvas size (plus ``"version"``
and ``person_id``), and their body is usually BODY_25.

Reading accepts:
- pixel or normalised (0..1) coordinates, detected per frame: a frame whose points (those not ``0,0,0``) all lie in
  0..1 is normalised. (A pixel pose squeezed into the top-left pixel would be misread; it carries no pose anyway.)
- body of 18 points, or BODY_25 (mapped to the 18-point body; foot and mid-hip points dropped); face of 70 points,
  or DWPose's 68 (the two pupils then missing); hands of 21 points; a missing part as ``null``, ``[]`` or absent.

Documented clean-up on read: a point with a non-finite value (NaN, inf) becomes ``0,0,0``; a negative confidence
becomes 0; frames with another canvas size than the first are rescaled onto the first frame's canvas. Anything else
malformed (not JSON, wrong list lengths, non-numbers, canvas sizes <= 0, more than MAX_PEOPLE people) raises a
``PoseError`` naming the frame, the person and the field.

Writing produces ONE form: pixel coordinates with the canvas size in every frame, a part whose values are all zero
written as ``null`` (``[]`` in OpenPose files, as the OpenPose program does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .schema import BODY25_TO_BODY18, NUM_BODY, NUM_BODY25, NUM_FACE, NUM_HAND
from .sequence import MAX_PEOPLE, PoseError, PoseSequence, check_canvas

BODY_KEY = "pose_keypoints_2d"
FACE_KEY = "face_keypoints_2d"
HAND_KEYS = ("hand_left_keypoints_2d", "hand_right_keypoints_2d")  # same order as PoseSequence.hands axis 2
OPENPOSE_VERSION = 1.3
_DWPOSE_FACE = 68
_TOO_DEEP = ("{source} is nested too deeply to be poses (lists inside lists thousands of levels deep); give a "
             "POSE_KEYPOINT list of frames or an OpenPose file")


# ----------------------------------------------------------------------------------------------------------- reading
def _points(values, accepted: dict[int, Sequence[int] | None], where: str) -> np.ndarray:
    """A flat ``[x, y, c, ...]`` list -> ``[n, 3]`` float array; ``accepted`` maps point counts to index maps.

    An index map ``m`` picks ``points[m]``; a ``None`` map keeps the points as they are (padded with missing points
    up to the largest accepted count).
    """
    target = max(len(m) if m is not None else n for n, m in accepted.items())
    if values is None or (isinstance(values, list) and len(values) == 0):
        return np.zeros((target, 3))
    if not isinstance(values, list):
        raise PoseError(f"{where}: expected a flat list [x, y, confidence, ...] or null, got {type(values).__name__}")
    counts = " or ".join(f"{3 * n}" for n in accepted)
    if len(values) % 3 or len(values) // 3 not in accepted:
        raise PoseError(f"{where}: expected {counts} numbers (x, y, confidence per point), got {len(values)}")
    odd = next((v for v in values if not _is_number(v)), _NOTHING)  # strings, booleans, lists, null: refused
    if odd is not _NOTHING:
        raise PoseError(f"{where}: every value must be a number, got {odd!r:.40}; write plain numbers")
    try:
        points = np.array(values, dtype=np.float64).reshape(-1, 3)
    except OverflowError:  # a whole number too large for a float (1e400 written out as digits)
        raise PoseError(f"{where}: a coordinate is too large to be a number of pixels; fix the file") from None
    points[~np.isfinite(points).all(axis=1)] = 0.0
    points[:, 2] = np.maximum(points[:, 2], 0.0)
    index_map = accepted[len(points)]
    if index_map is not None:
        return points[list(index_map)]
    return np.concatenate([points, np.zeros((target - len(points), 3))])


_NOTHING = object()


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


_BODY_COUNTS = {NUM_BODY: None, NUM_BODY25: BODY25_TO_BODY18}
_FACE_COUNTS = {NUM_FACE: None, _DWPOSE_FACE: None}
_HAND_COUNTS = {NUM_HAND: None}


def _read_person(person, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(person, dict):
        raise PoseError(f"{where}: a person must be a JSON object with keys like {BODY_KEY!r}, got {person!r:.80}")
    body = _points(person.get(BODY_KEY), _BODY_COUNTS, f"{where} {BODY_KEY}")
    face = _points(person.get(FACE_KEY), _FACE_COUNTS, f"{where} {FACE_KEY}")
    hands = np.stack([_points(person.get(key), _HAND_COUNTS, f"{where} {key}") for key in HAND_KEYS])
    return body, face, hands


def _frame_canvas(frame: dict, where: str) -> tuple[int, int] | None:
    width, height = frame.get("canvas_width"), frame.get("canvas_height")
    if width is None and height is None:
        return None
    if isinstance(width, bool) or isinstance(height, bool):  # true would be read as a 1x1 canvas
        raise PoseError(f"{where}: canvas_width and canvas_height must be numbers of pixels, got {width!r}, {height!r}")
    try:
        canvas = (int(width), int(height))
    except (TypeError, ValueError, OverflowError):
        raise PoseError(f"{where}: canvas_width and canvas_height must be numbers, got {width!r}, {height!r}") from None
    if canvas != (width, height):
        raise PoseError(f"{where}: canvas_width and canvas_height must be whole numbers, got {width!r}, {height!r}")
    try:
        check_canvas(canvas)
    except PoseError as error:
        raise PoseError(f"{where}: {error}") from None
    return canvas


def _is_normalised(points: Iterable[np.ndarray]) -> bool:
    """True when every point that is not ``0,0,0`` has both coordinates in 0..1 (and there is at least one)."""
    used = np.concatenate([np.zeros((0, 3))] + [p.reshape(-1, 3) for p in points])
    used = used[np.any(used != 0.0, axis=1), :2]
    return used.size > 0 and bool(np.all((used >= 0.0) & (used <= 1.0)))


def from_pose_keypoint(frames, canvas: tuple[int, int] | None = None) -> PoseSequence:
    """``POSE_KEYPOINT`` (a list of frame dicts, or one frame dict) -> PoseSequence in pixels.

    ``canvas`` is used for frames that carry no canvas size (OpenPose files). When there is none, such frames take
    the first frame's canvas that is given, else the smallest canvas holding the points of all of them; normalised
    frames without any canvas raise a PoseError asking for the size.
    """
    if isinstance(frames, dict):
        frames = [frames]
    if not isinstance(frames, list) or not frames:
        raise PoseError(f"POSE_KEYPOINT must be a non-empty list of frames, got {type(frames).__name__}")
    if canvas is not None:
        check_canvas(canvas)
    parsed = [_read_frame(frame, f"frame {i}") for i, frame in enumerate(frames)]
    fallback = canvas or next((c for _, c, _ in parsed if c is not None), None) or _extent_canvas(parsed)
    for f, (_, frame_canvas, normalised) in enumerate(parsed):
        if normalised and (frame_canvas or fallback) is None:
            raise PoseError(f"frame {f}: normalised coordinates but no canvas size; give the canvas width and height")
    target = parsed[0][1] or fallback
    if target is None:
        raise PoseError("no canvas size in the frames and no points to infer it from; give the canvas width and height")
    num_people = max(len(people) for people, _, _ in parsed)
    seq = PoseSequence.empty(len(parsed), num_people, target)
    seq.people[:] = False
    for f, (people, frame_canvas, normalised) in enumerate(parsed):
        source = (1.0, 1.0) if normalised else (frame_canvas or fallback)
        scale = np.array([seq.canvas[0] / source[0], seq.canvas[1] / source[1], 1.0])
        for p, (body, face, hands) in enumerate(people):
            seq.people[f, p] = True
            seq.body[f, p], seq.face[f, p], seq.hands[f, p] = body * scale, face * scale, hands * scale
    return seq


def _read_frame(frame, where: str):
    """One frame -> (list of (body, face, hands) as read, its canvas or None, whether it is normalised)."""
    if not isinstance(frame, dict):
        raise PoseError(f"{where}: a frame must be a JSON object with a 'people' list, got {type(frame).__name__}")
    people = frame.get("people", [])
    if not isinstance(people, list):
        raise PoseError(f"{where}: 'people' must be a list, got {type(people).__name__}")
    if len(people) > MAX_PEOPLE:
        raise PoseError(
            f"{where}: {len(people)} people; at most {MAX_PEOPLE} are accepted (remove spurious detections)"
        )
    persons = [_read_person(person, f"{where} person {p}") for p, person in enumerate(people)]
    return persons, _frame_canvas(frame, where), _is_normalised(part for person in persons for part in person)


def _extent_canvas(parsed) -> tuple[int, int] | None:
    """The smallest canvas holding every point of the pixel frames without a canvas size (None if there is none)."""
    points = [
        part.reshape(-1, 3)
        for people, frame_canvas, normalised in parsed
        if frame_canvas is None and not normalised
        for person in people
        for part in person
    ]
    if not points:
        return None
    extent = np.concatenate(points)[:, :2].max(axis=0)
    canvas = tuple(max(1, math.ceil(float(v)) + 1) for v in extent)
    try:
        check_canvas(canvas)
    except PoseError as error:
        raise PoseError(f"frames without a canvas size: {error}; give the canvas width and height") from None
    return canvas


def parse_pose_json(text: str, canvas: tuple[int, int] | None = None) -> PoseSequence:
    """JSON text of a POSE_KEYPOINT list, one frame, or an OpenPose file -> PoseSequence."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as error:
        raise PoseError(
            f"pose text is not valid JSON ({error}); paste a POSE_KEYPOINT list or an OpenPose file"
        ) from None
    except RecursionError:
        raise PoseError(_TOO_DEEP.format(source="pose text")) from None
    return from_pose_keypoint(data, canvas)


def load_pose_file(path: str | Path, canvas: tuple[int, int] | None = None) -> PoseSequence:
    """A ``.json`` file (POSE_KEYPOINT list, one frame, or an OpenPose file) or a folder of per-frame JSON files.

    Per-frame files are taken in name order (OpenPose numbers them ``<name>_000000000000_keypoints.json``).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise PoseError(f"no .json files in folder {path}")
        frames = [_load_json(file) for file in files]
        if any(not isinstance(frame, dict) for frame in frames):
            raise PoseError(f"folder {path}: every file must hold one frame (a JSON object) to form a sequence")
        return from_pose_keypoint(frames, canvas)
    return from_pose_keypoint(_load_json(path), canvas)


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoseError(f"pose file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PoseError(f"pose file {path} is not valid JSON ({error})") from None
    except RecursionError:
        raise PoseError(_TOO_DEEP.format(source=f"pose file {path}")) from None
    except IsADirectoryError:
        raise PoseError(
            f"pose file {path} is a folder; give a .json file or a folder of per-frame .json files"
        ) from None
    except OSError as error:
        raise PoseError(f"pose file {path} cannot be read ({error.strerror or error}); check the path") from None


# ----------------------------------------------------------------------------------------------------------- writing
def _flat(points: np.ndarray, missing):
    """``[n, 3]`` -> flat list of floats, or ``missing`` when every value is zero."""
    return [float(v) for v in points.reshape(-1)] if np.any(points) else missing


def _person_dict(seq: PoseSequence, f: int, p: int, missing) -> dict:
    person = {BODY_KEY: _flat(seq.body[f, p], missing), FACE_KEY: _flat(seq.face[f, p], missing)}
    person.update({key: _flat(seq.hands[f, p, h], missing) for h, key in enumerate(HAND_KEYS)})
    return person


def to_pose_keypoint(seq: PoseSequence) -> list[dict]:
    """PoseSequence -> ``POSE_KEYPOINT`` in pixel coordinates (canvas size in every frame, all-zero parts null)."""
    width, height = seq.canvas
    return [
        {
            "people": [_person_dict(seq, f, p, None) for p in range(seq.num_people) if seq.people[f, p]],
            "canvas_width": int(width),
            "canvas_height": int(height),
        }
        for f in range(seq.num_frames)
    ]


def to_openpose_frames(seq: PoseSequence) -> list[dict]:
    """PoseSequence -> OpenPose JSON objects (18-point body, ``[]`` for a missing part), with the canvas size added."""
    frames = []
    for f in range(seq.num_frames):
        people = [
            {"person_id": [-1], **_person_dict(seq, f, p, [])} for p in range(seq.num_people) if seq.people[f, p]
        ]
        width, height = seq.canvas
        frames.append({"version": OPENPOSE_VERSION, "people": people, "canvas_width": width, "canvas_height": height})
    return frames


def write_openpose_files(seq: PoseSequence, folder: str | Path, prefix: str = "pose") -> list[Path]:
    """One OpenPose file per frame, ``<prefix>_<frame:012d>_keypoints.json`` as the OpenPose program names them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f, frame in enumerate(to_openpose_frames(seq)):
        path = folder / f"{prefix}_{f:012d}_keypoints.json"
        path.write_text(json.dumps(frame), encoding="utf-8")
        paths.append(path)
    return paths


def write_pose_file(seq: PoseSequence, path: str | Path) -> Path:
    """The whole sequence as one POSE_KEYPOINT JSON file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_pose_keypoint(seq)), encoding="utf-8")
    return path
