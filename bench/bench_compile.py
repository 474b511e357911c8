"""Compile-readiness and compiled speed of both denoisers (CPU), figures only; nothing is asserted.

    .venv/bin/python -m bench.bench_compile [--repeats 20] [--no-compile] [--sd15]

Prints ``torch._dynamo.explain`` graph / graph-break counts of one forward of

* the tiny Stage-1 denoiser (:class:`~dreamdance_core.models.stage1.GeometryDiffusionModel`, CFG-batched: one
  group sees the reference, one does not, the sampler's layout);
* the tiny Stage-2 denoiser (``SVDControlNet`` then ``ControlledSVDUNet``, CFG-batched);
* with ``--sd15``, the SD1.5-layout Stage-1 denoiser on the meta device (no memory, no arithmetic);

then the CPU time of the tiny Stage-1 forward eager and compiled (inductor; ``aot_eager`` if no C++ compiler).
"""

from __future__ import annotations

import argparse
import shutil
import time

import torch

from dreamdance_core.models.stage1 import NUM_DOMAINS


def stage1_call(model, frames: int = 2, groups: int = 2, size: int = 8, device="cpu"):
    """(function, args) of one CFG-batched Stage-1 forward: ``groups`` 2 = conditional + unconditional."""
    g = torch.Generator().manual_seed(0)
    n = groups * NUM_DOMAINS * frames
    unet = model.denoising_unet
    channels, cross = unet.config.block_out_channels[0], unet.config.cross_attention_dim
    with torch.no_grad():
        reference = model.encode_reference(torch.randn(1, 4, size, size, generator=g).to(device),
                                           torch.randn(1, 1, cross, generator=g).to(device))
    args = (torch.randn(n, 4, size, size, generator=g).to(device), torch.tensor(500, device=device),
            torch.randn(n, 1, cross, generator=g).to(device),
            torch.randn(n, channels, size, size, generator=g).to(device),
            torch.arange(NUM_DOMAINS).repeat_interleave(frames).repeat(groups).to(device))
    index = [0 if group == 0 else -1 for group in range(groups) for _ in range(NUM_DOMAINS * frames)]

    def call(model, *args):
        return model(*args, num_modalities=NUM_DOMAINS, num_frames=frames, reference=reference, reference_index=index)

    return call, args


def stage2_call(controlnet, unet, frames: int = 4, size: int = 8):
    """(function, args) of one CFG-batched Stage-2 forward: ControlNet residuals into the SVD UNet."""
    g = torch.Generator().manual_seed(0)
    channels = controlnet.config.block_out_channels[0]
    cross = unet.config.cross_attention_dim
    args = (torch.randn(2, frames, unet.config.in_channels, size, size, generator=g), torch.tensor(1.0),
            torch.randn(2, 1, cross, generator=g), torch.tensor([[6.0, 127.0, 0.02]] * 2),
            torch.randn(2 * frames, channels, size, size, generator=g))

    def call(sample, t, embeds, time_ids, cond):
        down, mid = controlnet(sample, t, embeds, time_ids, controlnet_cond=cond, conditioning_scale=1.0,
                               return_dict=False)
        return unet(sample, t, embeds, time_ids, return_dict=False, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid)[0]

    return call, args


def explain(function, *args) -> str:
    torch._dynamo.reset()
    with torch.no_grad():
        result = torch._dynamo.explain(function)(*args)
    reasons = sorted({str(b.reason).splitlines()[0][:100] for b in result.break_reasons})
    return f"{result.graph_count} graph(s), {result.graph_break_count} break(s)" + (
        f"; reasons: {reasons[:3]}" if reasons else "")


def sd15_stage1_meta():
    """The SD1.5-layout Stage-1 model with meta tensors (the architecture only)."""
    from diffusers import UNet2DConditionModel

    from dreamdance_core.models.stage1 import GeometryDiffusionModel

    with torch.device("meta"):
        base = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)
        return GeometryDiffusionModel.from_base_unet(base).eval()


def timed(function, repeats: int) -> float:
    with torch.no_grad():
        function()  # warm-up (and compilation)
        function()
        start = time.perf_counter()
        for _ in range(repeats):
            function()
    return (time.perf_counter() - start) / repeats


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="explain counts only")
    parser.add_argument("--sd15", action="store_true", help="also explain the SD1.5-layout Stage 1 on the meta device")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    from dreamdance_core.tiny import tiny_stage1, tiny_video_pipeline

    model = tiny_stage1()
    call, inputs = stage1_call(model)
    print(f"tiny Stage-1 denoiser (CFG-batched, 2 groups x 3 domains x 2 frames): {explain(call, model, *inputs)}")
    pipeline = tiny_video_pipeline()
    call2, inputs2 = stage2_call(pipeline.controlnet, pipeline.components.unet)
    print(f"tiny Stage-2 denoiser (ControlNet + SVD UNet, CFG-batched, 4 frames): {explain(call2, *inputs2)}")
    if args.sd15:
        sd15 = sd15_stage1_meta()
        call_sd, inputs_sd = stage1_call(sd15, frames=2, size=32, device="meta")
        print(f"SD1.5-layout Stage-1 denoiser (meta device, 2 groups x 3 domains x 2 frames, 32x32 latents): "
              f"{explain(call_sd, sd15, *inputs_sd)}")
    if args.no_compile:
        return
    backend = "inductor" if shutil.which("g++") or shutil.which("cc") else "aot_eager"
    torch._dynamo.reset()
    eager = timed(lambda: call(model, *inputs), args.repeats)
    compiled_model = torch.compile(model, backend=backend, dynamic=False)
    compiled = timed(lambda: call(compiled_model, *inputs), args.repeats)
    with torch.no_grad():
        difference = (call(compiled_model, *inputs) - call(model, *inputs)).abs().max().item()
    print(f"tiny Stage-1 forward on CPU ({torch.get_num_threads()} threads): eager {eager * 1e3:.2f} ms, "
          f"compiled ({backend}) {compiled * 1e3:.2f} ms, {eager / compiled:.2f}x; max |difference| {difference:.2e}")


if __name__ == "__main__":
    main()
