"""Train DreamDance Stage 2 (Cross-domain Controlled Video Diffusion): controller + SVD ControlNet, SVD frozen.

Paper (section 5 and appendix): SVD 1.1, 50,000 steps, batch 8, 512x768 (W x H), 16 frames, AdamW lr 2e-5.

Training as SVD was trained (EDM, Karras et al. 2022, with SVD's v-prediction parameterisation, matching the
``EulerDiscreteScheduler`` config SVD ships and :func:`dreamdance_core.sampling.stage2.sample_stage2`):

* ``log sigma ~ N(noise_p_mean, noise_p_std^2)`` per clip (SVD fine-tunes use 0.7 / 1.6);
* preconditioning ``c_in = 1 / sqrt(sigma^2 + 1)``, ``c_noise = log(sigma) / 4`` (the UNet's timestep),
  ``c_skip = 1 / (sigma^2 + 1)``, ``c_out = -sigma / sqrt(sigma^2 + 1)``: the denoised latent is
  ``c_skip * x_noisy + c_out * F(c_in * x_noisy, c_noise)``;
* loss ``lambda(sigma) * |denoised - x|^2`` with ``lambda = (sigma^2 + 1) / sigma^2``;
* conditioning as the SVD pipeline: CLIP image embedding of the reference, its noise-augmented VAE latent
  (distribution mode, unscaled) concatenated to every frame's input, added time ids ``(fps - 1, motion bucket,
  noise augmentation)``.

DreamDance's parts: the cross-domain controller encodes the pose / depth / normal maps into one guidance feature per
frame, the ControlNet turns it into residuals for the frozen UNet. Robust conditioning (paper section 4.2) replaces
each modality's map in each frame by a zero image with probability ``control_dropout``; the reference image is
dropped (zero embedding and zero latent, the sampler's unconditional branch) with probability ``reference_dropout``.

Usage::

    python train/stage2.py --config train/configs/stage2.yaml --pretrained_svd <svd_xt_1_1.safetensors or folder> \\
        --train_data_dir <dataset> --output_dir runs/stage2

Outputs in ``--output_dir`` as for Stage 1; ``weights/`` holds ``controller/`` and ``controlnet/``
(:func:`dreamdance_core.loading.svd.load_stage2_control`, ``load_video_pipeline(weights, svd)``).

``--svd_pretraining`` is not part of the paper: it trains the SVD UNet itself, as a plain image-to-video model with the
same loss and conditioning but no control, and writes a whole diffusers SVD folder to ``weights/``. It stands in for
Stability's pretraining where no SVD exists at the size (the demo base from ``train/vae.py --kind svd``); Stage 2
proper then trains on it with ``--pretrained_svd <that weights folder>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch

from dreamdance_core.modalities import DEFAULT_MODALITIES, ModalityError, check_names
from dreamdance_core.models.controller import CrossDomainController
from dreamdance_core.models.svd_controlnet import SVDControlNet
from dreamdance_core.sampling.stage2 import SVDComponents, edm_denoised

from .common import (
    Option,
    TrainConfigError,
    build_parser,
    check_common_args,
    clip_dataset,
    common_options,
    freeze_helpers,
    make_accelerator,
    make_dataloader,
    make_optimizer_and_schedule,
    parse_with_config,
    run_cli,
    train_loop,
    validation_clip,
    write_image_grid,
)

WEIGHTS_FOLDER = "weights"
CHECKPOINT_MODEL_FOLDER = "stage2"
PRETRAINING_MODEL_FOLDER = "svd_unet"

OPTIONS = common_options(
    width=512, height=768, num_frames=16, max_train_steps=50000, learning_rate=2e-5, lr_warmup_steps=0, paper="paper"
) + [
    Option("pretrained_svd", None, "SVD 1.1: single .safetensors file (ComfyUI models/checkpoints) or diffusers "
           "folder", type=str),
    Option("init_from", None, "Stage-2 weights folder (controller/, controlnet/) to continue from", type=str),
    Option("tiny", False, "use tiny random SVD parts (CPU smoke runs, tests)", type=bool),
    Option("svd_pretraining", False, "train the SVD UNet itself as an image-to-video model without control (demo "
           "bases only, not the paper); weights/ is then a whole SVD folder for --pretrained_svd", type=bool),
    Option("model_seed", 0, "seed of the tiny models and of a new controller", type=int),
    Option("controller_channels", [16, 32, 96, 256], "controller encoder widths (new controllers; the last level "
           "count must give the VAE's 8x downscale)", type=int, nargs="+"),
    Option("controller_geometry_tokens", "pixel", "controller geometry attention tokens", choices=("pixel", "frame")),
    Option("attention_heads", 8, "heads of the controller's geometry attention (new controllers)", type=int),
    Option("noise_p_mean", 0.7, "EDM: mean of log sigma", type=float),
    Option("noise_p_std", 1.6, "EDM: standard deviation of log sigma", type=float),
    Option("noise_aug_strength", 0.02, "noise added to the reference before its VAE latent (also a time id)",
           type=float),
    Option("fps", 7, "fps conditioning (time id fps - 1)", type=int),
    Option("motion_bucket_id", 127, "motion bucket conditioning", type=int),
    Option("modalities", None, "control modalities of a new controller, in order (registered in "
           "dreamdance_core.modalities; default: pose depth normal, or --init_from's controller's own list)",
           type=str, nargs="+"),
    Option("control_dropout", [0.1], "robust conditioning: per-frame drop probability of each modality's maps, one "
           "value for all or one per modality", type=float, nargs="+"),
    Option("validation_max_cfg", 3.0, "validation samples: CFG at the last frame (linear from 1.0)", type=float),
]


def parse_args(input_args: Sequence[str] | None = None) -> argparse.Namespace:
    args = parse_with_config(build_parser(__doc__.split("\n")[0], OPTIONS), input_args)
    check_common_args(args)
    if not args.tiny and args.pretrained_svd is None:
        raise TrainConfigError("give --pretrained_svd (svd_xt_1_1.safetensors or a diffusers SVD folder) or --tiny")
    if args.svd_pretraining and args.init_from:
        raise TrainConfigError("--init_from continues a controller and ControlNet, which --svd_pretraining does not "
                               "train: give the SVD to continue as --pretrained_svd instead")
    if any(not 0.0 <= p <= 1.0 for p in args.control_dropout):
        raise TrainConfigError(f"--control_dropout values must be in [0, 1], got {args.control_dropout}")
    if args.modalities is not None:
        try:
            args.modalities = list(check_names(args.modalities))
        except ModalityError as exc:
            raise TrainConfigError(f"--modalities: {exc}") from None
        if args.svd_pretraining:
            raise TrainConfigError("--svd_pretraining trains no controller: leave --modalities out")
        control_dropout(args)
    return args


def control_dropout(args: argparse.Namespace, modalities: Sequence[str] | None = None) -> dict[str, float]:
    """Modality -> drop probability from ``--control_dropout`` (one value for all, or one per modality) for
    ``modalities`` (default ``args.modalities``)."""
    modalities = list(args.modalities if modalities is None else modalities)
    values = list(args.control_dropout)
    if len(values) == 1:
        values = values * len(modalities)
    if len(values) != len(modalities):
        raise TrainConfigError(f"--control_dropout has {len(args.control_dropout)} values for the modalities "
                               f"{modalities}: give one value, or one per modality")
    return dict(zip(modalities, values))


# --- models ---------------------------------------------------------------------------------------------------------


def load_models(args: argparse.Namespace) -> tuple[SVDComponents, CrossDomainController | None, SVDControlNet | None]:
    """SVD parts + the trainable controller and ControlNet (new, or from ``--init_from``; none with
    ``--svd_pretraining``). Sets ``args.modalities`` to the controller's list (empty without one)."""
    from dreamdance_core.loading.svd import load_stage2_control

    if args.tiny:
        from dreamdance_core.tiny import tiny_svd_components

        components = tiny_svd_components(args.model_seed)
    else:
        from dreamdance_core.loading.stage2 import load_svd

        components = load_svd(args.pretrained_svd)
    if args.svd_pretraining:
        args.modalities = []
        return components, None, None
    if args.init_from:
        controller, controlnet = load_stage2_control(args.init_from)
        if args.modalities is not None and list(args.modalities) != list(controller.modalities):
            raise TrainConfigError(f"--modalities {args.modalities} differ from the modalities of the controller in "
                                   f"--init_from ({list(controller.modalities)}); leave --modalities out or train a "
                                   "new controller")
        args.modalities = list(controller.modalities)
    else:
        args.modalities = list(args.modalities or DEFAULT_MODALITIES)
        torch.manual_seed(args.model_seed)
        factor = 2 ** (len(components.vae.config.block_out_channels) - 1)
        channels = tuple(args.controller_channels)[: factor.bit_length()]  # levels: log2(VAE factor) + 1
        controller = CrossDomainController(
            modalities=tuple(args.modalities), block_channels=channels,
            out_channels=components.unet.config.block_out_channels[0],
            geometry_tokens=args.controller_geometry_tokens,
            attention_heads=args.attention_heads,
        )
        controlnet = SVDControlNet.from_unet(components.unet)
    return components, controller, controlnet


