"""Train a small VAE for the synthetic domain and write a *demo base*: the stand-in for SD1.5 (``--kind sd15``, Stage 1)
or for Stable Video Diffusion (``--kind svd``, Stage 2) that the demo models start from (no SD1.5 or SVD weights can be
shipped or downloaded for a CPU demo).

``--kind sd15`` writes a folder laid out like an SD1.5 diffusers folder, so ``train/stage1.py --pretrained_model
<base> --image_encoder <base>`` trains on it exactly as on SD1.5:

* ``vae/`` - an ``AutoencoderKL`` (``--latent_channels``, SD: 4; downscale ``2^(len(channels) - 1)``) trained here to
  reconstruct the three images Stage 1 encodes: RGB frames, depth images and normal images
  (:mod:`dreamdance_core.geometry` conventions), with an L1 loss plus a small KL term. It decodes the posterior
  *mean* while training (an autoencoder with a KL-regularised latent), since Stage 1 encodes the mean as well. Its
  ``scaling_factor`` is set afterwards to ``1 / std`` of the training latents, as SD's 0.18215 was.
* ``unet/`` - a small SD1.5-shaped ``UNet2DConditionModel`` (:func:`dreamdance_core.tiny.tiny_unet` structure),
  randomly initialised: Stage 1 learns everything from it.
* ``image_encoder/`` - a small CLIP vision model (:func:`dreamdance_core.tiny.tiny_clip_vision`), random and frozen,
  as SD's CLIP is frozen.

``--kind svd`` writes a diffusers SVD folder (:func:`dreamdance_core.loading.svd.load_svd_folder` reads it):

* ``vae/`` - an ``AutoencoderKLTemporalDecoder`` (:func:`dreamdance_core.tiny.svd_vae`) trained the same way on RGB
  clips only (Stage 2 encodes only video frames; its control maps enter the controller as pixels), decoding
  ``--clip_frames`` frames together through its temporal decoder, as SVD decodes; or with ``--vae_type tiny`` a
  TAESD-style ``AutoencoderTiny`` (:func:`dreamdance_core.training.demo_base.tiny_autoencoder`; L1 only, it has no
  posterior), which the Stage-2 demo uses: a KL decoder this small loses a frame's colours (``train/README.md``);
* ``unet/`` - a small SVD-shaped UNet (:func:`dreamdance_core.training.demo_base.small_svd_unet`), random: SVD's own
  image-to-video pretraining is ``train/stage2.py --svd_pretraining``, since Stage 2 proper keeps the UNet frozen;
* ``image_encoder/`` as above, and ``scheduler/`` - SVD's scheduler config.

    python train/vae.py --train_data_dir data --output_dir runs/demo_base --steps 1500
    python train/vae.py --kind svd --train_data_dir data --output_dir runs/svd_base --steps 1500
    python train/vae.py --kind svd --vae_type tiny --vae_channels 48 48 --train_data_dir data --output_dir runs/svd_base
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dreamdance_core import autoencoder
from dreamdance_core.dataset import read_clip, read_index


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_data_dir", required=True, help="dataset folder (dreamdance_core.dataset layout)")
    parser.add_argument("--output_dir", required=True, help="demo base folder to write (vae/, unet/, image_encoder/)")
    parser.add_argument("--kind", choices=("sd15", "svd"), default="sd15",
                        help="sd15: Stage 1's base (VAE on RGB, depth and normal images); svd: Stage 2's (temporal "
                        "VAE on RGB clips, SVD-shaped UNet, SVD's scheduler)")
    parser.add_argument("--vae_type", choices=("kl", "tiny"), default="kl",
                        help="kl: SD's AutoencoderKL (sd15) or SVD's AutoencoderKLTemporalDecoder (svd); tiny: a "
                        "TAESD-style AutoencoderTiny (--vae_channels: one width per level, all equal), which keeps a "
                        "frame's colours where a small KL decoder loses them")
    parser.add_argument("--vae_blocks", type=int, nargs="+", default=[1, 2],
                        help="tiny: residual blocks per encoder level (one per --vae_channels entry)")
    parser.add_argument("--clip_frames", type=int, default=4, help="svd: frames decoded together while training")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--vae_channels", type=int, nargs="+", default=[32, 64, 64], help="VAE block channels")
    parser.add_argument("--latent_channels", type=int, default=4, help="VAE latent channels (SD: 4)")
    parser.add_argument("--unet_channels", type=int, nargs="+", default=[32, 64], help="base UNet block channels")
    parser.add_argument("--unet_attention_blocks", type=int, default=1, help="base UNet cross-attention blocks")
    parser.add_argument("--unet_first_attention_level", type=int, default=0,
                        help="base UNet level of the first attention block (0: full latent resolution, as SD)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--kl_weight", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval_data_dir", help="dataset folder never trained on: the reconstruction PSNR of its "
                        "frames (RGB, depth and normal for sd15; RGB clips for svd) is printed and recorded")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.clip_frames < 1:
        parser.error(f"--steps, --batch_size and --clip_frames must be >= 1, got {args.steps}, {args.batch_size} and "
                     f"{args.clip_frames}")
    if args.vae_type == "tiny" and args.kind != "svd":
        parser.error("--vae_type tiny is for --kind svd (Stage 1's loaders read SD's AutoencoderKL)")
    if args.vae_type == "tiny" and (len(set(args.vae_channels)) != 1 or len(args.vae_channels) != len(args.vae_blocks)):
        parser.error(f"--vae_type tiny: --vae_channels must be one width repeated per level and match --vae_blocks in "
                     f"length, got {args.vae_channels} and {args.vae_blocks}")
    if args.kind == "svd" and args.vae_type == "kl" and any(c % 32 for c in args.vae_channels):
        parser.error(f"--kind svd: --vae_channels must be multiples of 32 (the temporal VAE's group norm), got "
                     f"{args.vae_channels}")
    return args


def load_images(root: str | Path, width: int, height: int, clip_frames: int | None = None) -> torch.Tensor:
    """Core images in -1..1: every frame's RGB, depth and normal image ``[N, 3, H, W]``, or with ``clip_frames`` the
    RGB frames alone as clips ``[N, clip_frames, 3, H, W]`` (each video cut into whole clips)."""
    images = []
    for video_id in read_index(root):
        clip = read_clip(Path(root) / video_id, size=(width, height))
        rgb = clip.rgb.astype(np.float32) / 127.5 - 1.0
        if clip_frames is not None:
            usable = len(rgb) // clip_frames * clip_frames
            images.append(rgb[:usable].reshape(-1, clip_frames, *rgb.shape[1:]))
            continue
        images.append(rgb)
        images.append(np.repeat(clip.unit_depth[..., None] * 2.0 - 1.0, 3, axis=-1))
        images.append(clip.normal)
    images = np.concatenate(images)
    if len(images) == 0:
        raise SystemExit(f"{root}: no video has {clip_frames} frames; lower --clip_frames")
    return torch.from_numpy(images).movedim(-1, -3).contiguous()


def build_vae(channels: Sequence[int], latent_channels: int = 4):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=tuple(channels),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=16,
        sample_size=64,
    )


def train_vae(vae, images: torch.Tensor, args: argparse.Namespace) -> list[float]:
    """L1 reconstruction of the posterior mean + ``kl_weight`` x KL, AdamW with cosine decay; returns the mean loss of
    every 100 steps. ``images`` ``[N, frames, 3, H, W]`` (a temporal VAE) are decoded a clip at a time."""
    generator = torch.Generator().manual_seed(args.seed)
    trainable = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    clips = images.ndim == 5
    vae.train()
    losses, recent = [], []
    for step in range(args.steps):
        batch = images[torch.randint(len(images), (args.batch_size,), generator=generator)]
        num_frames = batch.shape[1] if clips else None
        batch = batch.flatten(0, 1) if clips else batch  # [(b f), 3, H, W]
        encoded = vae.encode(batch)
        posterior = getattr(encoded, "latent_dist", None)  # None: a deterministic AutoencoderTiny
        latents = encoded.latents if posterior is None else posterior.mode()  # the pipelines encode the mean
        loss = F.l1_loss(autoencoder.decode(vae, latents, num_frames), batch)
        if posterior is not None:
            loss = loss + args.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        recent.append(loss.item())
        if (step + 1) % 100 == 0 or step == args.steps - 1:
            losses.append(sum(recent) / len(recent))
            print(f"step {step + 1}: mean loss {losses[-1]:.4f} over the last {len(recent)} steps", flush=True)
            recent = []
    return losses


@torch.no_grad()
def reconstruction_psnr(vae, images: torch.Tensor) -> float:
    """Mean PSNR (dB, on 0..1) of the reconstructions of the posterior means of ``images`` (as :func:`load_images`
    returns them: a temporal VAE decodes a clip at a time)."""
    from dreamdance_core.metrics import psnr

    clips = images.ndim == 5
    scores = []
    for chunk in images.split(1 if clips else 64):
        num_frames = chunk.shape[1] if clips else None
        chunk = chunk.flatten(0, 1) if clips else chunk
        reconstruction = autoencoder.decode(vae, autoencoder.encode(vae, chunk), num_frames).clamp(-1, 1)
        scores.append(psnr((reconstruction + 1) / 2, (chunk + 1) / 2))
    return float(np.mean(scores))


@torch.no_grad()
def latent_scale(vae, images: torch.Tensor, count: int = 512) -> float:
    """``1 / std`` of the latent means of (up to) ``count`` training images."""
    latents = torch.cat([autoencoder.encode(vae, chunk) for chunk in images[:count].split(64)])
    return float(1.0 / latents.std())


def build_base(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, torch.nn.Module], dict | None]:
    """(VAE to train, the base's other models by folder name, scheduler config or None) for ``args.kind``."""
    from dreamdance_core import tiny
    from dreamdance_core.training import demo_base

    unet_layout = dict(cross_attention_blocks=args.unet_attention_blocks, latent_channels=args.latent_channels,
                       first_attention_level=args.unet_first_attention_level)
    if args.kind == "svd":
        from dreamdance_core.loading.svd import SCHEDULER_CONFIG, SVD_CONFIG_DIR

        if args.vae_type == "tiny":
            vae = demo_base.tiny_autoencoder(args.vae_channels[0], tuple(args.vae_blocks), args.latent_channels)
        else:
            vae = tiny.svd_vae(tuple(args.vae_channels), args.latent_channels, sample_size=max(args.width, args.height))
            vae.quant_conv.requires_grad_(False)  # SVD has no quant_conv: it stays the identity
        unet = demo_base.small_svd_unet(tuple(args.unet_channels), **unet_layout)
        scheduler = json.loads((SVD_CONFIG_DIR / SCHEDULER_CONFIG).read_text())
    else:
        vae = build_vae(args.vae_channels, args.latent_channels)
        unet, scheduler = tiny.tiny_unet(tuple(args.unet_channels), **unet_layout), None
    return vae, {"unet": unet, "image_encoder": tiny.tiny_clip_vision()}, scheduler


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    output = Path(args.output_dir)
    images = load_images(args.train_data_dir, args.width, args.height, args.clip_frames if args.kind == "svd" else None)
    what = f"clips of {args.clip_frames} RGB frames" if args.kind == "svd" else "images (frames x rgb/depth/normal)"
    print(f"{len(images)} training {what} at {args.width}x{args.height}")
    vae, others, scheduler = build_base(args)
    started = time.perf_counter()
    losses = train_vae(vae, images, args)
    vae.eval()
    shuffled = images.flatten(0, images.ndim - 4)  # frames
    shuffled = shuffled[torch.randperm(len(shuffled), generator=torch.Generator().manual_seed(args.seed))]
    vae.register_to_config(scaling_factor=latent_scale(vae, shuffled))
    vae.save_pretrained(output / "vae")
    for name, model in others.items():
        model.save_pretrained(output / name)
    if scheduler is not None:
        from dreamdance_core.loading.svd import SCHEDULER_CONFIG

        (output / SCHEDULER_CONFIG).parent.mkdir(parents=True, exist_ok=True)
        (output / SCHEDULER_CONFIG).write_text(json.dumps(scheduler, indent=1))
    record = {"args": vars(args), "mean_loss_per_100_steps": losses, "seconds": time.perf_counter() - started}
    if args.eval_data_dir:
        held_out = load_images(
            args.eval_data_dir, args.width, args.height, args.clip_frames if args.kind == "svd" else None
        )
        record["eval_psnr"] = reconstruction_psnr(vae, held_out)
        print(f"reconstruction PSNR on {len(held_out)} held-out {'clips' if held_out.ndim == 5 else 'images'} of "
              f"{args.eval_data_dir}: {record['eval_psnr']:.2f} dB")
    (output / "vae_training.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {output}/{{vae,{','.join(others)}{',scheduler' if scheduler else ''}}} in {record['seconds']:.0f} s "
          f"(scaling_factor {vae.config.scaling_factor:.4f})")
    return output


if __name__ == "__main__":
    main()
