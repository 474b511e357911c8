"""Stage-2 sampler figures on CPU with random weights (printed; never asserted).

For each case, in a fresh subprocess (clean peak memory): plain SVD sampling, then the same run with the
cross-domain controller + SVD ControlNet (trained-like random weights), reporting seconds per frame per step,
the controller's time overhead (ratio controlled / plain, same process) and the process's peak RSS.

Cases:
* ``tiny``: the tiny SVD of ``dreamdance_core/tiny.py`` (the one the tests use), 64x64, 16 and 64 frames with
  16-frame windows (overlap 4) and chunked decoding (8 frames) - time/memory growth from 16 to 64 frames;
* ``svd``: the real SVD-XT 1.1 architecture (shipped configs, ~1.5 B UNet parameters) with random weights, at a
  reduced size (default 128x192, 4 frames, 2 steps) because this machine has 2 shared CPU cores.

Usage, from the repository root: ``python -m bench.bench_stage2 [--svd-size 128x192] [--svd-frames 4] [--skip-svd]``
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


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(case: dict) -> dict:
    """Build the parts and time plain vs controlled sampling (runs inside the subprocess)."""
    import torch

    from dreamdance_core.loading.svd import build_svd_models
    from dreamdance_core.models.controller import CrossDomainController
    from dreamdance_core.models.svd_controlnet import SVDControlNet
    from dreamdance_core.pipelines import VideoPipeline
    from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2
    from dreamdance_core.sampling.windows import WindowOptions
    from dreamdance_core.tiny import tiny_controller, tiny_svd_components

    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    with torch.no_grad():
        if case["config"] == "tiny":
            components, controller = tiny_svd_components(), tiny_controller()
        else:
            components = build_svd_models()
            controller = CrossDomainController()
        for model in (components.unet, components.vae, components.image_encoder):
            model.eval()
        controlnet = SVDControlNet.from_unet(components.unet).eval()
        generator = torch.Generator().manual_seed(4)
        for module in (controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block, controller.geometry):
            for parameter in module.parameters():  # trained-like: the zero-initialised links no longer zero
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.01)
    built_rss = peak_rss_mib()
    width, height, frames = case["width"], case["height"], case["frames"]
    windows = WindowOptions(length=16, overlap=4) if case["windows"] else None
    options = Stage2Options(width=width, height=height, num_frames=frames, steps=case["steps"], max_cfg=2.5,
                            decode_chunk_size=8, windows=windows)
    generator = torch.Generator().manual_seed(5)  # random reference and control maps in -1..1
    reference = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    maps = {name: torch.rand(frames, 3, height, width, generator=generator) * 2 - 1 for name in controller.modalities}
    result = dict(case, built_rss_mib=built_rss)
    for label, pipeline, inputs in (
        ("plain", components, None),
        ("controlled", VideoPipeline(components, controller, controlnet), Stage2Inputs(maps)),
    ):
        start = time.perf_counter()
        sample_stage2(pipeline, reference, inputs, options)
        seconds = time.perf_counter() - start
        result[f"{label}_s"] = seconds
        result[f"{label}_s_per_frame_step"] = seconds / (frames * case["steps"])
        result[f"{label}_peak_rss_mib"] = peak_rss_mib()
    result["controller_overhead_ratio"] = result["controlled_s"] / result["plain_s"]
    return result


def spawn(case: dict) -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "bench.bench_stage2", "--case", json.dumps(case)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    if output.returncode:
        raise RuntimeError(f"case {case} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def show(result: dict) -> None:
    print(
        f"{result['config']:>4} {result['width']}x{result['height']} {result['frames']:>3} frames "
        f"{result['steps']} steps windows={'16/4' if result['windows'] else 'none'}: "
        f"plain {result['plain_s']:.2f} s ({result['plain_s_per_frame_step']:.3f} s/frame/step), "
        f"controlled {result['controlled_s']:.2f} s ({result['controlled_s_per_frame_step']:.3f} s/frame/step), "
        f"controller overhead x{result['controller_overhead_ratio']:.2f}; peak RSS after build "
        f"{result['built_rss_mib']:.0f} MiB, after plain {result['plain_peak_rss_mib']:.0f} MiB, after controlled "
        f"{result['controlled_peak_rss_mib']:.0f} MiB",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--svd-size", default="128x192", help="width x height of the SVD-sized case")
    parser.add_argument("--svd-frames", type=int, default=4)
    parser.add_argument("--skip-svd", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    print("CPU, fp32, random weights; each line is one fresh process. Tiny = dreamdance_core/tiny.py's SVD.")
    tiny = dict(config="tiny", width=64, height=64, steps=2, windows=True, threads=args.threads)
    grown = [spawn(dict(tiny, frames=frames)) for frames in (16, 64)]
    for result in grown:
        show(result)
    ratio_t = grown[1]["controlled_s"] / grown[0]["controlled_s"]
    ratio_m = grown[1]["controlled_peak_rss_mib"] / grown[0]["controlled_peak_rss_mib"]
    print(f"tiny growth 16 -> 64 frames (windows 16/4, decode chunks of 8): time x{ratio_t:.2f}, "
          f"peak RSS x{ratio_m:.2f}")
    if not args.skip_svd:
        width, height = (int(v) for v in args.svd_size.split("x"))
        print(f"SVD-XT-sized architecture with random weights at a REDUCED size {width}x{height}, "
              f"{args.svd_frames} frames, 2 steps, CFG on (2 branches):")
        show(spawn(dict(config="svd", width=width, height=height, frames=args.svd_frames, steps=2, windows=False,
                        threads=args.threads)))


if __name__ == "__main__":
    main()
