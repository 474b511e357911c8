"""bench/denoiser_error.py on the tiny random Stage 2: its rows against the same quantities computed directly."""

import contextlib
import io

import pytest
import torch

from bench import denoiser_error, quality
from dreamdance_core.autoencoder import encode
from dreamdance_core.tiny import tiny_video_pipeline

SIGMAS = (0.3, 4.0)


@pytest.fixture(scope="module")
def case() -> quality.Case:
    return quality.held_out_cases(1, 2, 32, 48, seed=7)[0]


def test_the_trivial_rows_are_the_reference_latent_and_the_zero_output(case):
    video = tiny_video_pipeline(seed=1)
    vae = video.components.vae
    errors = denoiser_error.denoiser_errors(video.components, None, None, [case], SIGMAS)
    assert list(errors) == ["reference latent", "noisy input", "SVD UNet alone"]
    with torch.no_grad():
        latents = encode(vae, case.rgb).float() * vae.config.scaling_factor
        reference = encode(vae, case.reference).float() * vae.config.scaling_factor
    for sigma in SIGMAS:
        assert errors["reference latent"][sigma] == pytest.approx(float((reference - latents).pow(2).mean()), rel=1e-5)
    # c_skip * noisy - x = -sigma^2 / (sigma^2 + 1) x + sigma / (sigma^2 + 1) n, in expectation over unit noise n:
    second_moment = float(latents.pow(2).mean())
    for sigma in SIGMAS:
        expected = (sigma**2 / (sigma**2 + 1)) ** 2 * second_moment + sigma**2 / (sigma**2 + 1) ** 2
        assert errors["noisy input"][sigma] == pytest.approx(expected, rel=0.1)


def test_a_unet_that_outputs_zero_scores_as_the_noisy_input(case):
    video = tiny_video_pipeline(seed=1)
    with torch.no_grad():
        video.components.unet.conv_out.weight.zero_()
        video.components.unet.conv_out.bias.zero_()
    errors = denoiser_error.denoiser_errors(video.components, None, None, [case], SIGMAS)
    for sigma in SIGMAS:
        assert errors["SVD UNet alone"][sigma] == pytest.approx(errors["noisy input"][sigma], rel=1e-6)


def test_the_control_row_runs_the_controlnet_a_fresh_one_changes_nothing(case):
    """A ControlNet fresh from ``from_unet`` has zero links: the controlled row equals the UNet's. Non-zero links must
    change it, so the row really goes through the control path."""
    video = tiny_video_pipeline(seed=1)
    args = (video.components, video.controller, video.controlnet, [case], SIGMAS)
    fresh = denoiser_error.denoiser_errors(*args)
    for sigma in SIGMAS:
        assert fresh["with controller + ControlNet"][sigma] == pytest.approx(fresh["SVD UNet alone"][sigma], rel=1e-6)
    with torch.no_grad():
        for p in video.controlnet.controlnet_mid_block.parameters():
            p.normal_(0, 0.5)
    linked = denoiser_error.denoiser_errors(*args)
    assert all(linked["with controller + ControlNet"][s] != pytest.approx(linked["SVD UNet alone"][s], rel=1e-3)
               for s in SIGMAS)
    assert linked["SVD UNet alone"] == pytest.approx(fresh["SVD UNet alone"], rel=1e-6)


def test_the_command_line_prints_one_row_per_estimate_and_a_column_per_sigma(tmp_path):
    from dreamdance_core.loading.svd import save_stage2_control, save_svd_folder

    video = tiny_video_pipeline(seed=2)
    save_stage2_control(tmp_path, video.controller, video.controlnet)
    save_svd_folder(video.components, tmp_path / "svd")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        errors = denoiser_error.main(["--stage2", str(tmp_path), "--cases", "1", "--frames", "2", "--width", "32",
                                      "--height", "48", "--sigmas", "0.5", "8"])
    lines = [line for line in out.getvalue().splitlines() if line.startswith("|")]
    assert lines[0] == "| estimate | \u03c3 = 0.5 | \u03c3 = 8 |"
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(errors) == [
        "reference latent", "noisy input", "SVD UNet alone", "with controller + ControlNet"
    ]
    with pytest.raises(SystemExit):
        denoiser_error.main(["--cases", "1"])  # no model given
