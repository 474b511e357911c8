"""Peak memory against video length, both stages, on CPU with the tiny random models (printed; never asserted).

For 16, 64 and 256 frames with windows of 16 frames (overlap 4), each run in a fresh subprocess, the process's peak
RSS (``resource.getrusage(...).ru_maxrss``) after building the tiny pipeline (``dreamdance_core/tiny.py``) and after
sampling; then, per stage, the ratio of the 256-frame peak to the 16-frame peak, raw and less the per-frame inputs
(pose or control maps the caller holds) and the returned frames, which grow with the video by definition. Issue 31's
target: flat within 10 %. What else still grows: the latents and the window blend (fp32); the tiny VAEs downscale by
2 only, so here they are 1/3 of a frame's pixels (1/48 with SD's and SVD's 8x VAEs).

The subprocesses run with glibc's mmap threshold fixed at 1 MiB (``MALLOC_MMAP_THRESHOLD_``, unless already set or
``--malloc-default``): freed tensors then go back to the OS, so the peak measures live memory rather than heap
fragmentation, which otherwise moves a peak by up to ~80 MiB from run to run (a CUDA caching allocator has its own).

Usage, from the repository root: ``python -m bench.bench_memory_frames [--frames 16 64 256] [--size 64] [--steps 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(stage: int, frames: int, size: int, steps: int) -> dict:
    """Sample one video (runs inside the subprocess) and report peak RSS before and after sampling."""
    import torch

    from dreamdance_core.sampling.windows import WindowOptions
    from dreamdance_core.tiny import tiny_geometry_pipeline, tiny_video_pipeline

    torch.set_num_threads(1)
    windows = WindowOptions(length=16, overlap=4)
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 3, size, size, generator=generator) * 2 - 1
    if stage == 1:
        from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry

        pipeline = tiny_geometry_pipeline()
        poses = torch.rand(frames, 3, size, size, generator=generator) * 2 - 1
        built, held = peak_rss_mib(), poses.nbytes
        out = sample_geometry(pipeline, reference, poses, Stage1Options(steps=steps, windows=windows))
        shape, returned = tuple(out.depth.shape), out.rgb.nbytes + out.normal.nbytes + out.depth.nbytes
    else:
        from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2

        pipeline = tiny_video_pipeline()
        maps = {name: torch.rand(frames, 3, size, size, generator=generator) * 2 - 1
                for name in pipeline.controller.modalities}
        options = Stage2Options(width=size, height=size, num_frames=frames, steps=steps, windows=windows)
        built, held = peak_rss_mib(), sum(m.nbytes for m in maps.values())
        video = sample_stage2(pipeline, reference, Stage2Inputs(maps), options)
        shape, returned = tuple(video.shape), video.nbytes
    return {"stage": stage, "frames": frames, "shape": shape, "built_mib": built, "peak_mib": peak_rss_mib(),
            "inputs_mib": held / 2**20, "outputs_mib": returned / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--size", type=int, default=64, help="square video size in pixels (multiple of 8)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--malloc-default", action="store_true", help="keep glibc's dynamic mmap threshold")
    parser.add_argument("--case", type=str, default=None, help=argparse.SUPPRESS)  # "stage,frames" in the subprocess
    args = parser.parse_args(argv)
    if args.case:
        stage, frames = (int(v) for v in args.case.split(","))
        print(json.dumps(run_case(stage, frames, args.size, args.steps)))
        return

    env = dict(os.environ)
    if not args.malloc_default:
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(2**20))
    malloc = f"MALLOC_MMAP_THRESHOLD_={env.get('MALLOC_MMAP_THRESHOLD_', 'glibc default')}"
    print(f"peak RSS (MiB), tiny models on CPU, {args.size}x{args.size}, {args.steps} steps, windows 16/4, {malloc}")
    print(f"{'stage':>5} {'frames':>6} {'after build':>11} {'peak':>8} {'sampling':>8} {'inputs':>7} {'outputs':>7} "
          f"{'peak less in/out':>16}")
    for stage in (1, 2):
        peaks, rest = {}, {}
        for frames in args.frames:
            command = [sys.executable, "-m", "bench.bench_memory_frames", "--case", f"{stage},{frames}",
                       "--size", str(args.size), "--steps", str(args.steps)]
            done = subprocess.run(command, cwd=Path.cwd(), env=env, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            peaks[frames] = result["peak_mib"]
            rest[frames] = result["peak_mib"] - result["inputs_mib"] - result["outputs_mib"]
            print(f"{stage:>5} {frames:>6} {result['built_mib']:>11.1f} {result['peak_mib']:>8.1f} "
                  f"{result['peak_mib'] - result['built_mib']:>8.1f} {result['inputs_mib']:>7.1f} "
                  f"{result['outputs_mib']:>7.1f} {rest[frames]:>16.1f}", flush=True)
        low, high = min(args.frames), max(args.frames)
        print(f"stage {stage}: peak {high}/{low} frames = {peaks[high] / peaks[low]:.3f}, less inputs and outputs "
              f"{rest[high] / rest[low]:.3f} (target <= 1.10)", flush=True)


if __name__ == "__main__":
    main()
