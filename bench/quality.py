"""Quality of Stage 1 and Stage 2 on held-out synthetic mannequins, against exact ground truth and trivial baselines.

Prints markdown tables - the mean scores, each model row's margin over the best baseline with its 95 % paired bootstrap
interval over the clips, and on how many clips it beats both baselines (a mean margin can come from one clip) - with a
row per method and a column per metric (:mod:`dreamdance_core.metrics`):

* Stage 1 (geometry): depth AbsRel after a per-frame scale-and-shift fit (lower is better), normal mean angular
  error in degrees (lower), silhouette IoU of the normal image's foreground against the true mask (higher).
* Stage 2 (video): PSNR and SSIM of the frames against the exact render (higher). LPIPS is not reported: no package
  in the registries ships its backbone weights (they download from the internet at first use).

Rows:

* baselines, measured in the same run: ``reference repeated`` (the reference frame's own exact depth, normal and
  image, for every frame) and ``flat silhouette`` (the driving skeleton drawn thick as a mask: constant depth, a
  camera-facing normal; for the video, the mask filled with the reference's mean foreground colour over the
  reference's background, estimated row by row: the synthetic backgrounds are vertical gradients);
* a Stage-1 model and its ablations: geometry attention off, MCFG replaced by one scale for every domain (the RGB
  scale, what ordinary CFG would use);
* a Stage-2 model given the exact depth and normal maps, and its ablations: each control modality replaced by the
  black ("zero") image that robust-conditioning training uses; with both stages, Stage 2 on Stage 1's geometry.

Held-out cases: characters, motions and scenes come from :func:`dreamdance_core.synthetic.video_seeds` with the
master seed ``HELD_OUT_SEED`` (``--seed``); a training set made by ``generate_dataset(..., seed=S)`` uses
``video_seeds(S, n)``. Before anything runs, the held-out character and motion seeds are checked against the
training master seed and video count (``--train-seed``, ``--train-videos``): the run stops if any is shared.

    .venv/bin/python -m bench.quality --tiny                                # tiny random models: plumbing, < 1 min
    .venv/bin/python -m bench.quality --stage1 dreamdance_core/demo/stage1  # a Stage-1 weights folder
    .venv/bin/python -m bench.quality --stage1 <folder> --stage2 <folder> --cases 8 --frames 8
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from dreamdance_core.geometry import depth_to_image
from dreamdance_core.media import from_uint8
from dreamdance_core.metrics import (
    depth_abs_rel,
    normal_angular_error,
    normal_foreground,
    psnr,
    silhouette_iou,
    ssim,
)
from dreamdance_core.pose import PoseSequence, RenderStyle, render_poses
from dreamdance_core.synthetic import render_sample, video_seeds

HELD_OUT_SEED = 90_210
DEFAULT_TRAIN_SEED, DEFAULT_TRAIN_VIDEOS = 0, 800  # the shipped demo's training set (dreamdance_core/demo)
GEOMETRY_METRICS = ("depth AbsRel \u2193", "normal error (°) \u2193", "silhouette IoU \u2191")
VIDEO_METRICS = ("PSNR (dB) \u2191", "SSIM \u2191")
METRICS = GEOMETRY_METRICS + VIDEO_METRICS
BASELINES = ("reference repeated", "flat silhouette")
LOWER_IS_BETTER = {name: name.endswith("\u2193") for name in METRICS}
# 32 clips: on 4, one clip's margin moved the mean past a baseline (the demo's depth lost on the first 4 of these 32,
# the only 4 of 8 such groups it lost); 32 take ~6 min with both demos and every ablation
MODEL_DEFAULTS = dict(cases=32, frames=4, steps=20, video_steps=20)
TINY_DEFAULTS = dict(cases=1, frames=2, steps=2, video_steps=2)  # the tiny models show plumbing: keep it under 1 min

Scores = dict[str, float]


class HeldOutError(ValueError):
    """Held-out cases that share a character or motion with the training set."""


@dataclass
class Case:
    """One held-out clip. Images are core images ``[F, 3, H, W]`` in -1..1; ``depth`` is metric ``[F, H, W]``."""

    seeds: tuple[int, int, int]
    reference: torch.Tensor  # [1, 3, H, W]
    reference_depth: torch.Tensor  # depth image [1, 3, H, W]
    reference_normal: torch.Tensor  # [1, 3, H, W]
    reference_mask: torch.Tensor  # [1, H, W] bool
    poses: torch.Tensor  # rendered skeletons [F, 3, H, W]
    skeleton_mask: torch.Tensor  # thick skeleton [F, H, W] bool
    rgb: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    mask: torch.Tensor  # [F, H, W] bool

    @property
    def depth_image(self) -> torch.Tensor:
        return depth_to_image(self.depth, self.mask)


# --- held-out cases ---------------------------------------------------------------------------------------------------


def check_held_out(held_out: Sequence[tuple[int, int, int]], train_seed: int, train_videos: int) -> None:
    """Raise :class:`HeldOutError` if a held-out character or motion seed occurs in ``video_seeds(train_seed, n)``."""
    training = video_seeds(train_seed, train_videos)
    for index, name in ((0, "character"), (1, "motion")):
        shared = {s[index] for s in held_out} & {s[index] for s in training}
        if shared:
            raise HeldOutError(
                f"held-out {name} seeds {sorted(shared)} also occur in the training set (master seed {train_seed}, "
                f"{train_videos} videos); pick another --seed"
            )


def skeleton_images(keypoints: np.ndarray, width: int, height: int, style: RenderStyle | None = None) -> np.ndarray:
    """OpenPose-18 pixel keypoints ``[F, 18, 3]`` -> rendered skeletons ``uint8 [F, H, W, 3]`` (as in training)."""
    sequence = PoseSequence.empty(len(keypoints), 1, (width, height)).replace(
        body=keypoints[:, None].astype(np.float64)
    )
    return render_poses(sequence, width, height, style or RenderStyle())


def make_case(seeds: tuple[int, int, int], num_frames: int, width: int, height: int) -> Case:
    """Render a held-out clip and its reference frame with exact ground truth."""
    sample = render_sample(*seeds, num_frames=num_frames, width=width, height=height)
    ref, clip = sample.reference, sample.clip
    thick = max(2, min(width, height) // 16)
    skeleton = skeleton_images(clip.keypoints, width, height, RenderStyle(stick_width=thick, joint_radius=thick))

    def normals(frames) -> torch.Tensor:
        return torch.from_numpy(frames.normal).permute(0, 3, 1, 2).contiguous()

    return Case(
        seeds=seeds,
        reference=from_uint8(ref.rgb),
        reference_depth=depth_to_image(torch.from_numpy(ref.depth), torch.from_numpy(ref.mask)),
        reference_normal=normals(ref),
        reference_mask=torch.from_numpy(ref.mask),
        poses=from_uint8(skeleton_images(clip.keypoints, width, height)),
        skeleton_mask=torch.from_numpy(skeleton.any(-1)),
        rgb=from_uint8(clip.rgb),
        depth=torch.from_numpy(clip.depth),
        normal=normals(clip),
        mask=torch.from_numpy(clip.mask),
    )


def held_out_cases(num_cases: int, num_frames: int, width: int, height: int, seed: int = HELD_OUT_SEED) -> list[Case]:
    return [make_case(s, num_frames, width, height) for s in video_seeds(seed, num_cases)]


# --- scores -----------------------------------------------------------------------------------------------------------


def geometry_scores(depth_image: torch.Tensor, normal_image: torch.Tensor, case: Case) -> Scores:
    """Stage-1 metrics of predicted depth and normal images ``[F, 3, H, W]`` against the case's ground truth."""
    return {
        GEOMETRY_METRICS[0]: depth_abs_rel(depth_image.mean(1), case.depth, case.mask),
        GEOMETRY_METRICS[1]: normal_angular_error(normal_image, case.normal, case.mask),
        GEOMETRY_METRICS[2]: silhouette_iou(normal_foreground(normal_image), case.mask),
    }


