"""The command-line main job, end to end: Stage 1 on the shipped demo checkpoint, Stage 2 on the tiny random model."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from dreamdance_core.__main__ import main


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
                 "--output", str(tmp_path / "o")]) == 0  # fmt: skip
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
    from dreamdance_core.loading.stage2 import tiny_video_pipeline
    from dreamdance_core.loading.svd import save_stage2_control, save_svd_folder

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
