"""Bad inputs through the train/ scripts (issue 30): option values, output folders, damaged checkpoints on resume,
dataset ids leaving the dataset root, estimators that fail in data preparation. In-process (``parse_args`` / ``cli``
/ the resume helpers); each case asserts the error type and a fragment naming the problem, or valid behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dreamdance_core.training import common, stage1, stage2
from dreamdance_core.training.common import TrainConfigError
from dreamdance_core.validation import InputError

REPO = Path(__file__).resolve().parents[1]
TINY1 = REPO / "train" / "configs" / "stage1_tiny.yaml"
TINY2 = REPO / "train" / "configs" / "stage2_tiny.yaml"

BAD_OPTIONS = [
    (["--learning_rate", "-1"], "--learning_rate must be at least 0"),
    (["--learning_rate", "nan"], "--learning_rate is NaN"),
    (["--learning_rate", "inf"], "--learning_rate is infinite"),
    (["--learning_rate", "0"], "nothing would train"),
    (["--learning_rate", "5"], "--learning_rate must be at most 1"),
    (["--lr_scheduler", "bogus"], "--lr_scheduler 'bogus' is not a diffusers LR scheduler"),
    (["--lr_scheduler", ""], "is not a diffusers LR scheduler"),
    (["--lr_warmup_steps", "-1"], "--lr_warmup_steps must be at least 0"),
    (["--dataloader_num_workers", "-1"], "--dataloader_num_workers must be at least 0"),
    (["--dataloader_num_workers", "100000"], "--dataloader_num_workers must be at most"),
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--frame_stride", "0"], "--frame_stride must be at least 1"),
    (["--window_step", "0"], "--window_step must be at least 1"),
    (["--adam_beta1", "nan"], "--adam_beta1 is NaN"),
    (["--adam_beta2", "1.5"], "--adam_beta2 must be at most"),
    (["--adam_weight_decay", "-0.1"], "--adam_weight_decay must be at least 0"),
    (["--adam_epsilon", "0"], "--adam_epsilon must be at least"),
    (["--adam_epsilon", "nan"], "--adam_epsilon is NaN"),
    (["--max_grad_norm", "nan"], "--max_grad_norm is NaN"),
    (["--max_grad_norm", "-1"], "--max_grad_norm must be at least 0"),
    (["--reference_dropout", "nan"], "--reference_dropout is NaN"),
    (["--reference_dropout", "2"], "reference_dropout"),
    (["--ema_decay", "nan"], "--ema_decay is NaN"),
    (["--checkpointing_steps", "-5"], "--checkpointing_steps must be at least 0"),
    (["--validation_steps", "-1"], "--validation_steps must be at least 0"),
    (["--validation_num_frames", "0"], "--validation_num_frames must be at least 1"),
    (["--validation_inference_steps", "0"], "--validation_inference_steps must be at least 1"),
    (["--width", "0"], "at least 8"),
    (["--height", "-8"], "at least 8"),
    (["--width", "30"], "multiples of 8"),
    (["--max_train_steps", "0"], "--max_train_steps must be at least 1"),
    (["--train_batch_size", "0"], "--train_batch_size must be at least 1"),
    (["--num_frames", "0"], "--num_frames must be at least 1"),
    (["--checkpoints_total_limit", "0"], "checkpoints_total_limit"),
]


@pytest.mark.parametrize("args, fragment", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_stage1_bad_options(tmp_path, args, fragment):
    base = ["--config", str(TINY1), "--train_data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(TrainConfigError, match=fragment.replace("(", r"\(")) as caught:
        stage1.parse_args([*base, *args])
    assert isinstance(caught.value, InputError)


@pytest.mark.parametrize("args, fragment", BAD_OPTIONS[:10], ids=[" ".join(a) for a, _ in BAD_OPTIONS[:10]])
def test_stage2_bad_options(tmp_path, args, fragment):
    base = ["--config", str(TINY2), "--train_data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(TrainConfigError, match=fragment):
        stage2.parse_args([*base, *args])


def test_the_defaults_and_tiny_configs_pass(tmp_path):
    for parse, config in ((stage1.parse_args, TINY1), (stage2.parse_args, TINY2)):
        args = parse(["--config", str(config), "--train_data_dir", str(tmp_path), "--output_dir", str(tmp_path / "o")])
        assert args.learning_rate > 0


@pytest.mark.parametrize("layout", ["file", "under_file"])
def test_output_dir_naming_a_file(tmp_path, layout):
    (tmp_path / "out").write_text("x")
    output = tmp_path / "out" if layout == "file" else tmp_path / "out" / "run"
    with pytest.raises(TrainConfigError, match="is a file, not a folder"):
        stage1.parse_args(["--config", str(TINY1), "--train_data_dir", str(tmp_path), "--output_dir", str(output)])


@pytest.mark.parametrize("script", [stage1, stage2])
@pytest.mark.parametrize("args, fragment", [
    (["--learning_rate", "nan"], "--learning_rate is NaN"), (["--lr_scheduler", "bogus"], "bogus"),
    (["--dataloader_num_workers", "-1"], "at least 0"),
])
def test_cli_exit_2_with_one_error_line(tmp_path, capsys, script, args, fragment):
    config = TINY1 if script is stage1 else TINY2
    code = script.cli(["--config", str(config), "--train_data_dir", str(tmp_path), "--output_dir",
                       str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and fragment in err and "Traceback" not in err


def test_config_file_values_are_checked_too(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(TINY1.read_text() + "\nlearning_rate: .nan\n")
    with pytest.raises(TrainConfigError, match="--learning_rate is NaN"):
        stage1.parse_args(["--config", str(config), "--train_data_dir", str(tmp_path), "--output_dir",
                           str(tmp_path / "o")])


# --- resume from a damaged checkpoint -------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path):
    """A real accelerate checkpoint of a tiny model and its AdamW (CPU, one process)."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    folder = tmp_path / "checkpoint-1"
    accelerator.save_state(str(folder))
    return accelerator, folder


