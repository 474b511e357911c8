"""Bad values through a real ComfyUI server's door (POST /prompt), one server for the whole battery.

Each case asserts its outcome: refused when queued (HTTP 400, the node's error names the input and the problem),
refused when the node runs (an execution error with our sentence, never a raw traceback type such as IndexError), or
accepted and run (valid behaviour). After every case the server still answers /system_stats.
ComfyUI's own FLOAT check lets NaN through (``NaN < min`` is False); the nodes' VALIDATE_INPUTS refuse it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from scripts.comfyui_harness import ComfyServer, PromptFailed, PromptRejected

W, H = 64, 96
NAN, INF = math.nan, math.inf
RAW_ERRORS = ("IndexError", "KeyError", "TypeError", "AttributeError", "RecursionError", "OverflowError",
              "MemoryError", "RuntimeError", "ZeroDivisionError")


# --- prompts ---------------------------------------------------------------------------------------------------------


def _sample(frames: int = 2, width: int = W, height: int = H) -> dict:
    return {"class_type": "DreamDanceSamplePose", "inputs": {"num_frames": frames, "width": width, "height": height}}


def _render(pose, **inputs) -> dict:
    values = {"pose": pose, "width": 0, "height": 0, "fit": "stretch", "draw_body": True, "draw_hands": True,
              "draw_face": True, "confidence_threshold": 0.0}
    values.update(inputs)
    return {"class_type": "DreamDanceRenderPose", "inputs": values}


def _preview(source) -> dict:
    return {"class_type": "PreviewImage", "inputs": {"images": source}}


def render_prompt(frames: int = 2, **render) -> dict:
    return {"1": _sample(frames), "2": _render(["1", 0], **render), "3": _preview(["2", 0])}


def geometry_prompt(**values) -> dict:
    inputs = {"geometry_model": ["2", 0], "reference": ["1", 0], "pose_keypoint": ["4", 0], "width": W, "height": H,
              "steps": 1, "seed": 0, "cfg_rgb": 3.5, "cfg_normal": 2.5, "cfg_depth": 3.5}
    inputs.update(values)
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": 0x808080}},
        "2": {"class_type": "DreamDanceGeometryModelLoader", "inputs": {
            "stage1_weights": "(tiny random demo)", "base_checkpoint": "(none)", "clip_vision": "(none)",
            "precision": "fp32", "keep_loaded": False}},
        "3": {"class_type": "DreamDancePoseToGeometry", "inputs": inputs},
        "4": _sample(),
        "5": _preview(["3", 0]),
    }


def animate_prompt(strength_map: float = 1.0, **values) -> dict:
    inputs = {"video_model": ["2", 0], "reference": ["1", 0], "pose_images": ["5", 0], "width": W, "height": H,
              "steps": 1, "seed": 0, "min_cfg": 1.0, "max_cfg": 3.0, "fps": 7, "motion_bucket_id": 127,
              "noise_aug_strength": 0.02, "strength": 1.0, "pose_strength": 1.0, "depth_strength": 1.0,
              "normal_strength": 1.0, "decode_chunk_size": 8, "control_maps": ["7", 0]}
    inputs.update(values)
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": 0x808080}},
        "2": {"class_type": "DreamDanceVideoModelLoader", "inputs": {
            "stage2_weights": "(tiny random demo)", "svd_checkpoint": "(none)", "precision": "fp32",
            "keep_loaded": False}},
        "3": {"class_type": "DreamDanceAnimate", "inputs": inputs},
        "4": _sample(),
        "5": _render(["4", 0]),
        "6": _preview(["3", 0]),
        "7": {"class_type": "DreamDanceControlMap", "inputs": {"image": ["5", 0], "modality": "depth",
                                                               "strength": strength_map}},
    }


def windows_prompt(length: int, overlap: int) -> dict:
    prompt = geometry_prompt(windows=["9", 0])
    prompt["9"] = {"class_type": "DreamDanceWindowOptions", "inputs": {
        "length": length, "overlap": overlap, "weighting": "flat", "retain_first_frame": False}}
    return prompt


def save_prompt(prefix: str, format: str = "POSE_KEYPOINT (one file)") -> dict:
    return {"1": _sample(), "2": {"class_type": "DreamDanceSavePose", "inputs": {
        "pose": ["1", 0], "filename_prefix": prefix, "format": format}}}


def editor_prompt(pose_json: str, keyframes: str = "", fill: bool = True, linked: bool = False) -> dict:
    inputs = {"pose_json": pose_json, "keyframes": keyframes, "fill_between_keyframes": fill}
    prompt = {"2": {"class_type": "DreamDancePoseEditor", "inputs": inputs}, "3": _render(["2", 0]),
              "4": _preview(["3", 0])}
    if linked:
        inputs["pose"] = ["1", 0]
        prompt["1"] = _sample(24)
    return prompt


def interpolate_prompt(num_frames: int = 8, indices: str = "", keys: str = "") -> dict:
    return {
        "1": {"class_type": "DreamDancePoseEditor", "inputs": {"pose_json": keys or SAMPLE_2, "keyframes": "",
                                                               "fill_between_keyframes": False}},
        "2": {"class_type": "DreamDanceInterpolatePoses", "inputs": {
            "keyframes": ["1", 0], "num_frames": num_frames, "key_frame_indices": indices, "method": "cubic"}},
        "3": _render(["2", 0]),
        "4": _preview(["3", 0]),
    }


def smooth_prompt(sigma) -> dict:
    return {"1": _sample(), "2": {"class_type": "DreamDanceSmoothPoses", "inputs": {"pose": ["1", 0], "sigma": sigma}},
            "3": _render(["2", 0]), "4": _preview(["3", 0])}


def load_prompt(pose_json: str, **values) -> dict:
    inputs = {"file": "(none)", "pose_json": pose_json, "canvas_width": 0, "canvas_height": 0}
    inputs.update(values)
    return {"1": {"class_type": "DreamDanceLoadPose", "inputs": inputs}, "2": _render(["1", 0]),
            "3": _preview(["2", 0])}


def _person(points: int = 18) -> dict:
    body = [v for i in range(points) for v in (10.0 + 2 * i, 20.0 + 3 * i, 1.0)]
    return {"pose_keypoints_2d": body, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
            "hand_right_keypoints_2d": None}


def _frames(count: int, points: int = 18) -> str:
    return json.dumps([{"people": [_person(points)], "canvas_width": W, "canvas_height": H}] * count)


SAMPLE_2 = _frames(2)
BODY_25 = json.dumps({"version": 1.3, "people": [{"person_id": [-1], **_person(25)}]})  # an OpenPose file

# --- the battery: (case id, prompt, expected) -------------------------------------------------------------------------
# expected: ("queue", node id, input name, words the error must hold) | ("run", node type, words) | ("ok",)

CASES: list[tuple[str, dict, tuple]] = []


def case(name: str, prompt: dict, *expected) -> None:
    CASES.append((name, prompt, expected))


for _name in ("cfg_rgb", "cfg_normal", "cfg_depth"):
    case(f"geometry-{_name}-nan", geometry_prompt(**{_name: NAN}), "queue", "3", _name, "NaN")
    case(f"geometry-{_name}-inf", geometry_prompt(**{_name: INF}), "queue", "3", _name, "infinite")
    case(f"geometry-{_name}-neg-inf", geometry_prompt(**{_name: -INF}), "queue", "3", _name, "infinite")
    case(f"geometry-{_name}-below", geometry_prompt(**{_name: 0.5}), "queue", "3", _name, "at least 1")
    case(f"geometry-{_name}-1e30", geometry_prompt(**{_name: 1e30}), "queue", "3", _name, "at most 20")
case("geometry-cfg-text", geometry_prompt(cfg_rgb="lots"), "queue", "3", "cfg_rgb", "FLOAT")
case("geometry-steps-0", geometry_prompt(steps=0), "queue", "3", "steps", "smaller than min")
case("geometry-width-huge", geometry_prompt(width=4096), "queue", "3", "width", "bigger than max")

for _name in ("min_cfg", "max_cfg", "noise_aug_strength", "strength", "pose_strength", "depth_strength",
              "normal_strength"):
    case(f"animate-{_name}-nan", animate_prompt(**{_name: NAN}), "queue", "3", _name, "NaN")
    case(f"animate-{_name}-inf", animate_prompt(**{_name: INF}), "queue", "3", _name, "infinite")
    case(f"animate-{_name}-negative", animate_prompt(**{_name: -1.0}), "queue", "3", _name, "at least")
case("animate-max-cfg-1e30", animate_prompt(max_cfg=1e30), "queue", "3", "max_cfg", "at most 20")
case("animate-fps-0", animate_prompt(fps=0), "queue", "3", "fps", "smaller than min")
case("control-map-strength-nan", animate_prompt(strength_map=NAN), "queue", "7", "strength", "NaN")
case("control-map-strength-neg-inf", animate_prompt(strength_map=-INF), "queue", "7", "strength", "infinite")
case("control-map-strength-3", animate_prompt(strength_map=3.0), "queue", "7", "strength", "at most 2")

case("windows-overlap-equals-length", windows_prompt(4, 4), "queue", "9", "overlap", "smaller than length (4)")
case("windows-overlap-above-length", windows_prompt(16, 20), "queue", "9", "overlap", "at most 15")
case("windows-length-1", windows_prompt(1, 0), "queue", "9", "length", "at least 2")

for _value, _words in ((NAN, "NaN"), (INF, "infinite"), (-0.5, "at least 0"), (2.0, "at most 1")):
    case(f"render-confidence-{_value}", render_prompt(confidence_threshold=_value), "queue", "2",
         "confidence_threshold", _words)
case("render-width-negative", render_prompt(width=-8), "queue", "2", "width", "at least 0")
case("render-height-9000", render_prompt(height=9000), "queue", "2", "height", "at most 8192")
case("render-fit-bogus", render_prompt(fit="squash"), "queue", "2", "fit", "not one of")
case("render-8192x8192", render_prompt(24, width=8192, height=8192), "run", "DreamDanceRenderPose",
     "would need about", "lower the frame count (24) or the size (8192x8192)")
case("sample-100000-frames", render_prompt(100_000), "queue", "1", "num_frames", "100000 frames",
     "lower num_frames to at most")
case("render-50000-frames-8192x8192", render_prompt(50_000, width=8192, height=8192), "run", "DreamDanceRenderPose",
     "would need about", "lower the frame count (50000)")
case("render-width-only", render_prompt(width=128), "ok")

for _value, _words in ((NAN, "NaN"), (INF, "infinite"), (-1.0, "at least 0"), (31.0, "at most 30")):
    case(f"smooth-sigma-{_value}", smooth_prompt(_value), "queue", "2", "sigma", _words)

case("sample-frames-0", render_prompt(0), "queue", "1", "num_frames", "at least 1")
case("sample-frames-100001", render_prompt(100_001), "queue", "1", "num_frames", "at most 100000")
case("sample-width-4", {"1": _sample(2, 4), "2": _render(["1", 0]), "3": _preview(["2", 0])}, "queue", "1",
     "width", "at least 8")

for _text, _words in (("0, 500", "frame 500 is outside the 8 frame(s)"), ("a, b", "whole numbers"),
                      ("5, 3", "must increase"), ("-1, 4", "frame -1 is outside"), ("0, 0", "must increase"),
                      ("0; 2.5", "whole numbers")):
    case(f"interpolate-indices-{_text}", interpolate_prompt(8, _text), "queue", "2", "key_frame_indices", _words)
case("interpolate-2-keys-into-1-frame", interpolate_prompt(1), "run", "DreamDanceInterpolatePoses",
     "2 key poses do not fit into 1 frame")
case("interpolate-3-indices-for-2-keys", interpolate_prompt(8, "0, 3, 7"), "run", "DreamDanceInterpolatePoses",
     "one frame index per key pose")
case("interpolate-valid", interpolate_prompt(8, "0, 7"), "ok")

for _name, _prefix, _words in (
    ("nul", "pose\x00name", "control characters"),
    ("newline", "pose\nname", "control characters"),
    ("300-chars", "p" * 300, "300 bytes"),
    ("long-folder", "d" * 250 + "/pose", "250 bytes"),
    ("parent", "../escape/pose", "leaves the output folder"),
    ("absolute", "/tmp/dreamdance_escape/pose", "leaves the output folder"),
    ("windows-absolute", "C:\\temp\\pose", "leaves the output folder"),
):
    case(f"save-prefix-{_name}", save_prompt(_prefix), "queue", "2", "filename_prefix", _words)
case("save-format-bogus", save_prompt("pose", "YAML"), "queue", "2", "format", "not one of")
case("save-prefix-unicode", save_prompt("dreamdance/pose_é"), "ok")

_KEYS_OUT = ("0, 500", "frame 500 is outside the 2 frame(s)")
case("editor-keyframes-0-500", editor_prompt(SAMPLE_2, _KEYS_OUT[0]), "queue", "2", "keyframes", _KEYS_OUT[1])
case("editor-keyframes-0-500-no-fill", editor_prompt(SAMPLE_2, "0, 500", fill=False), "queue", "2", "keyframes",
     _KEYS_OUT[1])
case("editor-keyframes-text", editor_prompt(SAMPLE_2, "first, last"), "queue", "2", "keyframes", "whole numbers")
case("editor-keyframes-descending", editor_prompt(SAMPLE_2, "1, 0"), "queue", "2", "keyframes", "must increase")
case("editor-keyframes-linked-0-500", editor_prompt("", "0, 500", linked=True), "run", "DreamDancePoseEditor",
     "frame 500 is outside the 24 frame(s)")
case("editor-empty-nothing-linked", editor_prompt("", ""), "queue", "2", "pose_json", "no pose is connected")
case("editor-json-broken", editor_prompt("[{"), "queue", "2", "pose_json", "not valid JSON")
case("editor-frames-numbers", editor_prompt("[1, 2]"), "queue", "2", "pose_json", "frame 0: a frame must be")
case("editor-frames-strings", editor_prompt('["a"]'), "queue", "2", "pose_json", "got str")
case("editor-people-null", editor_prompt('[{"people": [null], "canvas_width": 64, "canvas_height": 96}]'),
     "queue", "2", "pose_json", "a person must be a JSON object")
case("editor-people-not-list", editor_prompt('[{"people": 7}]'), "queue", "2", "pose_json", "'people' must be")
case("editor-body-20-points", editor_prompt(_frames(1, 20)), "queue", "2", "pose_json", "54 or 75 numbers")
case("editor-body-25", editor_prompt(_frames(1, 25)), "ok")
case("editor-keyframes-fill-valid", editor_prompt(_frames(4), "0, 3"), "ok")

case("load-empty", load_prompt("  "), "queue", "1", "pose_json", "no pose given")
case("load-broken-json", load_prompt('{"people": ['), "queue", "1", "pose_json", "not valid JSON")
case("load-empty-list", load_prompt("[]"), "queue", "1", "pose_json", "non-empty list")
case("load-people-number", load_prompt('{"people": 5}'), "queue", "1", "pose_json", "'people' must be a list")
case("load-point-text", load_prompt(json.dumps({"people": [{"pose_keypoints_2d": ["x"] * 54}]})), "queue", "1",
     "pose_json", "every value must be a number")
case("load-canvas-nan", load_prompt(BODY_25, canvas_width=NAN), "queue", "1", "canvas_width", "INT")
case("load-canvas-negative", load_prompt(BODY_25, canvas_width=-8), "queue", "1", "canvas_width", "at least 0")
case("load-file-missing", load_prompt(BODY_25, file="nope.json"), "queue", "1", "file", "not one of")
case("load-normalised-without-canvas", load_prompt(json.dumps({"people": [{"pose_keypoints_2d": [0.5] * 54}]})),
     "queue", "1", "pose_json", "give the canvas width and height")
case("load-body-25-openpose-file", load_prompt(BODY_25), "ok")
case("load-coordinate-1e400", load_prompt('[{"people": [{"pose_keypoints_2d": [1e400, 5, 1' + ", 1" * 51
                                          + ']}], "canvas_width": 64, "canvas_height": 96}]'), "ok")


# --- running them ---------------------------------------------------------------------------------------------------


def _words_in(text: str, words) -> bool:
    return all(word in text for word in words)


@pytest.mark.parametrize("prompt, expected", [pytest.param(p, e, id=n) for n, p, e in CASES])
def test_bad_value_through_the_server(comfy_server: ComfyServer, prompt: dict[str, Any], expected: tuple):
    kind = expected[0]
    try:
        entry = comfy_server.run_prompt(prompt, timeout=120)
    except PromptRejected as rejected:
        assert kind == "queue", f"refused at queue time, expected {expected}: {rejected.body}"
        node, name, *words = expected[1:]
        assert rejected.status == 400
        errors = rejected.body["node_errors"].get(node, {}).get("errors", [])
        # ComfyUI repeats a VALIDATE_INPUTS answer once per input it was given ("<input> - <answer>"): judge the answer
        texts = [f"{e['type']}: {e['message']} " + (e["details"].split(" - ", 1)[-1] if e["type"] ==
                 "custom_validation_failed" else e["details"]) for e in errors]
        assert any(name in text and _words_in(text, words) for text in texts), (expected, texts)
    except PromptFailed as failed:
        assert kind == "run", f"failed when run, expected {expected}"
        node_type, *words = expected[1:]
        (error,) = [data for tag, data in failed.entry["status"]["messages"] if tag == "execution_error"]
        assert error["node_type"] == node_type, error
        assert not error["exception_type"].endswith(RAW_ERRORS), error["exception_type"]  # a sentence, not a crash
        assert _words_in(error["exception_message"], words), error["exception_message"]
    else:
        assert kind == "ok", f"ran to the end, expected {expected}"
        assert entry["status"]["status_str"] == "success"
    stats = comfy_server.get("/system_stats")  # the server keeps answering
    assert "system" in stats


def test_battery_size():
    assert len(CASES) >= 90, len(CASES)
    assert len({name for name, _, _ in CASES}) == len(CASES), "case ids must be unique"
