"""Every shipped workflow runs in a real ComfyUI as a new user gets it: on a server of its own whose input folder
starts empty (the files the workflows load are the pack's example inputs, which the pack copies there on import),
converted to the API format in Python, shrunk to tiny sizes and steps, queued through ``/prompt``, outputs checked.
The same server lists them in ComfyUI's template browser (``/api/workflow_templates``)."""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageSequence

from dreamdance_core.pose import from_pose_keypoint, parse_pose_json
from scripts.comfyui_harness import PACK_FOLDER_NAME, REPO_ROOT, ComfyInstall, ComfyServer, PromptFailed, ServerDirs
from scripts.make_example_inputs import DRIVING_FRAMES, MAP_FILES, MAP_FRAMES, driving_poses, reference_pose
from tests.comfyui.workflow_api import ui_workflow_to_api

WORKFLOWS = REPO_ROOT / "workflows"
EXAMPLES = sorted(path.name for path in (REPO_ROOT / "example_inputs").glob("dreamdance_*"))
W, H = 64, 96  # the smallest Stage-1 size the nodes accept, portrait 2:3 like the shipped 256x384
FRAMES = 3
POSE_FRAMES = 6  # pose_editing interpolates 4 key poses: at least one frame per key
NECK = 1  # OpenPose-18 joint index


@pytest.fixture(scope="module")
def comfy_server(comfyui_install: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    """A server of this module's own, started on an empty input folder (the session's server may hold other tests'
    files); nothing but the pack writes into it before the workflows run."""
    server = ComfyServer(comfyui_install, ServerDirs(tmp_path_factory.mktemp("comfyui_fresh")))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def object_info(comfy_server: ComfyServer) -> dict[str, Any]:
    return comfy_server.get("/object_info")


@pytest.fixture(autouse=True)
def only_the_packs_examples_in_the_input_folder(comfy_server: ComfyServer) -> None:
    """Each workflow runs with what a fresh install has: the input folder holds the pack's example inputs only (and
    the empty folders ComfyUI makes there, such as ``3d``)."""
    files = [path for path in comfy_server.input_dir.rglob("*") if not path.is_dir()]
    assert sorted(str(path.relative_to(comfy_server.input_dir)) for path in files) == EXAMPLES


def test_a_fresh_server_gets_the_example_inputs_from_the_pack(comfy_server: ComfyServer, object_info: dict[str, Any]):
    """The folder was created empty by the harness; the pack's import filled it, and the loaders list the files."""
    assert "DreamDance: copied example inputs" in comfy_server.log_text()
    for name in EXAMPLES:
        assert (comfy_server.input_dir / name).read_bytes() == (REPO_ROOT / "example_inputs" / name).read_bytes()
    listed = set()
    for node, widget in (("LoadImage", "image"), ("LoadVideo", "file")):
        options, config = (object_info[node]["input"]["required"][widget] + [{}])[:2]
        listed |= set(config.get("options", []) if options == "COMBO" else options)  # V3 combos: options in config
    assert set(EXAMPLES) <= listed


def test_the_workflows_are_in_the_template_browser(comfy_server: ComfyServer):
    """``GET /api/workflow_templates`` lists every shipped workflow under the pack's folder name, and the frontend's
    template browser fetches each one's JSON and thumbnail from ``/api/workflow_templates/<pack>/<name>.*``."""
    shipped = sorted(path.stem for path in WORKFLOWS.glob("*.json"))
    assert sorted(comfy_server.get("/api/workflow_templates")[PACK_FOLDER_NAME]) == shipped
    for name in shipped:
        assert comfy_server.get(f"/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.json") == json.loads(
            (WORKFLOWS / f"{name}.json").read_text())
        url = f"{comfy_server.url}/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.jpg"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == (WORKFLOWS / f"{name}.jpg").read_bytes()


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
    """The example pose, depth and normal maps (animated WEBPs, one batch each) drive Stage 2."""
    prompt = api_prompt("stage2_external_geometry", object_info, {"DreamDanceAnimate": TINY_ANIMATE})
    assert_video(comfy_server, comfy_server.run_prompt(prompt, timeout=120), prompt, MAP_FRAMES)


def test_driving_video(comfy_server: ComfyServer, object_info: dict[str, Any]):
    """Core Load Video + Get Video Components (PyAV, CPU) read the example OpenPose video, Pose from Image reads the
    joints back, Retarget puts them on the reference body, both stages animate it. Save Pose nodes added to the prompt
    show the poses on the way."""
    prompt = api_prompt("driving_video", object_info, TINY_STAGES)
    read, fitted = uuid.uuid4().hex, uuid.uuid4().hex
    for key, source, prefix in ((read, "DreamDancePoseFromImage", "test/read"),
                                (fitted, "DreamDanceRetargetPose", "test/fitted")):
        prompt[key] = {"class_type": "DreamDanceSavePose", "inputs": {
            "pose": [node_id(prompt, source), 0], "filename_prefix": prefix, "format": "POSE_KEYPOINT (one file)"}}
    entry = comfy_server.run_prompt(prompt, timeout=240)
    assert_video(comfy_server, entry, prompt, DRIVING_FRAMES)

    def saved(key: str):
        (name,) = entry["outputs"][key]["text"]
        return from_pose_keypoint(json.loads((comfy_server.output_dir / name).read_text()))

    driving, motion = saved(read), driving_poses()
    assert driving.num_frames == DRIVING_FRAMES and driving.canvas == motion.canvas
    np.testing.assert_allclose(driving.body[:, 0, :, :2], motion.body[:, 0, :, :2], atol=0.5)  # lossless video
    fitted_pose, reference = saved(fitted), reference_pose()
    assert fitted_pose.num_frames == DRIVING_FRAMES and fitted_pose.canvas == reference.canvas
    np.testing.assert_allclose(fitted_pose.body[0, 0, NECK, :2], reference.body[0, 0, NECK, :2], atol=1.0)


def upload_image(server: ComfyServer, path: Path) -> str:
    """``POST /upload/image`` as the upload button does (multipart); returns the name the server saved it under."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput"
            f"\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(f"{server.url}/upload/image", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["name"]


def test_stage2_maps_of_different_lengths_are_refused_clearly(
    comfy_server: ComfyServer, object_info: dict[str, Any], tmp_path: Path
):
    """A user uploads their own normal maps, one frame short of the example pose and depth maps."""
    with Image.open(REPO_ROOT / "example_inputs" / MAP_FILES["normal"]) as image:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)][:-1]
    frames[0].save(tmp_path / "short_normal.webp", save_all=True, append_images=frames[1:], lossless=True)
    uploaded = upload_image(comfy_server, tmp_path / "short_normal.webp")
    try:
        prompt = api_prompt("stage2_external_geometry", object_info, {"DreamDanceAnimate": TINY_ANIMATE})
        normal = prompt[node_id(prompt, "DreamDanceAnimate")]["inputs"]["normal"][0]
        prompt[normal]["inputs"]["image"] = uploaded
        with pytest.raises(PromptFailed) as failed:
            comfy_server.run_prompt(prompt, timeout=120)
    finally:
        (comfy_server.input_dir / uploaded).unlink()
    (error,) = [data for kind, data in failed.value.entry["status"]["messages"] if kind == "execution_error"]
    assert error["node_type"] == "DreamDanceAnimate"
    assert (f"disagree on the number of frames: {{'pose': {MAP_FRAMES}, 'depth': {MAP_FRAMES}, "
            f"'normal': {MAP_FRAMES - 1}}}") in error["exception_message"]
