"""Stage-1 nodes through the pack imported as ComfyUI does, with fake ComfyUI modules and tiny weights."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dreamdance_core.fit import DEFAULT_FIT
from dreamdance_core.media import to_uint8
from dreamdance_core.pose import sample_dance, to_pose_keypoint
from tests.fit_cases import CANVASES, OUTPUT, assert_joints_on_dots, dotted_reference
from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)
from tests.tiny_sd15 import write_clip_vision_folder, write_ldm_single_file
from tests.tiny_stage1 import randomize_, tiny_image_encoder, tiny_stage1, tiny_vae

W, H = 32, 48


@pytest.fixture
def nodes(comfy_stubs):
    return import_pack_module("nodes.geometry")


def _run(node_class, **inputs):
    return getattr(node_class(), node_class.FUNCTION)(**inputs)


def _sample(nodes, model, frames: int = 2, **overrides):
    inputs = dict(
        geometry_model=model, reference=torch.rand(1, 64, 40, 3), width=W, height=H, steps=2, seed=1,
        cfg_rgb=3.5, cfg_normal=2.5, cfg_depth=3.5,
        pose_keypoint=to_pose_keypoint(sample_dance(frames, W, H)),
    )
    inputs.update(overrides)
    return _run(nodes.DreamDancePoseToGeometry, **inputs)


def test_tiny_demo_runs_end_to_end_with_progress(nodes, comfy_stubs):
    (model,) = _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="(tiny random demo)", base_checkpoint="(none)",
                    clip_vision="(none)", precision="fp32", keep_loaded=False)
    depth, normal, rgb, poses = _sample(nodes, model, frames=3)
    for image in (depth, normal, rgb, poses):
        assert image.shape == (3, H, W, 3) and 0 <= image.min() and image.max() <= 1
    assert comfy_stubs.progress[-1] == (2, 2)
    (windows,) = _run(nodes.DreamDanceWindowOptions, length=2, overlap=1, weighting="pyramid", retain_first_frame=False)
    comfy_stubs.progress.clear()
    depth, *_ = _sample(nodes, model, frames=3, windows=windows)
    assert depth.shape[0] == 3 and comfy_stubs.progress[-1] == (4, 4)  # 2 windows x 2 steps


def test_loader_reads_weights_from_the_model_folders(nodes, comfy_stubs):
    from tests.tiny_sd15 import state_dicts_equal

    stage1 = tiny_stage1()
    randomize_(stage1.adapter)
    folder = comfy_stubs.models_dir / "dreamdance" / "my_stage1"
    stage1.save_pretrained(folder)
    write_clip_vision_folder(folder / "image_encoder", tiny_image_encoder())
    vae = tiny_vae()
    write_ldm_single_file(comfy_stubs.models_dir / "checkpoints" / "sd15.safetensors", stage1.reference_unet, vae)
    options = nodes.DreamDanceGeometryModelLoader.INPUT_TYPES()["required"]
    assert "my_stage1" in options["stage1_weights"][0]
    assert "sd15.safetensors" in options["base_checkpoint"][0]
    # a checkpoint that is not SD1.5-sized is refused with the mismatch spelled out
    with pytest.raises(Exception, match="does not match AutoencoderKL"):
        _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="my_stage1", base_checkpoint="sd15.safetensors",
             clip_vision="(none)", precision="fp32", keep_loaded=True)
    vae.save_pretrained(folder / "vae")  # a self-contained weights folder needs no base checkpoint
    (model,) = _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="my_stage1", base_checkpoint="(none)",
                    clip_vision="(none)", precision="fp32", keep_loaded=True)
    assert state_dicts_equal(model.model.adapter.state_dict(), stage1.adapter.state_dict())
    assert state_dicts_equal(model.vae.state_dict(), vae.state_dict())
    assert model.keep_loaded and not model.random_weights


def test_missing_weights_folder_names_the_folders_searched(nodes, comfy_stubs):
    with pytest.raises(FileNotFoundError, match="models/dreamdance"):
        _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="gone", base_checkpoint="(none)",
             clip_vision="(none)", precision="fp32", keep_loaded=False)


def test_pose_inputs_exactly_one(nodes):
    (model,) = _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="(tiny random demo)", base_checkpoint="(none)",
                    clip_vision="(none)", precision="fp32", keep_loaded=False)
    with pytest.raises(ValueError, match="exactly one pose input"):
        _sample(nodes, model, pose_keypoint=None)
    with pytest.raises(ValueError, match="exactly one pose input"):
        _sample(nodes, model, pose_images=torch.zeros(2, H, W, 3))


def test_cancel_lands_within_one_step(nodes, comfy_stubs):
    (model,) = _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="(tiny random demo)", base_checkpoint="(none)",
                    clip_vision="(none)", precision="fp32", keep_loaded=False)
    comfy_stubs.interrupt()
    with pytest.raises(Exception) as raised:
        _sample(nodes, model, steps=5)
    assert type(raised.value).__name__ == "InterruptProcessingException"
    assert comfy_stubs.progress == []


def test_preview_puts_panels_side_by_side(nodes, comfy_stubs):
    depth, normal = torch.rand(2, H, W, 3), torch.rand(2, H, W, 3)
    result = _run(nodes.DreamDanceGeometryPreview, depth=depth, normal=normal, pose_images=torch.rand(2, H, W, 3),
                  reference=torch.rand(1, 96, 64, 3))
    (preview,) = result["result"]
    assert preview.shape == (2, H, 4 * W, 3)
    assert len(result["ui"]["images"]) == 2
    assert (comfy_stubs.temp_dir / result["ui"]["images"][0]["filename"]).is_file()
    with pytest.raises(ValueError, match="same video"):
        _run(nodes.DreamDanceGeometryPreview, depth=depth, normal=normal[:1])


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("canvas", CANVASES, ids=list(CANVASES))
def test_reference_and_keypoints_are_fitted_alike(nodes, monkeypatch, canvas, mode):
    """What Stage 1 receives: the reference IMAGE and the POSE_KEYPOINT (detected on it: same canvas) placed by the
    node's ``fit`` so that each keypoint stays on its body pixel (tests/fit_cases.py)."""
    seen = {}

    def sample_geometry(pipeline, reference, poses, options, callback=None, cancel_check=None):  # records inputs
        seen.update(reference=reference, poses=poses)
        return SimpleNamespace(depth=poses, normal=poses, rgb=poses)

    monkeypatch.setattr(import_pack_module("dreamdance_core.sampling.stage1"), "sample_geometry", sample_geometry)
    (model,) = _run(nodes.DreamDanceGeometryModelLoader, stage1_weights="(tiny random demo)", base_checkpoint="(none)",
                    clip_vision="(none)", precision="fp32", keep_loaded=False)
    image, pose = dotted_reference(CANVASES[canvas])
    *_, pose_images = _sample(nodes, model, reference=torch.from_numpy(image)[None] / 255.0, width=OUTPUT[0],
                              height=OUTPUT[1], pose_keypoint=to_pose_keypoint(pose), fit=mode)
    assert seen["reference"].shape == (1, 3, OUTPUT[1], OUTPUT[0])
    assert torch.equal(pose_images, ((seen["poses"] + 1) / 2).permute(0, 2, 3, 1))  # the maps Stage 1 saw
    assert_joints_on_dots(to_uint8(seen["reference"])[0], to_uint8(seen["poses"])[0],
                          expect_edge_joint=mode == "pad" or canvas == "equal")


def test_fit_then_scheduler_are_the_last_inputs_with_their_defaults(nodes):
    """Appended last in this order (saved workflows keep their widget order), optional, crop / the stage's default
    scheduler by default."""
    optional = nodes.DreamDancePoseToGeometry.INPUT_TYPES()["optional"]
    assert list(optional)[-3:] == ["fit", "scheduler", "compile"] and optional["fit"][0] == ("crop", "pad")
    assert optional["scheduler"][1]["default"] == optional["scheduler"][0][0] == "ddim"
    assert optional["fit"][1]["default"] == DEFAULT_FIT == "crop"
