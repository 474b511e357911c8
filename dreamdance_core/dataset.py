"""The DreamDance dataset layout: per video frames, pose keypoints, depth and normal maps (the TikTok-Dance5K kind).

Layout (the contract between data preparation, the synthetic generator and ``train/``)::

    <root>/dataset.json            {"format": "dreamdance-dataset", "version": 1, "videos": ["<id>", ...]}
    <root>/<id>/meta.json          {"num_frames": F, "width": W, "height": H, "fps": fps, "source": "synthetic"|...}
    <root>/<id>/frames/000000.png  RGB, 8 bit
    <root>/<id>/depth/000000.png   depth image, 16-bit grey (below)
    <root>/<id>/normal/000000.png  normal image, 8-bit RGB (below)
    <root>/<id>/mask/000000.png    optional foreground mask, 8-bit grey 0 / 255
    <root>/<id>/pose.json          POSE_KEYPOINT list, exactly F entries
    <root>/<id>/<name>/...         optional maps of more control modalities, as their codecs store them

Frame files are numbered ``000000.png`` .. ``F-1`` (six digits) in every folder; every image is W x H. meta.json
may carry more keys (the synthetic generator records its character / motion / scene seeds and the motion style).

- **Depth image**: per frame, over the foreground, ``d_norm = (d_max - d) / (d_max - d_min)`` in [0, 1] (1 = the
  nearest point, 0 = the farthest foreground point), background 0; stored as ``round(d_norm * 65535)``. It is
  relative (a monocular estimator's output fits it as well as exact depth). See :func:`depth_to_unit`.
- **Normal image**: camera-space unit normals, x right, y up, z toward the camera (OpenGL), stored as
  ``round((n * 0.5 + 0.5) * 255)``; background is the zero vector, i.e. (128, 128, 128).
- **pose.json**: the ``POSE_KEYPOINT`` format of comfyui_controlnet_aux, one dict per frame
  ``{"people": [{"pose_keypoints_2d": [x, y, c] * 18, "face_keypoints_2d": null, "hand_left_keypoints_2d": null,
  "hand_right_keypoints_2d": null}], "canvas_width": W, "canvas_height": H}`` with OpenPose COCO-18 body points in
  **pixel** coordinates of the frame (origin at the top-left corner of the top-left pixel); a missing point is
  ``0, 0, 0``; a frame with no person has ``"people": []``. Readers use the first person.

Each map has a codec (:class:`MapCodec`: :data:`FRAMES`, :data:`DEPTH`, :data:`NORMAL`, :data:`POSE`, :data:`MASK`;
more in :mod:`dreamdance_core.modalities`, which registers the control modalities) that checks, writes, reads back,
validates and turns it into a control map. Reading returns model-ready arrays (:class:`Clip`) and can resize to
another W x H: the frames are scaled to cover the target and centre-cropped, and the keypoints get the same scale
and shift. :class:`ClipDataset` serves
fixed-length clips as torch tensors in -1..1. :func:`validate_dataset` reports broken items with their paths;
``policy="skip"`` drops broken videos with a warning, ``policy="error"`` stops. A clip that fails to read while
training is handled by the same policy: never silently trained on.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import cv2
import numpy as np

from .validation import InputError

FORMAT_NAME = "dreamdance-dataset"
FORMAT_VERSION = 1
NUM_BODY_KEYPOINTS = 18
Policy = Literal["skip", "error"]


class DatasetError(InputError):
    """A dataset folder or item is broken or arguments are invalid; the message names the path and the fix.

    ``kind`` names the problem where it is one of :func:`validate_dataset`'s kinds; ``report`` is the validation
    report when a policy refused a dataset."""

    def __init__(self, message: str, report: "ValidationReport | None" = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.report = report
        self.kind = kind


# --- on-disk encodings --------------------------------------------------------------------------------------------


def depth_to_unit(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Exact depth ``[..., H, W]`` (metres) -> per-frame relative depth image in [0, 1], 1 = nearest, background 0.

    The normalisation runs over the last two axes. A frame whose foreground has a single depth maps it to 1.
    Same convention as :func:`dreamdance_core.geometry.depth_to_image` (which gives ``2 * unit - 1``).
    """
    depth = np.asarray(depth, dtype=np.float64)
    fg_depth = np.where(mask, depth, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-background frames: nanmin of an empty slice
        near = np.nanmin(fg_depth, axis=(-2, -1), keepdims=True)
        far = np.nanmax(fg_depth, axis=(-2, -1), keepdims=True)
    flat = far - near <= 1e-6
    unit = np.where(flat, 1.0, (far - fg_depth) / np.where(flat, 1.0, far - near))
    return np.where(mask, np.nan_to_num(unit, nan=0.0), 0.0).astype(np.float32)


def encode_depth_png(unit_depth: np.ndarray) -> np.ndarray:
    """Relative depth in [0, 1] ``[H, W]`` -> uint16 image."""
    return np.round(np.clip(unit_depth, 0.0, 1.0) * 65535.0).astype(np.uint16)


def decode_depth_png(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 65535.0


def encode_normal_png(normal: np.ndarray) -> np.ndarray:
    """Unit normals ``[H, W, 3]`` (zero on the background) -> uint8 RGB image."""
    return np.round((np.clip(normal, -1.0, 1.0) * 0.5 + 0.5) * 255.0).astype(np.uint8)


def decode_normal_png(image: np.ndarray) -> np.ndarray:
    """uint8 RGB normal image -> float32 vectors in [-1, 1] (not renormalised; background ~ 0)."""
    return image.astype(np.float32) / 127.5 - 1.0


# --- paths and small I/O helpers ----------------------------------------------------------------------------------


def frame_path(video_dir: Path, modality: str, index: int) -> Path:
    return Path(video_dir) / modality / f"{index:06d}.png"


def _write_png(path: Path, image: np.ndarray) -> None:
    if image.ndim == 3:
        image = np.ascontiguousarray(image[..., ::-1])  # RGB -> OpenCV's BGR
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise DatasetError(f"could not write {path}; check that the folder is writable and the disk not full")


def _read_png(path: Path, channels: int, dtype: type) -> np.ndarray:
    """Read an image with exactly ``channels`` channels (1 -> [H, W]) and ``dtype``; errors name the path."""
    if not path.is_file():
        raise DatasetError(f"missing frame: {path}", kind="missing_frame")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"unreadable image: {path}; re-export it as PNG", kind="unreadable_image")
    got_channels = 1 if image.ndim == 2 else image.shape[2]
    if got_channels != channels or image.dtype != dtype:
        raise DatasetError(
            f"wrong image format: {path} has {got_channels} channel(s) of {image.dtype}, expected {channels} of "
            f"{np.dtype(dtype).name} (see the layout in dreamdance_core.dataset)",
            kind="wrong_format",
        )
    return image[..., ::-1] if channels == 3 else image


def read_frame(
    video_dir: Path, modality: str, index: int, size: tuple[int, int], image_format: tuple[int, type] | None = None
) -> np.ndarray:
    """One stored image of the folder ``modality`` (``frames``, ``depth``, ``normal``, ``mask``, or another codec's
    folder with its ``image_format`` = (channels, dtype)), checked to be ``size`` (W, H)."""
    path = frame_path(video_dir, modality, index)
    image = _read_png(path, *(image_format or _FORMATS[modality]))
    if image.shape[1::-1] != tuple(size):
        raise DatasetError(
            f"size mismatch: {path} is {image.shape[1]}x{image.shape[0]}, meta.json says {size[0]}x{size[1]} (W x H)",
            kind="size_mismatch",
        )
    return image


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"unreadable JSON: {path} ({exc})") from None


