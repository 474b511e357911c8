"""The shipped Stage-1 demo checkpoint: small, loadable, and still better than the trivial baselines on a held-out case.

The tolerances come from the benchmark recorded in ``demo.json`` (``bench/quality.py`` on held-out clips): on one
held-out clip, the model's margin over the best baseline of that same clip (measured here) may fall short of the
benchmark's margin by at most half of it where the benchmark shows the model ahead, and by at most 1.5x the deficit
where it is behind, with a floor of 0.05 either way (so a lead under 0.05, like the silhouette's, may shrink to about a
tie on one clip). A regression that breaks the method (or the sampler, the loaders, the geometry conventions) falls
back to noise or baseline level and fails on the normals, where the demo leads by 30 %.
"""

from __future__ import annotations

import json

import pytest
import torch

from bench import quality
from dreamdance_core.demo import STAGE1_DIR, stage1_demo
from dreamdance_core.loading.stage1 import load_geometry_pipeline
from dreamdance_core.synthetic import video_seeds

MAX_BYTES = 50 * 2**20


@pytest.fixture(scope="module")
def demo():
    info = stage1_demo()
    assert info is not None, f"the demo checkpoint is missing from {STAGE1_DIR}"
    return info


@pytest.fixture(scope="module")
def record(demo) -> dict:
    return json.loads((demo.path / "demo.json").read_text())


def test_the_checkpoint_is_small_safetensors_only(demo):
    files = [p for p in demo.path.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent.name for p in weights} >= {"reference_unet", "denoising_unet", "pose_guider", "adapter", "vae",
                                                 "image_encoder"}  # fmt: skip
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert sum(p.stat().st_size for p in files) < MAX_BYTES


def test_the_held_out_case_was_not_trained_on(record):
    training = record["training_set"]
    quality.check_held_out(video_seeds(quality.HELD_OUT_SEED, 1), training["seed"], training["videos"])


def test_a_held_out_case_beats_the_baselines(demo, record):
    pipeline = load_geometry_pipeline(demo.path)
    assert not pipeline.random_weights
    case = quality.held_out_cases(1, record["test_frames"], demo.width, demo.height)[0]
    settings = quality.Settings(demo.steps, demo.guidance, 1, 1.0, 1.0, seed=0)
    with torch.no_grad():
        out = quality.run_stage1(pipeline, case, settings)
    scores = quality.geometry_scores(out.depth, out.normal, case)
    baselines = {"reference repeated": quality.reference_repeated(case), "flat silhouette": quality.flat_silhouette(case)}
    live = quality.margins({**baselines, "demo": scores})["demo"]
    benchmark = record["benchmark"]["margins"]["Stage 1"]
    assert any(benchmark[m] > 0 for m in quality.GEOMETRY_METRICS), "the recorded benchmark beats no baseline"
    for metric in quality.GEOMETRY_METRICS:
        # ahead in the benchmark: keep at least half the margin; behind (depth): one clip varies more than the
        # four-clip mean, so allow 1.5x the deficit - a constant prediction or noise still fails on the normals
        slack = 0.5 if benchmark[metric] > 0 else 1.5
        required = benchmark[metric] - max(slack * abs(benchmark[metric]), 0.05)
        assert live[metric] >= required, (
            f"{metric}: {scores[metric]:.4f} is only {live[metric]:+.3f} better than the best baseline "
            f"({', '.join(f'{b} {baselines[b][metric]:.4f}' for b in baselines)}); the benchmark showed "
            f"{benchmark[metric]:+.3f}, at least {required:+.3f} is required"
        )
