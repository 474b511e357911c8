"""Stage-1 training (train/stage1.py) on tiny models and a tiny synthetic dataset, on the CPU.

Training runs in subprocesses (accelerate keeps one state per process), exactly as a user runs the script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamdance_core.models.stage1 import GeometryDiffusionModel
from dreamdance_core.synthetic import generate_dataset
from dreamdance_core.tiny import tiny_stage1

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train" / "stage1.py"
TINY = REPO / "train" / "configs" / "stage1_tiny.yaml"
# one intra-op thread: on a shared 2-core machine torch's thread pool otherwise spins (20x slower)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::FutureWarning"}


def run_stage1(*args: str, code: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``python train/stage1.py --config stage1_tiny.yaml *args`` (or ``code`` that runs the script after patching)."""
    argv = ["--config", str(TINY), *args]
    command = [sys.executable, str(SCRIPT), *argv] if code is None else [sys.executable, "-c", code, *argv]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"stage1.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def read_losses(output_dir: Path) -> list[float]:
    from json import loads

    return [loads(line)["loss"] for line in (output_dir / "logs.jsonl").read_text().splitlines()]


def state(folder: Path) -> dict[str, torch.Tensor]:
    return GeometryDiffusionModel.from_pretrained(folder).state_dict()


def group_names(model: GeometryDiffusionModel) -> dict[str, set[str]]:
    """Parameter names of each training group."""
    ids = {id(p): name for name, p in model.named_parameters()}
    return {group: {ids[id(p)] for p in params} for group, params in model.parameter_groups().items()}


