"""Train DreamDance Stage 1 (Mutually Aligned Geometry Diffusion) in the paper's three steps.

Paper appendix table 1 (every step 60,000 steps, 500 warm-up steps, 256x384 W x H, 16 frames, both UNets from SD1.5):

=====  ==============================================  ===========  =============================  ==========
step   trains                                          lr           runs                            modalities
=====  ==============================================  ===========  =============================  ==========
1      all: both UNets + pose guider ("base")           3e-5         no geometry, no temporal attn   1 random
2      geometry attention only                          2e-5         geometry attn                   3 joint
3      temporal attention only                          2e-5         geometry + temporal attn        3 joint
=====  ==============================================  ===========  =============================  ==========

Step 1 starts from SD1.5 (``--pretrained_model``), step 2 from step 1's weights and step 3 from step 2's
(``--init_from <output_dir>/weights``). The loss is eq. 3: one MSE between the noise and its prediction over the
RGB / normal / depth latents stacked along the batch (step 1: one random modality per clip, with its domain
embedding). The reference image is dropped (zero CLIP embedding, no reference injection) with probability
``reference_dropout`` so the model learns the unconditional branch of classifier-free guidance.

Usage (one GPU, or ``accelerate launch`` for several GPUs / nodes / mixed precision)::

    python train/stage1.py --config train/configs/stage1_step1.yaml --pretrained_model <sd15> \\
        --image_encoder <clip vision> --train_data_dir <dataset> --output_dir runs/step1
    python train/stage1.py --config train/configs/stage1_step2.yaml --init_from runs/step1/weights ...

Outputs in ``--output_dir``: ``checkpoint-<step>/`` (resumable: ``--resume_from_checkpoint latest``),
``logs.jsonl`` (loss, lr, steps/s, peak memory per step), ``validation/step-<step>.png`` (rows: pose, RGB,
normal, depth), and ``weights/`` - the Stage-1 weights folder the loaders read
(``GeometryDiffusionModel.from_pretrained``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from dreamdance_core.models.stage1 import NUM_DOMAINS, GeometryDiffusionModel, noise_schedule

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
CHECKPOINT_MODEL_FOLDER = "stage1"


@dataclass(frozen=True)
class TrainingStep:
    """One of the paper's three Stage-1 steps: what trains, which attention runs, how many modalities per clip."""

    groups: tuple[str, ...]
    geometry_attention: bool
    temporal_attention: bool
    num_modalities: int


STEPS = {
    1: TrainingStep(("base",), geometry_attention=False, temporal_attention=False, num_modalities=1),
    2: TrainingStep(("geometry",), geometry_attention=True, temporal_attention=False, num_modalities=NUM_DOMAINS),
    3: TrainingStep(("temporal",), geometry_attention=True, temporal_attention=True, num_modalities=NUM_DOMAINS),
}

