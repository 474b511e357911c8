"""Stage 2 with an absent control is SVD: ``sample_stage2`` equals diffusers' ``StableVideoDiffusionPipeline``
built from the same tiny components, on the same noise.

Noise: ``sample_stage2`` draws the augmentation noise and then the initial latents from one CPU generator seeded by
``seed``; the pipeline draws the augmentation noise from its ``generator`` (``randn_tensor(image.shape, ...)``) and
takes the latents from ``latents=``. So the pipeline gets a fresh generator with the same seed (its first draw is ours),
and ``latents=`` is our second draw, replayed here from the same seed.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline

from dreamdance_core.models.clip_image import encode_clip_image, reference_tensor
from dreamdance_core.sampling.stage2 import Stage2Options
from tests.stage2_helpers import Control, sample
from tests.tiny_svd import control_maps, randomize_, tiny_components, tiny_controller, tiny_controlnet

W, H = 32, 16  # the video (landscape)
REFERENCE_SIZE = (40, 56)  # the reference (width, height): portrait, neither the video's size nor CLIP's 224
FRAMES = 3


@pytest.fixture(scope="module")
def parts():
    return tiny_components()


@pytest.fixture(scope="module")
def pipeline(parts):
    from transformers import CLIPImageProcessor

    return StableVideoDiffusionPipeline(
        vae=parts.vae,
        image_encoder=parts.image_encoder,
        unet=parts.unet,
        scheduler=EulerDiscreteScheduler.from_config(dict(parts.scheduler_config)),
        feature_extractor=CLIPImageProcessor(),
    )


def pil_reference(size=REFERENCE_SIZE, seed: int = 11) -> PIL.Image.Image:
    """A smooth random image (a blurred-up grid of colours), so that resizing it is not all aliasing."""
    rng = np.random.default_rng(seed)
    coarse = PIL.Image.fromarray(rng.integers(0, 256, (7, 5, 3), dtype=np.uint8))
    return coarse.resize(size, resample=PIL.Image.BICUBIC)


def options(**overrides) -> Stage2Options:
    values = dict(width=W, height=H, num_frames=FRAMES, steps=3, min_cfg=1.5, max_cfg=3.0, fps=9, motion_bucket_id=90,
                  noise_aug_strength=0.07, decode_chunk_size=2, seed=13, windows=None)
    values.update(overrides)
    return Stage2Options(**values)


def pipeline_frames(pipeline, image: PIL.Image.Image, opts: Stage2Options, vae_shape: tuple[int, ...]) -> torch.Tensor:
    """The pipeline's video, ``[f, 3, H, W]`` in -1..1, on our noise (see the module docstring)."""
    ours = torch.Generator().manual_seed(opts.seed)
    torch.randn(vae_shape, generator=ours)  # the augmentation noise: the pipeline draws it itself
    latents = torch.randn(1, opts.num_frames, 4, opts.height // 2, opts.width // 2, generator=ours)
    with torch.no_grad():
        frames = pipeline(
            image, height=opts.height, width=opts.width, num_frames=opts.num_frames,
            num_inference_steps=opts.steps, min_guidance_scale=opts.min_cfg, max_guidance_scale=opts.max_cfg,
            fps=opts.fps, motion_bucket_id=opts.motion_bucket_id, noise_aug_strength=opts.noise_aug_strength,
            decode_chunk_size=opts.decode_chunk_size, generator=torch.Generator().manual_seed(opts.seed),
            latents=latents, output_type="pt",
        ).frames[0]
    return frames * 2.0 - 1.0  # the pipeline's 0..1 (denormalised and clamped) -> ours


def fresh_and_off_controls(parts) -> list[Control | None]:
    maps = control_maps(FRAMES, width=W, height=H)
    trained = randomize_(tiny_controlnet(parts.unet), scale=0.1)
    return [
        None,
        Control(tiny_controller(), tiny_controlnet(parts.unet), maps),  # fresh: zero links
        Control(randomize_(tiny_controller(), seed=8), trained, maps, strength=0.0),  # trained, switched off
    ]


def test_a_pil_reference_of_another_size_and_shape_gives_the_pipelines_video(parts, pipeline):
    """Non-square reference, neither the video's size nor 224: the CLIP path (blur + bicubic to 224 of the original)
    and the VAE input (lanczos to the video size) are both exercised."""
    image, opts = pil_reference(), options()
    expected = pipeline_frames(pipeline, image, opts, (1, 3, H, W))
    assert expected.shape == (FRAMES, 3, H, W)
    for control in fresh_and_off_controls(parts):
        frames = sample(parts, image, opts, control)
        torch.testing.assert_close(frames, expected, rtol=0, atol=1e-5)


def test_a_tensor_reference_at_the_video_size_gives_the_pipelines_video(parts, pipeline):
    """A core tensor (what the nodes pass): CLIP sees it as given, no resize for the VAE; without CFG this time."""
    image, opts = pil_reference((W, H), seed=12), options(min_cfg=1.0, max_cfg=1.0, seed=14, decode_chunk_size=3)
    expected = pipeline_frames(pipeline, image, opts, (1, 3, H, W))
    frames = sample(parts, reference_tensor(image), opts)
    torch.testing.assert_close(frames, expected, rtol=0, atol=1e-5)


class FixedEmbedding(torch.nn.Module):
    """An image encoder that returns one fixed embedding whatever it is shown."""

    def __init__(self, encoder, embeds: torch.Tensor):
        super().__init__()
        self.encoder, self.embeds = encoder, embeds

    config = property(lambda self: self.encoder.config)
    device = property(lambda self: self.encoder.device)
    dtype = property(lambda self: self.encoder.dtype)

    def forward(self, pixel_values):
        return SimpleNamespace(image_embeds=self.embeds.expand(pixel_values.shape[0], -1))


def test_a_tensor_reference_of_another_size_is_embedded_as_given_and_resized_for_the_vae_as_diffusers_does(parts):
    """A tensor reference of another size: its CLIP embedding is the original's, and its VAE input is diffusers'
    ``VaeImageProcessor`` resize of a tensor (``video_processor.preprocess``'s tensor path)."""
    from diffusers.image_processor import VaeImageProcessor

    original = reference_tensor(pil_reference())
    resized = VaeImageProcessor().resize(original, H, W)
    opts = options(steps=2)
    frames = sample(parts, original, opts)
    # the same run from the resized reference, with an encoder that returns the original's embedding
    embeds = encode_clip_image(parts.image_encoder, original)
    assert not torch.allclose(embeds, encode_clip_image(parts.image_encoder, resized), atol=1e-4)
    fixed = dataclasses.replace(parts, image_encoder=FixedEmbedding(parts.image_encoder, embeds))
    torch.testing.assert_close(frames, sample(fixed, resized, opts), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["euler", "dpm++ 2m karras"])  # the deterministic Stage-2 scheduler choices
def test_each_scheduler_choice_gives_the_pipelines_video_with_that_scheduler(parts, name):
    """The sampler's loop around any offered scheduler is the pipeline's loop around it (the stochastic choice draws
    its step noise after the latents from our generator, which the pipeline cannot replay)."""
    from transformers import CLIPImageProcessor

    from dreamdance_core.sampling.schedulers import stage2_scheduler

    peer = StableVideoDiffusionPipeline(vae=parts.vae, image_encoder=parts.image_encoder, unet=parts.unet,
                                        scheduler=stage2_scheduler(name, parts.scheduler_config),
                                        feature_extractor=CLIPImageProcessor())
    image, opts = pil_reference(), options(scheduler=name)
    expected = pipeline_frames(peer, image, opts, (1, 3, H, W))
    torch.testing.assert_close(sample(parts, image, opts), expected, rtol=0, atol=1e-5)
    if name != "euler":
        assert not torch.allclose(expected, sample(parts, image, options()), atol=1e-3)
