"""The pack's nodes on ComfyUI's V3 schema (nodes/_v3.py) in a real ComfyUI 0.3.75, against the V1 nodes they stand for.

Two servers: the session's (V3 nodes, what ComfyUI 0.3.75 loads) and one started with ``DREAMDANCE_NODE_API=v1`` (the
V1 classes, what older ComfyUIs load). Their ``GET /object_info`` must agree field by field for every node (ids,
display names, categories, descriptions, input names, order, types, defaults, ranges, tooltips, outputs) but for the
documented V3 extras (:func:`without_v3_extras`); saved workflows must map onto both alike and run on the V3 one; the
queue-time checks V3 adds (connections, combo values) refuse bad graphs before anything runs.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.comfyui_harness import PACK_FOLDER_NAME, REPO_ROOT, ComfyInstall, ComfyServer, PromptRejected, ServerDirs
from tests.comfyui.workflow_api import ui_workflow_to_api

SAVED_WORKFLOWS = sorted((REPO_ROOT / "tests" / "saved_workflows").glob("*.json"))
SHIPPED_WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))
W, H = 64, 96
OUTPUT_NODE_HIDDEN = {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]}  # io.Schema.finalize adds them
SHORTER = {"DreamDanceSamplePose": {"num_frames": 2}, "DreamDanceAnimate": {"steps": 1}}  # a saved workflow, faster
V3_FLAGS = ("deprecated", "experimental", "api_node")  # always in a V3 node's info, only when set in a V1 node's


@pytest.fixture(scope="module", autouse=True)
def _needs_the_v3_api(comfyui_install: ComfyInstall) -> None:
    if not (comfyui_install.comfy_dir / "comfy_api" / "latest" / "__init__.py").is_file():
        pytest.skip("this ComfyUI has no V3 node API (comfy_api.latest): the pack gives it the V1 nodes")


@pytest.fixture(scope="module")
def v1_server(comfyui_install: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    """A second server, loading the pack's V1 node classes (``DREAMDANCE_NODE_API=v1``, inherited when it starts)."""
    server = ComfyServer(comfyui_install, ServerDirs(tmp_path_factory.mktemp("comfyui_v1")))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DREAMDANCE_NODE_API", "v1")
            print(f"V1 ComfyUI up after {server.start():.1f} s")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def v3_object_info(comfy_server: ComfyServer) -> dict[str, Any]:
    return comfy_server.get("/object_info")


@pytest.fixture(scope="module")
def v1_object_info(v1_server: ComfyServer) -> dict[str, Any]:
    return v1_server.get("/object_info")


def dreamdance(object_info: dict[str, Any]) -> dict[str, Any]:
    return {node_id: info for node_id, info in object_info.items() if node_id.startswith("DreamDance")}


def without_v3_extras(info: dict[str, Any]) -> dict[str, Any]:
    """A V3 node's ``/object_info`` entry with exactly the documented V3 extras taken out, in the V1 form:

    * a combo is ``["COMBO", {"options": [...], "multiselect": false, ...}]`` (V1: ``[[...], {...}]``);
    * an output node has the hidden inputs ``prompt`` and ``extra_pnginfo``;
    * ``output_tooltips`` is a list of nulls, ``deprecated`` / ``experimental`` / ``api_node`` are false (V1: absent).

    Anything else, even another value of those fields, stays and is compared.
    """
    info = copy.deepcopy(info)
    for section in ("required", "optional"):
        for spec in info["input"].get(section, {}).values():
            options = spec[1] if len(spec) > 1 else {}
            if spec[0] == "COMBO" and options.get("multiselect") is False and "options" in options:
                del options["multiselect"]
                spec[0] = options.pop("options")
    if info.get("output_node") and info["input"].get("hidden") == OUTPUT_NODE_HIDDEN:
        del info["input"]["hidden"]
        if info.get("input_order", {}).get("hidden") == list(OUTPUT_NODE_HIDDEN):
            del info["input_order"]["hidden"]
    if all(tooltip is None for tooltip in info.get("output_tooltips", [None])):
        info.pop("output_tooltips", None)
    for flag in V3_FLAGS:
        if info.get(flag) is False:
            del info[flag]
    return info


