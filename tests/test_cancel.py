"""Cancellation (dreamdance_core.cancel): a cancel lands inside a forward, between rendered frames and decoded chunks;
hooks and processors are gone afterwards (outputs bit-equal); a cancelled run keeps no large tensor alive; the nodes
raise ComfyUI's interrupt exception promptly."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamdance_core import cancel
from dreamdance_core.geometry import decode_latents
from dreamdance_core.pose import render_poses, sample_dance, to_pose_keypoint
from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry
from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2
from dreamdance_core.sampling.stage2 import decode_latents as decode_svd_latents
from dreamdance_core.tiny import tiny_geometry_pipeline, tiny_vae, tiny_video_pipeline
from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)

W, H = 32, 48


class Cancelled(Exception):
    pass


def _images(frames: int, seed: int) -> torch.Tensor:
    return torch.rand(frames, 3, H, W, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _blocks(unet) -> list[torch.nn.Module]:
    return [*unet.down_blocks, unet.mid_block, *unet.up_blocks]


def _count_entries(modules) -> tuple[list[int], list]:
    """Pre-hooks counting how many of ``modules`` were entered: ([count], handles)."""
    count, handles = [0], []

    def hook(module, args):
        count[0] += 1

    handles = [m.register_forward_pre_hook(hook) for m in modules]
    return count, handles


def _no_hooks_left(pipeline) -> None:
    for module in pipeline.modules():
        for sub in module.modules():
            assert not sub._forward_pre_hooks and not sub._forward_hooks, type(sub).__name__


def _processors(pipeline) -> dict[int, object]:
    return {id(sub): sub.processor for m in pipeline.modules() for sub in m.modules() if hasattr(sub, "processor")}


def _sample1(pipeline, cancel_check=None):
    reference, poses = _images(1, 0), _images(2, 1)
    return sample_geometry(pipeline, reference, poses, Stage1Options(steps=2, seed=3), cancel_check=cancel_check)


def test_stage1_cancel_lands_inside_the_denoiser_forward_and_leaves_nothing_behind():
    pipeline = tiny_geometry_pipeline()
    before = _sample1(pipeline)
    processors = _processors(pipeline)
    unet = pipeline.model.denoising_unet
    entered, handles = _count_entries(_blocks(unet))

    def cancel_check():  # cancel as soon as the denoising UNet's first block has started
        if entered[0] >= 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        _sample1(pipeline, cancel_check)
    assert 1 <= entered[0] < len(_blocks(unet))  # the forward did not finish: it stopped inside its first block
    for handle in handles:
        handle.remove()
    _no_hooks_left(pipeline)
    assert _processors(pipeline) == processors  # the attention processors are the originals again
    after = _sample1(pipeline)
    assert all(torch.equal(getattr(before, k), getattr(after, k)) for k in ("rgb", "normal", "depth"))


def test_an_uncancelled_check_changes_no_output_bit():
    pipeline = tiny_geometry_pipeline()
    plain, checked = _sample1(pipeline), _sample1(pipeline, cancel_check=lambda: None)
    assert all(torch.equal(getattr(plain, k), getattr(checked, k)) for k in ("rgb", "normal", "depth"))


def test_a_cancelled_run_keeps_no_large_tensor_alive():
    pipeline = tiny_geometry_pipeline()
    model, kept = pipeline.model, []
    encode_pose = model.encode_pose

    def recording(maps):  # a weak reference to the pose features the sampler holds for the whole run
        features = encode_pose(maps)
        kept.append(weakref.ref(features))
        return features

    model.encode_pose = recording
    calls = [0]

    def cancel_check():
        calls[0] += 1
        if kept and calls[0] > 50:
            raise Cancelled

    with pytest.raises(Cancelled) as raised:
        _sample1(pipeline, cancel_check)
    gc.collect()
    assert raised.value.__traceback__ is not None  # the exception (and its traceback) is still held here...
    assert kept and kept[0]() is None  # ...but no longer keeps the sampler's tensors alive


def _sample2(pipeline, cancel_check=None, frames: int = 3):
    maps = {name: _images(frames, i) for i, name in enumerate(pipeline.controller.modalities)}
    options = Stage2Options(width=W, height=H, num_frames=frames, steps=2, max_cfg=2.5, decode_chunk_size=2)
    return sample_stage2(pipeline, _images(1, 9), Stage2Inputs(maps), options, cancel_check=cancel_check)


def test_stage2_cancel_lands_inside_the_unet_forward():
    pipeline = tiny_video_pipeline()
    before = _sample2(pipeline)
    unet = pipeline.components.unet
    entered, handles = _count_entries(_blocks(unet))

    def cancel_check():
        if entered[0] >= 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        _sample2(pipeline, cancel_check)
    assert 1 <= entered[0] < len(_blocks(unet))
    for handle in handles:
        handle.remove()
    _no_hooks_left(pipeline)
    assert torch.equal(before, _sample2(pipeline))
    assert torch.equal(before, _sample2(pipeline, cancel_check=lambda: None))


def test_stage2_cancel_lands_inside_the_controlnet_forward():
    pipeline = tiny_video_pipeline()
    controlnet = pipeline.controlnet
    entered, handles = _count_entries([*controlnet.down_blocks, controlnet.mid_block])

    def cancel_check():
        if entered[0] >= 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        _sample2(pipeline, cancel_check)
    assert entered[0] == 1
    for handle in handles:
        handle.remove()
    _no_hooks_left(pipeline)


def test_rendering_1000_frames_cancels_after_a_few():
    seq = sample_dance(1000, 64, 96)
    calls = [0]

    def cancel_check():
        calls[0] += 1
        if calls[0] == 4:
            raise Cancelled

    with pytest.raises(Cancelled):
        render_poses(seq, 64, 96, cancel_check=cancel_check)
    assert calls[0] == 4
    assert np.array_equal(render_poses(sample_dance(3, 64, 96), cancel_check=lambda: None),
                          render_poses(sample_dance(3, 64, 96)))


@pytest.mark.parametrize("decoder", ["sd", "svd"])
def test_decoding_cancels_between_chunks(decoder):
    vae = tiny_vae() if decoder == "sd" else tiny_video_pipeline().components.vae
    latents = torch.randn(5, vae.config.latent_channels, 4, 4, generator=torch.Generator().manual_seed(0))
    decoded, handles = [0], []
    handles.append(vae.decoder.register_forward_hook(lambda *args: decoded.__setitem__(0, decoded[0] + 1)))

    def cancel_check():
        if decoded[0] >= 2:
            raise Cancelled

    def run(check):
        if decoder == "sd":
            return decode_latents(vae, latents, chunk_size=1, cancel_check=check)
        return decode_svd_latents(vae, latents, 1, check)

    with pytest.raises(Cancelled):
        run(cancel_check)
    assert decoded[0] == 2  # 2 of 5 chunks decoded, the third never started
    handles[0].remove()
    assert not any(m._forward_pre_hooks for m in vae.modules())
    assert torch.equal(run(None), run(lambda: None))


@pytest.mark.parametrize("batch, queries", [(2, 300), (1, 300), (5000, 3)])
def test_a_long_attention_is_split_with_checks_and_gives_the_same_bits(monkeypatch, batch, queries):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, 4, queries, 8, generator=g) for _ in range(3))
    mask = torch.rand(batch, 1, queries, queries, generator=g) > 0.2
    monkeypatch.setattr(cancel, "ATTENTION_CHUNK_FLOPS", cancel._attention_cost(q, k) // 5)
    calls = [0]

    def count():
        calls[0] += 1

    for m in (None, mask):
        calls[0] = 0
        chunked = cancel.scaled_dot_product_attention(q, k, v, m, count)
        assert calls[0] >= 5  # split into at least 5 chunks, a check before each
        assert torch.equal(chunked, F.scaled_dot_product_attention(q, k, v, attn_mask=m))  # on the CPU, bit for bit

    def stop():
        raise Cancelled

    with pytest.raises(Cancelled):
        cancel.scaled_dot_product_attention(q, k, v, None, stop)


# --------------------------------------------------------------------------------------------------- the nodes


def _interrupt_on_entry(comfy_stubs, modules):
    """Set ComfyUI's interrupt flag when the first of ``modules`` starts: (entered count, handles)."""
    count, handles = [0], []

    def hook(module, args):
        count[0] += 1
        comfy_stubs.interrupt()

    handles = [m.register_forward_pre_hook(hook) for m in modules]
    return count, handles


