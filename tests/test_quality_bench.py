"""bench/quality.py on the tiny random models: every row and column, baselines equal to the metrics done by hand."""

import contextlib
import io
import json
import re

import pytest
import torch
from PIL import Image

from bench import quality
from dreamdance_core.geometry import depth_to_image
from dreamdance_core.metrics import depth_abs_rel, normal_angular_error, normal_foreground, psnr, silhouette_iou, ssim
from dreamdance_core.synthetic import render_sample, video_seeds

ARGS = ["--tiny", "--width", "32", "--height", "48", "--steps", "1", "--video-steps", "1", "--seed", "7"]


@pytest.fixture(scope="module")
def run() -> tuple[dict, str]:
    """One tiny benchmark run: (results, printed text)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        results = quality.main(ARGS)
    return results, out.getvalue()


def _table_rows(text: str) -> dict[str, list[str]]:
    """The first markdown table of ``text``: row name -> cells."""
    rows = {}
    for line in text.split("\n\n", 1)[1].split("\n\n")[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_table_has_every_row_and_column(run):
    results, text = run
    header = text.split("\n\n", 1)[1].splitlines()[0]
    assert [c.strip() for c in header.strip("|").split("|")][1:] == list(quality.METRICS)
    rows = _table_rows(text)
    expected = [
        "reference repeated", "flat silhouette", "Stage 1", "Stage 1, geometry attention off",
        "Stage 1, one CFG scale (3.5)", "Stage 2 (exact geometry)", "Stage 2, pose dropped", "Stage 2, depth dropped",
        "Stage 2, normal dropped", "Stage 1 \u2192 Stage 2",
    ]
    assert list(rows) == expected == list(results)
    for name in quality.BASELINES:  # baselines measure everything
        assert all(re.fullmatch(r"-?\d+\.\d+", c) for c in rows[name]), rows[name]
    geometry_columns = len(quality.GEOMETRY_METRICS)
    for name in expected[2:5]:
        assert (all(c != "–" for c in rows[name][:geometry_columns])
                and all(c == "–" for c in rows[name][geometry_columns:]))
    for name in expected[5:]:
        assert (all(c == "–" for c in rows[name][:geometry_columns])
                and all(c != "–" for c in rows[name][geometry_columns:]))
    assert "margin over the best baseline" in text and "TINY RANDOM MODELS" in text


def test_baseline_figures_equal_the_metrics_computed_directly(run):
    results, _ = run
    seeds = video_seeds(7, 1)[0]
    sample = render_sample(*seeds, num_frames=2, width=32, height=48)
    ref, clip = sample.reference, sample.clip
    depth, mask = torch.from_numpy(clip.depth), torch.from_numpy(clip.mask)
    normal = torch.from_numpy(clip.normal).permute(0, 3, 1, 2)
    ref_depth = depth_to_image(torch.from_numpy(ref.depth), torch.from_numpy(ref.mask)).expand(2, -1, -1, -1)
    ref_normal = torch.from_numpy(ref.normal).permute(0, 3, 1, 2).expand(2, -1, -1, -1)
    ref_rgb = torch.from_numpy(ref.rgb).permute(0, 3, 1, 2).float().div(255).expand(2, -1, -1, -1)
    rgb = torch.from_numpy(clip.rgb).permute(0, 3, 1, 2).float() / 255
    row = results["reference repeated"]
    assert row["depth AbsRel \u2193"] == pytest.approx(depth_abs_rel(ref_depth[:, 0], depth, mask), rel=1e-6)
    assert row["normal error (°) \u2193"] == pytest.approx(normal_angular_error(ref_normal, normal, mask), rel=1e-6)
    assert row["silhouette IoU \u2191"] == pytest.approx(silhouette_iou(normal_foreground(ref_normal), mask), rel=1e-6)
    assert row["PSNR (dB) \u2191"] == pytest.approx(psnr(ref_rgb, rgb), rel=1e-5)
    assert row["SSIM \u2191"] == pytest.approx(ssim(ref_rgb, rgb), rel=1e-5)


def test_held_out_seeds_that_meet_the_training_set_are_refused():
    quality.check_held_out(video_seeds(quality.HELD_OUT_SEED, 8), quality.DEFAULT_TRAIN_SEED, 64)
    with pytest.raises(quality.HeldOutError, match="character seeds"):
        quality.check_held_out(video_seeds(3, 2), 3, 10)


def test_options_that_conflict_are_refused():
    with pytest.raises(SystemExit):
        quality.parse_args(["--tiny", "--stage1", "somewhere"])
    with pytest.raises(SystemExit):
        quality.parse_args([])


def test_record_merges_results_and_margins_into_a_json_file_and_the_sheet_shows_both_stages(tmp_path):
    path, sheet = tmp_path / "demo.json", tmp_path / "sheet.png"
    path.write_text('{"width": 64}')
    with contextlib.redirect_stdout(io.StringIO()):
        results = quality.main([*ARGS, "--record", str(path), "--sheet", str(sheet)])
    record = json.loads(path.read_text())
    assert record["width"] == 64  # other keys kept
    assert record["benchmark"]["results"] == results
    assert record["benchmark"]["margins"] == quality.margins(results)
    assert record["benchmark"]["margins"]["Stage 1"].keys() == set(quality.GEOMETRY_METRICS)
    assert record["benchmark"]["wins"]["Stage 1"].keys() == set(quality.GEOMETRY_METRICS)
    # one clip: every bootstrap resample is that clip, so each interval shrinks to the margin itself
    intervals = record["benchmark"]["intervals"]
    assert intervals.keys() == record["benchmark"]["margins"].keys()
    for row, margin in record["benchmark"]["margins"].items():
        assert intervals[row].keys() == margin.keys()
        assert all(intervals[row][m] == pytest.approx([v, v]) for m, v in margin.items()), (intervals[row], margin)
    assert all(0 <= n <= 1 for row in record["benchmark"]["wins"].values() for n in row.values())
    settings = record["benchmark"]["settings"]
    assert settings["cases"] == 1 and settings["seed"] == 7
    assert (settings["steps"], settings["video_steps"], settings["min_cfg"], settings["max_cfg"]) == (1, 1, 1.0, 3.0)
    # reference, pose, then prediction above ground truth for Stage 1's RGB, normal, depth and Stage 2's video
    with Image.open(sheet) as image:
        assert image.height == 10 * 48 + 9 * 2


def test_wins_count_the_clips_where_a_model_beats_every_baseline_in_the_metrics_direction():
    depth, ssim_ = quality.GEOMETRY_METRICS[0], quality.VIDEO_METRICS[1]
    per_case = {  # depth: lower is better; SSIM: higher is better
        "reference repeated": [{depth: 0.02, ssim_: 0.70}, {depth: 0.02, ssim_: 0.70}, {depth: 0.03, ssim_: 0.60}],
        "flat silhouette": [{depth: 0.03, ssim_: 0.60}, {depth: 0.01, ssim_: 0.60}, {depth: 0.03, ssim_: 0.60}],
        "model": [{depth: 0.015, ssim_: 0.75}, {depth: 0.015, ssim_: 0.65}, {depth: 0.03, ssim_: 0.61}],
    }
    # clip 1: ahead on both; clip 2: behind the flat silhouette's depth and the reference's SSIM; clip 3: a depth tie
    # is no win, SSIM beats both
    assert quality.wins(per_case) == {"model": {depth: 1, ssim_: 2}}


def _per_case(model_offsets, rng) -> dict[str, list[dict[str, float]]]:
    """32 clips of PSNR and depth: the reference baseline varies by clip, the flat one is far behind, the model is the
    reference moved by ``model_offsets`` (per clip, in the metric's better direction)."""
    psnr_, depth = quality.VIDEO_METRICS[0], quality.GEOMETRY_METRICS[0]
    reference = [{psnr_: p, depth: d} for p, d in zip(rng.uniform(18, 24, 32), rng.uniform(0.015, 0.025, 32))]
    return {
        "reference repeated": reference,
        "flat silhouette": [{psnr_: r[psnr_] - 5, depth: r[depth] * 2} for r in reference],
        "model": [{psnr_: r[psnr_] + o, depth: r[depth] * (1 - o / 10)} for r, o in zip(reference, model_offsets)],
    }


def test_margin_intervals_hold_the_margin_and_exclude_zero_only_for_a_lead_on_most_clips():
    import numpy as np

    rng = np.random.default_rng(3)
    psnr_, depth = quality.VIDEO_METRICS[0], quality.GEOMETRY_METRICS[0]
    lead = _per_case(rng.uniform(0.2, 1.0, 32), rng)  # ahead on every clip
    noise = _per_case(np.resize([-0.8, 0.8], 32) + rng.normal(0, 0.05, 32), rng)  # ahead on half, behind on half
    for per_case, clear in ((lead, True), (noise, False)):
        margin = quality.margins({row: quality.mean_scores(s) for row, s in per_case.items()})["model"]
        intervals = quality.margin_intervals(per_case)["model"]
        for metric in (psnr_, depth):
            low, high = intervals[metric]
            assert low < margin[metric] < high
            assert (low > 0) is clear, (metric, low, high)
    # more confidence, a wider interval; the same seed, the same interval
    (low95, high95), (low50, high50) = (quality.margin_intervals(lead, c)["model"][psnr_] for c in (0.95, 0.5))
    assert low95 < low50 < high50 < high95
    assert quality.margin_intervals(lead)["model"][psnr_] == (low95, high95)
