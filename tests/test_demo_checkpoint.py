"""The shipped demo checkpoints: small, loadable, and still as good as their benchmark on held-out cases.

The tolerances come from the benchmark recorded in each ``demo.json`` (``bench/quality.py`` on 32 held-out clips), whose
every margin must be clear (its 95 % bootstrap interval over the clips above zero). Each test reruns those clips, and
the model's mean margin over the best mean baseline of the same clips must keep at least half of the recorded margin,
less at most 0.05 (so a lead under 0.1 may shrink to a tie). The means, not one clip: one clip's margin varies far more
(Stage 2's SSIM margin runs from -6.6 % to +12.8 % across the 32, and on the first 4 the Stage-1 depth margin had the
other sign). A regression that breaks the method (or the samplers, the loaders, the geometry conventions) falls back to
noise or baseline level and fails: Stage 1 on the normals, where the demo leads by 42 %, Stage 2 on PSNR, where it leads
by 2.4 dB (2 sampler steps instead of 8 already fail, at +0.55 dB). Stage 2's SSIM leads by only 4.5 % (interval 2.5 %
to 6.7 %), so there the test only guards what it has: noise or a broken sampler scores far below the allowed floor.
"""

from __future__ import annotations

import json

import pytest
import torch

from bench import quality
from dreamdance_core.demo import STAGE1_DIR, STAGE2_DIR, stage1_demo, stage2_demo
from dreamdance_core.loading.stage1 import load_geometry_pipeline
from dreamdance_core.loading.stage2 import load_video_pipeline
from dreamdance_core.synthetic import video_seeds

MAX_BYTES = 50 * 2**20
STAGES = {"stage1": (stage1_demo, STAGE1_DIR), "stage2": (stage2_demo, STAGE2_DIR)}
WEIGHT_FOLDERS = {
    "stage1": {"reference_unet", "denoising_unet", "pose_guider", "adapter", "vae", "image_encoder"},
    "stage2": {"controller", "controlnet", "unet", "vae", "image_encoder"},  # the last three: its own svd/
}


def load_demo(stage: str):
    read, folder = STAGES[stage]
    info = read()
    assert info is not None, f"the {stage} demo checkpoint is missing from {folder}"
    return info, json.loads((info.path / "demo.json").read_text())


@pytest.mark.parametrize("stage", STAGES)
def test_the_checkpoint_is_small_safetensors_only(stage):
    demo, _ = load_demo(stage)
    files = [p for p in demo.path.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent.name for p in weights} >= WEIGHT_FOLDERS[stage]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]


def test_both_checkpoints_together_stay_small():
    files = [p for _, folder in STAGES.values() for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < MAX_BYTES


@pytest.mark.parametrize("stage", STAGES)
def test_the_benchmark_clips_were_not_trained_on(stage):
    record = load_demo(stage)[1]
    training, bench = record["training_set"], record["benchmark"]["settings"]
    quality.check_held_out(video_seeds(bench["seed"], bench["cases"]), training["seed"], training["videos"])


def assert_keeps_margins(scores, baselines, benchmark, metrics):
    """``scores`` of the model (the mean over the benchmark's clips) keep the recorded ``benchmark`` margins within
    the module's tolerance: at least half of each, less at most 0.05."""
    live = quality.margins({**baselines, "demo": scores})["demo"]
    for metric in metrics:
        required = benchmark[metric] - max(0.5 * benchmark[metric], 0.05)
        assert live[metric] >= required, (
            f"{metric}: {scores[metric]:.4f} is only {live[metric]:+.3f} better than the best baseline "
            f"({', '.join(f'{b} {baselines[b][metric]:.4f}' for b in baselines)}); the benchmark showed "
            f"{benchmark[metric]:+.3f}, at least {required:+.3f} is required"
        )


def rerun_benchmark(record: dict, row: str, metrics, run) -> None:
    """Rerun the recorded benchmark's own clips at the demo's settings with ``run(case) -> scores`` and check the
    model's mean against the mean baselines of the same clips, with the recorded margins of ``row``."""
    bench = record["benchmark"]
    benchmark = bench["margins"][row]
    assert all(benchmark[m] > 0 for m in metrics), f"the recorded benchmark does not beat every baseline: {benchmark}"
    intervals = bench["intervals"][row]
    assert all(intervals[m][0] > 0 for m in metrics), (
        f"the recorded lead is not clear: a 95 % interval of a margin reaches zero: {intervals}"
    )
    settings = bench["settings"]
    cases = quality.held_out_cases(
        settings["cases"], settings["frames"], settings["width"], settings["height"], settings["seed"]
    )
    with torch.no_grad():
        scores = [run(case) for case in cases]
    per_case = [baselines(c) for c in cases]
    mean_baselines = {name: quality.mean_scores([b[name] for b in per_case]) for name in quality.BASELINES}
    assert_keeps_margins(quality.mean_scores(scores), mean_baselines, benchmark, metrics)


def baselines(case) -> dict:
    return {"reference repeated": quality.reference_repeated(case), "flat silhouette": quality.flat_silhouette(case)}


def test_the_stage1_demo_keeps_its_benchmark_margins():
    demo, record = load_demo("stage1")
    pipeline = load_geometry_pipeline(demo.path)
    assert not pipeline.random_weights
    bench = record["benchmark"]["settings"]
    assert (bench["steps"], tuple(bench["cfg"])) == (demo.steps, demo.guidance), (
        "the recorded benchmark did not measure the demo's own sampler settings"
    )
    settings = quality.Settings(demo.steps, demo.guidance, 1, 1.0, 1.0, seed=bench["sample_seed"])

    def run(case):
        out = quality.run_stage1(pipeline, case, settings)
        return quality.geometry_scores(out.depth, out.normal, case)

    rerun_benchmark(record, "Stage 1", quality.GEOMETRY_METRICS, run)


def test_the_stage2_demo_keeps_its_benchmark_margins():
    demo, record = load_demo("stage2")
    pipeline = load_video_pipeline(demo.path)
    assert not pipeline.random_weights
    bench = record["benchmark"]["settings"]
    assert (bench["video_steps"], bench["min_cfg"], bench["max_cfg"]) == (demo.steps, *demo.guidance), (
        "the recorded benchmark did not measure the demo's own sampler settings"
    )
    settings = quality.Settings(1, (1.0, 1.0, 1.0), demo.steps, *demo.guidance, seed=bench["sample_seed"])

    def run(case):
        return quality.video_scores(quality.run_stage2(pipeline, case, quality.true_maps(case), settings), case)

    rerun_benchmark(record, "Stage 2 (exact geometry)", quality.VIDEO_METRICS, run)
