"""Stage-2 nodes through the pack imported as ComfyUI does, with fake ComfyUI modules and tiny weights."""

from __future__ import annotations

import pytest
import torch

from dreamdance_core.fit import DEFAULT_FIT
from dreamdance_core.loading.svd import save_stage2_control
from dreamdance_core.media import to_uint8
from dreamdance_core.pose import RenderStyle, render_poses
from dreamdance_core.tiny import tiny_controller, tiny_svd_components
from tests.fit_cases import CANVASES, DOT, OUTPUT, assert_joints_on_dots, dotted_reference
from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)
from tests.tiny_sd15 import state_dicts_equal
from tests.tiny_svd import randomize_, save_diffusers_folder, tiny_controlnet

W, H = 32, 48
_G = torch.Generator().manual_seed(0)
REFERENCE = torch.rand(1, 64, 40, 3, generator=_G)
POSE, DEPTH, NORMAL = (torch.rand(3, H, W, 3, generator=_G) for _ in range(3))


@pytest.fixture
def nodes(comfy_stubs):
    return import_pack_module("nodes.video")


def _run(node_class, **inputs):
    return getattr(node_class(), node_class.FUNCTION)(**inputs)


def _demo(nodes):
    (model,) = _run(nodes.DreamDanceVideoModelLoader, stage2_weights="(tiny random demo)", svd_checkpoint="(none)",
                    precision="fp32", keep_loaded=False)
    return model


def _animate(nodes, model, **overrides):
    inputs = dict(
        video_model=model, reference=REFERENCE, width=W, height=H, steps=2, seed=3, min_cfg=1.0,
        max_cfg=2.5, fps=7, motion_bucket_id=127, noise_aug_strength=0.02, strength=1.0, pose_strength=1.0,
        depth_strength=1.0, normal_strength=1.0, decode_chunk_size=2,
        pose_images=POSE, depth=DEPTH, normal=NORMAL,
    )
    inputs.update(overrides)
    return _run(nodes.DreamDanceAnimate, **inputs)[0]


def test_tiny_demo_animates_one_frame_per_control_frame(nodes, comfy_stubs):
    model = _demo(nodes)
    frames = _animate(nodes, model)
    assert frames.shape == (3, H, W, 3) and 0 <= frames.min() and frames.max() <= 1
    assert comfy_stubs.progress[-1] == (2, 2)
    # deterministic with a seed, different with another
    assert torch.equal(frames, _animate(nodes, model))
    assert not torch.equal(frames, _animate(nodes, model, seed=4))


def test_an_unconnected_modality_is_a_dropped_black_map(nodes):
    model = _demo(nodes)
    randomize_(model.controlnet.controlnet_down_blocks, scale=0.05)  # make the control path active
    randomize_(model.controlnet.controlnet_mid_block, scale=0.05)
    without = _animate(nodes, model, depth=None)
    black = _animate(nodes, model, depth=torch.zeros(3, H, W, 3))
    torch.testing.assert_close(without, black, rtol=1e-4, atol=1e-4)
    assert not torch.equal(without, _animate(nodes, model))


def test_control_maps_must_agree_and_exist(nodes):
    model = _demo(nodes)
    with pytest.raises(ValueError, match="disagree on the number of frames"):
        _animate(nodes, model, depth=torch.rand(2, H, W, 3))
    with pytest.raises(ValueError, match="at least one control map"):
        _animate(nodes, model, pose_images=None, depth=None, normal=None)


def test_loader_reads_a_stage2_folder(nodes, comfy_stubs):
    components = tiny_svd_components()
    controller, controlnet = tiny_controller(), tiny_controlnet(components.unet)
    randomize_(controlnet.controlnet_mid_block)
    folder = comfy_stubs.models_dir / "dreamdance" / "my_stage2"
    save_stage2_control(folder, controller, controlnet)
    save_diffusers_folder(components, folder / "svd")
    assert "my_stage2" in nodes.DreamDanceVideoModelLoader.INPUT_TYPES()["required"]["stage2_weights"][0]
    (model,) = _run(nodes.DreamDanceVideoModelLoader, stage2_weights="my_stage2", svd_checkpoint="(none)",
                    precision="fp32", keep_loaded=False)
    assert state_dicts_equal(model.controlnet.state_dict(), controlnet.state_dict())
    assert not model.random_weights
    assert _animate(nodes, model).shape == (3, H, W, 3)


def test_a_shipped_demo_is_offered_after_user_weights_and_loads(nodes, comfy_stubs, tmp_path, monkeypatch):
    import importlib

    demo = importlib.import_module(nodes.__name__.rsplit(".", 2)[0] + ".dreamdance_core.demo")  # as the node sees it
    def choices():
        return nodes.DreamDanceVideoModelLoader.INPUT_TYPES()["required"]["stage2_weights"][0]

    monkeypatch.setattr(demo, "STAGE2_DIR", tmp_path / "missing")
    assert "(demo: synthetic mannequins)" not in choices()
    with pytest.raises(FileNotFoundError, match="demo checkpoint is missing"):
        _run(nodes.DreamDanceVideoModelLoader, stage2_weights="(demo: synthetic mannequins)", svd_checkpoint="(none)",
             precision="fp32", keep_loaded=False)

    components = tiny_svd_components()
    controller, controlnet = tiny_controller(), tiny_controlnet(components.unet)
    randomize_(controlnet.controlnet_mid_block)
    folder = tmp_path / "stage2"
    save_stage2_control(folder, controller, controlnet)
    save_diffusers_folder(components, folder / "svd")
    (folder / "demo.json").write_text('{"width": 32, "height": 48, "steps": 2, "guidance": [1.0, 2.5]}')
    save_stage2_control(comfy_stubs.models_dir / "dreamdance" / "mine", controller, controlnet)
    monkeypatch.setattr(demo, "STAGE2_DIR", folder)
    assert choices() == ["mine", "(demo: synthetic mannequins)", "(tiny random demo)"]  # user weights: the default
    (model,) = _run(nodes.DreamDanceVideoModelLoader, stage2_weights="(demo: synthetic mannequins)",
                    svd_checkpoint="(none)", precision="fp32", keep_loaded=False)
    assert state_dicts_equal(model.controlnet.state_dict(), controlnet.state_dict())
    assert not model.random_weights