def video_scores(frames: torch.Tensor, case: Case) -> Scores:
    """Stage-2 metrics of predicted frames ``[F, 3, H, W]`` in -1..1 against the exact render."""
    predicted, target = (frames.float().cpu() + 1) / 2, (case.rgb + 1) / 2
    return {VIDEO_METRICS[0]: psnr(predicted, target), VIDEO_METRICS[1]: ssim(predicted, target)}


def mean_scores(per_case: Sequence[Scores]) -> Scores:
    return {name: float(np.mean([s[name] for s in per_case])) for name in per_case[0]}


# --- baselines --------------------------------------------------------------------------------------------------------


def reference_repeated(case: Case) -> Scores:
    """The reference frame's exact depth, normal and image, repeated for every frame."""
    frames = case.rgb.shape[0]
    depth, normal, image = (
        x.expand(frames, -1, -1, -1) for x in (case.reference_depth, case.reference_normal, case.reference)
    )
    return {**geometry_scores(depth, normal, case), **video_scores(image, case)}


def reference_background(case: Case) -> torch.Tensor:
    """The reference's background ``[3, H, W]``: per row, the mean of its background pixels (vertical gradient)."""
    background = ~case.reference_mask[0]  # [H, W]
    image = case.reference[0]
    rows = (image * background).sum(-1) / background.sum(-1).clamp_min(1)  # [3, H]
    return rows[..., None].expand_as(image)


