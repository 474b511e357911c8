"""Every shipped workflow runs in a real ComfyUI: converted to the API format in Python, shrunk to tiny sizes (the
shipped values are what a user wants, 256x384 and 25 steps), queued through ``/prompt``, and its outputs checked."""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dreamdance_core.pose import from_pose_keypoint, parse_pose_json
from scripts.comfyui_harness import REPO_ROOT, ComfyServer, PromptFailed
from scripts.make_workflows import MAP_FILES, REFERENCE_IMAGE, example_maps, reference_image, write_animated_webp
from tests.comfyui.workflow_api import ui_workflow_to_api

WORKFLOWS = REPO_ROOT / "workflows"
W, H = 64, 96  # the smallest Stage-1 size the nodes accept, portrait 2:3 like the shipped 256x384
FRAMES = 3
POSE_FRAMES = 6  # pose_editing interpolates 4 key poses: at least one frame per key
NECK = 1  # OpenPose-18 joint index


@pytest.fixture(scope="module")
def object_info(comfy_server: ComfyServer) -> dict[str, Any]:
    return comfy_server.get("/object_info")


@pytest.fixture(scope="module", autouse=True)
def example_inputs(comfy_server: ComfyServer) -> None:
    """The files the shipped workflows load, in the input folder: the synthetic mannequin (256x384) and tiny
    pose/depth/normal maps as animated WEBPs (FRAMES frames of W x H)."""
    Image.fromarray(reference_image()).save(comfy_server.input_dir / REFERENCE_IMAGE)
    for name, frames in example_maps(FRAMES, W, H).items():
        write_animated_webp(frames, comfy_server.input_dir / MAP_FILES[name])


