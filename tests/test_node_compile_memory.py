"""The sampling nodes' opt-in ``compile`` input, and the activation-memory estimate they pass to ComfyUI's memory
manager (:mod:`dreamdance_core.memory`, ``load_models_gpu(memory_required=...)``)."""

from __future__ import annotations

import pytest
import torch

from dreamdance_core.memory import (
    MARGIN,
    STAGE2_DENOISER,
    stage1_memory,
    stage2_memory,
    vae_decode_dtype,
    window_frames,
)
from dreamdance_core.pose import sample_dance, to_pose_keypoint
from dreamdance_core.sampling.stage1 import Stage1Options
from dreamdance_core.sampling.stage2 import Stage2Options
from dreamdance_core.sampling.windows import WindowOptions
from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)
from tests.tiny_stage1 import tiny_vae

W, H = 32, 48
_G = torch.Generator().manual_seed(0)
REFERENCE = torch.rand(1, 64, 40, 3, generator=_G)
POSE, DEPTH = torch.rand(3, H, W, 3, generator=_G), torch.rand(3, H, W, 3, generator=_G)
STAGE1_ORDER = {  # the inputs before ``compile``, as saved workflows hold them
    "required": ["geometry_model", "reference", "width", "height", "steps", "seed", "cfg_rgb", "cfg_normal",
                 "cfg_depth"],
    "optional": ["pose_keypoint", "pose_images", "windows", "fit", "scheduler"],
}
STAGE2_ORDER = {
    "required": ["video_model", "reference", "width", "height", "steps", "seed", "min_cfg", "max_cfg", "fps",
                 "motion_bucket_id", "noise_aug_strength", "strength", "pose_strength", "depth_strength",
                 "normal_strength", "decode_chunk_size"],
    "optional": ["pose_images", "depth", "normal", "windows", "fit", "scheduler", "control_maps"],
}


def _run(node_class, **inputs):
    return getattr(node_class(), node_class.FUNCTION)(**inputs)


def _geometry(nodes, model=None, **overrides):
    if model is None:
        (model,) = _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="(tiny random demo)",
                        base_checkpoint="(none)", clip_vision="(none)", precision="fp32", keep_loaded=False)
    inputs = dict(geometry_model=model, reference=REFERENCE, width=W, height=H, steps=2, seed=1,
                  cfg_rgb=3.5, cfg_normal=2.5, cfg_depth=3.5, pose_keypoint=to_pose_keypoint(sample_dance(3, W, H)))
    inputs.update(overrides)
    return model, _run(nodes.DreamDancePoseToGeometry, **inputs)


def _animate(nodes, model=None, **overrides):
    if model is None:
        (model,) = _run(nodes.DreamDanceVideoModelLoader, stage2_weights="(tiny random demo)",
                        svd_checkpoint="(none)", precision="fp32", keep_loaded=False)
    inputs = dict(video_model=model, reference=REFERENCE, width=W, height=H, steps=2, seed=3,
                  min_cfg=1.0, max_cfg=2.5, fps=7, motion_bucket_id=127, noise_aug_strength=0.02, strength=1.0,
                  pose_strength=1.0, depth_strength=1.0, normal_strength=1.0, decode_chunk_size=2,
                  pose_images=POSE, depth=DEPTH)
    inputs.update(overrides)
    return model, _run(nodes.DreamDanceAnimate, **inputs)[0]


@pytest.mark.parametrize("module, node, order", [("nodes.geometry", "DreamDancePoseToGeometry", STAGE1_ORDER),
                                                 ("nodes.video", "DreamDanceAnimate", STAGE2_ORDER)])
def test_compile_is_an_appended_optional_boolean_off_by_default(comfy_stubs, module, node, order):
    inputs = getattr(import_pack_module(module), node).INPUT_TYPES()
    assert list(inputs["required"]) == order["required"]  # saved workflows' widget values keep their places
    assert list(inputs["optional"]) == [*order["optional"], "compile"]  # the last input: old workflows get default
    kind, options = inputs["optional"]["compile"]
    assert kind == "BOOLEAN" and options["default"] is False
    assert "first run compiles" in options["tooltip"] and "GPU" in options["tooltip"]


def _spy_compiled(monkeypatch, sampler_module: str) -> list:
    """Record what the sampler compiles; the "compiled" module is the module itself (the compiled forward is checked
    against eager in tests/test_compile.py), so the run stays fast."""
    sampler = import_pack_module(sampler_module)  # the node's copy of the library (the pack's own package)
    seen = []

    def compiled(module):
        seen.append(module)
        return module

    monkeypatch.setattr(sampler, "compiled", compiled)
    return seen


def test_pose_to_geometry_compiles_the_denoiser_when_asked(comfy_stubs, monkeypatch):
    nodes = import_pack_module("nodes.geometry")
    seen = _spy_compiled(monkeypatch, "dreamdance_core.sampling.stage1")
    model, eager = _geometry(nodes)
    assert seen == []  # off by default (a workflow saved before the input existed)
    _geometry(nodes, model, compile=False)
    assert seen == []
    _, compiled = _geometry(nodes, model, compile=True)
    assert seen == [model.model]  # the Stage-1 denoiser, through Stage1Options.compile
    for before, after in zip(eager, compiled):
        torch.testing.assert_close(after, before)


