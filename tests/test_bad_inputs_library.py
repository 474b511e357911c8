"""Bad inputs through the library door (issue 30): each case asserts a clear InputError naming the problem, or valid
behaviour. The validation layer is :mod:`dreamdance_core.validation`; every refusal is an ``InputError``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dreamdance_core.validation import (
    InputError,
    check_budget,
    check_cfg,
    check_filename_prefix,
    check_frames,
    check_images,
    check_int,
    check_number,
    check_size,
    check_steps,
    estimate_bytes,
    memory_limit,
)

NAN, INF = float("nan"), float("inf")


# --- numbers --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, low, high, fragment", [
    (NAN, 0, 100, "NaN"), (INF, 0, 100, "infinite"), (-INF, 0, 100, "infinite"), (1e30, 0, 100, "at most 100"),
    (-1, 0, 100, "at least 0"), (True, None, None, "must be a number"), ("3.5", None, None, "must be a number"),
    (None, None, None, "must be a number"), ([1], None, None, "must be a number"), (np.float32("nan"), 0, 1, "NaN"),
    (101, 0, 100, "at most 100"), (-1e-9, 0, None, "at least 0"),
])
def test_check_number_refuses(value, low, high, fragment):
    with pytest.raises(InputError, match=fragment):
        check_number("cfg", value, low, high)


@pytest.mark.parametrize("value", [0, 0.0, 50, 100, np.float64(3.5), np.int64(7)])
def test_check_number_accepts(value):
    assert check_number("cfg", value, 0, 100) == float(value)


@pytest.mark.parametrize("value, fragment", [
    (8.5, "whole number"), (0, "at least 1"), (10**30, "at most"), (NAN, "NaN"), (False, "must be a number"),
    ("8", "must be a number"),
])
def test_check_int_refuses(value, fragment):
    with pytest.raises(InputError, match=fragment):
        check_int("steps", value, 1, 1000)


def test_check_int_keeps_big_integers_exact():
    assert check_int("seed", 2**64 - 1, 0, 2**64 - 1) == 2**64 - 1
    with pytest.raises(InputError, match="at most 18446744073709551615"):
        check_int("seed", 2**64, 0, 2**64 - 1)


@pytest.mark.parametrize("width, height, fragment", [
    (0, 64, "at least 8"), (64, -8, "at least 8"), (60, 64, "multiples of 8"), (64, 100, "multiples of 8"),
    (32768, 64, "at most 16384"), (NAN, 64, "NaN"), (64.5, 64, "whole number"), ("64", 64, "must be a number"),
])
def test_check_size_refuses(width, height, fragment):
    with pytest.raises(InputError, match=fragment):
        check_size(width, height, "the video size")


@pytest.mark.parametrize("check, value, fragment", [
    (check_steps, 0, "at least 1"), (check_steps, -3, "at least 1"), (check_steps, 1e9, "at most"),
    (check_cfg, NAN, "NaN"), (check_cfg, 1e30, "at most 100"), (check_cfg, -1, "at least 0"),
    (check_frames, 0, "at least 1"), (check_frames, 10**6, "at most 100000"),
])
def test_named_checks_refuse(check, value, fragment):
    with pytest.raises(InputError, match=fragment):
        check("x", value)


# --- images ---------------------------------------------------------------------------------------------------------
def _core(frames=2, h=16, w=8):
    return torch.zeros(frames, 3, h, w)


@pytest.mark.parametrize("make, kwargs, fragment", [
    (lambda: _core().to(torch.uint8), {}, "uint8 values.*127.5"),
    (lambda: _core() + 200.0, {}, "0..255 pixels"),
    (lambda: _core() + 1.5, {}, "outside the documented -1..1"),
    (lambda: _core().index_fill_(0, torch.tensor([1]), NAN), {}, "NaN or infinite"),
    (lambda: _core().index_fill_(0, torch.tensor([0]), INF), {}, "NaN or infinite"),
    (lambda: torch.zeros(3, 16, 8), {}, "must be images"),
    (lambda: torch.zeros(2, 4, 16, 8), {}, "must be images"),
    (lambda: torch.zeros(0, 3, 16, 8), {}, "no frames"),
    (lambda: _core(), {"frames": 3}, "holds 2 frames but 3"),
    (lambda: _core(), {"size": (16, 16)}, "is 8x16.*16x16"),
    (lambda: torch.zeros(1, 3, 15, 8), {"multiple": 8}, "multiples of 8"),
    (lambda: [[0.0]], {}, "must be an image tensor"),
    (lambda: np.zeros((1, 3, 8, 8), dtype=np.uint8), {}, "uint8"),
    (lambda: torch.zeros(1, 8, 8, 3).double() + 255, {"layout": "comfy"}, "x / 255"),
    (lambda: torch.zeros(1, 8, 8, 3) - 0.5, {"layout": "comfy"}, "outside the documented 0..1"),
    (lambda: torch.zeros(1, 8, 8, 3, dtype=torch.uint8), {"layout": "comfy"}, "uint8"),
])
def test_check_images_refuses(make, kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        check_images("the reference image", make(), **kwargs)


@pytest.mark.parametrize("images, layout", [
    (torch.zeros(1, 3, 8, 8) - 1, "core"), (torch.ones(2, 3, 8, 8), "core"), (torch.zeros(1, 8, 8, 3), "comfy"),
    (torch.full((1, 3, 8, 8), 1.005), "core"), (np.zeros((1, 3, 8, 8), np.float32), "core"),
])
def test_check_images_accepts_the_documented_range(images, layout):
    assert check_images("x", images, layout) is images


# --- memory budget --------------------------------------------------------------------------------------------------
def test_estimate_bytes_is_exact():
    assert estimate_bytes((100_000, 768, 512, 3), "uint8") == 100_000 * 768 * 512 * 3
    assert estimate_bytes((2, 3), torch.float16) == 12


@pytest.mark.parametrize("setting, fragment", [("abc", "positive number"), ("-1", "positive number"),
                                               ("nan", "positive number")])
def test_memory_limit_setting_is_checked(monkeypatch, setting, fragment):
    monkeypatch.setenv("DREAMDANCE_MEMORY_LIMIT_GB", setting)
    with pytest.raises(InputError, match=fragment):
        memory_limit()


def test_check_budget_names_the_number_the_limit_and_the_fix():
    with pytest.raises(InputError, match=r"about 2\.0 GiB, more than the limit of 1\.0 GiB.*lower the frames"):
        check_budget("rendering", 2 * 2**30, "lower the frames", limit=2**30)
    assert check_budget("rendering", 2**20, "x", limit=2**30) == 2**20


# --- paths ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix, fragment", [
    ("pose\x00x", "control characters"), ("a" * 300, "300 bytes"), ("../outside", "leaves the output folder"),
    ("/etc/pose", "leaves the output folder"), ("C:\\x\\pose", "leaves the output folder"),
    ("a\\..\\..\\b", "leaves the output folder"), ("", "non-empty"), ("  ", "non-empty"), (None, "non-empty"),
    ("ok/" + "é" * 150, "300 bytes"), ("x\ny", "control characters"),
])
def test_filename_prefix_refused(prefix, fragment):
    with pytest.raises(InputError, match=fragment):
        check_filename_prefix(prefix)


@pytest.mark.parametrize("prefix", ["dreamdance/pose", "pose", "a/b/c_1-2", "é" * 60])
def test_filename_prefix_accepted(prefix):
    assert check_filename_prefix(prefix) == prefix


# --- sampler options ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, fragment", [
    ({"guidance": (NAN, 2.5, 3.5)}, "rgb.*NaN"), ({"guidance": (3.5, INF, 3.5)}, "normal.*infinite"),
    ({"guidance": (3.5, 2.5, 1e30)}, "depth.*at most 100"), ({"guidance": (3.5, 2.5)}, "3 scales"),
    ({"guidance": 3.5}, "3 scales"), ({"guidance": (-1.0, 1, 1)}, "at least 0"), ({"steps": 0}, "at least 1"),
    ({"steps": 2.5}, "whole number"), ({"steps": NAN}, "NaN"), ({"seed": 2**70}, "seed"),
    ({"decode_chunk_size": 0}, "decode_chunk_size"), ({"scheduler": "bogus"}, "bogus"),
])
def test_stage1_options_refuse(kwargs, fragment):
    from dreamdance_core.sampling.stage1 import Stage1Options

    with pytest.raises(ValueError, match=fragment):
        Stage1Options(**kwargs)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"min_cfg": NAN}, "min_cfg is NaN"), ({"max_cfg": NAN}, "max_cfg is NaN"), ({"max_cfg": 1e30}, "at most 100"),
    ({"min_cfg": -INF}, "infinite"), ({"noise_aug_strength": NAN}, "noise_aug_strength is NaN"),
    ({"noise_aug_strength": -0.1}, "at least 0"), ({"noise_aug_strength": 1e6}, "at most 10"),
    ({"steps": 0}, "at least 1"), ({"fps": 0}, "fps must be at least 1"), ({"fps": 10**6}, "at most 1024"),
    ({"fps": NAN}, "NaN"), ({"motion_bucket_id": -1}, "motion_bucket_id"), ({"motion_bucket_id": 5000}, "at most"),
    ({"num_frames": 0}, "at least 1"), ({"num_frames": 10**7}, "at most"), ({"width": 20}, "multiples of 8"),
    ({"height": 0}, "at least 8"), ({"width": 65536}, "at most 16384"), ({"seed": 1.5}, "whole number"),
    ({"decode_chunk_size": 0}, "at least 1"), ({"scheduler": "nope"}, "unknown Stage-2 scheduler"),
])
def test_stage2_options_refuse(kwargs, fragment):
    from dreamdance_core.sampling.stage2 import Stage2InputError, Stage2Options

    with pytest.raises(Stage2InputError, match=fragment) as caught:
        Stage2Options(**kwargs)
    assert isinstance(caught.value, InputError)


def test_stage2_options_keep_valid_values():
    from dreamdance_core.sampling.stage2 import Stage2Options

    options = Stage2Options(width=64.0, height=96, fps=7, min_cfg=1, max_cfg=3.0, steps=2)
    assert (options.width, options.steps, options.min_cfg) == (64, 2, 1.0) and isinstance(options.width, int)


# --- Stage-2 inputs (refused before any model work) -----------------------------------------------------------------
W, H, F = 64, 96, 2


@pytest.fixture(scope="module")
def video():
    from dreamdance_core.tiny import tiny_video_pipeline

    return tiny_video_pipeline(0)


def _maps(video, **changes):
    maps = {name: torch.zeros(F, 3, H, W) for name in video.controller.modalities}
    maps.update(changes)
    return maps


def _bad(maps_change=None, reference=None, strength=1.0, modality_strengths=None):
    return maps_change, reference, strength, modality_strengths or {}


def _nan_maps():
    maps = torch.zeros(F, 3, H, W)
    maps[1, 0, 3, 3] = NAN
    return maps


@pytest.mark.parametrize("case, fragment", [
    (_bad(reference=torch.full((1, 3, H, W), NAN)), "reference image contains"),
    (_bad(reference=torch.full((1, 3, H, W), INF)), "reference image contains"),
    (_bad(reference=torch.full((1, 3, H, W), 255.0)), "0..255"),
    (_bad(reference=torch.zeros(1, 3, H, W, dtype=torch.uint8)), "uint8"),
    (_bad(maps_change={"pose": _nan_maps()}), "pose control maps contains"),
    (_bad(maps_change={"depth": torch.full((F, 3, H, W), INF)}), "depth control maps contains"),
    (_bad(maps_change={"normal": torch.full((F, 3, H, W), 3.0)}), "normal control maps has values"),
    (_bad(maps_change={"pose": torch.zeros(F, 3, H, W, dtype=torch.uint8)}), "uint8"),
    (_bad(strength=NAN), "control strength is NaN"), (_bad(strength=-1.0), "at least 0"),
    (_bad(strength=1e9), "at most 10"), (_bad(modality_strengths={"depth": NAN}), "depth strength is NaN"),
    (_bad(modality_strengths={"pose": INF}), "pose strength is infinite"),
])
def test_stage2_inputs_refused_before_model_work(video, case, fragment):
    from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2

    change, reference, strength, modality_strengths = case
    reference = torch.zeros(1, 3, H, W) if reference is None else reference
    inputs = Stage2Inputs(_maps(video, **(change or {})), strength, modality_strengths)
    options = Stage2Options(width=W, height=H, num_frames=F, steps=1)
    with pytest.raises(InputError, match=fragment):
        sample_stage2(video, reference, inputs, options)


# --- Stage-1 inputs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reference, poses, fragment", [
    (torch.zeros(1, 3, 96, 64), torch.full((2, 3, 96, 64), NAN), "pose maps contains"),
    (torch.full((1, 3, 96, 64), INF), torch.zeros(2, 3, 96, 64), "reference image contains"),
    (torch.zeros(1, 3, 96, 64) + 255, torch.zeros(2, 3, 96, 64), "0..255"),
    (torch.zeros(1, 3, 96, 64), torch.zeros(2, 3, 96, 64, dtype=torch.uint8), "uint8"),
    (torch.zeros(1, 3, 96, 64), torch.zeros(2, 3, 96, 64) + 0.5 + 1, "outside the documented"),
])
def test_stage1_inputs_refused_before_model_work(reference, poses, fragment):
    from dreamdance_core.sampling.stage1 import _check_inputs

    with pytest.raises(InputError, match=fragment):
        _check_inputs(reference, poses)


# --- pose files -----------------------------------------------------------------------------------------------------
BODY = [100.0, 100.0, 1.0] * 18


def _frame(**fields):
    return {"people": [{"pose_keypoints_2d": BODY}], "canvas_width": 64, "canvas_height": 64, **fields}


@pytest.mark.parametrize("text, fragment", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
    (json.dumps([_frame(canvas_width=True, canvas_height=True)]), "numbers of pixels"),
    (json.dumps([_frame(canvas_width=True)]), "numbers of pixels"),
    (json.dumps([1, 2]), "frame 0: a frame must be a JSON object"),
    (json.dumps(["frame"]), "a frame must be a JSON object"),
    (json.dumps([None]), "a frame must be a JSON object"),
    (json.dumps([{"people": [None]}]), "person 0: a person must be a JSON object"),
    (json.dumps([{"people": None}]), "'people' must be a list"),
    (json.dumps([{"people": "x"}]), "'people' must be a list"),
    (json.dumps([_frame(people=[{"pose_keypoints_2d": ["1"] * 54}])]), "every value must be a number"),
    (json.dumps([_frame(people=[{"pose_keypoints_2d": [True] * 54}])]), "every value must be a number"),
    (json.dumps([_frame(people=[{"pose_keypoints_2d": [None] * 54}])]), "every value must be a number"),
    ('[{"people":[{"pose_keypoints_2d":[1' + "0" * 400 + ',1,1' + ",0" * 51 + ']}],"canvas_width":64,'
     '"canvas_height":64}]', "too large"),
    (json.dumps([_frame(canvas_width=1e400)]).replace("Infinity", "1e400"), "canvas_width"),
    (json.dumps([_frame(canvas_width=-5)]), "canvas"), (json.dumps([_frame(canvas_width=64.5)]), "whole numbers"),
    (json.dumps([_frame(canvas_width=10**6)]), "canvas"), (json.dumps([]), "non-empty list"),
    (json.dumps([_frame(people=[{"pose_keypoints_2d": [1.0] * 55}])]), "expected 54 or 75 numbers"),
    ("{not json", "not valid JSON"), (json.dumps("text"), "non-empty list"),
    (json.dumps([_frame(people=[{}] * 65)]), "at most 64"),
])
def test_pose_json_refused(text, fragment):
    from dreamdance_core.pose import PoseError, parse_pose_json

    with pytest.raises(PoseError, match=fragment) as caught:
        parse_pose_json(text)
    assert isinstance(caught.value, InputError)


def test_pose_coordinate_1e400_is_a_missing_point():
    from dreamdance_core.pose import parse_pose_json

    text = json.dumps([_frame(people=[{"pose_keypoints_2d": [1e300] + BODY[1:]}])]).replace("1e+300", "1e400")
    seq = parse_pose_json(text)
    assert seq.body[0, 0, 0].tolist() == [0.0, 0.0, 0.0] and seq.body[0, 0, 1, 2] == 1.0


def test_body25_maps_to_the_18_point_body():
    from dreamdance_core.pose import parse_pose_json

    body25 = [float(i) for k in range(25) for i in (10 + k, 20 + k, 1.0)]
    seq = parse_pose_json(json.dumps({"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": body25}]}))
    assert seq.body.shape[2] == 18 and seq.body[0, 0, 8, 0] == 10 + 9  # right hip is BODY_25 point 9


def test_empty_people_is_a_frame_without_people():
    from dreamdance_core.pose import parse_pose_json

    seq = parse_pose_json(json.dumps([_frame(), {"people": [], "canvas_width": 64, "canvas_height": 64}]))
    assert seq.people[:, 0].tolist() == [True, False]


@pytest.mark.parametrize("path_kind, fragment", [("missing", "not found"), ("folder_empty", "no .json files"),
                                                 ("binary", "not valid JSON")])
def test_pose_file_refused(tmp_path, path_kind, fragment):
    from dreamdance_core.pose import PoseError, load_pose_file

    path = tmp_path / "p.json"
    if path_kind == "folder_empty":
        path = tmp_path / "empty"
        path.mkdir()
    elif path_kind == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PoseError, match=fragment):
        load_pose_file(path)


# --- pose tools: sizes, counts and memory ---------------------------------------------------------------------------
@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setenv("DREAMDANCE_MEMORY_LIMIT_GB", "1")


def test_render_poses_100000_frames_refused_up_front(small_limit):
    from dreamdance_core.pose import render_poses, sample_dance

    seq = sample_dance(1, 512, 768).frames([0] * 100_000)
    with pytest.raises(InputError, match=r"100000 pose frames at 512x768 would need about 109\.9 GiB.*fewer frames"):
        render_poses(seq, 512, 768)


def test_render_poses_8192_square_refused_up_front(small_limit):
    from dreamdance_core.pose import render_poses, sample_dance

    with pytest.raises(InputError, match="8192x8192"):
        render_poses(sample_dance(40, 64, 64), 8192, 8192)


@pytest.mark.parametrize("sigma", [1e6, 1e300, INF])
def test_smooth_poses_huge_sigma(small_limit, sigma):
    from dreamdance_core.pose import PoseError, sample_dance, smooth_poses

    seq = sample_dance(20, 64, 64)
    if math.isinf(sigma):
        with pytest.raises(PoseError, match="finite"):
            smooth_poses(seq, sigma)
        return
    smoothed = smooth_poses(seq, sigma)  # the window is bounded by the sequence: valid, no 116 GiB allocation
    mean = seq.body[:, 0, :, :2].mean(axis=0)
    assert np.allclose(smoothed.body[:, 0, :, :2], mean, atol=1e-3)


def test_smooth_poses_long_sequence_huge_sigma_refused(small_limit):
    from dreamdance_core.pose import sample_dance, smooth_poses

    with pytest.raises(InputError, match="lower sigma"):
        smooth_poses(sample_dance(1, 64, 64).frames([0] * 5000), 1e9)


@pytest.mark.parametrize("num_keys, num_frames, key_frames, fragment", [
    (2, 1, None, "2 key poses do not fit into 1 frame"), (3, 2, None, "3 key poses do not fit into 2 frame"),
    (2, 1, [0, 0], "2 key poses do not fit into 1 frame"), (2, 10, [0, 0], "increasing order"),
    (2, 10, [0, 10], "0..9"), (2, 0, None, "between 1 and 100000"), (2, 10**6, None, "between 1 and 100000"),
    (2, 10, [0], "one frame index per key pose"), (2, 10.5, None, "whole number"), (2, True, None, "whole number"),
])
def test_interpolate_refused(num_keys, num_frames, key_frames, fragment):
    from dreamdance_core.pose import PoseError, interpolate_keyframes, sample_dance

    with pytest.raises(PoseError, match=fragment):
        interpolate_keyframes(sample_dance(num_keys, 64, 64), key_frames, num_frames)


def test_interpolate_spreads_keys_when_none_given():
    from dreamdance_core.pose import interpolate_keyframes, sample_dance

    keys = sample_dance(3, 64, 64)
    result = interpolate_keyframes(keys, None, 5)
    assert result.num_frames == 5 and np.allclose(result.body[4], keys.body[2])


@pytest.mark.parametrize("frames, width, height, fragment", [
    (0, 64, 64, "between 1 and 100000"), (10**6, 64, 64, "between 1 and 100000"), (4, 0, 64, "canvas"),
    (4, 10**6, 64, "canvas"),
])
def test_sample_dance_refused(frames, width, height, fragment):
    from dreamdance_core.pose import PoseError, sample_dance

    with pytest.raises(PoseError, match=fragment):
        sample_dance(frames, width, height)


# --- reference images -----------------------------------------------------------------------------------------------
def _png(path, width=16, height=16):
    from PIL import Image

    Image.new("RGB", (width, height), (10, 20, 30)).save(path)
    return path


@pytest.mark.parametrize("kind, fragment", [
    ("bomb", "decompression bomb"), ("folder", "is a folder"), ("garbage", "not a readable image"),
    ("empty", "not a readable image"), ("size", "multiples|at least"),
])
def test_load_image_refused(tmp_path, monkeypatch, kind, fragment):
    from PIL import Image

    from dreamdance_core.media import load_image

    path, size = tmp_path / "ref.png", (64, 96)
    if kind == "bomb":
        _png(path, 64, 64)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 px is then over twice the limit: a "bomb"
    elif kind == "folder":
        path.mkdir()
    elif kind == "garbage":
        path.write_bytes(b"not an image at all")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        _png(path)
        size = (0, 96)
    with pytest.raises(InputError, match=fragment):
        load_image(path, *size)


def test_load_image_missing_file_names_it(tmp_path):
    from dreamdance_core.media import load_image

    with pytest.raises(FileNotFoundError, match="ref.png not found"):
        load_image(tmp_path / "ref.png", 64, 96)


# --- datasets -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("video_id, fragment", [
    ("../elsewhere", "leaves the dataset folder"), ("/abs/video", "leaves the dataset folder"),
    ("a/../../b", "leaves the dataset folder"), ("C:\\videos\\x", "leaves the dataset folder"),
    ("ok\x00", "leaves the dataset folder"), ("", "non-empty"), (5, "non-empty folder name"), (None, "non-empty"),
])
def test_dataset_ids_stay_inside_the_root(tmp_path, video_id, fragment):
    from dreamdance_core.dataset import DatasetError, read_index

    (tmp_path / "dataset.json").write_text(json.dumps({"format": "dreamdance-dataset", "version": 1,
                                                       "videos": ["fine", video_id]}))
    with pytest.raises(DatasetError, match=fragment):
        read_index(tmp_path)


@pytest.mark.parametrize("field, fragment", [("depth", "depth frame 1 holds NaN"), ("normal", "normal frame 1 holds")])
def test_write_video_refuses_nan_maps(tmp_path, field, fragment):
    from dreamdance_core.dataset import DatasetError, write_video

    rgb = np.zeros((3, 16, 8, 3), np.uint8)
    depth, normal = np.zeros((3, 16, 8), np.float32), np.zeros((3, 16, 8, 3), np.float32)
    normal[..., 2] = 1
    {"depth": depth, "normal": normal}[field][1, 2, 3] = np.nan
    pose = [{"people": [], "canvas_width": 8, "canvas_height": 16}] * 3
    with pytest.raises(DatasetError, match=f"video 'v1': {fragment}"):
        write_video(tmp_path, "v1", rgb, depth, normal, pose, fps=8, source="x")
    assert not (tmp_path / "v1").exists()  # nothing written