class Stage2Denoiser(torch.nn.Module):
    """Controller -> ControlNet -> SVD UNet in one forward (so DDP sees one forward); the plain SVD UNet when there is
    no controller and ControlNet (``--svd_pretraining``)."""

    def __init__(
        self, controller: CrossDomainController | None, controlnet: SVDControlNet | None, unet: torch.nn.Module
    ):
        super().__init__()
        self.controller, self.controlnet, self.unet = controller, controlnet, unet

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        conditions = (inputs["model_input"], inputs["c_noise"], inputs["image_embeds"], inputs["added_time_ids"])
        residuals = {}
        if self.controller is not None:
            guidance = self.controller(inputs["controls"])  # [(b f), c0, h, w]
            down, mid = self.controlnet(*conditions, controlnet_cond=guidance, return_dict=False)
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return self.unet(*conditions, **residuals, return_dict=False)[0]


@torch.no_grad()
def make_inputs(
    batch: dict, components: SVDComponents, args: argparse.Namespace, generator: torch.Generator,
    sigma: float | None = None,
):
    """Model inputs, the clean latents ``[b, f, c, h, w]`` and the EDM quantities for one batch (``sigma``: one noise
    level for every clip instead of the training distribution)."""
    from dreamdance_core.autoencoder import encode
    from dreamdance_core.models.clip_image import encode_clip_image
    from dreamdance_core.robust_conditioning import RobustConditioning

    vae, device = components.vae, generator.device
    frames = batch["pixel_values"].to(device)
    b, f = frames.shape[:2]
    dtype = vae.dtype
    # 1. clean latents (distribution mode, scaled) and EDM noise level per clip
    latents = encode(vae, frames.flatten(0, 1).to(dtype)).float() * vae.config.scaling_factor
    latents = latents.view(b, f, *latents.shape[1:])
    if sigma is None:
        sigma = torch.exp(args.noise_p_mean + args.noise_p_std * torch.randn(b, generator=generator, device=device))
    else:
        sigma = torch.full((b,), float(sigma), device=device)
    sigma = sigma.view(b, 1, 1, 1, 1)
    noisy = latents + sigma * torch.randn(latents.shape, generator=generator, device=device)
    # 2. reference: CLIP embedding and noise-augmented latent, both zero when dropped (the CFG branch)
    reference = batch["reference"].to(device)
    keep = (torch.rand(b, generator=generator, device=device) >= args.reference_dropout).float()
    embeds = encode_clip_image(components.image_encoder, reference).float()[:, None] * keep.view(b, 1, 1)
    augmented = reference + args.noise_aug_strength * torch.randn(reference.shape, generator=generator, device=device)
    image_latents = encode(vae, augmented.to(dtype)).float() * keep.view(b, 1, 1, 1)
    # 3. control maps with robust conditioning (per clip, frame and modality)
    maps = batch.get("controls", {})  # name -> [b, f, 3, H, W], the controller's modalities (none: pretraining)
    dropout = RobustConditioning(control_dropout(args, list(maps)))
    controls = {k: v.flatten(0, 1) for k, v in dropout({k: v.to(device) for k, v in maps.items()}, generator).items()}
    c_in = 1.0 / torch.sqrt(sigma**2 + 1.0)
    inputs = {
        "model_input": torch.cat([c_in * noisy, image_latents[:, None].expand(-1, f, -1, -1, -1)], dim=2),
        "c_noise": 0.25 * torch.log(sigma.flatten()),
        "image_embeds": embeds,
        "added_time_ids": torch.tensor(
            [[args.fps - 1, args.motion_bucket_id, args.noise_aug_strength]], device=device
        ).repeat(b, 1),
        "controls": controls,
    }
    return inputs, latents, noisy, sigma


