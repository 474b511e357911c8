"""The pose nodes, run through the pack imported as ComfyUI does, with fake ComfyUI modules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dreamdance_core.pose import from_pose_keypoint, sample_dance, to_pose_keypoint, write_openpose_files
from dreamdance_core.pose.schema import BODY_COLORS, NECK
from tests.node_stubs import comfy_stubs, import_pack, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)


@pytest.fixture
def nodes(comfy_stubs):
    return import_pack_module("nodes.pose")


def _run(node_class, **inputs):
    node = node_class()
    return getattr(node, node_class.FUNCTION)(**inputs)


def test_every_input_has_a_tooltip_and_ids_are_stable(nodes):
    assert set(nodes.NODE_CLASS_MAPPINGS) == {
        "DreamDanceLoadPose", "DreamDanceSavePose", "DreamDanceRenderPose", "DreamDanceRetargetPose",
        "DreamDanceInterpolatePoses", "DreamDanceSmoothPoses", "DreamDanceSamplePose", "DreamDancePoseFromImage",
        "DreamDancePoseEditor",
    }
    for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items():
        assert cls.CATEGORY == "DreamDance/pose" and node_id in nodes.NODE_DISPLAY_NAME_MAPPINGS
        for group in cls.INPUT_TYPES().values():
            for name, spec in group.items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_sample_render_and_decode_round_trip(nodes):
    (pose,) = _run(nodes.DreamDanceSamplePose, num_frames=3, width=256, height=384)
    (images,) = _run(nodes.DreamDanceRenderPose, pose=pose, width=0, height=0, fit="stretch", draw_body=True,
                     draw_hands=False, draw_face=False, confidence_threshold=0.0)
    assert images.shape == (3, 384, 256, 3) and images.dtype == torch.float32 and 0 <= images.min() <= images.max() <= 1
    x, y = (round(v) for v in pose[0]["people"][0]["pose_keypoints_2d"][3 * NECK:3 * NECK + 2])
    assert tuple((images[0, y, x] * 255).round().int().tolist()) == BODY_COLORS[NECK]
    (decoded,) = _run(nodes.DreamDancePoseFromImage, pose_images=images)
    np.testing.assert_allclose(from_pose_keypoint(decoded).body, from_pose_keypoint(pose).body, atol=0.51)


def test_load_from_text_file_and_folder(nodes, comfy_stubs):
    seq = sample_dance(2, 64, 96)
    (from_text,) = _run(nodes.DreamDanceLoadPose, file="(none)", pose_json=json.dumps(to_pose_keypoint(seq)),
                        canvas_width=0, canvas_height=0)
    assert from_pose_keypoint(from_text).equals(seq)
    write_openpose_files(seq, comfy_stubs.input_dir / "clip", prefix="clip")
    choices = nodes.DreamDanceLoadPose.INPUT_TYPES()["required"]["file"][0]
    assert "clip/" in choices and "clip/clip_000000000001_keypoints.json" in choices
    (from_folder,) = _run(nodes.DreamDanceLoadPose, file="clip/", pose_json="", canvas_width=0, canvas_height=0)
    assert from_pose_keypoint(from_folder).equals(seq)
    assert nodes.DreamDanceLoadPose.IS_CHANGED(file="clip/") != ""
    with pytest.raises(nodes.PoseError, match="no pose given"):
        _run(nodes.DreamDanceLoadPose, file="(none)", pose_json="  ", canvas_width=0, canvas_height=0)
    with pytest.raises(nodes.PoseError, match="not valid JSON"):
        _run(nodes.DreamDanceLoadPose, file="(none)", pose_json="{oops", canvas_width=0, canvas_height=0)


@pytest.mark.parametrize("format_index", [0, 1])
def test_save_then_load(nodes, comfy_stubs, format_index):
    pose = to_pose_keypoint(sample_dance(3, 64, 96))
    saved = _run(nodes.DreamDanceSavePose, pose=pose, filename_prefix="poses/dance",
                 format=nodes.DreamDanceSavePose.FORMATS[format_index])
    written = comfy_stubs.output_dir / saved["ui"]["text"][0]
    assert written.is_file() and written.is_relative_to(comfy_stubs.output_dir / "poses")
    source = written if format_index == 0 else written.parent
    from dreamdance_core.pose import load_pose_file

    assert load_pose_file(source).equals(from_pose_keypoint(pose))
    again = _run(nodes.DreamDanceSavePose, pose=pose, filename_prefix="poses/dance",
                 format=nodes.DreamDanceSavePose.FORMATS[format_index])
    assert again["ui"]["text"] != saved["ui"]["text"], "a second save must not overwrite the first"


def test_retarget_interpolate_smooth_nodes(nodes):
    driving, reference = to_pose_keypoint(sample_dance(6, 512, 768)), to_pose_keypoint(sample_dance(1, 256, 384))
    driving[2]["people"] = []  # a frame where the detector found nobody
    (result,) = _run(nodes.DreamDanceRetargetPose, driving_pose=driving, reference_pose=reference, reference_frame=0,
                     reference_person=0, per_bone=True, alignment="root", missing="repeat")
    assert len(result) == 6 and result[2]["people"] == result[1]["people"]
    assert (result[0]["canvas_width"], result[0]["canvas_height"]) == (256, 384)
    (keys,) = _run(nodes.DreamDanceInterpolatePoses, keyframes=result[:3], num_frames=9, key_frame_indices="",
                   method="cubic")
    assert len(keys) == 9 and keys[4]["people"][0]["pose_keypoints_2d"] == result[1]["people"][0]["pose_keypoints_2d"]
    with pytest.raises(nodes.PoseError, match="whole numbers separated by commas"):
        _run(nodes.DreamDanceInterpolatePoses, keyframes=result[:2], num_frames=9, key_frame_indices="0, x",
             method="linear")
    (smoothed,) = _run(nodes.DreamDanceSmoothPoses, pose=result, sigma=1.0)
    assert len(smoothed) == 6


def test_editor_node_reads_its_state_fills_keys_and_shows_the_background(nodes, comfy_stubs):
    state = nodes.DreamDancePoseEditor.INPUT_TYPES()["required"]["pose_json"][1]["default"]
    out = _run(nodes.DreamDancePoseEditor, pose_json=state, keyframes="", fill_between_keyframes=False)
    assert from_pose_keypoint(out["result"][0]).equals(from_pose_keypoint(json.loads(state)))
    filled = _run(nodes.DreamDancePoseEditor, pose_json=state, keyframes="0, 23", fill_between_keyframes=True)
    frames, edited = from_pose_keypoint(filled["result"][0]), from_pose_keypoint(json.loads(state))
    # Two keys: the cubic curve is the straight line between them (and the keys stay as edited).
    np.testing.assert_allclose(frames.body[[0, 23]], edited.body[[0, 23]])
    np.testing.assert_allclose(frames.body[11], edited.body[0] + (edited.body[23] - edited.body[0]) * 11 / 23)
    assert not np.allclose(frames.body[11], edited.body[11])
    incoming = to_pose_keypoint(sample_dance(2, 64, 64))
    background = torch.rand(2, 64, 64, 3)
    taken = _run(nodes.DreamDancePoseEditor, pose_json="", keyframes="", fill_between_keyframes=False, pose=incoming,
                 background=background)
    assert taken["result"][0] == incoming and json.loads(taken["ui"]["input_pose"][0]) == incoming
    preview = taken["ui"]["background"][0]
    assert preview["type"] == "temp" and (comfy_stubs.temp_dir / preview["filename"]).is_file()
    with pytest.raises(nodes.PoseError, match="editor is empty"):
        _run(nodes.DreamDancePoseEditor, pose_json="[]", keyframes="", fill_between_keyframes=False)


def test_whole_pack_registers_the_pose_nodes_under_any_folder_name(comfy_stubs):
    pack = import_pack("some_renamed_pack_folder")
    assert pack.WEB_DIRECTORY == "./web"
    assert pack.NODE_CLASS_MAPPINGS["DreamDancePoseEditor"].__module__ == "some_renamed_pack_folder.nodes.pose"


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_render_fits_the_canvas_like_the_reference_image(nodes, mode):
    """Render Pose at another aspect than the pose's canvas places joints where the image fit puts the body pixels;
    crop is the default, stretch stays for saved workflows."""
    from dreamdance_core.fit import DEFAULT_FIT
    from dreamdance_core.media import fit_images, from_uint8, to_uint8
    from tests.fit_cases import CANVASES, OUTPUT, assert_joints_on_dots, dotted_reference

    spec = nodes.DreamDanceRenderPose.INPUT_TYPES()["required"]["fit"]
    assert spec[0] == ("crop", "pad", "stretch", "contain") and spec[1]["default"] == DEFAULT_FIT == "crop"
    image, pose = dotted_reference(CANVASES["taller"])
    (images,) = _run(nodes.DreamDanceRenderPose, pose=to_pose_keypoint(pose), width=OUTPUT[0], height=OUTPUT[1],
                     fit=mode, draw_body=True, draw_hands=False, draw_face=False, confidence_threshold=0.0)
    reference = to_uint8(fit_images(from_uint8(image[None]), *OUTPUT, mode))[0]
    assert_joints_on_dots(reference, (images[0].numpy() * 255).round().astype(np.uint8), mode == "pad")


def test_render_keeps_the_contain_of_saved_workflows_as_pad(nodes):
    """Workflows saved before the one fit policy hold Render Pose's fit = "contain": it still validates (it is in the
    combo) and draws exactly what "pad" draws."""
    from tests.fit_cases import CANVASES, OUTPUT, dotted_reference

    _, pose = dotted_reference(CANVASES["wider"])
    drawn = {
        mode: _run(nodes.DreamDanceRenderPose, pose=to_pose_keypoint(pose), width=OUTPUT[0], height=OUTPUT[1], fit=mode,
                   draw_body=True, draw_hands=False, draw_face=False, confidence_threshold=0.0)[0]
        for mode in ("contain", "pad", "crop")
    }
    assert torch.equal(drawn["contain"], drawn["pad"]) and not torch.equal(drawn["pad"], drawn["crop"])
