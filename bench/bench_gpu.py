"""Inference speed and memory of both stages at the paper's sizes on one CUDA GPU, against a FLOP floor (issue 31).

On a GPU machine, from the repository root, in the virtual environment made there by ``scripts/setup.sh`` (it needs a
CUDA build of torch; the script refuses to run on ``--device cuda`` without one)::

    .venv/bin/python -m bench.bench_gpu                    # bf16, both stages (a few minutes on an H100)
    .venv/bin/python -m bench.bench_gpu --compile          # the same with torch.compile'd denoisers (compiles first)
    .venv/bin/python -m bench.bench_gpu --device cpu --tiny  # smoke check of the script: tiny models, small sizes

Models: the real architectures with random weights, built from the configs shipped in ``dreamdance_core/configs``
directly on the device (as :mod:`bench.bench_train_memory` builds them): Stage 1 = SD1.5-layout
:class:`~dreamdance_core.models.stage1.GeometryDiffusionModel` (reference UNet, denoising UNet, pose guider, geometry
and temporal attention) + SD1.5 VAE + CLIP ViT-L/14 image encoder; Stage 2 = SVD-XT 1.1 UNet + temporal VAE + CLIP
ViT-H/14 (:func:`~dreamdance_core.loading.svd.build_svd_models`) + the cross-domain controller + the SVD ControlNet.
``--tiny``: the tiny models of :mod:`dreamdance_core.tiny` at 16x16, 4 frames, 2 steps, memory at 4/8/16 frames in
windows of 4 (a CPU smoke check of the script in seconds; its figures mean nothing).
Inputs (reference image, pose maps, control maps) are random and stay on the CPU, as the nodes hand them over; the
samplers move them to the device per window.

Printed, asserted nothing:

* speed: Stage 1 at 256x384, 16 frames, 25 DDIM steps, multi-domain CFG (conditional and unconditional branches of
  the 3 domains in one batch), seconds per frame; Stage 2 at 512x768, 16 frames, 25 Euler steps, CFG (2 branches),
  controller + ControlNet on, seconds per video. Median of ``--repeats`` runs of the whole sampler call (reference
  encoding, denoising, VAE decoding), after one warm-up run of ``--warmup-steps`` steps at the same shapes (CUDA
  context, cuDNN, allocator; with ``--compile``, the compilation); ``torch.cuda.synchronize()`` around each timing.
  Beside them, the issue's targets: Stage 1 <= 0.12 s/frame, Stage 2 <= 4.5 s per 16 frames;
* the FLOP floor of each timed run: the FLOPs of the same sampler call at the same size with 1 and with 2 steps
  (eager), counted with the formulas of ``torch.utils.flop_counter`` (what its ``FlopCounterMode`` counts:
  :class:`FlopCount`), so per step = F(2) - F(1) and once = F(1) - per step (CLIP, VAE encode and decode, reference
  UNet); floor = (once + steps x per step) / peak, the peak ``--peak-tflops`` (default 989: an H100 SXM's dense bf16
  tensor-core peak); each time is printed as a multiple of its floor and as the floor's fraction of it (model-FLOPs
  utilisation). Matrix products, convolutions and attention are counted (on CPU the flash kernel
  ``_scaled_dot_product_flash_attention_for_cpu`` is registered here with torch's own SDPA formula); element-wise
  work is not;
* peak device memory: ``torch.cuda.max_memory_allocated()`` of one sampler call at 16, 64 and 256 frames with windows
  of 16 frames (overlap 4) and ``--memory-steps`` steps (memory does not depend on the step count), the peak
  statistics reset and the cache emptied before each; beside it the weights resident before the call and the output
  frames the call returns on the device (they grow with the video by definition). CPU: not measured here (see
  ``bench.bench_memory_frames`` for peak RSS).

Precision: ``--precision`` as the CLI's (:mod:`dreamdance_core.precision`; default ``auto``: bf16 on CUDA, fp16 on GPUs
without native bf16, fp32 on CPU); on CUDA, TF32 for what stays fp32 and, with ``--channels-last``, the models in
``channels_last`` (:func:`~dreamdance_core.precision.prepare_for_device`, as the entry points do). ``--no-rgb-decode``:
Stage 1 decodes only normal and depth (``Stage1Options.decode_rgb=False``).

Not run on a GPU yet when written: no CUDA machine was lent to the session (only ``--device cpu --tiny`` has run).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dreamdance_core.precision import DEFAULT_PRECISION, PRECISION_HELP, PRECISIONS, prepare_for_device, resolve_dtype

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "dreamdance_core" / "configs"
H100_DENSE_BF16_TFLOPS = 989.0
TARGET_STAGE1_S_PER_FRAME = 0.12  # issue 31
TARGET_STAGE2_S_PER_16_FRAMES = 4.5
MIB = 2**20


@dataclass(frozen=True)
class StageSize:
    width: int
    height: int


REAL_SIZES = {1: StageSize(256, 384), 2: StageSize(512, 768)}
TINY_SIZES = {1: StageSize(16, 16), 2: StageSize(16, 16)}
DEFAULTS = dict(frames=16, steps=25, repeats=2, warmup_steps=2, memory_frames=[16, 64, 256], memory_steps=2, window=16,
                overlap=4)
TINY_DEFAULTS = dict(frames=4, steps=2, repeats=1, warmup_steps=1, memory_frames=[4, 8, 16], memory_steps=1, window=4,
                     overlap=1)


# --- models and inputs ----------------------------------------------------------------------------------------------


def build_stage1(tiny: bool, device: str, dtype: torch.dtype, channels_last: bool = False):
    """The Stage-1 :class:`~dreamdance_core.pipelines.GeometryPipeline` with random weights, on ``device``."""
    from dreamdance_core.pipelines import GeometryPipeline

    if tiny:
        from dreamdance_core.tiny import tiny_geometry_pipeline

        pipeline = tiny_geometry_pipeline()
    else:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        from dreamdance_core.models.stage1 import GeometryDiffusionModel

        with torch.device(device):  # random init on the device: seconds on a GPU, not minutes on its host
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "sd15" / "unet"))
            model = GeometryDiffusionModel.from_base_unet(unet)
            del unet
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(CONFIGS / "sd15" / "vae"))
            encoder = CLIPVisionModelWithProjection(
                CLIPVisionConfig.from_pretrained(CONFIGS / "clip_vision" / "vit_l14"))
        pipeline = GeometryPipeline(model, vae, encoder)
    return _ready(pipeline, device, dtype, channels_last)


def _ready(pipeline, device: str, dtype: torch.dtype, channels_last: bool):
    """The built pipeline on ``device`` in ``dtype``, in eval mode without gradients, prepared as the entry points do
    (TF32, and channels_last when asked, on CUDA)."""
    pipeline.to(device=device, dtype=dtype)
    for module in pipeline.modules():
        module.eval().requires_grad_(False)
    prepare_for_device(pipeline.modules(), device, channels_last=channels_last)
    return pipeline


def build_stage2(tiny: bool, device: str, dtype: torch.dtype, channels_last: bool = False):
    """The Stage-2 :class:`~dreamdance_core.pipelines.VideoPipeline` (SVD + controller + ControlNet), random weights."""
    from dreamdance_core.pipelines import VideoPipeline

    if tiny:
        from dreamdance_core.tiny import tiny_video_pipeline

        pipeline = tiny_video_pipeline()
    else:
        from dreamdance_core.loading.svd import build_svd_models
        from dreamdance_core.models.controller import CrossDomainController
        from dreamdance_core.models.svd_controlnet import SVDControlNet

        with torch.device(device):
            components = build_svd_models()
            controlnet = SVDControlNet.from_unet(components.unet)
            controller = CrossDomainController()  # the paper's: pose, depth, normal; 8x down to 320 channels
        pipeline = VideoPipeline(components, controller, controlnet)
    return _ready(pipeline, device, dtype, channels_last)


def stage1_runner(pipeline, size: StageSize, frames: int, seed: int = 0, decode_rgb: bool = True):
    """``run(steps, windows, compile)`` -> one ``sample_geometry`` call on random CPU inputs of ``frames`` frames."""
    from dreamdance_core.sampling.stage1 import Stage1Options, sample_geometry

    generator = torch.Generator().manual_seed(seed)
    reference = torch.rand(1, 3, size.height, size.width, generator=generator) * 2 - 1
    poses = torch.rand(frames, 3, size.height, size.width, generator=generator) * 2 - 1

    def run(steps: int, windows=None, compile: bool = False):
        options = Stage1Options(steps=steps, windows=windows, compile=compile,  # default MCFG (3.5, 2.5, 3.5)
                                decode_rgb=decode_rgb)
        return sample_geometry(pipeline, reference, poses, options)

    return run


def stage2_runner(pipeline, size: StageSize, frames: int, seed: int = 0, decode_rgb: bool = True):
    """``run(steps, windows, compile)`` -> one controlled ``sample_stage2`` call on random CPU inputs (``decode_rgb``:
    Stage 1's option, taken and ignored so that both runners are called alike)."""
    from dreamdance_core.sampling.stage2 import Stage2Inputs, Stage2Options, sample_stage2

    generator = torch.Generator().manual_seed(seed)
    reference = torch.rand(1, 3, size.height, size.width, generator=generator) * 2 - 1
    maps = {name: torch.rand(frames, 3, size.height, size.width, generator=generator) * 2 - 1
            for name in pipeline.controller.modalities}

    def run(steps: int, windows=None, compile: bool = False):
        options = Stage2Options(width=size.width, height=size.height, num_frames=frames, steps=steps, windows=windows,
                                compile=compile)  # default CFG 1.0 -> 3.0 over the frames: 2 branches
        return sample_stage2(pipeline, reference, Stage2Inputs(maps), options)

    return run


# --- measurements ---------------------------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def register_cpu_attention_flops() -> None:
    """Count CPU flash attention with torch's SDPA formula (torch registers only the CUDA kernels)."""
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None and op not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(op, get_raw=True)(flop_counter.sdpa_flop)


class FlopCount(TorchDispatchMode):
    """Sums the FLOPs of every op that ``torch.utils.flop_counter`` has a formula for (its registry, as
    ``FlopCounterMode`` counts them, without its per-module bookkeeping: ~7x less overhead on the tiny models)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.utils.flop_counter import flop_registry

        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def counted_flops(function: Callable[[], object]) -> int:
    """FLOPs of ``function()`` (matrix products, convolutions, attention)."""
    register_cpu_attention_flops()
    counter = FlopCount()
    with counter:
        result = function()
    del result
    return counter.total


def flop_floor(run, steps: int) -> dict:
    """FLOPs of ``run(steps)`` from two counted runs (1 and 2 steps): per step, once per call, total for ``steps``."""
    one, two = counted_flops(lambda: run(1)), counted_flops(lambda: run(2))
    per_step = two - one
    once = one - per_step
    return {"per_step": per_step, "once": once, "total": once + steps * per_step}


def output_bytes(output, device: str) -> int:
    """Bytes of the returned frames that live on ``device``."""
    tensors = [output] if isinstance(output, torch.Tensor) else [output.rgb, output.normal, output.depth]
    return sum(t.nbytes for t in tensors if t is not None and t.device.type == torch.device(device).type)


def timed(run, device: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        output = run()
        synchronize(device)
        times.append(time.perf_counter() - start)
        del output
    return times


def free(device: str) -> None:
    if torch.device(device).type == "cuda":
        gc.collect()  # tensors in reference cycles (none expected) would hold device memory until the next collection
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def peak_memory(run, device: str) -> dict | None:
    """Peak allocated device memory of ``run()`` (None on CPU), the weights before it and the returned frames."""
    if torch.device(device).type != "cuda":
        output = run()
        frames = output_bytes(output, "cpu")
        del output
        return {"peak": None, "base": None, "outputs": frames}
    free(device)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    output = run()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    frames = output_bytes(output, device)
    del output
    return {"peak": peak, "base": base, "outputs": frames}


# --- the bench ------------------------------------------------------------------------------------------------------


def speed(run, windows, args) -> dict:
    """FLOP floor (eager), warm-up and timed runs of ``run`` (from :func:`stage1_runner` / :func:`stage2_runner`)."""
    flops = flop_floor(lambda steps: run(steps, windows), args.steps)
    synchronize(args.device)
    started = time.perf_counter()
    output = run(args.warmup_steps, windows, args.compile)
    synchronize(args.device)
    warmup = time.perf_counter() - started
    del output
    times = timed(lambda: run(args.steps, windows, args.compile), args.device, args.repeats)
    return {"flops": flops, "warmup_s": warmup, "times": times}


def memory(run, windows, args) -> dict:
    return peak_memory(lambda: run(args.memory_steps, windows, args.compile), args.device)


def failure(error: Exception) -> str:
    """A failed case's table cell (the traceback goes to stderr)."""
    traceback.print_exc(file=sys.stderr)
    if isinstance(error, torch.OutOfMemoryError):
        return f"out of memory ({str(error).splitlines()[0][:80]})"
    return f"FAILED {type(error).__name__}: {str(error).splitlines()[0][:100] if str(error) else ''}"


def stage_results(stage: int, args) -> dict:
    """Build one stage, then FLOP floor, warm-up, timed runs and the memory runs (each case guarded against OOM)."""
    from dreamdance_core.sampling.windows import WindowOptions

    device, dtype = args.device, resolve_dtype(args.precision, args.device)
    size = args.size or (TINY_SIZES if args.tiny else REAL_SIZES)[stage]
    build, runner = (build_stage1, stage1_runner) if stage == 1 else (build_stage2, stage2_runner)
    windows = WindowOptions(length=args.window, overlap=args.overlap)
    result = {"stage": stage, "size": size, "frames": args.frames, "steps": args.steps, "memory": {}}
    started = time.perf_counter()
    try:
        pipeline = build(args.tiny, device, dtype, args.channels_last)
    except Exception as error:  # noqa: BLE001
        result["error"] = "building the models: " + failure(error)
        free(device)
        return result
    synchronize(device)
    result["build_s"] = time.perf_counter() - started
    try:
        result.update(speed(runner(pipeline, size, args.frames, decode_rgb=not args.no_rgb_decode), windows, args))
    except Exception as error:  # noqa: BLE001 - one failed case must not cost the others' figures on a lent GPU
        result["error"] = failure(error)
    free(device)
    for frames in args.memory_frames:
        try:
            case = runner(pipeline, size, frames, seed=frames, decode_rgb=not args.no_rgb_decode)
            result["memory"][frames] = memory(case, windows, args)
        except Exception as error:  # noqa: BLE001
            result["memory"][frames] = {"error": failure(error)}
        free(device)
    del pipeline
    free(device)
    return result


def mib(value) -> str:
    return "n/a" if value is None else f"{value / MIB:.0f}"


def print_speed(results: list[dict], args) -> None:
    peak = args.peak_tflops * 1e12
    print(f"\nSpeed (median of {args.repeats} runs after a {args.warmup_steps}-step warm-up; FLOP floor at "
          f"{args.peak_tflops:g} TFLOP/s):")
    print("| stage | size (WxH) | frames | steps | CFG | time | per | TFLOP (per step / once) | TFLOP per frame | "
          "floor | time / floor | floor / time | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        stage, size, frames, steps = r["stage"], r["size"], r["frames"], r["steps"]
        cfg = "MCFG, 2 branches x 3 domains" if stage == 1 else "CFG, 2 branches"
        if "error" in r:
            print(f"| Stage {stage} | {size.width}x{size.height} | {frames} | {steps} | {cfg} | {r['error']} "
                  "| | | | | | | |")
            continue
        seconds = statistics.median(r["times"])
        flops = r["flops"]
        floor = flops["total"] / peak
        if stage == 1:
            per = f"{seconds / frames:.3f} s/frame"
            target = f"<= {TARGET_STAGE1_S_PER_FRAME} s/frame"
            met = seconds / frames <= TARGET_STAGE1_S_PER_FRAME
        else:
            per = f"{seconds * 16 / frames:.2f} s/16 frames ({seconds / frames:.3f} s/frame)"
            target = f"<= {TARGET_STAGE2_S_PER_16_FRAMES} s/16 frames"
            met = seconds * 16 / frames <= TARGET_STAGE2_S_PER_16_FRAMES
        if args.tiny or torch.device(args.device).type != "cuda":
            target += " (not comparable: tiny or CPU)"
        else:
            target += ": met" if met else ": NOT met"
        print(f"| Stage {stage} | {size.width}x{size.height} | {frames} | {steps} | {cfg} | {seconds:.3f} s | {per} | "
              f"{flops['total'] / 1e12:.4g} ({flops['per_step'] / 1e12:.4g} / {flops['once'] / 1e12:.4g}) | "
              f"{flops['total'] / frames / 1e12:.4g} | {floor:.4g} s | {seconds / floor:.1f}x | "
              f"{100 * floor / seconds:.3g} % | {target} |", flush=True)
    for r in results:
        if "times" in r:
            print(f"Stage {r['stage']}: build {r['build_s']:.1f} s, warm-up {r['warmup_s']:.1f} s, runs "
                  + ", ".join(f"{t:.3f}" for t in r["times"]) + " s")


def print_memory(results: list[dict], args) -> None:
    print(f"\nPeak device memory (torch.cuda.max_memory_allocated, MiB; windows {args.window}/{args.overlap}, "
          f"{args.memory_steps} steps; outputs = the returned frames on the device):")
    print("| stage | frames | weights | peak | peak - weights | outputs | peak - weights - outputs |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        rest = {}
        for frames, m in r["memory"].items():
            if "error" in m:
                print(f"| Stage {r['stage']} | {frames} | {m['error']} | | | | |")
                continue
            if m["peak"] is None:
                print(f"| Stage {r['stage']} | {frames} | n/a | n/a | n/a | {mib(m['outputs'])} | n/a |")
                continue
            rest[frames] = m["peak"] - m["base"] - m["outputs"]
            print(f"| Stage {r['stage']} | {frames} | {mib(m['base'])} | {mib(m['peak'])} | "
                  f"{mib(m['peak'] - m['base'])} | {mib(m['outputs'])} | {mib(rest[frames])} |", flush=True)
        if len(rest) >= 2:
            low, high = min(rest), max(rest)
            peaks = {f: r["memory"][f]["peak"] for f in rest}
            print(f"Stage {r['stage']}: peak {high}/{low} frames = {peaks[high] / peaks[low]:.3f}; sampling memory "
                  f"less outputs {rest[high] / max(rest[low], 1):.3f} (issue 31: flat within 10 %)")


def parse_size(text: str) -> StageSize:
    width, height = (int(v) for v in text.lower().split("x"))
    return StageSize(width, height)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny random models, small sizes (a smoke check on a CPU)")
    parser.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                        help="video size of both stages (default: 256x384 and 512x768; --tiny: 16x16)")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help=PRECISION_HELP)
    parser.add_argument("--channels-last", action="store_true", help="models in channels_last (CUDA)")
    parser.add_argument("--no-rgb-decode", action="store_true", help="Stage 1 decodes normal and depth only")
    parser.add_argument("--compile", action="store_true", help="torch.compile both denoisers (Stage*Options.compile)")
    parser.add_argument("--only", type=int, nargs="+", choices=(1, 2), default=[1, 2], help="stages to run")
    parser.add_argument("--frames", type=int, default=None, help="frames of the timed runs (16; --tiny: 4)")
    parser.add_argument("--steps", type=int, default=None, help="steps of the timed runs (25; --tiny: 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per stage, median printed (2; --tiny: 1)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="steps of the untimed warm-up (2; --tiny: 1)")
    parser.add_argument("--memory-frames", type=int, nargs="+", default=None, help="(16 64 256; --tiny: 4 8 16)")
    parser.add_argument("--memory-steps", type=int, default=None, help="steps of each memory run (2; --tiny: 1)")
    parser.add_argument("--window", type=int, default=None, help="window length (16; --tiny: 4)")
    parser.add_argument("--overlap", type=int, default=None, help="window overlap (4; --tiny: 1)")
    parser.add_argument("--peak-tflops", type=float, default=H100_DENSE_BF16_TFLOPS,
                        help="the device's peak for the FLOP floor (default: H100 SXM dense bf16)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on --device cpu, steadiest on a busy box; else torch's)")
    args = parser.parse_args(argv)
    for key, value in (TINY_DEFAULTS if args.tiny else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine (torch with CUDA), or --device cpu --tiny to check "
                         "the script")
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} thread(s))"
    models = "tiny random models (dreamdance_core.tiny)" if args.tiny else "real architectures, random weights"
    print(f"{name}; torch {torch.__version__}" + (f" (CUDA {torch.version.cuda})" if cuda else "")
          + f"; {args.precision} = {str(resolve_dtype(args.precision, args.device)).removeprefix('torch.')}; "
          f"compile {'on' if args.compile else 'off'}; TF32 {'on' if cuda else 'off'}; channels_last "
          f"{'on' if args.channels_last and cuda else 'off'}; RGB decode {'off' if args.no_rgb_decode else 'on'}; "
          f"{models}", flush=True)
    results = []
    for stage in args.only:
        results.append(stage_results(stage, args))
    print_speed(results, args)
    print_memory(results, args)
    return results


if __name__ == "__main__":
    main()
