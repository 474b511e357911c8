"""Compile-clean denoisers (one dynamo graph each), the mask-free reference attention, and the opt-in compile."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention
from einops import rearrange

from bench.bench_compile import stage1_call, stage2_call
from dreamdance_core.models.attention import Stage1AttentionState, Stage1SelfAttnProcessor, reference_runs
from dreamdance_core.tiny import tiny_video_pipeline
from tests.tiny_stage1 import randomize_, tiny_stage1


def _explain(function, *args):
    torch._dynamo.reset()
    with torch.no_grad():
        return torch._dynamo.explain(function)(*args)


def test_the_tiny_stage1_denoiser_is_one_graph():
    model = randomize_(tiny_stage1(), scale=0.05)
    call, inputs = stage1_call(model)  # CFG-batched: one group sees the reference, one does not
    result = _explain(call, model, *inputs)
    assert (result.graph_count, result.graph_break_count) == (1, 0), result.break_reasons


def test_the_tiny_stage2_denoiser_is_one_graph():
    pipeline = tiny_video_pipeline()
    call, inputs = stage2_call(pipeline.controlnet, pipeline.components.unet)
    result = _explain(call, *inputs)
    assert (result.graph_count, result.graph_break_count) == (1, 0), result.break_reasons


def test_reference_runs_split_the_batch_on_the_host():
    assert reference_runs([0, 0, -1, -1]) == ((0, 2, (0, 0)), (2, 4, None))
    assert reference_runs(torch.tensor([-1, 1, 0, -1])) == ((0, 1, None), (1, 3, (1, 0)), (3, 4, None))
    assert reference_runs([-1, -1]) is None and reference_runs(None) is None
    assert reference_runs([2]) == ((0, 1, (2,)),)


def _masked_reference_attention(attn: Attention, x, features, index):
    """The reference attention as it was: one SDPA over concat(x, x_ref) for the whole batch, samples without a
    reference masked off the reference tokens."""
    query, key, value = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    mask = None
    if bool((index >= 0).any()):
        key = torch.cat([key, attn.to_k(features)[index.clamp(min=0)]], dim=1)
        value = torch.cat([value, attn.to_v(features)[index.clamp(min=0)]], dim=1)
        if bool((index < 0).any()):
            keep_ref = (index >= 0)[:, None].expand(-1, features.shape[1])
            keep_self = torch.ones(x.shape[0], x.shape[1], dtype=torch.bool)
            mask = torch.cat([keep_self, keep_ref], dim=1)[:, None, None, :]
    query, key, value = (rearrange(t, "b n (h d) -> b h n d", h=attn.heads) for t in (query, key, value))
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    return attn.to_out[1](attn.to_out[0](rearrange(out, "b h n d -> b n (h d)")))


@pytest.mark.parametrize("index", [[0, 0, 0, -1, -1, -1], [0, -1, 1, 1, -1, 0], [-1, -1, 1, 1, 1, 1],
                                   [1, 0, 1, 0, 1, 0], [-1] * 6])
def test_the_mask_free_reference_attention_equals_the_masked_one(index):
    torch.manual_seed(0)
    attn = randomize_(Attention(query_dim=32, heads=4, dim_head=8, out_bias=True), scale=0.2).eval()
    x, features = torch.randn(6, 10, 32), torch.randn(2, 7, 32)  # 6 samples of 10 tokens, 2 references of 7
    state = Stage1AttentionState(reference={"layer": features}, reference_runs=reference_runs(index))
    with torch.no_grad():
        mask_free = Stage1SelfAttnProcessor(state, "layer")._self_attention(attn, x)
        masked = _masked_reference_attention(attn, x, features, torch.tensor(index))
    torch.testing.assert_close(mask_free, masked, rtol=1e-5, atol=1e-6)


def test_a_compiled_stage1_denoiser_gives_the_eager_output(monkeypatch):
    """Through the sampler option; "aot_eager" captures the same graph as inductor without its C++ build (minutes on
    this CPU; bench/bench_compile.py times inductor)."""
    from dreamdance_core import compile as compile_module
    from dreamdance_core.pipelines import GeometryPipeline
    from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry
    from tests.tiny_stage1 import tiny_image_encoder, tiny_vae

    monkeypatch.setattr(compile_module, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    pipeline = GeometryPipeline(randomize_(tiny_stage1(), scale=0.05), tiny_vae(), tiny_image_encoder())
    reference, poses = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    eager = sample_geometry(pipeline, reference, poses, Stage1Options(steps=2))
    checks = []
    compiled = sample_geometry(pipeline, reference, poses, Stage1Options(steps=2, compile=True),
                               cancel_check=lambda: checks.append(1))
    for name in ("rgb", "normal", "depth"):
        torch.testing.assert_close(getattr(compiled, name), getattr(eager, name), rtol=1e-4, atol=1e-4)
    assert len(checks) >= 2  # the cancel check still runs (before each denoiser forward, and in the other models)
    assert not any(m._forward_pre_hooks for m in pipeline.model.modules())  # and leaves no hooks behind


def test_compiled_stage2_denoisers_give_the_eager_output(monkeypatch):
    """SVD UNet and ControlNet compiled ("aot_eager", as above) through the sampler option: the same video."""
    from dreamdance_core import compile as compile_module
    from dreamdance_core.sampling.stage2 import Stage2Options
    from tests.stage2_helpers import Control, sample
    from tests.tiny_svd import control_maps, reference_image, tiny_components, tiny_controller, tiny_controlnet

    monkeypatch.setattr(compile_module, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    components = tiny_components()
    control = Control(tiny_controller(), randomize_(tiny_controlnet(components.unet), scale=0.05),
                      control_maps(3, width=16, height=16))
    common = dict(width=16, height=16, num_frames=3, steps=2, min_cfg=1.0, max_cfg=2.5, seed=7)
    eager = sample(components, reference_image(16, 16), Stage2Options(**common), control)
    compiled = sample(components, reference_image(16, 16), Stage2Options(**common, compile=True), control)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
