"""Turn a folder of videos into the DreamDance dataset layout, and validate dataset folders.

    python train/prepare_data.py convert <videos> <dataset> --estimator pose=dwpose:<DWPose onnx folder> \\
        --estimator depth=depth-anything:<folder> --estimator normal=marigold:<folder>   # the paper's estimators
    python train/prepare_data.py convert <videos> <dataset> --pose_estimator json \\
        --depth_estimator transformers:<depth model folder or hub id> --normal_estimator from-depth
    python train/prepare_data.py validate <dataset> [--decode]

``convert`` reads every video (``.mp4 .mov .avi .mkv .webm``) with OpenCV, keeps every ``--every``-th frame (at
most ``--max_frames``), runs the three estimators and writes ``<dataset>/<video stem>/`` plus ``dataset.json`` in the
layout of :mod:`dreamdance_core.dataset`. ``validate`` prints the report of broken items (each with its path) and
exits with status 1 when anything is broken.

``--modalities`` (default: pose depth normal) chooses the maps to estimate and store; the dataset layout always holds
pose, depth and normal (Stage 1 trains on them), and any more registered modality (:mod:`dreamdance_core.modalities`)
is stored by its codec next to them. Estimators are pluggable: give a built-in name or ``package.module:function``
with ``--estimator <modality>=<spec>`` (or the older ``--pose_estimator``, ``--depth_estimator``,
``--normal_estimator``); a modality with a default estimator needs none. Every estimator gets a
:class:`~dreamdance_core.estimators.VideoFrames` (``frames`` uint8 ``[F, H, W, 3]`` RGB, the source ``path``, the kept
frame ``indices``, ``fps``) and the values of the modalities it builds on; the built-ins and their signatures are
documented in :mod:`dreamdance_core.estimators`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from dreamdance_core.dataset import DatasetError, validate_dataset, write_index, write_video
from dreamdance_core.estimators import PrepareError, VideoFrames
from dreamdance_core.modalities import DEFAULT_MODALITIES, Estimator, ModalityError, check_names, estimator, get

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def read_video(path: Path, every: int = 1, max_frames: int | None = None) -> VideoFrames:
    """Every ``every``-th frame of a video file (at most ``max_frames``), decoded by OpenCV."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PrepareError(f"cannot open video {path}; is it a video file OpenCV can decode (mp4/avi/mkv/...)?")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    frames, indices, index = [], [], 0
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(frame[..., ::-1])  # BGR -> RGB
            indices.append(index)
        index += 1
    capture.release()
    if not frames:
        raise PrepareError(f"no frames could be decoded from {path}")
    return VideoFrames(path, np.ascontiguousarray(np.stack(frames)), np.asarray(indices), fps / every)


def load_estimator(kind: str, spec: str | None, options: argparse.Namespace) -> Callable:
    """The estimator of modality ``kind`` named by ``spec``: a built-in of the registry (``json``,
    ``transformers:<model>``, ``from-depth``, ...) or ``module:function``; None: the modality's default."""
    try:
        return estimator(kind, spec, vars(options))
    except ModalityError as exc:
        raise PrepareError(str(exc)) from None
    except (OSError, ValueError, ImportError) as exc:  # a missing model folder, an unknown hub id, a missing package
        argument = spec.split(":", 1)[1] if spec and ":" in spec else spec
        where = f" ({argument} does not exist here)" if argument and not Path(argument).exists() else ""
        raise PrepareError(
            f"the {kind} estimator {spec!r} could not be loaded{where}: {type(exc).__name__}: {str(exc)[:300]}; give "
            "an existing local model folder (or a hub id with --allow_download where the estimator supports it)"
        ) from None


# --- conversion -----------------------------------------------------------------------------------------------------