def flat_silhouette(case: Case) -> Scores:
    """The thick driving skeleton as a flat shape: constant depth, camera-facing normals, mean foreground colour."""
    mask = case.skeleton_mask[:, None]  # [F, 1, H, W]
    depth = torch.where(mask, 1.0, -1.0).expand(-1, 3, -1, -1)
    normal = torch.where(mask, torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1), torch.zeros(1, 3, 1, 1))
    colour = case.reference[0][:, case.reference_mask[0]].mean(1).view(1, 3, 1, 1)
    frames = torch.where(mask, colour, reference_background(case)[None])
    return {**geometry_scores(depth, normal, case), **video_scores(frames, case)}


# --- models -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Sampler settings of the model rows: Stage-1 steps and per-domain CFG, Stage-2 steps and CFG range, noise seed."""

    steps: int
    guidance: tuple[float, float, float]
    video_steps: int
    min_cfg: float
    max_cfg: float
    seed: int


def run_stage1(geometry, case: Case, settings: Settings, guidance: Sequence[float] | None = None):
    from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry

    options = Stage1Options(steps=settings.steps, guidance=tuple(guidance or settings.guidance), seed=settings.seed)
    return sample_geometry(geometry, case.reference, case.poses, options)


def stage1_variants(geometry, settings: Settings) -> dict[str, Callable[[Case], object]]:
    """Row name -> function running that Stage-1 variant on a case (returns a ``GeometryOutput``)."""

    def without_geometry_attention(case: Case):
        geometry.model.use_geometry_attention = False
        try:
            return run_stage1(geometry, case, settings)
        finally:
            geometry.model.use_geometry_attention = True

    one_scale = (settings.guidance[0],) * 3
    return {
        "Stage 1": lambda case: run_stage1(geometry, case, settings),
        "Stage 1, geometry attention off": without_geometry_attention,
        f"Stage 1, one CFG scale ({one_scale[0]:g})": lambda case: run_stage1(geometry, case, settings, one_scale),
    }


def run_stage2(video, case: Case, maps: dict[str, torch.Tensor], settings: Settings) -> torch.Tensor:
    from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2

    frames, _, height, width = case.rgb.shape
    options = Stage2Options(
        width=width, height=height, num_frames=frames, steps=settings.video_steps, min_cfg=settings.min_cfg,
        max_cfg=settings.max_cfg, seed=settings.seed,
    )
    return sample_stage2(video, case.reference, Stage2Inputs(maps), options)


