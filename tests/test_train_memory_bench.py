"""The measuring pieces of bench/bench_train_memory.py on modules whose saved bytes and FLOPs are known by hand."""

from __future__ import annotations

import torch

from bench.bench_train_memory import SavedTensors, activations, recording_checkpoints, step_flops


def mlp() -> torch.nn.Module:
    with torch.device("meta"):
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def inputs(dtype):
    return (torch.empty(32, 8, device="meta", dtype=dtype),)


def test_saved_bytes_are_unique_storages_without_parameters():
    # Linear 1 saves its input (32x8), ReLU its output (32x16), which Linear 2 saves again; weights are not counted
    record: list = [None]
    assert activations(mlp(), inputs, record) == (32 * 8 + 32 * 16) * 2  # bf16


class Blocks(torch.nn.Module):
    """Two checkpointed blocks, as diffusers runs them with gradient checkpointing on."""

    def __init__(self):
        super().__init__()
        self.one, self.two = mlp()[:2], torch.nn.Sequential(torch.nn.Linear(16, 16, device="meta"), torch.nn.ReLU())

    def forward(self, x):
        from torch.utils.checkpoint import checkpoint

        return checkpoint(self.two, checkpoint(self.one, x, use_reentrant=False), use_reentrant=False)


def test_checkpointed_blocks_keep_only_their_inputs():
    record: list = [None]
    with recording_checkpoints(record):
        saved = activations(Blocks(), inputs, record)
    assert saved == (32 * 8 + 32 * 16) * 2  # the two blocks' inputs; nothing inside them


def test_step_flops_count_forward_and_backward():
    trained, helpers = step_flops(mlp(), inputs, {})
    forward = 2 * 32 * 8 * 16 + 2 * 32 * 16 * 4
    backward = 2 * (2 * 32 * 16 * 4) + 2 * 32 * 8 * 16  # linear 2: input and weight grads; linear 1: weight grad
    assert (trained, helpers) == (forward + backward, 0)


def test_saved_tensors_ignores_parameters():
    module = mlp()
    saved = SavedTensors(module)
    saved.add(module[0].weight)
    saved.add(module[0].weight.t())
    assert saved.bytes == 0