def api_prompt(name: str, object_info: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The shipped workflow ``name`` in API format, with ``{class_type: {input: value}}`` set on every such node."""
    prompt = ui_workflow_to_api(json.loads((WORKFLOWS / f"{name}.json").read_text()), object_info)
    for class_type, inputs in overrides.items():
        nodes = [node for node in prompt.values() if node["class_type"] == class_type]
        assert nodes, f"{name}.json has no {class_type} node"
        for node in nodes:
            assert set(inputs) <= set(node["inputs"]), f"{class_type} has no input among {sorted(inputs)}"
            node["inputs"].update(inputs)
    return prompt


def node_id(prompt: dict[str, Any], class_type: str, **linked: tuple[str, int]) -> str:
    """The one node of ``class_type`` whose inputs are linked as given (``images=(source_class, output_slot)``)."""
    def matches(node: dict[str, Any]) -> bool:
        return node["class_type"] == class_type and all(
            isinstance(node["inputs"].get(name), list)
            and prompt[node["inputs"][name][0]]["class_type"] == source and node["inputs"][name][1] == slot
            for name, (source, slot) in linked.items()
        )

    found = [key for key, node in prompt.items() if matches(node)]
    assert len(found) == 1, f"expected one {class_type} linked as {linked}, found {found}"
    return found[0]


def output_images(server: ComfyServer, entry: dict[str, Any], node: str) -> list[Image.Image]:
    """The images a node of a finished prompt showed, fetched through ``/view`` as the frontend does."""
    images = []
    for image in entry["outputs"][node]["images"]:
        with urllib.request.urlopen(f"{server.url}/view?{urllib.parse.urlencode(image)}", timeout=30) as response:
            images.append(Image.open(io.BytesIO(response.read())))
    return images


def test_geometry_only(comfy_server: ComfyServer, object_info: dict[str, Any]):
    """Reference + sample dance -> tiny Stage 1 -> depth and normal saved per frame, and the side-by-side preview."""
    prompt = api_prompt("geometry_only", object_info, {
        "DreamDanceSamplePose": {"num_frames": FRAMES, "width": W, "height": H},
        "DreamDancePoseToGeometry": {"width": W, "height": H, "steps": 1},
    })
    entry = comfy_server.run_prompt(prompt, timeout=120)
    saved = {}
    for name, slot in (("depth", 0), ("normal", 1)):
        save = node_id(prompt, "SaveImage", images=("DreamDancePoseToGeometry", slot))
        images = output_images(comfy_server, entry, save)
        saved[name] = np.stack([np.asarray(image) for image in images])
        assert saved[name].shape == (FRAMES, H, W, 3), name
    assert not np.array_equal(saved["depth"], saved["normal"])
    preview = output_images(comfy_server, entry, node_id(prompt, "DreamDanceGeometryPreview"))
    assert [image.size for image in preview] == [(4 * W, H)] * FRAMES  # reference, pose, normal, depth


def test_pose_editing(comfy_server: ComfyServer, object_info: dict[str, Any]):
    """Editor key poses -> interpolated -> retargeted onto the reference body -> rendered video + saved pose file."""
    prompt = api_prompt("pose_editing", object_info, {
        "DreamDanceInterpolatePoses": {"num_frames": POSE_FRAMES},
        "DreamDanceRenderPose": {"width": W, "height": H},
    })
    entry = comfy_server.run_prompt(prompt, timeout=60)
    (video,) = output_images(comfy_server, entry, node_id(prompt, "SaveAnimatedWEBP"))
    assert (video.n_frames, video.size) == (POSE_FRAMES, (W, H))
    (pose_file,) = entry["outputs"][node_id(prompt, "DreamDanceSavePose")]["text"]
    saved = from_pose_keypoint(json.loads((comfy_server.output_dir / pose_file).read_text()))
    reference = parse_pose_json(prompt[node_id(prompt, "DreamDanceLoadPose")]["inputs"]["pose_json"])
    assert saved.num_frames == POSE_FRAMES and saved.canvas == reference.canvas
    # root alignment puts the motion's neck on the reference person's neck
    np.testing.assert_allclose(saved.body[0, 0, NECK, :2], reference.body[0, 0, NECK, :2], atol=1.0)


TINY_ANIMATE = {"width": W, "height": H, "steps": 1}
TINY_STAGES = {
    "DreamDanceRenderPose": {"width": W, "height": H},
    "DreamDancePoseToGeometry": {"width": W, "height": H, "steps": 1},
    "DreamDanceAnimate": TINY_ANIMATE,
}


def assert_video(server: ComfyServer, entry: dict[str, Any], prompt: dict[str, Any], frames: int) -> None:
    (video,) = output_images(server, entry, node_id(prompt, "SaveAnimatedWEBP"))
    assert (video.n_frames, video.size) == (frames, (W, H))


def test_full_pipeline(comfy_server: ComfyServer, object_info: dict[str, Any]):
    """Image + sample dance -> tiny Stage 1 -> tiny Stage 2 (pose, depth and normal connected) -> animated WEBP."""
    prompt = api_prompt("full_pipeline", object_info, {"DreamDanceSamplePose": {"num_frames": FRAMES}, **TINY_STAGES})
    assert_video(comfy_server, comfy_server.run_prompt(prompt, timeout=120), prompt, FRAMES)


def test_long_video_runs_both_stages_in_windows(comfy_server: ComfyServer, object_info: dict[str, Any]):
    """Five frames in windows of two overlapping by one: four windows per step in each stage, one video out."""
    frames = 5
    prompt = api_prompt("long_video", object_info, {
        "DreamDanceSamplePose": {"num_frames": frames}, "DreamDanceWindowOptions": {"length": 2, "overlap": 1},
        **TINY_STAGES,
    })
    windows = node_id(prompt, "DreamDanceWindowOptions")
    for sampler in ("DreamDancePoseToGeometry", "DreamDanceAnimate"):
        assert prompt[node_id(prompt, sampler)]["inputs"]["windows"] == [windows, 0]
    assert_video(comfy_server, comfy_server.run_prompt(prompt, timeout=120), prompt, frames)


def test_stage2_external_geometry(comfy_server: ComfyServer, object_info: dict[str, Any]):
    """Pose, depth and normal maps loaded from animated WEBPs (one batch each) drive Stage 2."""
    prompt = api_prompt("stage2_external_geometry", object_info, {"DreamDanceAnimate": TINY_ANIMATE})
    assert_video(comfy_server, comfy_server.run_prompt(prompt, timeout=120), prompt, FRAMES)


def test_stage2_maps_of_different_lengths_are_refused_clearly(comfy_server: ComfyServer, object_info: dict[str, Any]):
    write_animated_webp(example_maps(FRAMES - 1, W, H)["normal"], comfy_server.input_dir / "short_normal.webp")
    prompt = api_prompt("stage2_external_geometry", object_info, {"DreamDanceAnimate": TINY_ANIMATE})
    normal = prompt[node_id(prompt, "DreamDanceAnimate")]["inputs"]["normal"][0]
    prompt[normal]["inputs"]["image"] = "short_normal.webp"
    with pytest.raises(PromptFailed) as failed:
        comfy_server.run_prompt(prompt, timeout=120)
    (error,) = [data for kind, data in failed.value.entry["status"]["messages"] if kind == "execution_error"]
    assert error["node_type"] == "DreamDanceAnimate"
    assert f"disagree on the number of frames: {{'pose': {FRAMES}, 'depth': {FRAMES}, 'normal': {FRAMES - 1}}}" in (
        error["exception_message"])