# --- codecs: how each map is stored in a video folder and read back -----------------------------------------------


@dataclass(frozen=True)
class ResizePlan:
    """Stored frames (``source`` W x H) -> output frames (``output``): scale to cover (``scaled``, per-axis
    ``scale``) and centre-crop at ``crop`` (x, y)."""

    source: tuple[int, int]
    output: tuple[int, int]
    scaled: tuple[int, int]
    scale: tuple[float, float]
    crop: tuple[int, int]

    @classmethod
    def between(cls, source: tuple[int, int], output: tuple[int, int]) -> "ResizePlan":
        scaled, sx, sy, cx, cy = _resize_plan(source, output)
        return cls(tuple(source), tuple(output), scaled, (sx, sy), (cx, cy))


class MapCodec:
    """How one per-frame map is stored in a video folder and read back, and how it becomes a control map.

    *Values* are what an estimator or the synthetic renderer produces and what :meth:`read` returns (relative depth
    in [0, 1], unit normals, pixel keypoints, ...); :meth:`to_map` turns values at the output size into the
    controller's input, float32 ``[F, H, W, 3]`` in -1..1. ``where`` names the folder or file in the video folder.
    The codecs of the control modalities are registered in :mod:`dreamdance_core.modalities`."""

    where: str

    def check(self, values: Any, num_frames: int, size: tuple[int, int]) -> Any:
        """``values`` of a whole video, checked against its frame count and size (W, H); a :class:`DatasetError`
        names the expected shape."""
        raise NotImplementedError

    def write(self, video_dir: Path, values: Any) -> None:
        """Store checked values of a whole video."""
        raise NotImplementedError

    def present(self, video_dir: Path) -> bool:
        return (Path(video_dir) / self.where).exists()

    def read(self, video_dir: Path, indices: np.ndarray, plan: ResizePlan) -> np.ndarray:
        """Values of frames ``indices``, resized by ``plan`` (errors name the broken file)."""
        raise NotImplementedError

    def problems(self, video_dir: Path, num_frames: int, size: tuple[int, int], decode: bool) -> list[tuple]:
        """What is broken in this map of one video: ``(kind, path, message)`` (kinds of :func:`validate_dataset`)."""
        raise NotImplementedError

    def to_map(self, values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Values at the output ``size`` (W, H) -> control map float32 ``[F, H, W, 3]`` in -1..1."""
        raise NotImplementedError


@dataclass(frozen=True)
class ImageCodec(MapCodec):
    """A map stored as one PNG per frame, ``<video>/<where>/000000.png``, of ``channels`` (1 or 3) of ``dtype``.

    ``encode`` turns one frame's values into the stored image, ``decode`` stored images ``[F, H, W(, C)]`` back into
    values, ``control`` values ``[F, H, W(, C)]`` into the control map ``[F, H, W, 3]`` in -1..1. Values of a video
    have the shape ``[F, H, W]`` (one channel) or ``[F, H, W, channels]``. ``nearest``: resize without blending
    (masks, labels)."""

    where: str
    channels: int
    dtype: type
    encode: Callable[[np.ndarray], np.ndarray]
    decode: Callable[[np.ndarray], np.ndarray]
    control: Callable[[np.ndarray], np.ndarray] | None = None
    nearest: bool = False

    def check(self, values: Any, num_frames: int, size: tuple[int, int]) -> np.ndarray:
        shape = (num_frames, size[1], size[0]) + (() if self.channels == 1 else (self.channels,))
        if np.shape(values) != shape:
            raise DatasetError(f"{self.where} must have shape {shape} to match rgb, got {np.shape(values)}")
        values = np.asarray(values)
        if values.dtype.kind == "f":
            finite = np.isfinite(values).reshape(num_frames, -1).all(axis=1)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                raise DatasetError(
                    f"{self.where} frame {int(bad[0])} holds NaN or infinite values ({len(bad)} frame(s) in all, e.g. "
                    f"{[int(b) for b in bad[:5]]}); the estimator failed on them - fix or replace the estimator, or "
                    "leave this video out"
                )
        return values

    def write(self, video_dir: Path, values: np.ndarray) -> None:
        (Path(video_dir) / self.where).mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(values):
            _write_png(frame_path(video_dir, self.where, i), self.encode(frame))

    def read(self, video_dir: Path, indices: np.ndarray, plan: ResizePlan) -> np.ndarray:
        image_format = (self.channels, self.dtype)
        images = [
            _resize(read_frame(video_dir, self.where, int(i), plan.source, image_format), plan.scaled, plan.crop,
                    plan.output, self.nearest)
            for i in indices
        ]
        return self.decode(np.stack(images))

    def problems(self, video_dir: Path, num_frames: int, size: tuple[int, int], decode: bool) -> list[tuple]:
        found = []
        for i in range(num_frames):
            path = frame_path(video_dir, self.where, i)
            if not decode:
                if not path.is_file():
                    found.append(("missing_frame", path, f"missing frame: {path}"))
                continue
            try:
                read_frame(video_dir, self.where, i, size, (self.channels, self.dtype))
            except DatasetError as exc:
                found.append((str(exc.kind), path, str(exc)))
        expected = {frame_path(video_dir, self.where, i).name for i in range(num_frames)}
        for extra in sorted(p for p in (Path(video_dir) / self.where).glob("*.png") if p.name not in expected):
            found.append(("extra_frame", extra, f"beyond num_frames={num_frames} in meta.json"))
        return found

    def to_map(self, values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if self.control is None:
            raise DatasetError(f"the {self.where} images are not a control map (their codec has no control)")
        return np.asarray(self.control(values), dtype=np.float32)


def _keypoints_at(keypoints: np.ndarray, plan: ResizePlan) -> np.ndarray:
    """Pixel keypoints ``[..., 18, 3]`` moved as ``plan`` moves the pixels (a missing point ``0, 0, 0`` stays)."""
    keypoints = keypoints.copy()
    present = np.any(keypoints != 0, axis=-1)
    (sx, sy), (cx, cy) = plan.scale, plan.crop
    keypoints[..., 0] = np.where(present, keypoints[..., 0] * sx - cx, 0.0)
    keypoints[..., 1] = np.where(present, keypoints[..., 1] * sy - cy, 0.0)
    return keypoints.astype(np.float32)


def render_pose_maps(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel keypoints ``[F, 18, 3]`` (one person) -> rendered skeletons float32 ``[F, H, W, 3]`` in -1..1."""
    from .pose import PoseSequence, render_poses

    width, height = size
    flat = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_BODY_KEYPOINTS, 3)
    sequence = PoseSequence.empty(flat.shape[0], 1, (width, height)).replace(body=flat[:, None])
    return render_poses(sequence, width, height).astype(np.float32) / 127.5 - 1.0


