"""The Stage-2 EDM video sampler on tiny random SVD parts (CPU, seconds)."""

import pytest
import torch
from torch import nn

from dreamdance_core.models.controller import ControlMapError
from dreamdance_core.sampling.stage2 import Stage2InputError, Stage2Options, SVDComponents, decode_latents
from dreamdance_core.sampling.windows import WindowOptions
from tests.stage2_helpers import Control, sample
from tests.tiny_svd import (
    control_maps,
    randomize_,
    reference_image,
    tiny_components,
    tiny_controller,
    tiny_controlnet,
)

W, H = 16, 16


@pytest.fixture(scope="module")
def parts():
    components = tiny_components()
    controller = tiny_controller()
    return components, controller


def options(**overrides) -> Stage2Options:
    values = dict(width=W, height=H, num_frames=3, steps=2, min_cfg=1.0, max_cfg=2.5, decode_chunk_size=2, seed=7)
    values.update(overrides)
    return Stage2Options(**values)


def control(parts, frames=3, controlnet=None, **kw) -> Control:
    components, controller = parts
    controlnet = controlnet if controlnet is not None else tiny_controlnet(components.unet)
    return Control(controller, controlnet, control_maps(frames, width=W, height=H), **kw)


def test_fresh_control_and_strength_zero_equal_plain_svd_and_trained_weights_change_it(parts):
    components, _ = parts
    plain = sample(components, reference_image(W, H), options())
    assert plain.shape == (3, 3, H, W) and plain.abs().max() <= 1.0
    fresh = sample(components, reference_image(W, H), options(), control(parts))
    assert torch.equal(plain, fresh)
    trained = randomize_(tiny_controlnet(components.unet), scale=0.1)
    off = sample(components, reference_image(W, H), options(), control(parts, controlnet=trained, strength=0.0))
    assert torch.equal(plain, off)
    on = sample(components, reference_image(W, H), options(), control(parts, controlnet=trained))
    assert (on - plain).abs().max() > 1e-3


def trained_control(parts, **kw) -> Control:
    """Controller and ControlNet with random ("trained") weights, so the control path changes the video."""
    components, _ = parts
    controller = randomize_(tiny_controller(), seed=21, scale=0.1)
    controlnet = randomize_(tiny_controlnet(components.unet), seed=22, scale=0.1)
    return Control(controller, controlnet, control_maps(3, width=W, height=H), **kw)


def test_modality_strength_zero_is_feeding_that_modalitys_black_map(parts):
    """Strength 0 = the absent map robust conditioning trains on (-1 everywhere), not a zeroed feature."""
    components, _ = parts
    run = lambda control: sample(components, reference_image(W, H), options(), control)  # noqa: E731
    zero = run(trained_control(parts, modality_strengths={"depth": 0.0}))
    black = trained_control(parts)
    black.maps = dict(black.maps, depth=torch.full_like(black.maps["depth"], -1.0))
    assert torch.equal(zero, run(black))
    assert (zero - run(trained_control(parts))).abs().max() > 1e-3  # the depth map does matter at strength 1


def test_overall_strength_zero_runs_no_control_path_and_is_plain_svd(parts):
    components, _ = parts
    control = trained_control(parts, strength=0.0)
    calls = []
    hooks = [m.register_forward_hook(lambda *a, name=n: calls.append(name))
             for n, m in (("controlnet", control.controlnet), ("controller", control.controller))]
    try:
        off = sample(components, reference_image(W, H), options(), control)
        assert calls == []
        control.strength = 0.5
        sample(components, reference_image(W, H), options(steps=1), control)
        assert calls.count("controller") == 1 and calls.count("controlnet") == 1  # one step, one window
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.equal(off, sample(components, reference_image(W, H), options()))


