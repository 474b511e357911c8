"""The command-line main job, end to end: Stage 1 on the shipped demo checkpoint, Stage 2 on the tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dreamdance_core.__main__ import main
from tests.fit_cases import CANVASES, OUTPUT, assert_joints_on_dots, dotted_reference


def test_main_job_writes_every_frame_and_a_sheet(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--frames", "3", "--steps", "1", "--video-steps", "1", "--window", "2", "--overlap", "1",
                 "--output", str(out)]) == 0
    for name in ("pose", "rgb", "normal", "depth", "video"):
        frames = sorted((out / name).glob("*.png"))
        assert len(frames) == 3
        assert Image.open(frames[0]).size == (64, 96)
    video = Image.open(out / "video.webp")
    assert video.n_frames == 3 and video.size == (64, 96)
    sheet = np.asarray(Image.open(out / "sheet.png"))
    assert sheet.shape[0] == 7 * 96 + 6 * 2  # reference, pose, rgb, normal, depth, video, colour-mapped depth
    out = capsys.readouterr().out
    assert "Stage 1: the shipped demo checkpoint" in out  # no weights given: the demos, and it says so
    assert "Stage 2: the shipped demo checkpoint" in out and "RANDOMLY" not in out


def test_without_a_stage2_demo_the_video_model_is_tiny_random_and_says_so(tmp_path, monkeypatch, capsys):
    from dreamdance_core import demo

    monkeypatch.setattr(demo, "STAGE2_DIR", tmp_path / "no_demo")
    assert main(["--frames", "2", "--steps", "1", "--video-steps", "1", "--window", "2", "--overlap", "1",
                 "--output", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "TINY RANDOMLY INITIALISED video model" in out and "reminder: Stage 2 ran with random weights" in out


def test_pose_file_drives_the_frame_count(tmp_path):
    frame = {"people": [{"pose_keypoints_2d": [32, 20, 1] * 18}], "canvas_width": 64, "canvas_height": 96}
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps([frame, frame]))
    assert main(["--pose", str(pose), "--steps", "1", "--geometry-only", "--output", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o" / "depth").glob("*.png"))) == 2
    assert not (tmp_path / "o" / "video.webp").exists()


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["--pose", str(bad), "--steps", "1", "--output", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["--width", "60", "--steps", "1", "--output", str(tmp_path / "o")]) == 2
    assert "multiples of 8" in capsys.readouterr().err
    assert main(["--stage1", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--stage2", str(tmp_path / "missing"), "--base", str(tmp_path / "sd.safetensors"),
                 "--output", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_shipped_stage2_demo_is_the_default_video_model(tmp_path, monkeypatch, capsys):
    """With a Stage-2 demo folder in the pack (here a tiny one, written by the real savers), the main job animates
    with it at its demo.json's settings instead of the tiny random model."""
    from dreamdance_core import demo
    from dreamdance_core.loading.svd import save_stage2_control, save_svd_folder
    from dreamdance_core.tiny import tiny_video_pipeline

    folder = tmp_path / "stage2"
    video = tiny_video_pipeline(seed=3)
    save_stage2_control(folder, video.controller, video.controlnet)
    save_svd_folder(video.components, folder / "svd")
    (folder / "demo.json").write_text(json.dumps({"width": 64, "height": 96, "steps": 2, "guidance": [1.0, 2.0]}))
    monkeypatch.setattr(demo, "STAGE2_DIR", folder)
    out = tmp_path / "o"
    assert main(["--frames", "2", "--steps", "1", "--window", "2", "--overlap", "1", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Stage 2: the shipped demo checkpoint ({folder})" in printed
    assert "Stage 2: 2 frames at 64x96, 2 steps" in printed  # the demo's steps; its size is the reference's
    assert "RANDOMLY" not in printed and "reminder" not in printed
    assert Image.open(out / "video.webp").n_frames == 2


def _capture_stage2(monkeypatch) -> dict:
    """Replace the Stage-2 sampler by one that records what the command line hands it (and returns black frames)."""
    import torch

    from dreamdance_core.sampling import stage2

    seen = {}

    def sample_stage2(pipeline, reference, inputs, options, callback=None):
        seen.update(reference=reference.cpu(), maps={k: v.cpu() for k, v in inputs.maps.items()}, options=options)
        return torch.zeros(options.num_frames, 3, options.height, options.width)

    monkeypatch.setattr(stage2, "sample_stage2", sample_stage2)
    return seen


def _checkerboard(path, width: int, height: int):
    """A 1-pixel black/white checkerboard: any resampling on the way turns it grey."""
    board = ((np.arange(height)[:, None] + np.arange(width)[None, :]) % 2 * 255).astype(np.uint8)
    Image.fromarray(np.stack([board] * 3, axis=-1)).save(path)
    return path


def _pose_file(path, sequence):
    from dreamdance_core.pose import to_pose_keypoint

    path.write_text(json.dumps(to_pose_keypoint(sequence)))
    return path


def _expected_stage2_inputs(reference, pose, width, height, fit):
    from dreamdance_core.media import from_uint8, load_image
    from dreamdance_core.pose import load_pose_file, render_poses

    return (
        load_image(reference, width, height, fit),
        from_uint8(render_poses(load_pose_file(pose), width, height, fit=fit)),
    )


def test_stage2_gets_the_reference_and_poses_at_the_video_size(tmp_path, monkeypatch):
    """Eq. 2 of the paper: Stage 2 sees the user's image at the video resolution. The reference is loaded and the
    poses are rendered at the video size (not at Stage 1's size and enlarged); depth/normal are Stage 1's, fitted."""
    from dreamdance_core import demo
    from dreamdance_core.pose import sample_dance

    monkeypatch.setattr(demo, "STAGE2_DIR", tmp_path / "no_demo")  # the tiny random video model
    seen = _capture_stage2(monkeypatch)
    reference = _checkerboard(tmp_path / "board.png", 128, 192)
    pose = _pose_file(tmp_path / "pose.json", sample_dance(2, 128, 192))
    assert main(["--reference", str(reference), "--pose", str(pose), "--width", "64", "--height", "96",
                 "--video-width", "128", "--video-height", "192", "--steps", "1", "--video-steps", "1",
                 "--output", str(tmp_path / "o")]) == 0
    expected_reference, expected_poses = _expected_stage2_inputs(reference, pose, 128, 192, "crop")
    assert torch_equal(seen["reference"], expected_reference)
    board = np.asarray(Image.open(reference))
    assert np.array_equal(((seen["reference"][0, 0].numpy() + 1) * 127.5).round(), board[..., 0]), "fine detail lost"
    assert torch_equal(seen["maps"]["pose"], expected_poses)
    assert seen["maps"]["depth"].shape == seen["maps"]["normal"].shape == (2, 3, 192, 128)
    assert (seen["options"].width, seen["options"].height) == (128, 192)


def test_with_weights_stage2_runs_at_twice_the_stage1_size_from_the_full_size_reference(tmp_path, monkeypatch):
    """The real-weights default: Stage 2 at 2x Stage 1's size, its reference loaded at that size (the tiny models
    stand in for the weights the loaders would read)."""
    from dreamdance_core import tiny
    from dreamdance_core.loading import stage1, stage2
    from dreamdance_core.pose import sample_dance

    monkeypatch.setattr(stage1, "load_geometry_pipeline", lambda *args, **kwargs: tiny.tiny_geometry_pipeline(0))
    monkeypatch.setattr(stage2, "load_video_pipeline", lambda *args, **kwargs: tiny.tiny_video_pipeline(0))
    seen = _capture_stage2(monkeypatch)
    reference = _checkerboard(tmp_path / "board.png", 64, 96)
    pose = _pose_file(tmp_path / "pose.json", sample_dance(2, 64, 96))
    (tmp_path / "w1").mkdir(), (tmp_path / "w2").mkdir()  # the paths are checked up front; the loaders are stubs
    assert main(["--reference", str(reference), "--pose", str(pose), "--stage1", str(tmp_path / "w1"),
                 "--stage2", str(tmp_path / "w2"), "--width", "32", "--height", "48", "--steps", "1",
                 "--video-steps", "1", "--output", str(tmp_path / "o")]) == 0
    expected_reference, expected_poses = _expected_stage2_inputs(reference, pose, 64, 96, "crop")
    assert torch_equal(seen["reference"], expected_reference)
    assert seen["reference"][0, 0].unique().tolist() == [-1.0, 1.0], "the checkerboard must survive"
    assert torch_equal(seen["maps"]["pose"], expected_poses)


@pytest.mark.parametrize("fit", ["crop", "pad"])
@pytest.mark.parametrize("canvas", CANVASES, ids=list(CANVASES))
def test_keypoints_land_on_the_reference_body_pixels(tmp_path, monkeypatch, canvas, fit):
    """``--fit``: reference and poses of another aspect than the output, placed alike in Stage 2's inputs and in
    Stage 1's pose frames."""
    from dreamdance_core import demo
    from dreamdance_core.media import to_uint8

    monkeypatch.setattr(demo, "STAGE2_DIR", tmp_path / "no_demo")
    seen = _capture_stage2(monkeypatch)
    image, sequence = dotted_reference(CANVASES[canvas])
    Image.fromarray(image).save(tmp_path / "dots.png")
    pose = _pose_file(tmp_path / "pose.json", sequence)
    out = tmp_path / "o"
    assert main(["--reference", str(tmp_path / "dots.png"), "--pose", str(pose), "--fit", fit, "--width", "64",
                 "--height", "96", "--video-width", str(OUTPUT[0]), "--video-height", str(OUTPUT[1]),
                 "--steps", "1", "--video-steps", "1", "--output", str(out)]) == 0
    edge = fit == "pad" or canvas == "equal"
    assert_joints_on_dots(to_uint8(seen["reference"])[0], to_uint8(seen["maps"]["pose"])[0], expect_edge_joint=edge)
    from dreamdance_core.media import load_image

    stage1_pose = np.asarray(Image.open(out / "pose" / "000000.png"))  # Stage 1's pose frame, at 64x96
    assert_joints_on_dots(to_uint8(load_image(tmp_path / "dots.png", 64, 96, fit))[0], stage1_pose, edge)


def torch_equal(a, b) -> bool:
    import torch

    return a.shape == b.shape and torch.equal(a, b)


def test_scheduler_flags_reach_both_samplers(tmp_path, monkeypatch):
    from dreamdance_core.__main__ import parse_args
    from dreamdance_core.sampling import stage1

    defaults = parse_args([])
    assert (defaults.scheduler, defaults.video_scheduler) == ("ddim", "euler")  # each stage's scheduler from before
    seen_stage1, sample_geometry = {}, stage1.sample_geometry

    def spy(pipeline, reference, inputs, options, callback=None):
        seen_stage1["options"] = options
        return sample_geometry(pipeline, reference, inputs, options, callback)

    monkeypatch.setattr(stage1, "sample_geometry", spy)
    seen = _capture_stage2(monkeypatch)
    assert main(["--frames", "2", "--steps", "1", "--video-steps", "1", "--scheduler", "dpm++ 2m",
                 "--video-scheduler", "dpm++ 2m karras", "--output", str(tmp_path / "o")]) == 0
    assert seen_stage1["options"].scheduler == "dpm++ 2m" and seen["options"].scheduler == "dpm++ 2m karras"
    with pytest.raises(SystemExit):
        parse_args(["--video-scheduler", "ddim"])  # not one of Stage 2's
