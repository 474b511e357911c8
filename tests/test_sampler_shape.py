"""Both stages' samplers: one shape, a scheduler choice, previews without a scheduler's internals; and workflows saved
before the scheduler inputs existed still load and run.

The default schedulers are today's: DDIM over the model's noise schedule (Stage 1) and SVD's own Euler (Stage 2), so
the default output is bit for bit the output from before the choice existed (tests/test_svd_peer.py also holds
Stage 2's default equal to diffusers' StableVideoDiffusionPipeline).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

from dreamdance_core.geometry import latent_preview
from dreamdance_core.pipelines import GeometryPipeline, VideoPipeline
from dreamdance_core.sampling import stage1, stage2
from dreamdance_core.sampling.schedulers import STAGE1_SCHEDULERS, STAGE2_SCHEDULERS, stage1_scheduler, stage2_scheduler
from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry
from dreamdance_core.sampling.stage2 import Stage2InputError, Stage2Inputs, Stage2Options, sample_stage2
from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)
from tests.tiny_stage1 import randomize_, tiny_image_encoder, tiny_stage1, tiny_vae
from tests.tiny_svd import control_maps, reference_image, tiny_components, tiny_controller, tiny_controlnet

SAVED_WORKFLOW = Path(__file__).parent / "saved_workflows" / "full_pipeline_before_scheduler.json"  # as shipped before
STAGES = ("stage1", "stage2")
CHOICES = [(stage, name) for stage, table in zip(STAGES, (STAGE1_SCHEDULERS, STAGE2_SCHEDULERS)) for name in table]


@pytest.fixture(scope="module")
def cases():
    """Per stage: (sampler, options class, pipeline, reference, per-frame inputs, base options)."""
    torch.manual_seed(0)
    model = tiny_stage1()
    randomize_(model.adapter, scale=0.05, seed=2)
    randomize_(model.pose_guider, scale=0.05, seed=3)
    geometry = GeometryPipeline(model, tiny_vae().eval(), tiny_image_encoder())
    g = torch.Generator().manual_seed(1)
    poses = torch.rand(3, 3, 32, 24, generator=g) * 2 - 1
    components = tiny_components()
    video = VideoPipeline(components, randomize_(tiny_controller(), seed=21, scale=0.1),
                          randomize_(tiny_controlnet(components.unet), seed=22, scale=0.1))
    return {
        "stage1": (sample_geometry, Stage1Options, geometry, torch.rand(1, 3, 32, 24, generator=g) * 2 - 1, poses,
                   dict(steps=3, seed=5)),
        "stage2": (sample_stage2, Stage2Options, video, reference_image(16, 16), Stage2Inputs(control_maps(3, 16, 16)),
                   dict(width=16, height=16, num_frames=3, steps=3, max_cfg=2.5, decode_chunk_size=3, seed=5)),
    }


def run(sampler, pipeline, reference, inputs, options, callback=None):
    """The one shape: any stage's sampler is called the same way."""
    return sampler(pipeline, reference, inputs, options, callback)


def frames(output) -> torch.Tensor:
    """Stage 1's three domains or Stage 2's video, as one tensor."""
    return output if isinstance(output, torch.Tensor) else torch.cat([output.rgb, output.normal, output.depth])


def sample(cases, stage: str, callback=None, **overrides) -> torch.Tensor:
    sampler, options, pipeline, reference, inputs, base = cases[stage]
    return frames(run(sampler, pipeline, reference, inputs, options(**{**base, **overrides}), callback))


def test_both_samplers_have_one_shape(cases):
    names = ["pipeline", "reference", "inputs", "options", "callback"]
    for stage in STAGES:
        sampler, options, pipeline, reference, inputs, base = cases[stage]
        parameters = inspect.signature(sampler).parameters.values()
        assert [p.name for p in parameters if p.kind != p.KEYWORD_ONLY] == names, stage
        assert [p.name for p in parameters if p.kind == p.KEYWORD_ONLY] == ["cancel_check"], stage
        calls = []
        positional = run(sampler, pipeline, reference, inputs, options(**base), lambda *a: calls.append(a))
        assert [(step, total) for step, total, _ in calls] == [(1, 3), (2, 3), (3, 3)], stage
        assert all(preview.shape[0] == 3 for *_, preview in calls), stage  # an RGB guess per step
        by_name = sampler(pipeline=pipeline, reference=reference, inputs=inputs, options=options(**base))
        assert torch.equal(frames(positional), frames(by_name)), stage
        assert "seed" in inspect.signature(options).parameters and "scheduler" in inspect.signature(options).parameters


