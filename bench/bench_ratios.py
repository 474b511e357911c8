"""CPU cost ratios of our samplers and denoiser against diffusers' own, measured side by side in one run (issue 31).

    .venv/bin/python -m bench.bench_ratios [--svd-size 64x96] [--svd-frames 4] [--steps 2] [--sd-size 16x24]
        [--sd-frames 2] [--repeats 3] [--threads 1] [--only stage1 stage2]

Real architectures with random weights (fp32), small inputs so that a run takes minutes on 2 CPU cores:

* Stage 2 (SVD-XT 1.1 UNet, temporal VAE and ViT-H image encoder from ``dreamdance_core/configs/svd``):
  ``sample_stage2`` without control, ``sample_stage2`` with the cross-domain controller + SVD ControlNet (their
  zero-initialised links given trained-like random values), and diffusers' ``StableVideoDiffusionPipeline`` built
  from the same components (``EulerDiscreteScheduler`` from the same config). The same PIL reference, options and
  noise for all three: the pipeline gets ``latents=`` our sampler's second draw and a generator for its first (the
  augmentation noise), as ``tests/test_svd_peer.py`` does; the largest difference between our plain video and the
  pipeline's is printed as a check that both computed the same thing. Whole calls (CLIP, VAE encode, denoising
  with CFG, chunked VAE decode);
* Stage 1 (SD1.5 config from ``dreamdance_core/configs/sd15``): one forward of the Stage-1 denoiser
  (:class:`~dreamdance_core.models.stage1.GeometryDiffusionModel`: reference injection, geometry and temporal
  attention, pose features after ``conv_in``, domain embedding) on a CFG batch of 2 groups (with / without the
  reference) x 3 domains x frames, the reference UNet's features computed once beforehand (the sampler does that once
  per video), against diffusers' plain ``UNet2DConditionModel`` of the same SD1.5 config on the same latents,
  timestep and CLIP context (one token).

Every repeat runs each variant once, in turn (interleaved, so drift on a shared machine hits all alike); after one
untimed warm-up of each (which also counts its FLOPs with the formulas of ``torch.utils.flop_counter``:
:func:`bench.bench_gpu.counted_flops`) the medians are printed, with their ratio, the median and range of the
per-round ratios, and the FLOP ratios. Denormals are flushed (random weights can drift into them, which
would time the CPU's slow path rather than the code). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from bench.bench_gpu import counted_flops

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "dreamdance_core" / "configs"


def side_by_side(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Warm up (counting FLOPs), then ``repeats`` interleaved rounds: {name: {"flops", "times", "median"}}."""
    results = {}
    with torch.no_grad():
        for name, function in variants.items():
            started = time.perf_counter()
            flops = counted_flops(function)
            results[name] = {"flops": flops, "warmup_s": time.perf_counter() - started, "times": []}
            print(f"  warm-up {name}: {results[name]['warmup_s']:.1f} s, {flops / 1e12:.3f} TFLOP", flush=True)
        for round_ in range(repeats):
            for name, function in variants.items():
                started = time.perf_counter()
                output = function()
                results[name]["times"].append(time.perf_counter() - started)
                del output
            print(f"  round {round_ + 1}: " + ", ".join(f"{n} {r['times'][-1]:.2f} s" for n, r in results.items()),
                  flush=True)
    for result in results.values():
        result["median"] = statistics.median(result["times"])
    return results


def ratio_line(results: dict, numerator: str, denominator: str) -> str:
    """Ratio of the medians, the median and range of the per-round ratios (each round runs both back to back), and
    the FLOP ratio."""
    a, b = results[numerator], results[denominator]
    paired = sorted(x / y for x, y in zip(a["times"], b["times"]))
    return (f"{numerator} / {denominator}: time {a['median'] / b['median']:.3f}x (medians {a['median']:.2f} s / "
            f"{b['median']:.2f} s; per round: median {statistics.median(paired):.3f}x, range "
            f"{paired[0]:.2f}-{paired[-1]:.2f}), FLOPs {a['flops'] / max(b['flops'], 1):.3f}x")