def estimation_order(modalities: Sequence[str]) -> list[str]:
    """``modalities`` with every modality after the ones its estimator builds on (normals after depth)."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for required in get(name).requires:
            if required not in modalities:
                raise PrepareError(f"the {name} estimator builds on {required}: add {required} to --modalities")
            visit(required)
        order.append(name)

    for name in modalities:
        visit(name)
    return order


def convert_video(path: Path, root: Path, estimators: Mapping[str, Estimator], every: int,
                  max_frames: int | None) -> str:
    """Read, estimate (``estimators``: modality -> estimator) and write one video; returns its id (the file stem)."""
    video = read_video(path, every, max_frames)
    values: dict[str, Any] = {}
    for name in estimation_order(list(estimators)):
        values[name] = estimators[name](video, *(values[r] for r in get(name).requires))
    missing = [name for name in DEFAULT_MODALITIES if name not in values]
    if missing:
        raise PrepareError(f"the dataset layout always holds {list(DEFAULT_MODALITIES)} (Stage 1 trains on them); "
                           f"give estimators for {missing}")
    extra = [(get(name).codec, v) for name, v in values.items() if name not in DEFAULT_MODALITIES]
    write_video(root, path.stem, video.frames, values["depth"], values["normal"], values["pose"], fps=video.fps,
                source=str(path), extra_maps=extra)
    return path.stem


def convert(videos: Path, root: Path, estimators: Mapping[str, Estimator], every: int = 1,
            max_frames: int | None = None) -> list[str]:
    """Convert every video of a folder; ``dataset.json`` lists those that converted (failures are reported)."""
    files = sorted(p for p in videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise PrepareError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {videos}")
    done = []
    for path in files:
        try:
            done.append(convert_video(path, root, estimators, every, max_frames))
            print(f"ok      {path}")
        except (PrepareError, DatasetError) as exc:
            print(f"FAILED  {path}: {exc}", file=sys.stderr)
    write_index(root, done)
    return done


# --- command line ---------------------------------------------------------------------------------------------------


def parse_args(input_args: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("convert", help="videos -> dataset layout")
    make.add_argument("videos", type=Path, help="folder of video files")
    make.add_argument("output", type=Path, help="dataset folder to write")
    make.add_argument("--modalities", nargs="+", default=list(DEFAULT_MODALITIES),
                      help="control modalities to estimate and store (registered in dreamdance_core.modalities)")
    make.add_argument("--estimator", action="append", default=[], metavar="MODALITY=SPEC",
                      help="estimator of one modality: a built-in or module:function (repeat for each modality)")
    make.add_argument("--pose_estimator", help="same as --estimator pose=SPEC: 'json', 'dwpose:<folder>' or "
                      "module:function")
    make.add_argument("--depth_estimator", help="same as --estimator depth=SPEC: 'depth-anything:<folder>', "
                      "'transformers:<model>' or module:function")
    make.add_argument("--normal_estimator", help="same as --estimator normal=SPEC: 'marigold:<folder>', "
                      "'from-depth' or module:function")
    make.add_argument("--normal_depth_scale", type=float, default=20.0, help="relief of 'from-depth' normals")
    make.add_argument("--pose_threshold", type=float, default=0.3, help="'dwpose': keypoints under this confidence "
                      "are missing")
    make.add_argument("--marigold_steps", type=int, default=None, help="'marigold': denoising steps (default: the "
                      "model's)")
    make.add_argument("--marigold_ensemble", type=int, default=1, help="'marigold': predictions averaged per frame")
    make.add_argument("--marigold_resolution", type=int, default=None, help="'marigold': processing resolution "
                      "(default: the model's)")
    make.add_argument("--allow_download", action="store_true", help="let an estimator spec 'owner/name@<commit>' "
                      "fetch that pinned hub revision (huggingface_hub.snapshot_download); off: local folders only")
    make.add_argument("--every", type=int, default=1, help="keep every n-th frame")
    make.add_argument("--max_frames", type=int, default=None, help="keep at most n frames per video")
    check = commands.add_parser("validate", help="report broken items of a dataset folder")
    check.add_argument("dataset", type=Path, help="dataset folder")
    check.add_argument("--decode", action=argparse.BooleanOptionalAction, default=True,
                       help="decode every image (--no-decode: only check that files exist)")
    return parser.parse_args(input_args)


def estimator_specs(args: argparse.Namespace) -> dict[str, str | None]:
    """Modality -> estimator spec from ``--modalities``, ``--estimator`` and the older per-modality flags."""
    try:
        modalities = check_names(args.modalities)
    except ModalityError as exc:
        raise PrepareError(f"--modalities: {exc}") from None
    specs = {name: getattr(args, f"{name}_estimator", None) for name in modalities}
    for item in args.estimator:
        name, sep, spec = item.partition("=")
        if not sep or name not in specs:
            raise PrepareError(f"--estimator {item!r}: expected MODALITY=SPEC with MODALITY one of {list(specs)}")
        specs[name] = spec
    return specs


def main(args: argparse.Namespace) -> int:
    if args.command == "validate":
        report = validate_dataset(args.dataset, decode=args.decode)
        print(report.summary())
        return 0 if report.ok else 1
    if args.every < 1:
        raise PrepareError(f"--every must be at least 1, got {args.every}")
    estimators = {name: load_estimator(name, spec, args) for name, spec in estimator_specs(args).items()}
    done = convert(args.videos, args.output, estimators, every=args.every, max_frames=args.max_frames)
    print(f"{len(done)} video(s) written to {args.output}")
    return 0 if done else 1


def cli(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (``python train/prepare_data.py``): option and video problems end with a message."""
    try:
        return main(parse_args(argv))
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
