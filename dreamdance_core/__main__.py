"""Command line: the DreamDance main job without ComfyUI.

    python -m dreamdance_core --output outputs/demo
    python -m dreamdance_core --reference me.png --pose dance.json --stage1 weights/stage1 \
        --base v1-5-pruned-emaonly.safetensors --image-encoder clip_vision_vit_l.safetensors

Reference image + skeleton poses (POSE_KEYPOINT / OpenPose JSON, or the built-in sample dance) -> Stage 1: per-frame
depth, normal and low-res RGB -> Stage 2: the video. Writes PNG frames, an animated WebP and a side-by-side contact
sheet. Without weights each stage runs its shipped demo checkpoint (:mod:`dreamdance_core.demo`: small models trained
on synthetic mannequins at 64x96), and it says so; where a copy carries none it runs a tiny randomly initialised
model of the real architecture, and says that too.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import weakref
from pathlib import Path

from .fit import DEFAULT_FIT, FIT_HELP, FIT_MODES
from .precision import DEFAULT_PRECISION, PRECISION_HELP, PRECISIONS
from .sampling.schedulers import STAGE1_DEFAULT, STAGE1_SCHEDULERS, STAGE2_DEFAULT, STAGE2_SCHEDULERS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dreamdance_core", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_argument_group("inputs")
    source.add_argument("--reference", type=Path, help="reference image (default: a synthetic mannequin)")
    source.add_argument("--pose", type=Path,
                        help="POSE_KEYPOINT or OpenPose JSON file (default: built-in sample dance)")
    source.add_argument("--frames", type=int, default=8, help="frames of the built-in dance (default 8)")
    source.add_argument("--fit", choices=FIT_MODES, default=DEFAULT_FIT, help=f"{FIT_HELP} Default: {DEFAULT_FIT}.")
    weights = parser.add_argument_group("weights (none given: the shipped demo checkpoint, else a tiny random model)")
    weights.add_argument("--stage1", type=Path, help="DreamDance Stage-1 weights folder (from train/stage1.py)")
    weights.add_argument("--base", type=Path, help="SD1.5 diffusers folder or single-file .safetensors")
    weights.add_argument("--image-encoder", type=Path, help="CLIP vision folder or .safetensors")
    weights.add_argument("--stage2", type=Path, help="DreamDance Stage-2 weights folder (from train/stage2.py)")
    weights.add_argument("--svd", type=Path, help="SVD img2vid 1.1 single-file .safetensors or diffusers folder")
    weights.add_argument("--geometry-only", action="store_true", help="stop after Stage 1")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--width", type=int, help="width, multiple of 8 (default 256; the demo/tiny model: 64)")
    sampling.add_argument("--height", type=int, help="height, multiple of 8 (default 384; the demo/tiny model: 96)")
    sampling.add_argument("--steps", type=int, help="denoising steps (default 25; the demo: its demo.json; tiny "
                          "random: 8)")
    sampling.add_argument("--cfg", type=float, nargs=3, metavar=("RGB", "NORMAL", "DEPTH"),
                          help="guidance per domain, ordinary CFG convention (paper's s = cfg - 1); default 3.5 2.5 "
                          "3.5, the demo: its demo.json")
    sampling.add_argument("--window", type=int, default=16, help="frames per window for long sequences")
    sampling.add_argument("--overlap", type=int, default=4, help="frames shared by neighbouring windows")
    sampling.add_argument("--weighting", choices=["flat", "pyramid"], default="flat")
    sampling.add_argument("--scheduler", choices=list(STAGE1_SCHEDULERS), default=STAGE1_DEFAULT,
                          help=f"Stage-1 sampler (default {STAGE1_DEFAULT})")
    video = parser.add_argument_group("video (Stage 2)")
    video.add_argument("--video-width", type=int, help="default: 2x the Stage-1 width (the demo/tiny model: the same)")
    video.add_argument("--video-height", type=int,
                       help="default: 2x the Stage-1 height (the demo/tiny model: the same)")
    video.add_argument("--video-steps", type=int, help="denoising steps (default 25; the demo: its demo.json; tiny "
                       "random: 8)")
    video.add_argument("--min-cfg", type=float, help="guidance of the first frame (default 1; the demo: its demo.json)")
    video.add_argument("--max-cfg", type=float, help="guidance of the last frame (default 3; the demo: its demo.json)")
    video.add_argument("--fps", type=int, default=7)
    video.add_argument("--video-scheduler", choices=list(STAGE2_SCHEDULERS), default=STAGE2_DEFAULT,
                       help=f"Stage-2 sampler (default {STAGE2_DEFAULT}, SVD's own)")
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--device", default="cuda" if _cuda() else "cpu")
    sampling.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                          help=f"model weights and activations, both stages: {PRECISION_HELP} Default: auto.")
    sampling.add_argument("--channels-last", action="store_true",
                          help="on CUDA: the models in channels_last memory format (may be faster; same outputs)")
    sampling.add_argument("--compile", action="store_true",
                          help="torch.compile both denoisers (faster steps after a first call that compiles them, "
                          "minutes on a CPU; a cancel then lands between forwards)")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo"), help="output folder")
    return parser.parse_args(argv)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _pose_sequence(args, width: int, height: int):
    """The poses of ``--pose``, else the built-in dance on a ``width`` x ``height`` canvas."""
    from .pose import load_pose_file, sample_dance

    if args.pose is not None:
        return load_pose_file(args.pose)
    return sample_dance(args.frames, width, height)


def _reference(args, width: int, height: int):
    """The reference image at ``width`` x ``height`` (``--fit``), else the synthetic mannequin rendered at that size."""
    from .media import from_uint8, load_image

    if args.reference is not None:
        return load_image(args.reference, width, height, args.fit)
    from .synthetic.generate import render_sample

    return from_uint8(render_sample(7, 0, 3, num_frames=1, width=width, height=height).reference.rgb)


def main(argv=None) -> int:
    args = parse_args(argv)  # argparse answers its own errors (unknown flags, "abc" for a number) with status 2
    try:
        check_args(args)
        return run(args)
    except (ValueError, FileNotFoundError) as error:  # bad input or weights: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the output cannot be written (read-only folder, disk full, ...)
        print(f"error: {error.strerror or error} ({error.filename or args.output}); check --output", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


_PATHS = {  # flag -> what the path must be, and how to obtain it
    "reference": ("file", "the reference image (PNG, JPEG, WebP)"),
    "pose": (None, "a POSE_KEYPOINT / OpenPose .json file or a folder of per-frame .json files"),
    "stage1": ("dir", "the DreamDance Stage-1 weights folder written by train/stage1.py"),
    "base": (None, "an SD1.5 diffusers folder or single-file .safetensors"),
    "image_encoder": (None, "a CLIP vision folder or .safetensors"),
    "stage2": ("dir", "the DreamDance Stage-2 weights folder written by train/stage2.py"),
    "svd": (None, "an SVD img2vid 1.1 single-file .safetensors or diffusers folder"),
}
# bytes per frame and pixel the command line holds at once (uint8 pose renders, float copies, three Stage-1 domains,
# the rows of the contact sheet): an up-front estimate, so a huge request is refused before any model work
_STAGE1_BYTES_PER_PIXEL = 3 * (1 + 4 + 3 * 4 + 3 * 4 + 4 * 1)
_STAGE2_BYTES_PER_PIXEL = 3 * (1 + 4 + 3 * 4 + 4 + 1)


def check_args(args: argparse.Namespace) -> None:
    """Every value and path the user typed, checked before any model work; raises :class:`InputError` sentences."""
    from .validation import (
        MAX_FPS,
        InputError,
        check_cfg,
        check_frames,
        check_int,
        check_size,
        check_steps,
    )

    for flag, (kind, what) in _PATHS.items():
        path = getattr(args, flag)
        if path is None:
            continue
        option = "--" + flag.replace("_", "-")
        if not path.exists():
            raise InputError(f"{option} {path}: not found (the path does not exist); give {what}")
        if kind == "file" and not path.is_file():
            raise InputError(f"{option} {path} is a folder; give {what}")
        if kind == "dir" and not path.is_dir():
            raise InputError(f"{option} {path} is a file; give {what}")
    if args.output.exists() and not args.output.is_dir():
        raise InputError(f"--output {args.output} is a file; give a folder (it is created when missing)")
    blocking = next((p for p in args.output.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"--output {args.output}: {blocking} is a file, so the folder cannot be created; give "
                         "another folder")
    _check_device(args.device)
    check_frames("--frames", args.frames)
    for flags, (w, h) in {"--width/--height": (args.width, args.height),
                          "--video-width/--video-height": (args.video_width, args.video_height)}.items():
        if w is not None or h is not None:  # 0 is a value to refuse, not "the default"
            check_size(8 if w is None else w, 8 if h is None else h, flags)
    for flag in ("steps", "video_steps"):
        if getattr(args, flag) is not None:
            check_steps("--" + flag.replace("_", "-"), getattr(args, flag))
    for name, value in zip(("RGB", "NORMAL", "DEPTH"), args.cfg or ()):
        check_cfg(f"--cfg {name}", value)
    for flag in ("min_cfg", "max_cfg"):
        if getattr(args, flag) is not None:
            check_cfg("--" + flag.replace("_", "-"), getattr(args, flag))
    check_int("--fps", args.fps, 1, MAX_FPS)
    check_int("--seed", args.seed, 0, 2**63 - 1, "give a seed in 0..2**63-1")
    check_int("--window", args.window, 1, 4096, "give 1..4096 frames per window (16 is what the models saw)")
    check_int("--overlap", args.overlap, 0, args.window - 1, f"give 0..{args.window - 1}, less than --window")


def _check_device(device: str) -> None:
    import torch

    from .validation import InputError

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"--device {device!r} is not a device; give cpu, cuda, cuda:<index> or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA GPU is available here; give --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: there are only {torch.cuda.device_count()} GPU(s) (cuda:0.."
                             f"cuda:{torch.cuda.device_count() - 1}); give one of them")
    elif parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"--device {device}: Apple's MPS is not available here; give --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device {device}: the command line runs on cpu, cuda or mps; give one of them")


def _check_work(args, frames: int, width: int, height: int, video_size: tuple[int, int] | None) -> None:
    """The memory the run will hold at once, estimated before any model work (see :func:`validation.check_budget`)."""
    from .validation import check_budget

    check_budget(f"Stage 1 on {frames} frames at {width}x{height}", frames * width * height * _STAGE1_BYTES_PER_PIXEL,
                 f"lower --frames ({frames}, or use a shorter --pose file) or --width/--height ({width}x{height})")
    if video_size is not None:
        vw, vh = video_size
        check_budget(f"Stage 2 on {frames} frames at {vw}x{vh}", frames * vw * vh * _STAGE2_BYTES_PER_PIXEL,
                     f"lower --frames ({frames}) or --video-width/--video-height ({vw}x{vh}), or pass --geometry-only")


@contextlib.contextmanager
def _progress(description: str):
    """A tqdm bar driven by the core's ``(step, total, preview)`` callback."""
    from tqdm import tqdm

    with tqdm(desc=description, unit="window-step") as bar:

        def callback(step: int, total: int, preview) -> None:
            bar.total = total
            bar.update(step - bar.n)

        yield callback