@dataclass(frozen=True)
class PoseCodec(MapCodec):
    """Body keypoints stored as ``pose.json`` (a POSE_KEYPOINT list, see the module docstring); values are pixel
    keypoints ``[F, 18, 3]`` of the first person; the control map is the rendered skeleton."""

    where: str = "pose.json"

    def check(self, values: Any, num_frames: int, size: tuple[int, int]) -> list:
        if len(values) != num_frames:
            raise DatasetError(f"pose has {len(values)} frames but rgb has {num_frames}; give one pose dict per frame")
        return list(values)

    def write(self, video_dir: Path, values: list) -> None:
        (Path(video_dir) / self.where).write_text(json.dumps(list(values)))

    def read(self, video_dir: Path, indices: np.ndarray, plan: ResizePlan) -> np.ndarray:
        keypoints = read_pose(video_dir)
        if len(indices) and max(indices) >= len(keypoints):
            raise DatasetError(f"frame {max(indices)} requested from {video_dir}, whose pose.json has "
                               f"{len(keypoints)} entries")
        return _keypoints_at(keypoints[np.asarray(indices)], plan)

    def problems(self, video_dir: Path, num_frames: int, size: tuple[int, int], decode: bool) -> list[tuple]:
        path = Path(video_dir) / self.where
        try:
            keypoints = read_pose(video_dir)
        except DatasetError as exc:
            return [("bad_pose", path, str(exc))]
        if len(keypoints) != num_frames:
            return [("pose_frame_count", path, f"{len(keypoints)} pose entries for {num_frames} frames")]
        return []

    def to_map(self, values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return render_pose_maps(values, size)


def _grey(values: np.ndarray) -> np.ndarray:
    """``[F, H, W]`` in -1..1 -> ``[F, H, W, 3]``."""
    return np.repeat(np.asarray(values, dtype=np.float32)[..., None], 3, axis=-1)


FRAMES = ImageCodec("frames", 3, np.uint8, encode=lambda rgb: rgb, decode=lambda images: images)
MASK = ImageCodec("mask", 1, np.uint8, encode=lambda mask: np.where(mask, 255, 0).astype(np.uint8),
                  decode=lambda images: images > 127, nearest=True)
DEPTH = ImageCodec("depth", 1, np.uint16, encode_depth_png, decode_depth_png, control=lambda unit: _grey(2 * unit - 1))
NORMAL = ImageCodec("normal", 3, np.uint8, encode_normal_png, decode_normal_png, control=lambda normal: normal)
POSE = PoseCodec()
_FORMATS = {codec.where: (codec.channels, codec.dtype) for codec in (FRAMES, DEPTH, NORMAL, MASK)}


# --- writing ------------------------------------------------------------------------------------------------------


def write_video(
    root: str | Path,
    video_id: str,
    rgb: np.ndarray,
    unit_depth: np.ndarray,
    normal: np.ndarray,
    pose: Sequence[dict],
    *,
    fps: float,
    source: str,
    mask: np.ndarray | None = None,
    meta: dict | None = None,
    extra_maps: Sequence[tuple[MapCodec, Any]] = (),
) -> Path:
    """Write one video item: ``rgb`` uint8 ``[F, H, W, 3]``, ``unit_depth`` ``[F, H, W]`` relative depth in [0, 1]
    (:func:`depth_to_unit`), ``normal`` ``[F, H, W, 3]`` unit normals, ``pose`` a POSE_KEYPOINT list of F frames in
    pixel coordinates, optional ``mask`` bool ``[F, H, W]``; extra ``meta`` keys go into meta.json; ``extra_maps``:
    ``(codec, values)`` of more control modalities (:mod:`dreamdance_core.modalities`). Everything is checked before
    anything is written. Returns the video folder. Does not touch dataset.json (see :func:`write_index`)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise DatasetError(f"rgb must be uint8 [F, H, W, 3], got {rgb.dtype} {rgb.shape}")
    num_frames, height, width = rgb.shape[:3]
    maps = [(FRAMES, rgb), (DEPTH, unit_depth), (NORMAL, normal), (POSE, pose), *([(MASK, mask)] if mask is not None
            else []), *extra_maps]
    wheres = [codec.where for codec, _ in maps]
    if len(set(wheres)) != len(wheres):
        raise DatasetError(f"two maps would be stored in the same place: {wheres}")
    video_dir = Path(root) / check_video_id(video_id, Path(root) / "dataset.json")
    try:
        checked = [(codec, codec.check(values, num_frames, (width, height))) for codec, values in maps]
    except DatasetError as error:
        raise DatasetError(f"video {video_id!r}: {error}", kind=error.kind) from None
    video_dir.mkdir(parents=True, exist_ok=True)
    for codec, values in checked:
        codec.write(video_dir, values)
    info = {"num_frames": num_frames, "width": width, "height": height, "fps": fps, "source": source}
    (video_dir / "meta.json").write_text(json.dumps({**info, **(meta or {})}, indent=1))
    return video_dir


def write_index(root: str | Path, video_ids: Sequence[str]) -> Path:
    """Write ``<root>/dataset.json`` listing ``video_ids``."""
    path = Path(root) / "dataset.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "videos": list(video_ids)}
    path.write_text(json.dumps(index, indent=1))
    return path


# --- reading ------------------------------------------------------------------------------------------------------


@dataclass
class Clip:
    """Frames of one video: ``rgb`` uint8 ``[F, H, W, 3]``, ``unit_depth`` float32 ``[F, H, W]`` in [0, 1],
    ``normal`` float32 ``[F, H, W, 3]`` in [-1, 1], ``mask`` bool ``[F, H, W]`` or None, ``keypoints`` float32
    ``[F, 18, 3]`` pixel ``(x, y, confidence)`` of the first person (zeros where none), ``indices`` the frame
    numbers; ``maps``: the values of the modalities asked for by name (their codecs')."""

    rgb: np.ndarray
    unit_depth: np.ndarray
    normal: np.ndarray
    mask: np.ndarray | None
    keypoints: np.ndarray
    indices: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def read_meta(video_dir: str | Path) -> dict:
    meta = _load_json(Path(video_dir) / "meta.json")
    missing = [k for k in ("num_frames", "width", "height") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DatasetError(f"{Path(video_dir) / 'meta.json'} lacks {', '.join(missing)}")
    return meta


def read_index(root: str | Path) -> list[str]:
    """Video ids listed in ``<root>/dataset.json``."""
    path = Path(root) / "dataset.json"
    index = _load_json(path)
    if not isinstance(index, dict) or index.get("format") != FORMAT_NAME or not isinstance(index.get("videos"), list):
        raise DatasetError(
            f"{path} is not a {FORMAT_NAME} index; expected "
            f"{{'format': '{FORMAT_NAME}', 'version': {FORMAT_VERSION}, 'videos': [...]}}"
        )
    if index.get("version") != FORMAT_VERSION:
        raise DatasetError(f"{path} has version {index.get('version')}, this code reads version {FORMAT_VERSION}")
    return [check_video_id(v, path) for v in index["videos"]]


def check_video_id(video_id: Any, index_path: str | Path = "dataset.json") -> str:
    """A video id names a folder inside the dataset root: a non-empty relative path without ``..``, absolute parts or
    control characters (so ``../elsewhere`` or ``/data/x`` cannot make training read frames from outside the root)."""
    from pathlib import PurePosixPath, PureWindowsPath

    if not isinstance(video_id, str) or not video_id.strip():
        raise DatasetError(f"{index_path}: video id {video_id!r:.60} must be a non-empty folder name inside the "
                           "dataset folder; list the video folders by name")
    parts = video_id.replace("\\", "/").split("/")
    if (PurePosixPath(video_id).is_absolute() or PureWindowsPath(video_id).is_absolute() or ".." in parts
            or any(ord(c) < 32 for c in video_id)):
        raise DatasetError(f"{index_path}: video id {video_id!r:.80} leaves the dataset folder (absolute, '..' or a "
                           "control character); ids must be folders inside it - move or link the video into the "
                           "dataset folder and list it by its name there")
    return video_id


def pose_frame_keypoints(frame: Any, path: Path, index: int) -> np.ndarray:
    """``[18, 3]`` body keypoints of the first person of one POSE_KEYPOINT frame (zeros if nobody)."""
    try:
        people = frame["people"]
        if not people:
            return np.zeros((NUM_BODY_KEYPOINTS, 3), dtype=np.float32)
        points = np.asarray(people[0]["pose_keypoints_2d"], dtype=np.float32)
        return points.reshape(NUM_BODY_KEYPOINTS, 3)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise DatasetError(
            f"bad pose frame {index} in {path}: expected people[0].pose_keypoints_2d with 54 numbers ({exc!r})"
        ) from None


def read_pose(video_dir: str | Path) -> np.ndarray:
    """All keypoints of a video: ``[F, 18, 3]`` float32."""
    path = Path(video_dir) / "pose.json"
    pose = _load_json(path)
    if not isinstance(pose, list):
        raise DatasetError(f"{path} must hold a list of per-frame dicts (POSE_KEYPOINT)")
    if not pose:
        return np.zeros((0, NUM_BODY_KEYPOINTS, 3), dtype=np.float32)
    return np.stack([pose_frame_keypoints(frame, path, i) for i, frame in enumerate(pose)])


def _resize_plan(src: tuple[int, int], dst: tuple[int, int]) -> tuple[tuple[int, int], float, float, int, int]:
    """Cover-and-centre-crop: the scaled size (W, H), the per-axis scales and the crop offsets."""
    (sw, sh), (dw, dh) = src, dst
    scale = max(dw / sw, dh / sh)
    rw, rh = max(dw, round(sw * scale)), max(dh, round(sh * scale))
    return (rw, rh), rw / sw, rh / sh, (rw - dw) // 2, (rh - dh) // 2


def _resize(image: np.ndarray, size: tuple[int, int], crop: tuple[int, int], out: tuple[int, int], nearest: bool):
    src_h, src_w = image.shape[:2]
    if (src_w, src_h) != size:
        shrink = size[0] < src_w
        interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        image = cv2.resize(image, size, interpolation=interp)
    return image[crop[1] : crop[1] + out[1], crop[0] : crop[0] + out[0]]


def read_clip(
    video_dir: str | Path,
    indices: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
    maps: Mapping[str, MapCodec] | None = None,
) -> Clip:
    """Read frames ``indices`` (default all) of one video, optionally resized to ``size`` = (W, H), and the values of
    the ``maps`` (name -> codec) into ``Clip.maps``.

    Resizing scales the frames to cover W x H and centre-crops; keypoints get the same scale and shift (their
    confidences are kept; a missing point ``0, 0, 0`` stays missing). Errors name the broken file."""
    video_dir = Path(video_dir)
    meta = read_meta(video_dir)
    keypoints_all = read_pose(video_dir)
    num_frames = int(meta["num_frames"])
    indices = np.arange(num_frames) if indices is None else np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise DatasetError(f"no frames requested from {video_dir}; pass at least one frame index")
    if indices.min() < 0 or indices.max() >= min(num_frames, len(keypoints_all)):
        raise DatasetError(
            f"frames {indices.min()}..{indices.max()} requested from {video_dir}, which has {num_frames} frames "
            f"and {len(keypoints_all)} pose entries"
        )
    src = (int(meta["width"]), int(meta["height"]))
    dst = size or src
    if min(dst) <= 0:
        raise DatasetError(f"requested size must be positive (W, H), got {dst}")
    plan = ResizePlan.between(src, dst)
    values = {DEPTH: DEPTH.read(video_dir, indices, plan), NORMAL: NORMAL.read(video_dir, indices, plan),
              POSE: _keypoints_at(keypoints_all[indices], plan)}
    return Clip(
        rgb=FRAMES.read(video_dir, indices, plan),
        unit_depth=values[DEPTH],
        normal=values[NORMAL],
        mask=MASK.read(video_dir, indices, plan) if MASK.present(video_dir) else None,
        keypoints=values[POSE],
        indices=indices,
        maps={name: values[codec] if codec in values else codec.read(video_dir, indices, plan)
              for name, codec in (maps or {}).items()},
    )


# --- validation ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One broken thing: ``kind`` (e.g. ``missing_frame``), the offending ``path``, the video id and a message."""

    video_id: str | None
    kind: str
    path: str
    message: str


@dataclass
class ValidationReport:
    root: str
    videos: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def broken_videos(self) -> list[str]:
        return sorted({p.video_id for p in self.problems if p.video_id is not None})

    @property
    def good_videos(self) -> list[str]:
        broken = set(self.broken_videos)
        return [v for v in self.videos if v not in broken]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"{self.root}: {len(self.good_videos)} good, {len(self.broken_videos)} broken video(s)"]
        lines += [f"  [{p.kind}] {p.path}: {p.message}" for p in self.problems]
        return "\n".join(lines)


def _validate_video(root: Path, video_id: str, decode: bool, maps: Sequence[MapCodec] = ()) -> list[Problem]:
    video_dir = root / video_id

    def problem(kind: str, path: Path, message: str) -> Problem:
        return Problem(video_id, kind, str(path), message)

    if not video_dir.is_dir():
        return [problem("missing_video", video_dir, "folder listed in dataset.json does not exist")]
    try:
        meta = read_meta(video_dir)
        num_frames, size = int(meta["num_frames"]), (int(meta["width"]), int(meta["height"]))
    except (DatasetError, TypeError, ValueError) as exc:
        return [problem("bad_meta", video_dir / "meta.json", str(exc))]
    codecs = [POSE, FRAMES, DEPTH, NORMAL, *([MASK] if MASK.present(video_dir) else [])]
    codecs += [codec for codec in maps if codec not in codecs]
    return [problem(*found) for codec in codecs for found in codec.problems(video_dir, num_frames, size, decode)]


def validate_dataset(root: str | Path, decode: bool = True, maps: Sequence[MapCodec] = ()) -> ValidationReport:
    """Check every video of a dataset folder: index, meta, pose frame count, every frame image present, readable,
    of the right format and size; ``maps``: codecs of more modalities to check (:mod:`dreamdance_core.modalities`).
    ``decode=False`` only checks that files exist (fast).

    Problem kinds: ``bad_index``, ``missing_video``, ``bad_meta``, ``bad_pose``, ``pose_frame_count``,
    ``missing_frame``, ``extra_frame``, ``unreadable_image``, ``wrong_format``, ``size_mismatch``."""
    root = Path(root)
    report = ValidationReport(root=str(root))
    try:
        report.videos = read_index(root)
    except DatasetError as exc:
        report.problems.append(Problem(None, "bad_index", str(root / "dataset.json"), str(exc)))
        return report
    for video_id in report.videos:
        report.problems += _validate_video(root, video_id, decode, maps)
    return report


def usable_videos(report: ValidationReport, policy: Policy) -> list[str]:
    """Apply a policy to a report: ``"error"`` raises :class:`DatasetError` if anything is broken, ``"skip"`` warns
    and returns the good videos."""
    if policy not in ("skip", "error"):
        raise DatasetError(f"policy must be 'skip' or 'error', got {policy!r}")
    if report.ok:
        return report.videos
    if policy == "error" or any(p.video_id is None for p in report.problems):
        raise DatasetError(
            "dataset has broken items (fix them, or pass policy='skip' to leave those videos out):\n"
            + report.summary(),
            report,
        )
    warnings.warn(f"skipping broken videos:\n{report.summary()}", stacklevel=2)
    return report.good_videos


# --- torch dataset ------------------------------------------------------------------------------------------------


def _to_tensor(images: np.ndarray, low: float, high: float):
    """``[F, H, W(, C)]`` array with values in ``[low, high]`` -> float tensor ``[F, C, H, W]`` in -1..1."""
    import torch

    array = images.astype(np.float32)
    array = array[..., None] if array.ndim == 3 else array
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
    return (tensor - low) / (high - low) * 2.0 - 1.0


class ClipDataset:
    """A map-style torch dataset of fixed-length clips (``num_frames`` frames, every ``stride``-th frame); it is
    duck-typed (``__len__``, ``__getitem__``), so this module needs no torch until an item is loaded.

    Item ``i`` is the ``i``-th window of the dataset (windows start every ``window_step`` frames of each video).
    An item is a dict of tensors: ``reference`` ``[3, H, W]``, ``pixel_values`` ``[F, 3, H, W]``, ``depth``
    ``[F, 3, H, W]``, ``normal`` ``[F, 3, H, W]`` (all float32 in -1..1; depth and normal are the depth and normal
    images of :mod:`dreamdance_core.geometry`: depth ``2 * unit - 1`` on three channels, +1 nearest, -1 background),
    ``pose`` ``[F, 18, 3]`` and ``reference_pose`` ``[18, 3]`` (pixel keypoints at the output size),
    ``frame_indices`` ``[F]``, ``reference_index`` and ``video_id``. The reference frame is drawn at random from the
    same video (``reference="random"``, seeded by ``seed``, the epoch and the item) or is the video's first frame.
    ``controls`` (name -> codec, :func:`dreamdance_core.modalities.codecs`) adds ``controls``: per name the control
    map ``[F, 3, H, W]`` in -1..1 (what the Stage-2 controller reads), in the order given.

    The folder is validated when the dataset is built (``check_images`` decodes every image first; otherwise only
    existence and counts are checked, and a bad image is found when read). ``policy`` decides what a broken video
    does, at build time and at read time: ``"skip"`` warns and leaves it out, ``"error"`` raises.
    """

    def __init__(
        self,
        root: str | Path,
        num_frames: int,
        size: tuple[int, int] | None = None,
        stride: int = 1,
        window_step: int | None = None,
        reference: Literal["random", "first"] = "random",
        policy: Policy = "skip",
        check_images: bool = False,
        seed: int = 0,
        controls: Mapping[str, MapCodec] | None = None,
    ) -> None:
        if num_frames < 1 or stride < 1 or (window_step is not None and window_step < 1):
            raise DatasetError(f"num_frames, stride and window_step must be >= 1, got {num_frames}, {stride}, "
                               f"{window_step}")
        if reference not in ("random", "first"):
            raise DatasetError(f"reference must be 'random' or 'first', got {reference!r}")
        self.root, self.num_frames, self.size, self.stride = Path(root), num_frames, size, stride
        self.reference, self.policy, self.seed, self.epoch = reference, policy, seed, 0
        self.controls = dict(controls or {})
        span = (num_frames - 1) * stride + 1
        step = window_step or span
        report = validate_dataset(self.root, decode=check_images, maps=list(self.controls.values()))
        self.videos = usable_videos(report, policy)
        self.lengths = {v: int(read_meta(self.root / v)["num_frames"]) for v in self.videos}
        self.windows = [(v, s) for v in self.videos for s in range(0, self.lengths[v] - span + 1, step)]
        if not self.windows:
            raise DatasetError(f"no video in {self.root} has the {span} frames a clip of {num_frames} frames with "
                               f"stride {stride} needs; lower num_frames or stride")
        self.skipped: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        """Reseed the reference-frame draw (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        for offset in range(len(self.windows)):
            video_id, start = self.windows[(index + offset) % len(self.windows)]
            if video_id in self.skipped:
                continue
            try:
                return self._load(video_id, start, index)
            except DatasetError as exc:
                if self.policy == "error":
                    raise
                warnings.warn(f"skipping video {video_id}: {exc}", stacklevel=2)
                self.skipped.add(video_id)
        raise DatasetError(f"every video in {self.root} failed to read; run validate_dataset() for the list")

    def _load(self, video_id: str, start: int, index: int) -> dict:
        import torch

        indices = np.arange(self.num_frames) * self.stride + start
        rng = np.random.default_rng([self.seed, self.epoch, index])
        ref_index = int(rng.integers(self.lengths[video_id])) if self.reference == "random" else 0
        clip = read_clip(self.root / video_id, np.concatenate([[ref_index], indices]), self.size, self.controls)
        rgb = _to_tensor(clip.rgb, 0.0, 255.0)
        size = (rgb.shape[-1], rgb.shape[-2])
        controls = {name: _to_tensor(codec.to_map(clip.maps[name][1:], size), -1.0, 1.0)
                    for name, codec in self.controls.items()}
        return {
            "reference": rgb[0],
            "pixel_values": rgb[1:],
            "depth": _to_tensor(clip.unit_depth[1:], 0.0, 1.0).expand(-1, 3, -1, -1).contiguous(),
            "normal": _to_tensor(clip.normal[1:], -1.0, 1.0),
            "pose": torch.from_numpy(clip.keypoints[1:]),
            "reference_pose": torch.from_numpy(clip.keypoints[0]),
            "frame_indices": torch.from_numpy(indices),
            "reference_index": ref_index,
            "video_id": video_id,
            **({"controls": controls} if controls else {}),
        }
