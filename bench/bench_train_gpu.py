"""Real-size training steps of both stages on one CUDA GPU with random weights: step time and peak memory.

The prepared check for a CUDA machine (issue 33). Builds the paper's models from the shipped configs with random
weights (the builders of :mod:`bench.bench_train_memory`, on the GPU instead of the meta device) and runs a few
optimizer steps each, as the training scripts do under ``--mixed_precision bf16 --gradient_checkpointing true``:
the VAE encodes the clip and the reference each step (no grad, bf16), the trained module runs under bf16 autocast with
fp32 master weights, AdamW (or bitsandbytes' 8-bit AdamW, ``--adam8``), gradient clipping. Prints, per configuration,
the median step time after ``--warmup`` steps and ``torch.cuda.max_memory_allocated``, beside the meta-device estimate
of :mod:`bench.bench_train_memory` for the same configuration with ``--estimate``.

    python -m bench.bench_train_gpu [--steps 3] [--only stage1-1 stage1-2 stage1-3 stage2] [--no-checkpointing]
        [--adam8] [--estimate]
    python -m bench.bench_train_gpu --tiny --device cpu      # the same loop on tiny models (checks the script)

Not run yet: no CUDA machine was available when it was written (only ``--tiny --device cpu`` has run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.bench_train_memory import GB, STAGE1, STAGE2, Setting, stage1_parts, stage2_parts

CONFIGURATIONS = ("stage1-1", "stage1-2", "stage1-3", "stage2")


def tiny_parts(name: str, checkpointing: bool, device: str):
    """The tiny models of ``dreamdance_core.tiny`` in the shape the builders return (script check on a CPU)."""
    from dreamdance_core import tiny
    from dreamdance_core.models.svd_controlnet import SVDControlNet
    from dreamdance_core.training.stage1 import STEPS, Stage1Denoiser
    from dreamdance_core.training.stage2 import Stage2Denoiser

    if name.startswith("stage1"):
        plan = STEPS[int(name[-1])]
        model = tiny.tiny_stage1(0).to(device).train()
        model.use_geometry_attention, model.use_temporal_attention = plan.geometry_attention, plan.temporal_attention
        trainable = model.set_trainable(*plan.groups)
        if checkpointing:
            model.enable_gradient_checkpointing()
        helpers = {"vae": (tiny.tiny_vae().to(device), 0, None), "clip": (tiny.tiny_clip_vision().to(device), 0, None)}
        return Stage1Denoiser(model), helpers, None, trainable
    components = tiny.tiny_svd_components(0)
    unet = components.unet.to(device).requires_grad_(False)
    controlnet = SVDControlNet.from_unet(unet).to(device)
    controller = tiny.tiny_controller().to(device)
    if checkpointing:
        for model in (unet, controlnet):
            if model._supports_gradient_checkpointing:
                model.enable_gradient_checkpointing()
    helpers = {"svd_unet": (unet, 0, None), "vae": (components.vae.to(device), 0, None),
               "clip": (components.image_encoder.to(device), 0, None)}
    return Stage2Denoiser(controller, controlnet, unet), helpers, None, [*controller.parameters(),
                                                                        *controlnet.parameters()]


def stage1_inputs(module, vae, setting: Setting, step: int, device: str, generator: torch.Generator) -> tuple:
    """Random inputs of the Stage-1 training forward (what ``make_inputs`` builds), latents from a real VAE pass."""
    model = module.model
    b, f = setting.batch, setting.frames
    m = 1 if step == 1 else 3
    rand = lambda *shape: torch.randn(*shape, generator=generator, device=device)  # noqa: E731
    with torch.no_grad():
        images = rand(b * (m * f + 1), 3, setting.height, setting.width).clamp(-1, 1).to(vae.dtype)
        latents = vae.encode(images).latent_dist.mode().float()  # the clip's modalities and the reference
    n = b * m * f
    domain = (torch.randint(0, 3, (b, 1), generator=generator, device=device) if m == 1
              else torch.arange(3, device=device).expand(b, -1))
    dim = model.denoising_unet.config.cross_attention_dim
    inputs = {
        "noisy_latents": latents[:n], "timesteps": torch.randint(0, 1000, (n,), generator=generator, device=device),
        "encoder_hidden_states": rand(n, 1, dim), "domain": domain.repeat_interleave(f, dim=1).flatten(),
        "reference_latents": latents[n:], "reference_embeds": rand(b, 1, dim),
        "reference_index": torch.arange(b, device=device).repeat_interleave(m * f),
        "pose_maps": rand(b, f, 3, setting.height, setting.width).clamp(-1, 1),
    }
    return (inputs, m, f), rand(*latents[:n].shape)


def stage2_inputs(module, vae, setting: Setting, device: str, generator: torch.Generator) -> tuple:
    """Random inputs of the Stage-2 training forward, latents from a real VAE pass."""
    b, f = setting.batch, setting.frames
    rand = lambda *shape: torch.randn(*shape, generator=generator, device=device)  # noqa: E731
    with torch.no_grad():
        images = rand(b * (f + 1), 3, setting.height, setting.width).clamp(-1, 1).to(vae.dtype)
        latents = vae.encode(images).latent_dist.mode().float()
    frames, reference = latents[: b * f].unflatten(0, (b, f)), latents[b * f :]
    unet = module.unet
    inputs = {
        "model_input": torch.cat([frames, reference[:, None].expand(-1, f, -1, -1, -1)], dim=2),
        "c_noise": rand(b), "image_embeds": rand(b, 1, unet.config.cross_attention_dim),
        "added_time_ids": torch.tensor([[6.0, 127.0, 0.02]], device=device).repeat(b, 1),
        "controls": {name: rand(b * f, 3, setting.height, setting.width).clamp(-1, 1)
                     for name in module.controller.modalities},
    }
    return (inputs,), rand(*frames.shape)


def run(name: str, args: argparse.Namespace) -> dict:
    device = args.device
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    checkpointing = not args.no_checkpointing
    if args.tiny:
        module, helpers, _, trainable = tiny_parts(name, checkpointing, device)
        setting = Setting(name, 32, 48, 2)
    elif name == "stage2":
        module, helpers, _, trainable = stage2_parts(checkpointing, device)
        setting = STAGE2
    else:
        module, helpers, _, trainable = stage1_parts(int(name[-1]), checkpointing, device)
        setting = STAGE1
    # dtypes as the scripts hold them: trained fp32; Stage 2's frozen SVD UNet and both stages' VAE/CLIP in bf16
    reduced = torch.bfloat16 if device == "cuda" else torch.float32
    for helper, _, _ in helpers.values():
        helper.requires_grad_(False).eval().to(dtype=reduced)
    module.train()
    vae = helpers["vae"][0]
    if args.adam8:
        import bitsandbytes

        optimizer = bitsandbytes.optim.AdamW8bit(trainable, lr=1e-5)
    else:
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    generator = torch.Generator(device=device).manual_seed(0)
    times = []
    for step in range(args.warmup + args.steps):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        if name == "stage2":
            inputs, target = stage2_inputs(module, vae, setting, device, generator)
        else:
            inputs, target = stage1_inputs(module, vae, setting, int(name[-1]), device, generator)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            prediction = module(*inputs)
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{name}: loss is {loss.item()} at step {step}")
    peak = torch.cuda.max_memory_allocated() / GB if device == "cuda" else float("nan")
    result = {"name": name, "step_s": statistics.median(times[args.warmup :]), "first_s": times[0], "peak_gb": peak,
              "size": f"{setting.width}x{setting.height}x{setting.frames}"}
    del module, helpers, optimizer, trainable
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=CONFIGURATIONS, default=list(CONFIGURATIONS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (allocator, cuDNN autotune)")
    parser.add_argument("--no-checkpointing", action="store_true", help="without gradient checkpointing")
    parser.add_argument("--adam8", action="store_true", help="bitsandbytes' 8-bit AdamW")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models (checks the script on a CPU)")
    parser.add_argument("--estimate", action="store_true", help="also print the meta-device estimate of "
                        "bench.bench_train_memory (~1 min of CPU per configuration)")
    args = parser.parse_args()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or --tiny --device cpu to check the script")
    estimates = {}
    if args.estimate and not args.tiny:
        from bench.bench_train_memory import measure

        builders = {"stage1-1": lambda c: stage1_parts(1, c), "stage1-2": lambda c: stage1_parts(2, c),
                    "stage1-3": lambda c: stage1_parts(3, c), "stage2": stage2_parts}
        for name in args.only:
            r = measure(name, builders[name])
            acts = r["activations_gb"] if args.no_checkpointing else r["activations_ckpt_gb"]
            estimates[name] = r["params_gb"] + r["grads_gb"] + (r["adam8_gb"] if args.adam8 else r["adam_gb"]) + acts
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"{device_name}; bf16 autocast; checkpointing {'off' if args.no_checkpointing else 'on'}; "
          f"{'8-bit AdamW' if args.adam8 else 'AdamW'}; batch 1 clip")
    print("| configuration | size (WxHxF) | step time (median) | first step | peak allocated | meta estimate |")
    print("|---|---|---|---|---|---|")
    for name in args.only:
        try:
            r = run(name, args)
        except torch.OutOfMemoryError as exc:
            print(f"| {name} | | out of memory | | | {estimates.get(name, float('nan')):.1f} GB | ({str(exc)[:80]})")
            continue
        print(f"| {name} | {r['size']} | {r['step_s']:.3f} s | {r['first_s']:.2f} s | {r['peak_gb']:.1f} GB | "
              f"{estimates.get(name, float('nan')):.1f} GB |")
        if args.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
