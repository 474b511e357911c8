"""Open modalities: the registry, the Control Map node and Animate's control-map list, saved Animate widgets, and a
made-up fourth modality ("silhouette", tests/fourth_modality.py) through data preparation, the synthetic generator,
Stage-2 training and sampling through the node's list, with no edit to the node, controller, sampler or scripts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from dreamdance_core import modalities
from dreamdance_core.dataset import (
    DEPTH,
    NORMAL,
    POSE,
    ClipDataset,
    ImageCodec,
    frame_path,
    read_clip,
    validate_dataset,
)
from dreamdance_core.synthetic import generate_dataset
from tests import fourth_modality
from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs: a fixture)
from tests.test_train_data import write_pose
from tests.test_train_data import write_video as write_test_video
from tests.test_train_stage1 import ENV, REPO, read_losses
from tests.tiny_svd import randomize_

FOUR = ("pose", "depth", "normal", "silhouette")
W, H = 32, 48
_G = torch.Generator().manual_seed(0)
REFERENCE = torch.rand(1, H, W, 3, generator=_G)
POSE_IMAGES, DEPTH_IMAGES, NORMAL_IMAGES, SILHOUETTE_IMAGES = (torch.rand(3, H, W, 3, generator=_G) for _ in range(4))


@pytest.fixture
def fourth():
    """"silhouette" registered in the library's registry for one test."""
    fourth_modality.register_modalities(modalities)
    yield modalities.get("silhouette")
    modalities.unregister("silhouette")


@pytest.fixture
def pack_registry(comfy_stubs):
    """The registry as the pack's nodes see it (ComfyUI imports the pack under its own name), with "silhouette"."""
    registry = import_pack_module("dreamdance_core.modalities")
    fourth_modality.register_modalities(registry)
    yield registry
    registry.unregister("silhouette")


# --- the registry ---------------------------------------------------------------------------------------------------


def test_the_paper_modalities_are_registered_in_the_controllers_order():
    from dreamdance_core.fit import PAD_VALUES
    from dreamdance_core.models.controller import CrossDomainController

    assert modalities.names()[:3] == ("pose", "depth", "normal") == CrossDomainController().modalities
    assert [modalities.get(n).codec for n in ("pose", "depth", "normal")] == [POSE, DEPTH, NORMAL]
    assert {n: modalities.pad_value(n) for n in ("pose", "depth", "normal")} == PAD_VALUES
    assert modalities.pad_value("not registered") == -1.0  # a controller trained elsewhere: black bars


def test_unknown_and_conflicting_modalities_are_refused_with_the_names_that_work():
    with pytest.raises(modalities.ModalityError, match=r"'densepose'.*\['pose', 'depth', 'normal'"):
        modalities.get("densepose")
    depth = modalities.get("depth")
    with pytest.raises(modalities.ModalityError, match="already registered"):
        modalities.register(depth)
    for folder in ("depth", "frames", "mask"):
        codec = ImageCodec(folder, 1, np.uint8, encode=lambda v: v, decode=lambda v: v)
        with pytest.raises(modalities.ModalityError, match=f"'{folder}'"):
            modalities.register(modalities.Modality("edges", codec, synthetic=lambda frames: None))
    assert "edges" not in modalities.names()
    with pytest.raises(modalities.ModalityError, match="once"):
        modalities.check_names(["pose", "pose"])
    with pytest.raises(modalities.ModalityError, match="at least one"):
        modalities.codecs([])


def test_estimators_are_built_ins_defaults_or_module_functions():
    from dreamdance_core.estimators import normals_from_depth

    assert modalities.estimator("depth", "tests.fourth_modality:ramp_depth") is fourth_modality.ramp_depth
    normal = modalities.estimator("normal", None, {"normal_depth_scale": 5.0})  # the default: from-depth
    assert normal.__qualname__ == normals_from_depth(1.0).__qualname__
    with pytest.raises(modalities.ModalityError, match=re.escape("transformers:<model>") + ".*module:function"):
        modalities.estimator("depth", None)  # no default: a depth model must be chosen
    with pytest.raises(modalities.ModalityError, match="cannot be loaded"):
        modalities.estimator("pose", "no_such_module:estimate")


