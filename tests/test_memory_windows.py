"""Issue 31a: everything per frame runs per window, so peak memory does not grow with the video's length.

The controller (Stage 2) and the pose guider (Stage 1) are per frame: a window's output equals the all-frames
output sliced to the window's frames. The samplers compute them per window when the window is denoised; a run with
uneven windows equals the same run fed the all-frames features (computed once and sliced, what the samplers did
before), and the models are never called with more frames than a window holds.
"""

from __future__ import annotations

import pytest
import torch

from dreamdance_core.geometry import decode_latents as decode_geometry
from dreamdance_core.geometry import encode_latents
from dreamdance_core.pipelines import GeometryPipeline
from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry
from dreamdance_core.sampling.stage2 import Stage2Options, decode_latents
from dreamdance_core.sampling.windows import WindowOptions, window_indices
from tests.stage2_helpers import Control, sample
from tests.tiny_stage1 import randomize_ as randomize_stage1
from tests.tiny_stage1 import tiny_image_encoder, tiny_stage1, tiny_vae
from tests.tiny_svd import control_maps, randomize_, reference_image, tiny_components, tiny_controller, tiny_controlnet

FRAMES = 7
LAYOUTS = [  # uneven on 7 frames: the last window is pulled back, overlaps differ
    WindowOptions(length=3, overlap=1),
    WindowOptions(length=4, overlap=2, weighting="pyramid", retain_first=True),
    WindowOptions(length=5, overlap=0),
    WindowOptions(length=2, overlap=1, weighting="pyramid"),
]
LAYOUT_IDS = ["3-1", "4-2-pyramid-first", "5-0", "2-1-pyramid"]


def windows_of(options: WindowOptions) -> list[torch.Tensor]:
    windows = [torch.tensor(w) for w in window_indices(FRAMES, options)]
    assert len(windows) > 1  # the layout really splits the video
    return windows