@pytest.mark.parametrize("stage, name", CHOICES)
def test_every_scheduler_runs_from_the_seed_and_a_non_default_one_changes_the_output(cases, stage, name):
    default = sample(cases, stage)
    out = sample(cases, stage, scheduler=name)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0
    assert torch.equal(out, sample(cases, stage, scheduler=name)), "same seed, same result (stochastic ones too)"
    if name == list(STAGE1_SCHEDULERS if stage == "stage1" else STAGE2_SCHEDULERS)[0]:
        assert torch.equal(out, default)
    else:
        assert (out - default).abs().max() > 1e-3


def test_the_defaults_are_todays_schedulers_bit_for_bit(cases, monkeypatch):
    """Default output == the output with the scheduler each stage was fixed to before the choice: DDIM built over the
    model's schedule (Stage 1's old ``default_scheduler``) and ``EulerDiscreteScheduler.from_config(SVD's config)``."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    from dreamdance_core.models.stage1 import SD15_NOISE_SCHEDULE

    defaults = {stage: sample(cases, stage) for stage in STAGES}
    monkeypatch.setattr(stage1, "stage1_scheduler",
                        lambda name, schedule: DDIMScheduler(**{**SD15_NOISE_SCHEDULE, **(schedule or {})}))
    monkeypatch.setattr(stage2, "stage2_scheduler",
                        lambda name, config: EulerDiscreteScheduler.from_config(dict(config)))
    for stage in STAGES:
        assert torch.equal(defaults[stage], sample(cases, stage)), stage


def _recording(builder, estimates: list):
    """Wrap a scheduler builder so that every ``step`` records the scheduler's own clean-latent estimate."""

    def build(*args):
        scheduler = builder(*args)
        step = scheduler.step

        def recorded(model_output, timestep, sample, **kwargs):
            out = step(model_output, timestep, sample, **kwargs)
            x0 = getattr(out, "pred_original_sample", None)
            estimates.append(scheduler.model_outputs[-1] if x0 is None else x0)  # DPM-Solver keeps its x0 there
            return out

        scheduler.step = recorded
        return scheduler

    return build