def edm_loss(prediction: torch.Tensor, latents: torch.Tensor, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """SVD's weighted denoising loss for a v-prediction ``prediction`` (see the module docstring)."""
    denoised = edm_denoised(noisy, prediction.float(), sigma)
    weight = (sigma**2 + 1.0) / sigma**2
    return (weight * (denoised - latents) ** 2).mean()


def register_hooks(accelerator) -> None:
    """Checkpoints hold the controller and ControlNet as a Stage-2 weights folder (or the SVD UNet being pretrained as
    a diffusers folder), read back strictly."""
    from dreamdance_core.loading.svd import load_stage2_control, save_stage2_control
    from dreamdance_core.models.unet_svd import ControlledSVDUNet
    from dreamdance_core.weights import load_model_strict

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        if accelerator.is_main_process:
            for model in models:
                module = accelerator.unwrap_model(model)
                if module.controller is None:
                    module.unet.save_pretrained(Path(output_dir) / PRETRAINING_MODEL_FOLDER)
                else:
                    folder = Path(output_dir) / CHECKPOINT_MODEL_FOLDER
                    save_stage2_control(folder, module.controller, module.controlnet)
        weights.clear()

    def load_hook(models: list, input_dir: str) -> None:
        while models:
            module = accelerator.unwrap_model(models.pop())
            if module.controller is None:
                unet = load_model_strict(ControlledSVDUNet, Path(input_dir) / PRETRAINING_MODEL_FOLDER)
                module.unet.load_state_dict(unet.state_dict(), strict=True)
                continue
            controller, controlnet = load_stage2_control(Path(input_dir) / CHECKPOINT_MODEL_FOLDER)
            module.controller.load_state_dict(controller.state_dict(), strict=True)
            module.controlnet.load_state_dict(controlnet.state_dict(), strict=True)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


@torch.no_grad()
def log_validation(module: Stage2Denoiser, components: SVDComponents, clip: dict, args, accelerator, step: int) -> Path:
    """Sample the validation clip; ``validation/step-<step>.png`` rows: the control maps (the controller's modalities,
    in order; none when pretraining), generated, ground truth."""
    from dreamdance_core.pipelines import VideoPipeline
    from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2

    maps = clip.get("controls", {})
    options = Stage2Options(
        width=args.width, height=args.height, num_frames=args.validation_num_frames,
        steps=args.validation_inference_steps, max_cfg=args.validation_max_cfg, fps=args.fps,
        motion_bucket_id=args.motion_bucket_id, noise_aug_strength=args.noise_aug_strength, seed=args.seed,
    )
    pipeline, inputs = components, None  # pretraining: plain SVD
    if module.controller is not None:
        pipeline, inputs = VideoPipeline(components, module.controller, module.controlnet), Stage2Inputs(maps)
    was_training = module.unet.training
    module.eval()
    with accelerator.autocast():
        video = sample_stage2(pipeline, clip["reference"], inputs, options)
    module.train()
    module.unet.train(was_training)
    rows = [*maps.values(), video, clip["pixel_values"]]
    return write_image_grid(Path(args.output_dir) / "validation" / f"step-{step:06d}.png", [r.cpu() for r in rows])


# --- main -----------------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> Path:
    """Train the Stage-2 controller and ControlNet (or, ``--svd_pretraining``, the SVD UNet); returns the final
    weights folder."""
    from accelerate.utils import set_seed

    from dreamdance_core.loading.svd import save_stage2_control, save_svd_folder

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(args, find_unused_parameters=False)
    set_seed(args.seed)

    # 1. models: SVD frozen (UNet, VAE, CLIP), controller + ControlNet trained (pretraining: the UNet trained)
    components, controller, controlnet = load_models(args)
    trained = [components.unet] if args.svd_pretraining else [controller, controlnet]
    parts = (components.unet, components.vae, components.image_encoder)
    freeze_helpers(accelerator, *(m for m in parts if m not in trained))
    for model in trained:
        model.train().requires_grad_(True)
    if args.gradient_checkpointing:
        for model in (components.unet, controlnet):
            if model is not None and model._supports_gradient_checkpointing:
                model.enable_gradient_checkpointing()
    trainable = [p for model in trained for p in model.parameters()]

    # 2. optimizer, LR schedule, data
    optimizer, lr_scheduler = make_optimizer_and_schedule(accelerator, trainable, args)
    dataloader = make_dataloader(args, clip_dataset(args, args.train_data_dir))
    denoiser, optimizer, dataloader, lr_scheduler = accelerator.prepare(
        Stage2Denoiser(controller, controlnet, components.unet), optimizer, dataloader, lr_scheduler
    )
    register_hooks(accelerator)

    # 3. the loop
    def compute_loss(batch: dict, generator: torch.Generator) -> torch.Tensor:
        inputs, latents, noisy, sigma = make_inputs(batch, components, args, generator)
        with accelerator.autocast():
            prediction = denoiser(inputs)
        return edm_loss(prediction, latents, noisy, sigma)

    clip = validation_clip(args) if args.validation_steps > 0 and accelerator.is_main_process else None

    def validate(step: int) -> None:
        log_validation(accelerator.unwrap_model(denoiser), components, clip, args, accelerator, step)

    train_loop(accelerator, denoiser, optimizer, lr_scheduler, dataloader, args, compute_loss, validate)

    # 4. the Stage-2 weights folder the loaders read (pretraining: an SVD folder)
    weights = output_dir / WEIGHTS_FOLDER
    if accelerator.is_main_process:
        module = accelerator.unwrap_model(denoiser)
        if args.svd_pretraining:
            module.unet.eval()
            save_svd_folder(components, weights)
        else:
            save_stage2_control(weights, module.controller, module.controlnet)
    accelerator.end_training()
    return weights


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli(main, parse_args, argv)

