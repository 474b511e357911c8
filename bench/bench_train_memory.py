"""Per-GPU memory and FLOPs of one training step at the paper's settings, computed on the meta device (no weights, no
GPU), and the data loader's speed at the paper's sizes against the step time those FLOPs imply on an H100.

Models are built from the shipped configs (``dreamdance_core/configs``) on the meta device with the training code's
own classes: Stage 1 = SD1.5 reference UNet + denoising UNet + pose guider + geometry/temporal adapter
(:class:`GeometryDiffusionModel`, run through :class:`~dreamdance_core.training.stage1.Stage1Denoiser`) at 256x384,
16 frames, one clip per GPU; Stage 2 = SVD-XT UNet (frozen) + SVD ControlNet + cross-domain controller (run through
:class:`~dreamdance_core.training.stage2.Stage2Denoiser`) at 512x768, 16 frames, one clip per GPU (the paper: batch 8 on
8 GPUs). For each, with the dtypes the scripts use under ``--mixed_precision bf16``:

* parameters: trained ones fp32 (accelerate keeps fp32 master weights), frozen ones as the scripts hold them (Stage 1:
  the whole GeometryDiffusionModel stays fp32; Stage 2: the SVD UNet, and both stages' VAE and CLIP image encoder,
  bf16);
* gradients: fp32 for the trained parameters; optimizer state: AdamW 8 bytes per trained parameter (8-bit AdamW: 2);
* activations: the bytes autograd saves for backward in one forward of the trained module, recorded with
  ``torch.autograd.graph.saved_tensors_hooks`` (unique storages, parameters excluded), the forward run in bf16 (as
  autocast runs the matmuls and convolutions; autocast's fp32 ops are not modelled), without and with the scripts'
  gradient checkpointing (with it: what autograd saves outside the checkpointed blocks plus the blocks' inputs that
  the checkpoints keep; the recomputation of one block during backward adds that block's activations, not counted);
* FLOPs of one step (forward + backward of the trained module, plus the no-grad VAE encoding of the clip and the
  reference) with ``torch.utils.flop_counter.FlopCounterMode``, and the step time they imply on one H100 SXM
  (989 TFLOP/s dense bf16) at 100 % and at 40 % model-FLOPs utilisation.

The sum is compared with 80 GB, per GPU under DDP (everything replicated) and under ZeRO-2 / FSDP gradient and
optimizer sharding over 8 GPUs.

The data loader part writes a synthetic dataset at each stage's size (:func:`dreamdance_core.synthetic
.generate_dataset`), and times :class:`~dreamdance_core.dataset.ClipDataset` + the scripts' collate function with N
workers (clips per second after the first batch), against the clips per second one GPU consumes at the implied step
time (batch 1 per GPU).

    python -m bench.bench_train_memory [--workers 0 1 2] [--clips 6] [--skip-loader]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "dreamdance_core" / "configs"
GB = 1e9
H100_BF16_FLOPS = 989e12  # H100 SXM, dense bf16 tensor-core peak
MFU = 0.4
GPU_MEMORY_GB = 80.0
SHARDS = 8


@dataclass
class Setting:
    name: str
    width: int
    height: int
    frames: int
    batch: int = 1


STAGE1 = Setting("stage1", 256, 384, 16)
STAGE2 = Setting("stage2", 512, 768, 16)


# --- meta-device helpers --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def meta_branches():
    """Data-dependent branches (``bool(tensor)``, e.g. "is any reference image kept?") cannot be decided on the meta
    device: take the training branch (True) there; real tensors are untouched."""
    original = torch.Tensor.__bool__

    def decide(self):
        return True if self.device.type == "meta" else original(self)

    torch.Tensor.__bool__ = decide
    try:
        yield
    finally:
        torch.Tensor.__bool__ = original


class SavedTensors:
    """Bytes autograd saves for backward (unique storages, parameters excluded), plus the inputs that checkpointed
    blocks keep (registered by :meth:`checkpoint_inputs`)."""

    def __init__(self, module: torch.nn.Module):
        self.parameters = {p.untyped_storage()._cdata for p in module.parameters()}
        self.storages: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # keeps the storages alive, so their ids stay unique

    def add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key not in self.parameters and key not in self.storages:
            self.storages[key] = storage.nbytes()
            self.keep.append(tensor)

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.add(tensor)
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


@contextlib.contextmanager
def recording_checkpoints(record: list):
    """``torch.utils.checkpoint.checkpoint`` that also hands each call's tensor inputs to ``record[0]`` (set while a
    forward is measured); patched before the models enable checkpointing, which bind the function then."""
    import torch.utils.checkpoint as tuc

    original = tuc.checkpoint

    def checkpoint(function, *args, **kwargs):
        if record and record[0] is not None:
            for value in list(args) + list(kwargs.values()):
                if isinstance(value, torch.Tensor):
                    record[0].add(value)
        return original(function, *args, **kwargs)

    tuc.checkpoint = checkpoint
    try:
        yield
    finally:
        tuc.checkpoint = original


def numel(parameters) -> int:
    return sum(p.numel() for p in parameters)


# --- the two stages on the meta device ------------------------------------------------------------------------------


def stage1_parts(step: int, checkpointing: bool, device: str = "meta"):
    """(trained module, frozen helpers, inputs builder, trainable params) for Stage 1's paper ``step``, built on
    ``device`` (random weights anywhere but on the meta device)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from dreamdance_core.models.stage1 import NUM_DOMAINS, GeometryDiffusionModel
    from dreamdance_core.training.stage1 import STEPS, Stage1Denoiser

    plan = STEPS[step]
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "sd15" / "unet"))
        model = GeometryDiffusionModel.from_base_unet(unet)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(CONFIGS / "sd15" / "vae"))
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig.from_pretrained(CONFIGS / "clip_vision" / "vit_l14"))
    for part in (model, vae, clip):
        part.to(device)
    model.use_geometry_attention, model.use_temporal_attention = plan.geometry_attention, plan.temporal_attention
    trainable = model.set_trainable(*plan.groups)
    if checkpointing:
        model.enable_gradient_checkpointing()
    m = plan.num_modalities
    s = STAGE1

    def inputs(dtype):
        b, f, h, w = s.batch, s.frames, s.height // 8, s.width // 8
        n = b * (m if m > 1 else 1) * f
        empty = lambda *shape, dt=dtype: torch.empty(*shape, device="meta", dtype=dt)  # noqa: E731
        return ({
            "noisy_latents": empty(n, 4, h, w), "timesteps": empty(n, dt=torch.long),
            "encoder_hidden_states": empty(n, 1, 768), "domain": empty(n, dt=torch.long),
            "reference_latents": empty(b, 4, h, w), "reference_embeds": empty(b, 1, 768),
            "reference_index": empty(n, dt=torch.long), "pose_maps": empty(b, f, 3, s.height, s.width),
        }, m, f)

    images = s.batch * (m * s.frames + 1)  # the clip's modalities + the reference, through the VAE encoder
    assert NUM_DOMAINS == 3
    return Stage1Denoiser(model), {"vae": (vae, images, s), "clip": (clip, s.batch, None)}, inputs, trainable


