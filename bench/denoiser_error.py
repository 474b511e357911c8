"""Stage-2 denoising error by noise level on held-out synthetic clips: where a video model falls short.

Stage 2's training objective taken apart by noise level. For each ``sigma`` the held-out clips are noised as
``train/stage2.py`` noises them (its own ``make_inputs``, with no reference or control dropout) and the model's
clean-latent estimate (``edm_denoised``, what the sampler steps with) is compared with the clip's true latents: the
mean squared error over latent elements. Beside it, two estimates that need no model, on the same latents:

* ``reference latent``: the reference image's latent for every frame, the latent-space form of the quality bench's
  "reference repeated" row. A model that does worse than it at high noise has not learned to carry over the
  reference it is given (its background, its colours), and its samples start from a worse picture than a copy;
* ``noisy input``: ``c_skip * noisy``, the estimate of a model that outputs zero.

Rows: the SVD UNet alone (plain image-to-video, as ``--svd_pretraining`` trains it) and, for a Stage-2 weights
folder, the UNet with the controller and ControlNet given the exact pose, depth and normal maps.

    .venv/bin/python -m bench.denoiser_error --stage2 dreamdance_core/demo/stage2
    .venv/bin/python -m bench.denoiser_error --svd runs/svd_pretrained/weights --sigmas 0.5 2 20

Same held-out cases as ``bench/quality.py`` (``--seed``); prints a table, asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

import torch

from bench.quality import HELD_OUT_SEED, Case, held_out_cases

DEFAULT_SIGMAS = (0.1, 0.5, 1.0, 2.0, 5.0, 20.0)


def training_args(width: int, height: int, num_frames: int):
    """``train/stage2.py``'s defaults (its conditioning: fps, motion bucket, noise augmentation), without dropout."""
    from dreamdance_core.training import stage2

    return stage2.parse_args([
        "--tiny", "true", "--train_data_dir", "-", "--output_dir", "-",  # placeholders: only the conditioning is read
        "--reference_dropout", "0",
        "--control_dropout", "0", "0", "0", "--width", str(width), "--height", str(height),
        "--num_frames", str(num_frames),
    ])


def case_batch(case: Case) -> dict[str, torch.Tensor]:
    """A held-out case as a one-clip training batch."""
    return {
        "pixel_values": case.rgb[None], "reference": case.reference,
        "controls": {"pose": case.poses[None], "depth": case.depth_image[None], "normal": case.normal[None]},
    }


@torch.no_grad()
def denoiser_errors(
    components, controller, controlnet, cases: Sequence[Case], sigmas: Sequence[float], noise_seed: int = 0
) -> dict[str, dict[float, float]]:
    """Row name -> sigma -> mean squared error of the clean-latent estimate (see the module docstring)."""
    from dreamdance_core.autoencoder import encode
    from dreamdance_core.sampling.stage2 import edm_denoised
    from dreamdance_core.training import stage2

    frames, _, height, width = cases[0].rgb.shape
    args = training_args(width, height, frames)
    denoisers = {"SVD UNet alone": stage2.Stage2Denoiser(None, None, components.unet)}
    if controller is not None:
        denoisers["with controller + ControlNet"] = stage2.Stage2Denoiser(controller, controlnet, components.unet)
    errors: dict[str, dict[float, list[float]]] = {
        name: {s: [] for s in sigmas} for name in ("reference latent", "noisy input", *denoisers)
    }
    vae = components.vae
    for case in cases:
        reference = encode(vae, case.reference.to(vae.dtype)).float() * vae.config.scaling_factor  # [1, c, h, w]
        for sigma in sigmas:
            generator = torch.Generator().manual_seed(noise_seed)  # the same noise for every row
            inputs, latents, noisy, s = stage2.make_inputs(case_batch(case), components, args, generator, sigma)
            estimates = {
                "reference latent": reference[:, None].expand_as(latents),
                "noisy input": edm_denoised(noisy, torch.zeros_like(noisy), s),
            }
            for name, denoiser in denoisers.items():
                estimates[name] = edm_denoised(noisy, denoiser(inputs).float(), s)
            for name, estimate in estimates.items():
                errors[name][sigma].append(float((estimate - latents).pow(2).mean()))
    return {name: {s: sum(v) / len(v) for s, v in per.items()} for name, per in errors.items()}


def format_table(errors: dict[str, dict[float, float]]) -> str:
    sigmas = list(next(iter(errors.values())))
    lines = ["| estimate | " + " | ".join(f"\u03c3 = {s:g}" for s in sigmas) + " |", "|---|" + "---|" * len(sigmas)]
    lines += [f"| {name} | " + " | ".join(f"{per[s]:.4f}" for s in sigmas) + " |" for name, per in errors.items()]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage2", help="DreamDance Stage-2 weights folder (controller/, controlnet/, its own svd/)")
    parser.add_argument("--svd", help="SVD folder or single file (default: the Stage-2 folder's svd/)")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--sigmas", type=float, nargs="+", default=DEFAULT_SIGMAS)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="master seed of the held-out cases")
    parser.add_argument("--noise-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.stage2 or args.svd):
        parser.error("give --stage2 (a Stage-2 weights folder) and/or --svd (an SVD folder or file)")
    if any(s <= 0 for s in args.sigmas):
        parser.error(f"--sigmas must be positive, got {args.sigmas}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, dict[float, float]]:
    from dreamdance_core.loading.stage2 import load_svd, load_video_pipeline

    args = parse_args(argv)
    started = time.perf_counter()
    if args.stage2:
        video = load_video_pipeline(args.stage2, args.svd)
        components, controller, controlnet = video.components, video.controller, video.controlnet
    else:
        components, controller, controlnet = load_svd(args.svd), None, None
    cases = held_out_cases(args.cases, args.frames, args.width, args.height, args.seed)
    errors = denoiser_errors(components, controller, controlnet, cases, args.sigmas, args.noise_seed)
    print(f"{args.cases} held-out clips (master seed {args.seed}) x {args.frames} frames at {args.width}x{args.height};"
          f" mean squared error of the clean-latent estimate; {time.perf_counter() - started:.1f} s\n")
    print(format_table(errors))
    return errors


if __name__ == "__main__":
    main()