def true_maps(case: Case) -> dict[str, torch.Tensor]:
    return {"pose": case.poses, "depth": case.depth_image, "normal": case.normal}


def stage2_variants(video, settings: Settings) -> dict[str, Callable[[Case], torch.Tensor]]:
    """Row name -> function running that Stage-2 variant (exact geometry, or one modality dropped) on a case."""

    def dropped(name: str) -> Callable[[Case], torch.Tensor]:
        def run(case: Case) -> torch.Tensor:
            maps = true_maps(case)
            maps[name] = torch.full_like(maps[name], -1.0)
            return run_stage2(video, case, maps, settings)

        return run

    rows = {"Stage 2 (exact geometry)": lambda case: run_stage2(video, case, true_maps(case), settings)}
    rows.update({f"Stage 2, {name} dropped": dropped(name) for name in video.controller.modalities})
    return rows


# --- the benchmark ----------------------------------------------------------------------------------------------------


def run_per_case(cases: Sequence[Case], settings: Settings, geometry=None, video=None) -> dict[str, list[Scores]]:
    """Row name -> the scores of each case, in order: baselines always, then whichever models are given."""
    per_case: dict[str, list[Scores]] = {name: [] for name in BASELINES}
    stage1 = stage1_variants(geometry, settings) if geometry is not None else {}
    stage2 = stage2_variants(video, settings) if video is not None else {}
    for case in cases:
        per_case["reference repeated"].append(reference_repeated(case))
        per_case["flat silhouette"].append(flat_silhouette(case))
        outputs = {}
        for name, variant in stage1.items():
            outputs[name] = variant(case)
            per_case.setdefault(name, []).append(geometry_scores(outputs[name].depth, outputs[name].normal, case))
        for name, variant in stage2.items():
            per_case.setdefault(name, []).append(video_scores(variant(case), case))
        if geometry is not None and video is not None:
            maps = {"pose": case.poses, "depth": outputs["Stage 1"].depth, "normal": outputs["Stage 1"].normal}
            per_case.setdefault("Stage 1 \u2192 Stage 2", []).append(
                video_scores(run_stage2(video, case, maps, settings), case)
            )
    return per_case


def wins(per_case: dict[str, list[Scores]]) -> dict[str, dict[str, int]]:
    """Per model row and metric: on how many cases the row beats every baseline of the same case (a mean margin can
    come from one clip; this says whether it holds clip by clip)."""
    out = {}
    for row, scores in per_case.items():
        if row in BASELINES:
            continue
        out[row] = {}
        for metric in scores[0]:
            sign = -1.0 if LOWER_IS_BETTER[metric] else 1.0
            out[row][metric] = sum(
                all(sign * (s[metric] - per_case[b][i][metric]) > 0 for b in BASELINES) for i, s in enumerate(scores)
            )
    return out


def margins(results: dict[str, Scores]) -> dict[str, Scores]:
    """Per model row and metric: how much better than the best baseline (positive = better; relative for the error
    metrics and IoU/SSIM: ``(baseline - model) / baseline`` for errors; dB difference for PSNR)."""
    out = {}
    for row, scores in results.items():
        if row in BASELINES:
            continue
        out[row] = {}
        for metric, value in scores.items():
            baseline = [results[b][metric] for b in BASELINES]
            if LOWER_IS_BETTER[metric]:
                best = min(baseline)
                out[row][metric] = (best - value) / best
            elif metric == VIDEO_METRICS[0]:
                out[row][metric] = value - max(baseline)
            else:
                best = max(baseline)
                out[row][metric] = (value - best) / abs(best)
    return out