@pytest.mark.parametrize("stage, name", CHOICES)
def test_the_preview_is_the_steps_clean_estimate(cases, monkeypatch, stage, name):
    """The sampler computes its previews from the model input and timestep only; they equal what each scheduler
    itself estimates as the clean latent at that step (the middle frame; Stage 1: its RGB domain)."""
    estimates, previews = [], []
    module, builder = (stage1, stage1_scheduler) if stage == "stage1" else (stage2, stage2_scheduler)
    monkeypatch.setattr(module, builder.__name__, _recording(builder, estimates))
    sample(cases, stage, callback=lambda step, total, preview: previews.append(preview), scheduler=name)
    assert len(previews) == len(estimates) == 3
    for preview, x0 in zip(previews, estimates):
        torch.testing.assert_close(preview, latent_preview(x0[0, x0.shape[1] // 2]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(STAGE2_SCHEDULERS))
def test_every_stage2_scheduler_conditions_svd_as_its_euler_does(name):
    """SVD's UNet was trained on ``t = 0.25 log sigma`` and inputs ``x / sqrt(sigma^2 + 1)`` over Karras sigmas
    0.002..700: every offered scheduler feeds it exactly that, on the same noise levels as SVD's own Euler."""
    from diffusers import EulerDiscreteScheduler, HeunDiscreteScheduler

    config = dict(tiny_components().scheduler_config)
    euler = EulerDiscreteScheduler.from_config(config)
    euler.set_timesteps(6)
    chosen = stage2_scheduler(name, config)
    chosen.set_timesteps(6)
    sigmas = torch.exp(4 * chosen.timesteps.double())
    torch.testing.assert_close(sigmas, euler.sigmas[:-1].double(), rtol=1e-5, atol=0)
    assert float(chosen.init_noise_sigma) == pytest.approx(float(euler.init_noise_sigma), rel=1e-6)
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * 10
    scaled = chosen.scale_model_input(x, chosen.timesteps[1])
    torch.testing.assert_close(scaled, x / torch.sqrt(sigmas[1].float() ** 2 + 1), rtol=1e-5, atol=1e-6)
    # why Heun (and Euler ancestral, DPM++ without EDM) are not offered: they would give the UNet discrete timesteps
    heun = HeunDiscreteScheduler.from_config(config)
    heun.set_timesteps(6)
    assert heun.timesteps.max() > 100


def test_unknown_scheduler_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown Stage-1 scheduler 'heun'.*ddim"):
        Stage1Options(scheduler="heun")
    with pytest.raises(Stage2InputError, match="unknown Stage-2 scheduler 'ddim'.*euler"):
        Stage2Options(scheduler="ddim")
    with pytest.raises(ValueError, match="3 scales"):
        Stage1Options(guidance=(3.0, 2.0))


def test_control_maps_need_the_video_pipeline(cases):
    _, _, video, reference, inputs, base = cases["stage2"]
    with pytest.raises(Stage2InputError, match="need a VideoPipeline"):
        sample_stage2(video.components, reference, inputs, Stage2Options(**base))


def _object_info(*modules) -> dict:
    """What ComfyUI's ``/object_info`` says of the pack's nodes now (JSON: tuples become lists)."""
    info = {}
    for module in modules:
        for node_id, node in module.NODE_CLASS_MAPPINGS.items():
            declared = node.INPUT_TYPES()
            order = {section: list(declared[section]) for section in declared}
            info[node_id] = {"input": declared, "input_order": order}
    return json.loads(json.dumps(info))


def test_a_workflow_saved_before_the_scheduler_inputs_loads_and_runs(comfy_stubs):
    """tests/saved_workflows holds workflows/full_pipeline.json as shipped before the scheduler inputs: its widget
    values still map onto the nodes' inputs in order, the appended inputs take their defaults (the stage's old
    scheduler), every value is valid for its input, and both sampling nodes run with what it saved."""
    from dreamdance_core.pose import sample_dance, to_pose_keypoint
    from tests.comfyui.workflow_api import ui_workflow_to_api

    geometry, video = import_pack_module("nodes.geometry"), import_pack_module("nodes.video")
    info = _object_info(geometry, video, import_pack_module("nodes.pose"))
    info.update({core: {"input": {"required": {}}} for core in ("LoadImage", "SaveAnimatedWEBP")})  # not under test
    saved = json.loads(SAVED_WORKFLOW.read_text())
    saved_widgets = {node["type"]: node["widgets_values"] for node in saved["nodes"]}
    assert "scheduler" not in json.dumps(saved)  # really saved before the inputs existed
    prompt = {node["class_type"]: node["inputs"] for node in ui_workflow_to_api(saved, info).values()}
    stage1_inputs, stage2_inputs = prompt["DreamDancePoseToGeometry"], prompt["DreamDanceAnimate"]
    assert stage1_inputs["scheduler"] == "ddim" and stage2_inputs["scheduler"] == "euler"
    assert [stage1_inputs[k] for k in ("width", "height", "steps", "seed", "cfg_rgb", "cfg_normal", "cfg_depth")] == [
        v for v in saved_widgets["DreamDancePoseToGeometry"] if v != "fixed"]
    for node_id in ("DreamDancePoseToGeometry", "DreamDanceAnimate"):
        declared = {**info[node_id]["input"]["required"], **info[node_id]["input"].get("optional", {})}
        for name, value in prompt[node_id].items():
            kind, options = declared[name][0], declared[name][1]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                continue  # a link
            if isinstance(kind, list):
                assert value in kind, (node_id, name, value)
            elif kind in ("INT", "FLOAT"):
                assert options.get("min", value) <= value <= options.get("max", value), (node_id, name, value)

    def widgets(inputs: dict) -> dict:  # the saved values, without the links
        return {k: v for k, v in inputs.items() if not (isinstance(v, list) and len(v) == 2 and isinstance(v[1], int))}

    node = geometry.DreamDanceGeometryModelLoader()
    (model,) = node.load(stage1_weights="(tiny random demo)", base_checkpoint="(none)", clip_vision="(none)",
                         precision="fp32", keep_loaded=False)
    small = {**widgets(stage1_inputs), "width": 32, "height": 48}  # the saved settings at a tiny size
    depth, normal, _, poses = geometry.DreamDancePoseToGeometry().generate(
        geometry_model=model, reference=torch.rand(1, 48, 32, 3),
        pose_keypoint=to_pose_keypoint(sample_dance(2, 32, 48)), **small,
    )
    assert depth.shape == (2, 48, 32, 3) and torch.isfinite(depth).all()
    (video_model,) = video.DreamDanceVideoModelLoader().load(
        stage2_weights="(tiny random demo)", svd_checkpoint="(none)", precision="fp32", keep_loaded=False)
    small = {**widgets(stage2_inputs), "width": 32, "height": 48, "steps": 2}
    (out,) = video.DreamDanceAnimate().animate(video_model=video_model, reference=torch.rand(1, 48, 32, 3),
                                               pose_images=poses, depth=depth, normal=normal, **small)
    assert out.shape == (2, 48, 32, 3) and torch.isfinite(out).all()
