"""Precision per device (:mod:`dreamdance_core.precision`): the ``auto`` rule, TF32, the VAE upcast rule of diffusers'
pipelines (with a peer test against ``StableVideoDiffusionPipeline``), ``channels_last`` and Stage 1's optional RGB
decode. Tiny models only."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline

from dreamdance_core import precision
from dreamdance_core.geometry import decode_latents as decode_geometry
from dreamdance_core.geometry import encode_latents
from dreamdance_core.models.clip_image import reference_tensor
from dreamdance_core.precision import (
    PRECISIONS,
    needs_upcast,
    prepare_for_device,
    resolve_dtype,
    upcast_vae,
    use_channels_last,
)
from dreamdance_core.sampling import stage1, stage2
from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry
from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2
from dreamdance_core.sampling.windows import WindowOptions
from dreamdance_core.tiny import tiny_geometry_pipeline, tiny_svd_components, tiny_vae, tiny_video_pipeline
from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)


# ------------------------------------------------------------------------------------------------ precision names
def test_names_and_the_auto_rule(monkeypatch):
    assert PRECISIONS[0] == "auto"
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        for device in ("cpu", "cuda", "cuda:1", "mps"):
            assert resolve_dtype(name, device) == dtype  # an explicit choice is taken as given
    assert resolve_dtype("auto", "cpu") == resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", "mps") == torch.float16
    monkeypatch.setattr(precision, "cuda_bf16_supported", lambda device=None: True)  # Ampere and later
    assert resolve_dtype("auto", "cuda") == resolve_dtype("auto", "cuda:0") == torch.bfloat16
    monkeypatch.setattr(precision, "cuda_bf16_supported", lambda device=None: False)  # e.g. T4, V100
    assert resolve_dtype("auto", "cuda") == torch.float16
    with pytest.raises(ValueError, match="choose one of auto, fp32, fp16, bf16"):
        resolve_dtype("float32", "cpu")


def test_bf16_support_is_false_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.cuda_bf16_supported() is False


@pytest.fixture
def tf32_flags():
    """Both TF32 flags off for the test, restored after it (they are process-wide)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_is_set_only_for_cuda(tf32_flags):
    model = torch.nn.Conv2d(4, 4, 3)
    prepare_for_device([model], "cpu", channels_last=True)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert model.weight.is_contiguous()  # nothing changes off CUDA
    prepare_for_device([model], torch.device("cuda", 0))  # a device object only: nothing runs on it
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert model.weight.is_contiguous()  # channels_last is opt-in
    prepare_for_device([model], "cuda", channels_last=True)
    assert model.weight.is_contiguous(memory_format=torch.channels_last)


def test_precision_flag_reaches_both_pipelines(tmp_path, monkeypatch):
    """``--precision`` (default auto) gives both loaders the dtype and both samplers run in it; fp32 on this CPU."""
    from dreamdance_core import sources
    from dreamdance_core.__main__ import main, parse_args

    assert parse_args([]).precision == "auto"
    with pytest.raises(SystemExit):
        parse_args(["--precision", "fp64"])
    asked, ran = [], []

    def loader(load):
        def recorded(*args, **kwargs):
            asked.append(kwargs["dtype"])
            return load(*args, **kwargs)

        return recorded

    def spy(sample):
        def recorded(pipeline, *args, **kwargs):
            ran.append({p.dtype for m in pipeline.modules() for p in m.parameters()})
            return sample(pipeline, *args, **kwargs)

        return recorded

    for name in ("geometry_pipeline", "video_pipeline"):
        monkeypatch.setattr(sources, name, loader(getattr(sources, name)))
    for module, name in ((stage1, "sample_geometry"), (stage2, "sample_stage2")):
        monkeypatch.setattr(module, name, spy(getattr(module, name)))
    args = ["--frames", "2", "--steps", "1", "--video-steps", "1", "--window", "2", "--overlap", "0"]
    assert main([*args, "--precision", "bf16", "--output", str(tmp_path / "bf16")]) == 0
    assert asked == [torch.bfloat16] * 2 and ran == [{torch.bfloat16}] * 2
    asked.clear(), ran.clear()
    assert main([*args, "--geometry-only", "--output", str(tmp_path / "auto")]) == 0
    assert asked == [torch.float32] and ran == [{torch.float32}]
    assert len(list((tmp_path / "auto" / "rgb").glob("*.png"))) == 2  # the command line still writes Stage 1's RGB