def test_same_seed_same_video_other_seed_other_video(parts):
    components, _ = parts
    a = sample(components, reference_image(W, H), options(steps=1))
    b = sample(components, reference_image(W, H), options(steps=1))
    c = sample(components, reference_image(W, H), options(steps=1, seed=8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


class FrameByFrameUNet(nn.Module):
    """The SVD UNet run on one frame at a time: per-frame predictions no longer depend on the window."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    def forward(self, sample, *args, return_dict=False, **kwargs):
        frames = [
            self.unet(sample[:, i : i + 1], *args, return_dict=False, **kwargs)[0] for i in range(sample.shape[1])
        ]
        return (torch.cat(frames, dim=1),)


def test_one_window_equals_no_windowing(parts):
    components, _ = parts
    plain = sample(components, reference_image(W, H), options(steps=1))
    long_window = sample(
        components, reference_image(W, H), options(steps=1, windows=WindowOptions(length=3, overlap=1))
    )
    shorter = sample(components, reference_image(W, H), options(steps=1, windows=WindowOptions(length=8, overlap=2)))
    assert torch.equal(plain, long_window) and torch.equal(plain, shorter)


@pytest.mark.parametrize(
    "windows",
    [WindowOptions(length=2, overlap=1), WindowOptions(length=3, overlap=1, weighting="pyramid", retain_first=True)],
)
def test_overlapping_windows_average_per_frame_predictions(parts, windows):
    """With a per-frame model every window predicts the same for a frame, so the blend must equal no windowing;
    5 frames in windows of 2 or 3 do not divide evenly."""
    components, _ = parts
    per_frame = SVDComponents(FrameByFrameUNet(components.unet), components.vae, components.image_encoder,
                              components.scheduler_config)
    opts = dict(steps=1, num_frames=5, decode_chunk_size=5)
    plain = sample(per_frame, reference_image(W, H), options(**opts))
    windowed = sample(per_frame, reference_image(W, H), options(**opts, windows=windows))
    torch.testing.assert_close(windowed, plain, atol=1e-5, rtol=1e-5)
    # the real (temporal) UNet sees different neighbours in each window: windows are really used
    temporal = sample(components, reference_image(W, H), options(**opts, windows=windows))
    assert not torch.allclose(temporal, sample(components, reference_image(W, H), options(**opts)))


def test_controlled_windowed_sampling_runs_and_reports_progress(parts):
    components, _ = parts
    calls = []
    trained = randomize_(tiny_controlnet(components.unet), scale=0.1)
    out = sample(
        components, reference_image(W, H), options(num_frames=5, windows=WindowOptions(length=3, overlap=1)),
        control(parts, frames=5, controlnet=trained),
        callback=lambda step, total, preview: calls.append((step, total, preview)),
    )
    assert out.shape == (5, 3, H, W)
    assert [(step, total) for step, total, _ in calls] == [(i, 4) for i in range(1, 5)]  # 2 steps x 2 windows
    previews = [preview for *_, preview in calls]
    assert all(p.shape == (3, H // 2, W // 2) and p.abs().max() <= 1 for p in previews)  # latent-sized RGB guess


def test_callback_exception_cancels(parts):
    components, _ = parts

    class Cancelled(Exception):
        pass

    def cancel(step, total, preview):
        raise Cancelled

    with pytest.raises(Cancelled):
        sample(components, reference_image(W, H), options(), callback=cancel)


def test_bad_inputs_give_clear_errors(parts):
    components, _ = parts
    reference = reference_image(W, H)
    with pytest.raises(Stage2InputError, match="num_frames must be at least 1"):
        options(num_frames=0)
    with pytest.raises(Stage2InputError, match="multiples of 8"):
        options(width=20)
    with pytest.raises(ControlMapError, match="hold 3 frames but num_frames is 4"):
        sample(components, reference, options(num_frames=4), control(parts))
    bad = control(parts)
    bad.maps = dict(bad.maps, depth=bad.maps["depth"][:2])
    with pytest.raises(ControlMapError, match="different frame counts"):
        sample(components, reference, options(), bad)
    with pytest.raises(ControlMapError, match="requested"):
        sample(components, reference, options(width=24), control(parts))
    with pytest.raises(Stage2InputError, match="reference image"):
        sample(components, torch.zeros(2, 3, H, W), options())
    wrong_scale = control(parts)
    wrong_scale.controller = tiny_controller(block_channels=(8, 8, 16))
    with pytest.raises(Stage2InputError, match="downscales by 4"):
        sample(components, reference, options(), wrong_scale)


def test_chunked_decoding_covers_every_frame(parts):
    components, _ = parts
    latents = torch.randn(5, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        frames = decode_latents(components.vae, latents, decode_chunk_size=2)
        whole = decode_latents(components.vae, latents, decode_chunk_size=5)
    assert frames.shape == whole.shape == (5, 3, 16, 16)
    # chunks of 2 + 2 + 1: the last frame decoded alone equals decoding it alone
    with torch.no_grad():
        single = decode_latents(components.vae, latents[4:], decode_chunk_size=1)
    torch.testing.assert_close(frames[4:], single)