def test_missing_svd_says_where_to_get_it(nodes, comfy_stubs):
    components = tiny_svd_components()
    save_stage2_control(
        comfy_stubs.models_dir / "dreamdance" / "bare", tiny_controller(), tiny_controlnet(components.unet)
    )
    with pytest.raises(Exception, match="svd_xt_1_1.safetensors"):
        _run(nodes.DreamDanceVideoModelLoader, stage2_weights="bare", svd_checkpoint="(none)", precision="fp32",
             keep_loaded=False)


def test_cancel_lands_within_one_step(nodes, comfy_stubs):
    model = _demo(nodes)
    comfy_stubs.interrupt()
    with pytest.raises(Exception) as raised:
        _animate(nodes, model, steps=6)
    assert type(raised.value).__name__ == "InterruptProcessingException"


def _capture_stage2(monkeypatch) -> dict:
    """Replace the Stage-2 sampler the node calls by one that records its reference and control maps."""
    seen = {}

    def sample_stage2(pipeline, reference, inputs, options, callback=None, cancel_check=None):
        seen.update(reference=reference, maps=dict(inputs.maps), options=options)
        return torch.zeros(options.num_frames, 3, options.height, options.width)

    monkeypatch.setattr(import_pack_module("dreamdance_core.sampling.stage2"), "sample_stage2", sample_stage2)
    return seen


def test_the_reference_is_fitted_straight_to_the_video_size(nodes, monkeypatch):
    """A 1-pixel checkerboard at the video size reaches Stage 2 unchanged (no detour through a smaller size)."""
    seen = _capture_stage2(monkeypatch)
    size = (64, 96)
    board = (torch.arange(size[1])[:, None] + torch.arange(size[0])[None, :]) % 2
    reference = board[None, :, :, None].expand(1, -1, -1, 3).float()
    _animate(nodes, _demo(nodes), reference=reference, width=size[0], height=size[1])
    assert torch.equal(seen["reference"], reference.permute(0, 3, 1, 2) * 2 - 1)


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("canvas", ["wider", "taller"])
def test_reference_and_maps_are_fitted_alike(nodes, monkeypatch, canvas, mode):
    """Pose maps rendered on the reference's canvas (Render Pose with size 0) and the reference, both of another
    aspect than the video: each joint lands on its body pixel in what Stage 2 receives."""
    seen = _capture_stage2(monkeypatch)
    image, pose = dotted_reference(CANVASES[canvas])
    pose_map = render_poses(pose, style=RenderStyle(joint_radius=DOT // 2))  # on the canvas, joints as big as dots
    _animate(nodes, _demo(nodes), reference=torch.from_numpy(image)[None] / 255.0, width=OUTPUT[0], height=OUTPUT[1],
             pose_images=torch.from_numpy(pose_map) / 255.0, depth=None, normal=None, fit=mode)
    assert seen["reference"].shape == seen["maps"]["pose"].shape == (1, 3, OUTPUT[1], OUTPUT[0])
    assert_joints_on_dots(to_uint8(seen["reference"])[0], to_uint8(seen["maps"]["pose"])[0],
                          expect_edge_joint=mode == "pad")


def test_fit_then_scheduler_then_control_maps_are_the_last_inputs_with_their_defaults(nodes):
    optional = nodes.DreamDanceAnimate.INPUT_TYPES()["optional"]
    assert list(optional)[-4:-1] == ["fit", "scheduler", "control_maps"] and optional["fit"][0] == ("crop", "pad")
    assert list(optional)[-1] == "compile"  # appended after them (tests/test_node_compile_memory.py)
    assert optional["scheduler"][1]["default"] == optional["scheduler"][0][0] == "euler"
    assert optional["fit"][1]["default"] == DEFAULT_FIT


def test_pad_fills_each_map_with_its_own_nothing(nodes, monkeypatch):
    """Maps wider than the video, fit "pad": bars above and below are no person (black pose), background depth
    (black) and background normal (the zero vector: mid-grey), the reference gets black bars."""
    seen = _capture_stage2(monkeypatch)
    wide = torch.full((3, 30, 60, 3), 0.8)
    _animate(nodes, _demo(nodes), reference=wide[:1], pose_images=wide, depth=wide, normal=wide, fit="pad")
    maps, reference = seen["maps"], seen["reference"]
    bars = {"reference": reference[..., 0, :], **{name: maps[name][..., 0, :] for name in ("pose", "depth", "normal")}}
    assert {name: bar.unique().tolist() for name, bar in bars.items()} == {
        "reference": [-1.0], "pose": [-1.0], "depth": [-1.0], "normal": [0.0]}
    for image in (reference, *maps.values()):
        torch.testing.assert_close(image[..., H // 2, :], torch.full_like(image[..., H // 2, :], 0.6))