def stage2_parts(checkpointing: bool, device: str = "meta"):
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from dreamdance_core.modalities import DEFAULT_MODALITIES
    from dreamdance_core.models.controller import CrossDomainController
    from dreamdance_core.models.svd_controlnet import SVDControlNet
    from dreamdance_core.models.unet_svd import ControlledSVDUNet
    from dreamdance_core.training.stage2 import Stage2Denoiser

    with torch.device(device):
        unet = ControlledSVDUNet.from_config(ControlledSVDUNet.load_config(CONFIGS / "svd" / "unet"))
        controlnet = SVDControlNet.from_unet(unet)
        controller = CrossDomainController(modalities=DEFAULT_MODALITIES, block_channels=(16, 32, 96, 256),
                                           out_channels=unet.config.block_out_channels[0], geometry_tokens="pixel",
                                           attention_heads=8)
        vae_config = AutoencoderKLTemporalDecoder.load_config(CONFIGS / "svd" / "vae")
        vae = AutoencoderKLTemporalDecoder.from_config(vae_config)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig.from_pretrained(CONFIGS / "svd" / "image_encoder"))
    for part in (unet, controlnet, controller, vae, clip):  # a few constructors make CPU tensors (AlphaBlender)
        part.to(device)
    unet.requires_grad_(False)
    trainable = list(controller.parameters()) + list(controlnet.parameters())
    if checkpointing:
        for model in (unet, controlnet):
            if model._supports_gradient_checkpointing:
                model.enable_gradient_checkpointing()
    s = STAGE2

    def inputs(dtype):
        b, f, h, w = s.batch, s.frames, s.height // 8, s.width // 8
        empty = lambda *shape: torch.empty(*shape, device="meta", dtype=dtype)  # noqa: E731
        return ({
            "model_input": empty(b, f, 8, h, w), "c_noise": empty(b), "image_embeds": empty(b, 1, 1024),
            "added_time_ids": empty(b, 3),
            "controls": {name: empty(b * f, 3, s.height, s.width) for name in DEFAULT_MODALITIES},
        },)

    frozen_unet = {"svd_unet": (unet, 0, None)}
    helpers = {**frozen_unet, "vae": (vae, s.batch * (s.frames + 1), s), "clip": (clip, s.batch, None)}
    return Stage2Denoiser(controller, controlnet, unet), helpers, inputs, trainable


