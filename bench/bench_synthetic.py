"""Speed of the synthetic mannequin: render time per frame and dataset write/read time per frame.

The CPU time (this process) is the steadier figure on a shared machine.

Run: .venv/bin/python -m bench.bench_synthetic [--frames 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from dreamdance_core.dataset import read_clip
from dreamdance_core.synthetic import (
    random_character,
    random_motion,
    random_scene,
    render_frames,
    render_sample,
    write_sample,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args(argv)
    for width, height in ((64, 96), (256, 384), (512, 768)):
        character, motion, scene = random_character(0), random_motion(0), random_scene(0, width, height)
        angles = motion.frames(args.frames, fps=15.0)
        render_frames(character, scene, angles[:1])  # warm the ray cache
        start, cpu_start = time.perf_counter(), time.process_time()
        render_frames(character, scene, angles)
        per_frame = (time.perf_counter() - start) / args.frames
        cpu = (time.process_time() - cpu_start) / args.frames
        print(f"render {width}x{height}: {per_frame * 1000:.1f} ms/frame wall, {cpu * 1000:.1f} ms CPU "
              f"({1 / per_frame:.0f} frames/s)")
    sample = render_sample(0, 0, 0, args.frames, 256, 384)
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        video_dir = write_sample(root, "v", sample)
        write = (time.perf_counter() - start) / args.frames
        start = time.perf_counter()
        read_clip(video_dir)
        read = (time.perf_counter() - start) / args.frames
    print(f"dataset 256x384: write {write * 1000:.1f} ms/frame, read {read * 1000:.1f} ms/frame")


if __name__ == "__main__":
    main()