def test_animate_compiles_unet_and_controlnet_when_asked(comfy_stubs, monkeypatch):
    nodes = import_pack_module("nodes.video")
    seen = _spy_compiled(monkeypatch, "dreamdance_core.sampling.stage2")
    model, eager = _animate(nodes)
    assert seen == []
    _, compiled = _animate(nodes, model, compile=True)
    assert seen == [model.components.unet, model.controlnet]  # through Stage2Options.compile
    torch.testing.assert_close(compiled, eager)


# ---------------------------------------------------------------------------------------------------------------------
# the memory estimate


def test_the_estimate_follows_the_window_and_the_size_not_the_video_length():
    windows = WindowOptions(length=16, overlap=4)
    fp16, bf16 = torch.float16, torch.bfloat16

    def stage1(frames, wider=1, windows=windows, **options):  # at the paper's 256x384, or wider
        options = Stage1Options(windows=windows, decode_chunk_size=1, **options)
        return stage1_memory(options, frames, 256 * wider, 384, fp16)

    def stage2(frames, wider=1, windows=windows, **options):  # at 512x768, or wider
        options = Stage2Options(width=512 * wider, height=768, num_frames=frames, windows=windows, decode_chunk_size=1,
                                **options)
        return stage2_memory(options, fp16)

    for estimate in (stage1, stage2):
        assert estimate(16) == estimate(64) == estimate(256)  # windows of 16: flat in the video's length
        assert estimate(256, windows=WindowOptions(length=24, overlap=4)) > estimate(256)  # longer windows: more
        assert estimate(8) < estimate(16)  # a video shorter than a window is one short window
        assert estimate(64, windows=None) == 4 * estimate(16, windows=None)  # no windows: all frames at once
        assert estimate(256, wider=2) == 2 * estimate(256)  # linear in the latent pixels
    assert stage2(64, max_cfg=1.0) * 2 == stage2(64, max_cfg=3.0)  # no guidance: one branch, half the batch
    assert stage1(64, guidance=(1.0, 1.0, 1.0)) * 2 == stage1(64)
    assert stage1(64, cfg_batch=False) * 2 == stage1(64)  # branches one after the other
    # the dtype's size scales it
    options = Stage2Options(width=512, height=768, num_frames=16, decode_chunk_size=1)
    assert stage2_memory(options, torch.float32) == 2 * stage2_memory(options, bf16)
    # ComfyUI's own SVD factor (model_base.memory_required with PyTorch attention: 0.01 MiB x 2.0 per latent pixel
    # per batch item and byte of dtype) is of the same order as our measured one
    assert 0.3 < STAGE2_DENOISER * MARGIN / (0.01 * 2**20 * 2.0) < 1.5


def test_the_decode_chunk_counts_and_an_upcast_vae_decodes_in_fp32():
    small = Stage2Options(width=512, height=768, num_frames=64, decode_chunk_size=1, windows=WindowOptions(16, 4))
    large = Stage2Options(width=512, height=768, num_frames=64, decode_chunk_size=16, windows=WindowOptions(16, 4))
    assert stage2_memory(large, torch.float16) > stage2_memory(small, torch.float16)  # 16 frames at once: the peak
    assert stage2_memory(large, torch.float16, torch.float32) == 2 * stage2_memory(large, torch.float16)
    vae = tiny_vae()  # an AutoencoderKL: force_upcast by default, as SD1.5's and SVD's
    assert vae_decode_dtype(vae.half()) == torch.float32 and vae_decode_dtype(vae.bfloat16()) == torch.bfloat16
    assert window_frames(10, None) == 10 and window_frames(10, WindowOptions(16, 4)) == 10
    assert window_frames(100, WindowOptions(16, 4)) == 16


def test_the_sampling_nodes_pass_their_estimate_to_load_models_gpu(comfy_stubs):
    nodes = import_pack_module("nodes.geometry")
    (windows,) = _run(nodes.DreamDanceWindowOptions, length=2, overlap=1, weighting="flat", retain_first_frame=False)
    _geometry(nodes, windows=windows)
    options = Stage1Options(guidance=(3.5, 2.5, 3.5), windows=windows)
    assert comfy_stubs.memory_required == [stage1_memory(options, 3, W, H, torch.float32)]

    comfy_stubs.memory_required.clear()
    video = import_pack_module("nodes.video")
    _animate(video)
    options = Stage2Options(width=W, height=H, num_frames=3, max_cfg=2.5, decode_chunk_size=2)
    assert comfy_stubs.memory_required == [stage2_memory(options, torch.float32)]
    assert comfy_stubs.memory_required[0] > 0


def test_the_measuring_tool_counts_live_tensors_once_and_not_the_weights():
    """bench/bench_activation_memory.py's counter, on CPU tensors: a freed tensor leaves the count, a view adds
    nothing, the weights and inputs are not counted, and attention counts its output only."""
    from bench.bench_activation_memory import peak_bytes

    weight, x = torch.nn.Linear(256, 256, bias=False), torch.rand(1024, 256)  # 1 MiB per [1024, 256] fp32 tensor

    def run():
        a = weight(x)  # 1 MiB live
        b = (a * 2).view(256, 1024).t()  # 2 MiB; the view and the transpose add nothing
        del a
        c = b + 1  # 2 MiB (a is gone)
        q = torch.rand(1, 1, 1024, 256)  # 3 MiB
        attended = torch.nn.functional.scaled_dot_product_attention(q, q, q)  # 4 MiB: its output only
        return attended + c.t().reshape(1, 1, 1024, 256)  # 5 MiB (c kept b's layout: c.t() reshapes as a view)

    assert peak_bytes(run, [weight], [x]) == 5 * 2**20