def differences(v1: dict[str, Any], v3: dict[str, Any]) -> list[str]:
    """Every field in which two ``/object_info`` answers (their DreamDance nodes) disagree, input by input."""
    found = [f"{node_id}: only in the {which} info" for which, one, other in (("V1", v1, v3), ("V3", v3, v1))
             for node_id in sorted(set(dreamdance(one)) - set(dreamdance(other)))]
    for node_id in sorted(set(dreamdance(v1)) & set(dreamdance(v3))):
        old, new = v1[node_id], without_v3_extras(v3[node_id])
        for key in sorted((set(old) | set(new)) - {"input"}):
            if old.get(key) != new.get(key):
                found.append(f"{node_id}.{key}: V1 {old.get(key)!r:.160} != V3 {new.get(key)!r:.160}")
        for section in sorted(set(old["input"]) | set(new["input"])):
            old_inputs, new_inputs = old["input"].get(section, {}), new["input"].get(section, {})
            if list(old_inputs) != list(new_inputs):
                found.append(f"{node_id}.input.{section}: names/order V1 {list(old_inputs)} != V3 {list(new_inputs)}")
            for name in old_inputs.keys() & new_inputs.keys():
                if old_inputs[name] != new_inputs[name]:
                    found.append(f"{node_id}.input.{section}.{name}: V1 {old_inputs[name]!r:.200} != "
                                 f"V3 {new_inputs[name]!r:.200}")
    return found


def test_the_servers_run_v3_and_v1_nodes(v3_object_info: dict[str, Any], v1_object_info: dict[str, Any]):
    """The comparison below compares two different things: V3 info carries the V3 flags, V1 info does not."""
    v3, v1 = dreamdance(v3_object_info), dreamdance(v1_object_info)
    assert len(v3) >= 16
    assert all(set(V3_FLAGS) <= set(info) for info in v3.values())
    assert not any(set(V3_FLAGS) & set(info) for info in v1.values())


def test_v3_nodes_match_the_v1_nodes_field_by_field(v3_object_info: dict[str, Any], v1_object_info: dict[str, Any]):
    assert differences(v1_object_info, v3_object_info) == []
    # the extras taken out are really there: combos are V3 combos, output nodes have the hidden inputs
    loader = v3_object_info["DreamDanceGeometryModelLoader"]["input"]["required"]
    assert loader["precision"][0] == "COMBO" and loader["precision"][1]["options"]
    assert v3_object_info["DreamDanceSavePose"]["input"]["hidden"] == OUTPUT_NODE_HIDDEN


def test_the_comparison_catches_changed_inputs_and_outputs(v1_object_info: dict[str, Any]):
    """Negative control: changes a V3 node could bring (order, a range, a tooltip, an output name, a combo's
    choices, a missing node) are each reported."""
    v1 = dreamdance(v1_object_info)
    changed = copy.deepcopy(v1)
    smooth = changed["DreamDanceSmoothPoses"]
    smooth["input"]["required"] = dict(reversed(list(smooth["input"]["required"].items())))
    changed["DreamDancePoseToGeometry"]["input"]["required"]["steps"][1]["max"] = 100
    del changed["DreamDanceAnimate"]["input"]["optional"]["depth"][1]["tooltip"]
    changed["DreamDanceRenderPose"]["output_name"] = ["images"]
    alignment = changed["DreamDanceRetargetPose"]["input"]["required"]["alignment"]
    alignment[:] = ["COMBO", {**alignment[1], "options": alignment[0][:2], "multiselect": False}]
    del changed["DreamDanceSamplePose"]
    found = differences(v1, changed)
    for words in ("DreamDanceSmoothPoses.input.required: names/order", "DreamDancePoseToGeometry.input.required.steps",
                  "DreamDanceAnimate.input.optional.depth", "DreamDanceRenderPose.output_name",
                  "DreamDanceRetargetPose.input.required.alignment", "DreamDanceSamplePose: only in the V1 info"):
        assert any(line.startswith(words) for line in found), (words, found)
    assert len(found) == 6, found