# --- measurements ---------------------------------------------------------------------------------------------------


def activations(module: torch.nn.Module, inputs, checkpointing_record: list) -> int:
    """Bytes saved for backward by one bf16 forward of ``module`` (checkpointed blocks' inputs included)."""
    module.to(torch.bfloat16)
    saved = SavedTensors(module)
    checkpointing_record[:] = [saved]
    with meta_branches(), torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
        module(*inputs(torch.bfloat16))
    checkpointing_record[:] = [None]
    return saved.bytes


def step_flops(module: torch.nn.Module, inputs, helpers: dict) -> tuple[int, int]:
    """(FLOPs of forward + backward of ``module``, FLOPs of the no-grad helpers: VAE encoding, CLIP image)."""
    from torch.utils.flop_counter import FlopCounterMode

    module.to(torch.bfloat16)
    counter = FlopCounterMode(display=False)
    with meta_branches(), counter:
        out = module(*inputs(torch.bfloat16))
        out.float().square().mean().backward()
    trained = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        for name, (helper, count, setting) in helpers.items():
            helper.to(torch.bfloat16)
            if name == "vae" and count:
                x = torch.empty(count, 3, setting.height, setting.width, device="meta", dtype=torch.bfloat16)
                helper.encode(x)
            elif name == "clip" and count:
                helper(pixel_values=torch.empty(count, 3, 224, 224, device="meta", dtype=torch.bfloat16))
    return trained, counter.get_total_flops()


def measure(label: str, build, optimizer_bytes: int = 8) -> dict:
    """One configuration: memory parts (GB), FLOPs and implied step time."""
    record: list = [None]
    result = {"label": label}
    with recording_checkpoints(record):
        for checkpointing in (False, True):
            module, helpers, inputs, trainable = build(checkpointing)
            trainable_ids = {id(p) for p in trainable}
            if not checkpointing:
                frozen_module = [p for p in module.parameters() if id(p) not in trainable_ids]
                frozen_bf16 = [p for name, (h, _, _) in helpers.items() for p in h.parameters()]
                frozen_fp32 = frozen_module if label.startswith("Stage 1") else []
                helper_ids = {id(p) for p in frozen_bf16}
                frozen_bf16 += [] if label.startswith("Stage 1") else [
                    p for p in frozen_module if id(p) not in helper_ids]
                n_train = numel(trainable)
                result.update(
                    trainable_params=n_train, frozen_params=numel(frozen_fp32) + numel(frozen_bf16),
                    params_gb=(4 * n_train + 4 * numel(frozen_fp32) + 2 * numel(frozen_bf16)) / GB,
                    grads_gb=4 * n_train / GB, adam_gb=optimizer_bytes * n_train / GB, adam8_gb=2 * n_train / GB,
                )
                result["flops"], result["helper_flops"] = step_flops(module, inputs, helpers)
                module, helpers, inputs, trainable = build(checkpointing)
            key = "activations_ckpt_gb" if checkpointing else "activations_gb"
            result[key] = activations(module, inputs, record) / GB
    total = result["flops"] + result["helper_flops"]
    result["step_s_ideal"] = total / H100_BF16_FLOPS
    result["step_s_mfu"] = total / (H100_BF16_FLOPS * MFU)
    return result


# --- data loader ----------------------------------------------------------------------------------------------------


def loader_speed(setting: Setting, workers: list[int], clips: int, folder: Path, modalities) -> dict[int, float]:
    """Clips per second of ClipDataset + collate at ``setting``'s size, after the first batch, per worker count."""
    import argparse as _argparse

    from dreamdance_core.synthetic import generate_dataset
    from dreamdance_core.training.common import clip_dataset, collate_clips

    root = folder / setting.name
    generate_dataset(root, num_videos=2, num_frames=setting.frames + clips, width=setting.width,
                     height=setting.height, seed=0)
    args = _argparse.Namespace(num_frames=setting.frames, width=setting.width, height=setting.height, frame_stride=1,
                               window_step=1, data_policy="error", check_images=False, seed=0,
                               modalities=modalities)
    dataset = clip_dataset(args, str(root))
    speeds = {}
    for n in workers:
        loader = torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=True, collate_fn=collate_clips,
                                             num_workers=n, persistent_workers=False)
        iterator = iter(loader)
        next(iterator)  # start-up: worker processes, first reads
        started = time.perf_counter()
        count = 0
        for _ in range(clips):
            try:
                next(iterator)
            except StopIteration:
                break
            count += 1
        speeds[n] = count / (time.perf_counter() - started)
        del iterator, loader
    return speeds


