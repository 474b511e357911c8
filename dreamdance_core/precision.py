"""Numeric precision and memory layout per device: one place for the choices every entry point makes.

- :func:`resolve_dtype`: a precision name (``auto``, ``fp32``, ``fp16``, ``bf16``: the CLI's ``--precision`` and the
  loader nodes' ``precision``) -> the models' dtype on a device. ``auto``: bf16 on CUDA GPUs that run it natively
  (Ampere and later), fp16 on older ones, fp16 on Apple's MPS, fp32 on CPUs (half precision is slower there) and
  anything else. Latents, scheduler state and the window blend stay fp32 whatever this gives (the samplers).
- :func:`allow_tf32`: TensorFloat-32 for what still runs in fp32 on CUDA (called by the entry points, never on
  import: it is a process-wide setting).
- :func:`use_channels_last`: the models in ``torch.channels_last``, as diffusers' optimisation guide shows
  (``pipe.unet.to(memory_format=torch.channels_last)``); the outputs are the same (tests/test_precision.py). Opt-in
  on CUDA (:func:`prepare_for_device`): whether it is faster depends on the GPU and the layers, so measure it.
- :func:`upcast_vae`: the VAE upcast rule of diffusers' pipelines: a VAE held in fp16 whose config says
  ``force_upcast`` runs its encode and decode in fp32 and is cast back afterwards; bf16 and fp32 VAEs run as they
  are. The test is ``StableVideoDiffusionPipeline``'s (``needs_upcasting = self.vae.dtype == torch.float16 and
  self.vae.config.force_upcast``), which upcasts for the reference's encode but casts back before decoding; the SDXL
  pipelines upcast for decoding too (``upcast_vae``), and ``force_upcast``'s own documentation says the VAE then runs
  in fp32, so here both do (fp32 decoding costs memory once, at the end, and cannot overflow).
  ``StableDiffusionPipeline`` (SD1.5) never upcasts; the same rule is applied to Stage 1's SD VAE (its config's
  ``force_upcast`` defaults to True), so Stage 1 in fp16 encodes and decodes in fp32 as well.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
"""The precision names, ``auto`` first (the default everywhere)."""
DEFAULT_PRECISION = "auto"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_HELP = ("auto = bf16 on CUDA GPUs that support it (fp16 on older GPUs and on Apple MPS), fp32 on CPUs; "
                  "fp16/bf16 halve memory and use the GPU's tensor cores, on CPUs they are slower than fp32.")


def cuda_bf16_supported(device: torch.device | str | None = None) -> bool:
    """Whether the CUDA ``device`` (default: the current one) runs bf16 natively (compute capability 8.0 or later,
    or ROCm). Emulated bf16 (older GPUs) counts as unsupported: it is slower than fp16 there."""
    if not torch.cuda.is_available():
        return False
    device = torch.device("cuda" if device is None else device)
    with torch.cuda.device(device if device.index is not None else torch.cuda.current_device()):
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch without the argument
            return torch.cuda.is_bf16_supported()


def resolve_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The models' dtype for ``precision`` (one of :data:`PRECISIONS`) on ``device`` (see the module docstring)."""
    if precision in DTYPES:
        return DTYPES[precision]
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.bfloat16 if cuda_bf16_supported(device) else torch.float16
    if kind == "mps":
        return torch.float16
    return torch.float32


def allow_tf32(device: torch.device | str) -> bool:
    """On a CUDA ``device``: let fp32 matmuls and convolutions use TensorFloat-32 (``torch.backends.cuda.matmul.
    allow_tf32``, ``torch.backends.cudnn.allow_tf32``); elsewhere nothing. Returns whether it was set."""
    if torch.device(device).type != "cuda":
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return True


def use_channels_last(modules: Iterable[torch.nn.Module], device: torch.device | str | None = None) -> bool:
    """Every module's 4-D weights in ``torch.channels_last`` (the activations of its 2-D convolutions follow them), when
    ``device`` is CUDA or None (always): ``module.to(memory_format=torch.channels_last)``, except that 5-D weights
    (the SVD VAE's temporal ``Conv3d``, which that call refuses) keep their layout. Idempotent; moving a module to
    another device or dtype afterwards keeps the layout. Returns whether it was applied."""
    if device is not None and torch.device(device).type != "cuda":
        return False
    for module in modules:
        module._apply(lambda t: t.to(memory_format=torch.channels_last) if t.dim() == 4 else t)
    return True


def prepare_for_device(modules: Iterable[torch.nn.Module], device: torch.device | str, *,
                       channels_last: bool = False) -> None:
    """What an entry point does before running ``modules`` on ``device``: on CUDA, :func:`allow_tf32` and, when
    ``channels_last`` (opt-in: the CLI's ``--channels-last``, ComfyUI's ``--force-channels-last``),
    :func:`use_channels_last`; elsewhere nothing."""
    if allow_tf32(device) and channels_last:
        use_channels_last(modules)


def needs_upcast(vae: torch.nn.Module) -> bool:
    """diffusers' rule: the VAE is held in fp16 and its config says ``force_upcast`` (SD1.5's and SVD's VAE configs
    do, by ``AutoencoderKL``'s and ``AutoencoderKLTemporalDecoder``'s default; ``AutoencoderTiny``'s do not)."""
    config = getattr(vae, "config", None) or {}
    return getattr(vae, "dtype", None) == torch.float16 and bool(config.get("force_upcast", False))


@contextlib.contextmanager
def upcast_vae(vae: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Within the block ``vae`` runs in fp32 when :func:`needs_upcast`, and is cast back to fp16 after it (also on
    an error or a cancel); otherwise nothing changes. Inputs cast to ``vae.dtype`` inside the block follow it."""
    if not needs_upcast(vae):
        yield vae
        return
    vae.to(dtype=torch.float32)
    try:
        yield vae
    finally:
        vae.to(dtype=torch.float16)