OPTIONS = common_options(
    width=256, height=384, num_frames=16, max_train_steps=60000, learning_rate=3e-5, lr_warmup_steps=500,
    paper="paper, step 1; steps 2 and 3 use lr 2e-5",
) + [
    # model
    Option("training_step", 1, "paper step: 1 all modules (no geometry/temporal attn), 2 geometry attn, "
           "3 temporal attn", type=int, choices=(1, 2, 3)),
    Option("pretrained_model", None, "SD1.5 diffusers folder or single .safetensors file (step 1 initialisation; "
           "also the VAE unless --vae is given)", type=str),
    Option("pretrained_config", None, "diffusers config folder for a single-file --pretrained_model "
           "(default: the shipped SD1.5 configs)", type=str),
    Option("vae", None, "SD1.5 VAE source (default: --pretrained_model)", type=str),
    Option("image_encoder", None, "CLIP vision encoder (transformers folder or .safetensors) for the reference "
           "embedding; its projection dim must equal the UNet's cross-attention dim (768 for SD1.5)", type=str),
    Option("init_from", None, "Stage-1 weights folder to start from (step 2: step 1's <output_dir>/weights, step 3: "
           "step 2's)", type=str),
    Option("tiny", False, "use tiny random models of the real architecture (CPU smoke runs, tests)", type=bool),
    Option("model_seed", 0, "seed of the tiny models", type=int),
    Option("pose_guider_channels", [16, 32, 96, 256], "pose guider block channels (new Stage-1 models only)",
           type=int, nargs="+"),
    Option("attention_heads", 8, "heads of geometry/temporal attention (new Stage-1 models only)", type=int),
    Option("prediction_type", "epsilon", "what the denoising UNet predicts, 'epsilon' (SD1.5, the paper) or "
           "'v_prediction' (new Stage-1 models only; steps 2 and 3 keep step 1's)", type=str,
           choices=("epsilon", "v_prediction")),
    Option("zero_terminal_snr", False, "rescale the noise schedule to a zero terminal SNR (needs v_prediction; new "
           "Stage-1 models only)", type=bool),
    Option("domain_weights", [1.0, 1.0, 1.0], "step 1: relative odds of each target modality (rgb normal depth); "
           "the paper draws them uniformly", type=float, nargs=3),
    Option("validation_guidance", [3.5, 2.5, 3.5], "validation CFG scale per domain (rgb normal depth)", type=float,
           nargs=3),
]


def parse_args(input_args: Sequence[str] | None = None) -> argparse.Namespace:
    args = parse_with_config(build_parser(__doc__.split("\n")[0], OPTIONS), input_args)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """Refuse combinations that cannot train, naming the fix."""
    check_common_args(args)
    if not args.tiny and args.init_from is None and args.pretrained_model is None:
        raise TrainConfigError("give --pretrained_model (SD1.5, step 1), --init_from (steps 2 and 3) or --tiny")
    if args.training_step > 1 and args.init_from is None:
        raise TrainConfigError(
            f"step {args.training_step} continues the previous step: pass --init_from <previous output_dir>/weights"
        )
    if not args.tiny and (args.image_encoder is None or (args.vae or args.pretrained_model) is None):
        raise TrainConfigError("real models need --image_encoder and --vae (or --pretrained_model for the VAE)")
    weights = args.domain_weights
    if len(weights) != NUM_DOMAINS or min(weights) < 0 or sum(weights) <= 0:
        raise TrainConfigError(
            f"--domain_weights needs {NUM_DOMAINS} non-negative odds (rgb normal depth), not all 0; got {weights}"
        )


# --- models ---------------------------------------------------------------------------------------------------------


def load_models(args: argparse.Namespace) -> tuple[GeometryDiffusionModel, Any, Any]:
    """(Stage-1 model, VAE, CLIP image encoder): tiny, from SD1.5, or from a previous step's weights."""
    schedule = noise_schedule(args.prediction_type, args.zero_terminal_snr)
    if args.tiny:
        from dreamdance_core.tiny import tiny_clip_vision, tiny_stage1, tiny_vae

        if args.init_from:
            model = GeometryDiffusionModel.from_pretrained(args.init_from)
        else:
            model = tiny_stage1(args.model_seed)
            model.noise_schedule = schedule
        torch.manual_seed(args.model_seed + 1)  # the same VAE and encoder in every step and on every resume
        return model, tiny_vae(), tiny_clip_vision(num_hidden_layers=1)
    from dreamdance_core.loading.clip_vision import load_clip_image_encoder
    from dreamdance_core.loading.sd15 import load_sd15_unet, load_sd15_vae

    if args.init_from:
        model = GeometryDiffusionModel.from_pretrained(args.init_from)
    else:
        unet = load_sd15_unet(args.pretrained_model, config=args.pretrained_config)
        model = GeometryDiffusionModel.from_base_unet(
            unet, pose_guider_channels=tuple(args.pose_guider_channels), attention_heads=args.attention_heads,
            noise_schedule=schedule,
        )
    vae = load_sd15_vae(args.vae or args.pretrained_model, config=args.pretrained_config)
    return model, vae, load_clip_image_encoder(args.image_encoder)


