"""Cancel latency at the largest sizes the nodes allow, through the nodes with stubbed ComfyUI modules (CPU).

    .venv/bin/python -m bench.bench_cancel [--trials 3] [--latest 20] [--cases geometry-tiny,...]

Each trial starts a node and, from another thread at a random moment between 0.5 s and ``--latest`` s after the
start, sets ComfyUI's interrupt flag (what /interrupt does); the latency is the time from that request to the
node's ``InterruptProcessingException``. Prints min / median / max latency per case and the process's resident
memory before the run, its peak, and after the cancel (exception dropped, ``gc.collect()``, ``malloc_trim``), to show
the memory is released. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import random
import statistics
import tempfile
import threading
import time

import torch

CASES = ("geometry-tiny", "geometry-demo", "animate-tiny", "animate-demo", "render-8192")


def _rss_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _node_runs(case: str, import_pack_module, render_frames: int):
    """-> (label, function that runs the node once)."""
    side = 2048
    reference = torch.rand(1, side, side, 3)
    if case.startswith("geometry"):
        from dreamdance_core.pose import sample_dance, to_pose_keypoint

        nodes = import_pack_module("nodes.geometry")
        source = "(tiny random demo)" if case == "geometry-tiny" else "(demo: synthetic mannequins)"
        (model,) = nodes.DreamDanceGeometryModelLoader().load(source, "(none)", "(none)", "fp32", False)
        pose = to_pose_keypoint(sample_dance(2, side, side))

        def run():
            return nodes.DreamDancePoseToGeometry().generate(model, reference, side, side, 25, 0, 3.5, 2.5, 3.5,
                                                             pose_keypoint=pose)

        return f"Pose to Geometry {side}x{side}, 2 frames, {source}", run
    if case.startswith("animate"):
        nodes = import_pack_module("nodes.video")
        source = "(tiny random demo)" if case == "animate-tiny" else "(demo: synthetic mannequins)"
        (model,) = nodes.DreamDanceVideoModelLoader().load(source, "(none)", "fp32", False)
        maps = torch.rand(2, side, side, 3)

        def run():
            return nodes.DreamDanceAnimate().animate(model, reference, side, side, 25, 0, 1.0, 3.0, 7, 127, 0.02, 1.0,
                                                     1.0, 1.0, 1.0, 8, pose_images=maps, depth=maps, normal=maps)

        return f"Animate {side}x{side}, 2 frames, {source}", run
    if case == "render-8192":
        from dreamdance_core.pose import sample_dance, to_pose_keypoint

        nodes = import_pack_module("nodes.pose")
        frames = render_frames
        pose = to_pose_keypoint(sample_dance(frames, 512, 768))

        def run():
            return nodes.DreamDanceRenderPose().execute(pose, 8192, 8192, "pad", True, True, True, 0.0)

        return f"Render Pose 8192x8192, {frames} frames", run
    raise ValueError(f"unknown case {case!r}; choose from {CASES}")


def _trial(run, state, latest: float, rng: random.Random) -> tuple[float | None, str, float]:
    """One run cancelled at a random moment: (latency in s or None if it finished first, outcome, peak RSS MiB)."""
    delay = rng.uniform(0.5, latest)
    requested: list[float] = []

    def request():
        requested.append(time.perf_counter())
        state.interrupt()

    timer = threading.Timer(delay, request)
    timer.start()
    peak = [0.0]
    stop = threading.Event()

    def watch():  # sample the resident size while the node runs (VmHWM would never come down between trials)
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run()
        outcome = "finished before the cancel"
        latency = None
    except Exception as error:  # noqa: BLE001 - we report what stopped it
        latency = time.perf_counter() - requested[0] if requested else None
        outcome = type(error).__name__ if requested else f"failed before the cancel: {error}"[:200]
        del error
    finally:
        timer.cancel()
        stop.set()
        watcher.join()
        state.interrupt(False)
    return latency, outcome, peak[0]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--latest", type=float, default=20.0, help="latest cancel request, seconds after the start")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render-frames", type=int, default=10, help="Render Pose frames at 8192x8192 (the node's "
                        "memory limit allows about 12 on a 24 GiB machine)")
    args = parser.parse_args(argv)
    from tests.node_stubs import fake_comfyui, import_pack_module

    rng = random.Random(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; cancel requested 0.5..{args.latest} s "
          "after the start")
    with tempfile.TemporaryDirectory() as root, fake_comfyui(root) as state:
        for case in args.cases.split(","):
            _trim()
            label, run = _node_runs(case, import_pack_module, args.render_frames)
            before = _rss_mib()
            latencies, peaks, outcomes = [], [], []
            for _ in range(args.trials):
                latency, outcome, peak = _trial(run, state, args.latest, rng)
                outcomes.append(outcome)
                peaks.append(peak)
                if latency is not None:
                    latencies.append(latency)
            _trim()
            after = _rss_mib()
            print(f"\n{label}")
            print(f"  outcomes: {', '.join(sorted(set(outcomes)))}")
            if latencies:
                print(f"  cancel latency s: min {min(latencies):.2f}  median {statistics.median(latencies):.2f}  "
                      f"max {max(latencies):.2f}  ({len(latencies)} trials)")
            print(f"  RSS MiB: before {before:.0f}, peak while running {max(peaks):.0f}, after the cancels {after:.0f}")
            del run
            _trim()


if __name__ == "__main__":
    main()