def test_an_intact_checkpoint_loads(checkpoint):
    accelerator, folder = checkpoint
    common.load_checkpoint(accelerator, folder)
    assert common.check_random_states(folder) is True


@pytest.mark.parametrize("victim, content, fragment", [
    ("optimizer.bin", b"tampered", "cannot be resumed"),
    ("optimizer.bin", b"", "cannot be resumed"),
    ("random_states_0.pkl", b"tampered", "random_states_0.pkl cannot be read"),
    ("random_states_0.pkl", b"", "random_states_0.pkl cannot be read"),
])
def test_tampered_checkpoint_files_are_refused(checkpoint, victim, content, fragment):
    accelerator, folder = checkpoint
    (folder / victim).write_bytes(content)
    with pytest.raises(TrainConfigError, match=fragment):
        common.load_checkpoint(accelerator, folder)


def test_a_pickle_that_is_not_weights_only_is_refused(checkpoint, tmp_path):
    import pickle

    accelerator, folder = checkpoint
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "random_states_0.pkl").write_bytes(pickle.dumps({"random_state": Evil()}))
    with pytest.raises(TrainConfigError, match="cannot be read"):
        common.load_checkpoint(accelerator, folder)
    assert not marker.exists()


def test_random_states_of_the_wrong_shape_are_refused(checkpoint):
    accelerator, folder = checkpoint
    torch.save({"step": 3}, folder / "random_states_0.pkl")
    with pytest.raises(TrainConfigError, match="lacks"):
        common.load_checkpoint(accelerator, folder)


def test_missing_random_states_warn_loudly(checkpoint, capsys):
    accelerator, folder = checkpoint
    (folder / "random_states_0.pkl").unlink()
    common.load_checkpoint(accelerator, folder)  # the resume goes on, not exact, and says so
    assert "not an exact resume" in capsys.readouterr().err


def test_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(TrainConfigError, match="not a checkpoint-<step> folder"):
        common.resolve_checkpoint(tmp_path, str(tmp_path / "elsewhere"))


# --- datasets and data preparation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("video_id", ["../elsewhere", "/etc", "x/../../y"])
def test_clip_dataset_refuses_ids_outside_the_root(tmp_path, video_id):
    import json

    from dreamdance_core.dataset import ClipDataset, DatasetError

    (tmp_path / "dataset.json").write_text(json.dumps({"format": "dreamdance-dataset", "version": 1,
                                                       "videos": [video_id]}))
    with pytest.raises(DatasetError, match="leaves the dataset folder"):
        ClipDataset(tmp_path, num_frames=2, size=(32, 48))


def test_prepare_data_missing_transformers_model(tmp_path, capsys):
    from dreamdance_core.training import prepare_data

    code = prepare_data.cli(["convert", str(tmp_path), str(tmp_path / "ds"), "--pose_estimator", "json",
                             "--depth_estimator", f"transformers:{tmp_path / 'no_model'}"])
    err = capsys.readouterr().err
    assert code == 2 and "could not be loaded" in err and "does not exist here" in err and "Traceback" not in err


def nan_depth(video):
    """An estimator that fails on frame 1 (module:function for prepare_data)."""
    depth = np.full(video.frames.shape[:3], 0.5, np.float32)
    depth[1] = np.nan
    return depth


def test_prepare_data_refuses_nan_depth_naming_video_and_frame(tmp_path, monkeypatch, capsys):
    from dreamdance_core.estimators import VideoFrames
    from dreamdance_core.training import prepare_data

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "dance.mp4").write_bytes(b"")
    frames = np.zeros((3, 16, 8, 3), np.uint8)
    monkeypatch.setattr(prepare_data, "read_video",
                        lambda path, every=1, max_frames=None: VideoFrames(path, frames, np.arange(3), 8.0))
    pose = [{"people": [], "canvas_width": 8, "canvas_height": 16}] * 3
    estimators = {"pose": lambda video: pose, "depth": nan_depth,
                  "normal": lambda video, depth: np.dstack([np.zeros((16, 8, 2)), np.ones((16, 8, 1))])[None]
                  .repeat(3, 0).astype(np.float32)}
    done = prepare_data.convert(videos, tmp_path / "ds", estimators)
    assert done == []
    assert "video 'dance': depth frame 1 holds NaN" in capsys.readouterr().err
