"""Long sequences by overlapping windows, shared by both stages (paper appendix, "Long Video Generation").

At every denoising step the sequence is cut into overlapping windows, each window is denoised on its own and the
per-frame predictions are blended: every frame's prediction is the weighted mean of the predictions of the windows
that cover it. ``weighting="flat"`` is the paper's plain average of the overlaps; ``"pyramid"`` tapers the weights
towards the window edges (ComfyUI's default for context windows) so hand-offs between windows are smoother.

One window covering the whole sequence is exactly the unwindowed computation: :func:`blend_windows` then calls the
denoiser once on all frames and returns its output untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

Weighting = Literal["flat", "pyramid"]
WEIGHTINGS: tuple[str, ...] = ("flat", "pyramid")


@dataclass(frozen=True)
class WindowOptions:
    """How a long sequence is split into windows.

    Args:
        length: frames per window (the models are trained on 16).
        overlap: frames shared by neighbouring windows; must be smaller than ``length``.
        weighting: ``"flat"`` (paper: average the overlaps) or ``"pyramid"`` (tapered towards window edges).
        retain_first: put frame 0 into every window (MimicMotion-style: the frame closest to the reference image
            anchors every window's appearance). Frame 0 then counts towards ``length``.
    """

    length: int = 16
    overlap: int = 4
    weighting: Weighting = "flat"
    retain_first: bool = False

    def __post_init__(self):
        if self.length < 1:
            raise ValueError(f"window length must be at least 1 frame, got {self.length}")
        min_length = 2 if self.retain_first else 1
        if self.length < min_length:
            raise ValueError(f"window length must be at least {min_length} with retain_first, got {self.length}")
        if not 0 <= self.overlap < self.length - (1 if self.retain_first else 0):
            raise ValueError(
                f"window overlap must be >= 0 and smaller than the window length "
                f"({self.length}{' minus the retained first frame' if self.retain_first else ''}), got {self.overlap}"
            )
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown window weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")


def _uniform_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """Window starts every ``stride`` frames; the last window is pulled back so it ends on the last frame."""
    if num_frames <= length:
        return [0]
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return starts


def window_indices(num_frames: int, options: WindowOptions | None) -> list[list[int]]:
    """Frame indices of every window, in order. ``options=None`` means one window over everything."""
    if num_frames < 1:
        raise ValueError(f"a sequence needs at least 1 frame, got {num_frames}")
    if options is None or num_frames <= options.length:
        return [list(range(num_frames))]
    if options.retain_first:
        inner_length = options.length - 1
        stride = inner_length - options.overlap
        return [
            [0] + list(range(1 + s, 1 + s + inner_length))
            for s in _uniform_starts(num_frames - 1, inner_length, stride)
        ]
    stride = options.length - options.overlap
    return [list(range(s, s + options.length)) for s in _uniform_starts(num_frames, options.length, stride)]


def window_weights(length: int, weighting: Weighting) -> torch.Tensor:
    """Blending weights of the frames of one window (all strictly positive)."""
    if weighting == "flat":
        return torch.ones(length)
    if weighting == "pyramid":
        position = torch.arange(length, dtype=torch.float32)
        return torch.minimum(position + 1, length - position)
    raise ValueError(f"unknown window weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")


def blend_windows(
    denoise: Callable[[torch.Tensor], torch.Tensor],
    num_frames: int,
    options: WindowOptions | None,
    *,
    frame_dim: int,
) -> torch.Tensor:
    """Run ``denoise`` on every window and blend the per-frame results.

    Args:
        denoise: takes the window's frame indices (a 1-D long tensor, in increasing order) and returns that window's
            prediction with the window's frames along ``frame_dim``.
        num_frames: length of the whole sequence.
        options: window options; ``None`` or a window at least as long as the sequence runs ``denoise`` once.
        frame_dim: the frame axis of ``denoise``'s output.

    Returns:
        The blended prediction for all frames: for each frame, the weighted mean of the windows that cover it.
    """
    windows = window_indices(num_frames, options)
    if len(windows) == 1:
        return denoise(torch.tensor(windows[0], dtype=torch.long))

    total = None
    weight_sum = None
    for frames in windows:
        index = torch.tensor(frames, dtype=torch.long)
        prediction = denoise(index)
        if total is None:
            shape = list(prediction.shape)
            shape[frame_dim] = num_frames
            total = prediction.new_zeros(shape)
            weight_sum = prediction.new_zeros(num_frames)
        index = index.to(prediction.device)
        weights = window_weights(len(frames), options.weighting).to(prediction)
        view = [1] * prediction.ndim
        view[frame_dim] = len(frames)
        total.index_add_(frame_dim, index, prediction * weights.view(view))
        weight_sum.index_add_(0, index, weights)
    view = [1] * total.ndim
    view[frame_dim] = num_frames
    return total / weight_sum.view(view)
