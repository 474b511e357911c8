"""Stage-1 sampler: MCFG, windows, reference UNet reuse, callbacks, bad input."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dreamdance_core.geometry import encode_latents
from dreamdance_core.models.clip_image import encode_reference_image, to_pil_images, vae_reference_pixels
from dreamdance_core.pipelines import GeometryPipeline
from dreamdance_core.sampling.schedulers import STAGE1_SCHEDULERS, stage1_scheduler
from dreamdance_core.sampling.stage1 import Stage1Options, default_scheduler, sample_geometry
from dreamdance_core.sampling.windows import WindowOptions
from tests.tiny_stage1 import randomize_, tiny_image_encoder, tiny_stage1, tiny_vae

H, W = 32, 24  # image size (latents 4 x 3)


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    model = tiny_stage1()
    randomize_(model.adapter, scale=0.05, seed=2)
    randomize_(model.pose_guider, scale=0.05, seed=3)
    return model, tiny_vae().eval(), tiny_image_encoder()


def inputs(frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, H, W, generator=g) * 2 - 1, torch.rand(frames, 3, H, W, generator=g) * 2 - 1


def sample(parts, reference, poses, callback=None, **options):
    options.setdefault("steps", 2)
    options.setdefault("seed", 42)
    return sample_geometry(GeometryPipeline(*parts), reference, poses, Stage1Options(**options), callback)


def test_outputs_have_one_frame_per_pose_in_every_domain(parts):
    reference, poses = inputs(3)
    out = sample(parts, reference, poses)
    for images in (out.rgb, out.normal, out.depth):
        assert images.shape == (3, 3, H, W)
        assert images.abs().max() <= 1.0
    # deterministic with a seed
    again = sample(parts, reference, poses)
    assert torch.equal(out.depth, again.depth)


def test_equal_scales_match_an_ordinary_cfg_loop(parts):
    """The sampler with (w, w, w) equals a plain CFG loop written independently here."""
    model, vae, encoder = parts
    reference, poses = inputs(2)
    w, steps = 2.5, 2
    out = sample(parts, reference, poses, guidance=(w, w, w), steps=steps)

    scheduler = default_scheduler()
    scheduler.set_timesteps(steps)
    with torch.no_grad():
        embeds = encode_reference_image(encoder, reference)[:, None]
        features = model.encode_reference(encode_latents(vae, reference), embeds)
        pose = model.encode_pose(poses)
        latents = torch.randn(3, 2, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(42))
        domain = torch.arange(3).repeat_interleave(2)
        for t in scheduler.timesteps:
            flat = latents.flatten(0, 1)
            common = dict(num_modalities=3, num_frames=2, reference=features)
            cond = model(flat, t, embeds.expand(6, -1, -1), pose.repeat(3, 1, 1, 1), domain,
                         reference_index=torch.zeros(6, dtype=torch.long), **common)
            uncond = model(flat, t, torch.zeros(6, 1, embeds.shape[-1]), pose.repeat(3, 1, 1, 1), domain,
                           reference_index=torch.full((6,), -1), **common)
            eps = (uncond + w * (cond - uncond)).view_as(latents)
            latents = scheduler.step(eps, t, latents).prev_sample
        depth = vae.decode(latents[2] / vae.config.scaling_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(out.depth, depth, rtol=1e-4, atol=1e-4)


def test_unequal_scales_act_per_domain(parts):
    model, _, _ = parts
    reference, poses = inputs(2)
    model.use_geometry_attention = False  # keep domains independent so only the depth branch may change
    try:
        a = sample(parts, reference, poses, guidance=(3.0, 2.0, 1.5))
        b = sample(parts, reference, poses, guidance=(3.0, 2.0, 6.0))
    finally:
        model.use_geometry_attention = True
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.normal, b.normal)
    assert (a.depth - b.depth).abs().max() > 1e-4


def test_batched_and_separate_cfg_branches_agree(parts):
    reference, poses = inputs(2)
    batched = sample(parts, reference, poses, cfg_batch=True)
    separate = sample(parts, reference, poses, cfg_batch=False)
    torch.testing.assert_close(batched.normal, separate.normal, rtol=1e-4, atol=1e-4)


def test_output_depends_on_the_reference_image(parts):
    _, poses = inputs(2)
    first = sample(parts, inputs(1, seed=1)[0], poses)
    second = sample(parts, inputs(1, seed=2)[0], poses)
    assert (first.rgb - second.rgb).abs().max() > 1e-4


def test_reference_unet_runs_once_per_call_and_callback_once_per_window_per_step(parts):
    model, _, _ = parts
    reference, poses = inputs(7)
    calls = []
    handle = model.reference_unet.register_forward_hook(lambda *args: calls.append(1))
    progress = []
    try:
        out = sample(
            parts, reference, poses, steps=3,
            windows=WindowOptions(length=3, overlap=1),  # windows [0-2] [2-4] [4-6]
            callback=lambda step, total, preview: progress.append((step, total, preview)),
        )
    finally:
        handle.remove()
    assert len(calls) == 1
    assert [(step, total) for step, total, _ in progress] == [(i, 9) for i in range(1, 10)]
    previews = [preview for *_, preview in progress]
    assert all(p.shape == (3, H // 8, W // 8) and p.abs().max() <= 1 for p in previews)  # latent-sized RGB guess
    assert out.depth.shape[0] == 7


class FixedEmbedding(torch.nn.Module):
    """An image encoder that records what it is shown and returns one fixed embedding."""

    def __init__(self, encoder, embeds: torch.Tensor):
        super().__init__()
        self.encoder, self.embeds, self.seen = encoder, embeds, []

    config = property(lambda self: self.encoder.config)
    device = property(lambda self: self.encoder.device)
    dtype = property(lambda self: self.encoder.dtype)

    def forward(self, pixel_values):
        self.seen.append(pixel_values)
        return SimpleNamespace(image_embeds=self.embeds.expand(pixel_values.shape[0], -1))


def test_a_reference_of_any_size_is_embedded_as_given_and_resized_for_the_vae(parts):
    """CLIP sees the original through the encoder's CLIPImageProcessor; the VAE/reference UNet see it at the poses'
    size, resized as diffusers' VaeImageProcessor does."""
    from transformers import CLIPImageProcessor

    model, vae, encoder = parts
    _, poses = inputs(2)
    original = torch.rand(1, 3, 70, 44, generator=torch.Generator().manual_seed(3)) * 2 - 1  # portrait, not 32x24
    spy = FixedEmbedding(encoder, encode_reference_image(encoder, original))
    out = sample((model, vae, spy), original, poses)
    expected_pixels = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size=224)(
        images=to_pil_images(original), return_tensors="pt").pixel_values
    torch.testing.assert_close(spy.seen[0], expected_pixels, rtol=0, atol=0)
    resized = vae_reference_pixels(original, H, W)
    assert resized.shape == (1, 3, H, W)
    torch.testing.assert_close(out.depth, sample((model, vae, spy), resized, poses).depth, rtol=0, atol=0)
    assert not torch.allclose(out.depth, sample(parts, resized, poses).depth, atol=1e-4)  # CLIP did see the original


