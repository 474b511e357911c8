"""Activation memory of one denoiser forward and one VAE decode at the real layouts, measured without a GPU: the
factors behind :mod:`dreamdance_core.memory` (figures printed, nothing asserted).

The models (SD1.5-layout Stage 1 with its reference UNet and pose guider; SVD-XT 1.1 UNet + SVD ControlNet +
cross-domain controller; the SD and SVD VAE decoders) are built on the meta device: no weights, no arithmetic, so
the paper's sizes cost seconds on a CPU. A ``TorchDispatchMode`` counts the bytes of every tensor storage an op
creates while any tensor on it is alive (weights and the caller's inputs not counted) and keeps the peak, which is
what a caching allocator must hand out at least (its fragmentation and cuDNN/cuBLAS workspaces come on top).
Attention is counted as a memory-efficient kernel (flash / mem-efficient SDPA on CUDA, the output only), as
ComfyUI's own estimate assumes when PyTorch attention is on; the math fallback would add the attention matrix.

Each case is measured at two sizes and two window lengths, so the printed factor (peak bytes / (batch x latent
pixels x dtype size), i.e. elements per latent pixel per batch item) also shows that the peak is linear in both.

Usage, from the repository root: ``python -m bench.bench_activation_memory``
"""

from __future__ import annotations

import argparse
import contextlib
import weakref

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

MIB = 2**20


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages created inside the mode and still referenced by a live tensor."""

    def __init__(self, external=()):
        super().__init__()
        self.external = {t.untyped_storage()._cdata for t in external}
        self.live: dict[int, list[int]] = {}  # storage -> [bytes, live tensors]
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self.external:
            return
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [storage.nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current -= entry[0]
                del self.live[key]


@contextlib.contextmanager
def memory_efficient_attention():
    """SDPA as a memory-efficient kernel allocates it: the output only (``F.scaled_dot_product_attention``'s shape)."""
    original = F.scaled_dot_product_attention

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        return query.new_empty((*query.shape[:-1], value.shape[-1]))

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def peak_bytes(function, models, inputs) -> int:
    """Peak live bytes that ``function()`` creates (weights of ``models`` and ``inputs`` excluded)."""
    external = [*inputs, *(t for m in models for t in (*m.parameters(), *m.buffers()))]
    with torch.no_grad(), memory_efficient_attention(), LiveBytes(external) as mode:
        result = function()
    del result
    return mode.peak


def stage1_models():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from dreamdance_core.loading.sd15 import SD15_CONFIGS
    from dreamdance_core.models.stage1 import GeometryDiffusionModel

    with torch.device("meta"):
        base = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SD15_CONFIGS / "unet"))
        model = GeometryDiffusionModel.from_base_unet(base).eval()
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIGS / "vae")).eval()
    return model, vae


def stage1_step(model, width: int, height: int, frames: int, groups: int = 2):
    """One CFG-batched window forward as ``sample_geometry`` runs it: pose guider on the window, its features
    repeated per group and domain, the denoiser with the reference features (computed before, and counted)."""
    from dreamdance_core.models.stage1 import NUM_DOMAINS

    h, w, cross = height // 8, width // 8, model.denoising_unet.config.cross_attention_dim
    meta = {"device": "meta"}
    reference_latents, embeds = torch.empty(1, 4, h, w, **meta), torch.empty(1, 1, cross, **meta)
    poses = torch.empty(frames, 3, height, width, **meta)
    n = groups * NUM_DOMAINS * frames
    sample, t = torch.empty(n, 4, h, w, **meta), torch.tensor(500, **meta)

    def run():
        features = model.encode_reference(reference_latents, embeds)
        pose = model.encode_pose(poses).repeat(groups * NUM_DOMAINS, 1, 1, 1)
        domain = torch.arange(NUM_DOMAINS, **meta).repeat_interleave(frames).repeat(groups)
        index = [0 if g == 0 else -1 for g in range(groups) for _ in range(NUM_DOMAINS * frames)]
        return model(sample, t, embeds.repeat(n, 1, 1), pose, domain, num_modalities=NUM_DOMAINS,
                     num_frames=frames, reference=features, reference_index=index)

    return run, [reference_latents, embeds, poses, sample, t], n * h * w


