"""train/vae.py: the demo base (trained VAE + SD1.5-shaped UNet + CLIP) that Stage-1 training and loading accept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from dreamdance_core.loading.stage1 import load_geometry_pipeline
from dreamdance_core.synthetic.generate import generate_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_vae_trainer_writes_a_base_the_stage1_loader_accepts_and_learns(tmp_path):
    generate_dataset(tmp_path / "data", num_videos=1, num_frames=2, width=32, height=48, seed=0)
    command = [sys.executable, str(ROOT / "train" / "vae.py"), "--train_data_dir", str(tmp_path / "data"),
               "--output_dir", str(tmp_path / "base"), "--width", "32", "--height", "48", "--steps", "101",
               "--batch_size", "6", "--vae_channels", "16", "16", "--learning_rate", "2e-3", "--latent_channels", "8",
               "--unet_channels", "32", "32", "--unet_first_attention_level", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    record = json.loads((tmp_path / "base" / "vae_training.json").read_text())
    first, last = record["losses_every_100"][0], record["losses_every_100"][-1]
    assert last < 0.8 * first, f"the VAE did not learn: L1 {first:.3f} -> {last:.3f}"
    pipeline = load_geometry_pipeline(None, base=tmp_path / "base", image_encoder=tmp_path / "base")
    scale = pipeline.vae.config.scaling_factor
    assert 0 < scale != 0.18215  # set from the trained latents' spread, as SD's was
    with torch.no_grad():
        images = torch.rand(2, 3, 48, 32) * 2 - 1
        latents = pipeline.vae.encode(images).latent_dist.mean
    assert latents.shape == (2, 8, 24, 16)  # 2x downscale with two blocks, --latent_channels 8
    unet = pipeline.model.denoising_unet.config  # the base UNet, converted: latents in and out, attention one level down
    assert (unet.in_channels, unet.out_channels) == (8, 8)
    assert list(unet.down_block_types) == ["DownBlock2D", "CrossAttnDownBlock2D"]
    assert list(unet.up_block_types) == ["CrossAttnUpBlock2D", "UpBlock2D"]
