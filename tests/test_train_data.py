"""Data preparation (train/prepare_data.py) and what training does with broken data (train/stage1.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dreamdance_core.dataset import ClipDataset, frame_path, validate_dataset, write_index
from dreamdance_core.pose import PoseSequence, to_pose_keypoint
from dreamdance_core.synthetic import generate_dataset
from tests.test_train_stage1 import read_losses, run_stage1


@pytest.fixture
def prepare():
    """The module behind train/prepare_data.py (a library: no sys.path edit)."""
    from dreamdance_core.training import prepare_data

    return prepare_data


def write_video(path: Path, num_frames: int, size=(32, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened()
    for i in range(num_frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i % 255, dtype=np.uint8))
    writer.release()


def write_pose(path: Path, num_frames: int, canvas=(32, 48)) -> None:
    sequence = PoseSequence.empty(num_frames, 1, canvas)
    body = sequence.body.copy()
    body[:, 0, :, :2] = np.linspace(5, 25, 18)[None, :, None] + np.arange(num_frames)[:, None, None]
    body[:, 0, :, 2] = 1.0
    path.write_text(json.dumps(to_pose_keypoint(sequence.replace(body=body))))


def test_convert_videos_to_a_valid_dataset(prepare, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, frames in (("a", 6), ("b", 5)):
        write_video(videos / f"{name}.avi", frames)
        write_pose(videos / f"{name}.json", frames)
    write_video(videos / "no_pose.avi", 4)  # its pose file is missing: reported, left out

    def depth(video):  # a plug-in estimator: a ramp, nearest at the bottom
        f, h, w = video.frames.shape[:3]
        return np.broadcast_to(np.linspace(0.1, 1.0, h)[None, :, None], (f, h, w)).copy()

    out = tmp_path / "dataset"
    options = prepare.parse_args(["convert", "v", "o"])
    pose, normal = (prepare.load_estimator(name, spec, options) for name, spec in (("pose", "json"), ("normal", None)))
    done = prepare.convert(videos, out, {"normal": normal, "depth": depth, "pose": pose}, every=2)  # normal after depth
    assert done == ["a", "b"]
    report = validate_dataset(out)
    assert report.ok, report.summary()
    meta = json.loads((out / "a" / "meta.json").read_text())
    assert (meta["num_frames"], meta["width"], meta["height"]) == (3, 32, 48)  # every 2nd of 6 frames
    item = ClipDataset(out, num_frames=3)[0]
    assert item["pixel_values"].shape == (3, 3, 48, 32)
    # the ramp's normals tilt toward +y (up, where depth decreases toward the top of the image is "farther")
    assert item["normal"][:, 1].mean() > 0.05 and item["normal"][:, 2].mean() > 0.5
    # frames 0, 2, 4 of the source: keypoints shifted by 0, 2, 4 pixels
    np.testing.assert_allclose(item["pose"][:, 0, 0].numpy(), [5.0, 7.0, 9.0], atol=1e-4)


def test_missing_estimator_explains_how_to_plug_one_in(prepare):
    options = prepare.parse_args(["convert", "v", "o"])
    with pytest.raises(prepare.PrepareError, match="module:function"):
        prepare.load_estimator("depth", None, options)
    with pytest.raises(prepare.PrepareError, match="cannot be loaded"):
        prepare.load_estimator("pose", "no_such_module:estimate", options)


@pytest.fixture(scope="module")
def broken_dataset(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """Four videos: a missing frame, a pose file one frame short, an unreadable image, and a good one."""
    root = tmp_path_factory.mktemp("broken")
    ids = generate_dataset(root, num_videos=4, num_frames=4, width=32, height=48, seed=3)
    broken = {
        "missing_frame": frame_path(root / ids[0], "frames", 1),
        "pose_frame_count": root / ids[1] / "pose.json",
        "unreadable_image": frame_path(root / ids[2], "depth", 2),
    }
    broken["missing_frame"].unlink()
    pose = json.loads(broken["pose_frame_count"].read_text())
    broken["pose_frame_count"].write_text(json.dumps(pose[:-1]))
    broken["unreadable_image"].write_bytes(b"not a png")
    return root, broken


def test_validate_reports_every_broken_item_with_its_path(prepare, broken_dataset, capsys):
    root, broken = broken_dataset
    assert prepare.main(prepare.parse_args(["validate", str(root)])) == 1
    report = capsys.readouterr().out
    for kind, path in broken.items():
        assert f"[{kind}] {path}" in report
    assert "1 good, 3 broken" in report


def test_training_stops_on_broken_data_with_policy_error(broken_dataset, tmp_path):
    root, broken = broken_dataset
    result = run_stage1("--train_data_dir", str(root), "--output_dir", str(tmp_path), "--data_policy", "error",
                        "--check_images", "true", "--num_frames", "4", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for path in broken.values():
        assert str(path) in result.stderr
    assert not (tmp_path / "weights").exists()


def test_unreadable_image_found_while_training_stops_with_policy_error(broken_dataset, tmp_path):
    root, broken = broken_dataset
    data = tmp_path / "data"
    shutil.copytree(root, data)
    write_index(data, [broken["unreadable_image"].parents[1].name])  # passes the existence check, fails to decode
    result = run_stage1("--train_data_dir", str(data), "--output_dir", str(tmp_path / "run"), "--data_policy",
                        "error", "--num_frames", "4", check=False)
    assert result.returncode == 2
    assert str(data / broken["unreadable_image"].relative_to(root)) in result.stderr


def test_training_skips_broken_videos_with_policy_skip(broken_dataset, tmp_path):
    root, broken = broken_dataset
    good = (set(json.loads((root / "dataset.json").read_text())["videos"])
            - {path.relative_to(root).parts[0] for path in broken.values()})
    # without --check_images the unreadable image is only met when its clip is read: skipped then
    result = run_stage1("--train_data_dir", str(root), "--output_dir", str(tmp_path), "--data_policy", "skip",
                        "--num_frames", "4", "--max_train_steps", "3", "--validation_steps", "0")
    for path in broken.values():
        assert str(path) in result.stderr  # every skipped item is named
    trained_on = {video for line in (tmp_path / "logs.jsonl").read_text().splitlines()
                  for video in json.loads(line)["videos"]}
    assert trained_on == good and len(read_losses(tmp_path)) == 3