def run(args: argparse.Namespace) -> int:
    from .demo import stage1_demo, stage2_demo
    from .media import (
        colorize_depth,
        contact_sheet,
        fit_images,
        from_uint8,
        save_frames,
        save_image,
        save_video,
        to_uint8,
    )
    from .pose import render_poses
    from .precision import prepare_for_device, resolve_dtype
    from .sampling.stage1 import Stage1Options, sample_geometry
    from .sampling.windows import WindowOptions
    from .sources import DEMO, TINY, WEIGHTS, default_source, geometry_pipeline

    # each stage from: the weights given, else the shipped demo checkpoint, else a tiny random model
    weights_given = args.stage1 is not None or args.base is not None
    demo = None if weights_given else stage1_demo()
    source = default_source(weights_given, demo)
    video_demo = stage2_demo() if args.stage2 is None and source != WEIGHTS else None
    video_source = default_source(args.stage2 is not None or source == WEIGHTS, video_demo)
    small = source != WEIGHTS
    args.steps = args.steps or (demo.steps if demo else 8 if source == TINY else 25)
    args.cfg = args.cfg or (demo.guidance if demo else (3.5, 2.5, 3.5))
    args.video_steps = args.video_steps or (video_demo.steps if video_demo else 8 if video_source == TINY else 25)
    default_cfg = video_demo.guidance if video_demo else (1.0, 3.0)
    args.min_cfg = default_cfg[0] if args.min_cfg is None else args.min_cfg
    args.max_cfg = default_cfg[1] if args.max_cfg is None else args.max_cfg
    width = args.width or (demo.width if demo else 64 if small else 256)
    height = args.height or (demo.height if demo else 96 if small else 384)
    # every path, number and the memory of the whole run checked before any model work
    if not args.geometry_only and video_source == WEIGHTS and args.stage2 is None:
        raise ValueError("Stage 2 needs --stage2 (DreamDance Stage-2 weights); or pass --geometry-only")
    poses = _pose_sequence(args, width, height)
    scale = 2 if video_source == WEIGHTS else 1
    video_size = (
        None if args.geometry_only else (args.video_width or scale * width, args.video_height or scale * height)
    )
    _check_work(args, poses.num_frames, width, height, video_size)
    if source == TINY:
        print(
            "NOTE: no weights given and no demo checkpoint in this copy, so this runs TINY RANDOMLY INITIALISED\n"
            "      models of the real architecture. The pipeline runs end to end, but its maps and frames are noise.\n"
            "      Pass --stage1/--base/--image-encoder and --stage2/--svd for real weights (see README)."
        )
    elif source == DEMO:
        print(f"Stage 1: the shipped demo checkpoint ({demo.path}): a small model trained on synthetic mannequins at "
              f"{demo.width}x{demo.height}. Pass --stage1/--base/--image-encoder for real weights.")
    dtype = resolve_dtype(args.precision, args.device)
    geometry = geometry_pipeline(source, args.stage1, args.base, args.image_encoder, dtype=dtype, seed=args.seed)
    if not args.geometry_only and video_source == TINY:
        print("NOTE: Stage 2 runs a TINY RANDOMLY INITIALISED video model (this copy has no Stage-2 demo checkpoint):\n"
              "      its video frames are noise. Pass --stage2 (and --svd) for real weights, or --geometry-only.")
    elif not args.geometry_only and video_source == DEMO:
        print(f"Stage 2: the shipped demo checkpoint ({video_demo.path}): a small model (with its own small SVD) "
              f"trained on synthetic mannequins at {video_demo.width}x{video_demo.height}. Pass --stage2/--svd for "
              "real weights.")
    geometry.to(device=args.device, dtype=dtype)  # the tiny random model is built in fp32: cast it too
    prepare_for_device(geometry.modules(), args.device, channels_last=args.channels_last)

    pose_frames = render_poses(poses, width, height, fit=args.fit)  # uint8 [F, H, W, 3]
    reference = _reference(args, width, height)
    windows = WindowOptions(length=args.window, overlap=args.overlap, weighting=args.weighting)

    # Stage 1: pose -> depth, normal (and low-res RGB)
    started = time.perf_counter()
    with _progress("Stage 1 (geometry)") as callback:
        options = Stage1Options(steps=args.steps, guidance=tuple(args.cfg), windows=windows, seed=args.seed,
                                scheduler=args.scheduler, compile=args.compile)
        result = sample_geometry(geometry, reference.to(args.device), from_uint8(pose_frames).to(args.device), options,
                                 callback)
    print(f"Stage 1: {len(pose_frames)} frames at {width}x{height}, {args.steps} steps in "
          f"{time.perf_counter() - started:.1f} s")
    # Stage 1 is done: its maps and models leave the device before Stage 2 loads
    result.rgb, result.normal, result.depth = (x.cpu() for x in (result.rgb, result.normal, result.depth))
    stage1_modules = [weakref.ref(module) for module in geometry.modules()]
    del geometry
    _release(stage1_modules, args.device)

    out = args.output
    rows = {"pose": pose_frames, "rgb": to_uint8(result.rgb), "normal": to_uint8(result.normal),
            "depth": to_uint8(result.depth)}
    if not args.geometry_only:
        rows["video"] = _animate(args, video_source, poses, result, windows)
        save_video(rows["video"], out / "video.webp", fps=args.fps)
    for name, frames in rows.items():
        save_frames(frames, out / name)
    sheet_rows = [to_uint8(reference), *rows.values(), colorize_depth(result.depth)]
    sheet_rows = [to_uint8(fit_images(from_uint8(row), width, height)) for row in sheet_rows]
    save_image(contact_sheet(sheet_rows), out / "sheet.png")
    print(f"wrote {out}/{{{','.join(rows)}}}/*.png, {out}/sheet.png (rows: reference, {', '.join(rows)}, depth "
          f"colour-mapped){'' if args.geometry_only else f' and the video {out}/video.webp'}")
    if source == TINY or (video_source == TINY and not args.geometry_only):
        print(f"reminder: {'every model' if source == TINY else 'Stage 2'} ran with random weights - those "
              "images show the plumbing works, not what DreamDance produces.")
    return 0


