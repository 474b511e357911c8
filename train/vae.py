"""Train a small VAE for the synthetic domain and write the *demo base*: the stand-in for SD1.5 that the demo models
start from (no SD1.5 weights can be shipped or downloaded for a CPU demo).

The base folder is laid out like an SD1.5 diffusers folder, so ``train/stage1.py --pretrained_model <base>
--image_encoder <base>`` trains on it exactly as on SD1.5:

* ``vae/`` - an ``AutoencoderKL`` (``--latent_channels``, SD: 4; downscale ``2^(len(channels) - 1)``) trained here to
  reconstruct the three images Stage 1 encodes: RGB frames, depth images and normal images
  (:mod:`dreamdance_core.geometry` conventions), with an L1 loss plus a small KL term. It decodes the posterior
  *mean* while training (an autoencoder with a KL-regularised latent), since Stage 1 encodes the mean as well. Its
  ``scaling_factor`` is set afterwards to ``1 / std`` of the training latents, as SD's 0.18215 was.
* ``unet/`` - a small SD1.5-shaped ``UNet2DConditionModel`` (:func:`dreamdance_core.tiny.tiny_unet` structure),
  randomly initialised: Stage 1 learns everything from it.
* ``image_encoder/`` - a small CLIP vision model (:func:`dreamdance_core.tiny.tiny_clip_vision`), random and frozen,
  as SD's CLIP is frozen.

    python train/vae.py --train_data_dir data --output_dir runs/demo_base --steps 1500
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

from dreamdance_core.dataset import read_clip, read_index


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_data_dir", required=True, help="dataset folder (dreamdance_core.dataset layout)")
    parser.add_argument("--output_dir", required=True, help="demo base folder to write (vae/, unet/, image_encoder/)")
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
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error(f"--steps and --batch_size must be >= 1, got {args.steps} and {args.batch_size}")
    return args


def load_images(root: str | Path, width: int, height: int) -> torch.Tensor:
    """Every frame's RGB, depth and normal image as core images ``[N, 3, H, W]`` in -1..1."""
    images = []
    for video_id in read_index(root):
        clip = read_clip(Path(root) / video_id, size=(width, height))
        images.append(clip.rgb.astype(np.float32) / 127.5 - 1.0)
        images.append(np.repeat(clip.unit_depth[..., None] * 2.0 - 1.0, 3, axis=-1))
        images.append(clip.normal)
    return torch.from_numpy(np.concatenate(images)).permute(0, 3, 1, 2).contiguous()


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
    """L1 reconstruction of the posterior mean + ``kl_weight`` x KL, AdamW with cosine decay; returns the loss every
    100 steps."""
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    vae.train()
    losses = []
    for step in range(args.steps):
        batch = images[torch.randint(len(images), (args.batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.mode()).sample  # deterministic: Stage 1 encodes the mean too
        loss = F.l1_loss(reconstruction, batch) + args.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == args.steps - 1:
            losses.append(loss.item())
            print(f"step {step}: loss {losses[-1]:.4f}", flush=True)
    return losses


@torch.no_grad()
def latent_scale(vae, images: torch.Tensor, count: int = 512) -> float:
    """``1 / std`` of the latent means of (up to) ``count`` training images."""
    latents = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in images[:count].split(64)])
    return float(1.0 / latents.std())


def main(argv: Sequence[str] | None = None) -> Path:
    from dreamdance_core.tiny import tiny_clip_vision, tiny_unet

    args = parse_args(argv)
    torch.manual_seed(args.seed)
    output = Path(args.output_dir)
    images = load_images(args.train_data_dir, args.width, args.height)
    print(f"{len(images)} training images ({len(images) // 3} frames x rgb/depth/normal) at {args.width}x{args.height}")
    vae = build_vae(args.vae_channels, args.latent_channels)
    started = time.perf_counter()
    losses = train_vae(vae, images, args)
    vae.eval()
    shuffled = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))]
    vae.register_to_config(scaling_factor=latent_scale(vae, shuffled))
    vae.save_pretrained(output / "vae")
    unet = tiny_unet(tuple(args.unet_channels), cross_attention_blocks=args.unet_attention_blocks,
                     latent_channels=args.latent_channels, first_attention_level=args.unet_first_attention_level)
    unet.save_pretrained(output / "unet")
    tiny_clip_vision().save_pretrained(output / "image_encoder")
    record = {"args": vars(args), "losses_every_100": losses, "seconds": time.perf_counter() - started}
    (output / "vae_training.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {output}/{{vae,unet,image_encoder}} in {record['seconds']:.0f} s "
          f"(scaling_factor {vae.config.scaling_factor:.4f})")  # fmt: skip
    return output


if __name__ == "__main__":
    main()