# ------------------------------------------------------------------------------------------------ VAE upcast rule
def dtype_inside(module: torch.nn.Module, seen: list) -> torch.utils.hooks.RemovableHandle:
    """Record the dtype of the first parameter and of the input every time ``module`` runs."""
    return module.register_forward_pre_hook(lambda m, args: seen.append((next(m.parameters()).dtype, args[0].dtype)))


def svd_vae(dtype: torch.dtype, force_upcast: bool = True):
    vae = tiny_svd_components().vae
    vae.register_to_config(force_upcast=force_upcast)
    return vae.to(dtype)


def test_the_rule():
    assert needs_upcast(svd_vae(torch.float16)) and needs_upcast(tiny_vae().half())  # both configs default to True
    assert not needs_upcast(svd_vae(torch.float16, force_upcast=False))
    assert not needs_upcast(svd_vae(torch.bfloat16)) and not needs_upcast(svd_vae(torch.float32))
    from diffusers import AutoencoderTiny

    assert not needs_upcast(AutoencoderTiny(encoder_block_out_channels=(8,), decoder_block_out_channels=(8,),
                                            num_encoder_blocks=(1,), num_decoder_blocks=(1,)).half())


def test_an_fp16_vae_with_force_upcast_encodes_and_decodes_in_fp32_and_is_cast_back():
    """Stage 2's decode and Stage 1's encode/decode: inside the VAE everything is fp32; after, the VAE is fp16 again
    (also when a cancel raises mid-decode), and the frames equal the same weights run in fp32."""
    torch.manual_seed(3)
    latents = torch.randn(3, 4, 8, 8)
    for vae, decode, encode in (
        (svd_vae(torch.float16), lambda v, x: stage2.decode_latents(v, x, 2), None),
        (tiny_vae().half(), lambda v, x: decode_geometry(v, x, 2), lambda v, x: encode_latents(v, x, 2)),
    ):
        reference = copy.deepcopy(vae).float()  # the fp16 weights, upcast
        seen = []
        handles = [dtype_inside(vae.decoder, seen), dtype_inside(vae.encoder, seen)]
        frames = decode(vae, latents)
        assert seen and all(record == (torch.float32, torch.float32) for record in seen)
        assert vae.dtype == torch.float16 and frames.dtype == torch.float32
        torch.testing.assert_close(frames, decode(reference, latents), rtol=0, atol=0)
        if encode is not None:
            seen.clear()
            images = torch.rand(3, 3, 64, 64) * 2 - 1
            torch.testing.assert_close(encode(vae, images), encode(reference, images), rtol=0, atol=0)
            assert seen and all(record == (torch.float32, torch.float32) for record in seen)

        def cancel():
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            decode_geometry(vae, latents, 2, cancel) if encode else stage2.decode_latents(vae, latents, 2, cancel)
        assert vae.dtype == torch.float16
        for handle in handles:
            handle.remove()


def test_a_bf16_vae_and_an_fp16_vae_without_force_upcast_run_as_they_are():
    latents = torch.randn(2, 4, 8, 8)
    for vae in (svd_vae(torch.bfloat16), svd_vae(torch.float16, force_upcast=False)):
        seen = []
        dtype_inside(vae.decoder, seen)
        with upcast_vae(vae):
            assert vae.dtype != torch.float32
        frames = stage2.decode_latents(vae, latents, 2)
        assert seen == [(vae.dtype, vae.dtype)] and frames.dtype == torch.float32


@pytest.fixture(scope="module")
def fp16_vae_parts():
    parts = tiny_svd_components()
    parts.vae.half()  # UNet and CLIP stay fp32: only the VAE's rule is under test
    return parts