def _release(modules, device) -> None:
    """Free the device memory of models the caller dropped (``modules``: weak references to them): collected, or, if
    something still holds one (e.g. a cache of ``torch.compile``), moved to the CPU; then CUDA's cache is emptied."""
    import gc

    import torch

    gc.collect()
    for module in (ref() for ref in modules):
        if module is not None:
            module.to(device="cpu")
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _animate(args, source: str, poses, geometry, windows):
    """Stage 2 (``source``: one of :data:`.sources.SOURCES`): reference + pose / depth / normal maps -> video frames
    ``uint8 [F, H, W, 3]``.

    The paper's Stage 2 sees the user's image at the video resolution: the reference is loaded and the poses are
    rendered at the video size (by the same fit policy as for Stage 1); only depth and normal come from Stage 1's
    smaller size, fitted to the video size.
    """
    from .media import from_uint8, to_uint8
    from .modalities import ControlMap, control_inputs
    from .pose import render_poses
    from .precision import prepare_for_device, resolve_dtype
    from .sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2
    from .sources import WEIGHTS, video_pipeline

    if source == WEIGHTS and args.stage2 is None:
        raise ValueError("Stage 2 needs --stage2 (DreamDance Stage-2 weights); or pass --geometry-only")
    dtype = resolve_dtype(args.precision, args.device)
    video = video_pipeline(source, args.stage2, args.svd, dtype=dtype, seed=args.seed)
    video.to(device=args.device, dtype=dtype)
    prepare_for_device(video.modules(), args.device, channels_last=args.channels_last)
    scale = 2 if source == WEIGHTS else 1
    width = args.video_width or scale * geometry.depth.shape[-1]
    height = args.video_height or scale * geometry.depth.shape[-2]
    # the maps this pipeline has: poses rendered at the video size, Stage 1's depth and normal (fitted to it)
    have = [ControlMap("pose", from_uint8(render_poses(poses, width, height, fit=args.fit)))]
    have += [ControlMap(name, getattr(geometry, name).float().cpu()) for name in ("depth", "normal")]
    modalities = video.controller.modalities
    lacking = [name for name in modalities if name not in {m.name for m in have}]
    if lacking:
        print(f"NOTE: the video model also reads {lacking} maps, which this command line does not make: they are "
              "absent (black), as robust conditioning trained it to expect")
    maps, strengths = control_inputs(modalities, [m for m in have if m.name in modalities], width, height, args.fit)
    inputs = Stage2Inputs({name: m.to(args.device) for name, m in maps.items()}, 1.0, strengths)
    options = Stage2Options(width=width, height=height, num_frames=poses.num_frames, steps=args.video_steps,
                            min_cfg=args.min_cfg, max_cfg=args.max_cfg, fps=args.fps, seed=args.seed, windows=windows,
                            scheduler=args.video_scheduler, compile=args.compile)
    started = time.perf_counter()
    with _progress("Stage 2 (video)") as callback:
        frames = sample_stage2(video, _reference(args, width, height).to(args.device), inputs, options, callback)
    print(f"Stage 2: {poses.num_frames} frames at {width}x{height}, {args.video_steps} steps in "
          f"{time.perf_counter() - started:.1f} s")
    return to_uint8(frames)


if __name__ == "__main__":
    sys.exit(main())