def test_one_window_covering_everything_equals_no_windows(parts):
    reference, poses = inputs(3)
    plain = sample(parts, reference, poses)
    windowed = sample(parts, reference, poses, windows=WindowOptions(length=16, overlap=4))
    assert torch.equal(plain.normal, windowed.normal)


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_any_length_works_with_windows(parts, frames):
    reference, poses = inputs(frames)
    out = sample(parts, reference, poses, steps=1, windows=WindowOptions(length=2, overlap=1, weighting="pyramid"))
    assert out.rgb.shape[0] == frames and torch.isfinite(out.rgb).all()


def test_cancel_from_the_callback_stops_sampling(parts):
    reference, poses = inputs(2)
    seen = []

    class Cancelled(Exception):
        pass

    def callback(step, total, preview):
        seen.append(step)
        raise Cancelled

    with pytest.raises(Cancelled):
        sample(parts, reference, poses, steps=5, callback=callback)
    assert seen == [1]


@pytest.mark.parametrize(
    "reference_shape, poses_shape, message",
    [
        ((1, 3, 30, 24), (2, 3, 30, 24), "multiples of 8"),
        ((1, 3, 32, 24), (0, 3, 32, 24), "empty"),
        ((1, 1, 32, 24), (2, 3, 32, 24), r"\[1, 3, H, W\]"),
        ((1, 3, 32, 24), (2, 1, 32, 24), r"\[frames, 3, H, W\]"),
        ((2, 3, 32, 24), (2, 3, 32, 24), "one reference image"),
    ],
)
def test_bad_input_is_a_clear_error(parts, reference_shape, poses_shape, message):
    with pytest.raises(ValueError, match=message):
        sample(parts, torch.zeros(reference_shape), torch.zeros(poses_shape))


def test_nan_input_is_a_clear_error(parts):
    reference, poses = inputs(2)
    poses[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sample(parts, reference, poses)


def test_the_default_scheduler_follows_the_models_noise_schedule(parts):
    """A model trained with v-prediction and a zero terminal SNR samples with that schedule unless told otherwise."""
    from dreamdance_core.models.stage1 import noise_schedule

    model = parts[0]
    reference, poses = inputs(2)
    eps_out = sample(parts, reference, poses)
    v_schedule = noise_schedule("v_prediction", zero_terminal_snr=True)
    model.noise_schedule = v_schedule
    try:
        v_out = sample(parts, reference, poses)
    finally:
        model.noise_schedule = noise_schedule()
    assert not torch.allclose(v_out.depth, eps_out.depth, atol=1e-3)
    for name in STAGE1_SCHEDULERS:  # every choice is built over the model's schedule
        config = stage1_scheduler(name, v_schedule).config
        assert config.prediction_type == "v_prediction" and config.rescale_betas_zero_snr, name
    scheduler = default_scheduler(v_schedule)
    assert scheduler.config.prediction_type == "v_prediction" and float(scheduler.alphas_cumprod[-1]) == 0.0
    assert float(default_scheduler().alphas_cumprod[-1]) > 0.0  # SD1.5's schedule keeps some signal at t = 999
