"""Training speed and memory of the tiny training configs on this machine (CPU unless a GPU is visible).

Runs ``train/stage1.py --config train/configs/stage1_tiny.yaml`` for each paper step, then ``train/stage2.py`` with
``stage2_tiny.yaml``, on a synthetic dataset and prints, per run, the steady-state steps per second (first step
excluded) and the peak memory that the script logs in ``logs.jsonl`` (resident set size on a CPU, CUDA allocator peak
on a GPU), plus the first and last losses.

    python -m bench.bench_train [--steps 20] [--width 64 --height 96 --num_frames 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dreamdance_core.synthetic import generate_dataset

REPO = Path(__file__).resolve().parents[1]


def run(stage: int, extra: list[str], data: Path, out: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, str(REPO / "train" / f"stage{stage}.py"),
        "--config", str(REPO / f"train/configs/stage{stage}_tiny.yaml"), *extra,
        "--train_data_dir", str(data), "--output_dir", str(out),
        "--max_train_steps", str(args.steps), "--width", str(args.width), "--height", str(args.height),
        "--num_frames", str(args.num_frames), "--validation_steps", "0", "--checkpointing_steps", "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    # steps_per_second is cumulative from the start of the loop: steady state = (n - 1) / (t_n - t_1)
    t_first, t_last = 1 / records[0]["steps_per_second"], len(records) / records[-1]["steps_per_second"]
    return {
        "steps_per_second": (len(records) - 1) / (t_last - t_first),
        "peak_memory_mb": records[-1]["peak_memory_mb"],
        "first_loss": records[0]["loss"],
        "last_loss": records[-1]["loss"],
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--num_frames", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_dataset(tmp / "data", num_videos=4, num_frames=args.num_frames * 2, width=args.width,
                         height=args.height, seed=0)
        print(f"tiny models, {args.width}x{args.height}, {args.num_frames} frames, batch 1, {args.steps} steps, "
              f"{args.threads} thread(s)")
        runs = [
            ("stage 1 step 1", 1, ["--training_step", "1"]),
            ("stage 1 step 2", 1, ["--training_step", "2", "--init_from", str(tmp / "stage 1 step 1" / "weights")]),
            ("stage 1 step 3", 1, ["--training_step", "3", "--init_from", str(tmp / "stage 1 step 2" / "weights")]),
            ("stage 2", 2, []),
        ]
        for name, stage, extra in runs:
            r = run(stage, extra, tmp / "data", tmp / name, args)
            print(f"{name}: {r['steps_per_second']:.2f} steps/s, peak memory {r['peak_memory_mb']:.0f} MB, "
                  f"loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}, wall {r['wall_s']:.1f} s (incl. start-up)")


if __name__ == "__main__":
    main()
