"""The nodes' VALIDATE_INPUTS (queue-time checks) with the stubbed ComfyUI, called the way ComfyUI 0.3.75 calls them
(execution.validate_inputs): only the inputs named in the signature, widget values as given, linked inputs as None.
A string answer refuses the prompt; True lets it run. The execute methods check again (values known only then)."""

from __future__ import annotations

import inspect
import json
import math

import pytest

from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs is a fixture)

NAN, INF = math.nan, math.inf
MODULES = ("nodes.pose", "nodes.geometry", "nodes.video", "nodes.control")
SAMPLE = json.dumps([{"people": [{"pose_keypoints_2d": [10.0, 20.0, 1.0] * 18}], "canvas_width": 64,
                      "canvas_height": 96}] * 3)


def _node(name: str):
    for module in MODULES:
        mapping = import_pack_module(module).NODE_CLASS_MAPPINGS
        if name in mapping:
            return mapping[name]
    raise KeyError(name)


def _defaults(cls) -> dict:
    """What ComfyUI would pass for a default widget graph: each signature input's default (None when linked)."""
    inputs = cls.INPUT_TYPES()
    spec = {**inputs.get("required", {}), **inputs.get("optional", {})}
    values = {}
    for name in inspect.getfullargspec(cls.VALIDATE_INPUTS).args[1:]:
        kind, options = spec[name][0], (spec[name][1] if len(spec[name]) > 1 else {})
        values[name] = options.get("default", kind[0] if isinstance(kind, (list, tuple)) else None)
    return values


def validate(name: str, **values):
    cls = _node(name)
    return cls.VALIDATE_INPUTS(**{**_defaults(cls), **values})


# (node, values, words of the refusal) - every one refused at queue time
REFUSED = [
    ("DreamDancePoseToGeometry", {"cfg_rgb": NAN}, "cfg_rgb is NaN"),
    ("DreamDancePoseToGeometry", {"cfg_normal": INF}, "cfg_normal is infinite"),
    ("DreamDancePoseToGeometry", {"cfg_depth": 0.5}, "cfg_depth must be at least 1"),
    ("DreamDancePoseToGeometry", {"cfg_depth": 1e30}, "at most 20"),
    ("DreamDanceAnimate", {"min_cfg": NAN}, "min_cfg is NaN"),
    ("DreamDanceAnimate", {"max_cfg": NAN}, "max_cfg is NaN"),
    ("DreamDanceAnimate", {"noise_aug_strength": NAN}, "noise_aug_strength is NaN"),
    ("DreamDanceAnimate", {"strength": -INF}, "strength is infinite"),
    ("DreamDanceAnimate", {"pose_strength": NAN}, "pose_strength is NaN"),
    ("DreamDanceAnimate", {"depth_strength": 2.5}, "depth_strength must be at most 2"),
    ("DreamDanceAnimate", {"normal_strength": -0.1}, "normal_strength must be at least 0"),
    ("DreamDanceControlMap", {"strength": NAN}, "strength is NaN"),
    ("DreamDanceWindowOptions", {"length": 8, "overlap": 8}, "overlap (8) must be smaller than length (8)"),
    ("DreamDanceWindowOptions", {"length": 300}, "length must be at most 256"),
    ("DreamDanceRenderPose", {"confidence_threshold": NAN}, "confidence_threshold is NaN"),
    ("DreamDanceRenderPose", {"width": 8200}, "width must be at most 8192"),
    ("DreamDanceRenderPose", {"fit": "squash"}, "fit 'squash' is not one of"),
    ("DreamDanceSmoothPoses", {"sigma": NAN}, "sigma is NaN"),
    ("DreamDanceSamplePose", {"num_frames": 100_000}, "lower num_frames to at most"),
    ("DreamDanceSamplePose", {"num_frames": 0}, "num_frames must be at least 1"),
    ("DreamDanceInterpolatePoses", {"key_frame_indices": "0, 500"}, "frame 500 is outside the 48 frame(s)"),
    ("DreamDanceInterpolatePoses", {"key_frame_indices": "zero"}, "whole numbers"),
    ("DreamDanceInterpolatePoses", {"key_frame_indices": "4, 2"}, "must increase"),
    ("DreamDanceSavePose", {"filename_prefix": "a\x00b"}, "control characters"),
    ("DreamDanceSavePose", {"filename_prefix": "x" * 300}, "300 bytes"),
    ("DreamDanceSavePose", {"filename_prefix": "../../etc/pose"}, "leaves the output folder"),
    ("DreamDanceSavePose", {"filename_prefix": "/abs/pose"}, "leaves the output folder"),
    ("DreamDancePoseEditor", {"pose_json": SAMPLE, "keyframes": "0, 500"}, "frame 500 is outside the 3 frame(s)"),
    ("DreamDancePoseEditor", {"pose_json": "[5]"}, "a frame must be a JSON object"),
    ("DreamDancePoseEditor", {"pose_json": '[{"people": [null]}]'}, "a person must be a JSON object"),
    ("DreamDancePoseEditor", {"pose_json": "{oops"}, "(pose_json): pose text is not valid JSON"),
    ("DreamDanceLoadPose", {"pose_json": ""}, "no pose given"),
    ("DreamDanceLoadPose", {"pose_json": '{"people": 3}'}, "pose_json: frame 0: 'people' must be a list"),
    ("DreamDanceLoadPose", {"file": "missing.json"}, "file 'missing.json' is not one of"),
]

