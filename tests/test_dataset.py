"""Dataset layout: write -> read round trip, resizing with consistent keypoints, validation of broken items,
skip / error policies, and the clip dataset."""

import json
import shutil
import warnings

import cv2
import numpy as np
import pytest

from dreamdance_core.dataset import (
    ClipDataset,
    DatasetError,
    depth_to_unit,
    frame_path,
    read_clip,
    read_index,
    usable_videos,
    validate_dataset,
    write_video,
)
from dreamdance_core.synthetic import generate_dataset, render_sample, write_sample

W, H = 64, 96


@pytest.fixture(scope="module")
def sample():
    return render_sample(11, 12, 13, num_frames=3, width=W, height=H)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    generate_dataset(root, num_videos=2, num_frames=6, width=32, height=48, seed=5)
    return root


@pytest.fixture
def dataset(pristine, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(pristine, root)
    return root


def test_round_trip_gives_the_arrays_back_within_png_quantisation(sample, tmp_path):
    video_dir = write_sample(tmp_path, "v", sample)
    clip = read_clip(video_dir)
    truth = sample.clip
    np.testing.assert_array_equal(clip.rgb, truth.rgb)
    np.testing.assert_array_equal(clip.mask, truth.mask)
    np.testing.assert_allclose(clip.unit_depth, depth_to_unit(truth.depth, truth.mask), atol=0.5 / 65535 + 1e-7)
    np.testing.assert_allclose(clip.normal, truth.normal, atol=1.0 / 255 + 1e-6)
    np.testing.assert_allclose(clip.keypoints, truth.keypoints, atol=5e-4)
    meta = json.loads((video_dir / "meta.json").read_text())
    assert (meta["num_frames"], meta["width"], meta["height"], meta["source"]) == (3, W, H, "synthetic")
    pose = json.loads((video_dir / "pose.json").read_text())
    assert len(pose) == 3 and pose[0]["canvas_width"] == W and pose[0]["canvas_height"] == H
    person = pose[0]["people"][0]
    assert len(person["pose_keypoints_2d"]) == 54 and person["face_keypoints_2d"] is None
    depth_png = cv2.imread(str(frame_path(video_dir, "depth", 0)), cv2.IMREAD_UNCHANGED)
    normal_png = cv2.imread(str(frame_path(video_dir, "normal", 0)), cv2.IMREAD_UNCHANGED)
    assert depth_png.dtype == np.uint16 and depth_png.ndim == 2 and depth_png.max() == 65535
    assert np.all(depth_png[~truth.mask[0]] == 0) and np.all(normal_png[~truth.mask[0]] == 128)


def test_depth_image_is_one_at_the_nearest_point_and_zero_on_the_background():
    depth = np.array([[[2.0, 3.0], [np.inf, 2.5]], [[np.inf, np.inf], [np.inf, np.inf]]])
    mask = np.isfinite(depth)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unit = depth_to_unit(depth, mask)
    np.testing.assert_allclose(unit[0], [[1.0, 0.0], [0.0, 0.5]])
    assert np.all(unit[1] == 0.0)


def test_depth_image_agrees_with_the_geometry_module(sample):
    import torch

    from dreamdance_core.geometry import depth_to_image

    truth = sample.clip
    expected = depth_to_image(torch.from_numpy(truth.depth.astype(np.float64)), torch.from_numpy(truth.mask))
    unit = depth_to_unit(truth.depth, truth.mask)
    np.testing.assert_allclose(unit * 2.0 - 1.0, expected[:, 0].numpy(), atol=1e-6)
    flat = depth_to_unit(np.full((1, 2, 2), 3.0), np.array([[[True, False], [False, False]]]))
    np.testing.assert_array_equal(flat, [[[1.0, 0.0], [0.0, 0.0]]])


def test_resized_clip_keeps_keypoints_on_the_body(sample, tmp_path):
    video_dir = write_sample(tmp_path, "v", sample)
    full = read_clip(video_dir)
    small = read_clip(video_dir, indices=[2, 0], size=(32, 32))  # cover 64x96 -> 32x48, crop 8 rows each side
    assert small.rgb.shape == (2, 32, 32, 3) and small.unit_depth.shape == (2, 32, 32)
    np.testing.assert_array_equal(small.indices, [2, 0])
    expected = full.keypoints[[2, 0]].copy()
    expected[..., 0] *= 0.5
    expected[..., 1] = expected[..., 1] * 0.5 - 8.0
    np.testing.assert_allclose(small.keypoints, expected, atol=1e-5)
    inside = (small.keypoints[..., 2] == 1.0) & (small.keypoints[..., 1] >= 0) & (small.keypoints[..., 1] < 32)
    frames, joints = np.nonzero(inside)
    cols, rows = small.keypoints[frames, joints, 0].astype(int), small.keypoints[frames, joints, 1].astype(int)
    assert len(frames) > 10 and small.mask[frames, rows, cols].mean() > 0.85


def test_generated_dataset_is_valid_and_records_its_seeds(pristine):
    report = validate_dataset(pristine)
    assert report.ok, report.summary()
    assert read_index(pristine) == ["synth_00000", "synth_00001"]
    metas = [json.loads((pristine / v / "meta.json").read_text()) for v in read_index(pristine)]
    assert metas[0]["character_seed"] != metas[1]["character_seed"]
    assert metas[0]["motion_seed"] != metas[1]["motion_seed"]


def _break(root, kind):
    """Break video synth_00001 in one way; returns the path the report must name."""
    video = root / "synth_00001"
    if kind == "missing_frame":
        path = frame_path(video, "depth", 3)
        path.unlink()
    elif kind == "pose_frame_count":
        path = video / "pose.json"
        path.write_text(json.dumps(json.loads(path.read_text())[:-1]))
    elif kind == "unreadable_image":
        path = frame_path(video, "frames", 2)
        path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    elif kind == "size_mismatch":
        path = frame_path(video, "normal", 1)
        cv2.imwrite(str(path), np.zeros((40, 32, 3), np.uint8))
    elif kind == "wrong_format":
        path = frame_path(video, "depth", 0)
        cv2.imwrite(str(path), np.zeros((48, 32), np.uint8))
    elif kind == "missing_video":
        path = video
        shutil.rmtree(video)
    return path


BROKEN_KINDS = ["missing_frame", "pose_frame_count", "unreadable_image", "size_mismatch", "wrong_format",
                "missing_video"]


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_validator_reports_each_broken_item_with_its_path(dataset, kind):
    path = _break(dataset, kind)
    report = validate_dataset(dataset)
    assert [(p.kind, p.path, p.video_id) for p in report.problems] == [(kind, str(path), "synth_00001")]
    assert report.good_videos == ["synth_00000"] and report.broken_videos == ["synth_00001"]
    assert str(path) in report.summary()


def test_validator_reports_a_bad_index(tmp_path):
    (tmp_path / "dataset.json").write_text('{"videos": "nope"}')
    report = validate_dataset(tmp_path)
    assert [p.kind for p in report.problems] == ["bad_index"]
    with pytest.raises(DatasetError, match="dataset.json"):
        usable_videos(report, "skip")


def test_policies_skip_with_a_warning_or_stop(dataset):
    path = _break(dataset, "pose_frame_count")
    report = validate_dataset(dataset)
    with pytest.warns(UserWarning, match="synth_00001"):
        assert usable_videos(report, "skip") == ["synth_00000"]
    with pytest.raises(DatasetError, match=str(path)) as caught:
        usable_videos(report, "error")
    assert caught.value.report is report


def test_clip_dataset_serves_model_ready_tensors(pristine):
    ds = ClipDataset(pristine, num_frames=3, size=(32, 48), stride=2, window_step=1, seed=1)
    assert len(ds) == 2 * 2  # 6 frames, span 5, windows start at 0 and 1
    item = ds[1]
    assert item["video_id"] == "synth_00000"
    assert item["pixel_values"].shape == (3, 3, 48, 32) and item["reference"].shape == (3, 48, 32)
    assert item["depth"].shape == (3, 3, 48, 32) and item["normal"].shape == (3, 3, 48, 32)
    assert item["pose"].shape == (3, 18, 3) and item["reference_pose"].shape == (18, 3)
    for key in ("reference", "pixel_values", "depth", "normal"):
        assert item[key].min() >= -1.0 and item[key].max() <= 1.0
    assert item["depth"].max() == 1.0  # the nearest point of each frame
    assert item["frame_indices"].tolist() == [1, 3, 5]
    clip = read_clip(pristine / "synth_00000", [1, 3, 5])
    np.testing.assert_allclose(item["pose"].numpy(), clip.keypoints)
    np.testing.assert_allclose(item["pixel_values"].numpy(), clip.rgb.transpose(0, 3, 1, 2) / 127.5 - 1.0, atol=1e-6)
    assert ds[1]["reference_index"] == item["reference_index"]  # deterministic per seed, epoch and item


def test_clip_dataset_skips_or_stops_on_broken_videos(dataset):
    _break(dataset, "missing_frame")
    with pytest.warns(UserWarning, match="missing_frame"):
        ds = ClipDataset(dataset, num_frames=2, policy="skip")
    assert ds.videos == ["synth_00000"]
    with pytest.raises(DatasetError, match="synth_00001"):
        ClipDataset(dataset, num_frames=2, policy="error")


def test_clip_dataset_never_trains_on_an_image_that_fails_at_read_time(dataset):
    path = _break(dataset, "unreadable_image")  # a quick (non-decoding) check cannot see it
    ds = ClipDataset(dataset, num_frames=6, reference="first", policy="skip")
    assert len(ds) == 2
    with pytest.warns(UserWarning, match="unreadable image"):
        item = ds[1]
    assert item["video_id"] == "synth_00000" and ds.skipped == {"synth_00001"}
    strict = ClipDataset(dataset, num_frames=6, reference="first", policy="error")
    with pytest.raises(DatasetError, match=str(path)):
        strict[1]


def test_writer_rejects_inconsistent_arrays(sample, tmp_path):
    clip = sample.clip
    unit = depth_to_unit(clip.depth, clip.mask)
    with pytest.raises(DatasetError, match="one pose dict per frame"):
        write_video(tmp_path, "v", clip.rgb, unit, clip.normal, clip.pose_keypoints()[:2], fps=15, source="t")
    with pytest.raises(DatasetError, match="normal must have shape"):
        write_video(tmp_path, "v", clip.rgb, unit, clip.normal[:, :10], clip.pose_keypoints(), fps=15, source="t")