def stage2_models():
    from dreamdance_core.loading.svd import build_svd_models
    from dreamdance_core.models.controller import CrossDomainController
    from dreamdance_core.models.svd_controlnet import SVDControlNet

    with torch.device("meta"):
        components = build_svd_models()
        controlnet = SVDControlNet.from_unet(components.unet).eval()
        controller = CrossDomainController().eval()
    for module in (components.unet, components.vae):
        module.to("meta").eval()  # a few buffers are built on the CPU whatever the default device
    return components, controller.to("meta"), controlnet.to("meta")


def stage2_step(components, controller, controlnet, width: int, height: int, frames: int, branches: int = 2):
    """One CFG-batched window forward as ``sample_stage2`` runs it: the controller on the window's maps, the
    ControlNet, its residuals into the SVD UNet."""
    unet = components.unet
    h, w, meta = height // 8, width // 8, {"device": "meta"}
    maps = {name: torch.empty(frames, 3, height, width, **meta) for name in controller.modalities}
    model_input = torch.empty(branches, frames, unet.config.in_channels, h, w, **meta)
    embeds = torch.empty(branches, 1, unet.config.cross_attention_dim, **meta)
    time_ids, t = torch.empty(branches, 3, **meta), torch.tensor(1.0, **meta)

    def run():
        guidance = controller(maps, None).repeat(branches, 1, 1, 1)
        down, mid = controlnet(model_input, t, embeds, time_ids, controlnet_cond=guidance, conditioning_scale=1.0,
                               return_dict=False)
        return unet(model_input, t, embeds, time_ids, return_dict=False, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid)[0]

    return run, [*maps.values(), model_input, embeds, time_ids, t], branches * frames * h * w


def decode_step(vae, width: int, height: int, frames: int, temporal: bool):
    from dreamdance_core.autoencoder import decode

    latents = torch.empty(frames, vae.config.latent_channels, height // 8, width // 8, device="meta")

    def run():
        return decode(vae, latents, num_frames=frames) if temporal else decode(vae, latents)

    return run, [latents], frames * (height // 8) * (width // 8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    dtype_size = 4  # meta tensors in fp32: the factors are in elements, any dtype scales them by its size
    rows = []
    model, sd_vae = stage1_models()
    for width, height, frames in ((256, 384, 16), (256, 384, 8), (512, 768, 8)):
        run, inputs, area = stage1_step(model, width, height, frames)
        rows.append(("stage1 denoiser (CFG)", width, height, frames, peak_bytes(run, [model], inputs), area))
    for width, height, frames in ((256, 384, 8), (512, 768, 4)):
        run, inputs, area = decode_step(sd_vae, width, height, frames, temporal=False)
        rows.append(("stage1 SD VAE decode", width, height, frames, peak_bytes(run, [sd_vae], inputs), area))
    del model, sd_vae
    components, controller, controlnet = stage2_models()
    for width, height, frames in ((512, 768, 16), (512, 768, 8), (256, 384, 16)):
        run, inputs, area = stage2_step(components, controller, controlnet, width, height, frames)
        models = [components.unet, controller, controlnet]
        rows.append(("stage2 controlnet+unet (CFG)", width, height, frames, peak_bytes(run, models, inputs), area))
    for width, height, frames in ((512, 768, 8), (512, 768, 4), (256, 384, 8)):
        run, inputs, area = decode_step(components.vae, width, height, frames, temporal=True)
        rows.append(("stage2 SVD VAE decode", width, height, frames, peak_bytes(run, [components.vae], inputs), area))

    print(f"{'case':30} {'size':>9} {'frames':>6} {'peak MiB (fp32)':>16} {'elements / latent px / item':>28}")
    for name, width, height, frames, peak, area in rows:
        print(f"{name:30} {width:>4}x{height:<4} {frames:>6} {peak / MIB:>16.0f} {peak / dtype_size / area:>28.0f}")


if __name__ == "__main__":
    main()
