"""Samplers and the pieces both stages share: overlapping windows, classifier-free guidance, the scheduler choice.

Both stages' samplers have one shape (:class:`Sampler`), as k-diffusion's samplers share one signature::

    sample_geometry(pipeline, reference, inputs, options, callback=None, *, cancel_check=None)  # pose -> geometry
    sample_stage2(pipeline, reference, inputs, options, callback=None, *, cancel_check=None)    # maps -> video

``pipeline``: the stage's loaded models (:mod:`dreamdance_core.pipelines`); ``reference``: the image to animate;
``inputs``: the per-frame inputs; ``options``: a frozen dataclass (steps, guidance, windows, seed, scheduler, ...);
``callback(step, total, preview)``: progress after every window of every step, raise in it to cancel.

Cancelling: ``cancel_check()`` (:mod:`dreamdance_core.cancel`, the one mechanism) returns to go on and raises to
cancel. It is called between the blocks of every model forward (UNets' down/mid/up blocks and their resnets and
attentions, the reference UNet, pose guider, controller, ControlNet, image encoder, VAE encoder/decoder blocks),
through forward pre-hooks installed for the duration of the call only, and between VAE chunks, so a cancel lands
within one block rather than after a window's whole forward. Its exception propagates unchanged; the samplers drop
the locals of the frames it left (no latents kept alive by a held traceback) and empty the CUDA cache. The nodes pass
``comfy.model_management.throw_exception_if_processing_interrupted``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

ProgressCallback = Callable[[int, int, Any], None]


class Sampler(Protocol):
    def __call__(
        self, pipeline: Any, reference: Any, inputs: Any, options: Any = None,
        callback: Optional[ProgressCallback] = None, *, cancel_check: Optional[Callable[[], None]] = None,
    ) -> Any: ...