# --- report ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="data loader worker counts")
    parser.add_argument("--clips", type=int, default=6, help="clips timed per worker count (after the first)")
    parser.add_argument("--skip-loader", action="store_true", help="memory and FLOPs only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # the meta casts' "keep in float32" notes
    transformers_logging.set_verbosity_error()

    rows = [measure(f"Stage 1 step {step}", lambda ckpt, step=step: stage1_parts(step, ckpt)) for step in (1, 2, 3)]
    rows.append(measure("Stage 2", stage2_parts))

    print(f"One training step per GPU, batch 1 clip, bf16 mixed precision; GB = 1e9 bytes; budget "
          f"{GPU_MEMORY_GB:.0f} GB per GPU")
    print("Stage 1: 256x384, 16 frames (steps 2, 3: RGB + normal + depth = 48 latents); Stage 2: 512x768, 16 frames\n")
    header = (f"| {'configuration':<16} | trained / frozen params | params | grads | AdamW | acts | acts ckpt | "
              f"DDP total (ckpt) | ZeRO-2/FSDP x{SHARDS} (ckpt) | 8-bit AdamW DDP (ckpt) | fits 80 GB |")
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for r in rows:
        base = r["params_gb"] + r["grads_gb"] + r["adam_gb"]
        ddp, ddp_ckpt = base + r["activations_gb"], base + r["activations_ckpt_gb"]
        sharded = r["params_gb"] + (r["grads_gb"] + r["adam_gb"]) / SHARDS + r["activations_ckpt_gb"]
        eight = r["params_gb"] + r["grads_gb"] + r["adam8_gb"] + r["activations_ckpt_gb"]
        fits = "yes" if ddp_ckpt <= GPU_MEMORY_GB else ("with ZeRO-2/FSDP" if sharded <= GPU_MEMORY_GB else "no")
        fits = fits if ddp > GPU_MEMORY_GB or fits != "yes" else "yes (also without ckpt)"
        print(f"| {r['label']:<16} | {r['trainable_params'] / 1e6:7.0f} M / {r['frozen_params'] / 1e6:6.0f} M | "
              f"{r['params_gb']:6.1f} | {r['grads_gb']:5.1f} | {r['adam_gb']:5.1f} | {r['activations_gb']:5.1f} | "
              f"{r['activations_ckpt_gb']:9.1f} | {ddp:7.1f} ({ddp_ckpt:5.1f}) | {sharded:20.1f} | "
              f"{eight:22.1f} | {fits} |")
    print(f"\nFLOPs of one step (forward + backward of the trained module, no checkpoint recomputation; helpers: VAE "
          f"encoding + CLIP image), H100 SXM {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s bf16:\n")
    print("| configuration | step TFLOP | helpers TFLOP | step time at 100 % / 40 % MFU | "
          "clips/s one GPU needs (40 %) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['flops'] / 1e12:.1f} | {r['helper_flops'] / 1e12:.2f} | "
              f"{r['step_s_ideal']:.3f} s / {r['step_s_mfu']:.3f} s | {1 / r['step_s_mfu']:.2f} |")
    if args.skip_loader:
        return
    from dreamdance_core.modalities import DEFAULT_MODALITIES

    needs = {"stage1": [("step 1", 1 / rows[0]["step_s_mfu"]), ("steps 2, 3", 1 / rows[1]["step_s_mfu"])],
             "stage2": [("", 1 / rows[3]["step_s_mfu"])]}
    print(f"\nData loader (ClipDataset + collate, synthetic PNG dataset at the paper's size, {args.clips} clips timed "
          f"after the first, {torch.get_num_threads()} thread in the main process), against the clips per second one "
          "GPU consumes at 40 % MFU:\n")
    print("| stage | size | workers | clips/s | one GPU needs | loader / need |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for setting, modalities in ((STAGE1, None), (STAGE2, list(DEFAULT_MODALITIES))):
            speeds = loader_speed(setting, args.workers, args.clips, Path(tmp), modalities)
            need = needs[setting.name]
            wanted = " / ".join(f"{v:.2f}{f' ({k})' if k else ''}" for k, v in need)
            for n, speed in speeds.items():
                ratio = " / ".join(f"{speed / v:.2f}" for _, v in need)
                print(f"| {setting.name} | {setting.width}x{setting.height}x{setting.frames} | {n} | {speed:.2f} | "
                      f"{wanted} | {ratio} |")


if __name__ == "__main__":
    main()