# --- Stage 2 --------------------------------------------------------------------------------------------------------


def pil_reference(width: int, height: int, seed: int = 11):
    """A smooth random image (as tests/test_svd_peer.py's): a blurred-up grid of colours."""
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(seed)
    coarse = PIL.Image.fromarray(rng.integers(0, 256, (7, 5, 3), dtype=np.uint8))
    return coarse.resize((width, height), resample=PIL.Image.BICUBIC)


def stage2_variants(width: int, height: int, frames: int, steps: int) -> tuple[dict, Callable[[], float]]:
    """({name: call}, check) for ours plain, ours controlled and the diffusers pipeline on the same components."""
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessor

    from dreamdance_core.loading.svd import build_svd_models
    from dreamdance_core.models.controller import CrossDomainController
    from dreamdance_core.models.svd_controlnet import SVDControlNet
    from dreamdance_core.pipelines import VideoPipeline
    from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2

    torch.manual_seed(0)
    components = build_svd_models()
    for model in (components.unet, components.vae, components.image_encoder):
        model.eval().requires_grad_(False)
    controlnet = SVDControlNet.from_unet(components.unet).eval().requires_grad_(False)
    controller = CrossDomainController().eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():  # trained-like: the zero-initialised links no longer zero (as bench_stage2)
        for module in (controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block, controller.geometry):
            for parameter in module.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.01)
    pipeline = StableVideoDiffusionPipeline(
        vae=components.vae, image_encoder=components.image_encoder, unet=components.unet,
        scheduler=EulerDiscreteScheduler.from_config(dict(components.scheduler_config)),
        feature_extractor=CLIPImageProcessor(),
    )
    pipeline.set_progress_bar_config(disable=True)
    image = pil_reference(width, height)
    options = Stage2Options(width=width, height=height, num_frames=frames, steps=steps, min_cfg=1.0, max_cfg=3.0,
                            decode_chunk_size=8, seed=13, windows=None)
    maps_generator = torch.Generator().manual_seed(5)
    maps = {name: torch.rand(frames, 3, height, width, generator=maps_generator) * 2 - 1
            for name in controller.modalities}
    controlled = VideoPipeline(components, controller, controlnet)
    scale = components.vae_scale_factor

    def ours():
        return sample_stage2(components, image, None, options)

    def ours_controlled():
        return sample_stage2(controlled, image, Stage2Inputs(maps), options)

    def diffusers_pipeline():
        ours_noise = torch.Generator().manual_seed(options.seed)
        torch.randn((1, 3, height, width), generator=ours_noise)  # the augmentation noise: the pipeline draws it
        latents = torch.randn(1, frames, 4, height // scale, width // scale, generator=ours_noise)
        return pipeline(
            image, height=height, width=width, num_frames=frames, num_inference_steps=steps,
            min_guidance_scale=options.min_cfg, max_guidance_scale=options.max_cfg, fps=options.fps,
            motion_bucket_id=options.motion_bucket_id, noise_aug_strength=options.noise_aug_strength,
            decode_chunk_size=options.decode_chunk_size, generator=torch.Generator().manual_seed(options.seed),
            latents=latents, output_type="pt",
        ).frames[0] * 2.0 - 1.0  # its 0..1 -> our -1..1

    def check() -> float:
        with torch.no_grad():
            return float((ours() - diffusers_pipeline()).abs().max())

    return {"ours (no control)": ours, "diffusers SVD pipeline": diffusers_pipeline,
            "ours (controller + ControlNet)": ours_controlled}, check


# --- Stage 1 --------------------------------------------------------------------------------------------------------


def stage1_variants(height: int, width: int, frames: int) -> dict:
    """{name: call}: the Stage-1 denoiser forward and a plain SD1.5 UNet forward on the same latents (latent size)."""
    from diffusers import UNet2DConditionModel

    from dreamdance_core.models.stage1 import NUM_DOMAINS, GeometryDiffusionModel

    torch.manual_seed(0)
    base = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "sd15" / "unet"))
    plain = base.eval().requires_grad_(False)
    model = GeometryDiffusionModel.from_base_unet(base).eval().requires_grad_(False)
    groups, generator = 2, torch.Generator().manual_seed(1)
    n = groups * NUM_DOMAINS * frames
    channels, cross = plain.config.block_out_channels[0], plain.config.cross_attention_dim
    with torch.no_grad():
        for module in (model.adapter, model.pose_guider, model.denoising_unet.class_embedding):  # trained-like
            for parameter in module.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.01)
        reference = model.encode_reference(torch.randn(1, 4, height, width, generator=generator),
                                           torch.randn(1, 1, cross, generator=generator))
    model.reference_unet.to("meta")  # not used by the timed forward: frees its 3.4 GB (features are computed)
    sample = torch.randn(n, 4, height, width, generator=generator)
    timestep = torch.tensor(500)
    embeds = torch.randn(n, 1, cross, generator=generator)
    embeds[n // groups:] = 0  # the unconditional group: zero CLIP embedding, no reference (the sampler's layout)
    pose = torch.randn(n, channels, height, width, generator=generator)
    domain = torch.arange(NUM_DOMAINS).repeat_interleave(frames).repeat(groups)
    index = [0 if g == 0 else -1 for g in range(groups) for _ in range(NUM_DOMAINS * frames)]

    def stage1_denoiser():
        return model(sample, timestep, embeds, pose, domain, num_modalities=NUM_DOMAINS, num_frames=frames,
                     reference=reference, reference_index=index)

    def plain_unet():
        return plain(sample, timestep, encoder_hidden_states=embeds).sample

    return {"Stage-1 denoiser": stage1_denoiser, "plain SD1.5 UNet": plain_unet}


def parse_size(text: str) -> tuple[int, int]:
    a, b = (int(v) for v in text.lower().split("x"))
    return a, b


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--svd-size", default="64x96", help="Stage-2 video width x height (multiples of 8)")
    parser.add_argument("--svd-frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2, help="Stage-2 steps")
    parser.add_argument("--sd-size", default="16x24", help="Stage-1 latent width x height (pixels / 8)")
    parser.add_argument("--sd-frames", type=int, default=2, help="Stage-1 frames per domain and CFG group")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a busy 2-core box)")
    parser.add_argument("--only", nargs="+", choices=("stage1", "stage2"), default=["stage2", "stage1"])
    args = parser.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    print(f"CPU, {torch.get_num_threads()} thread(s), fp32, random weights, real architectures; {args.repeats} "
          "interleaved rounds after one warm-up each; medians", flush=True)
    lines = []
    if "stage2" in args.only:
        width, height = parse_size(args.svd_size)
        print(f"Stage 2: SVD-XT 1.1 architecture at {width}x{height}, {args.svd_frames} frames, {args.steps} steps, "
              "CFG 1.0 -> 3.0 (2 branches), decode chunks of 8", flush=True)
        variants, check = stage2_variants(width, height, args.svd_frames, args.steps)
        print(f"  max |ours (no control) - diffusers pipeline| = {check():.2e} (same computation)", flush=True)
        results = side_by_side(variants, args.repeats)
        lines += [ratio_line(results, "ours (no control)", "diffusers SVD pipeline"),
                  ratio_line(results, "ours (controller + ControlNet)", "diffusers SVD pipeline"),
                  ratio_line(results, "ours (controller + ControlNet)", "ours (no control)")]
        del variants, check, results
    if "stage1" in args.only:
        width, height = parse_size(args.sd_size)
        print(f"Stage 1: SD1.5 layout, latents {width}x{height} ({8 * width}x{8 * height} px), batch 2 groups x 3 "
              f"domains x {args.sd_frames} frames = {6 * args.sd_frames}", flush=True)
        results = side_by_side(stage1_variants(height, width, args.sd_frames), args.repeats)
        lines.append(ratio_line(results, "Stage-1 denoiser", "plain SD1.5 UNet"))
    print("\nRatios (CPU, a shared and noisy machine: read them to a few per cent):")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    main()
