"""Samplers and the pieces both stages share: overlapping windows, classifier-free guidance, the scheduler choice.

Both stages' samplers have one shape (:class:`Sampler`), as k-diffusion's samplers share one signature::

    sample_geometry(pipeline, reference, inputs, options, callback=None)  # Stage 1: pose maps -> geometry
    sample_stage2(pipeline, reference, inputs, options, callback=None)    # Stage 2: control maps -> video

``pipeline``: the stage's loaded models (:mod:`dreamdance_core.pipelines`); ``reference``: the image to animate;
``inputs``: the per-frame inputs; ``options``: a frozen dataclass (steps, guidance, windows, seed, scheduler, ...);
``callback(step, total, preview)``: progress after every window of every step, raise in it to cancel.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

ProgressCallback = Callable[[int, int, Any], None]


class Sampler(Protocol):
    def __call__(
        self, pipeline: Any, reference: Any, inputs: Any, options: Any = None,
        callback: Optional[ProgressCallback] = None,
    ) -> Any: ...