def test_plugins_register_from_the_environment(monkeypatch):
    monkeypatch.setenv(modalities.PLUGIN_ENVIRONMENT, "tests.fourth_modality:register_modalities")
    try:
        modalities.load_plugins(force=True)
        assert modalities.names()[-1] == "silhouette"
    finally:
        modalities.unregister("silhouette")
    monkeypatch.setenv(modalities.PLUGIN_ENVIRONMENT, "tests.no_such_plugin:register")
    with pytest.raises(modalities.ModalityError, match="no_such_plugin"):
        modalities.load_plugins(force=True)


def test_each_modality_is_read_back_through_its_codec_as_a_control_map(fourth, tmp_path):
    from dreamdance_core.training.common import pose_maps

    generate_dataset(tmp_path, num_videos=1, num_frames=3, width=W, height=H, seed=0, modalities=["silhouette"])
    video = tmp_path / "synth_00000"
    clip = read_clip(video, size=(W, H), maps=modalities.codecs(FOUR))
    assert clip.mask.any() and np.array_equal(clip.maps["silhouette"], clip.mask)  # the synthetic renderer's mask
    assert clip.maps["depth"] is clip.unit_depth and clip.maps["pose"] is clip.keypoints
    item = ClipDataset(tmp_path, num_frames=2, reference="first", controls=modalities.codecs(FOUR))[0]
    controls = item["controls"]
    assert list(controls) == list(FOUR) and all(m.shape == (2, 3, H, W) for m in controls.values())
    assert torch.equal(controls["depth"], item["depth"]) and torch.equal(controls["normal"], item["normal"])
    assert torch.equal(controls["pose"], pose_maps(item["pose"], W, H))
    assert set(controls["silhouette"].unique().tolist()) == {-1.0, 1.0}
    # validation checks the fourth modality's files when asked to
    assert validate_dataset(tmp_path, maps=[fourth.codec]).ok
    frame_path(video, "silhouette", 1).unlink()
    assert validate_dataset(tmp_path).ok  # the layout itself does not need it
    report = validate_dataset(tmp_path, maps=[fourth.codec])
    assert [(p.kind, p.path) for p in report.problems] == [("missing_frame", str(frame_path(video, "silhouette", 1)))]


# --- the Control Map node and Animate -------------------------------------------------------------------------------


def _run(node_class, **inputs):
    return getattr(node_class(), node_class.FUNCTION)(**inputs)


def _chain(entries, start=None):
    """Control Map nodes chained: ``entries`` of (image, modality, strength)."""
    control = import_pack_module("nodes.control")
    maps = start
    for image, modality, strength in entries:
        (maps,) = _run(control.DreamDanceControlMap, image=image, modality=modality, strength=strength,
                       control_maps=maps)
    return maps


def _tiny_model():
    video = import_pack_module("nodes.video")
    (model,) = _run(video.DreamDanceVideoModelLoader, stage2_weights="(tiny random demo)", svd_checkpoint="(none)",
                    precision="fp32", keep_loaded=False)
    randomize_(model.controlnet.controlnet_down_blocks, scale=0.05)  # make the control path matter
    randomize_(model.controlnet.controlnet_mid_block, scale=0.05)
    return model


def _animate(model, **overrides):
    video = import_pack_module("nodes.video")
    inputs = dict(
        video_model=model, reference=REFERENCE, width=W, height=H, steps=2, seed=3, min_cfg=1.0, max_cfg=2.5, fps=7,
        motion_bucket_id=127, noise_aug_strength=0.02, strength=1.0, pose_strength=1.0, depth_strength=1.0,
        normal_strength=1.0, decode_chunk_size=2,
    )
    inputs.update(overrides)
    return _run(video.DreamDanceAnimate, **inputs)[0]


def test_control_map_node_lists_registered_modalities_and_chains_in_order(pack_registry):
    control = import_pack_module("nodes.control")
    combo = control.DreamDanceControlMap.INPUT_TYPES()["required"]["modality"][0]
    assert combo == list(FOUR)  # the registry's names, the plug-in's included
    first = _chain([(POSE_IMAGES, "pose", 1.0)])
    chained = _chain([(DEPTH_IMAGES, "depth", 0.5), (SILHOUETTE_IMAGES, "silhouette", 0.0)], start=first)
    assert [(m.name, m.strength) for m in chained] == [("pose", 1.0), ("depth", 0.5), ("silhouette", 0.0)]
    assert len(first) == 1  # a list is never changed: a branch of the graph can reuse it
    assert torch.equal(chained[1].image, DEPTH_IMAGES.permute(0, 3, 1, 2) * 2 - 1)  # core layout, -1..1
    with pytest.raises(ValueError, match="'depth'.*once"):
        _chain([(DEPTH_IMAGES, "depth", 1.0)], start=chained)