# valid values (and linked inputs, None) pass
ACCEPTED = [
    ("DreamDancePoseToGeometry", {}),
    ("DreamDanceAnimate", {"min_cfg": 1.0, "max_cfg": 1.0}),
    ("DreamDanceAnimate", {"strength": None}),  # linked: checked when it runs
    ("DreamDanceControlMap", {"strength": 0.0}),
    ("DreamDanceWindowOptions", {"length": 16, "overlap": 15}),
    ("DreamDanceRenderPose", {"width": 8192, "height": 8192}),  # the size alone is fine; frames x size is checked later
    ("DreamDanceSmoothPoses", {"sigma": 0.0}),
    ("DreamDanceSamplePose", {"num_frames": 1000}),
    ("DreamDanceInterpolatePoses", {"key_frame_indices": "0; 12, 47"}),
    ("DreamDanceInterpolatePoses", {"num_frames": None, "key_frame_indices": "0, 500"}),  # length linked
    ("DreamDanceSavePose", {"filename_prefix": "dreamdance/pose_é"}),
    ("DreamDancePoseEditor", {"pose_json": "", "keyframes": "0, 500"}),  # the connected pose decides when run
    ("DreamDancePoseEditor", {"pose_json": SAMPLE, "keyframes": "0, 2"}),
    ("DreamDanceLoadPose", {"pose_json": json.dumps({"people": [{"pose_keypoints_2d": [5.0, 5.0, 1.0] * 25}]})}),
]


@pytest.mark.parametrize("node, values, words", REFUSED, ids=[f"{n}-{'-'.join(v)}" for n, v, _ in REFUSED])
def test_refused_at_queue_time(comfy_stubs, node, values, words):
    answer = validate(node, **values)
    assert isinstance(answer, str) and words in answer, answer


@pytest.mark.parametrize("node, values", ACCEPTED, ids=[f"{n}-{'-'.join(v) or 'defaults'}" for n, v in ACCEPTED])
def test_accepted_at_queue_time(comfy_stubs, node, values):
    assert validate(node, **values) is True


def test_signatures_name_only_declared_inputs(comfy_stubs):
    """ComfyUI passes only declared inputs and skips its own min/max for the ones named, so a VALIDATE_INPUTS must name
    real inputs and never take **kwargs (which would switch ComfyUI's checks off for every input)."""
    checked = 0
    for module in MODULES:
        for cls in import_pack_module(module).NODE_CLASS_MAPPINGS.values():
            if not hasattr(cls, "VALIDATE_INPUTS"):
                continue
            spec = inspect.getfullargspec(cls.VALIDATE_INPUTS)
            inputs = cls.INPUT_TYPES()
            declared = {*inputs.get("required", {}), *inputs.get("optional", {})}
            assert spec.varkw is None, cls.__name__
            assert set(spec.args[1:]) <= declared, (cls.__name__, set(spec.args[1:]) - declared)
            checked += 1
    assert checked >= 11


def test_execute_checks_again(comfy_stubs, monkeypatch):
    pose = import_pack_module("nodes.pose")
    keypoints = json.loads(SAMPLE)
    with pytest.raises(ValueError, match="keyframes: frame 500 is outside the 3 frame"):  # was an IndexError
        pose.DreamDancePoseEditor().execute("", "0, 500", True, pose=keypoints)
    with pytest.raises(ValueError, match="2 key poses do not fit into 1 frame"):  # was "indices [0, 0]"
        pose.DreamDanceInterpolatePoses().execute(keypoints[:2], 1, "", "cubic")
    with pytest.raises(ValueError, match="control characters"):
        pose.DreamDanceSavePose().execute(keypoints, "bad\x00name", pose.DreamDanceSavePose.FORMATS[0])
    monkeypatch.setenv("DREAMDANCE_MEMORY_LIMIT_GB", "0.01")
    with pytest.raises(ValueError, match=r"lower the frame count \(3\) or the size \(512x512\)"):
        pose.DreamDanceRenderPose().execute(keypoints, 512, 512, "stretch", True, True, True, 0.0)
    assert len(pose.DreamDanceRenderPose().execute(keypoints, 64, 64, "stretch", True, True, True, 0.0)[0]) == 3
