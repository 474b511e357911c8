"""Stage-2 training (train/stage2.py) on tiny SVD parts and a tiny synthetic dataset, on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamdance_core.dataset import read_clip
from dreamdance_core.loading.svd import load_stage2_control
from dreamdance_core.synthetic import generate_dataset
from tests.test_train_stage1 import ENV, REPO, read_losses

SCRIPT = REPO / "train" / "stage2.py"
TINY = REPO / "train" / "configs" / "stage2_tiny.yaml"


def run_stage2(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--config", str(TINY), *args]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"stage2.py failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


def state(weights: Path) -> dict[str, torch.Tensor]:
    controller, controlnet = load_stage2_control(weights)  # strict
    return {**{f"controller.{k}": v for k, v in controller.state_dict().items()},
            **{f"controlnet.{k}": v for k, v in controlnet.state_dict().items()}}


@pytest.fixture
def stage2():
    from dreamdance_core.training import stage2

    return stage2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data2")
    generate_dataset(root, num_videos=3, num_frames=4, width=32, height=48, seed=0)
    return root


RESUME = ("--max_train_steps", "4", "--checkpointing_steps", "2", "--checkpoints_total_limit", "4",
          "--validation_steps", "4", "--gradient_accumulation_steps", "2")


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stage2_run")
    run_stage2("--train_data_dir", str(dataset), "--output_dir", str(out), *RESUME)
    return out


def test_writes_loadable_weights_with_trained_control_links(uninterrupted):
    import cv2

    weights = state(uninterrupted / "weights")
    # the ControlNet's links start at zero: training must have moved them
    links = [v for k, v in weights.items() if "controlnet_down_blocks" in k or "controlnet_mid_block" in k]
    assert links and all(v.abs().max() > 0 for v in links)
    image = cv2.imread(str(uninterrupted / "validation" / "step-000004.png"))
    assert image is not None and image.shape[:2] == (5 * 48, 2 * 32)  # pose, depth, normal, generated, truth
    assert sorted(p.name for p in uninterrupted.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]


def test_resume_reaches_the_same_weights(dataset, uninterrupted, tmp_path):
    common = ("--train_data_dir", str(dataset), "--output_dir", str(tmp_path), *RESUME, "--validation_steps", "0")
    run_stage2(*common, "--max_train_steps", "2")
    run_stage2(*common, "--resume_from_checkpoint", "latest")
    a, b = state(tmp_path / "weights"), state(uninterrupted / "weights")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_losses(tmp_path)[2:] == read_losses(uninterrupted)[2:]


def test_overfitting_one_clip_lowers_the_loss(tmp_path):
    data = tmp_path / "one"
    generate_dataset(data, num_videos=1, num_frames=2, width=32, height=48, seed=1)
    run_stage2("--train_data_dir", str(data), "--output_dir", str(tmp_path / "run"), "--max_train_steps", "30",
               "--validation_steps", "0", "--checkpointing_steps", "0", "--fixed_noise", "true",
               "--reference_dropout", "0", "--control_dropout", "0", "0", "0")
    losses = read_losses(tmp_path / "run")
    # only the ControlNet and controller learn (the tiny random SVD UNet is frozen), so the floor is not zero
    assert losses[-1] < 0.5 * losses[0], f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    assert all(b <= a * 1.05 for a, b in zip(losses, losses[1:])), losses


def test_edm_conventions_match_svd_sampling(stage2):
    """c_noise = log(sigma) / 4 is the sampler's continuous timestep; the ideal v-prediction has zero loss."""
    from diffusers import EulerDiscreteScheduler

    from dreamdance_core.tiny import tiny_svd_components

    scheduler = EulerDiscreteScheduler.from_config(tiny_svd_components().scheduler_config)
    scheduler.set_timesteps(5)
    torch.testing.assert_close(scheduler.timesteps, 0.25 * torch.log(scheduler.sigmas[:-1]))

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, 4, generator=generator)
    sigma = torch.tensor([0.3, 7.0]).view(2, 1, 1, 1, 1)
    noisy = x + sigma * torch.randn(x.shape, generator=generator)
    ideal = (noisy / (sigma**2 + 1) - x) * torch.sqrt(sigma**2 + 1) / sigma  # solves denoised == x
    assert stage2.edm_loss(ideal, x, noisy, sigma) < 1e-10
    assert stage2.edm_loss(torch.zeros_like(x), x, noisy, sigma) > 0.1


