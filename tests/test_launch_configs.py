"""The accelerate launch configs of train/accelerate/ (one GPU, DDP, FSDP, DeepSpeed ZeRO-2), the run-wide options
behind them (bf16, gradient checkpointing, the 8-bit optimizer) and real launches of those that run on a CPU.

On a CPU: ``one_gpu.yaml`` runs with ``--cpu`` (bf16 autocast included) and ``ddp.yaml`` runs as two processes over
gloo (``ACCELERATE_USE_CPU=1``: accelerate's own ``--cpu`` flag falls back to one process). FSDP and DeepSpeed cannot:
accelerate 1.16 turns a run into FSDP only on accelerator devices (a CPU run with the FSDP config becomes plain
MULTI_CPU data parallel), and DeepSpeed needs the deepspeed package and CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dreamdance_core.synthetic import generate_dataset
from dreamdance_core.training.common import TrainConfigError, optimizer_class

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "train" / "accelerate"
TINY = ["--tiny", "true", "--width", "32", "--height", "48", "--num_frames", "2", "--learning_rate", "1e-3",
        "--lr_warmup_steps", "0", "--max_train_steps", "2", "--validation_steps", "0", "--checkpointing_steps", "0",
        "--gradient_checkpointing", "true", "--seed", "0"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("launch") / "data"
    generate_dataset(root, num_videos=3, num_frames=4, width=32, height=48, seed=0)
    return root


def launch(config: str, launcher: list[str], script: str, script_args: list[str], out: Path, data: Path,
           env: dict | None = None) -> list[dict]:
    """``accelerate launch --config_file train/accelerate/<config> <launcher> train/<script> <tiny run>``; its logs."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config), *launcher,
               str(ROOT / "train" / script), *TINY, *script_args, "--train_data_dir", str(data),
               "--output_dir", str(out)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]


def test_the_configs_are_accelerate_configs():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {name: load_config_from_file(str(CONFIGS / f"{name}.yaml")) for name in
             ("one_gpu", "ddp", "fsdp", "deepspeed_zero2")}
    assert {n: c.distributed_type.value for n, c in kinds.items()} == {
        "one_gpu": "NO", "ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED"}
    assert {c.mixed_precision for c in kinds.values()} == {"bf16"}
    assert kinds["fsdp"].fsdp_config["fsdp_version"] == 2
    assert kinds["deepspeed_zero2"].deepspeed_config["zero_stage"] == 2


def test_one_gpu_config_runs_bf16_with_checkpointing_on_a_cpu(dataset, tmp_path):
    logs = launch("one_gpu.yaml", ["--cpu"], "stage1.py", [], tmp_path / "run", dataset)
    assert [r["step"] for r in logs] == [1, 2]
    assert {(r["processes"], r["distributed"], r["mixed_precision"]) for r in logs} == {(1, "NO", "bf16")}
    assert all(0 < r["loss"] < 10 for r in logs)
    assert (tmp_path / "run" / "weights" / "denoising_unet" / "config.json").is_file()


def test_ddp_config_runs_two_cpu_processes(dataset, tmp_path):
    logs = launch("ddp.yaml", ["--num_processes", "2", "--mixed_precision", "no"], "stage2.py",
                  ["--controller_channels", "8", "16", "--attention_heads", "4"], tmp_path / "run", dataset,
                  env={"ACCELERATE_USE_CPU": "1"})  # accelerate's --cpu would run a single process
    assert [r["step"] for r in logs] == [1, 2]  # one writer (the main process) for the whole group
    assert {(r["processes"], r["distributed"]) for r in logs} == {(2, "MULTI_CPU")}
    assert (tmp_path / "run" / "weights" / "controlnet").is_dir()


def test_8bit_adam_is_bitsandbytes_or_a_clear_error(monkeypatch):
    import torch

    assert optimizer_class(argparse.Namespace(use_8bit_adam=False)) is torch.optim.AdamW
    try:
        import bitsandbytes
    except ImportError:
        bitsandbytes = None
    if bitsandbytes is not None:
        assert optimizer_class(argparse.Namespace(use_8bit_adam=True)) is bitsandbytes.optim.AdamW8bit
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(TrainConfigError, match="--use_8bit_adam needs bitsandbytes.*pip install bitsandbytes"):
        optimizer_class(argparse.Namespace(use_8bit_adam=True))
