"""Opt-in ``torch.compile`` of the denoisers (``Stage1Options.compile``, ``Stage2Options.compile``, CLI ``--compile``).

Both denoisers are one dynamo graph (no host syncs, no hooks registered per call: tests/test_compile.py), so the
compiled forward has no graph breaks. Compiled with ``dynamic=False``: a new shape (another window length, CFG
batched or not, another size) compiles once more; dynamo keeps the compiled code per model, so later sampler calls
reuse it. The first call pays the compilation (minutes for inductor on a small CPU, then cached on disk).

Cancelling: a compiled denoiser runs without :func:`~dreamdance_core.cancel.cancel_hooks` in it (hooks or processor
swaps inside a compiled graph would break it or compile it again); the samplers call the cancel check before each
denoiser forward instead, so a cancel lands within one forward of one window rather than one block. The other
models (reference UNet, pose guider, controller, image encoder, VAE) keep their hooks.
"""

from __future__ import annotations

import torch
from torch import nn

COMPILE_BACKEND = "inductor"
"""The ``torch.compile`` backend (tests use ``"aot_eager"``: same graph capture, no C++ build)."""


def compiled(module: nn.Module) -> nn.Module:
    """``torch.compile(module)`` (:data:`COMPILE_BACKEND`, static shapes), a wrapper sharing ``module``'s weights."""
    return torch.compile(module, backend=COMPILE_BACKEND, dynamic=False)