def test_paper_config(stage2):
    args = stage2.parse_args(["--config", str(REPO / "train/configs/stage2.yaml"), "--train_data_dir", "d",
                              "--output_dir", "o", "--pretrained_svd", "svd.safetensors"])
    assert ((args.learning_rate, args.max_train_steps, args.width, args.height, args.num_frames)
            == (2e-5, 50000, 512, 768, 16))
    with pytest.raises(ValueError, match="--pretrained_svd"):
        stage2.parse_args(["--train_data_dir", "d", "--output_dir", "o"])


@pytest.mark.parametrize("vae_type", ["kl", "tiny"])
def test_an_svd_demo_base_is_pretrained_then_controlled(dataset, tmp_path, vae_type):
    """train/vae.py --kind svd -> stage2.py --svd_pretraining (the UNet learns, the rest stays) -> Stage 2 proper, with
    SVD's temporal KL VAE or a TAESD-style AutoencoderTiny (the demo's)."""
    from dreamdance_core.loading.stage2 import load_video_pipeline
    from dreamdance_core.loading.svd import load_svd_folder

    base = tmp_path / "base"
    command = [sys.executable, str(REPO / "train" / "vae.py"), "--kind", "svd", "--train_data_dir", str(dataset),
               "--output_dir", str(base), "--width", "32", "--height", "48", "--clip_frames", "2", "--steps", "101",
               "--batch_size", "2", "--vae_channels", "32", "32", "--unet_channels", "32", "32",
               "--learning_rate", "2e-3", "--eval_data_dir", str(tmp_path / "eval"), "--vae_type", vae_type,
               "--vae_blocks", "1", "1"]
    generate_dataset(tmp_path / "eval", num_videos=1, num_frames=2, width=32, height=48, seed=1)
    subprocess.run(command, check=True, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    record = json.loads((base / "vae_training.json").read_text())
    first, last = record["mean_loss_per_100_steps"][0], record["mean_loss_per_100_steps"][-1]
    assert last < 0.8 * first, f"the {vae_type} VAE did not learn: L1 {first:.3f} -> {last:.3f}"
    before = load_svd_folder(base)  # strict: a complete diffusers SVD folder
    expected = {"kl": "AutoencoderKLTemporalDecoder", "tiny": "AutoencoderTiny"}[vae_type]
    assert type(before.vae).__name__ == expected and before.vae_scale_factor == 2
    if vae_type == "kl":
        quant = before.vae.quant_conv
        torch.testing.assert_close(quant.weight[..., 0, 0], torch.eye(quant.weight.shape[0]), rtol=0, atol=0)
    assert list(before.unet.config.down_block_types) == ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"]
    assert before.scheduler_config["prediction_type"] == "v_prediction"
    clip = torch.from_numpy(read_clip(tmp_path / "eval" / "synth_00000").rgb).movedim(-1, 1).float() / 127.5 - 1
    with torch.no_grad():  # the recorded held-out PSNR: the saved VAE (the KL one decoding the 2 frames together)
        if vae_type == "kl":
            reconstruction = before.vae.decode(before.vae.encode(clip).latent_dist.mode(), num_frames=2).sample
        else:
            reconstruction = before.vae.decode(before.vae.encode(clip).latents).sample
        reconstruction = reconstruction.clamp(-1, 1)
    mse = ((reconstruction - clip) / 2).double().pow(2).flatten(1).mean(1)
    assert record["eval_psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), abs=1e-4)

    pretrained = tmp_path / "pretrained"
    run_stage2("--tiny", "false", "--svd_pretraining", "true", "--pretrained_svd", str(base), "--train_data_dir",
               str(dataset), "--output_dir", str(pretrained), "--max_train_steps", "30", "--validation_steps", "30",
               "--checkpointing_steps", "0", "--fixed_noise", "true", "--reference_dropout", "0",
               "--learning_rate", "2e-3")
    after = load_svd_folder(pretrained / "weights")
    changed = [k for k, v in after.unet.state_dict().items() if not torch.equal(v, before.unet.state_dict()[k])]
    assert len(changed) > 0.9 * len(after.unet.state_dict())
    for name in ("vae", "image_encoder"):
        old, new = getattr(before, name).state_dict(), getattr(after, name).state_dict()
        assert all(torch.equal(old[k], new[k]) for k in old), f"{name} changed during UNet pretraining"
    losses = read_losses(pretrained)
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5]), losses
    assert (pretrained / "validation" / "step-000030.png").is_file()  # sampled without control

    controlled = tmp_path / "stage2"
    run_stage2("--tiny", "false", "--pretrained_svd", str(pretrained / "weights"), "--controller_channels", "8", "16",
               "--train_data_dir", str(dataset), "--output_dir", str(controlled), "--max_train_steps", "2",
               "--validation_steps", "0", "--checkpointing_steps", "0")
    pipeline = load_video_pipeline(controlled / "weights", pretrained / "weights")
    assert all(torch.equal(v, after.unet.state_dict()[k]) for k, v in pipeline.components.unet.state_dict().items())