class Stage1Denoiser(torch.nn.Module):
    """The training forward as one call (reference UNet, pose guider, denoising UNet), so DDP sees one forward."""

    def __init__(self, model: GeometryDiffusionModel):
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, torch.Tensor], num_modalities: int, num_frames: int) -> torch.Tensor:
        b = inputs["pose_maps"].shape[0]
        reference = self.model.encode_reference(inputs["reference_latents"], inputs["reference_embeds"])
        pose = self.model.encode_pose(inputs["pose_maps"].flatten(0, 1))  # [(b f), C0, h, w]
        pose = pose.view(b, 1, num_frames, *pose.shape[1:]).expand(-1, num_modalities, -1, -1, -1, -1)
        return self.model(
            inputs["noisy_latents"], inputs["timesteps"], inputs["encoder_hidden_states"], pose.flatten(0, 2),
            inputs["domain"], num_modalities=num_modalities, num_frames=num_frames, reference=reference,
            reference_index=inputs["reference_index"],
        )


@torch.no_grad()
def make_inputs(
    batch: dict[str, Any], vae, image_encoder, noise_scheduler, step: TrainingStep, reference_dropout: float,
    generator: torch.Generator, domain_weights: Sequence[float] = (1.0,) * NUM_DOMAINS,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Model inputs for one batch and the target (the noise, or the velocity for v-prediction); batch layout
    ``(clips, modalities, frames)``; step 1 draws each clip's one modality with odds ``domain_weights``."""
    from dreamdance_core.geometry import encode_latents
    from dreamdance_core.models.clip_image import encode_reference_image

    device = generator.device
    b, f = batch["pixel_values"].shape[:2]
    m = step.num_modalities
    # 1. target modalities per clip: all three (steps 2, 3) or one at random (step 1)
    if m == 1:
        if len(set(domain_weights)) == 1:  # uniform (the paper): the draw the shipped demo checkpoints were made with
            domain = torch.randint(0, NUM_DOMAINS, (b, 1), generator=generator, device=device)
        else:
            odds = torch.tensor(domain_weights, dtype=torch.float, device=device)
            domain = torch.multinomial(odds.expand(b, -1), 1, generator=generator)
    else:
        domain = torch.arange(NUM_DOMAINS, device=device).expand(b, -1)
    images = torch.stack([batch["pixel_values"], batch["normal"], batch["depth"]], dim=1).to(device)  # DOMAIN_IDS order
    images = images[torch.arange(b, device=device)[:, None], domain]  # [b, m, f, 3, H, W]
    latents = encode_latents(vae, images.flatten(0, 2)).float()  # [(b m f), 4, h, w]
    # 2. noise at one timestep per clip (shared by its modalities and frames, as when sampling)
    noise = torch.randn(latents.shape, generator=generator, device=device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (b,), generator=generator, device=device)
    timesteps = timesteps.repeat_interleave(m * f)
    # 3. reference image, dropped for CFG with probability reference_dropout
    reference = batch["reference"].to(device)
    embeds = encode_reference_image(image_encoder, reference).float()[:, None]  # [b, 1, C], as sampling embeds it
    keep = torch.rand(b, generator=generator, device=device) >= reference_dropout
    inputs = {
        "noisy_latents": noise_scheduler.add_noise(latents, noise, timesteps),
        "timesteps": timesteps,
        "encoder_hidden_states": (embeds * keep[:, None, None]).repeat_interleave(m * f, dim=0),
        "domain": domain.repeat_interleave(f, dim=1).flatten(),
        "reference_latents": encode_latents(vae, reference).float(),
        "reference_embeds": embeds,
        "reference_index": torch.where(keep, torch.arange(b, device=device), -1).repeat_interleave(m * f),
        "pose_maps": batch["pose_maps"].to(device),
    }
    if noise_scheduler.config.prediction_type == "v_prediction":
        return inputs, noise_scheduler.get_velocity(latents, noise, timesteps)
    return inputs, noise


def register_hooks(accelerator) -> None:
    """Checkpoints hold the model as a Stage-1 weights folder (``save_pretrained``), read back strictly."""

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        if accelerator.is_main_process:
            for model in models:
                accelerator.unwrap_model(model).model.save_pretrained(Path(output_dir) / CHECKPOINT_MODEL_FOLDER)
        weights.clear()  # nothing left for accelerate to save as model.safetensors

    def load_hook(models: list, input_dir: str) -> None:
        while models:
            target = accelerator.unwrap_model(models.pop()).model
            loaded = GeometryDiffusionModel.from_pretrained(Path(input_dir) / CHECKPOINT_MODEL_FOLDER)
            target.load_state_dict(loaded.state_dict(), strict=True)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


@torch.no_grad()
def log_validation(model: GeometryDiffusionModel, vae, image_encoder, clip: dict, args, accelerator, step: int) -> Path:
    """Sample the validation clip and write ``validation/step-<step>.png``: rows pose, RGB, normal, depth, and the
    ground truth RGB / normal / depth below."""
    from dreamdance_core.pipelines import GeometryPipeline
    from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry

    was_training = model.training
    model.eval()
    options = Stage1Options(steps=args.validation_inference_steps, guidance=tuple(args.validation_guidance),
                            seed=args.seed)
    with accelerator.autocast():
        out = sample_geometry(GeometryPipeline(model, vae, image_encoder), clip["reference"][None], clip["pose_maps"],
                              options)
    model.train(was_training)
    rows = [clip["pose_maps"], out.rgb, out.normal, out.depth, clip["pixel_values"], clip["normal"], clip["depth"]]
    return write_image_grid(Path(args.output_dir) / "validation" / f"step-{step:06d}.png", [r.cpu() for r in rows])


# --- main -----------------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> Path:
    """Train one Stage-1 step; returns the final weights folder."""
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler

    plan = STEPS[args.training_step]
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(args, find_unused_parameters=plan.groups == ("base",))
    set_seed(args.seed)

    # 1. models: the Stage-1 model trains the step's groups; VAE and image encoder are frozen helpers
    model, vae, image_encoder = load_models(args)
    model.use_geometry_attention, model.use_temporal_attention = plan.geometry_attention, plan.temporal_attention
    trainable = model.set_trainable(*plan.groups)
    model.train()
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    freeze_helpers(accelerator, vae, image_encoder)
    noise_scheduler = DDPMScheduler.from_config(model.noise_schedule)  # the model's (SD1.5's unless set)

    # 2. optimizer, LR schedule, data; accelerate places and wraps them
    optimizer, lr_scheduler = make_optimizer_and_schedule(accelerator, trainable, args)
    dataloader = make_dataloader(args, clip_dataset(args, args.train_data_dir))
    denoiser, optimizer, dataloader, lr_scheduler = accelerator.prepare(
        Stage1Denoiser(model), optimizer, dataloader, lr_scheduler
    )
    register_hooks(accelerator)

    # 3. the loop (resume, accumulation, logs, checkpoints, validation)
    def compute_loss(batch: dict, generator: torch.Generator) -> torch.Tensor:
        inputs, target = make_inputs(
            batch, vae, image_encoder, noise_scheduler, plan, args.reference_dropout, generator, args.domain_weights
        )
        with accelerator.autocast():
            prediction = denoiser(inputs, plan.num_modalities, batch["pixel_values"].shape[1])
        return F.mse_loss(prediction.float(), target)  # eq. 3 over the stacked modalities

    clip = validation_clip(args) if args.validation_steps > 0 and accelerator.is_main_process else None

    def validate(step: int) -> None:
        log_validation(accelerator.unwrap_model(denoiser).model, vae, image_encoder, clip, args, accelerator, step)

    train_loop(accelerator, denoiser, optimizer, lr_scheduler, dataloader, args, compute_loss, validate)

    # 4. the Stage-1 weights folder the loaders read
    weights = output_dir / WEIGHTS_FOLDER
    if accelerator.is_main_process:
        accelerator.unwrap_model(denoiser).model.save_pretrained(weights)
    accelerator.end_training()
    return weights


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli(main, parse_args, argv)

