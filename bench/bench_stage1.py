"""Stage-1 speed and memory: seconds per frame per step, peak memory, reference-UNet calls, window scaling.

Prints figures, asserts nothing. Each measurement runs in its own subprocess so peak memory is its own.

    .venv/bin/python -m bench.bench_stage1                 # tiny config, CPU
    .venv/bin/python -m bench.bench_stage1 --size sd15 --frames 2 --steps 1   # SD1.5-sized, random weights
    .venv/bin/python -m bench.bench_stage1 --size sd15 --device cuda          # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(size: str, device: str, dtype):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from dreamdance_core.models.stage1 import GeometryDiffusionModel

    if size == "tiny":
        from dreamdance_core.tiny import tiny_clip_vision, tiny_stage1, tiny_vae

        model, vae, encoder = tiny_stage1(), tiny_vae(), tiny_clip_vision()
    else:  # SD1.5 architecture (configs shipped with the package), random weights
        config_dir = ROOT / "dreamdance_core" / "configs" / "sd15"
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae"))
        model = GeometryDiffusionModel.from_base_unet(unet)
        encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                             image_size=224, patch_size=14, projection_dim=768)
        )
    return [m.to(device=device, dtype=dtype).eval() for m in (model, vae, encoder)]


def measure(args) -> dict:
    import torch

    from dreamdance_core.pipelines import GeometryPipeline
    from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry
    from dreamdance_core.sampling.windows import WindowOptions

    torch.set_num_threads(torch.get_num_threads())
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.precision]
    model, vae, encoder = build(args.size, args.device, dtype)
    width, height = args.resolution
    frames = args.frames[0]
    reference = torch.rand(1, 3, height, width, device=args.device) * 2 - 1
    poses = torch.rand(frames, 3, height, width, device=args.device) * 2 - 1
    calls = []
    model.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    windows = WindowOptions(length=args.window, overlap=args.overlap) if args.window else None
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    sample_geometry(GeometryPipeline(model, vae, encoder), reference, poses,
                    Stage1Options(steps=args.steps, windows=windows, seed=0))
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(size=args.size, frames=frames, steps=args.steps, window=args.window, seconds=seconds,
                s_per_frame_step=seconds / (frames * args.steps), peak_mib=peak,
                rss_growth_mib=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024,
                reference_unet_calls=len(calls))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("W", "H"), default=None)
    parser.add_argument("--frames", type=int, nargs="+", default=None, help="frame counts to compare")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--window", type=int, default=16, help="window length (0: no windows)")
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.resolution is None:
        args.resolution = (64, 96) if args.size == "tiny" else (256, 384)
    if args.one:
        print(json.dumps(measure(args)))
        return
    frames = args.frames or ([16, 32, 64] if args.size == "tiny" else [2])
    print(f"Stage 1 bench: size={args.size} device={args.device} precision={args.precision} "
          f"resolution={args.resolution[0]}x{args.resolution[1]} steps={args.steps} "
          f"window={args.window or 'none'}/{args.overlap}")
    print(f"{'frames':>6} {'total s':>9} {'s/frame/step':>13} {'peak MiB':>9} {'ref-UNet calls':>15}")
    for count in frames:
        command = [sys.executable, "-m", "bench.bench_stage1", "--one", "--size", args.size, "--device", args.device,
                   "--precision", args.precision, "--resolution", *map(str, args.resolution),
                   "--frames", str(count), "--steps", str(args.steps), "--window", str(args.window),
                   "--overlap", str(args.overlap)]
        result = json.loads(
            subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout.splitlines()[-1]
        )
        print(f"{count:>6} {result['seconds']:>9.2f} {result['s_per_frame_step']:>13.4f} {result['peak_mib']:>9.0f} "
              f"{result['reference_unet_calls']:>15}")


if __name__ == "__main__":
    main()