@pytest.fixture
def train_modules() -> dict:
    """The training modules behind train/stage1.py (a library: no sys.path edit)."""
    from dreamdance_core.training import common, stage1

    return {"common": common, "stage1": stage1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_dataset(root, num_videos=3, num_frames=4, width=32, height=48, seed=0)
    return root


@pytest.fixture(scope="module")
def three_steps(dataset, tmp_path_factory) -> dict[int, Path]:
    """Steps 1, 2, 3 of the paper, each two optimizer steps, each starting from the previous step's weights."""
    outputs, init = {}, []
    for step in (1, 2, 3):
        out = tmp_path_factory.mktemp(f"step{step}")
        run_stage1("--train_data_dir", str(dataset), "--output_dir", str(out), "--training_step", str(step),
                   "--max_train_steps", "2", "--validation_steps", "2", *init)
        outputs[step] = out / "weights"
        init = ["--init_from", str(outputs[step])]
    return outputs


def test_help_runs_from_the_repo_root():
    result = subprocess.run([sys.executable, "train/stage1.py", "--help"], cwd=REPO, env=ENV, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--training_step" in result.stdout and "--resume_from_checkpoint" in result.stdout


@pytest.mark.parametrize("step", [1, 2, 3])
def test_each_step_trains_exactly_its_parameters(three_steps, step):
    before = tiny_stage1(0).state_dict() if step == 1 else state(three_steps[step - 1])
    after = state(three_steps[step])
    groups = group_names(tiny_stage1(0))
    trained = {1: "base", 2: "geometry", 3: "temporal"}[step]
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed, f"step {step} changed nothing"
    assert changed <= groups[trained], (
        f"step {step} changed parameters outside {trained}: {sorted(changed - groups[trained])[:5]}"
    )
    # AdamW with weight decay moves every trainable tensor; most of the group must have moved
    assert len(changed) > 0.5 * len(groups[trained])


def test_steps_write_loadable_weights_and_validation_images(three_steps):
    import cv2

    for weights in three_steps.values():
        model = GeometryDiffusionModel.from_pretrained(weights)  # strict: every key of every component
        assert sorted(p.name for p in weights.iterdir()) == sorted([*GeometryDiffusionModel.COMPONENTS, "scheduler"])
        image = cv2.imread(str(weights.parent / "validation" / "step-000002.png"))
        # rows: pose, rgb, normal, depth + ground truth rgb, normal, depth; columns: the 2 validation frames
        assert image is not None and image.shape[:2] == (7 * 48, 2 * 32)
        assert sorted(p.name for p in weights.parent.glob("checkpoint-*")) == ["checkpoint-2"]
        assert isinstance(model, GeometryDiffusionModel)


def test_training_loss_drops(dataset, tmp_path):
    run_stage1("--train_data_dir", str(dataset), "--output_dir", str(tmp_path), "--max_train_steps", "30",
               "--validation_steps", "0", "--checkpointing_steps", "0")
    losses = read_losses(tmp_path)
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, f"loss did not drop: first 5 steps {first:.3f}, last 5 {last:.3f}"


@pytest.mark.parametrize("prediction", [[], ["--prediction_type", "v_prediction", "--zero_terminal_snr", "true"]],
                         ids=["epsilon", "v_prediction"])
def test_overfitting_one_clip_drives_the_loss_near_zero(tmp_path, prediction):
    data = tmp_path / "one"
    generate_dataset(data, num_videos=1, num_frames=2, width=32, height=48, seed=1)
    run_stage1("--train_data_dir", str(data), "--output_dir", str(tmp_path / "run"), "--max_train_steps", "20",
               "--validation_steps", "0", "--checkpointing_steps", "0", "--fixed_noise", "true",
               "--reference_dropout", "0", *prediction)
    losses = read_losses(tmp_path / "run")
    assert losses[-1] < 0.02 * losses[0], f"over-fitting one clip: loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    schedule = GeometryDiffusionModel.from_pretrained(tmp_path / "run" / "weights").noise_schedule
    assert schedule["prediction_type"] == ("v_prediction" if prediction else "epsilon")  # the weights carry it


RESUME_ARGS = ("--max_train_steps", "4", "--gradient_accumulation_steps", "2", "--checkpointing_steps", "2",
               "--checkpoints_total_limit", "5", "--validation_steps", "0", "--lr_warmup_steps", "3")

# Runs train/stage1.py with safetensors' save_file patched to die half-way through writing checkpoint-4.
DIE_WHILE_SAVING = """
import os, runpy, sys
import safetensors.torch
original = safetensors.torch.save_file
def dying_save(tensors, filename, *args, **kwargs):
    if "checkpoint-4" in str(filename):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        os._exit(17)
    return original(tensors, filename, *args, **kwargs)
safetensors.torch.save_file = dying_save
sys.argv = ["train/stage1.py", *sys.argv[1:]]
runpy.run_path("train/stage1.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    run_stage1("--train_data_dir", str(dataset), "--output_dir", str(out), *RESUME_ARGS)
    return out


def assert_same_weights(a: Path, b: Path) -> None:
    state_a, state_b = state(a), state(b)
    different = [name for name in state_a if not torch.equal(state_a[name], state_b[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_resume_reaches_the_same_weights(dataset, uninterrupted, tmp_path):
    # 3 clips, batch 1, 2 micro-batches per step: epochs end mid optimizer step, the data position matters
    common = ("--train_data_dir", str(dataset), "--output_dir", str(tmp_path), *RESUME_ARGS)
    run_stage1(*common, "--max_train_steps", "3")
    assert (tmp_path / "checkpoint-3").is_dir()
    result = run_stage1(*common, "--resume_from_checkpoint", "latest")
    assert "resuming from" in result.stdout + result.stderr
    assert_same_weights(tmp_path / "weights", uninterrupted / "weights")
    assert read_losses(tmp_path)[3:] == read_losses(uninterrupted)[3:]


def test_killed_while_saving_keeps_the_previous_checkpoint(dataset, uninterrupted, tmp_path):
    common = ("--train_data_dir", str(dataset), "--output_dir", str(tmp_path), *RESUME_ARGS)
    killed = run_stage1(*common, code=DIE_WHILE_SAVING, check=False)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert not (tmp_path / "checkpoint-4").exists()  # only the unfinished checkpoint-4.tmp
    assert (tmp_path / "checkpoint-4.tmp").is_dir()
    GeometryDiffusionModel.from_pretrained(tmp_path / "checkpoint-2" / "stage1")  # intact
    run_stage1(*common, "--resume_from_checkpoint", "latest")
    assert not (tmp_path / "checkpoint-4.tmp").exists()
    assert_same_weights(tmp_path / "weights", uninterrupted / "weights")


def test_config_errors_are_clear_messages(dataset, tmp_path, train_modules):
    parse_args, error = train_modules["stage1"].parse_args, train_modules["common"].TrainConfigError
    base = ["--config", str(TINY), "--train_data_dir", "d", "--output_dir", "o"]
    with pytest.raises(error, match="--init_from"):
        parse_args([*base, "--training_step", "2"])
    with pytest.raises(error, match="multiples of 8"):
        parse_args([*base, "--width", "30"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 1.0e-4\n")
    with pytest.raises(error, match="learning_rat"):
        parse_args(["--config", str(bad), "--train_data_dir", "d", "--output_dir", "o", "--tiny", "true"])
    # on the command line: a message and exit status 2, no traceback
    result = run_stage1("--train_data_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and "dataset.json" in result.stderr and "Traceback" not in result.stderr


def test_paper_configs_match_the_table(train_modules):
    parse_args = train_modules["stage1"].parse_args

    expected = {1: 3e-5, 2: 2e-5, 3: 2e-5}
    for step, lr in expected.items():
        extra = [] if step == 1 else ["--init_from", "w"]
        args = parse_args(["--config", str(REPO / f"train/configs/stage1_step{step}.yaml"), "--train_data_dir", "d",
                           "--output_dir", "o", "--pretrained_model", "sd", "--image_encoder", "clip", *extra])
        assert ((args.training_step, args.learning_rate, args.lr_warmup_steps, args.max_train_steps)
                == (step, lr, 500, 60000))
        assert (args.width, args.height, args.num_frames) == (256, 384, 16)
    args = parse_args(["--config", str(REPO / "train/configs/stage1_step1.yaml"), "--learning_rate", "1e-5",
                       "--train_data_dir", "d", "--output_dir", "o", "--tiny", "true"])
    assert args.learning_rate == 1e-5 and args.tiny  # command line beats the config file


def test_step1_draws_target_modalities_with_the_domain_weights(train_modules):
    from diffusers import DDPMScheduler

    from dreamdance_core.tiny import tiny_clip_vision, tiny_vae

    stage1 = train_modules["stage1"]
    clips, frames = 64, 1
    names = ("pixel_values", "normal", "depth", "pose_maps")
    batch = {name: torch.rand(clips, frames, 3, 16, 16) * 2 - 1 for name in names}
    batch["reference"] = torch.rand(clips, 3, 16, 16) * 2 - 1
    helpers = (tiny_vae(), tiny_clip_vision(num_hidden_layers=1), DDPMScheduler())

    def domains(weights, seed=0):
        generator = torch.Generator().manual_seed(seed)
        inputs, _ = stage1.make_inputs(batch, *helpers, stage1.STEPS[1], 0.0, generator, weights)
        return inputs["domain"]

    assert set(domains((0.0, 0.0, 1.0)).tolist()) == {2}  # depth only
    assert set(domains((1.0, 0.0, 1.0)).tolist()) == {0, 2}  # never normals
    assert set(domains((1.0, 1.0, 1.0)).tolist()) == {0, 1, 2}
    # uniform odds keep the paper's draw, the one the shipped demo checkpoints were trained with
    expected = torch.randint(0, 3, (clips, 1), generator=torch.Generator().manual_seed(0)).flatten()
    assert torch.equal(domains((2.0, 2.0, 2.0)), expected)


def test_domain_weights_must_be_three_usable_odds(train_modules):
    parse_args, error = train_modules["stage1"].parse_args, train_modules["common"].TrainConfigError
    base = ["--config", str(TINY), "--train_data_dir", "d", "--output_dir", "o"]
    for bad in (["0", "0", "0"], ["1", "-1", "1"]):
        with pytest.raises(error, match="--domain_weights"):
            parse_args([*base, "--domain_weights", *bad])
    assert parse_args([*base, "--domain_weights", "1", "1", "3"]).domain_weights == [1.0, 1.0, 3.0]