@pytest.mark.parametrize("path", SAVED_WORKFLOWS + SHIPPED_WORKFLOWS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_workflows_map_to_the_same_prompt_on_v1_and_v3(path: Path, v1_object_info: dict[str, Any],
                                                             v3_object_info: dict[str, Any]):
    """Every widget value of a workflow saved by the V1 version lands on the same input of the V3 node."""
    workflow = json.loads(path.read_text())
    assert ui_workflow_to_api(workflow, v3_object_info) == ui_workflow_to_api(workflow, v1_object_info)


@pytest.mark.parametrize("path", SAVED_WORKFLOWS, ids=lambda p: p.name)
def test_a_workflow_saved_by_the_v1_version_runs_on_v3(path: Path, comfy_server: ComfyServer,
                                                                 v3_object_info: dict[str, Any]):
    """tests/saved_workflows (saved before this version's inputs existed) runs on the V3 nodes with its saved values,
    but for fewer frames and sampling steps (as saved: 16 frames, 8 steps, 4 minutes on 2 busy CPU cores)."""
    workflow = json.loads(path.read_text())
    for node in workflow["nodes"]:  # the image it loads, when the input folder lacks it (any picture will do)
        if node["type"] == "LoadImage" and not (comfy_server.input_dir / node["widgets_values"][0]).exists():
            from PIL import Image

            Image.new("RGB", (256, 384), (128, 128, 128)).save(comfy_server.input_dir / node["widgets_values"][0])
    prompt = ui_workflow_to_api(workflow, v3_object_info)
    for node in prompt.values():
        node["inputs"].update({name: value for name, value in SHORTER.get(node["class_type"], {}).items()
                               if name in node["inputs"]})
    entry = comfy_server.run_prompt(prompt, timeout=300)
    assert entry["status"]["status_str"] == "success"
    assert any(output.get("images") for output in entry["outputs"].values())


def _empty_image() -> dict[str, Any]:
    return {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": 0x808080}}


def _sample() -> dict[str, Any]:
    return {"class_type": "DreamDanceSamplePose", "inputs": {"num_frames": 2, "width": W, "height": H}}


def _render(pose) -> dict[str, Any]:
    return {"class_type": "DreamDanceRenderPose", "inputs": {
        "pose": pose, "width": 0, "height": 0, "fit": "stretch", "draw_body": True, "draw_hands": True,
        "draw_face": True, "confidence_threshold": 0.0}}


def geometry_prompt(precision: str = "fp32", **poses) -> dict[str, Any]:
    inputs = {"geometry_model": ["2", 0], "reference": ["1", 0], "width": W, "height": H, "steps": 1, "seed": 0,
              "cfg_rgb": 3.5, "cfg_normal": 2.5, "cfg_depth": 3.5, **poses}
    return {"1": _empty_image(), "2": {"class_type": "DreamDanceGeometryModelLoader", "inputs": {
        "stage1_weights": "(tiny random demo)", "base_checkpoint": "(none)", "clip_vision": "(none)",
        "precision": precision, "keep_loaded": False}},
            "3": {"class_type": "DreamDancePoseToGeometry", "inputs": inputs}, "4": _sample(), "5": _render(["4", 0]),
            "6": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}


def animate_prompt() -> dict[str, Any]:
    """Stage 2 with no control map connected at all."""
    return {"1": _empty_image(), "2": {"class_type": "DreamDanceVideoModelLoader", "inputs": {
        "stage2_weights": "(tiny random demo)", "svd_checkpoint": "(none)", "precision": "fp32",
        "keep_loaded": False}},
            "3": {"class_type": "DreamDanceAnimate", "inputs": {
                "video_model": ["2", 0], "reference": ["1", 0], "width": W, "height": H, "steps": 1, "seed": 0,
                "min_cfg": 1.0, "max_cfg": 3.0, "fps": 7, "motion_bucket_id": 127, "noise_aug_strength": 0.02,
                "strength": 1.0, "pose_strength": 1.0, "depth_strength": 1.0, "normal_strength": 1.0,
                "decode_chunk_size": 8}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}


def retarget_prompt(alignment: str) -> dict[str, Any]:
    return {"1": _sample(), "2": {"class_type": "DreamDanceRetargetPose", "inputs": {
        "driving_pose": ["1", 0], "reference_pose": ["1", 0], "reference_frame": 0, "reference_person": 0,
        "per_bone": True, "alignment": alignment, "missing": "repeat"}},
            "3": _render(["2", 0]), "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}


# (case, prompt, node, words of the refusal): refused when queued on the V3 nodes, before any model is built
QUEUE_REFUSALS = [
    ("geometry-no-pose", geometry_prompt(), "3", "connect exactly one pose input: pose_keypoint (skeleton "
     "keypoints) or pose_images (rendered); neither is connected"),
    ("geometry-two-poses", geometry_prompt(pose_keypoint=["4", 0], pose_images=["5", 0]), "3", "both are connected"),
    ("animate-no-control-map", animate_prompt(), "3", "connect at least one control map: pose_images, depth, normal"),
    # combos: ComfyUI 0.3.75 checks a V3 combo value against nothing (its type is "COMBO", not the list)
    ("retarget-alignment-bogus", retarget_prompt("sideways"), "2", "alignment 'sideways' is not one of"),
    ("loader-precision-bogus", geometry_prompt("fp64", pose_keypoint=["4", 0]), "2", "precision 'fp64' is not one of"),
]


@pytest.mark.parametrize("prompt, node, words", [pytest.param(p, n, w, id=c) for c, p, n, w in QUEUE_REFUSALS])
def test_v3_queue_checks_refuse_before_running(comfy_server: ComfyServer, prompt: dict, node: str, words: str):
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.run_prompt(prompt)
    assert rejected.value.status == 400
    errors = rejected.value.body["node_errors"][node]["errors"]
    assert any(error["type"] == "custom_validation_failed" and words in error["details"] for error in errors), errors


def test_one_pose_source_runs(comfy_server: ComfyServer):
    """Positive control for the connection rule: exactly one pose input (the rendered one) runs."""
    entry = comfy_server.run_prompt(geometry_prompt(pose_images=["5", 0]), timeout=120)
    assert entry["status"]["status_str"] == "success"


# In ComfyUI's interpreter: the V3 classes the pack hands to ComfyUI, and their validate/fingerprint methods called
# the way execution.py calls them (first_real_override, getfullargspec, keyword arguments).
V3_PROBE = """
import asyncio, importlib.util, inspect, json, os, sys, time
sys.argv = [sys.argv[0], "--cpu"]
sys.path.insert(0, os.getcwd())
import comfy.options; comfy.options.enable_args_parsing()
import folder_paths
from comfy_api.internal import first_real_override
from comfy_api.latest import io
folder_paths.set_input_directory(os.environ["INPUT_DIR"])
pack = os.environ["DREAMDANCE_PACK_DIR"]
spec = importlib.util.spec_from_file_location(pack.replace(".", "_x_"), os.path.join(pack, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
nodes = {n.GET_SCHEMA().node_id: n for n in asyncio.run(module.comfy_entrypoint().get_node_list())}
v1 = sys.modules[spec.name + ".nodes"].NODE_CLASS_MAPPINGS
load = nodes["DreamDanceLoadPose"]
fingerprint = first_real_override(load, "fingerprint_inputs")
pose_file = os.path.join(os.environ["INPUT_DIR"], "p.json")
def stamp():
    return fingerprint(file="p.json", pose_json="", canvas_width=0, canvas_height=0)
first = stamp()
os.utime(pose_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
validate = {node_id: first_real_override(n, "validate_inputs") for node_id, n in nodes.items()}
from comfy_api.internal import make_locked_method_func
_v3 = sys.modules[spec.name + ".nodes._v3"]


class Synthetic:  # every V1 option kind the builder translates, hidden inputs, output lists and a ui + result answer
    CATEGORY, FUNCTION, DESCRIPTION = "DreamDance/test", "run", "synthetic"
    RETURN_TYPES, OUTPUT_IS_LIST, OUTPUT_TOOLTIPS = ("MY_TYPE", "INT"), (False, True), ("the id", "numbers")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "count": ("INT", {"default": 3, "min": 1, "max": 9, "step": 2, "display": "slider",
                              "control_after_generate": True, "tooltip": "t"}),
            "scale": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.001, "tooltip": "t"}),
            "text": ("STRING", {"multiline": True, "placeholder": "p", "dynamicPrompts": False, "default": "x"}),
            "flag": ("BOOLEAN", {"default": True, "label_on": "yes", "label_off": "no"}),
            "image": (["a.png", "b.png"], {"image_upload": True, "default": "b.png"}),
            "mask": ("MASK", {"tooltip": "t"}),
            "custom": ("MY_TYPE", {"tooltip": "t", "rawLink": True}),
        }, "optional": {"extra": ("INT", {"forceInput": True})}, "hidden": {"node": "UNIQUE_ID"}}

    def run(self, count, scale, text, flag, image, mask, custom, extra=None, node=None):
        return {"ui": {"text": [node]}, "result": (node, [count])}


synthetic = _v3.make_node("DreamDanceSynthetic", Synthetic, "Synthetic")
clone = synthetic.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "42"})
answer = make_locked_method_func(synthetic, "EXECUTE_NORMALIZED", clone)(
    count=3, scale=0.5, text="x", flag=True, image="a.png", mask=None, custom=None)
ANIMATE = {"min_cfg": 1.0, "max_cfg": 3.0, "noise_aug_strength": 0.0, "strength": 1.0, "pose_strength": 1.0,
           "depth_strength": 1.0, "normal_strength": 1.0}
print(json.dumps({
    "api": module.NODE_API, "has_v1_mappings": hasattr(module, "NODE_CLASS_MAPPINGS"),
    "ids": list(nodes), "v1_ids": list(v1),
    "comfy_nodes": all(issubclass(n, io.ComfyNode) for n in nodes.values()),
    "v1_classes": all(n.V1_CLASS is v1[node_id] for node_id, n in nodes.items()),
    "fingerprints": [first, stamp(), fingerprint(file="(none)", pose_json="", canvas_width=0, canvas_height=0)],
    "validate_args": {k: {"args": inspect.getfullargspec(f).args, "varkw": inspect.getfullargspec(f).varkw}
                      for k, f in validate.items() if f is not None},
    "smooth_nan": validate["DreamDanceSmoothPoses"](sigma=float("nan")),
    "animate_linked_map": validate["DreamDanceAnimate"](depth=None, **ANIMATE),
    "animate_no_map": validate["DreamDanceAnimate"](**ANIMATE),
    "synthetic": {"v1_inputs": Synthetic.INPUT_TYPES(), "v3_inputs": synthetic.INPUT_TYPES(),
                  "v3_info": synthetic.GET_NODE_INFO_V1(), "answer": [list(answer.args), answer.ui]},
}))
"""


@pytest.fixture(scope="module")
def v3_probe(comfyui_install: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("v3_probe")
    link, inputs = root / PACK_FOLDER_NAME, root / "input"
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    inputs.mkdir()
    (inputs / "p.json").write_text(json.dumps([{"people": [], "canvas_width": W, "canvas_height": H}]))
    env = dict(os.environ, DREAMDANCE_PACK_DIR=str(link), INPUT_DIR=str(inputs), DREAMDANCE_NO_EXAMPLE_INPUTS="1")
    env.pop("DREAMDANCE_NODE_API", None)
    done = subprocess.run([str(comfyui_install.python), "-c", V3_PROBE], cwd=comfyui_install.comfy_dir, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_pack_hands_comfyui_one_v3_node_per_v1_node(v3_probe: dict[str, Any]):
    assert (v3_probe["api"], v3_probe["has_v1_mappings"]) == ("v3", False)
    assert v3_probe["ids"] == v3_probe["v1_ids"]  # same ids, same order
    assert v3_probe["comfy_nodes"] and v3_probe["v1_classes"]


def test_validate_inputs_names_its_inputs_like_v1(v3_probe: dict[str, Any]):
    """No **kwargs (ComfyUI would then skip its own range checks for every input); the V1 arguments come first, then
    the combos and the sockets a connection rule reads."""
    args = v3_probe["validate_args"]
    assert all(spec["varkw"] is None for spec in args.values())
    assert args["DreamDanceSmoothPoses"]["args"] == ["cls", "sigma"]
    assert args["DreamDancePoseToGeometry"]["args"] == ["cls", "cfg_rgb", "cfg_normal", "cfg_depth", "fit",
                                                        "scheduler", "pose_keypoint", "pose_images"]
    assert "DreamDanceGeometryPreview" not in args  # nothing to check: ComfyUI's own checks only
    assert "sigma is NaN" in v3_probe["smooth_nan"]
    assert v3_probe["animate_linked_map"] is True  # a linked map (None) counts as connected
    assert "connect at least one control map" in v3_probe["animate_no_map"]


def test_fingerprint_follows_the_pose_file(v3_probe: dict[str, Any]):
    first, touched, text = v3_probe["fingerprints"]
    assert first != touched and text == ""


def test_the_builder_translates_every_v1_option_kind(v3_probe: dict[str, Any]):
    """A synthetic V1 node with every option the builder maps (slider INT with control_after_generate, FLOAT round,
    STRING placeholder, BOOLEAN labels, an image-upload combo, MASK, a custom socket with rawLink, a forceInput
    optional, a hidden UNIQUE_ID, an output list, output tooltips): its V3 inputs are the V1 ones, and its V1 answer
    (``{"ui", "result"}``) comes back as the NodeOutput with the hidden id handed to the V1 function."""
    synthetic = v3_probe["synthetic"]
    v1_inputs, v3_inputs = synthetic["v1_inputs"], synthetic["v3_inputs"]
    assert v3_inputs.pop("hidden") == {"unique_id": ["UNIQUE_ID"]} and v1_inputs.pop("hidden") == {"node": "UNIQUE_ID"}
    assert without_v3_extras({"input": v3_inputs})["input"] == v1_inputs
    info = synthetic["v3_info"]
    assert (info["output"], info["output_name"]) == (["MY_TYPE", "INT"], ["MY_TYPE", "INT"])
    assert (info["output_is_list"], info["output_tooltips"]) == ([False, True], ["the id", "numbers"])
    assert (info["display_name"], info["category"], info["description"]) == ("Synthetic", "DreamDance/test",
                                                                             "synthetic")
    assert synthetic["answer"] == [["42", [3]], {"text": ["42"]}]