def test_stage2_with_an_fp16_vae_equals_the_diffusers_pipeline(fp16_vae_parts):
    """Plain SVD with an fp16 VAE (force_upcast): the pipeline encodes the reference in fp32 (``needs_upcasting``) and
    so do we. Its latents, decoded by the same weights in fp32, are our frames. (The pipeline then decodes in fp16 -
    it casts the VAE back before decoding - and we do not: a VAE marked force_upcast runs in fp32 for both.)"""
    from transformers import CLIPImageProcessor

    from tests.test_svd_peer import pil_reference

    parts = fp16_vae_parts
    pipeline = StableVideoDiffusionPipeline(
        vae=parts.vae, image_encoder=parts.image_encoder, unet=parts.unet,
        scheduler=EulerDiscreteScheduler.from_config(dict(parts.scheduler_config)),
        feature_extractor=CLIPImageProcessor(),
    )
    w, h, frames = 32, 16, 3
    opts = Stage2Options(width=w, height=h, num_frames=frames, steps=3, min_cfg=1.5, max_cfg=3.0, fps=9,
                         noise_aug_strength=0.07, decode_chunk_size=2, seed=13)
    image = pil_reference((w, h), seed=12)
    ours = torch.Generator().manual_seed(opts.seed)
    torch.randn((1, 3, h, w), generator=ours)  # the augmentation noise: the pipeline draws it itself
    latents = torch.randn(1, frames, 4, h // 2, w // 2, generator=ours)
    seen = []
    dtype_inside(parts.vae.encoder, seen)
    with torch.no_grad():
        expected_latents = pipeline(
            image, height=h, width=w, num_frames=frames, num_inference_steps=opts.steps,
            min_guidance_scale=opts.min_cfg, max_guidance_scale=opts.max_cfg, fps=opts.fps,
            motion_bucket_id=opts.motion_bucket_id, noise_aug_strength=opts.noise_aug_strength,
            generator=torch.Generator().manual_seed(opts.seed), latents=latents, output_type="latent",
        ).frames[0]
    assert seen == [(torch.float32, torch.float32)] and parts.vae.dtype == torch.float16  # the pipeline's upcast
    expected = stage2.decode_latents(copy.deepcopy(parts.vae).float(), expected_latents, opts.decode_chunk_size)
    video = sample_stage2(parts, reference_tensor(image), None, opts)
    assert seen[1:] == [(torch.float32, torch.float32)] and parts.vae.dtype == torch.float16
    torch.testing.assert_close(video, expected, rtol=0, atol=1e-5)


def test_without_the_upcast_an_fp16_vae_gives_other_frames(fp16_vae_parts, monkeypatch):
    """The test above has teeth: the same run with the rule switched off (fp16 encode and decode) differs."""
    import dreamdance_core.precision as module

    opts = Stage2Options(width=32, height=16, num_frames=3, steps=3, min_cfg=1.5, max_cfg=3.0, seed=13)
    reference = torch.rand(1, 3, 16, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    upcast = sample_stage2(fp16_vae_parts, reference, None, opts)
    monkeypatch.setattr(module, "needs_upcast", lambda vae: False)
    plain = sample_stage2(fp16_vae_parts, reference, None, opts)
    assert (plain - upcast).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------------ channels_last
def test_channels_last_gives_the_same_stage1_and_stage2_outputs():
    """Both samplers on the tiny models (UNets, pose guider, controller, ControlNet, VAEs, all in fp32), before and
    after ``use_channels_last``: the same frames within fp32 tolerance, and the weights really changed layout."""
    reference = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    poses = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    maps = {name: torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
            for name in ("pose", "depth", "normal")}
    geometry, video = tiny_geometry_pipeline(), tiny_video_pipeline()
    options1 = Stage1Options(steps=2, windows=WindowOptions(length=2, overlap=1))
    options2 = Stage2Options(width=16, height=16, num_frames=3, steps=2)

    def run():
        out1 = sample_geometry(geometry, reference, poses, options1)
        out2 = sample_stage2(video, reference, Stage2Inputs(maps), options2)
        return torch.cat([out1.rgb, out1.normal, out1.depth, out2])

    layouts = []
    for conv in (geometry.model.denoising_unet.conv_out, video.components.unet.conv_out, video.controlnet.conv_in):
        conv.register_forward_hook(lambda m, a, out: layouts.append(out.is_contiguous(memory_format=torch.channels_last)
                                                                    and not out.is_contiguous()))
    before = run()
    assert layouts and not any(layouts)
    layouts.clear()
    assert use_channels_last([*geometry.modules(), *video.modules()])
    conv = geometry.model.denoising_unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    after = run()
    assert layouts and all(layouts)  # the activations really ran in the other layout
    torch.testing.assert_close(after, before, rtol=0, atol=1e-4)  # other conv kernels: float rounding only


# ------------------------------------------------------------------------------------------------ Stage 1 RGB decode
def test_stage1_skips_the_rgb_decode_when_not_asked():
    pipeline = tiny_geometry_pipeline()
    reference = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    poses = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    decoded, decode = [], pipeline.vae.decode

    def counting(latents, *args, **kwargs):
        decoded.append(latents.shape[0])
        return decode(latents, *args, **kwargs)

    pipeline.vae.decode = counting
    full = sample_geometry(pipeline, reference, poses, Stage1Options(steps=2, decode_chunk_size=4))
    assert sum(decoded) == 3 * 3 and full.rgb.shape == (3, 3, 16, 16)
    decoded.clear()
    geometry = sample_geometry(pipeline, reference, poses, Stage1Options(steps=2, decode_chunk_size=4,
                                                                         decode_rgb=False))
    assert sum(decoded) == 2 * 3 and geometry.rgb is None  # normal and depth only
    torch.testing.assert_close(geometry.normal, full.normal, rtol=1e-4, atol=2e-5)
    torch.testing.assert_close(geometry.depth, full.depth, rtol=1e-4, atol=2e-5)


# ------------------------------------------------------------------------------------------------ loader nodes
def test_loader_nodes_default_to_auto_keep_the_old_values_and_resolve_for_comfys_device(comfy_stubs, tf32_flags,
                                                                                          monkeypatch):
    import json
    import sys
    from pathlib import Path

    geometry, video = import_pack_module("nodes.geometry"), import_pack_module("nodes.video")
    loaders = (geometry.DreamDanceGeometryModelLoader, video.DreamDanceVideoModelLoader)
    saved = json.loads((Path(__file__).parent / "saved_workflows" / "full_pipeline_before_scheduler.json").read_text())
    for loader in loaders:
        values, spec = loader.INPUT_TYPES()["required"]["precision"]
        assert values == ["auto", "fp32", "fp16", "bf16"] and spec["default"] == "auto"
        old = [node["widgets_values"][-2] for node in saved["nodes"] if node["type"] == loader.__name__]
        assert old and set(old) <= set(values)  # workflows saved with fp32 (or fp16) still load
    demo = "(demo: synthetic mannequins)"
    (model,) = geometry.DreamDanceGeometryModelLoader().load(demo, "(none)", "(none)", "auto", False)
    assert model.model.denoising_unet.dtype == model.vae.dtype == torch.float32  # ComfyUI's device is the CPU here
    (model,) = video.DreamDanceVideoModelLoader().load(demo, "(none)", "bf16", False)
    assert {p.dtype for m in model.modules() for p in m.parameters()} == {torch.bfloat16}
    assert not torch.backends.cuda.matmul.allow_tf32
    # a ComfyUI on a CUDA GPU started with --force-channels-last (the device is only named: nothing runs on it)
    mm = sys.modules["comfy.model_management"]
    monkeypatch.setattr(mm, "get_torch_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(mm, "force_channels_last", lambda: True, raising=False)
    pack_precision = import_pack_module("dreamdance_core.precision")  # the pack's own copy of the module
    monkeypatch.setattr(pack_precision, "cuda_bf16_supported", lambda device=None: True)
    (model,) = geometry.DreamDanceGeometryModelLoader().load(demo, "(none)", "(none)", "auto", False)
    assert model.model.denoising_unet.dtype == torch.bfloat16 and torch.backends.cuda.matmul.allow_tf32
    assert model.model.denoising_unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
