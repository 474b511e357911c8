"""train/vae.py: the demo base (trained VAE + SD1.5-shaped UNet + CLIP) that Stage-1 training and loading accept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamdance_core.loading.stage1 import load_geometry_pipeline
from dreamdance_core.synthetic.generate import generate_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_vae_trainer_writes_a_base_the_stage1_loader_accepts_and_learns(tmp_path):
    generate_dataset(tmp_path / "data", num_videos=1, num_frames=2, width=32, height=48, seed=0)
    generate_dataset(tmp_path / "eval", num_videos=1, num_frames=1, width=32, height=48, seed=1)
    command = [sys.executable, str(ROOT / "train" / "vae.py"), "--train_data_dir", str(tmp_path / "data"),
               "--output_dir", str(tmp_path / "base"), "--width", "32", "--height", "48", "--steps", "101",
               "--batch_size", "6", "--vae_channels", "16", "16", "--learning_rate", "2e-3", "--latent_channels", "8",
               "--unet_channels", "32", "32", "--unet_first_attention_level", "1",
               "--eval_data_dir", str(tmp_path / "eval")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    record = json.loads((tmp_path / "base" / "vae_training.json").read_text())
    first, last = record["mean_loss_per_100_steps"][0], record["mean_loss_per_100_steps"][-1]
    assert last < 0.8 * first, f"the VAE did not learn: mean L1 of steps 1-100 then step 101: {first:.3f} -> {last:.3f}"
    pipeline = load_geometry_pipeline(None, base=tmp_path / "base", image_encoder=tmp_path / "base")
    scale = pipeline.vae.config.scaling_factor
    assert 0 < scale != 0.18215  # set from the trained latents' spread, as SD's was
    with torch.no_grad():
        images = torch.rand(2, 3, 48, 32) * 2 - 1
        latents = pipeline.vae.encode(images).latent_dist.mean
    assert latents.shape == (2, 8, 24, 16)  # 2x downscale with two blocks, --latent_channels 8
    # the held-out reconstruction PSNR it records: the saved VAE's, over RGB, depth and normal images of unseen clips
    sys.path.insert(0, str(ROOT / "train"))
    from vae import load_images

    held_out = load_images(tmp_path / "eval", 32, 48)
    assert held_out.shape == (3, 3, 48, 32)
    with torch.no_grad():
        reconstruction = pipeline.vae.decode(pipeline.vae.encode(held_out).latent_dist.mode()).sample.clamp(-1, 1)
    mse = ((reconstruction - held_out) / 2).double().pow(2).flatten(1).mean(1)
    assert record["eval_psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), abs=1e-4)
    # the base UNet, converted: latents in and out, attention one level down
    unet = pipeline.model.denoising_unet.config
    assert (unet.in_channels, unet.out_channels) == (8, 8)
    assert list(unet.down_block_types) == ["DownBlock2D", "CrossAttnDownBlock2D"]
    assert list(unet.up_block_types) == ["CrossAttnUpBlock2D", "UpBlock2D"]