def test_the_list_gives_the_video_animates_own_inputs_give(comfy_stubs):
    model = _tiny_model()
    own = _animate(model, pose_images=POSE_IMAGES, depth=DEPTH_IMAGES, normal=NORMAL_IMAGES, depth_strength=0.5)
    listed = _animate(model, control_maps=_chain([(POSE_IMAGES, "pose", 1.0), (DEPTH_IMAGES, "depth", 0.5),
                                                  (NORMAL_IMAGES, "normal", 1.0)]))
    mixed = _animate(model, pose_images=POSE_IMAGES, depth_strength=0.5,
                     control_maps=_chain([(NORMAL_IMAGES, "normal", 1.0), (DEPTH_IMAGES, "depth", 0.5)]))
    assert torch.equal(own, listed) and torch.equal(own, mixed)
    assert not torch.equal(own, _animate(model, control_maps=_chain([(POSE_IMAGES, "pose", 1.0),
                                         (DEPTH_IMAGES, "depth", 1.0), (NORMAL_IMAGES, "normal", 1.0)])))
    with pytest.raises(ValueError, match=r"\['depth'\].*more than once"):
        _animate(model, depth=DEPTH_IMAGES, control_maps=_chain([(DEPTH_IMAGES, "depth", 1.0)]))


def test_a_modality_the_loaded_controller_does_not_know_is_named(pack_registry):
    maps = _chain([(POSE_IMAGES, "pose", 1.0), (SILHOUETTE_IMAGES, "silhouette", 1.0)])
    expected = re.escape("['silhouette']") + ".*" + re.escape("['pose', 'depth', 'normal']")
    with pytest.raises(ValueError, match=expected):
        _animate(_tiny_model(), control_maps=maps)


WIDGET_TYPES = ("INT", "FLOAT", "BOOLEAN", "STRING")
SEED_CONTROLS = ("fixed", "increment", "decrement", "randomize")  # the frontend's value after an INT seed widget


def _check_widget(name: str, spec: tuple, value) -> None:
    kind, options = spec
    if isinstance(kind, (list, tuple)):
        assert value in kind, f"{name}={value!r} is not one of {kind}"
    elif kind == "INT":
        assert isinstance(value, int) and options["min"] <= value <= options["max"], (name, value)
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and options["min"] <= value <= options["max"], (name, value)


def test_saved_animate_nodes_still_validate_and_run(comfy_stubs):
    """Animate in the shipped workflows (saved before control_maps existed): their widget values, in order, still
    fit the widgets; the widgets after them have defaults; their sockets still exist with their types; they run."""
    video = import_pack_module("nodes.video")
    spec = video.DreamDanceAnimate.INPUT_TYPES()
    inputs = {**spec["required"], **spec["optional"]}
    widgets = [n for n, s in inputs.items() if isinstance(s[0], (list, tuple)) or s[0] in WIDGET_TYPES]
    saved = [n for p in sorted((REPO / "workflows").glob("*.json")) for n in json.loads(p.read_text())["nodes"]
             if n["type"] == "DreamDanceAnimate"]
    assert saved, "no shipped workflow holds DreamDance Animate"
    runs = set()
    for node in saved:
        values, kwargs = list(node["widgets_values"]), {}
        for name in widgets:
            if not values:
                kwargs[name] = inputs[name][1]["default"]  # what the frontend fills in for a widget added later
                continue
            kwargs[name] = values.pop(0)
            _check_widget(name, inputs[name], kwargs[name])
            if name == "seed":
                assert values.pop(0) in SEED_CONTROLS
        assert not values, f"saved values left over: {values}"
        saved_widgets = [socket["name"] for socket in node["inputs"] if "widget" in socket]  # in their saved order
        assert saved_widgets and widgets[: len(saved_widgets)] == saved_widgets
        for socket in node["inputs"]:
            kind = inputs[socket["name"]][0]
            assert socket["type"] == ("COMBO" if isinstance(kind, (list, tuple)) else kind), socket
        assert list(inputs)[-2:] == ["control_maps", "compile"]  # appended last (the shipped workflows, regenerated
        # since, save a control_maps socket: its type is checked above)
        runs.add(tuple(kwargs.items()))
    model = _tiny_model()
    for run in runs:
        kwargs = dict(run)
        size = (kwargs["height"], kwargs["width"])
        maps = {k: torch.rand(2, *size, 3, generator=_G) for k in ("pose_images", "depth", "normal")}
        frames = _run(video.DreamDanceAnimate, video_model=model, reference=REFERENCE, **maps, **kwargs)[0]
        assert frames.shape == (2, *size, 3)


