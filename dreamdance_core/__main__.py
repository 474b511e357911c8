"""Command line: the DreamDance main job without ComfyUI.

    python -m dreamdance_core --output outputs/demo
    python -m dreamdance_core --reference me.png --pose dance.json --stage1 weights/stage1 \
        --base v1-5-pruned-emaonly.safetensors --image-encoder clip_vision_vit_l.safetensors

Reference image + skeleton poses (POSE_KEYPOINT / OpenPose JSON, or the built-in sample dance) -> Stage 1: per-frame
depth, normal and low-res RGB, written as PNG frames plus a side-by-side contact sheet. Without weights it runs a tiny
randomly initialised model of the real architecture and says so: the pipeline runs end to end, the images are noise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dreamdance_core", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_argument_group("inputs")
    source.add_argument("--reference", type=Path, help="reference image (default: a synthetic mannequin)")
    source.add_argument("--pose", type=Path, help="POSE_KEYPOINT or OpenPose JSON file (default: built-in sample dance)")
    source.add_argument("--frames", type=int, default=8, help="frames of the built-in dance (default 8)")
    weights = parser.add_argument_group("weights (none given: a tiny random model)")
    weights.add_argument("--stage1", type=Path, help="DreamDance Stage-1 weights folder (from train/stage1.py)")
    weights.add_argument("--base", type=Path, help="SD1.5 diffusers folder or single-file .safetensors")
    weights.add_argument("--image-encoder", type=Path, help="CLIP vision folder or .safetensors")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--width", type=int, help="width, multiple of 8 (default 256; 64 for the tiny model)")
    sampling.add_argument("--height", type=int, help="height, multiple of 8 (default 384; 96 for the tiny model)")
    sampling.add_argument("--steps", type=int, default=25)
    sampling.add_argument("--cfg", type=float, nargs=3, default=(3.5, 2.5, 3.5), metavar=("RGB", "NORMAL", "DEPTH"),
                          help="guidance per domain, ordinary CFG convention (paper's s = cfg - 1)")
    sampling.add_argument("--window", type=int, default=16, help="frames per window for long sequences")
    sampling.add_argument("--overlap", type=int, default=4, help="frames shared by neighbouring windows")
    sampling.add_argument("--weighting", choices=["flat", "pyramid"], default="flat")
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo"), help="output folder")
    return parser.parse_args(argv)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _poses(args, width: int, height: int):
    from .pose import load_pose_file, render_poses, sample_dance

    if args.pose is not None:
        sequence = load_pose_file(args.pose)
    else:
        sequence = sample_dance(args.frames, width, height)
    return render_poses(sequence, width, height, fit="contain")


def _reference(args, width: int, height: int):
    from .media import from_uint8, load_image

    if args.reference is not None:
        return load_image(args.reference, width, height)
    from .synthetic.generate import render_sample

    return from_uint8(render_sample(7, 0, 3, num_frames=1, width=width, height=height).reference.rgb)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as error:  # bad input or weights: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .loading.stage1 import load_geometry_pipeline, tiny_geometry_pipeline
    from .media import colorize_depth, contact_sheet, from_uint8, save_frames, save_image, to_uint8
    from .sampling.stage1 import sample_geometry
    from .sampling.windows import WindowOptions

    random_model = args.stage1 is None and args.base is None
    width = args.width or (64 if random_model else 256)
    height = args.height or (96 if random_model else 384)
    if random_model:
        print(
            "NOTE: no weights given, so this runs a TINY RANDOMLY INITIALISED Stage-1 model of the real architecture.\n"
            "      The pipeline runs end to end, but its depth/normal/RGB images are noise, not predictions.\n"
            "      Pass --stage1/--base/--image-encoder for real weights (see README)."
        )
        pipeline = tiny_geometry_pipeline(args.seed)
    else:
        pipeline = load_geometry_pipeline(args.stage1, args.base, args.image_encoder)
    pipeline.to(device=args.device)

    pose_frames = _poses(args, width, height)  # uint8 [F, H, W, 3]
    reference = _reference(args, width, height)
    windows = WindowOptions(length=args.window, overlap=args.overlap, weighting=args.weighting)

    started = time.perf_counter()
    with tqdm(desc="Stage 1 (geometry)", unit="window-step") as bar:

        def callback(step: int, total: int, preview) -> None:
            bar.total = total
            bar.update(step - bar.n)

        result = sample_geometry(
            pipeline.model, pipeline.vae, pipeline.image_encoder,
            reference.to(args.device), from_uint8(pose_frames).to(args.device),
            steps=args.steps, guidance=tuple(args.cfg), windows=windows, callback=callback,
            generator=torch.Generator().manual_seed(args.seed),
        )  # fmt: skip
    seconds = time.perf_counter() - started

    out = args.output
    rows = {"pose": pose_frames, "rgb": to_uint8(result.rgb), "normal": to_uint8(result.normal),
            "depth": to_uint8(result.depth)}  # fmt: skip
    for name, frames in rows.items():
        save_frames(frames, out / name)
    sheet = contact_sheet([to_uint8(reference), *rows.values(), colorize_depth(result.depth)])
    save_image(sheet, out / "sheet.png")
    print(f"{len(pose_frames)} frames at {width}x{height}, {args.steps} steps in {seconds:.1f} s")
    print(f"wrote {out}/{{pose,rgb,normal,depth}}/*.png and {out}/sheet.png "
          "(rows: reference, pose, rgb, normal, depth, depth colour-mapped)")
    if random_model:
        print("reminder: random weights - the images show the plumbing works, not what DreamDance produces.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
