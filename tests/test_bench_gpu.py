"""bench/bench_gpu.py in its CPU smoke mode (``--device cpu --tiny``): the script runs end to end on the tiny models and
prints every row, and its FLOP floor is positive and consistent - linear in the steps, twice the denoising FLOPs for
twice the frames. No timing is asserted; the GPU figures come from running the script on a CUDA machine."""

from __future__ import annotations

import re

import pytest
import torch

from bench import bench_gpu


@pytest.fixture
def keep_threads():
    """The script sets torch's CPU threads (1 on a CPU); give the rest of the session its own count back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def cells(output: str, prefix: str) -> list[str]:
    """The cells of the one table row that starts with ``prefix``."""
    rows = [line for line in output.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, f"expected one row starting {prefix!r}, got {rows}\n{output}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_the_smoke_mode_prints_every_row_with_a_positive_consistent_floor(capsys, keep_threads):
    results = bench_gpu.main(["--device", "cpu", "--tiny"])
    output = capsys.readouterr().out
    assert "FAILED" not in output and "out of memory" not in output, output
    peak = bench_gpu.H100_DENSE_BF16_TFLOPS * 1e12
    for stage, result in zip((1, 2), results):
        row = cells(output, f"| Stage {stage} | 16x16 | 4 | 2 |")
        seconds = float(row[5].removesuffix(" s"))
        total, per_step, once = (float(v) for v in re.findall(r"[\d.e+-]+", row[7]))
        floor = float(row[9].removesuffix(" s"))
        assert seconds > 0 and total > 0 and per_step > 0 and once > 0
        assert total == pytest.approx(once + 2 * per_step, rel=1e-3)  # 2 steps
        assert floor == pytest.approx(total * 1e12 / peak, rel=1e-3)
        assert float(row[10].removesuffix("x")) == pytest.approx(seconds / floor, rel=1e-2)
        assert result["flops"]["total"] == result["flops"]["once"] + 2 * result["flops"]["per_step"]
        assert re.search(r"<= [\d.]+ s/(frame|16 frames)", row[12])
        for frames in (4, 8, 16):  # the memory table: every case ran (no peak on a CPU)
            memory = cells(output, f"| Stage {stage} | {frames} |")
            assert memory[2:5] == ["n/a"] * 3 and float(memory[5]) >= 0
    assert re.search(r"^Stage 1: build .* runs [\d.]+ s$", output, re.M)


@pytest.mark.parametrize("stage", [1, 2])
def test_the_floor_is_linear_in_steps_and_doubles_with_the_frames(stage, keep_threads):
    torch.set_num_threads(1)
    size = bench_gpu.TINY_SIZES[stage]
    build, runner = ((bench_gpu.build_stage1, bench_gpu.stage1_runner) if stage == 1
                     else (bench_gpu.build_stage2, bench_gpu.stage2_runner))
    pipeline = build(True, "cpu", torch.float32)
    with torch.no_grad():
        floors = {frames: bench_gpu.flop_floor(runner(pipeline, size, frames), steps=3) for frames in (2, 4)}
        three_steps = bench_gpu.counted_flops(lambda: runner(pipeline, size, 2)(3))
    assert three_steps == floors[2]["total"]  # every step costs the same: the 1- and 2-step counts extrapolate
    # per step: the denoiser on twice the samples; temporal attention (quadratic in the frames) adds a little, the
    # per-batch time embeddings take a little off
    assert 1.95 <= floors[4]["per_step"] / floors[2]["per_step"] < 2.1
    assert floors[4]["once"] > floors[2]["once"] > 0  # reference encoding once, decoding per frame
