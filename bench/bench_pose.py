"""Figures for the pose layer (CPU): io, rendering, retargeting, interpolation and smoothing speeds.

    .venv/bin/python -m bench.bench_pose [--frames 240]

Prints milliseconds per call and per frame; no assertion (speed is not a test).
"""

from __future__ import annotations

import argparse
import json
import time

from dreamdance_core.pose import (
    from_pose_keypoint,
    interpolate_keyframes,
    render_poses,
    retarget,
    sample_dance,
    smooth_poses,
    to_pose_keypoint,
)


def timed(label: str, frames: int, function, repeat: int = 3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<44} {best * 1e3:9.1f} ms   {best * 1e3 / frames:7.3f} ms/frame")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    args = parser.parse_args(argv)
    n = args.frames
    seq = sample_dance(n, 512, 768)
    reference = sample_dance(1, 256, 384)
    text = timed("to_pose_keypoint + json.dumps", n, lambda: json.dumps(to_pose_keypoint(seq)))
    print(f"{'POSE_KEYPOINT JSON size':<44} {len(text) / 1e3:9.1f} kB   {len(text) / n / 1e3:7.3f} kB/frame")
    timed("json.loads + from_pose_keypoint", n, lambda: from_pose_keypoint(json.loads(text)))
    timed("render_poses 512x768 (body, hands, face)", n, lambda: render_poses(seq))
    timed("render_poses 256x384", n, lambda: render_poses(seq, 256, 384))
    timed("retarget (per bone, root)", n, lambda: retarget(seq, reference))
    keys = list(range(0, n, 12))
    timed("interpolate_keyframes (cubic, key every 12)", n, lambda: interpolate_keyframes(seq.frames(keys), keys, n))
    timed("smooth_poses (sigma 2)", n, lambda: smooth_poses(seq, 2.0))


if __name__ == "__main__":
    main()