def margin_intervals(
    per_case: dict[str, list[Scores]], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per model row and metric: a paired bootstrap interval of :func:`margins` over the clips. Each resample draws
    clips with replacement, the same clips for every row, and takes the margins of the resampled means (the best
    baseline chosen again in each); the interval holds the central ``confidence`` of those margins. A lower end above
    zero says the lead is not the luck of which clips were drawn."""
    rows = {row: {m: np.array([s[m] for s in scores]) for m in scores[0]} for row, scores in per_case.items()}
    cases = len(next(iter(per_case.values())))
    draws = np.random.default_rng(seed).integers(0, cases, size=(resamples, cases))
    means = {row: {m: v[draws].mean(1) for m, v in metrics.items()} for row, metrics in rows.items()}
    samples = [margins({row: {m: float(v[i]) for m, v in metrics.items()} for row, metrics in means.items()})
               for i in range(resamples)]
    tail = (1 - confidence) / 2 * 100
    return {
        row: {m: tuple(float(x) for x in np.percentile([s[row][m] for s in samples], [tail, 100 - tail])) for m in ms}
        for row, ms in samples[0].items()
    }


def format_table(results: dict[str, Scores]) -> str:
    """Markdown table: one row per method, one column per metric (``–`` where a row does not measure it; counts as
    integers, intervals as ``low … high``, depth errors to 4 decimals, the rest to 3)."""

    def cell(value: float | int | None, metric: str) -> str:
        if value is None:
            return "–"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, tuple):
            return " … ".join(cell(v, metric) for v in value)
        return f"{value:.4f}" if "AbsRel" in metric else f"{value:.3f}"

    lines = ["| method | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for row, scores in results.items():
        lines.append(f"| {row} | " + " | ".join(cell(scores.get(m), m) for m in METRICS) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models of both stages (plumbing check)")
    parser.add_argument("--stage1", help="DreamDance Stage-1 weights folder (with its own vae/ and image_encoder/)")
    parser.add_argument("--stage2", help="DreamDance Stage-2 weights folder (with its own svd/)")
    parser.add_argument("--cases", type=int, help="held-out clips (default 32; --tiny: 1)")
    parser.add_argument("--frames", type=int, help="frames per clip (default 4; --tiny: 2)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--steps", type=int, help="Stage-1 denoising steps (default 20; --tiny: 2)")
    parser.add_argument("--cfg", type=float, nargs=3, default=(3.5, 2.5, 3.5), help="Stage-1 CFG: rgb normal depth")
    parser.add_argument("--video-steps", type=int, help="Stage-2 denoising steps (default 20; --tiny: 2)")
    parser.add_argument("--min-cfg", type=float, default=1.0)
    parser.add_argument("--max-cfg", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="master seed of the held-out cases")
    parser.add_argument("--sample-seed", type=int, default=0, help="noise seed of the samplers")
    parser.add_argument("--train-seed", type=int, default=DEFAULT_TRAIN_SEED, help="training set's master seed")
    parser.add_argument("--train-videos", type=int, default=DEFAULT_TRAIN_VIDEOS, help="training set's video count")
    parser.add_argument("--sheet", help="PNG file for a contact sheet of the first held-out clip: reference, "
                        "pose, then Stage 1's RGB / normal / depth and Stage 2's video (on the exact geometry) each "
                        "above the ground truth")
    parser.add_argument("--record", help="JSON file to store the results and margins in (key 'benchmark'; other keys "
                        "kept), e.g. a demo checkpoint's demo.json")
    args = parser.parse_args(argv)
    if args.tiny and (args.stage1 or args.stage2):
        parser.error("--tiny runs the tiny random models; leave out --stage1/--stage2, or drop --tiny")
    if not (args.tiny or args.stage1 or args.stage2):
        parser.error("nothing to measure but the baselines: give --stage1 and/or --stage2 weights folders, or --tiny")
    for name, value in (TINY_DEFAULTS if args.tiny else MODEL_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def load_models(args: argparse.Namespace):
    """(geometry pipeline or None, video pipeline or None) as the options ask."""
    from dreamdance_core.sources import TINY, WEIGHTS, geometry_pipeline, video_pipeline

    source, seed = (TINY if args.tiny else WEIGHTS), args.sample_seed
    geometry = geometry_pipeline(source, args.stage1, seed=seed) if args.tiny or args.stage1 else None
    video = video_pipeline(source, args.stage2, seed=seed) if args.tiny or args.stage2 else None
    return geometry, video


def main(argv: Sequence[str] | None = None) -> dict[str, Scores]:
    args = parse_args(argv)
    check_held_out(video_seeds(args.seed, args.cases), args.train_seed, args.train_videos)
    started = time.perf_counter()
    cases = held_out_cases(args.cases, args.frames, args.width, args.height, args.seed)
    settings = Settings(args.steps, tuple(args.cfg), args.video_steps, args.min_cfg, args.max_cfg, args.sample_seed)
    geometry, video = load_models(args)
    per_case = run_per_case(cases, settings, geometry, video)
    results = {name: mean_scores(scores) for name, scores in per_case.items()}
    print(f"{args.cases} held-out clips (master seed {args.seed}) x {args.frames} frames at {args.width}x{args.height}"
          f"{' - TINY RANDOM MODELS: plumbing only' if args.tiny else ''}; {time.perf_counter() - started:.1f} s\n")
    print(format_table(results))
    model_margins, model_wins = margins(results), wins(per_case)
    intervals = margin_intervals(per_case) if model_margins else {}
    if model_margins:
        print("\nmargin over the best baseline (errors and IoU/SSIM: relative; PSNR: dB; positive = better)\n")
        print(format_table(model_margins))
        print("\nits 95 % interval (paired bootstrap over the clips, 2000 resamples; lower end > 0: a clear lead)\n")
        print(format_table(intervals))
        print(f"\nclips (of {args.cases}) on which the model beats both baselines\n")
        print(format_table(model_wins))
    if args.record:
        write_record(args.record, args, results, model_margins, model_wins, intervals)
    if args.sheet:
        geometry_out = run_stage1(geometry, cases[0], settings) if geometry is not None else None
        video_out = run_stage2(video, cases[0], true_maps(cases[0]), settings) if video is not None else None
        write_sheet(args.sheet, cases[0], geometry_out, video_out)
    return results


def write_sheet(path: str, case: Case, geometry=None, video: torch.Tensor | None = None) -> None:
    """Contact sheet of one case: reference, pose, then predicted / true rows: Stage 1's RGB, normal and depth
    (``geometry``: its output), Stage 2's video (``video``: frames)."""
    from dreamdance_core.media import contact_sheet, save_image, to_uint8

    rows, names = [case.reference, case.poses], []
    if geometry is not None:
        rows += [geometry.rgb, case.rgb, geometry.normal, case.normal, geometry.depth, case.depth_image]
        names += ["Stage 1 RGB", "normal", "depth"]
    if video is not None:
        rows += [video, case.rgb]
        names += ["Stage 2 video"]
    save_image(contact_sheet([to_uint8(row.float().cpu()) for row in rows]), path)
    print(f"wrote {path} (rows: reference, pose, then each above the ground truth: {', '.join(names)})")


def write_record(
    path: str, args: argparse.Namespace, results: dict[str, Scores], model_margins: dict[str, Scores],
    model_wins: dict[str, dict[str, int]], intervals: dict[str, dict[str, tuple[float, float]]],
):
    """Merge ``{"benchmark": {settings, results, margins, intervals, wins}}`` into the JSON file at ``path`` (created if
    missing)."""
    import json
    from pathlib import Path

    path = Path(path)
    record = json.loads(path.read_text()) if path.is_file() else {}
    keys = ("cases", "frames", "width", "height", "steps", "cfg", "video_steps", "min_cfg", "max_cfg", "seed",
            "sample_seed")
    settings = {k: getattr(args, k) for k in keys}
    record["benchmark"] = {
        "settings": settings, "results": results, "margins": model_margins, "intervals": intervals, "wins": model_wins,
    }
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"\nrecorded in {path}")


if __name__ == "__main__":
    main()