# --- a fourth modality end to end -----------------------------------------------------------------------------------


def test_a_fourth_modality_is_prepared_generated_trained_and_sampled(fourth, pack_registry, tmp_path):
    from dreamdance_core.training import prepare_data

    # 1. data preparation: --modalities with the fourth, its default estimator from the registry
    videos = tmp_path / "videos"
    videos.mkdir()
    write_test_video(videos / "a.avi", 4)
    write_pose(videos / "a.json", 4)
    prepared = tmp_path / "prepared"
    argv = ["convert", str(videos), str(prepared), "--modalities", *FOUR, "--estimator",
            "depth=tests.fourth_modality:ramp_depth"]
    assert prepare_data.main(prepare_data.parse_args(argv)) == 0
    assert validate_dataset(prepared, maps=[fourth.codec]).ok
    stored = read_clip(prepared / "a", maps={"silhouette": fourth.codec}).maps["silhouette"]
    brightness = read_clip(prepared / "a").rgb.mean(axis=-1)
    assert np.array_equal(stored, brightness > 60) and stored.any() and not stored.all()

    # 2. the synthetic generator renders it
    data = tmp_path / "synthetic"
    generate_dataset(data, num_videos=2, num_frames=2, width=W, height=H, seed=0, modalities=["silhouette"])
    mask = cv2.imread(str(frame_path(data / "synth_00000", "mask", 0)), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.imread(str(frame_path(data / "synth_00000", "silhouette", 0)), cv2.IMREAD_UNCHANGED),
                          mask)

    # 3. train/stage2.py, unchanged, with the plug-in named in the environment
    out = tmp_path / "run"
    env = {**ENV, modalities.PLUGIN_ENVIRONMENT: "tests.fourth_modality:register_modalities",
           "PYTHONPATH": os.pathsep.join([str(REPO), ENV.get("PYTHONPATH", "")])}
    command = [sys.executable, "train/stage2.py", "--config", "train/configs/stage2_tiny.yaml", "--train_data_dir",
               str(data), "--output_dir", str(out), "--modalities", *FOUR, "--max_train_steps", "2",
               "--checkpointing_steps", "0", "--validation_steps", "2"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_losses(out)) == 2 and all(np.isfinite(read_losses(out)))
    grid = cv2.imread(str(out / "validation" / "step-000002.png"))
    assert grid.shape[0] == (len(FOUR) + 2) * H  # a row per control modality, generated, ground truth

    # 4. sample through the node's control-map list (the pack's own library, as in ComfyUI)
    load_stage2_control = import_pack_module("dreamdance_core.loading.svd").load_stage2_control
    controller, controlnet = load_stage2_control(out / "weights")
    assert controller.modalities == FOUR
    pipeline = import_pack_module("dreamdance_core.pipelines").VideoPipeline(
        import_pack_module("dreamdance_core.tiny").tiny_svd_components(0), controller, controlnet
    )
    clip = read_clip(data / "synth_00001", maps={"silhouette": fourth.codec})
    silhouette = torch.from_numpy(fourth.codec.to_map(clip.maps["silhouette"], (W, H)) * 0.5 + 0.5)  # an IMAGE, 0..1
    assert silhouette.min() == 0 and silhouette.max() == 1
    common = [(torch.rand(2, H, W, 3, generator=_G), name, 1.0) for name in ("pose", "depth", "normal")]
    with_it = _animate(pipeline, control_maps=_chain([*common, (silhouette, "silhouette", 1.0)]))
    without = _animate(pipeline, control_maps=_chain(common))
    at_zero = _animate(pipeline, control_maps=_chain([*common, (silhouette, "silhouette", 0.0)]))
    assert with_it.shape == (2, H, W, 3)
    assert not torch.equal(with_it, without)  # the trained controller reads the fourth map
    torch.testing.assert_close(at_zero, without, rtol=1e-4, atol=1e-4)  # strength 0 = absent (black)