def assert_same(part: torch.Tensor, whole: torch.Tensor) -> None:
    torch.testing.assert_close(part, whole, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("tokens", ["pixel", "frame"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_controller_per_window_equals_all_frames(tokens, layout):
    controller = randomize_(tiny_controller(geometry_tokens=tokens), scale=0.2)
    maps = control_maps(FRAMES, width=16, height=16)
    strengths = {"depth": 0.5, "normal": 0.0}
    with torch.no_grad():
        whole = controller(maps, strengths)
        for index in windows_of(layout):
            assert_same(controller({name: m[index] for name, m in maps.items()}, strengths), whole[index])


@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_pose_guider_per_window_equals_all_frames(layout):
    guider = randomize_stage1(tiny_stage1().pose_guider, scale=0.2, seed=3)
    poses = torch.rand(FRAMES, 3, 32, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        whole = guider(poses)
        assert whole.abs().max() > 0  # the zero-initialised output conv was randomised
        for index in windows_of(layout):
            assert_same(guider(poses[index]), whole[index])


def frames_of(window: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """Which frames of ``video`` the maps of ``window`` are (random maps: every frame is unique)."""
    return torch.tensor([next(j for j in range(len(video)) if torch.equal(video[j], frame)) for frame in window])


@pytest.mark.parametrize("layout", LAYOUTS[:2], ids=LAYOUT_IDS[:2])
def test_stage2_windowed_run_equals_all_frames_guidance(layout, monkeypatch):
    components = tiny_components()
    controller = randomize_(tiny_controller(), scale=0.2)
    controlnet = randomize_(tiny_controlnet(components.unet), scale=0.1)
    maps = control_maps(FRAMES, width=16, height=16)
    options = Stage2Options(width=16, height=16, num_frames=FRAMES, steps=2, max_cfg=2.5, decode_chunk_size=3, seed=7,
                            windows=layout)
    control = Control(controller, controlnet, maps, modality_strengths={"depth": 0.5})
    per_window = sample(components, reference_image(16, 16), options, control)

    forward, sizes = controller.forward, []

    def sliced(controls, strengths=None):
        sizes.append(len(controls["pose"]))
        whole = forward(maps, strengths)
        return whole[frames_of(controls["pose"], maps["pose"])]

    monkeypatch.setattr(controller, "forward", sliced)
    reference = sample(components, reference_image(16, 16), options, control)
    torch.testing.assert_close(per_window, reference, atol=1e-5, rtol=1e-5)
    assert per_window.abs().max() > 0 and max(sizes) == layout.length < FRAMES  # called per window, never all frames


@pytest.mark.parametrize("layout", LAYOUTS[:2], ids=LAYOUT_IDS[:2])
def test_stage1_windowed_run_equals_all_frames_pose_features(layout, monkeypatch):
    torch.manual_seed(0)
    model = tiny_stage1()
    randomize_stage1(model.adapter, scale=0.05, seed=2)
    randomize_stage1(model.pose_guider, scale=0.05, seed=3)
    pipeline = GeometryPipeline(model, tiny_vae().eval(), tiny_image_encoder())
    g = torch.Generator().manual_seed(0)
    reference, poses = torch.rand(1, 3, 32, 24, generator=g) * 2 - 1, torch.rand(FRAMES, 3, 32, 24, generator=g) * 2 - 1
    options = Stage1Options(steps=2, seed=42, windows=layout, decode_chunk_size=3)
    per_window = sample_geometry(pipeline, reference, poses, options)

    forward, sizes = model.pose_guider.forward, []

    def sliced(pose_maps):
        sizes.append(len(pose_maps))
        return forward(poses)[frames_of(pose_maps, poses)]

    monkeypatch.setattr(model.pose_guider, "forward", sliced)
    reference_run = sample_geometry(pipeline, reference, poses, options)
    for name in ("rgb", "normal", "depth"):
        torch.testing.assert_close(getattr(per_window, name), getattr(reference_run, name), atol=1e-5, rtol=1e-5)
    assert max(sizes) == layout.length < FRAMES  # called per window, never on all frames


@pytest.mark.parametrize("chunk", [1, 3, 7, 10])
def test_chunked_vae_decode_and_encode_equal_one_call(chunk):
    vae = tiny_vae().eval()
    images = torch.rand(FRAMES, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    latents = encode_latents(vae, images, chunk_size=FRAMES)
    torch.testing.assert_close(encode_latents(vae, images, chunk_size=chunk), latents, atol=1e-6, rtol=1e-6)
    whole = decode_geometry(vae, latents, chunk_size=FRAMES)
    decoded = decode_geometry(vae, latents, chunk_size=chunk)
    assert decoded.dtype == torch.float32 and decoded.shape == (FRAMES, 3, 16, 16)
    torch.testing.assert_close(decoded, whole, atol=2e-5, rtol=1e-4)  # the decoder's batch size: float noise only
    svd_vae = tiny_components().vae
    svd_latents = torch.randn(FRAMES, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    video = decode_latents(svd_vae, svd_latents, chunk)
    assert video.shape == (FRAMES, 3, 16, 16) and video.abs().max() <= 1
    for start in range(0, FRAMES, chunk):  # each chunk is its own temporal decode
        part = decode_latents(svd_vae, svd_latents[start:start + chunk], chunk)
        torch.testing.assert_close(video[start:start + chunk], part, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("stage", [1, 2])
def test_half_precision_models_step_and_blend_fp32_latents(stage, monkeypatch):
    """bf16 models: the latents, the blended prediction and the scheduler step stay fp32 (issue 31)."""
    import dreamdance_core.sampling.stage1 as stage1
    import dreamdance_core.sampling.stage2 as stage2
    from dreamdance_core.tiny import tiny_geometry_pipeline, tiny_video_pipeline

    module = stage1 if stage == 1 else stage2
    factory, seen = (module.stage1_scheduler if stage == 1 else module.stage2_scheduler), []

    def recording(*args, **kwargs):
        scheduler = factory(*args, **kwargs)
        step = scheduler.step

        def recorded_step(model_output, t, sample, **kw):
            seen.append((model_output.dtype, sample.dtype))
            out = step(model_output, t, sample, **kw)
            seen.append((out.prev_sample.dtype,))
            return out

        scheduler.step = recorded_step
        return scheduler

    monkeypatch.setattr(module, "stage1_scheduler" if stage == 1 else "stage2_scheduler", recording)
    windows = WindowOptions(length=3, overlap=1)
    reference = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    if stage == 1:
        pipeline = tiny_geometry_pipeline()
        models = (pipeline.model, pipeline.vae, pipeline.image_encoder)
        poses = torch.rand(5, 3, 16, 16) * 2 - 1
    else:
        pipeline = tiny_video_pipeline()
        models = (pipeline.components.unet, pipeline.components.vae, pipeline.components.image_encoder,
                  pipeline.controller, pipeline.controlnet)
    for model in models:
        model.to(torch.bfloat16)
    if stage == 1:
        out = stage1.sample_geometry(pipeline, reference, poses, Stage1Options(steps=2, windows=windows)).depth
    else:
        maps = {name: torch.rand(5, 3, 16, 16) * 2 - 1 for name in pipeline.controller.modalities}
        options = Stage2Options(width=16, height=16, num_frames=5, steps=2, windows=windows)
        out = stage2.sample_stage2(pipeline, reference, stage2.Stage2Inputs(maps), options)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert len(seen) == 4 and all(dtype == torch.float32 for record in seen for dtype in record)