def test_svd_pretraining_refuses_control_weights(stage2):
    with pytest.raises(ValueError, match="--svd_pretraining"):
        stage2.parse_args(["--train_data_dir", "d", "--output_dir", "o", "--pretrained_svd", "s",
                           "--svd_pretraining", "true", "--init_from", "w"])


def test_svd_pretraining_resumes_exactly(dataset, tmp_path):
    from dreamdance_core.loading.svd import load_svd_folder

    common = ("--svd_pretraining", "true", "--train_data_dir", str(dataset), *RESUME, "--validation_steps", "0")
    run_stage2(*common, "--output_dir", str(tmp_path / "whole"))
    run_stage2(*common, "--output_dir", str(tmp_path / "parts"), "--max_train_steps", "2")
    assert (tmp_path / "parts" / "checkpoint-2" / "svd_unet").is_dir()
    run_stage2(*common, "--output_dir", str(tmp_path / "parts"), "--resume_from_checkpoint", "latest")
    a, b = (load_svd_folder(tmp_path / run / "weights").unet.state_dict() for run in ("whole", "parts"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_losses(tmp_path / "parts")[2:] == read_losses(tmp_path / "whole")[2:]


def test_ema_weights_are_the_average_of_the_training_trajectory(dataset, tmp_path):
    """--use_ema: the final weights are diffusers' EMA of the weights after each optimizer step (decay
    min(ema_decay, n / (n + 9)) at step n >= 2, step 1 copies), training itself is unchanged, and a resumed run
    continues the average exactly."""
    common = ("--train_data_dir", str(dataset), "--max_train_steps", "3", "--checkpointing_steps", "1",
              "--checkpoints_total_limit", "3", "--validation_steps", "0")
    run_stage2(*common, "--output_dir", str(tmp_path / "raw"))
    ema_args = ("--use_ema", "true", "--ema_decay", "0.2")
    run_stage2(*common, *ema_args, "--output_dir", str(tmp_path / "ema"))
    raw = [state(tmp_path / "raw" / f"checkpoint-{n}" / "stage2") for n in (1, 2, 3)]
    for n in (1, 2, 3):  # checkpoints hold the trained weights, the same with or without the average
        ema_run = state(tmp_path / "ema" / f"checkpoint-{n}" / "stage2")
        assert all(torch.equal(ema_run[k], raw[n - 1][k]) for k in ema_run)
    expected = dict(raw[0])
    for n, weights in ((2, raw[1]), (3, raw[2])):
        decay = min(0.2, n / (n + 9))
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    final = state(tmp_path / "ema" / "weights")
    moved = [k for k in final if not torch.equal(raw[2][k], raw[1][k])]
    assert moved, "training did not change the weights: the test cannot tell the average from the last step"
    for k in final:
        torch.testing.assert_close(final[k], expected[k], rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(final[k], raw[2][k]) for k in moved)  # not simply the last step's weights

    resumed = tmp_path / "resumed"
    run_stage2(*common, *ema_args, "--output_dir", str(resumed), "--max_train_steps", "2")
    run_stage2(*common, *ema_args, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest")
    again = state(resumed / "weights")
    assert all(torch.equal(again[k], final[k]) for k in final)


def test_ema_decay_out_of_range_is_a_clear_error(stage2):
    with pytest.raises(ValueError, match="--ema_decay"):
        stage2.parse_args(["--train_data_dir", "d", "--output_dir", "o", "--tiny", "true", "--use_ema", "true",
                           "--ema_decay", "1.5"])