def _assert_interrupted(raised) -> None:
    assert type(raised.value).__name__ == "InterruptProcessingException"


def test_pose_to_geometry_node_interrupts_inside_the_forward(comfy_stubs):
    nodes = import_pack_module("nodes.geometry")
    (model,) = nodes.DreamDanceGeometryModelLoader().load("(tiny random demo)", "(none)", "(none)", "fp32", False)
    unet = model.model.denoising_unet
    entered, handles = _interrupt_on_entry(comfy_stubs, unet.down_blocks[:1])
    with pytest.raises(Exception) as raised:
        nodes.DreamDancePoseToGeometry().generate(
            model, torch.rand(1, 64, 40, 3), W, H, 3, 1, 3.5, 2.5, 3.5,
            pose_keypoint=to_pose_keypoint(sample_dance(2, W, H)),
        )
    _assert_interrupted(raised)
    assert entered[0] == 1 and comfy_stubs.progress == []  # stopped inside the first forward, before any step ended
    for handle in handles:
        handle.remove()
    _no_hooks_left(model)


def test_animate_node_interrupts_inside_the_forward(comfy_stubs):
    nodes = import_pack_module("nodes.video")
    (model,) = nodes.DreamDanceVideoModelLoader().load("(tiny random demo)", "(none)", "fp32", False)
    unet = model.components.unet
    entered, handles = _interrupt_on_entry(comfy_stubs, unet.down_blocks[:1])
    maps = torch.rand(3, H, W, 3)
    with pytest.raises(Exception) as raised:
        nodes.DreamDanceAnimate().animate(model, torch.rand(1, 64, 40, 3), W, H, 3, 0, 1.0, 2.5, 7, 127, 0.02, 1.0,
                                          1.0, 1.0, 1.0, 2, pose_images=maps, depth=maps, normal=maps)
    _assert_interrupted(raised)
    assert entered[0] == 1 and comfy_stubs.progress == []
    for handle in handles:
        handle.remove()
    _no_hooks_left(model)


def test_render_pose_node_interrupts_between_frames(comfy_stubs, monkeypatch):
    import comfy.model_management as mm

    nodes = import_pack_module("nodes.pose")
    throw, calls = mm.throw_exception_if_processing_interrupted, [0]

    def counting():  # the user presses Cancel just before the 3rd frame is drawn
        calls[0] += 1
        if calls[0] == 3:
            comfy_stubs.interrupt()
        throw()

    monkeypatch.setattr(mm, "throw_exception_if_processing_interrupted", counting)
    pose = to_pose_keypoint(sample_dance(1000, 64, 96))
    with pytest.raises(Exception) as raised:
        nodes.DreamDanceRenderPose().execute(pose, 64, 96, "stretch", True, True, True, 0.0)
    _assert_interrupted(raised)
    assert calls[0] == 3  # the check before the 3rd of 1000 frames raised
