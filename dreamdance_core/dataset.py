"""The DreamDance dataset layout: per video frames, pose keypoints, depth and normal maps (the TikTok-Dance5K kind).

Layout (the contract between data preparation, the synthetic generator and ``train/``)::

    <root>/dataset.json            {"format": "dreamdance-dataset", "version": 1, "videos": ["<id>", ...]}
    <root>/<id>/meta.json          {"num_frames": F, "width": W, "height": H, "fps": fps, "source": "synthetic"|...}
    <root>/<id>/frames/000000.png  RGB, 8 bit
    <root>/<id>/depth/000000.png   depth image, 16-bit grey (below)
    <root>/<id>/normal/000000.png  normal image, 8-bit RGB (below)
    <root>/<id>/mask/000000.png    optional foreground mask, 8-bit grey 0 / 255
    <root>/<id>/pose.json          POSE_KEYPOINT list, exactly F entries

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

Reading returns model-ready arrays (:class:`Clip`) and can resize to another W x H: the frames are scaled to cover
the target and centre-cropped, and the keypoints get the same scale and shift. :class:`ClipDataset` serves
fixed-length clips as torch tensors in -1..1. :func:`validate_dataset` reports broken items with their paths;
``policy="skip"`` drops broken videos with a warning, ``policy="error"`` stops. A clip that fails to read while
training is handled by the same policy: never silently trained on.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import cv2
import numpy as np

FORMAT_NAME = "dreamdance-dataset"
FORMAT_VERSION = 1
NUM_BODY_KEYPOINTS = 18
MODALITIES = ("frames", "depth", "normal")
Policy = Literal["skip", "error"]


class DatasetError(ValueError):
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


def read_frame(video_dir: Path, modality: str, index: int, size: tuple[int, int]) -> np.ndarray:
    """One stored image of ``modality`` (``frames``, ``depth``, ``normal``, ``mask``), checked to be ``size`` (W, H)."""
    path = frame_path(video_dir, modality, index)
    image = _read_png(path, *_FORMATS[modality])
    if image.shape[1::-1] != tuple(size):
        raise DatasetError(
            f"size mismatch: {path} is {image.shape[1]}x{image.shape[0]}, meta.json says {size[0]}x{size[1]} (W x H)",
            kind="size_mismatch",
        )
    return image


_FORMATS = {"frames": (3, np.uint8), "depth": (1, np.uint16), "normal": (3, np.uint8), "mask": (1, np.uint8)}


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"unreadable JSON: {path} ({exc})") from None


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
) -> Path:
    """Write one video item: ``rgb`` uint8 ``[F, H, W, 3]``, ``unit_depth`` ``[F, H, W]`` relative depth in [0, 1]
    (:func:`depth_to_unit`), ``normal`` ``[F, H, W, 3]`` unit normals, ``pose`` a POSE_KEYPOINT list of F frames in
    pixel coordinates, optional ``mask`` bool ``[F, H, W]``; extra ``meta`` keys go into meta.json.
    Returns the video folder. Does not touch dataset.json (see :func:`write_index`)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise DatasetError(f"rgb must be uint8 [F, H, W, 3], got {rgb.dtype} {rgb.shape}")
    num_frames, height, width = rgb.shape[:3]
    arrays = {"unit_depth": (unit_depth, (num_frames, height, width)), "normal": (normal, rgb.shape)}
    if mask is not None:
        arrays["mask"] = (mask, (num_frames, height, width))
    for name, (array, shape) in arrays.items():
        if np.shape(array) != shape:
            raise DatasetError(f"{name} must have shape {shape} to match rgb, got {np.shape(array)}")
    if len(pose) != num_frames:
        raise DatasetError(f"pose has {len(pose)} frames but rgb has {num_frames}; give one pose dict per frame")
    video_dir = Path(root) / video_id
    encoded = {
        "frames": rgb,
        "depth": [encode_depth_png(d) for d in unit_depth],
        "normal": [encode_normal_png(n) for n in normal],
    }
    if mask is not None:
        encoded["mask"] = [np.where(m, 255, 0).astype(np.uint8) for m in mask]
    for modality, images in encoded.items():
        (video_dir / modality).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            _write_png(frame_path(video_dir, modality, i), image)
    (video_dir / "pose.json").write_text(json.dumps(list(pose)))
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
    numbers."""

    rgb: np.ndarray
    unit_depth: np.ndarray
    normal: np.ndarray
    mask: np.ndarray | None
    keypoints: np.ndarray
    indices: np.ndarray


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
    return [str(v) for v in index["videos"]]


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
) -> Clip:
    """Read frames ``indices`` (default all) of one video, optionally resized to ``size`` = (W, H).

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
    scaled, sx, sy, cx, cy = _resize_plan(src, dst)
    has_mask = (video_dir / "mask").is_dir()
    data: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES + (("mask",) if has_mask else ())}
    for i in indices:
        for modality, images in data.items():
            image = read_frame(video_dir, modality, int(i), src)
            images.append(_resize(image, scaled, (cx, cy), dst, nearest=modality == "mask"))
    keypoints = keypoints_all[indices].copy()
    present = np.any(keypoints != 0, axis=-1)
    keypoints[..., 0] = np.where(present, keypoints[..., 0] * sx - cx, 0.0)
    keypoints[..., 1] = np.where(present, keypoints[..., 1] * sy - cy, 0.0)
    return Clip(
        rgb=np.stack(data["frames"]),
        unit_depth=decode_depth_png(np.stack(data["depth"])),
        normal=decode_normal_png(np.stack(data["normal"])),
        mask=np.stack(data["mask"]) > 127 if has_mask else None,
        keypoints=keypoints.astype(np.float32),
        indices=indices,
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


def _check_image(
    video_dir: Path, modality: str, index: int, size: tuple[int, int], decode: bool
) -> DatasetError | None:
    """What is wrong with one frame image (its ``kind`` set), or None. Without ``decode`` only existence counts."""
    if not decode:
        path = frame_path(video_dir, modality, index)
        return None if path.is_file() else DatasetError(f"missing frame: {path}", kind="missing_frame")
    try:
        read_frame(video_dir, modality, index, size)
    except DatasetError as exc:
        return exc
    return None


def _validate_video(root: Path, video_id: str, decode: bool) -> list[Problem]:
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
    problems: list[Problem] = []
    try:
        keypoints = read_pose(video_dir)
        if len(keypoints) != num_frames:
            problems.append(problem("pose_frame_count", video_dir / "pose.json",
                                    f"{len(keypoints)} pose entries for {num_frames} frames"))
    except DatasetError as exc:
        problems.append(problem("bad_pose", video_dir / "pose.json", str(exc)))
    modalities = MODALITIES + (("mask",) if (video_dir / "mask").is_dir() else ())
    for modality in modalities:
        for i in range(num_frames):
            error = _check_image(video_dir, modality, i, size, decode)
            if error is not None:
                problems.append(problem(str(error.kind), frame_path(video_dir, modality, i),
                                        str(error)))
        expected = {frame_path(video_dir, modality, i).name for i in range(num_frames)}
        for extra in sorted(p for p in (video_dir / modality).glob("*.png") if p.name not in expected):
            problems.append(problem("extra_frame", extra, f"beyond num_frames={num_frames} in meta.json"))
    return problems


def validate_dataset(root: str | Path, decode: bool = True) -> ValidationReport:
    """Check every video of a dataset folder: index, meta, pose frame count, every frame image present, readable,
    of the right format and size. ``decode=False`` only checks that files exist (fast).

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
        report.problems += _validate_video(root, video_id, decode)
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
    ) -> None:
        if num_frames < 1 or stride < 1 or (window_step is not None and window_step < 1):
            raise DatasetError(f"num_frames, stride and window_step must be >= 1, got {num_frames}, {stride}, "
                               f"{window_step}")
        if reference not in ("random", "first"):
            raise DatasetError(f"reference must be 'random' or 'first', got {reference!r}")
        self.root, self.num_frames, self.size, self.stride = Path(root), num_frames, size, stride
        self.reference, self.policy, self.seed, self.epoch = reference, policy, seed, 0
        span = (num_frames - 1) * stride + 1
        step = window_step or span
        self.videos = usable_videos(validate_dataset(self.root, decode=check_images), policy)
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
        clip = read_clip(self.root / video_id, np.concatenate([[ref_index], indices]), self.size)
        rgb = _to_tensor(clip.rgb, 0.0, 255.0)
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
        }
